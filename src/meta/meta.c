/*
 * meta.c — see meta.h.
 */
#include "meta/meta.h"

#include "persist/format.h"

#include <math.h>

/* ============================================================================================ */
/* The public object                                                                            */
/* ============================================================================================ */

int iqdb__key_check(const char *key, size_t *len) {
    size_t n = 0;
    while (n <= IQDB_MAX_KEY_LEN && key[n]) n++;
    if (n == 0) return iqdb__fail(NULL, IQDB_INVALID, "metadata key is empty");
    if (n > IQDB_MAX_KEY_LEN)
        return iqdb__fail(NULL, IQDB_INVALID, "metadata key is longer than %u bytes",
                          IQDB_MAX_KEY_LEN);
    *len = n;
    return IQDB_OK;
}

int iqdb__value_check(const iqdb_value *v) {
    switch (v->type) {
    case IQDB_TYPE_NULL:
    case IQDB_TYPE_BOOL:
    case IQDB_TYPE_INT: return IQDB_OK;
    case IQDB_TYPE_DOUBLE:
        if (isnan(v->u.d)) return iqdb__fail(NULL, IQDB_INVALID, "metadata double is NaN");
        return IQDB_OK;
    case IQDB_TYPE_STRING:
        if (v->u.s.len > IQDB_MAX_STRING_LEN)
            return iqdb__fail(NULL, IQDB_INVALID, "metadata string is longer than %u bytes",
                              IQDB_MAX_STRING_LEN);
        if (!v->u.s.ptr && v->u.s.len)
            return iqdb__fail(NULL, IQDB_INVALID, "metadata string has a NULL pointer");
        return IQDB_OK;
    }
    return iqdb__fail(NULL, IQDB_INVALID, "unknown metadata value type %d", (int)v->type);
}

static int key_cmp(const char *a, size_t al, const char *b, size_t bl) {
    int c = memcmp(a, b, al < bl ? al : bl);
    if (c) return c;
    return al < bl ? -1 : al > bl;
}

/* Index of the first entry >= key. */
static size_t lower_bound(const iqdb_meta *m, const char *key, size_t len) {
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (key_cmp(m->e[mid].key, m->e[mid].key_len, key, len) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const iqdb__meta_entry *iqdb__meta_find(const iqdb_meta *m, const char *key, size_t len) {
    size_t i = lower_bound(m, key, len);
    if (i < m->n && key_cmp(m->e[i].key, m->e[i].key_len, key, len) == 0) return &m->e[i];
    return NULL;
}

/* A new empty object whose allocations (its own header included) are counted on its own
 * counter, whoever created it. */
static iqdb_meta *meta_new(const iqdb_allocator *a) {
    iqdb__mem mem;
    iqdb__mem_init(&mem, a);
    iqdb_meta *m = iqdb__alloc(&mem, sizeof *m);
    if (!m) return NULL;
    iqdb__mem_init(&m->mem, &mem.a);
    atomic_store_explicit(&m->mem.live, sizeof *m, memory_order_relaxed);
    m->e = NULL;
    m->n = m->cap = 0;
    return m;
}

int iqdb_meta_create(const iqdb_allocator *alloc, iqdb_meta **out) {
    if (!out) return iqdb__fail(NULL, IQDB_MISUSE, "iqdb_meta_create: out is NULL");
    *out = NULL;
    IQDB_TRY(iqdb__mem_check(alloc));
    iqdb_meta *m = meta_new(alloc);
    if (!m) return iqdb__nomem(NULL);
    *out = m;
    return IQDB_OK;
}

void iqdb__value_free(iqdb__mem *mem, iqdb_value *v) {
    if (v->type == IQDB_TYPE_STRING) iqdb__free(mem, (void *)v->u.s.ptr, v->u.s.len + 1);
}

void iqdb_meta_destroy(iqdb_meta *m) {
    if (!m) return;
    for (size_t i = 0; i < m->n; i++) {
        iqdb__free(&m->mem, m->e[i].key, m->e[i].key_len + 1);
        iqdb__value_free(&m->mem, &m->e[i].v);
    }
    iqdb__free(&m->mem, m->e, m->cap * sizeof *m->e);
    iqdb__mem mem;
    iqdb__mem_init(&mem, &m->mem.a);
    iqdb__free(&mem, m, sizeof *m);
}

int iqdb__value_copy(iqdb__mem *mem, const iqdb_value *v, iqdb_value *out) {
    *out = *v;
    if (v->type == IQDB_TYPE_BOOL) out->u.b = v->u.b != 0;
    if (v->type == IQDB_TYPE_STRING) {
        char *s = iqdb__strndup(mem, v->u.s.ptr ? v->u.s.ptr : "", v->u.s.len);
        if (!s) return IQDB_NOMEM;
        out->u.s.ptr = s;
    }
    return IQDB_OK;
}

int iqdb_meta_set(iqdb_meta *m, const char *key, iqdb_value v) {
    if (!m || !key) return iqdb__fail(NULL, IQDB_MISUSE, "iqdb_meta_set: NULL argument");
    size_t len = 0;
    IQDB_TRY(iqdb__key_check(key, &len));
    IQDB_TRY(iqdb__value_check(&v));
    size_t i = lower_bound(m, key, len);
    int exists = i < m->n && key_cmp(m->e[i].key, m->e[i].key_len, key, len) == 0;
    if (!exists && m->n >= IQDB_MAX_META_ENTRIES)
        return iqdb__fail(NULL, IQDB_INVALID, "metadata already holds %u keys",
                          IQDB_MAX_META_ENTRIES);
    iqdb_value copy;
    if (iqdb__value_copy(&m->mem, &v, &copy)) return iqdb__nomem(NULL);
    if (exists) {
        iqdb__value_free(&m->mem, &m->e[i].v);
        m->e[i].v = copy;
        return IQDB_OK;
    }
    char *k = iqdb__strndup(&m->mem, key, len);
    if (!k) goto nomem;
    void *p = m->e;
    if (iqdb__grow(&m->mem, &p, &m->cap, m->n + 1, sizeof *m->e)) {
        iqdb__free(&m->mem, k, len + 1);
        goto nomem;
    }
    m->e = p;
    memmove(&m->e[i + 1], &m->e[i], (m->n - i) * sizeof *m->e);
    m->e[i].key = k;
    m->e[i].key_len = len;
    m->e[i].v = copy;
    m->n++;
    return IQDB_OK;
nomem:
    iqdb__value_free(&m->mem, &copy);
    return iqdb__nomem(NULL);
}

int iqdb_meta_set_null(iqdb_meta *m, const char *key) { return iqdb_meta_set(m, key, iqdb_null()); }
int iqdb_meta_set_bool(iqdb_meta *m, const char *key, int b) {
    return iqdb_meta_set(m, key, iqdb_bool(b));
}
int iqdb_meta_set_int(iqdb_meta *m, const char *key, int64_t i) {
    return iqdb_meta_set(m, key, iqdb_int(i));
}
int iqdb_meta_set_double(iqdb_meta *m, const char *key, double d) {
    return iqdb_meta_set(m, key, iqdb_double(d));
}
int iqdb_meta_set_string(iqdb_meta *m, const char *key, const char *s) {
    if (!s) return iqdb__fail(NULL, IQDB_MISUSE, "iqdb_meta_set_string: string is NULL");
    return iqdb_meta_set(m, key, iqdb_str(s));
}

int iqdb_meta_remove(iqdb_meta *m, const char *key, int *existed) {
    if (existed) *existed = 0;
    if (!m || !key) return iqdb__fail(NULL, IQDB_MISUSE, "iqdb_meta_remove: NULL argument");
    size_t len = strlen(key);
    size_t i = lower_bound(m, key, len);
    if (i < m->n && key_cmp(m->e[i].key, m->e[i].key_len, key, len) == 0) {
        iqdb__free(&m->mem, m->e[i].key, m->e[i].key_len + 1);
        iqdb__value_free(&m->mem, &m->e[i].v);
        memmove(&m->e[i], &m->e[i + 1], (m->n - i - 1) * sizeof *m->e);
        m->n--;
        if (existed) *existed = 1;
    }
    return IQDB_OK;
}

size_t iqdb_meta_count(const iqdb_meta *m) { return m ? m->n : 0; }

int iqdb_meta_at(const iqdb_meta *m, size_t i, const char **key, iqdb_value *v) {
    if (key) *key = NULL;
    if (v) *v = iqdb_null();
    if (!m || !key || !v) return iqdb__fail(NULL, IQDB_MISUSE, "iqdb_meta_at: NULL argument");
    if (i >= m->n)
        return iqdb__fail(NULL, IQDB_NOTFOUND, "entry %zu of %zu does not exist", i, m->n);
    *key = m->e[i].key;
    *v = m->e[i].v;
    return IQDB_OK;
}

int iqdb_meta_get(const iqdb_meta *m, const char *key, iqdb_value *v) {
    if (v) *v = iqdb_null();
    if (!m || !key || !v) return iqdb__fail(NULL, IQDB_MISUSE, "iqdb_meta_get: NULL argument");
    const iqdb__meta_entry *e = iqdb__meta_find(m, key, strlen(key));
    if (!e) return iqdb__fail(NULL, IQDB_NOTFOUND, "metadata key '%s' is absent", key);
    *v = e->v;
    return IQDB_OK;
}

static int get_typed(const iqdb_meta *m, const char *key, iqdb_type want, iqdb_value *v) {
    IQDB_TRY(iqdb_meta_get(m, key, v));
    if (v->type == want || (want == IQDB_TYPE_DOUBLE && v->type == IQDB_TYPE_INT)) return IQDB_OK;
    return iqdb__fail(NULL, IQDB_MISMATCH, "metadata key '%s' holds another type", key);
}

int iqdb_meta_get_bool(const iqdb_meta *m, const char *key, int *b) {
    iqdb_value v;
    if (b) *b = 0;
    if (!b) return iqdb__fail(NULL, IQDB_MISUSE, "iqdb_meta_get_bool: NULL argument");
    IQDB_TRY(get_typed(m, key, IQDB_TYPE_BOOL, &v));
    *b = v.u.b;
    return IQDB_OK;
}
int iqdb_meta_get_int(const iqdb_meta *m, const char *key, int64_t *i) {
    iqdb_value v;
    if (i) *i = 0;
    if (!i) return iqdb__fail(NULL, IQDB_MISUSE, "iqdb_meta_get_int: NULL argument");
    IQDB_TRY(get_typed(m, key, IQDB_TYPE_INT, &v));
    *i = v.u.i;
    return IQDB_OK;
}
int iqdb_meta_get_double(const iqdb_meta *m, const char *key, double *d) {
    iqdb_value v;
    if (d) *d = 0;
    if (!d) return iqdb__fail(NULL, IQDB_MISUSE, "iqdb_meta_get_double: NULL argument");
    IQDB_TRY(get_typed(m, key, IQDB_TYPE_DOUBLE, &v));
    *d = v.type == IQDB_TYPE_INT ? (double)v.u.i : v.u.d;
    return IQDB_OK;
}
int iqdb_meta_get_string(const iqdb_meta *m, const char *key, const char **s, size_t *len) {
    iqdb_value v;
    if (s) *s = NULL;
    if (len) *len = 0;
    if (!s) return iqdb__fail(NULL, IQDB_MISUSE, "iqdb_meta_get_string: NULL argument");
    IQDB_TRY(get_typed(m, key, IQDB_TYPE_STRING, &v));
    *s = v.u.s.ptr;
    if (len) *len = v.u.s.len;
    return IQDB_OK;
}

/* ============================================================================================ */
/* Key dictionary                                                                               */
/* ============================================================================================ */

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, then a final mix */
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
    return iqdb__mix64(h);
}

void iqdb__keydict_init(iqdb__keydict *d, iqdb__mem *mem) {
    memset(d, 0, sizeof *d);
    d->mem = mem;
}

void iqdb__keydict_destroy(iqdb__keydict *d) {
    for (size_t i = 0; i < d->n; i++) iqdb__free(d->mem, d->names[i], (size_t)d->lens[i] + 1);
    iqdb__free(d->mem, d->names, d->cap * sizeof *d->names);
    iqdb__free(d->mem, d->lens, d->cap * sizeof *d->lens);
    iqdb__free(d->mem, d->table, d->table_cap * sizeof *d->table);
    memset(d, 0, sizeof *d);
}

uint32_t iqdb__keydict_find(const iqdb__keydict *d, const char *key, size_t len) {
    if (!d->table_cap) return IQDB__NO_KEY;
    size_t mask = d->table_cap - 1, i = (size_t)hash_bytes(key, len) & mask;
    for (;;) {
        uint32_t id = d->table[i];
        if (id == IQDB__NO_KEY) return IQDB__NO_KEY;
        if (d->lens[id] == len && memcmp(d->names[id], key, len) == 0) return id;
        i = (i + 1) & mask;
    }
}

static void table_put(uint32_t *t, size_t mask, const iqdb__keydict *d, uint32_t id) {
    size_t i = (size_t)hash_bytes(d->names[id], d->lens[id]) & mask;
    while (t[i] != IQDB__NO_KEY) i = (i + 1) & mask;
    t[i] = id;
}

int iqdb__keydict_intern(iqdb__keydict *d, const char *key, size_t len, uint32_t *id) {
    uint32_t f = iqdb__keydict_find(d, key, len);
    if (f != IQDB__NO_KEY) {
        *id = f;
        return IQDB_OK;
    }
    if (d->n >= (size_t)UINT32_MAX - 1) return IQDB_FULL;
    /* Make room everywhere first, then commit. */
    if (d->n + 1 > d->cap) {
        size_t ncap = d->cap ? d->cap * 2 : 16;
        char **nn = iqdb__alloc(d->mem, ncap * sizeof *nn);
        uint32_t *nl = iqdb__alloc(d->mem, ncap * sizeof *nl);
        if (!nn || !nl) {
            iqdb__free(d->mem, nn, ncap * sizeof *nn);
            iqdb__free(d->mem, nl, ncap * sizeof *nl);
            return IQDB_NOMEM;
        }
        if (d->n) {
            memcpy(nn, d->names, d->n * sizeof *nn);
            memcpy(nl, d->lens, d->n * sizeof *nl);
        }
        iqdb__free(d->mem, d->names, d->cap * sizeof *d->names);
        iqdb__free(d->mem, d->lens, d->cap * sizeof *d->lens);
        d->names = nn;
        d->lens = nl;
        d->cap = ncap;
    }
    if ((d->n + 1) * 2 > d->table_cap) {
        size_t ncap = d->table_cap ? d->table_cap * 2 : 32;
        uint32_t *t = iqdb__alloc(d->mem, ncap * sizeof *t);
        if (!t) return IQDB_NOMEM;
        for (size_t i = 0; i < ncap; i++) t[i] = IQDB__NO_KEY;
        for (uint32_t i = 0; i < d->n; i++) table_put(t, ncap - 1, d, i);
        iqdb__free(d->mem, d->table, d->table_cap * sizeof *d->table);
        d->table = t;
        d->table_cap = ncap;
    }
    char *name = iqdb__strndup(d->mem, key, len);
    if (!name) return IQDB_NOMEM;
    uint32_t nid = (uint32_t)d->n;
    d->names[nid] = name;
    d->lens[nid] = (uint32_t)len;
    d->n++;
    d->name_bytes += len + 1;
    table_put(d->table, d->table_cap - 1, d, nid);
    *id = nid;
    return IQDB_OK;
}

size_t iqdb__keydict_mem(const iqdb__keydict *d) {
    return d->cap * (sizeof *d->names + sizeof *d->lens) + d->table_cap * sizeof *d->table +
           d->name_bytes;
}

int iqdb__keydict_add_new(iqdb__keydict *d, const char *key, size_t len) {
    if (len == 0 || len > IQDB_MAX_KEY_LEN || memchr(key, 0, len)) return IQDB_CORRUPT;
    size_t before = d->n;
    uint32_t id;
    IQDB_TRY(iqdb__keydict_intern(d, key, len, &id));
    return id == before && d->n == before + 1 ? IQDB_OK : IQDB_CORRUPT;
}

int iqdb__keydict_serialize(const iqdb__keydict *d, iqdb__sink *sink) {
    uint8_t b[4];
    iqdb__put32(b, (uint32_t)d->n);
    IQDB_TRY(sink->write(sink->ctx, b, 4));
    for (size_t i = 0; i < d->n; i++) {
        iqdb__put32(b, d->lens[i]);
        IQDB_TRY(sink->write(sink->ctx, b, 4));
        IQDB_TRY(sink->write(sink->ctx, d->names[i], d->lens[i]));
    }
    return IQDB_OK;
}

int iqdb__keydict_load(iqdb__keydict *d, iqdb__source *src) {
    uint8_t b[4];
    char key[IQDB_MAX_KEY_LEN];
    IQDB_TRY(src->read(src->ctx, b, 4));
    uint32_t n = iqdb__get32(b);
    if (n > UINT32_MAX - 2 || d->n) return IQDB_CORRUPT;
    for (uint32_t i = 0; i < n; i++) {
        IQDB_TRY(src->read(src->ctx, b, 4));
        uint32_t len = iqdb__get32(b);
        if (len == 0 || len > IQDB_MAX_KEY_LEN) return IQDB_CORRUPT;
        IQDB_TRY(src->read(src->ctx, key, len));
        IQDB_TRY(iqdb__keydict_add_new(d, key, len));
    }
    return IQDB_OK;
}

/* ============================================================================================ */
/* Blobs                                                                                        */
/* ============================================================================================ */

static size_t varint_len(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}
static uint8_t *varint_put(uint8_t *p, uint64_t v) {
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}
/* Reads a varint from [*p, end); 0 on success, -1 when truncated or longer than 10 bytes. */
static int varint_get(const uint8_t **p, const uint8_t *end, uint64_t *out) {
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 70; shift += 7) {
        if (*p >= end) return -1;
        uint8_t b = *(*p)++;
        if (shift == 63 && b > 1) return -1;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}
static uint64_t zigzag(int64_t i) { return ((uint64_t)i << 1) ^ (uint64_t)(i >> 63); }
static int64_t unzigzag(uint64_t u) { return (int64_t)(u >> 1) ^ -(int64_t)(u & 1); }

static uint8_t tag_of(const iqdb_value *v) {
    switch (v->type) {
    case IQDB_TYPE_NULL: return IQDB__TAG_NULL;
    case IQDB_TYPE_BOOL: return v->u.b ? IQDB__TAG_TRUE : IQDB__TAG_FALSE;
    case IQDB_TYPE_INT: return IQDB__TAG_INT;
    case IQDB_TYPE_DOUBLE: return IQDB__TAG_DOUBLE;
    case IQDB_TYPE_STRING: return IQDB__TAG_STRING;
    }
    return IQDB__TAG_NULL;
}

static size_t payload_len(const iqdb_value *v) {
    switch (v->type) {
    case IQDB_TYPE_INT: return varint_len(zigzag(v->u.i));
    case IQDB_TYPE_DOUBLE: return 8;
    case IQDB_TYPE_STRING: return varint_len(v->u.s.len) + v->u.s.len;
    case IQDB_TYPE_NULL:
    case IQDB_TYPE_BOOL: return 0;
    }
    return 0;
}

typedef struct key_order {
    uint32_t id;
    uint32_t idx;
} key_order;

int iqdb__meta_encode(const iqdb_meta *m, iqdb__keydict *d, iqdb__mem *mem, uint8_t **blob,
                      uint32_t *len) {
    *blob = NULL;
    *len = 0;
    if (!m || m->n == 0) return IQDB_OK;
    key_order ord[IQDB_MAX_META_ENTRIES];
    for (size_t i = 0; i < m->n; i++) {
        IQDB_TRY(iqdb__keydict_intern(d, m->e[i].key, m->e[i].key_len, &ord[i].id));
        ord[i].idx = (uint32_t)i;
    }
    /* insertion sort by id: n <= 1024 and usually a handful */
    for (size_t i = 1; i < m->n; i++) {
        key_order t = ord[i];
        size_t j = i;
        while (j > 0 && ord[j - 1].id > t.id) {
            ord[j] = ord[j - 1];
            j--;
        }
        ord[j] = t;
    }
    size_t total = varint_len(m->n);
    uint32_t prev = 0;
    for (size_t i = 0; i < m->n; i++) {
        const iqdb_value *v = &m->e[ord[i].idx].v;
        total += varint_len(i ? ord[i].id - prev : ord[i].id) + 1 + payload_len(v);
        prev = ord[i].id;
    }
    if (total > UINT32_MAX) return IQDB_INVALID;
    uint8_t *b = iqdb__alloc(mem, total);
    if (!b) return IQDB_NOMEM;
    uint8_t *p = varint_put(b, m->n);
    prev = 0;
    for (size_t i = 0; i < m->n; i++) {
        const iqdb_value *v = &m->e[ord[i].idx].v;
        p = varint_put(p, i ? ord[i].id - prev : ord[i].id);
        prev = ord[i].id;
        *p++ = tag_of(v);
        switch (v->type) {
        case IQDB_TYPE_INT: p = varint_put(p, zigzag(v->u.i)); break;
        case IQDB_TYPE_DOUBLE: {
            uint64_t u;
            memcpy(&u, &v->u.d, 8);
            for (int k = 0; k < 8; k++) *p++ = (uint8_t)(u >> (8 * k));
            break;
        }
        case IQDB_TYPE_STRING:
            p = varint_put(p, v->u.s.len);
            if (v->u.s.len) memcpy(p, v->u.s.ptr, v->u.s.len);
            p += v->u.s.len;
            break;
        case IQDB_TYPE_NULL:
        case IQDB_TYPE_BOOL: break;
        }
    }
    IQDB_ASSERT((size_t)(p - b) == total);
    *blob = b;
    *len = (uint32_t)total;
    return IQDB_OK;
}

/* Reads one entry's value at *p (after its key and tag were read). Returns 0 or -1. */
static int read_value(const uint8_t **p, const uint8_t *end, uint8_t tag, iqdb_value *v) {
    uint64_t u;
    switch (tag) {
    case IQDB__TAG_NULL: *v = iqdb_null(); return 0;
    case IQDB__TAG_FALSE: *v = iqdb_bool(0); return 0;
    case IQDB__TAG_TRUE: *v = iqdb_bool(1); return 0;
    case IQDB__TAG_INT:
        if (varint_get(p, end, &u)) return -1;
        *v = iqdb_int(unzigzag(u));
        return 0;
    case IQDB__TAG_DOUBLE: {
        if (end - *p < 8) return -1;
        u = 0;
        for (int k = 0; k < 8; k++) u |= (uint64_t)(*p)[k] << (8 * k);
        *p += 8;
        double dv;
        memcpy(&dv, &u, 8);
        if (isnan(dv)) return -1;
        *v = iqdb_double(dv);
        return 0;
    }
    case IQDB__TAG_STRING:
        if (varint_get(p, end, &u)) return -1;
        if (u > IQDB_MAX_STRING_LEN || u > (uint64_t)(end - *p)) return -1;
        *v = iqdb_strn((const char *)*p, (size_t)u);
        *p += u;
        return 0;
    default: return -1;
    }
}

int iqdb__meta_blob_check(const uint8_t *blob, uint32_t len, size_t n_keys) {
    if (!blob) return len == 0 ? IQDB_OK : IQDB_CORRUPT;
    const uint8_t *p = blob, *end = blob + len;
    uint64_t n, key = 0;
    if (varint_get(&p, end, &n) || n == 0 || n > IQDB_MAX_META_ENTRIES) return IQDB_CORRUPT;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t delta;
        if (varint_get(&p, end, &delta)) return IQDB_CORRUPT;
        if (i && delta == 0) return IQDB_CORRUPT;
        if (delta >= n_keys || key + delta >= n_keys) return IQDB_CORRUPT;
        key += delta;
        if (p >= end) return IQDB_CORRUPT;
        uint8_t tag = *p++;
        iqdb_value v;
        if (read_value(&p, end, tag, &v)) return IQDB_CORRUPT;
    }
    return p == end ? IQDB_OK : IQDB_CORRUPT;
}

int iqdb__blob_find(const uint8_t *blob, uint32_t len, uint32_t key, iqdb_value *v) {
    if (!blob) return 0;
    const uint8_t *p = blob, *end = blob + len;
    uint64_t n, k = 0;
    if (varint_get(&p, end, &n)) return 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t delta;
        if (varint_get(&p, end, &delta)) return 0;
        k += delta;
        if (k > key) return 0; /* sorted: passed it */
        uint8_t tag = *p++;
        if (read_value(&p, end, tag, v)) return 0;
        if (k == key) return 1;
    }
    return 0;
}

int iqdb__meta_decode(const uint8_t *blob, uint32_t len, const iqdb__keydict *d, iqdb__mem *mem,
                      iqdb_meta **out) {
    *out = NULL;
    if (iqdb__meta_blob_check(blob, len, d->n)) return IQDB_CORRUPT;
    iqdb_meta *m = meta_new(&mem->a);
    if (!m) return IQDB_NOMEM;
    /* the blob passed the check above: these reads cannot fail */
    const uint8_t *p = blob, *end = blob + len;
    uint64_t n = 0, key = 0;
    varint_get(&p, end, &n);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t delta = 0;
        varint_get(&p, end, &delta);
        key += delta;
        uint8_t tag = *p++;
        iqdb_value v;
        read_value(&p, end, tag, &v);
        if (iqdb_meta_set(m, d->names[key], v)) {
            iqdb_meta_destroy(m);
            return IQDB_NOMEM;
        }
    }
    *out = m;
    return IQDB_OK;
}
