/*
 * json.c — a small, strict JSON reader for one JSONL record of the `iqdb` tool.
 *
 * Strict means RFC 8259 and nothing more: no comments, no trailing commas, no single quotes, no
 * leading zeros, no NaN / Infinity literals, no control characters inside strings, valid UTF-8,
 * paired surrogates in \u escapes, and no duplicate keys. The record shape is fixed:
 *
 *   {"id": 42, "vector": [0.5, 1, -2e-3], "metadata": {"kind": "doc", "year": 2021}}
 *
 * "vector" is required; "id" (an integer 0 .. 2^64 - 1) and "metadata" (an object whose values
 * are null, true/false, numbers or strings — no nesting) are optional; any other key is an
 * error. A number in metadata is an int64 when written without fraction or exponent and in
 * range, else a double. Errors name the byte offset in the line.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

typedef struct jp {
    const char *s;
    size_t n, i;
    cli_err *e;
    char *buf; /* decoded string scratch */
    size_t cap;
} jp;

static int fail(jp *p, const char *what) {
    cli_errf(p->e, "byte %zu: %s", p->i + 1, what);
    return -1;
}

static void ws(jp *p) {
    while (p->i < p->n &&
           (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

static int expect(jp *p, char c, const char *what) {
    ws(p);
    if (p->i >= p->n || p->s[p->i] != c) return fail(p, what);
    p->i++;
    return 0;
}

static int put(jp *p, size_t *len, unsigned char c) {
    if (*len + 1 >= p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        char *b = realloc(p->buf, cap);
        if (!b) return fail(p, "out of memory");
        p->buf = b, p->cap = cap;
    }
    p->buf[(*len)++] = (char)c;
    return 0;
}

static int hex4(jp *p, unsigned *out) {
    if (p->n - p->i < 4) return fail(p, "truncated \\u escape");
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char c = p->s[p->i++];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return fail(p, "bad hex digit in \\u escape");
    }
    *out = v;
    return 0;
}

/* Length of a valid UTF-8 sequence starting at s[0] (n bytes available), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, min = 0x10000;
    else
        return 0;
    if (n < len) return 0;
    unsigned v = c & (0xff >> (len + 1));
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xc0) != 0x80) return 0;
        v = (v << 6) | (s[k] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
    return len;
}

static int put_utf8(jp *p, size_t *len, unsigned cp) {
    if (cp < 0x80) return put(p, len, (unsigned char)cp);
    if (cp < 0x800)
        return put(p, len, (unsigned char)(0xc0 | (cp >> 6))) ||
               put(p, len, (unsigned char)(0x80 | (cp & 0x3f)));
    if (cp < 0x10000)
        return put(p, len, (unsigned char)(0xe0 | (cp >> 12))) ||
               put(p, len, (unsigned char)(0x80 | ((cp >> 6) & 0x3f))) ||
               put(p, len, (unsigned char)(0x80 | (cp & 0x3f)));
    return put(p, len, (unsigned char)(0xf0 | (cp >> 18))) ||
           put(p, len, (unsigned char)(0x80 | ((cp >> 12) & 0x3f))) ||
           put(p, len, (unsigned char)(0x80 | ((cp >> 6) & 0x3f))) ||
           put(p, len, (unsigned char)(0x80 | (cp & 0x3f)));
}

/* Parses a string literal into p->buf (NUL-terminated; may contain 0 bytes). */
static int string(jp *p, size_t *out_len) {
    if (expect(p, '"', "expected a string")) return -1;
    size_t len = 0;
    for (;;) {
        if (p->i >= p->n) return fail(p, "unterminated string");
        unsigned char c = (unsigned char)p->s[p->i];
        if (c == '"') {
            p->i++;
            break;
        }
        if (c < 0x20) return fail(p, "control character in a string (escape it)");
        if (c == '\\') {
            p->i++;
            if (p->i >= p->n) return fail(p, "unterminated escape");
            char x = p->s[p->i++];
            unsigned cp;
            switch (x) {
            case '"': cp = '"'; break;
            case '\\': cp = '\\'; break;
            case '/': cp = '/'; break;
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'n': cp = '\n'; break;
            case 'r': cp = '\r'; break;
            case 't': cp = '\t'; break;
            case 'u':
                if (hex4(p, &cp)) return -1;
                if (cp >= 0xdc00 && cp <= 0xdfff) return fail(p, "lone low surrogate");
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    unsigned lo;
                    if (p->n - p->i < 2 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u')
                        return fail(p, "high surrogate without its low half");
                    p->i += 2;
                    if (hex4(p, &lo)) return -1;
                    if (lo < 0xdc00 || lo > 0xdfff) return fail(p, "bad low surrogate");
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                }
                break;
            default: p->i--; return fail(p, "unknown escape");
            }
            if (put_utf8(p, &len, cp)) return -1;
            continue;
        }
        size_t u = utf8_len((const unsigned char *)p->s + p->i, p->n - p->i);
        if (!u) return fail(p, "invalid UTF-8");
        for (size_t k = 0; k < u; k++)
            if (put(p, &len, (unsigned char)p->s[p->i++])) return -1;
    }
    if (put(p, &len, 0)) return -1;
    *out_len = len - 1;
    return 0;
}

/* A number per the JSON grammar. *is_int: no fraction or exponent. Text in [*b, *e). */
static int number(jp *p, double *d, int *is_int, size_t *b, size_t *e) {
    ws(p);
    size_t i = p->i;
    *b = i;
    *is_int = 1;
    if (i < p->n && p->s[i] == '-') i++;
    if (i >= p->n || p->s[i] < '0' || p->s[i] > '9') return fail(p, "expected a number");
    if (p->s[i] == '0') {
        i++;
        if (i < p->n && p->s[i] >= '0' && p->s[i] <= '9') return fail(p, "leading zero");
    } else {
        while (i < p->n && p->s[i] >= '0' && p->s[i] <= '9') i++;
    }
    if (i < p->n && p->s[i] == '.') {
        *is_int = 0;
        i++;
        if (i >= p->n || p->s[i] < '0' || p->s[i] > '9') return fail(p, "digit expected after '.'");
        while (i < p->n && p->s[i] >= '0' && p->s[i] <= '9') i++;
    }
    if (i < p->n && (p->s[i] == 'e' || p->s[i] == 'E')) {
        *is_int = 0;
        i++;
        if (i < p->n && (p->s[i] == '+' || p->s[i] == '-')) i++;
        if (i >= p->n || p->s[i] < '0' || p->s[i] > '9') return fail(p, "bad exponent");
        while (i < p->n && p->s[i] >= '0' && p->s[i] <= '9') i++;
    }
    char tmp[400];
    if (i - *b >= sizeof tmp) return fail(p, "number too long");
    memcpy(tmp, p->s + *b, i - *b);
    tmp[i - *b] = 0;
    *d = strtod(tmp, NULL);
    *e = i;
    p->i = i;
    return 0;
}

static int literal(jp *p, const char *word) {
    size_t l = strlen(word);
    if (p->n - p->i < l || memcmp(p->s + p->i, word, l)) return -1;
    p->i += l;
    return 0;
}

static int parse_id(jp *p, iqdb_id *id) {
    double d;
    int is_int;
    size_t b, e;
    if (number(p, &d, &is_int, &b, &e)) return -1;
    if (!is_int || p->s[b] == '-') return fail(p, "\"id\" must be a non-negative integer");
    uint64_t v = 0;
    for (size_t i = b; i < e; i++) {
        unsigned dgt = (unsigned)(p->s[i] - '0');
        if (v > (UINT64_MAX - dgt) / 10) return fail(p, "\"id\" is larger than 2^64 - 1");
        v = v * 10 + dgt;
    }
    *id = v;
    return 0;
}

static int parse_vector(jp *p, float *vec, size_t cap, size_t *dim) {
    if (expect(p, '[', "\"vector\" must be an array of numbers")) return -1;
    size_t n = 0;
    ws(p);
    if (p->i < p->n && p->s[p->i] == ']') {
        p->i++;
        *dim = 0;
        return 0;
    }
    for (;;) {
        double d;
        int is_int;
        size_t b, e;
        if (number(p, &d, &is_int, &b, &e)) return -1;
        float f = (float)d;
        if (!isfinite(f)) {
            p->i = b;
            return fail(p, "vector component is not a finite float");
        }
        if (n == cap) {
            p->i = b;
            cli_errf(p->e, "byte %zu: the vector has more than %zu components (the dimension)",
                     p->i + 1, cap);
            return -1;
        }
        vec[n++] = f;
        ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if (expect(p, ']', "expected ',' or ']' in the vector")) return -1;
        break;
    }
    *dim = n;
    return 0;
}

static int meta_value(jp *p, iqdb_meta *m, const char *key) {
    ws(p);
    if (p->i >= p->n) return fail(p, "expected a value");
    char c = p->s[p->i];
    int rc;
    size_t at = p->i;
    if (c == '"') {
        size_t len;
        if (string(p, &len)) return -1;
        rc = iqdb_meta_set(m, key, iqdb_strn(p->buf, len));
    } else if (c == 't' || c == 'f' || c == 'n') {
        if (!literal(p, "true"))
            rc = iqdb_meta_set_bool(m, key, 1);
        else if (!literal(p, "false"))
            rc = iqdb_meta_set_bool(m, key, 0);
        else if (!literal(p, "null"))
            rc = iqdb_meta_set_null(m, key);
        else
            return fail(p, "bad literal (true, false or null expected)");
    } else if (c == '{' || c == '[') {
        return fail(p, "metadata values must be null, bool, number or string (no nesting)");
    } else {
        double d;
        int is_int;
        size_t b, e;
        if (number(p, &d, &is_int, &b, &e)) return -1;
        if (is_int) {
            errno = 0;
            char tmp[32];
            size_t l = e - b;
            long long v = 0;
            if (l < sizeof tmp) {
                memcpy(tmp, p->s + b, l);
                tmp[l] = 0;
                v = strtoll(tmp, NULL, 10);
            }
            if (l < sizeof tmp && errno == 0)
                rc = iqdb_meta_set_int(m, key, (int64_t)v);
            else
                rc = iqdb_meta_set_double(m, key, d); /* beyond int64: a double */
        } else {
            rc = iqdb_meta_set_double(m, key, d);
        }
    }
    if (rc != IQDB_OK) {
        p->i = at;
        cli_errf(p->e, "byte %zu: metadata \"%s\": %s (%s)", at + 1, key, iqdb_errmsg(NULL),
                 cli_code_name(rc));
        return -1;
    }
    return 0;
}

static int parse_meta(jp *p, iqdb_meta **out) {
    if (expect(p, '{', "\"metadata\" must be an object")) return -1;
    iqdb_meta *m;
    if (iqdb_meta_create(NULL, &m) != IQDB_OK) return fail(p, "out of memory");
    ws(p);
    if (p->i < p->n && p->s[p->i] == '}') {
        p->i++;
        *out = m;
        return 0;
    }
    for (;;) {
        size_t len, at;
        ws(p);
        at = p->i;
        if (string(p, &len)) goto bad;
        if (strlen(p->buf) != len) {
            p->i = at;
            fail(p, "metadata key contains a zero byte");
            goto bad;
        }
        char key[IQDB_MAX_KEY_LEN + 1];
        if (len == 0 || len > IQDB_MAX_KEY_LEN) {
            p->i = at;
            fail(p, "metadata key must have 1 to 255 bytes");
            goto bad;
        }
        memcpy(key, p->buf, len + 1);
        iqdb_value old;
        if (iqdb_meta_get(m, key, &old) == IQDB_OK) {
            p->i = at;
            cli_errf(p->e, "byte %zu: duplicate metadata key \"%s\"", at + 1, key);
            goto bad;
        }
        if (expect(p, ':', "expected ':'") || meta_value(p, m, key)) goto bad;
        ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if (expect(p, '}', "expected ',' or '}' in metadata")) goto bad;
        break;
    }
    *out = m;
    return 0;
bad:
    iqdb_meta_destroy(m);
    return -1;
}

int cli_json_parse_record(const char *line, size_t len, float *vec, size_t cap, size_t *dim,
                          iqdb_id *id, int *has_id, iqdb_meta **meta, cli_err *e) {
    jp p = {line, len, 0, e, NULL, 0};
    int seen_id = 0, seen_vec = 0, seen_meta = 0;
    *meta = NULL;
    *has_id = 0;
    *dim = 0;
    if (expect(&p, '{', "a record must be a JSON object")) goto bad;
    ws(&p);
    if (p.i < p.n && p.s[p.i] == '}') {
        p.i++;
    } else {
        for (;;) {
            size_t klen, at;
            ws(&p);
            at = p.i;
            if (string(&p, &klen)) goto bad;
            if (expect(&p, ':', "expected ':'")) goto bad;
            int *seen;
            if (!strcmp(p.buf, "id") && klen == 2) {
                seen = &seen_id;
            } else if (!strcmp(p.buf, "vector") && klen == 6) {
                seen = &seen_vec;
            } else if (!strcmp(p.buf, "metadata") && klen == 8) {
                seen = &seen_meta;
            } else {
                p.i = at;
                fail(&p, "unknown key (a record has \"id\", \"vector\" and \"metadata\")");
                goto bad;
            }
            if (*seen) {
                p.i = at;
                fail(&p, "duplicate key");
                goto bad;
            }
            *seen = 1;
            if (seen == &seen_id) {
                if (parse_id(&p, id)) goto bad;
                *has_id = 1;
            } else if (seen == &seen_vec) {
                if (parse_vector(&p, vec, cap, dim)) goto bad;
            } else {
                if (parse_meta(&p, meta)) goto bad;
            }
            ws(&p);
            if (p.i < p.n && p.s[p.i] == ',') {
                p.i++;
                continue;
            }
            if (expect(&p, '}', "expected ',' or '}'")) goto bad;
            break;
        }
    }
    ws(&p);
    if (p.i != p.n) {
        fail(&p, "text after the record's closing '}'");
        goto bad;
    }
    if (!seen_vec) {
        cli_errf(e, "the record has no \"vector\"");
        goto bad;
    }
    if (*meta && iqdb_meta_count(*meta) == 0) iqdb_meta_destroy(*meta), *meta = NULL;
    free(p.buf);
    return 0;
bad:
    free(p.buf);
    iqdb_meta_destroy(*meta);
    *meta = NULL;
    return -1;
}
