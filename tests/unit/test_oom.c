/*
 * test_oom.c — the out-of-memory loop (SQLite's and libuv's pattern).
 *
 * Every loop runs on a flat database and again on an HNSW one (insert, batch — also one large
 * enough for the parallel build —, replace, delete with repair, search, optimize, check); for
 * HNSW the state compared also holds the answers of searches with a small ef, so a failed call
 * must leave the graph itself unchanged, not only the records.
 *
 * For every public call: build a fresh database, record its full state, make allocation N fail
 * (once — transient — or from N on — persistent), run the call, and check that it either
 * succeeded with the right effect or returned IQDB_NOMEM with the database unchanged (every
 * record's vector and metadata compared), that iqdb_check passes, and that closing leaks
 * nothing. N runs 1, 2, ... until the call completes without meeting the failure.
 *
 * The loop runs on a flat database, and again on IVF databases: untrained, trained (by
 * iqdb_optimize), trained with an SQ8 quantizer, and one a batch pushes over the automatic
 * training threshold (a training that fails for lack of memory is skipped, and the write
 * itself still succeeds or fails as a whole).
 */
#include "../common/testutil.h"

#include <stdlib.h>

enum { DIM = 12, IDS = 64, KEYS = 64 };

static iqdbt_alloc A;
static iqdb_allocator AL;
static iqdb_index_kind KIND = IQDB_INDEX_FLAT; /* the index of every database the loop builds */

/* What fresh_db builds. */
enum {
    MODE_FLAT,
    MODE_IVF_UNTRAINED,
    MODE_IVF_TRAINED,
    MODE_SQ8_TRAINED,
    MODE_IVF_THRESHOLD,
    MODE_CODES_ONLY /* flat SQ8 with IQDB_QUANT_CODES_ONLY, trained: no vectors stored */
};
static int mode = MODE_FLAT;

/* ---- state snapshots ------------------------------------------------------------------------ */

typedef struct snapshot {
    int present[IDS];
    float vec[IDS][DIM];
    char meta[IDS][256];
    int kpresent[KEYS]; /* records named by key_of(i) */
    float kvec[KEYS][DIM];
    char kmeta[KEYS][256];
    uint64_t count;
    iqdb_hit res[8][10]; /* answers at ef 10: they depend on the graph */
    size_t nres[8];
} snapshot;

static void vec_of(float *v, uint64_t id, int version);

/* Byte key i: key 1 is the single byte 0x01 (a different record from the u64 id 1); the others
 * hold a zero byte and a byte that is not UTF-8. */
static size_t key_of(int i, uint8_t *buf) {
    if (i == 1) {
        buf[0] = 1;
        return 1;
    }
    buf[0] = 'k';
    buf[1] = 0;
    buf[2] = (uint8_t)i;
    buf[3] = 0xff;
    return 4;
}

static void meta_text(const iqdb_meta *m, char *out, size_t cap) {
    out[0] = '\0';
    if (!m) {
        snprintf(out, cap, "(none)");
        return;
    }
    size_t used = 0;
    for (size_t i = 0; i < iqdb_meta_count(m); i++) {
        const char *k;
        iqdb_value v;
        iqdb_meta_at(m, i, &k, &v);
        int n = 0;
        switch (v.type) {
        case IQDB_TYPE_NULL: n = snprintf(out + used, cap - used, "%s=null;", k); break;
        case IQDB_TYPE_BOOL: n = snprintf(out + used, cap - used, "%s=%d;", k, v.u.b); break;
        case IQDB_TYPE_INT:
            n = snprintf(out + used, cap - used, "%s=%lld;", k, (long long)v.u.i);
            break;
        case IQDB_TYPE_DOUBLE: n = snprintf(out + used, cap - used, "%s=%g;", k, v.u.d); break;
        case IQDB_TYPE_STRING:
            n = snprintf(out + used, cap - used, "%s='%.*s';", k, (int)v.u.s.len, v.u.s.ptr);
            break;
        }
        if (n > 0) used += (size_t)n;
        if (used >= cap) break;
    }
}

/* with_searches: also the answers of a few searches (not for the read-only loops: those
 * searches would warm the scratch the call under test must allocate). */
static void take_snapshot(iqdb *db, snapshot *s, int with_searches) {
    memset(s, 0, sizeof *s);
    for (iqdb_id id = 0; id < IDS; id++) {
        iqdb_meta *m = NULL;
        int rc = iqdb_get(db, id, s->vec[id], &m);
        assert_true(rc == IQDB_OK || rc == IQDB_NOTFOUND);
        s->present[id] = rc == IQDB_OK;
        if (rc == IQDB_OK) meta_text(m, s->meta[id], sizeof s->meta[id]);
        iqdb_meta_destroy(m);
    }
    for (int i = 0; i < KEYS; i++) {
        uint8_t k[4];
        size_t kl = key_of(i, k);
        iqdb_meta *m = NULL;
        int rc = iqdb_get_key(db, k, kl, s->kvec[i], &m);
        assert_true(rc == IQDB_OK || rc == IQDB_NOTFOUND);
        s->kpresent[i] = rc == IQDB_OK;
        if (rc == IQDB_OK) meta_text(m, s->kmeta[i], sizeof s->kmeta[i]);
        iqdb_meta_destroy(m);
    }
    assert_int_equal(iqdb_count(db, &s->count), IQDB_OK);
    if (!with_searches) return;
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    p.ef = 10;
    for (int i = 0; i < 8; i++) {
        float q[DIM];
        vec_of(q, (uint64_t)i * 11 + 3, 5);
        assert_int_equal(iqdb_search(db, q, 10, &p, s->res[i], &s->nres[i], NULL), IQDB_OK);
    }
}

static void assert_same(const snapshot *a, const snapshot *b, const char *op, long long n) {
    if (a->count != b->count) {
        print_error("%s N=%lld: count %llu -> %llu\n", op, n, (unsigned long long)a->count,
                    (unsigned long long)b->count);
        fail();
    }
    for (int id = 0; id < IDS; id++) {
        if (a->present[id] != b->present[id] ||
            (a->present[id] && (memcmp(a->vec[id], b->vec[id], sizeof a->vec[id]) ||
                                strcmp(a->meta[id], b->meta[id])))) {
            print_error("%s N=%lld: record %d changed by a failed call\n", op, n, id);
            fail();
        }
    }
    for (int i = 0; i < 8; i++)
        if (a->nres[i] != b->nres[i] ||
            memcmp(a->res[i], b->res[i], a->nres[i] * sizeof(iqdb_hit))) {
            print_error("%s N=%lld: search %d answers differently after a failed call\n", op, n, i);
            fail();
        }
    for (int i = 0; i < KEYS; i++) {
        if (a->kpresent[i] != b->kpresent[i] ||
            (a->kpresent[i] && (memcmp(a->kvec[i], b->kvec[i], sizeof a->kvec[i]) ||
                                strcmp(a->kmeta[i], b->kmeta[i])))) {
            print_error("%s N=%lld: keyed record %d changed by a failed call\n", op, n, i);
            fail();
        }
    }
}

/* ---- fixtures ---------------------------------------------------------------------------------
 */

/* Equal vectors; codes only: within half an SQ8 step (the values span -11..11: 22/255/2). */
static void assert_vec(const float *want, const float *got) {
    for (int j = 0; j < DIM; j++)
        if (mode == MODE_CODES_ONLY ? fabsf(want[j] - got[j]) > 0.044f : want[j] != got[j]) {
            print_error("component %d: %g, expected %g\n", j, got[j], want[j]);
            fail();
        }
}

static void vec_of(float *v, uint64_t id, int version) {
    for (int j = 0; j < DIM; j++)
        v[j] = (float)((id * 7 + (uint64_t)j * 3 + (uint64_t)version) % 23) - 11;
}

static iqdb_meta *meta_of(uint64_t id, int version) {
    iqdb_meta *m;
    iqdb_meta_create(NULL, &m);
    iqdb_meta_set_int(m, "id", (int64_t)id);
    iqdb_meta_set_string(m, version ? "fresh_key" : "kind", id % 2 ? "odd" : "even");
    if (id % 3 == 0) iqdb_meta_set_double(m, "third", (double)id / 3);
    return m;
}

static iqdb *fresh_db(iqdb_metric metric) {
    iqdb_options o;
    iqdb_options_init(&o, DIM, metric);
    o.index = KIND;
    o.hnsw.m = 4;
    o.hnsw.ef_construction = 16;
    o.allocator = AL;
    o.threads = 2;
    if (mode != MODE_FLAT && mode != MODE_CODES_ONLY) o.index = IQDB_INDEX_IVF;
    if (mode == MODE_SQ8_TRAINED || mode == MODE_CODES_ONLY) o.quant.kind = IQDB_QUANT_SQ8;
    if (mode == MODE_CODES_ONLY) o.quant.flags = IQDB_QUANT_CODES_ONLY;
    iqdb *db;
    assert_int_equal(iqdb_open(NULL, &o, &db), IQDB_OK);
    float v[DIM];
    for (uint64_t id = 0; id < 40; id++) {
        vec_of(v, id, 0);
        iqdb_meta *m = id % 4 ? meta_of(id, 0) : NULL;
        assert_int_equal(iqdb_upsert(db, id, v, m), IQDB_OK);
        iqdb_meta_destroy(m);
    }
    if (mode == MODE_IVF_TRAINED || mode == MODE_SQ8_TRAINED || mode == MODE_CODES_ONLY)
        assert_int_equal(iqdb_optimize(db), IQDB_OK);
    if (mode == MODE_IVF_THRESHOLD) { /* 1020 rows: 4 short of the automatic training */
        iqdb_id ids[980];
        float *vs = malloc(980 * DIM * sizeof(float));
        for (int i = 0; i < 980; i++) {
            ids[i] = 1000 + (iqdb_id)i;
            vec_of(vs + i * DIM, ids[i], 1);
        }
        assert_int_equal(iqdb_upsert_batch(db, 980, ids, vs, NULL), IQDB_OK);
        free(vs);
        iqdb_stats st = {.struct_size = sizeof st};
        iqdb_stats_get(db, &st);
        assert_int_equal(st.trained, 0);
    }
    for (int i = 0; mode == MODE_FLAT && i < 12; i++) { /* keyed records beside them (flat
                                                           only: they would move the IVF
                                                           training thresholds) */
        uint8_t k[4];
        size_t kl = key_of(i, k);
        vec_of(v, 100 + (uint64_t)i, 0);
        iqdb_meta *m = i % 3 ? meta_of((uint64_t)i, 0) : NULL;
        assert_int_equal(iqdb_upsert_key(db, k, kl, v, m), IQDB_OK);
        iqdb_meta_destroy(m);
    }
    return db;
}

/* ---- operations under test ---------------------------------------------------------------- */

typedef struct op_def {
    const char *name;
    /* runs the call; returns its code. `db` is a fresh database (NULL for open). */
    int (*run)(iqdb **db);
    /* checks the effect after a success */
    void (*verify)(iqdb *db);
    int read_only;
} op_def;

static int op_open(iqdb **db) {
    iqdb_options o;
    iqdb_options_init(&o, DIM, IQDB_METRIC_COSINE);
    o.index = KIND;
    o.allocator = AL;
    o.threads = 3;
    return iqdb_open(NULL, &o, db);
}
static void verify_open(iqdb *db) { assert_non_null(db); }

static int op_upsert_new(iqdb **db) {
    float v[DIM];
    vec_of(v, 50, 1);
    iqdb_meta *m = meta_of(50, 1);
    int rc = iqdb_upsert(*db, 50, v, m);
    iqdb_meta_destroy(m);
    return rc;
}
static void verify_upsert_new(iqdb *db) {
    float v[DIM], w[DIM];
    vec_of(v, 50, 1);
    assert_int_equal(iqdb_get(db, 50, w, NULL), IQDB_OK);
    assert_vec(v, w);
}

static int op_upsert_replace(iqdb **db) {
    float v[DIM];
    vec_of(v, 5, 2);
    iqdb_meta *m = meta_of(5, 1);
    int rc = iqdb_upsert(*db, 5, v, m);
    iqdb_meta_destroy(m);
    return rc;
}
static void verify_upsert_replace(iqdb *db) {
    float v[DIM], w[DIM];
    vec_of(v, 5, 2);
    assert_int_equal(iqdb_get(db, 5, w, NULL), IQDB_OK);
    assert_vec(v, w);
}

static int op_upsert_batch(iqdb **db) {
    iqdb_id ids[10] = {41, 42, 3, 43, 7, 44, 41, 45, 46, 60};
    float v[10 * DIM];
    iqdb_meta *ms[10];
    for (int i = 0; i < 10; i++) {
        vec_of(v + i * DIM, ids[i], 3 + i);
        ms[i] = i % 3 ? meta_of(ids[i], 1) : NULL;
    }
    int rc = iqdb_upsert_batch(*db, 10, ids, v, (const iqdb_meta *const *)ms);
    for (int i = 0; i < 10; i++) iqdb_meta_destroy(ms[i]);
    return rc;
}
static void verify_upsert_batch(iqdb *db) {
    uint64_t n;
    iqdb_count(db, &n);
    assert_int_equal(n, 40 + (mode == MODE_FLAT ? 12 : 0) + 7 +
                            (mode == MODE_IVF_THRESHOLD ? 980 : 0));
    float v[DIM], w[DIM];
    vec_of(v, 41, 3 + 6); /* the later duplicate */
    assert_int_equal(iqdb_get(db, 41, w, NULL), IQDB_OK);
    assert_vec(v, w);
}

/* A batch of 300 (new ids and replacements): the HNSW parallel build. */
static int op_upsert_batch_big(iqdb **db) {
    enum { NB = 300 };
    iqdb_id *ids = malloc(NB * sizeof *ids);
    float *v = malloc(NB * DIM * sizeof(float));
    for (int i = 0; i < NB; i++) {
        ids[i] = (iqdb_id)(i < 20 ? i * 2 : 100 + i);
        vec_of(v + i * DIM, ids[i], 4);
    }
    int rc = iqdb_upsert_batch(*db, NB, ids, v, NULL);
    free(ids);
    free(v);
    return rc;
}
static void verify_upsert_batch_big(iqdb *db) {
    uint64_t n;
    iqdb_count(db, &n);
    assert_int_equal(n, 40 + 12 + 280); /* 40 ids and 12 keyed records in the base */
}

static int op_optimize(iqdb **db) { return iqdb_optimize(*db); }

static int op_delete(iqdb **db) {
    int existed;
    int rc = iqdb_delete(*db, 9, &existed);
    if (rc == IQDB_OK) assert_int_equal(existed, 1);
    return rc;
}
static void verify_delete(iqdb *db) {
    assert_int_equal(iqdb_get(db, 9, NULL, NULL), IQDB_NOTFOUND);
}

static int op_get(iqdb **db) {
    iqdb_meta *m = NULL;
    float v[DIM];
    int rc = iqdb_get(*db, 6, v, &m);
    if (rc == IQDB_OK) {
        int64_t id;
        assert_int_equal(iqdb_meta_get_int(m, "id", &id), IQDB_OK);
        assert_int_equal(id, 6);
    } else {
        assert_null(m);
    }
    iqdb_meta_destroy(m);
    return rc;
}

/* ---- keyed twins ---- */

static int op_upsert_key_new(iqdb **db) {
    float v[DIM];
    uint8_t k[4];
    size_t kl = key_of(50, k);
    vec_of(v, 150, 1);
    iqdb_meta *m = meta_of(50, 1);
    int rc = iqdb_upsert_key(*db, k, kl, v, m);
    iqdb_meta_destroy(m);
    return rc;
}
static void verify_upsert_key_new(iqdb *db) {
    float v[DIM], w[DIM];
    uint8_t k[4];
    size_t kl = key_of(50, k);
    vec_of(v, 150, 1);
    assert_int_equal(iqdb_get_key(db, k, kl, w, NULL), IQDB_OK);
    assert_memory_equal(v, w, sizeof v);
}
static int op_upsert_key_replace(iqdb **db) {
    float v[DIM];
    uint8_t k[4];
    size_t kl = key_of(1, k);
    vec_of(v, 101, 2);
    iqdb_meta *m = meta_of(1, 1);
    int rc = iqdb_upsert_key(*db, k, kl, v, m);
    iqdb_meta_destroy(m);
    return rc;
}
static void verify_upsert_key_replace(iqdb *db) {
    float v[DIM], w[DIM];
    uint8_t k[4];
    size_t kl = key_of(1, k);
    vec_of(v, 101, 2);
    assert_int_equal(iqdb_get_key(db, k, kl, w, NULL), IQDB_OK);
    assert_memory_equal(v, w, sizeof v);
    vec_of(v, 1, 0); /* the u64 id 1 is another record */
    assert_int_equal(iqdb_get(db, 1, w, NULL), IQDB_OK);
    assert_memory_equal(v, w, sizeof v);
}
static int op_upsert_batch_key(iqdb **db) {
    int which[6] = {20, 3, 21, 20, 22, 1};
    uint8_t kb[6][4];
    const void *keys[6];
    size_t lens[6];
    float v[6 * DIM];
    iqdb_meta *ms[6];
    for (int i = 0; i < 6; i++) {
        lens[i] = key_of(which[i], kb[i]);
        keys[i] = kb[i];
        vec_of(v + i * DIM, 200 + (uint64_t)i, 3);
        ms[i] = i % 2 ? meta_of((uint64_t)which[i], 1) : NULL;
    }
    int rc = iqdb_upsert_batch_key(*db, 6, keys, lens, v, (const iqdb_meta *const *)ms);
    for (int i = 0; i < 6; i++) iqdb_meta_destroy(ms[i]);
    return rc;
}
static void verify_upsert_batch_key(iqdb *db) {
    uint64_t n;
    iqdb_count(db, &n);
    assert_int_equal(n, 40 + 12 + 3);
    float v[DIM], w[DIM];
    uint8_t k[4];
    size_t kl = key_of(20, k);
    vec_of(v, 203, 3); /* the later duplicate */
    assert_int_equal(iqdb_get_key(db, k, kl, w, NULL), IQDB_OK);
    assert_memory_equal(v, w, sizeof v);
}
static int op_delete_key(iqdb **db) {
    int existed;
    uint8_t k[4];
    size_t kl = key_of(7, k);
    int rc = iqdb_delete_key(*db, k, kl, &existed);
    if (rc == IQDB_OK) assert_int_equal(existed, 1);
    return rc;
}
static void verify_delete_key(iqdb *db) {
    uint8_t k[4];
    size_t kl = key_of(7, k);
    assert_int_equal(iqdb_get_key(db, k, kl, NULL, NULL), IQDB_NOTFOUND);
    assert_int_equal(iqdb_get(db, 7, NULL, NULL), IQDB_OK);
}
static int op_get_key(iqdb **db) {
    iqdb_meta *m = NULL;
    float v[DIM];
    uint8_t k[4];
    size_t kl = key_of(5, k);
    int rc = iqdb_get_key(*db, k, kl, v, &m);
    if (rc == IQDB_OK) {
        int64_t id;
        assert_int_equal(iqdb_meta_get_int(m, "id", &id), IQDB_OK);
        assert_int_equal(id, 5);
    } else {
        assert_null(m);
    }
    iqdb_meta_destroy(m);
    return rc;
}
/* A search, then every keyed hit's key: resolving allocates nothing, so only the search fails.
 */
static int op_hit_key(iqdb **db) {
    float q[DIM];
    vec_of(q, 104, 0);
    iqdb_hit hits[52];
    size_t n, keyed = 0;
    int rc = iqdb_search(*db, q, 52, NULL, hits, &n, NULL);
    for (size_t i = 0; rc == IQDB_OK && i < n; i++) {
        if (!iqdb_hit_has_key(&hits[i])) continue;
        uint8_t buf[IQDB_MAX_ID_KEY_LEN];
        size_t len;
        assert_int_equal(iqdb_hit_key(*db, &hits[i], buf, sizeof buf, &len), IQDB_OK);
        assert_true(len == 1 || len == 4);
        keyed++;
    }
    if (rc == IQDB_OK) assert_int_equal(keyed, 12);
    return rc;
}

/* Search results from a database built the same way with no failure armed. */
static iqdb_hit ref_hits[8][10];
static size_t ref_n[8];

static void reference_searches(int filtered) {
    iqdbt_fail_off(&A);
    iqdb *db = fresh_db(IQDB_METRIC_L2);
    float q[8 * DIM];
    for (int i = 0; i < 8; i++) vec_of(q + i * DIM, (uint64_t)i * 5 + 1, 7);
    iqdb_filter *f = NULL;
    if (filtered)
        assert_int_equal(iqdb_filter_parse(NULL, "kind = 'odd' OR third > 4", 25, &f, NULL),
                         IQDB_OK);
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    p.filter = f;
    for (int i = 0; i < 8; i++)
        assert_int_equal(iqdb_search(db, q + i * DIM, 10, &p, ref_hits[i], &ref_n[i], NULL),
                         IQDB_OK);
    iqdb_filter_destroy(f);
    iqdb_close(db);
}

static int do_search(iqdb *db, int filtered, int batch) {
    float q[8 * DIM];
    for (int i = 0; i < 8; i++) vec_of(q + i * DIM, (uint64_t)i * 5 + 1, 7);
    iqdb_filter *f = NULL;
    if (filtered)
        assert_int_equal(iqdb_filter_parse(NULL, "kind = 'odd' OR third > 4", 25, &f, NULL),
                         IQDB_OK);
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    p.filter = f;
    iqdb_hit hits[8][10];
    size_t n[8];
    int rc = IQDB_OK;
    if (batch) {
        rc = iqdb_search_batch(db, q, 8, 10, &p, &hits[0][0], n);
    } else {
        for (int i = 0; i < 8 && rc == IQDB_OK; i++)
            rc = iqdb_search(db, q + i * DIM, 10, &p, hits[i], &n[i], NULL);
    }
    if (rc == IQDB_OK) {
        for (int i = 0; i < 8; i++) {
            assert_int_equal(n[i], ref_n[i]);
            assert_memory_equal(hits[i], ref_hits[i], n[i] * sizeof(iqdb_hit));
        }
    } else if (batch) {
        for (int i = 0; i < 8; i++) assert_int_equal(n[i], 0);
    }
    iqdb_filter_destroy(f);
    return rc;
}

static int op_search(iqdb **db) { return do_search(*db, 0, 0); }
static int op_search_filtered(iqdb **db) { return do_search(*db, 1, 0); }
static int op_search_batch(iqdb **db) { return do_search(*db, 0, 1); }
static int op_search_batch_filtered(iqdb **db) { return do_search(*db, 1, 1); }

static int op_check(iqdb **db) { return iqdb_check(*db); }
static void verify_optimize(iqdb *db) {
    iqdb_stats st = {.struct_size = sizeof st};
    assert_int_equal(iqdb_stats_get(db, &st), IQDB_OK);
    assert_int_equal(st.trained, mode != MODE_FLAT);
    assert_int_equal(st.mem_vectors < 1024, mode == MODE_CODES_ONLY);
}
static int op_stats(iqdb **db) {
    iqdb_stats s = {.struct_size = sizeof s};
    return iqdb_stats_get(*db, &s);
}
static int op_count(iqdb **db) {
    uint64_t n;
    return iqdb_count(*db, &n);
}

/* The loop itself. */
static void oom_loop(const op_def *op, int filtered_ref) {
    for (int persistent = 0; persistent <= 1; persistent++) {
        long long n;
        int completed = 0;
        for (n = 1; n < 100000 && !completed; n++) {
            if (filtered_ref >= 0) reference_searches(filtered_ref);
            iqdb *db = op->run == op_open ? NULL : fresh_db(IQDB_METRIC_L2);
            snapshot before, after;
            if (db) take_snapshot(db, &before, !op->read_only);
            iqdbt_fail_after(&A, n, persistent);
            int rc = op->run(&db);
            int failed = atomic_load(&A.failed);
            iqdbt_fail_off(&A);
            if (rc != IQDB_OK) {
                if (rc != IQDB_NOMEM) {
                    print_error("%s N=%lld: returned %d (%s), not IQDB_NOMEM\n", op->name, n, rc,
                                iqdb_errmsg(db));
                    fail();
                }
                assert_true(failed);
                if (op->run == op_open) {
                    assert_null(db);
                } else {
                    take_snapshot(db, &after, !op->read_only);
                    assert_same(&before, &after, op->name, n);
                }
            } else if (op->verify) {
                op->verify(db);
            }
            if (db) {
                int crc = iqdb_check(db);
                if (crc)
                    print_error("%s N=%lld (rc %d): iqdb_check: %s\n", op->name, n, rc,
                                iqdb_errmsg(db));
                assert_int_equal(crc, IQDB_OK);
                assert_int_equal(iqdb_close(db), IQDB_OK);
            }
            if (atomic_load(&A.live) != 0 || atomic_load(&A.bad_free)) {
                print_error("%s N=%lld: %lld bytes leaked\n", op->name, n, atomic_load(&A.live));
                fail();
            }
            completed = rc == IQDB_OK && !failed;
        }
        printf("%-24s %s: completed after %lld allocation failures\n", op->name,
               persistent ? "persistent" : "transient ", n - 2);
        assert_true(completed);
    }
}

static void test_oom_open(void **s) {
    (void)s;
    op_def op = {"open", op_open, verify_open, 0};
    oom_loop(&op, -1);
}
static void test_oom_upsert_new(void **s) {
    (void)s;
    op_def op = {"upsert new", op_upsert_new, verify_upsert_new, 0};
    oom_loop(&op, -1);
}
static void test_oom_upsert_replace(void **s) {
    (void)s;
    op_def op = {"upsert replace", op_upsert_replace, verify_upsert_replace, 0};
    oom_loop(&op, -1);
}
static void test_oom_upsert_batch(void **s) {
    (void)s;
    op_def op = {"upsert_batch", op_upsert_batch, verify_upsert_batch, 0};
    oom_loop(&op, -1);
}
static void test_oom_delete(void **s) {
    (void)s;
    op_def op = {"delete", op_delete, verify_delete, 0};
    oom_loop(&op, -1);
}
static void test_oom_get(void **s) {
    (void)s;
    op_def op = {"get", op_get, NULL, 1};
    oom_loop(&op, -1);
}
static void test_oom_search(void **s) {
    (void)s;
    op_def a = {"search", op_search, NULL, 1};
    oom_loop(&a, 0);
    op_def b = {"search filtered", op_search_filtered, NULL, 1};
    oom_loop(&b, 1);
}
static void test_oom_search_batch(void **s) {
    (void)s;
    op_def a = {"search_batch", op_search_batch, NULL, 1};
    oom_loop(&a, 0);
    op_def b = {"search_batch filtered", op_search_batch_filtered, NULL, 1};
    oom_loop(&b, 1);
}
/* The IVF databases: every write, search and optimize, each failure leaving them unchanged. */
static void ivf_ops(void) {
    op_def ops[] = {{"ivf upsert new", op_upsert_new, verify_upsert_new, 0},
                    {"ivf upsert replace", op_upsert_replace, verify_upsert_replace, 0},
                    {"ivf upsert_batch", op_upsert_batch, verify_upsert_batch, 0},
                    {"ivf delete", op_delete, verify_delete, 0},
                    {"ivf optimize", op_optimize, verify_optimize, 0},
                    {"ivf check", op_check, NULL, 0}};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) oom_loop(&ops[i], -1);
    op_def s0 = {"ivf search", op_search, NULL, 0},
           s1 = {"ivf search filtered", op_search_filtered, NULL, 0};
    op_def b0 = {"ivf search_batch", op_search_batch, NULL, 0},
           b1 = {"ivf search_batch filtered", op_search_batch_filtered, NULL, 0};
    oom_loop(&s0, 0);
    oom_loop(&s1, 1);
    oom_loop(&b0, 0);
    oom_loop(&b1, 1);
}
/* The IVF / quantizer loops run at one kernel level only (their allocation paths do not depend
 * on it): the scalar one, which every platform has. At the other levels they are skipped, which
 * keeps test_oom within its CI time (each loop trains an index at every allocation count). */
static int ivf_level(void) {
    const char *lv = getenv("IQDB_SIMD");
    return !lv || !*lv || strcmp(lv, "scalar") == 0;
}
#define IVF_LEVEL_ONLY()                                                   \
    do {                                                                   \
        if (!ivf_level()) {                                                \
            print_message("IVF OOM loops run at IQDB_SIMD=scalar only\n"); \
            return;                                                        \
        }                                                                  \
    } while (0)

static void test_oom_ivf_untrained(void **s) {
    (void)s;
    IVF_LEVEL_ONLY();
    mode = MODE_IVF_UNTRAINED;
    ivf_ops();
    mode = MODE_FLAT;
}
static void test_oom_ivf_trained(void **s) {
    (void)s;
    IVF_LEVEL_ONLY();
    mode = MODE_IVF_TRAINED;
    ivf_ops();
    mode = MODE_FLAT;
}
static void test_oom_ivf_sq8_trained(void **s) {
    (void)s;
    IVF_LEVEL_ONLY();
    mode = MODE_SQ8_TRAINED;
    ivf_ops();
    mode = MODE_FLAT;
}
static void test_oom_codes_only(void **s) {
    (void)s;
    IVF_LEVEL_ONLY();
    mode = MODE_CODES_ONLY;
    ivf_ops();
    mode = MODE_FLAT;
}
static void test_oom_ivf_training_threshold(void **s) {
    (void)s;
    IVF_LEVEL_ONLY();
    mode = MODE_IVF_THRESHOLD; /* the batch brings 1020 rows to 1027: training runs after it */
    op_def op = {"ivf batch over the threshold", op_upsert_batch, verify_upsert_batch, 0};
    oom_loop(&op, -1);
    mode = MODE_FLAT;
}

static void test_oom_keys(void **s) {
    (void)s;
    op_def ops[] = {{"upsert_key new", op_upsert_key_new, verify_upsert_key_new, 0},
                    {"upsert_key replace", op_upsert_key_replace, verify_upsert_key_replace, 0},
                    {"upsert_batch_key", op_upsert_batch_key, verify_upsert_batch_key, 0},
                    {"delete_key", op_delete_key, verify_delete_key, 0},
                    {"get_key", op_get_key, NULL, 1},
                    {"search + hit_key", op_hit_key, NULL, 1}};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) oom_loop(&ops[i], -1);
}
static void test_oom_check_stats_count(void **s) {
    (void)s;
    op_def a = {"check", op_check, NULL, 1};
    oom_loop(&a, -1);
    op_def b = {"stats", op_stats, NULL, 1};
    oom_loop(&b, -1);
    op_def c = {"count", op_count, NULL, 1};
    oom_loop(&c, -1);
}

/* Free-standing objects: metadata and filters built through the failing allocator. */
/* The same loops on an HNSW database. */
static void test_oom_hnsw_writes(void **s) {
    (void)s;
    KIND = IQDB_INDEX_HNSW;
    const op_def ops[] = {
        {"hnsw open", op_open, verify_open, 0},
        {"hnsw upsert new", op_upsert_new, verify_upsert_new, 0},
        {"hnsw upsert replace", op_upsert_replace, verify_upsert_replace, 0},
        {"hnsw upsert_batch", op_upsert_batch, verify_upsert_batch, 0},
        {"hnsw upsert_batch 300", op_upsert_batch_big, verify_upsert_batch_big, 0},
        {"hnsw delete (repair)", op_delete, verify_delete, 0},
        {"hnsw optimize", op_optimize, NULL, 0},
    };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) oom_loop(&ops[i], -1);
    KIND = IQDB_INDEX_FLAT;
}
static void test_oom_hnsw_reads(void **s) {
    (void)s;
    KIND = IQDB_INDEX_HNSW;
    op_def a = {"hnsw search", op_search, NULL, 1};
    oom_loop(&a, 0);
    op_def b = {"hnsw search filtered", op_search_filtered, NULL, 1};
    oom_loop(&b, 1);
    op_def c = {"hnsw search_batch", op_search_batch, NULL, 1};
    oom_loop(&c, 0);
    op_def d = {"hnsw search_batch filtered", op_search_batch_filtered, NULL, 1};
    oom_loop(&d, 1);
    op_def e = {"hnsw check", op_check, NULL, 1};
    oom_loop(&e, -1);
    KIND = IQDB_INDEX_FLAT;
}

static void test_oom_meta_and_filters(void **s) {
    (void)s;
    for (int persistent = 0; persistent <= 1; persistent++) {
        int done = 0;
        long long n;
        for (n = 1; !done && n < 10000; n++) {
            iqdbt_fail_after(&A, n, persistent);
            iqdb_meta *m = NULL;
            iqdb_filter *f = NULL, *g = NULL, *h = NULL;
            int rc = iqdb_meta_create(&AL, &m);
            if (rc == IQDB_OK) rc = iqdb_meta_set_string(m, "title", "hello");
            if (rc == IQDB_OK) rc = iqdb_meta_set_int(m, "year", 2024);
            const char *text =
                "title = 'hello' AND (year >= 2020 OR tag IN ('a', 'b', 'c')) AND NOT x = 1";
            if (rc == IQDB_OK) rc = iqdb_filter_parse(&AL, text, strlen(text), &f, NULL);
            iqdb_value vals[3] = {iqdb_int(1), iqdb_str("two"), iqdb_double(3.5)};
            if (rc == IQDB_OK) rc = iqdb_filter_in(&AL, "k", vals, 3, &g);
            if (rc == IQDB_OK) {
                iqdb_filter *kids[2] = {g, NULL};
                g = NULL;
                rc = iqdb_filter_eq(&AL, "year", iqdb_int(2024), &kids[1]);
                if (rc == IQDB_OK)
                    rc = iqdb_filter_or(&AL, kids, 2, &h);
                else
                    iqdb_filter_destroy(kids[0]);
            }
            int failed = atomic_load(&A.failed);
            iqdbt_fail_off(&A);
            if (rc) assert_int_equal(rc, IQDB_NOMEM);
            if (rc == IQDB_OK) {
                int r1, r2;
                assert_int_equal(iqdb_filter_matches(f, m, &r1), IQDB_OK);
                assert_int_equal(iqdb_filter_matches(h, m, &r2), IQDB_OK);
                assert_int_equal(r1, 1);
                assert_int_equal(r2, 1);
            }
            iqdb_filter_destroy(f);
            iqdb_filter_destroy(g);
            iqdb_filter_destroy(h);
            iqdb_meta_destroy(m);
            assert_int_equal(atomic_load(&A.live), 0);
            done = rc == IQDB_OK && !failed;
        }
        assert_true(done);
        printf("meta+filters %s: completed after %lld allocation failures\n",
               persistent ? "persistent" : "transient ", n - 2);
    }
}

/* ---- durable handles: open (create and recover), upsert, checkpoint, close -----------------
 */

static char ddir[64], dpath[80];

static iqdb_options durable_opts(iqdb_compression c) {
    iqdb_options o;
    iqdb_options_init(&o, DIM, IQDB_METRIC_L2);
    o.allocator = AL;
    o.threads = 1;
    o.index = KIND;
    o.compression = iqdb_compression_available(c) ? c : IQDB_COMPRESS_NONE;
    return o;
}

/* A database on disk with a snapshot of ids 0..19 and WAL records for ids 20..29. */
static void durable_build(iqdb_compression c);

/* The base files are deterministic: each codec's are built once (about 40 fsynced writes) and
 * copied back for every iteration of a loop. */
static int base_built = -1;
static void durable_base(iqdb_compression c) {
    char from[1400], to[1400];
    if (base_built != (int)c) {
        durable_build(c);
        snprintf(to, sizeof to, "%s.base", dpath);
        assert_int_equal(iqdbt_cp(dpath, to), 0);
        snprintf(from, sizeof from, "%s.wal", dpath);
        snprintf(to, sizeof to, "%s.base.wal", dpath);
        assert_int_equal(iqdbt_cp(from, to), 0);
        base_built = (int)c;
        return;
    }
    snprintf(to, sizeof to, "%s.tmp", dpath);
    assert_int_equal(iqdbt_rm(to), 0);
    snprintf(from, sizeof from, "%s.base", dpath);
    assert_int_equal(iqdbt_cp(from, dpath), 0);
    snprintf(from, sizeof from, "%s.base.wal", dpath);
    snprintf(to, sizeof to, "%s.wal", dpath);
    assert_int_equal(iqdbt_cp(from, to), 0);
}

static void durable_build(iqdb_compression c) {
    char p2[1400];
    assert_int_equal(iqdbt_rm(dpath), 0);
    snprintf(p2, sizeof p2, "%s.wal", dpath);
    assert_int_equal(iqdbt_rm(p2), 0);
    snprintf(p2, sizeof p2, "%s.tmp", dpath);
    assert_int_equal(iqdbt_rm(p2), 0);
    iqdbt_fail_off(&A);
    iqdb_options o = durable_opts(c);
    iqdb *db;
    assert_int_equal(iqdb_open(dpath, &o, &db), IQDB_OK);
    float v[DIM];
    for (uint64_t id = 0; id < 30; id++) {
        if (id == 20) assert_int_equal(iqdb_checkpoint(db), IQDB_OK);
        vec_of(v, id, 0);
        iqdb_meta *m = id % 4 ? meta_of(id, 0) : NULL;
        assert_int_equal(iqdb_upsert(db, id, v, m), IQDB_OK);
        iqdb_meta_destroy(m);
        if (id == 9 || id == 29) { /* keyed records, one batch each: 0..4 before the */
            uint8_t kb[5][4];      /* checkpoint, 5..9 in the WAL, and a keyed delete in */
            const void *keys[5];   /* the WAL: 39 records */
            size_t lens[5];
            float kv[5 * DIM];
            for (int i = 0; i < 5; i++) {
                int which = (id == 9 ? 0 : 5) + i;
                lens[i] = key_of(which, kb[i]);
                keys[i] = kb[i];
                vec_of(kv + i * DIM, 100 + (uint64_t)which, 0);
            }
            assert_int_equal(iqdb_upsert_batch_key(db, 5, keys, lens, kv, NULL), IQDB_OK);
        }
    }
    {
        uint8_t k[4];
        size_t kl = key_of(8, k);
        assert_int_equal(iqdb_delete_key(db, k, kl, NULL), IQDB_OK);
    }
    /* leave the WAL records in place: copy the files before close checkpoints them */
    char s_copy[1400], w_copy[1400], wal[1400];
    snprintf(s_copy, sizeof s_copy, "%s.s", dpath);
    snprintf(w_copy, sizeof w_copy, "%s.w", dpath);
    snprintf(wal, sizeof wal, "%s.wal", dpath);
    assert_int_equal(iqdbt_cp(dpath, s_copy), 0);
    assert_int_equal(iqdbt_cp(wal, w_copy), 0);
    assert_int_equal(iqdb_close(db), IQDB_OK);
    assert_int_equal(iqdbt_mv(s_copy, dpath), 0);
    assert_int_equal(iqdbt_mv(w_copy, wal), 0);
}

enum { D_CREATE, D_RECOVER, D_UPSERT, D_UPSERT_KEY, D_CHECKPOINT, D_CLOSE };

static void durable_loop(int which, iqdb_compression c, const char *name) {
    for (int persistent = 0; persistent <= 1; persistent++) {
        long long n;
        int completed = 0;
        for (n = 1; n < 100000 && !completed; n++) {
            durable_base(c);
            if (which == D_CREATE) {
                char wal[1400];
                snprintf(wal, sizeof wal, "%s.wal", dpath);
                assert_int_equal(iqdbt_rm(dpath), 0);
                assert_int_equal(iqdbt_rm(wal), 0);
            }
            iqdb_options o = durable_opts(c);
            iqdb *db = NULL;
            snapshot before;
            if (which >= D_UPSERT) {
                assert_int_equal(iqdb_open(dpath, &o, &db), IQDB_OK);
                take_snapshot(db, &before, 1);
            }
            iqdbt_fail_after(&A, n, persistent);
            int rc;
            float v[DIM];
            vec_of(v, 50, 1);
            switch (which) {
            case D_CREATE:
            case D_RECOVER: rc = iqdb_open(dpath, &o, &db); break;
            case D_UPSERT: {
                iqdb_meta *m = meta_of(50, 1); /* a new key: the record carries it */
                rc = iqdb_upsert(db, 50, v, m);
                iqdb_meta_destroy(m);
                break;
            }
            case D_UPSERT_KEY: {
                uint8_t k[4];
                size_t kl = key_of(50, k);
                iqdb_meta *m = meta_of(50, 1);
                rc = iqdb_upsert_key(db, k, kl, v, m);
                iqdb_meta_destroy(m);
                break;
            }
            case D_CHECKPOINT: rc = iqdb_checkpoint(db); break;
            default: rc = iqdb_close(db); db = NULL;
            }
            int failed = atomic_load(&A.failed);
            iqdbt_fail_off(&A);
            if (rc != IQDB_OK && rc != IQDB_NOMEM) {
                print_error("%s N=%lld: returned %d (%s)\n", name, n, rc, iqdb_errmsg(db));
                fail();
            }
            if (rc != IQDB_OK && (which == D_UPSERT || which == D_UPSERT_KEY)) {
                snapshot after;
                take_snapshot(db, &after, 1);
                assert_same(&before, &after, name, n);
            }
            if (db) {
                assert_int_equal(iqdb_check(db), IQDB_OK);
                assert_int_equal(iqdb_close(db), IQDB_OK);
            }
            if (atomic_load(&A.live) != 0 || atomic_load(&A.bad_free)) {
                print_error("%s N=%lld: %lld bytes leaked\n", name, n, atomic_load(&A.live));
                fail();
            }
            /* whatever failed, the files reopen to the acknowledged state */
            assert_int_equal(iqdb_open(dpath, &o, &db), IQDB_OK);
            uint64_t count;
            iqdb_count(db, &count);
            uint64_t want = which == D_CREATE ? 0 : 39;
            if ((which == D_UPSERT || which == D_UPSERT_KEY) && rc == IQDB_OK) want = 40;
            assert_int_equal(count, want);
            assert_int_equal(iqdb_check(db), IQDB_OK);
            assert_int_equal(iqdb_close(db), IQDB_OK);
            completed = rc == IQDB_OK && !failed;
        }
        printf("%-24s %s: completed after %lld allocation failures\n", name,
               persistent ? "persistent" : "transient ", n - 2);
        assert_true(completed);
    }
}

static void test_oom_durable(void **s) {
    (void)s;
    assert_int_equal(iqdbt_mkdtemp(ddir, sizeof ddir, "iqdb-oom"), 0);
    snprintf(dpath, sizeof dpath, "%s/db", ddir);
    durable_loop(D_CREATE, IQDB_COMPRESS_NONE, "durable open (create)");
    durable_loop(D_RECOVER, IQDB_COMPRESS_NONE, "durable open (recover)");
    durable_loop(D_RECOVER, IQDB_COMPRESS_ZSTD, "durable open (zstd)");
    durable_loop(D_RECOVER, IQDB_COMPRESS_LZ4, "durable open (lz4)");
    durable_loop(D_UPSERT, IQDB_COMPRESS_NONE, "durable upsert");
    durable_loop(D_UPSERT_KEY, IQDB_COMPRESS_NONE, "durable upsert_key");
    durable_loop(D_CHECKPOINT, IQDB_COMPRESS_ZSTD, "durable checkpoint (zstd)");
    durable_loop(D_CLOSE, IQDB_COMPRESS_NONE, "durable close");
    /* an HNSW database: loading the graph, replaying into it, logging an insert into it, and
     * writing it at close (the searches compared after a failed upsert use a small ef, so the
     * graph itself must be unchanged) */
    const char *level = getenv("IQDB_SIMD"); /* once, not at every kernel level */
    if (!level || !strcmp(level, "scalar")) {
        KIND = IQDB_INDEX_HNSW;
        durable_loop(D_RECOVER, IQDB_COMPRESS_NONE, "durable open (HNSW)");
        durable_loop(D_UPSERT, IQDB_COMPRESS_NONE, "durable upsert (HNSW)");
        durable_loop(D_CLOSE, IQDB_COMPRESS_NONE, "durable close (HNSW)");
        KIND = IQDB_INDEX_FLAT;
    }
    assert_int_equal(iqdbt_rmtree(ddir), 0);
}

static int setup(void **state) {
    (void)state;
    iqdbt_alloc_reset(&A);
    AL = iqdbt_allocator(&A, 1);
    return 0;
}

int main(void) {
    iqdbt_simd_gate();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_oom_open, setup),
        cmocka_unit_test_setup(test_oom_upsert_new, setup),
        cmocka_unit_test_setup(test_oom_upsert_replace, setup),
        cmocka_unit_test_setup(test_oom_upsert_batch, setup),
        cmocka_unit_test_setup(test_oom_delete, setup),
        cmocka_unit_test_setup(test_oom_get, setup),
        cmocka_unit_test_setup(test_oom_search, setup),
        cmocka_unit_test_setup(test_oom_search_batch, setup),
        cmocka_unit_test_setup(test_oom_keys, setup),
        cmocka_unit_test_setup(test_oom_check_stats_count, setup),
        cmocka_unit_test_setup(test_oom_hnsw_writes, setup),
        cmocka_unit_test_setup(test_oom_hnsw_reads, setup),
        cmocka_unit_test_setup(test_oom_meta_and_filters, setup),
        cmocka_unit_test_setup(test_oom_ivf_untrained, setup),
        cmocka_unit_test_setup(test_oom_ivf_trained, setup),
        cmocka_unit_test_setup(test_oom_ivf_sq8_trained, setup),
        cmocka_unit_test_setup(test_oom_ivf_training_threshold, setup),
        cmocka_unit_test_setup(test_oom_codes_only, setup),
        cmocka_unit_test_setup(test_oom_durable, setup),
    };
    return cmocka_run_group_tests_name("oom", tests, NULL, NULL);
}
