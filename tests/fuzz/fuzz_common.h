/*
 * fuzz_common.h — what the libFuzzer targets (and the seed generator) share: the in-memory
 * file system they open "files" from (tests/common/simfs, behind the I/O seam, so nothing
 * touches the disk and every run is deterministic), the base database the WAL target replays
 * onto, and the oracles: a reader that takes every record out of a handle (ids and byte keys
 * from an exact search for all of them, vectors and metadata from iqdb_get / iqdb_get_key) and
 * a comparison of two such states.
 *
 * Oracle failures abort() with a message, so libFuzzer saves the input as a crash. A failed
 * open is fine when its code is one a hostile file may cause (IQDB_FORMAT, IQDB_CORRUPT_*,
 * IQDB_UNSUPPORTED, IQDB_MISMATCH); any other code is a finding.
 *
 * Fuzzing builds compile the library with IQDB_FUZZ_NO_CRC (CMake option of the same name), so
 * a mutated file is not stopped by its checksums and reaches the parsers behind them.
 */
#ifndef IQDBF_FUZZ_COMMON_H
#define IQDBF_FUZZ_COMMON_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#define IQDB_ALLOW_LIBC_ALLOC /* harness code may use libc next to the internal headers */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/simfs.h"
#include "iqdb.h"
#include "persist/format.h"

#define FZ_PATH "/fuzz/db"
#define FZ_WAL FZ_PATH ".wal"

#define FZ_CHECK(cond)                                                                         \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "fuzz oracle failed: %s (%s:%d): %s\n", #cond, __FILE__, __LINE__, \
                    iqdb_errmsg(NULL));                                                        \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

/* A code a hostile file may legitimately produce. */
static inline void fz_clean_failure(int rc) {
    int p = IQDB_PRIMARY(rc);
    if (p == IQDB_FORMAT || p == IQDB_CORRUPT || p == IQDB_UNSUPPORTED || p == IQDB_MISMATCH)
        return;
    fprintf(stderr, "fuzz: unclean failure %d (%s): %s\n", rc, iqdb_errstr(rc), iqdb_errmsg(NULL));
    abort();
}

/* ---- reading a whole database -------------------------------------------------------------- */

typedef struct fz_rec {
    uint64_t id;  /* a u64 id; 0 for a keyed record */
    uint8_t *key; /* a keyed record's key (NULL: named by id) */
    size_t key_len;
    float *vec;
    uint8_t *meta; /* the entries flattened: key, 0, type, value bytes */
    size_t meta_len;
} fz_rec;

typedef struct fz_state {
    uint32_t dim;
    size_t n;
    fz_rec *r;
} fz_state;

static inline void fz_append(uint8_t **b, size_t *len, const void *p, size_t n) {
    uint8_t *nb = realloc(*b, *len + n + 1);
    if (!nb) abort();
    if (n) memcpy(nb + *len, p, n);
    *b = nb;
    *len += n;
}

static inline void fz_flatten(const iqdb_meta *m, fz_rec *r) {
    r->meta = NULL;
    r->meta_len = 0;
    for (size_t i = 0; m && i < iqdb_meta_count(m); i++) {
        const char *k;
        iqdb_value v;
        FZ_CHECK(iqdb_meta_at(m, i, &k, &v) == IQDB_OK);
        fz_append(&r->meta, &r->meta_len, k, strlen(k) + 1);
        uint8_t t = (uint8_t)v.type;
        fz_append(&r->meta, &r->meta_len, &t, 1);
        switch (v.type) {
        case IQDB_TYPE_NULL: break;
        case IQDB_TYPE_BOOL: fz_append(&r->meta, &r->meta_len, &v.u.b, sizeof v.u.b); break;
        case IQDB_TYPE_INT: fz_append(&r->meta, &r->meta_len, &v.u.i, sizeof v.u.i); break;
        case IQDB_TYPE_DOUBLE: fz_append(&r->meta, &r->meta_len, &v.u.d, sizeof v.u.d); break;
        case IQDB_TYPE_STRING:
            fz_append(&r->meta, &r->meta_len, &v.u.s.len, sizeof v.u.s.len);
            fz_append(&r->meta, &r->meta_len, v.u.s.ptr, v.u.s.len);
            break;
        }
    }
}

/* u64 ids first, by id; then keyed records by key bytes (shorter first on a common prefix). */
static int fz_by_id(const void *a, const void *b) {
    const fz_rec *p = a, *q = b;
    if (!p->key != !q->key) return p->key ? 1 : -1;
    if (!p->key) return p->id < q->id ? -1 : p->id > q->id;
    size_t n = p->key_len < q->key_len ? p->key_len : q->key_len;
    int c = memcmp(p->key, q->key, n);
    return c ? c : (p->key_len > q->key_len) - (p->key_len < q->key_len);
}

/* Takes every record out of `db`. The search must return each record exactly once. */
static inline void fz_read(iqdb *db, fz_state *s) {
    iqdb_stats st = {.struct_size = sizeof st};
    FZ_CHECK(iqdb_stats_get(db, &st) == IQDB_OK);
    memset(s, 0, sizeof *s);
    s->dim = st.dim;
    float *q = calloc(st.dim, sizeof *q);
    iqdb_hit *hits = calloc(st.count + 1, sizeof *hits);
    if (!q || !hits) abort();
    size_t n = 0;
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    p.exact = 1;
    FZ_CHECK(iqdb_search(db, q, (size_t)st.count, &p, hits, &n, NULL) == IQDB_OK);
    FZ_CHECK(n == st.count);
    s->n = n;
    s->r = calloc(n + 1, sizeof *s->r);
    if (!s->r) abort();
    for (size_t i = 0; i < n; i++) {
        fz_rec *r = &s->r[i];
        r->vec = malloc(st.dim * sizeof(float));
        if (!r->vec) abort();
        iqdb_meta *m = NULL;
        if (iqdb_hit_has_key(&hits[i])) { /* a keyed record: its key, then get by key */
            uint8_t kb[IQDB_MAX_ID_KEY_LEN];
            FZ_CHECK(iqdb_hit_key(db, &hits[i], kb, sizeof kb, &r->key_len) == IQDB_OK);
            r->key = malloc(r->key_len);
            if (!r->key) abort();
            memcpy(r->key, kb, r->key_len);
            FZ_CHECK(iqdb_get_key(db, r->key, r->key_len, r->vec, &m) == IQDB_OK);
        } else {
            r->id = hits[i].id;
            FZ_CHECK(iqdb_get(db, r->id, r->vec, &m) == IQDB_OK);
        }
        fz_flatten(m, r);
        iqdb_meta_destroy(m);
    }
    qsort(s->r, n, sizeof *s->r, fz_by_id);
    for (size_t i = 1; i < n; i++) FZ_CHECK(fz_by_id(&s->r[i - 1], &s->r[i]) != 0);
    free(q);
    free(hits);
}

static inline int fz_equal(const fz_state *a, const fz_state *b) {
    if (a->dim != b->dim || a->n != b->n) return 0;
    for (size_t i = 0; i < a->n; i++) {
        const fz_rec *x = &a->r[i], *y = &b->r[i];
        if (fz_by_id(x, y) != 0 || x->meta_len != y->meta_len ||
            memcmp(x->vec, y->vec, a->dim * sizeof(float)) ||
            (x->meta_len && memcmp(x->meta, y->meta, x->meta_len)))
            return 0;
    }
    return 1;
}

static inline void fz_free(fz_state *s) {
    for (size_t i = 0; i < s->n; i++) {
        free(s->r[i].vec);
        free(s->r[i].meta);
        free(s->r[i].key);
    }
    free(s->r);
    memset(s, 0, sizeof *s);
}

/* An id the state does not hold (the smallest one). */
static inline uint64_t fz_unused_id(const fz_state *s) {
    uint64_t id = 0;
    for (size_t i = 0; i < s->n && !s->r[i].key && s->r[i].id == id; i++) id++;
    return id;
}

/* Makes the next checkpoint write a new snapshot without changing the logical state: upsert a
 * record under an unused id and delete it again. */
static inline void fz_touch(iqdb *db, const fz_state *s) {
    float *v = calloc(s->dim, sizeof *v);
    if (!v) abort();
    uint64_t id = fz_unused_id(s);
    int existed = 0;
    FZ_CHECK(iqdb_upsert(db, id, v, NULL) == IQDB_OK);
    FZ_CHECK(iqdb_delete(db, id, &existed) == IQDB_OK && existed);
    free(v);
}

/* Closes `db` (which checkpoints whatever it changed), reopens FZ_PATH with `o` through the
 * current I/O seam, and requires the same records as `a` and a passing iqdb_check. */
static inline void fz_close_reopen_equal(iqdb *db, const iqdb_options *o, const fz_state *a) {
    FZ_CHECK(iqdb_close(db) == IQDB_OK);
    FZ_CHECK(iqdb_open(FZ_PATH, o, &db) == IQDB_OK);
    fz_state b;
    fz_read(db, &b);
    FZ_CHECK(fz_equal(a, &b));
    FZ_CHECK(iqdb_check(db) == IQDB_OK);
    FZ_CHECK(iqdb_close(db) == IQDB_OK);
    fz_free(&b);
}

/* ---- the base database of the WAL target ---------------------------------------------------- */

enum { FZ_BASE_DIM = 4 };

static inline void fz_options(iqdb_options *o, uint32_t dim, iqdb_metric metric) {
    iqdb_options_init(o, dim, metric);
    o->threads = 1;
    o->checkpoint_bytes = UINT64_MAX; /* checkpoints only when the harness asks */
}

static inline iqdb_meta *fz_meta(int i) {
    iqdb_meta *m;
    FZ_CHECK(iqdb_meta_create(NULL, &m) == IQDB_OK);
    iqdb_meta_set_string(m, "kind", i % 2 ? "doc" : "img");
    iqdb_meta_set_int(m, "year", 2000 + i);
    return m;
}

/* The snapshot every WAL seed extends: generation 2 (one checkpoint), LSN 3, dim 4, L2, keys
 * "kind" and "year", records 1..3. Also the WAL as it was just before that checkpoint
 * (generation 1, records 1..3): the "checkpoint crashed before the WAL reset" case. Both
 * deterministic; the caller frees them. */
static inline void fz_build_base(uint8_t **snap, size_t *snap_len, uint8_t **prev_wal,
                                 size_t *prev_len) {
    simfs *fs = simfs_new();
    iqdb__io_set_default(simfs_io(fs));
    iqdb_options o;
    fz_options(&o, FZ_BASE_DIM, IQDB_METRIC_L2);
    iqdb *db;
    FZ_CHECK(iqdb_open(FZ_PATH, &o, &db) == IQDB_OK);
    for (int i = 1; i <= 3; i++) {
        float v[FZ_BASE_DIM] = {(float)i, 0.5f, -1.0f, 2.0f * (float)i};
        iqdb_meta *m = fz_meta(i);
        FZ_CHECK(iqdb_upsert(db, (uint64_t)i, v, m) == IQDB_OK);
        iqdb_meta_destroy(m);
    }
    simfs *before = simfs_clone(fs);
    FZ_CHECK(simfs_get(before, FZ_WAL, prev_wal, prev_len));
    simfs_free(before);
    FZ_CHECK(iqdb_checkpoint(db) == IQDB_OK);
    FZ_CHECK(simfs_get(fs, FZ_PATH, snap, snap_len));
    FZ_CHECK(iqdb_close(db) == IQDB_OK);
    iqdb__io_set_default(NULL);
    simfs_free(fs);
}

#endif
