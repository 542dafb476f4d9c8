/*
 * filter.c — filter builders, validation, the comparison rules, and evaluation (see filter.h
 * and the semantics block in iqdb.h).
 */
#include "meta/filter.h"

#include <math.h>

/* ============================================================================================ */
/* Comparison rules                                                                             */
/* ============================================================================================ */

/* sign(i - d) for an int64 and a non-NaN double, exactly (no rounding of i to double). */
static int cmp_int_double(int64_t i, double d) {
    if (d >= 9223372036854775808.0) return -1; /* d >= 2^63 > any int64 */
    if (d < -9223372036854775808.0) return 1;  /* d < -2^63 */
    double t = trunc(d);                       /* in [-2^63, 2^63): fits int64 */
    int64_t ti = (int64_t)t;
    if (i < ti) return -1;
    if (i > ti) return 1;
    double frac = d - t; /* exact */
    return frac > 0 ? -1 : frac < 0 ? 1 : 0;
}

int iqdb__value_cmp(const iqdb_value *a, const iqdb_value *b, int *c) {
    iqdb_type ta = a->type, tb = b->type;
    if (ta == IQDB_TYPE_INT && tb == IQDB_TYPE_INT) {
        *c = (a->u.i > b->u.i) - (a->u.i < b->u.i);
        return 1;
    }
    if (ta == IQDB_TYPE_DOUBLE && tb == IQDB_TYPE_DOUBLE) {
        *c = (a->u.d > b->u.d) - (a->u.d < b->u.d);
        return 1;
    }
    if (ta == IQDB_TYPE_INT && tb == IQDB_TYPE_DOUBLE) {
        *c = cmp_int_double(a->u.i, b->u.d);
        return 1;
    }
    if (ta == IQDB_TYPE_DOUBLE && tb == IQDB_TYPE_INT) {
        *c = -cmp_int_double(b->u.i, a->u.d);
        return 1;
    }
    if (ta != tb) return 0;
    switch (ta) {
    case IQDB_TYPE_STRING: {
        size_t n = a->u.s.len < b->u.s.len ? a->u.s.len : b->u.s.len;
        int r = n ? memcmp(a->u.s.ptr, b->u.s.ptr, n) : 0;
        if (r == 0) r = (a->u.s.len > b->u.s.len) - (a->u.s.len < b->u.s.len);
        *c = (r > 0) - (r < 0);
        return 1;
    }
    case IQDB_TYPE_BOOL: *c = (a->u.b != 0) - (b->u.b != 0); return 1;
    case IQDB_TYPE_NULL: *c = 0; return 1;
    case IQDB_TYPE_INT:
    case IQDB_TYPE_DOUBLE: break; /* handled above */
    }
    return 0;
}

int iqdb__value_op(iqdb_op op, const iqdb_value *a, const iqdb_value *b) {
    int c;
    if (!iqdb__value_cmp(a, b, &c)) return 0;
    int is_null = a->type == IQDB_TYPE_NULL;
    switch (op) {
    case IQDB_OP_EQ: return c == 0;
    case IQDB_OP_NE: return c != 0;
    case IQDB_OP_LT: return !is_null && c < 0;
    case IQDB_OP_LE: return !is_null && c <= 0;
    case IQDB_OP_GT: return !is_null && c > 0;
    case IQDB_OP_GE: return !is_null && c >= 0;
    }
    return 0;
}

/* ============================================================================================ */
/* Building                                                                                     */
/* ============================================================================================ */

static iqdb_filter *node_new(const iqdb__mem *from, uint8_t kind) {
    iqdb__mem mem;
    iqdb__mem_init(&mem, &from->a);
    iqdb_filter *f = iqdb__calloc(&mem, 1, sizeof *f);
    if (!f) return NULL;
    iqdb__mem_init(&f->mem, &from->a);
    atomic_store_explicit(&f->mem.live, sizeof *f, memory_order_relaxed);
    f->kind = kind;
    return f;
}

void iqdb_filter_destroy(iqdb_filter *f) {
    if (!f) return;
    for (size_t i = 0; i < f->n_kids; i++) iqdb_filter_destroy(f->kids[i]);
    iqdb__free(&f->mem, f->kids, f->n_kids * sizeof *f->kids);
    if (f->key) iqdb__free(&f->mem, f->key, f->key_len + 1);
    iqdb__value_free(&f->mem, &f->v);
    for (size_t i = 0; i < f->n_vals; i++) iqdb__value_free(&f->mem, &f->vals[i]);
    iqdb__free(&f->mem, f->vals, f->n_vals * sizeof *f->vals);
    iqdb__mem mem;
    iqdb__mem_init(&mem, &f->mem.a);
    iqdb__free(&mem, f, sizeof *f);
}

/* A leaf with its key copied. */
static int leaf_new(const iqdb_allocator *alloc, const char *key, uint8_t kind, iqdb_filter **out) {
    *out = NULL;
    if (!key) return iqdb__fail(NULL, IQDB_MISUSE, "filter key is NULL");
    IQDB_TRY(iqdb__mem_check(alloc));
    size_t len;
    IQDB_TRY(iqdb__key_check(key, &len));
    iqdb__mem base;
    iqdb__mem_init(&base, alloc);
    iqdb_filter *f = node_new(&base, kind);
    if (!f) return iqdb__nomem(NULL);
    f->key = iqdb__strndup(&f->mem, key, len);
    if (!f->key) {
        iqdb_filter_destroy(f);
        return iqdb__nomem(NULL);
    }
    f->key_len = len;
    *out = f;
    return IQDB_OK;
}

int iqdb_filter_cmp(const iqdb_allocator *alloc, const char *key, iqdb_op op, iqdb_value v,
                    iqdb_filter **out) {
    if (!out) return iqdb__fail(NULL, IQDB_MISUSE, "filter: out is NULL");
    *out = NULL;
    if (op < IQDB_OP_EQ || op > IQDB_OP_GE)
        return iqdb__fail(NULL, IQDB_INVALID, "filter: unknown comparison operator %d", (int)op);
    IQDB_TRY(iqdb__value_check(&v));
    iqdb_filter *f;
    IQDB_TRY(leaf_new(alloc, key, IQDB__F_CMP, &f));
    f->op = (uint8_t)op;
    if (iqdb__value_copy(&f->mem, &v, &f->v)) {
        f->v.type = IQDB_TYPE_NULL;
        iqdb_filter_destroy(f);
        return iqdb__nomem(NULL);
    }
    *out = f;
    return IQDB_OK;
}

#define SHORTHAND(name, OP)                                                            \
    int iqdb_filter_##name(const iqdb_allocator *alloc, const char *key, iqdb_value v, \
                           iqdb_filter **out) {                                        \
        return iqdb_filter_cmp(alloc, key, OP, v, out);                                \
    }
SHORTHAND(eq, IQDB_OP_EQ)
SHORTHAND(ne, IQDB_OP_NE)
SHORTHAND(lt, IQDB_OP_LT)
SHORTHAND(le, IQDB_OP_LE)
SHORTHAND(gt, IQDB_OP_GT)
SHORTHAND(ge, IQDB_OP_GE)

int iqdb_filter_in(const iqdb_allocator *alloc, const char *key, const iqdb_value *values, size_t n,
                   iqdb_filter **out) {
    if (!out) return iqdb__fail(NULL, IQDB_MISUSE, "filter: out is NULL");
    *out = NULL;
    if (n > IQDB_MAX_FILTER_IN)
        return iqdb__fail(NULL, IQDB_INVALID,
                          "filter: IN list of %zu values exceeds the limit of %u", n,
                          IQDB_MAX_FILTER_IN);
    if (n && !values) return iqdb__fail(NULL, IQDB_INVALID, "filter: IN values is NULL");
    for (size_t i = 0; i < n; i++) IQDB_TRY(iqdb__value_check(&values[i]));
    iqdb_filter *f;
    IQDB_TRY(leaf_new(alloc, key, IQDB__F_IN, &f));
    if (n) {
        f->vals = iqdb__calloc(&f->mem, n, sizeof *f->vals);
        if (!f->vals) goto nomem;
        for (size_t i = 0; i < n; i++) {
            if (iqdb__value_copy(&f->mem, &values[i], &f->vals[i])) goto nomem;
            f->n_vals = i + 1;
        }
    }
    *out = f;
    return IQDB_OK;
nomem:
    /* free exactly what was allocated: vals array sized n, n_vals copies */
    if (f->vals) {
        for (size_t i = 0; i < f->n_vals; i++) iqdb__value_free(&f->mem, &f->vals[i]);
        iqdb__free(&f->mem, f->vals, n * sizeof *f->vals);
        f->vals = NULL;
        f->n_vals = 0;
    }
    iqdb_filter_destroy(f);
    return iqdb__nomem(NULL);
}

int iqdb_filter_exists(const iqdb_allocator *alloc, const char *key, iqdb_filter **out) {
    if (!out) return iqdb__fail(NULL, IQDB_MISUSE, "filter: out is NULL");
    return leaf_new(alloc, key, IQDB__F_EXISTS, out);
}

static void destroy_all(iqdb_filter *const *kids, size_t n) {
    for (size_t i = 0; i < n; i++) iqdb_filter_destroy(kids[i]);
}

static int combine(const iqdb_allocator *alloc, uint8_t kind, iqdb_filter *const *kids, size_t n,
                   iqdb_filter **out) {
    if (out) *out = NULL;
    if (!out || (n && !kids)) {
        if (kids) destroy_all(kids, n);
        return iqdb__fail(NULL, IQDB_MISUSE, "filter: NULL argument");
    }
    int rc = iqdb__mem_check(alloc);
    if (rc) {
        destroy_all(kids, n);
        return rc;
    }
    unsigned depth = 0;
    for (size_t i = 0; i < n; i++) {
        if (!kids[i]) {
            destroy_all(kids, n);
            return iqdb__fail(NULL, IQDB_INVALID, "filter: child %zu is NULL", i);
        }
        if (kids[i]->depth > depth) depth = kids[i]->depth;
    }
    if (depth + 1 > IQDB_MAX_FILTER_DEPTH) {
        destroy_all(kids, n);
        return iqdb__fail(NULL, IQDB_INVALID, "filter nests deeper than %u levels",
                          IQDB_MAX_FILTER_DEPTH);
    }
    iqdb__mem base;
    iqdb__mem_init(&base, alloc);
    iqdb_filter *f = node_new(&base, kind);
    if (!f) {
        destroy_all(kids, n);
        return iqdb__nomem(NULL);
    }
    if (n) {
        f->kids = iqdb__alloc(&f->mem, n * sizeof *f->kids);
        if (!f->kids) {
            iqdb_filter_destroy(f);
            destroy_all(kids, n);
            return iqdb__nomem(NULL);
        }
        memcpy(f->kids, kids, n * sizeof *f->kids);
        f->n_kids = n;
    }
    f->depth = (uint16_t)(depth + 1);
    *out = f;
    return IQDB_OK;
}

int iqdb_filter_and(const iqdb_allocator *alloc, iqdb_filter *const *children, size_t n,
                    iqdb_filter **out) {
    return combine(alloc, IQDB__F_AND, children, n, out);
}
int iqdb_filter_or(const iqdb_allocator *alloc, iqdb_filter *const *children, size_t n,
                   iqdb_filter **out) {
    return combine(alloc, IQDB__F_OR, children, n, out);
}
int iqdb_filter_not(iqdb_filter *child, iqdb_filter **out) {
    if (!child) {
        if (out) *out = NULL;
        return iqdb__fail(NULL, out ? IQDB_INVALID : IQDB_MISUSE, "filter: NOT of a NULL child");
    }
    iqdb_filter *kids[1] = {child};
    return combine(&child->mem.a, IQDB__F_NOT, kids, 1, out);
}

/* ============================================================================================ */
/* Evaluation against a metadata object                                                         */
/* ============================================================================================ */

static int eval_meta(const iqdb_filter *f, const iqdb_meta *m) {
    switch ((iqdb__fkind)f->kind) {
    case IQDB__F_AND:
        for (size_t i = 0; i < f->n_kids; i++)
            if (!eval_meta(f->kids[i], m)) return 0;
        return 1;
    case IQDB__F_OR:
        for (size_t i = 0; i < f->n_kids; i++)
            if (eval_meta(f->kids[i], m)) return 1;
        return 0;
    case IQDB__F_NOT: return !eval_meta(f->kids[0], m);
    case IQDB__F_CMP:
    case IQDB__F_IN:
    case IQDB__F_EXISTS: {
        const iqdb__meta_entry *e = m ? iqdb__meta_find(m, f->key, f->key_len) : NULL;
        if (!e) return 0;
        if (f->kind == IQDB__F_EXISTS) return 1;
        if (f->kind == IQDB__F_CMP) return iqdb__value_op((iqdb_op)f->op, &e->v, &f->v);
        for (size_t i = 0; i < f->n_vals; i++)
            if (iqdb__value_op(IQDB_OP_EQ, &e->v, &f->vals[i])) return 1;
        return 0;
    }
    }
    return 0;
}

int iqdb_filter_matches(const iqdb_filter *f, const iqdb_meta *m, int *result) {
    if (result) *result = 0;
    if (!f || !result) return iqdb__fail(NULL, IQDB_MISUSE, "iqdb_filter_matches: NULL argument");
    *result = eval_meta(f, m);
    return IQDB_OK;
}

/* ============================================================================================ */
/* Compiled form                                                                                */
/* ============================================================================================ */

static void count_nodes(const iqdb_filter *f, size_t *nodes, size_t *kids) {
    (*nodes)++;
    *kids += f->n_kids;
    for (size_t i = 0; i < f->n_kids; i++) count_nodes(f->kids[i], nodes, kids);
}

/* Emits f at index `at` (already reserved); children are reserved as a block. */
static void emit(const iqdb_filter *f, const iqdb__keydict *d, iqdb__cfilter *cf, size_t at) {
    iqdb__cnode *c = &cf->nodes[at];
    c->kind = f->kind;
    c->op = f->op;
    c->key = f->key ? iqdb__keydict_find(d, f->key, f->key_len) : IQDB__NO_KEY;
    c->vals = f->kind == IQDB__F_CMP ? &f->v : f->vals;
    c->n = (uint32_t)(f->kind == IQDB__F_IN ? f->n_vals : f->n_kids);
    c->first = (uint32_t)cf->n_kids;
    size_t first = cf->n_kids;
    cf->n_kids += f->n_kids;
    for (size_t i = 0; i < f->n_kids; i++) {
        size_t idx = cf->n_nodes++;
        cf->kids[first + i] = (uint32_t)idx;
        emit(f->kids[i], d, cf, idx);
    }
}

int iqdb__filter_compile(const iqdb_filter *f, const iqdb__keydict *d, iqdb__cfilter *cf,
                         iqdb__mem *mem) {
    size_t nodes = 0, kids = 0;
    count_nodes(f, &nodes, &kids);
    if (nodes > UINT32_MAX || kids > UINT32_MAX) return IQDB_NOMEM;
    void *p = cf->nodes;
    IQDB_TRY(iqdb__grow(mem, &p, &cf->nodes_cap, nodes, sizeof *cf->nodes));
    cf->nodes = p;
    p = cf->kids;
    IQDB_TRY(iqdb__grow(mem, &p, &cf->kids_cap, kids ? kids : 1, sizeof *cf->kids));
    cf->kids = p;
    cf->n_nodes = 1;
    cf->n_kids = 0;
    emit(f, d, cf, 0);
    return IQDB_OK;
}

static int eval_node(const iqdb__cfilter *cf, uint32_t at, const uint8_t *blob, uint32_t len) {
    const iqdb__cnode *c = &cf->nodes[at];
    switch ((iqdb__fkind)c->kind) {
    case IQDB__F_AND:
        for (uint32_t i = 0; i < c->n; i++)
            if (!eval_node(cf, cf->kids[c->first + i], blob, len)) return 0;
        return 1;
    case IQDB__F_OR:
        for (uint32_t i = 0; i < c->n; i++)
            if (eval_node(cf, cf->kids[c->first + i], blob, len)) return 1;
        return 0;
    case IQDB__F_NOT: return !eval_node(cf, cf->kids[c->first], blob, len);
    case IQDB__F_CMP:
    case IQDB__F_IN:
    case IQDB__F_EXISTS: {
        iqdb_value v;
        if (c->key == IQDB__NO_KEY || !iqdb__blob_find(blob, len, c->key, &v)) return 0;
        if (c->kind == IQDB__F_EXISTS) return 1;
        if (c->kind == IQDB__F_CMP) return iqdb__value_op((iqdb_op)c->op, &v, c->vals);
        for (uint32_t i = 0; i < c->n; i++)
            if (iqdb__value_op(IQDB_OP_EQ, &v, &c->vals[i])) return 1;
        return 0;
    }
    }
    return 0;
}

int iqdb__cfilter_eval(const iqdb__cfilter *cf, const uint8_t *blob, uint32_t len) {
    return eval_node(cf, 0, blob, len);
}

void iqdb__cfilter_free(iqdb__cfilter *cf, iqdb__mem *mem) {
    iqdb__free(mem, cf->nodes, cf->nodes_cap * sizeof *cf->nodes);
    iqdb__free(mem, cf->kids, cf->kids_cap * sizeof *cf->kids);
    memset(cf, 0, sizeof *cf);
}

size_t iqdb__cfilter_mem(const iqdb__cfilter *cf) {
    return cf->nodes_cap * sizeof *cf->nodes + cf->kids_cap * sizeof *cf->kids;
}
