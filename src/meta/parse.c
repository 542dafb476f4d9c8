/*
 * parse.c — the filter text parser (grammar in iqdb.h, iqdb_filter_parse).
 *
 * A hand-written tokenizer and recursive-descent parser. It builds the tree with the public
 * builder functions, so a parsed filter obeys exactly the limits of a built one. Recursion is
 * bounded (MAX_NEST) independently of the tree depth, so a text of a million '(' fails cleanly
 * instead of exhausting the stack. Errors report the byte offset of the token that failed.
 */
#include <errno.h>
#include <math.h>

#include "meta/filter.h"

/* Parentheses and NOT chains nest the parser; a valid filter needs at most about two levels
 * per tree level. */
#define MAX_NEST (3 * IQDB_MAX_FILTER_DEPTH)

typedef enum tok_kind {
    T_END,
    T_IDENT,  /* bare key or keyword */
    T_QKEY,   /* `quoted key` */
    T_STRING, /* 'text' or "text" */
    T_NUMBER,
    T_LPAREN,
    T_RPAREN,
    T_COMMA,
    T_OP, /* comparison: op field set */
    T_ERROR
} tok_kind;

typedef struct tok {
    tok_kind kind;
    size_t pos, len; /* in the text */
    iqdb_op op;
} tok;

typedef struct parser {
    const iqdb_allocator *alloc;
    const char *s;
    size_t n, pos;
    tok t; /* current token */
    size_t err_pos;
    unsigned nest;
} parser;

static int is_ident_start(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static int is_ident(char c) {
    return is_ident_start(c) || (c >= '0' && c <= '9') || c == '.' || c == '-';
}
static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int perr(parser *p, size_t pos, const char *what) {
    p->err_pos = pos;
    if (pos >= p->n)
        return iqdb__fail(NULL, IQDB_INVALID, "filter syntax error at offset %zu (end of text): %s",
                          pos, what);
    int shown = (int)(p->n - pos < 12 ? p->n - pos : 12);
    return iqdb__fail(NULL, IQDB_INVALID, "filter syntax error at offset %zu ('%.*s'): %s", pos,
                      shown, p->s + pos, what);
}

/* Reads the next token into p->t. Returns IQDB_OK or IQDB_INVALID. */
static int next(parser *p) {
    const char *s = p->s;
    while (p->pos < p->n &&
           (s[p->pos] == ' ' || s[p->pos] == '\t' || s[p->pos] == '\n' || s[p->pos] == '\r'))
        p->pos++;
    tok *t = &p->t;
    t->pos = p->pos;
    t->len = 0;
    if (p->pos >= p->n) {
        t->kind = T_END;
        return IQDB_OK;
    }
    char c = s[p->pos];
    size_t i = p->pos;
    if (is_ident_start(c)) {
        while (i < p->n && is_ident(s[i])) i++;
        t->kind = T_IDENT;
    } else if (c == '`') {
        i++;
        while (i < p->n && s[i] != '`') i++;
        if (i >= p->n) return perr(p, p->pos, "unterminated `quoted key`");
        i++;
        t->kind = T_QKEY;
    } else if (c == '\'' || c == '"') {
        i++;
        for (;;) {
            if (i >= p->n) return perr(p, p->pos, "unterminated string");
            if (s[i] == c) {
                if (i + 1 < p->n && s[i + 1] == c) {
                    i += 2;
                    continue;
                }
                i++;
                break;
            }
            i++;
        }
        t->kind = T_STRING;
    } else if (is_digit(c) || c == '-' || c == '+' || c == '.') {
        if (c == '-' || c == '+') i++;
        size_t digits = 0;
        while (i < p->n && is_digit(s[i])) i++, digits++;
        if (i < p->n && s[i] == '.') {
            i++;
            while (i < p->n && is_digit(s[i])) i++, digits++;
        }
        if (!digits) return perr(p, p->pos, "malformed number");
        if (i < p->n && (s[i] == 'e' || s[i] == 'E')) {
            size_t e = i + 1;
            if (e < p->n && (s[e] == '-' || s[e] == '+')) e++;
            if (e >= p->n || !is_digit(s[e])) return perr(p, i, "malformed exponent");
            while (e < p->n && is_digit(s[e])) e++;
            i = e;
        }
        if (i < p->n && is_ident(s[i])) return perr(p, p->pos, "malformed number");
        t->kind = T_NUMBER;
    } else if (c == '(') {
        i++;
        t->kind = T_LPAREN;
    } else if (c == ')') {
        i++;
        t->kind = T_RPAREN;
    } else if (c == ',') {
        i++;
        t->kind = T_COMMA;
    } else if (c == '=' || c == '!' || c == '<' || c == '>') {
        char d = i + 1 < p->n ? s[i + 1] : 0;
        t->kind = T_OP;
        if (c == '=') {
            t->op = IQDB_OP_EQ;
            i += d == '=' ? 2 : 1;
        } else if (c == '!') {
            if (d != '=') return perr(p, i, "expected '!='");
            t->op = IQDB_OP_NE;
            i += 2;
        } else if (c == '<') {
            if (d == '=')
                t->op = IQDB_OP_LE, i += 2;
            else if (d == '>')
                t->op = IQDB_OP_NE, i += 2;
            else
                t->op = IQDB_OP_LT, i += 1;
        } else {
            if (d == '=')
                t->op = IQDB_OP_GE, i += 2;
            else
                t->op = IQDB_OP_GT, i += 1;
        }
    } else {
        return perr(p, i, "unexpected character");
    }
    t->len = i - t->pos;
    p->pos = i;
    return IQDB_OK;
}

static int kw(const parser *p, const char *word) {
    if (p->t.kind != T_IDENT) return 0;
    size_t n = strlen(word);
    if (p->t.len != n) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = p->s[p->t.pos + i];
        if (c >= 'a' && c <= 'z') c = (char)(c - 32);
        if (c != word[i]) return 0;
    }
    return 1;
}

static int is_reserved(const parser *p) {
    static const char *const words[] = {"AND",    "OR",   "NOT",   "IN",
                                        "EXISTS", "TRUE", "FALSE", "NULL"};
    for (size_t i = 0; i < IQDB_ARRAY_LEN(words); i++)
        if (kw(p, words[i])) return 1;
    return 0;
}

/* Copies the current key token into buf (NUL-terminated). */
static int take_key(parser *p, char buf[IQDB_MAX_KEY_LEN + 1]) {
    const char *k;
    size_t len;
    if (p->t.kind == T_IDENT) {
        if (is_reserved(p)) return perr(p, p->t.pos, "a keyword cannot be a key (quote it with `)");
        k = p->s + p->t.pos;
        len = p->t.len;
    } else if (p->t.kind == T_QKEY) {
        k = p->s + p->t.pos + 1;
        len = p->t.len - 2;
    } else {
        return perr(p, p->t.pos, "expected a key");
    }
    if (len == 0) return perr(p, p->t.pos, "empty key");
    if (len > IQDB_MAX_KEY_LEN) return perr(p, p->t.pos, "key longer than 255 bytes");
    if (memchr(k, '\0', len)) return perr(p, p->t.pos, "key contains a NUL byte");
    memcpy(buf, k, len);
    buf[len] = '\0';
    return next(p);
}

/* Parses the literal at the current token into *v. String bytes go into *owned (allocated from
 * mem, *owned_len bytes) which the caller frees after building the leaf. */
static int take_literal(parser *p, iqdb__mem *mem, iqdb_value *v, char **owned, size_t *owned_len) {
    *owned = NULL;
    *owned_len = 0;
    const char *s = p->s + p->t.pos;
    size_t n = p->t.len;
    if (p->t.kind == T_STRING) {
        char q = s[0];
        char *buf = iqdb__alloc(mem, n);
        if (!buf) return iqdb__nomem(NULL);
        size_t o = 0;
        for (size_t i = 1; i + 1 < n; i++) {
            buf[o++] = s[i];
            if (s[i] == q) i++; /* doubled quote */
        }
        if (o > IQDB_MAX_STRING_LEN) {
            iqdb__free(mem, buf, n);
            return perr(p, p->t.pos, "string literal too long");
        }
        *owned = buf;
        *owned_len = n;
        *v = iqdb_strn(buf, o);
    } else if (p->t.kind == T_NUMBER) {
        /* The token holds only [-+.0-9eE] (the tokenizer checked), so it has no length limit:
         * copy it where strtoll / strtod can read it NUL-terminated. */
        char small[64], *tmp = small;
        if (n >= sizeof small) {
            tmp = iqdb__alloc(mem, n + 1);
            if (!tmp) return iqdb__nomem(NULL);
        }
        memcpy(tmp, s, n);
        tmp[n] = '\0';
        int is_int = !memchr(tmp, '.', n) && !memchr(tmp, 'e', n) && !memchr(tmp, 'E', n);
        int done = 0;
        if (is_int) {
            errno = 0;
            char *end;
            long long ll = strtoll(tmp, &end, 10);
            if (errno == 0 && *end == '\0') {
                *v = iqdb_int((int64_t)ll);
                done = 1;
            }
        }
        if (!done) {
            char *end;
            double d = strtod(tmp, &end);
            done = *end == '\0' && !isnan(d);
            if (done) *v = iqdb_double(d);
        }
        if (tmp != small) iqdb__free(mem, tmp, n + 1);
        if (!done) return perr(p, p->t.pos, "malformed number");
    } else if (kw(p, "TRUE")) {
        *v = iqdb_bool(1);
    } else if (kw(p, "FALSE")) {
        *v = iqdb_bool(0);
    } else if (kw(p, "NULL")) {
        *v = iqdb_null();
    } else {
        return perr(p, p->t.pos, "expected a literal (string, number, TRUE, FALSE or NULL)");
    }
    int rc = next(p);
    if (rc && *owned) { /* the caller only frees what a successful call hands over */
        iqdb__free(mem, *owned, *owned_len);
        *owned = NULL;
        *owned_len = 0;
    }
    return rc;
}

static int parse_expr(parser *p, iqdb_filter **out);

static int expect(parser *p, tok_kind k, const char *what) {
    if (p->t.kind != k) return perr(p, p->t.pos, what);
    return next(p);
}

/* key [NOT] IN ( literal, ... ) — the current token is past the key. */
static int parse_in(parser *p, const char *key, int negate, iqdb_filter **out) {
    iqdb__mem mem;
    iqdb__mem_init(&mem, p->alloc);
    IQDB_TRY(expect(p, T_LPAREN, "expected '(' after IN"));
    iqdb_value vals[IQDB_MAX_FILTER_IN];
    char *owned[IQDB_MAX_FILTER_IN];
    size_t owned_len[IQDB_MAX_FILTER_IN];
    size_t n = 0;
    int rc = IQDB_OK;
    if (p->t.kind != T_RPAREN) {
        for (;;) {
            if (n == IQDB_MAX_FILTER_IN) {
                rc = perr(p, p->t.pos, "IN list longer than 1024 values");
                goto done;
            }
            rc = take_literal(p, &mem, &vals[n], &owned[n], &owned_len[n]);
            if (rc) goto done;
            n++;
            if (p->t.kind == T_COMMA) {
                rc = next(p);
                if (rc) goto done;
                continue;
            }
            break;
        }
    }
    rc = expect(p, T_RPAREN, "expected ',' or ')' in IN list");
    if (rc) goto done;
    rc = iqdb_filter_in(p->alloc, key, vals, n, out);
    if (rc == IQDB_OK && negate) rc = iqdb_filter_not(*out, out);
done:
    for (size_t i = 0; i < n; i++) iqdb__free(&mem, owned[i], owned_len[i]);
    return rc;
}

static int parse_factor(parser *p, iqdb_filter **out) {
    *out = NULL;
    if (++p->nest > MAX_NEST) return perr(p, p->t.pos, "filter nests too deeply");
    int rc;
    if (kw(p, "NOT")) {
        IQDB_TRY(next(p));
        iqdb_filter *inner;
        IQDB_TRY(parse_factor(p, &inner));
        rc = iqdb_filter_not(inner, out);
        if (rc) p->err_pos = p->t.pos;
    } else if (p->t.kind == T_LPAREN) {
        IQDB_TRY(next(p));
        IQDB_TRY(parse_expr(p, out));
        rc = expect(p, T_RPAREN, "expected ')'");
        if (rc) {
            iqdb_filter_destroy(*out);
            *out = NULL;
        }
    } else if (kw(p, "TRUE") || kw(p, "FALSE")) {
        int t = kw(p, "TRUE");
        IQDB_TRY(next(p));
        rc = t ? iqdb_filter_and(p->alloc, NULL, 0, out) : iqdb_filter_or(p->alloc, NULL, 0, out);
    } else if (kw(p, "EXISTS")) {
        IQDB_TRY(next(p));
        IQDB_TRY(expect(p, T_LPAREN, "expected '(' after EXISTS"));
        char key[IQDB_MAX_KEY_LEN + 1];
        IQDB_TRY(take_key(p, key));
        IQDB_TRY(expect(p, T_RPAREN, "expected ')' after EXISTS key"));
        rc = iqdb_filter_exists(p->alloc, key, out);
    } else {
        char key[IQDB_MAX_KEY_LEN + 1];
        size_t key_pos = p->t.pos;
        IQDB_TRY(take_key(p, key));
        if (p->t.kind == T_OP) {
            iqdb_op op = p->t.op;
            IQDB_TRY(next(p));
            iqdb__mem mem;
            iqdb__mem_init(&mem, p->alloc);
            iqdb_value v;
            char *owned;
            size_t owned_len;
            IQDB_TRY(take_literal(p, &mem, &v, &owned, &owned_len));
            rc = iqdb_filter_cmp(p->alloc, key, op, v, out);
            iqdb__free(&mem, owned, owned_len);
        } else if (kw(p, "IN")) {
            IQDB_TRY(next(p));
            rc = parse_in(p, key, 0, out);
        } else if (kw(p, "NOT")) {
            IQDB_TRY(next(p));
            if (!kw(p, "IN")) return perr(p, p->t.pos, "expected IN after NOT");
            IQDB_TRY(next(p));
            rc = parse_in(p, key, 1, out);
        } else {
            (void)key_pos;
            return perr(p, p->t.pos, "expected a comparison operator or IN after the key");
        }
    }
    p->nest--;
    return rc;
}

/* Parses `sub { KW sub }` into one AND/OR node (or the single operand). */
static int parse_chain(parser *p, int is_or, iqdb_filter **out) {
    iqdb_filter *first;
    size_t start = p->t.pos;
    IQDB_TRY(is_or ? parse_chain(p, 0, &first) : parse_factor(p, &first));
    if (!kw(p, is_or ? "OR" : "AND")) {
        *out = first;
        return IQDB_OK;
    }
    iqdb__mem mem;
    iqdb__mem_init(&mem, p->alloc);
    iqdb_filter **kids = NULL;
    size_t n = 0, cap = 0;
    void *vp = NULL;
    if (iqdb__grow(&mem, &vp, &cap, 4, sizeof *kids)) {
        iqdb_filter_destroy(first);
        return iqdb__nomem(NULL);
    }
    kids = vp;
    kids[n++] = first;
    int rc = IQDB_OK;
    while (kw(p, is_or ? "OR" : "AND")) {
        rc = next(p);
        if (rc) break;
        iqdb_filter *f;
        rc = is_or ? parse_chain(p, 0, &f) : parse_factor(p, &f);
        if (rc) break;
        vp = kids;
        if (iqdb__grow(&mem, &vp, &cap, n + 1, sizeof *kids)) {
            iqdb_filter_destroy(f);
            rc = iqdb__nomem(NULL);
            break;
        }
        kids = vp;
        kids[n++] = f;
    }
    if (rc) {
        for (size_t i = 0; i < n; i++) iqdb_filter_destroy(kids[i]);
    } else {
        rc = is_or ? iqdb_filter_or(p->alloc, kids, n, out)
                   : iqdb_filter_and(p->alloc, kids, n, out);
        if (rc && rc != IQDB_NOMEM) p->err_pos = start;
    }
    iqdb__free(&mem, kids, cap * sizeof *kids);
    return rc;
}

static int parse_expr(parser *p, iqdb_filter **out) { return parse_chain(p, 1, out); }

int iqdb_filter_parse(const iqdb_allocator *alloc, const char *text, size_t len, iqdb_filter **out,
                      size_t *err_offset) {
    if (err_offset) *err_offset = 0;
    if (out) *out = NULL;
    if (!text || !out) return iqdb__fail(NULL, IQDB_MISUSE, "iqdb_filter_parse: NULL argument");
    IQDB_TRY(iqdb__mem_check(alloc));
    parser p = {alloc, text, len, 0, {T_END, 0, 0, IQDB_OP_EQ}, 0, 0};
    int rc = next(&p);
    if (rc == IQDB_OK && p.t.kind == T_END) rc = perr(&p, 0, "empty filter");
    iqdb_filter *f = NULL;
    if (rc == IQDB_OK) rc = parse_expr(&p, &f);
    if (rc == IQDB_OK && p.t.kind != T_END) {
        rc = perr(&p, p.t.pos, "expected AND, OR or the end of the filter");
        iqdb_filter_destroy(f);
        f = NULL;
    }
    if (rc) {
        if (err_offset) *err_offset = p.err_pos;
        return rc;
    }
    *out = f;
    return IQDB_OK;
}
