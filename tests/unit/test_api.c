/*
 * test_api.c — the public API of a handle: open/close, writes, reads, search, batch search,
 * stats, check; the bad-input table; and the semantics of design.md section 3. Runs once per
 * SIMD level (IQDB_SIMD). Every handle uses the counting allocator, and teardown asserts that
 * nothing leaked and every free was sized correctly.
 */
#include "../common/testutil.h"

static iqdbt_alloc A;

static iqdb *open_db(uint32_t dim, iqdb_metric metric) {
    iqdb_options o;
    iqdb_options_init(&o, dim, metric);
    o.allocator = iqdbt_allocator(&A, 1);
    iqdb *db = NULL;
    int rc = iqdb_open(NULL, &o, &db);
    if (rc) fprintf(stderr, "open: %s\n", iqdb_errmsg(NULL));
    assert_int_equal(rc, IQDB_OK);
    assert_non_null(db);
    return db;
}

static int setup(void **state) {
    (void)state;
    iqdbt_alloc_reset(&A);
    return 0;
}
static int teardown(void **state) {
    (void)state;
    assert_int_equal(atomic_load(&A.live), 0);
    assert_int_equal(atomic_load(&A.blocks), 0);
    assert_int_equal(atomic_load(&A.bad_free), 0);
    return 0;
}

static uint64_t count_of(iqdb *db) {
    uint64_t n = 12345;
    assert_int_equal(iqdb_count(db, &n), IQDB_OK);
    return n;
}

/* ---- version, codes ---------------------------------------------------------------------- */

static void test_api_version_and_codes(void **state) {
    (void)state;
    assert_string_equal(iqdb_version(), IQDB_VERSION_STRING);
    assert_int_equal(iqdb_version_number(), IQDB_VERSION_NUMBER);
    for (int rc = IQDB_OK; rc <= IQDB_INTERRUPTED; rc++) {
        assert_non_null(iqdb_errstr(rc));
        assert_string_not_equal(iqdb_errstr(rc), "unknown status code");
    }
    assert_string_equal(iqdb_errstr(9999), "unknown status code");
    assert_string_equal(iqdb_errstr(-1), "unknown status code");
    assert_int_equal(IQDB_PRIMARY(IQDB_IOERR | (4 << 8)), IQDB_IOERR);
    assert_string_equal(iqdb_errstr(IQDB_IOERR | (4 << 8)), iqdb_errstr(IQDB_IOERR));
}

/* ---- open / close / options -------------------------------------------------------------- */

static void test_api_open_close(void **state) {
    (void)state;
    iqdb *db = open_db(8, IQDB_METRIC_L2);
    assert_int_equal(count_of(db), 0);
    iqdb_stats st = {.struct_size = sizeof st};
    assert_int_equal(iqdb_stats_get(db, &st), IQDB_OK);
    assert_int_equal(st.dim, 8);
    assert_int_equal(st.metric, IQDB_METRIC_L2);
    assert_int_equal(st.index, IQDB_INDEX_FLAT);
    assert_true(st.mem_total > 0);
    assert_int_equal(iqdb_close(db), IQDB_OK);
    assert_int_equal(iqdb_close(NULL), IQDB_OK); /* NULL is a no-op */
}

/* Defaults: metric 0 means L2, index 0 means flat. */
static void test_api_open_defaults(void **state) {
    (void)state;
    iqdb *db = open_db(3, IQDB_METRIC_DEFAULT);
    iqdb_stats st = {.struct_size = sizeof st};
    assert_int_equal(iqdb_stats_get(db, &st), IQDB_OK);
    assert_int_equal(st.metric, IQDB_METRIC_L2);
    assert_int_equal(st.index, IQDB_INDEX_FLAT);
    assert_true(st.threads >= 1);
    iqdb_close(db);
}

typedef struct opt_case {
    const char *id;
    void (*mutate)(iqdb_options *o);
    int want;
} opt_case;

static void m_dim0(iqdb_options *o) { o->dim = 0; }
static void m_dim_big(iqdb_options *o) { o->dim = IQDB_MAX_DIM + 1; }
static void m_metric(iqdb_options *o) { o->metric = (iqdb_metric)77; }
static void m_index(iqdb_options *o) { o->index = (iqdb_index_kind)9; }
static void m_simd(iqdb_options *o) { o->simd = (iqdb_simd)42; }
static void m_threads(iqdb_options *o) { o->threads = IQDB_MAX_THREADS + 1; }
static void m_flags(iqdb_options *o) { o->flags = 1; }
static void m_alloc_half(iqdb_options *o) {
    o->allocator.alloc_fn = iqdbt_alloc_fn;
    o->allocator.free_fn = NULL;
}
static void m_hnsw_m(iqdb_options *o) { o->hnsw.m = 1; }
static void m_hnsw_m_big(iqdb_options *o) { o->hnsw.m = 500; }
static void m_hnsw_efc(iqdb_options *o) {
    o->hnsw.m = 32;
    o->hnsw.ef_construction = 16;
}
static void m_hnsw_efs(iqdb_options *o) { o->hnsw.ef_search = 200000; }
static void m_hnsw_widen(iqdb_options *o) { o->hnsw.filter_widen = 5000; }
static void m_ivf_lists(iqdb_options *o) { o->ivf.n_lists = (1u << 20) + 1; }
static void m_ivf_probes(iqdb_options *o) {
    o->ivf.n_lists = 4;
    o->ivf.n_probes = 5;
}
static void m_ivf_reserved(iqdb_options *o) { o->ivf.reserved = 1; }
static void m_small_struct(iqdb_options *o) { o->struct_size = 8; }
static void m_zero_struct(iqdb_options *o) { o->struct_size = 0; }
static void m_quant_kind(iqdb_options *o) { o->quant.kind = (iqdb_quant)4; }
static void m_quant_pq_m(iqdb_options *o) { o->quant.pq_m = 5; } /* dim is 4 */
static void m_quant_oversample(iqdb_options *o) { o->quant.oversample = IQDB_MAX_OVERSAMPLE + 1; }
static void m_quant_flags(iqdb_options *o) { o->quant.flags = 2; }
static void m_codes_only_none(iqdb_options *o) { o->quant.flags = IQDB_QUANT_CODES_ONLY; }
static void m_codes_only_pq(iqdb_options *o) {
    o->quant.kind = IQDB_QUANT_PQ;
    o->quant.flags = IQDB_QUANT_CODES_ONLY;
}
static void m_quant_hnsw(iqdb_options *o) { /* SQ8 and binary work with HNSW; PQ does not */
    o->index = IQDB_INDEX_HNSW;
    o->quant.kind = IQDB_QUANT_PQ;
}

/* Out-of-range options: each gets its documented code, nothing is allocated or leaked. */
static void test_api_open_bad_options(void **state) {
    (void)state;
    const opt_case cases[] = {
        {"1.dim0", m_dim0, IQDB_INVALID},
        {"2.dim_big", m_dim_big, IQDB_INVALID},
        {"3.metric", m_metric, IQDB_INVALID},
        {"4.index", m_index, IQDB_INVALID},
        {"5.simd", m_simd, IQDB_INVALID},
        {"6.threads", m_threads, IQDB_INVALID},
        {"7.flags", m_flags, IQDB_INVALID},
        {"8.alloc_half", m_alloc_half, IQDB_INVALID},
        {"9.hnsw_m", m_hnsw_m, IQDB_INVALID},
        {"10.hnsw_m_big", m_hnsw_m_big, IQDB_INVALID},
        {"11.hnsw_efc", m_hnsw_efc, IQDB_INVALID},
        {"12.hnsw_efs", m_hnsw_efs, IQDB_INVALID},
        {"13.hnsw_widen", m_hnsw_widen, IQDB_INVALID},
        {"14.ivf_lists", m_ivf_lists, IQDB_INVALID},
        {"15.ivf_probes", m_ivf_probes, IQDB_INVALID},
        {"16.ivf_reserved", m_ivf_reserved, IQDB_INVALID},
        {"17.small_struct", m_small_struct, IQDB_MISUSE},
        {"18.zero_struct", m_zero_struct, IQDB_MISUSE},
        {"20.quant_kind", m_quant_kind, IQDB_INVALID},
        {"21.quant_pq_m", m_quant_pq_m, IQDB_INVALID},
        {"22.quant_oversample", m_quant_oversample, IQDB_INVALID},
        {"23.quant_flags", m_quant_flags, IQDB_INVALID},
        {"25.codes_only_without_quantizer", m_codes_only_none, IQDB_INVALID},
        {"26.codes_only_pq", m_codes_only_pq, IQDB_INVALID},
        {"24.quant_pq_hnsw", m_quant_hnsw, IQDB_UNSUPPORTED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        iqdb_options o;
        iqdb_options_init(&o, 4, IQDB_METRIC_L2);
        cases[i].mutate(&o);
        if (!o.allocator.alloc_fn) o.allocator = iqdbt_allocator(&A, 1);
        iqdb *db = (iqdb *)&o; /* must be overwritten with NULL */
        int rc = iqdb_open(NULL, &o, &db);
        if (rc != cases[i].want)
            print_error("case %s: got %d want %d\n", cases[i].id, rc, cases[i].want);
        assert_int_equal(rc, cases[i].want);
        assert_null(db);
        assert_true(strlen(iqdb_errmsg(NULL)) > 0);
    }
    /* NULL arguments */
    iqdb *db;
    iqdb_options o;
    iqdb_options_init(&o, 4, IQDB_METRIC_L2);
    assert_int_equal(iqdb_open(NULL, NULL, &db), IQDB_MISUSE);
    assert_int_equal(iqdb_open(NULL, &o, NULL), IQDB_MISUSE);
    /* an empty path, and read_only without a path (durable opens: tests/unit/test_durable.c) */
    assert_int_equal(iqdb_open("", &o, &db), IQDB_INVALID);
    assert_null(db);
    o.read_only = 1;
    assert_int_equal(iqdb_open(NULL, &o, &db), IQDB_INVALID);
    assert_null(db);
}

/* A caller struct larger than the library's: zero tail accepted, non-zero tail refused. */
static void test_api_options_struct_size(void **state) {
    (void)state;
    struct {
        iqdb_options o;
        uint64_t future[4];
    } big;
    memset(&big, 0, sizeof big);
    iqdb_options_init(&big.o, 4, IQDB_METRIC_L2);
    big.o.allocator = iqdbt_allocator(&A, 0);
    big.o.struct_size = sizeof big;
    iqdb *db;
    assert_int_equal(iqdb_open(NULL, &big.o, &db), IQDB_OK);
    iqdb_close(db);
    big.future[2] = 1;
    assert_int_equal(iqdb_open(NULL, &big.o, &db), IQDB_UNSUPPORTED);
    assert_null(db);
    /* An older caller (struct ending after `metric`) gets defaults for everything else. */
    iqdb_options small;
    iqdb_options_init(&small, 5, IQDB_METRIC_COSINE);
    small.struct_size = offsetof(iqdb_options, metric) + sizeof small.metric;
    small.threads = 99999; /* beyond the caller's size: must be ignored */
    assert_int_equal(iqdb_open(NULL, &small, &db), IQDB_OK);
    iqdb_stats st = {.struct_size = sizeof st};
    iqdb_stats_get(db, &st);
    assert_int_equal(st.dim, 5);
    assert_int_equal(st.metric, IQDB_METRIC_COSINE);
    iqdb_close(db);
}

/* The IQDB_SIMD variable picks the level; a bad value is refused; the option wins over it. */
static void test_api_simd_override(void **state) {
    (void)state;
    const char *old = getenv("IQDB_SIMD");
    char saved[32] = "";
    if (old) snprintf(saved, sizeof saved, "%s", old);
    iqdb_options o;
    iqdb_options_init(&o, 4, IQDB_METRIC_L2);
    o.allocator = iqdbt_allocator(&A, 1);
    iqdb *db;
    setenv("IQDB_SIMD", "sse9", 1);
    assert_int_equal(iqdb_open(NULL, &o, &db), IQDB_INVALID);
    setenv("IQDB_SIMD", "scalar", 1);
    assert_int_equal(iqdb_open(NULL, &o, &db), IQDB_OK);
    iqdb_stats st = {.struct_size = sizeof st};
    iqdb_stats_get(db, &st);
    assert_int_equal(st.simd, IQDB_SIMD_SCALAR);
    iqdb_close(db);
    o.simd = IQDB_SIMD_SCALAR;
    setenv("IQDB_SIMD", "sse9", 1); /* the option decides; the variable is not read */
    assert_int_equal(iqdb_open(NULL, &o, &db), IQDB_OK);
    iqdb_close(db);
    if (!iqdb_simd_available(IQDB_SIMD_NEON)) {
        o.simd = IQDB_SIMD_NEON;
        assert_int_equal(iqdb_open(NULL, &o, &db), IQDB_UNSUPPORTED);
    }
    if (old)
        setenv("IQDB_SIMD", saved, 1);
    else
        unsetenv("IQDB_SIMD");
}

/* ---- upsert / get / delete / count ------------------------------------------------------- */

static void test_api_upsert_get_delete(void **state) {
    (void)state;
    iqdb *db = open_db(4, IQDB_METRIC_L2);
    float v[4] = {1, 2, 3, 4}, out[4];
    iqdb_meta *m;
    assert_int_equal(iqdb_meta_create(NULL, &m), IQDB_OK);
    assert_int_equal(iqdb_meta_set_string(m, "kind", "doc"), IQDB_OK);
    assert_int_equal(iqdb_meta_set_int(m, "year", 2021), IQDB_OK);
    assert_int_equal(iqdb_upsert(db, 7, v, m), IQDB_OK);
    assert_int_equal(iqdb_upsert(db, 0, v, NULL), IQDB_OK);          /* id 0 is valid */
    assert_int_equal(iqdb_upsert(db, UINT64_MAX, v, NULL), IQDB_OK); /* so is the maximum */
    assert_int_equal(count_of(db), 3);
    iqdb_meta *got = NULL;
    assert_int_equal(iqdb_get(db, 7, out, &got), IQDB_OK);
    assert_memory_equal(out, v, sizeof v);
    assert_non_null(got);
    const char *s;
    int64_t year;
    assert_int_equal(iqdb_meta_get_string(got, "kind", &s, NULL), IQDB_OK);
    assert_string_equal(s, "doc");
    assert_int_equal(iqdb_meta_get_int(got, "year", &year), IQDB_OK);
    assert_int_equal(year, 2021);
    iqdb_meta_destroy(got);
    /* record without metadata: meta_out NULL */
    got = (iqdb_meta *)db;
    assert_int_equal(iqdb_get(db, 0, NULL, &got), IQDB_OK);
    assert_null(got);
    /* replace: vector and metadata both replaced, count unchanged */
    float w[4] = {-1, 0, 0.5f, 9};
    assert_int_equal(iqdb_upsert(db, 7, w, NULL), IQDB_OK);
    assert_int_equal(count_of(db), 3);
    assert_int_equal(iqdb_get(db, 7, out, &got), IQDB_OK);
    assert_memory_equal(out, w, sizeof w);
    assert_null(got);
    /* delete */
    int existed = -1;
    assert_int_equal(iqdb_delete(db, 7, &existed), IQDB_OK);
    assert_int_equal(existed, 1);
    assert_int_equal(iqdb_delete(db, 7, &existed), IQDB_OK);
    assert_int_equal(existed, 0);
    assert_int_equal(iqdb_delete(db, 12345, NULL), IQDB_OK);
    assert_int_equal(iqdb_get(db, 7, out, NULL), IQDB_NOTFOUND);
    assert_true(strstr(iqdb_errmsg(db), "7") != NULL);
    assert_int_equal(count_of(db), 2);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    iqdb_meta_destroy(m);
    iqdb_close(db);
}

/* Deleted slots are reused: churn does not grow the slot count. */
static void test_api_slot_reuse(void **state) {
    (void)state;
    iqdb *db = open_db(16, IQDB_METRIC_L2);
    float v[16] = {0};
    for (uint64_t i = 0; i < 100; i++) assert_int_equal(iqdb_upsert(db, i, v, NULL), IQDB_OK);
    iqdb_stats st = {.struct_size = sizeof st};
    iqdb_stats_get(db, &st);
    uint64_t slots = st.slots;
    for (int round = 0; round < 20; round++) {
        for (uint64_t i = 0; i < 100; i += 2) iqdb_delete(db, i + (uint64_t)round * 1000, NULL);
        for (uint64_t i = 0; i < 100; i += 2)
            iqdb_upsert(db, i + (uint64_t)(round + 1) * 1000, v, NULL);
    }
    iqdb_stats_get(db, &st);
    assert_int_equal(st.slots, slots);
    assert_int_equal(st.count, 100);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    iqdb_close(db);
}

/* Bad input to writes and reads: documented codes, database unchanged. */
static void test_api_bad_input_records(void **state) {
    (void)state;
    iqdb *db = open_db(3, IQDB_METRIC_COSINE);
    float ok[3] = {1, 2, 3}, nan[3] = {1, NAN, 3}, inf[3] = {INFINITY, 0, 0},
          ninf[3] = {0, 0, -INFINITY};
    assert_int_equal(iqdb_upsert(db, 1, ok, NULL), IQDB_OK);
    assert_int_equal(iqdb_upsert(NULL, 1, ok, NULL), IQDB_MISUSE);
    assert_int_equal(iqdb_upsert(db, 1, NULL, NULL), IQDB_MISUSE);
    assert_int_equal(iqdb_upsert(db, 2, nan, NULL), IQDB_INVALID);
    assert_true(strstr(iqdb_errmsg(db), "index 1") != NULL);
    assert_int_equal(iqdb_upsert(db, 1, inf, NULL), IQDB_INVALID); /* replace refused too */
    assert_int_equal(iqdb_upsert(db, 3, ninf, NULL), IQDB_INVALID);
    float out[3];
    assert_int_equal(iqdb_get(db, 1, out, NULL), IQDB_OK);
    assert_memory_equal(out, ok, sizeof ok); /* unchanged */
    assert_int_equal(count_of(db), 1);
    assert_int_equal(iqdb_get(NULL, 1, out, NULL), IQDB_MISUSE);
    assert_int_equal(iqdb_delete(NULL, 1, NULL), IQDB_MISUSE);
    uint64_t n;
    assert_int_equal(iqdb_count(NULL, &n), IQDB_MISUSE);
    assert_int_equal(iqdb_count(db, NULL), IQDB_MISUSE);
    assert_int_equal(iqdb_check(NULL), IQDB_MISUSE);
    iqdb_stats st = {.struct_size = 0};
    assert_int_equal(iqdb_stats_get(db, &st), IQDB_MISUSE);
    assert_int_equal(iqdb_stats_get(db, NULL), IQDB_MISUSE);
    assert_int_equal(iqdb_stats_get(NULL, &st), IQDB_MISUSE);
    /* errmsg is per handle: a failure on db is not reported for another handle */
    assert_int_equal(iqdb_upsert(db, 2, nan, NULL), IQDB_INVALID);
    iqdb *other = open_db(3, IQDB_METRIC_L2);
    assert_string_equal(iqdb_errmsg(other), "");
    assert_true(strlen(iqdb_errmsg(db)) > 0);
    iqdb_close(other);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    iqdb_close(db);
}

/* upsert_batch: all or nothing; duplicates apply in order; n = 0 is a no-op. */
static void test_api_upsert_batch(void **state) {
    (void)state;
    iqdb *db = open_db(2, IQDB_METRIC_L2);
    iqdb_id ids[5] = {1, 2, 3, 2, 5};
    float vecs[10] = {1, 1, 2, 2, 3, 3, 4, 4, 5, 5};
    iqdb_meta *m;
    iqdb_meta_create(NULL, &m);
    iqdb_meta_set_int(m, "n", 4);
    const iqdb_meta *metas[5] = {NULL, NULL, NULL, m, NULL};
    assert_int_equal(iqdb_upsert_batch(db, 0, NULL, NULL, NULL), IQDB_OK);
    assert_int_equal(iqdb_upsert_batch(db, 5, ids, vecs, metas), IQDB_OK);
    assert_int_equal(count_of(db), 4);
    float out[2];
    iqdb_meta *got;
    assert_int_equal(iqdb_get(db, 2, out, &got), IQDB_OK); /* the later duplicate won */
    assert_true(out[0] == 4 && out[1] == 4);
    int64_t n;
    assert_int_equal(iqdb_meta_get_int(got, "n", &n), IQDB_OK);
    assert_int_equal(n, 4);
    iqdb_meta_destroy(got);
    /* a bad record anywhere: nothing applied */
    iqdb_id ids2[3] = {10, 1, 11};
    float bad[6] = {0, 0, 7, 7, 0, NAN};
    assert_int_equal(iqdb_upsert_batch(db, 3, ids2, bad, NULL), IQDB_INVALID);
    assert_true(strstr(iqdb_errmsg(db), "record 2") != NULL);
    assert_int_equal(count_of(db), 4);
    assert_int_equal(iqdb_get(db, 10, out, NULL), IQDB_NOTFOUND);
    assert_int_equal(iqdb_get(db, 1, out, NULL), IQDB_OK);
    assert_true(out[0] == 1);
    assert_int_equal(iqdb_upsert_batch(db, 3, NULL, bad, NULL), IQDB_MISUSE);
    assert_int_equal(iqdb_upsert_batch(db, 3, ids2, NULL, NULL), IQDB_MISUSE);
    assert_int_equal(iqdb_upsert_batch(NULL, 3, ids2, bad, NULL), IQDB_MISUSE);
    assert_int_equal(iqdb_upsert_batch(db, SIZE_MAX / 2, ids2, bad, NULL), IQDB_INVALID);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    iqdb_meta_destroy(m);
    iqdb_close(db);
}

/* ---- search ------------------------------------------------------------------------------- */

static void test_api_search_empty_and_k0(void **state) {
    (void)state;
    iqdb *db = open_db(3, IQDB_METRIC_L2);
    float q[3] = {0, 0, 0};
    iqdb_hit hits[4];
    size_t n = 99;
    iqdb_search_info info = {.struct_size = sizeof info};
    assert_int_equal(iqdb_search(db, q, 4, NULL, hits, &n, &info), IQDB_OK);
    assert_int_equal(n, 0);
    assert_int_equal(info.strategy, IQDB_STRATEGY_NONE);
    assert_int_equal(info.complete, 1);
    iqdb_upsert(db, 1, q, NULL);
    n = 99;
    assert_int_equal(iqdb_search(db, q, 0, NULL, NULL, &n, NULL), IQDB_OK); /* k = 0, hits NULL */
    assert_int_equal(n, 0);
    /* k = 0 still validates the query */
    float nan[3] = {0, NAN, 0};
    assert_int_equal(iqdb_search(db, nan, 0, NULL, NULL, &n, NULL), IQDB_INVALID);
    iqdb_close(db);
}

/* Bad input to search: each a documented code, n_hits 0. */
static void test_api_search_bad_input(void **state) {
    (void)state;
    iqdb *db = open_db(3, IQDB_METRIC_L2);
    float q[3] = {1, 2, 3}, inf[3] = {1, INFINITY, 0};
    iqdb_upsert(db, 1, q, NULL);
    iqdb_hit hits[2];
    size_t n = 7;
    assert_int_equal(iqdb_search(NULL, q, 2, NULL, hits, &n, NULL), IQDB_MISUSE);
    assert_int_equal(n, 0);
    assert_int_equal(iqdb_search(db, NULL, 2, NULL, hits, &n, NULL), IQDB_MISUSE);
    assert_int_equal(iqdb_search(db, q, 2, NULL, NULL, &n, NULL), IQDB_MISUSE);
    assert_int_equal(iqdb_search(db, q, 2, NULL, hits, NULL, NULL), IQDB_MISUSE);
    n = 7;
    assert_int_equal(iqdb_search(db, inf, 2, NULL, hits, &n, NULL), IQDB_INVALID);
    assert_int_equal(n, 0);
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    p.struct_size = 0;
    assert_int_equal(iqdb_search(db, q, 2, &p, hits, &n, NULL), IQDB_MISUSE);
    iqdb_search_info info = {.struct_size = 0};
    assert_int_equal(iqdb_search(db, q, 2, NULL, hits, &n, &info), IQDB_MISUSE);
    struct {
        iqdb_search_params p;
        uint64_t future;
    } bigp;
    memset(&bigp, 0, sizeof bigp);
    iqdb_search_params_init(&bigp.p);
    bigp.p.struct_size = sizeof bigp;
    assert_int_equal(iqdb_search(db, q, 2, &bigp.p, hits, &n, NULL), IQDB_OK);
    bigp.future = 3;
    assert_int_equal(iqdb_search(db, q, 2, &bigp.p, hits, &n, NULL), IQDB_UNSUPPORTED);
    iqdb_close(db);
}

/* k far above the row count returns every row and allocates nothing k-sized. */
static void test_api_search_huge_k(void **state) {
    (void)state;
    iqdb *db = open_db(4, IQDB_METRIC_L1);
    float v[4];
    iqdbt_rng r = {5};
    for (uint64_t i = 0; i < 10; i++) {
        iqdbt_fill(&r, v, 4, -1, 1);
        iqdb_upsert(db, i, v, NULL);
    }
    long long before = atomic_load(&A.live);
    iqdb_hit hits[10];
    size_t n;
    assert_int_equal(iqdb_search(db, v, SIZE_MAX, NULL, hits, &n, NULL), IQDB_OK);
    assert_int_equal(n, 10);
    for (size_t i = 1; i < n; i++) assert_true(hits[i - 1].distance <= hits[i].distance);
    long long after = atomic_load(&A.live);
    assert_true(after - before < 64 * 1024); /* scratch only, nothing k-sized */
    size_t nh[2];
    iqdb_hit bh[20];
    assert_int_equal(iqdb_search_batch(db, v, 1, SIZE_MAX, NULL, bh, nh), IQDB_OK);
    assert_int_equal(nh[0], 10);
    assert_memory_equal(bh, hits, 10 * sizeof *hits);
    assert_int_equal(iqdb_search_batch(db, v, 2, SIZE_MAX, NULL, bh, nh),
                     IQDB_INVALID); /* n*k overflows */
    iqdb_close(db);
}

/* Distances for every metric, against a double-precision oracle. */
static void test_api_metric_distances(void **state) {
    (void)state;
    const iqdb_metric metrics[] = {IQDB_METRIC_L2, IQDB_METRIC_COSINE, IQDB_METRIC_DOT,
                                   IQDB_METRIC_L1, IQDB_METRIC_HAMMING};
    const uint32_t dim = 37;
    iqdbt_rng r = {11};
    for (size_t mi = 0; mi < 5; mi++) {
        iqdb *db = open_db(dim, metrics[mi]);
        float vecs[20][37], q[37];
        for (int i = 0; i < 20; i++) {
            for (uint32_t j = 0; j < dim; j++)
                vecs[i][j] = metrics[mi] == IQDB_METRIC_HAMMING ? (float)(iqdbt_next(&r) & 1)
                                                                : iqdbt_uniform(&r, -1, 1);
            assert_int_equal(iqdb_upsert(db, (iqdb_id)i, vecs[i], NULL), IQDB_OK);
        }
        for (uint32_t j = 0; j < dim; j++)
            q[j] = metrics[mi] == IQDB_METRIC_HAMMING ? (float)(iqdbt_next(&r) & 1)
                                                      : iqdbt_uniform(&r, -1, 1);
        iqdb_hit hits[20];
        size_t n;
        assert_int_equal(iqdb_search(db, q, 20, NULL, hits, &n, NULL), IQDB_OK);
        assert_int_equal(n, 20);
        for (size_t i = 0; i < n; i++) {
            double want = iqdbt_dist(metrics[mi], q, vecs[hits[i].id], dim);
            assert_true(fabs(hits[i].distance - want) <= 1e-5 * (1 + fabs(want)));
            if (i) assert_true(hits[i - 1].distance <= hits[i].distance);
        }
        iqdb_close(db);
    }
}

/* Cosine with a zero vector is 1.0, in both directions; a zero query too. */
static void test_api_cosine_zero_vector(void **state) {
    (void)state;
    iqdb *db = open_db(3, IQDB_METRIC_COSINE);
    float z[3] = {0, 0, 0}, v[3] = {1, 0, 0}, w[3] = {-2, 0, 0};
    iqdb_upsert(db, 1, z, NULL);
    iqdb_upsert(db, 2, v, NULL);
    iqdb_upsert(db, 3, w, NULL);
    iqdb_hit hits[3];
    size_t n;
    assert_int_equal(iqdb_search(db, v, 3, NULL, hits, &n, NULL), IQDB_OK);
    assert_int_equal(n, 3);
    assert_true(hits[0].id == 2 && hits[0].distance == 0.0f);
    assert_true(hits[1].id == 1 && hits[1].distance == 1.0f);
    assert_true(hits[2].id == 3 && hits[2].distance == 2.0f);
    assert_int_equal(iqdb_search(db, z, 3, NULL, hits, &n, NULL), IQDB_OK);
    for (size_t i = 0; i < n; i++) assert_true(hits[i].distance == 1.0f);
    assert_true(hits[0].id == 1 && hits[1].id == 2 && hits[2].id == 3); /* ties: insert order */
    iqdb_close(db);
}

/* Ties go to the record inserted first; a replace counts as a new insert. */
static void test_api_ties_insert_order(void **state) {
    (void)state;
    iqdb *db = open_db(2, IQDB_METRIC_L2);
    float v[2] = {1, 1};
    iqdb_id order[6] = {50, 3, 999, 0, 7, 12};
    for (int i = 0; i < 6; i++) iqdb_upsert(db, order[i], v, NULL);
    iqdb_hit hits[6];
    size_t n;
    assert_int_equal(iqdb_search(db, v, 6, NULL, hits, &n, NULL), IQDB_OK);
    for (int i = 0; i < 6; i++) assert_true(hits[i].id == order[i]);
    iqdb_upsert(db, 3, v, NULL); /* replace: 3 moves to the end */
    assert_int_equal(iqdb_search(db, v, 3, NULL, hits, &n, NULL), IQDB_OK);
    assert_true(hits[0].id == 50 && hits[1].id == 999 && hits[2].id == 0);
    assert_int_equal(iqdb_search(db, v, 6, NULL, hits, &n, NULL), IQDB_OK);
    assert_true(hits[5].id == 3);
    /* batch agrees */
    size_t nb;
    iqdb_hit bh[6];
    assert_int_equal(iqdb_search_batch(db, v, 1, 6, NULL, bh, &nb), IQDB_OK);
    assert_memory_equal(bh, hits, sizeof hits);
    iqdb_close(db);
}

/* Search info: strategy, completeness, counters; a small struct_size gets only its fields. */
static void test_api_search_info(void **state) {
    (void)state;
    iqdb *db = open_db(2, IQDB_METRIC_L2);
    float v[2] = {0, 0};
    iqdb_meta *m;
    iqdb_meta_create(NULL, &m);
    iqdb_meta_set_bool(m, "even", 1);
    for (uint64_t i = 0; i < 10; i++) {
        v[0] = (float)i;
        iqdb_upsert(db, i, v, i % 2 ? NULL : m);
    }
    iqdb_filter *f;
    assert_int_equal(iqdb_filter_parse(NULL, "even = true", 11, &f, NULL), IQDB_OK);
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    p.filter = f;
    iqdb_hit hits[10];
    size_t n;
    iqdb_search_info info = {.struct_size = sizeof info};
    assert_int_equal(iqdb_search(db, v, 3, &p, hits, &n, &info), IQDB_OK);
    assert_int_equal(n, 3);
    assert_int_equal(info.strategy, IQDB_STRATEGY_SCAN_FILTERED);
    assert_int_equal(info.complete, 1);
    assert_int_equal(info.n_visited, 10);
    assert_int_equal(info.n_matched, 5);
    assert_int_equal(info.n_distances, 5);
    assert_true(hits[0].id == 8 && hits[1].id == 6 && hits[2].id == 4);
    /* k above the matching count: every match, complete */
    assert_int_equal(iqdb_search(db, v, 10, &p, hits, &n, &info), IQDB_OK);
    assert_int_equal(n, 5);
    assert_int_equal(info.complete, 1);
    /* an older, smaller info struct: only its fields are written */
    struct {
        iqdb_search_info info;
        uint64_t canary;
    } small;
    memset(&small, 0xab, sizeof small);
    small.info.struct_size = offsetof(iqdb_search_info, n_distances);
    assert_int_equal(iqdb_search(db, v, 3, NULL, hits, &n, &small.info), IQDB_OK);
    assert_int_equal(small.info.strategy, IQDB_STRATEGY_SCAN);
    unsigned char *tail = (unsigned char *)&small.info.n_distances;
    for (size_t i = 0; i < sizeof(uint64_t); i++) assert_int_equal(tail[i], 0xab);
    iqdb_filter_destroy(f);
    iqdb_meta_destroy(m);
    iqdb_close(db);
}

/* search_batch: bad input, and its n_hits on failure. */
static void test_api_search_batch_bad_input(void **state) {
    (void)state;
    iqdb *db = open_db(2, IQDB_METRIC_L2);
    float qs[6] = {0, 0, 1, 1, 2, NAN};
    iqdb_upsert(db, 1, qs, NULL);
    iqdb_hit hits[6];
    size_t n[3] = {9, 9, 9};
    assert_int_equal(iqdb_search_batch(db, qs, 0, 2, NULL, NULL, NULL), IQDB_OK);
    assert_int_equal(iqdb_search_batch(db, qs, 3, 2, NULL, hits, n), IQDB_INVALID);
    assert_true(strstr(iqdb_errmsg(db), "query 2") != NULL);
    assert_true(n[0] == 0 && n[1] == 0 && n[2] == 0);
    assert_int_equal(iqdb_search_batch(NULL, qs, 2, 2, NULL, hits, n), IQDB_MISUSE);
    assert_int_equal(iqdb_search_batch(db, NULL, 2, 2, NULL, hits, n), IQDB_MISUSE);
    assert_int_equal(iqdb_search_batch(db, qs, 2, 2, NULL, NULL, n), IQDB_MISUSE);
    assert_int_equal(iqdb_search_batch(db, qs, 2, 2, NULL, hits, NULL), IQDB_MISUSE);
    assert_int_equal(iqdb_search_batch(db, qs, 2, 2, NULL, hits, n), IQDB_OK);
    assert_true(n[0] == 1 && n[1] == 1);
    iqdb_close(db);
}

/* ---- differential: random operations against a model and an oracle ---------------------- */

typedef struct model {
    uint32_t dim;
    size_t n, cap;
    iqdb_id *ids;
    float *vecs;
    int *tag; /* -1: no metadata; else metadata {"tag": tag, "t2": tag*0.5} */
} model;

static long find_model(const model *m, iqdb_id id) {
    for (size_t i = 0; i < m->n; i++)
        if (m->ids[i] == id) return (long)i;
    return -1;
}

/* Checks one search result against the oracle: distinct live ids, each matching the filter,
 * distances equal to the oracle's within tolerance, sorted, the right count, and no better
 * matching record left out. */
static void check_result(const model *m, iqdb_metric metric, const float *q, size_t k, int tagf,
                         const iqdb_hit *hits, size_t n) {
    size_t matching = 0;
    for (size_t i = 0; i < m->n; i++) matching += tagf < 0 || m->tag[i] == tagf;
    assert_int_equal(n, k < matching ? k : matching);
    double worst = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        long at = find_model(m, hits[i].id);
        assert_true(at >= 0);
        if (tagf >= 0) assert_int_equal(m->tag[at], tagf);
        for (size_t j = 0; j < i; j++) assert_true(hits[j].id != hits[i].id);
        double want = iqdbt_dist(metric, q, m->vecs + (size_t)at * m->dim, m->dim);
        double tol = 1e-4 * (1 + fabs(want));
        if (fabs(hits[i].distance - want) > tol) {
            print_error("hit %zu id %llu: distance %.9g, oracle %.9g\n", i,
                        (unsigned long long)hits[i].id, hits[i].distance, want);
            fail();
        }
        if (i) assert_true(hits[i - 1].distance <= hits[i].distance);
        if (want > worst) worst = want;
    }
    if (n == k && n < matching) {
        for (size_t i = 0; i < m->n; i++) {
            if (tagf >= 0 && m->tag[i] != tagf) continue;
            int in = 0;
            for (size_t j = 0; j < n; j++) in |= hits[j].id == m->ids[i];
            if (in) continue;
            double d = iqdbt_dist(metric, q, m->vecs + i * m->dim, m->dim);
            assert_true(d >= worst - 1e-4 * (1 + fabs(worst)));
        }
    }
}

static void run_differential(iqdb_metric metric, uint32_t dim, uint64_t seed) {
    printf("differential: metric %d dim %u seed %llu\n", (int)metric, dim,
           (unsigned long long)seed);
    iqdb *db = open_db(dim, metric);
    model m = {dim,
               0,
               600,
               calloc(600, sizeof(iqdb_id)),
               calloc(600 * (size_t)dim, sizeof(float)),
               calloc(600, sizeof(int))};
    iqdbt_rng r = {seed};
    float *v = malloc(dim * sizeof(float)), *qs = malloc(8 * (size_t)dim * sizeof(float));
    iqdb_filter *filters[4];
    for (int t = 0; t < 4; t++) {
        char text[32];
        snprintf(text, sizeof text, "tag = %d", t);
        assert_int_equal(iqdb_filter_parse(NULL, text, strlen(text), &filters[t], NULL), IQDB_OK);
    }
    for (int step = 0; step < 1500; step++) {
        uint64_t op = iqdbt_next(&r) % 10;
        iqdb_id id = iqdbt_next(&r) % 400;
        if (op < 6) { /* upsert */
            for (uint32_t j = 0; j < dim; j++)
                v[j] = metric == IQDB_METRIC_HAMMING ? (float)(iqdbt_next(&r) & 1)
                                                     : (float)((int)(iqdbt_next(&r) % 21) - 10) / 4;
            int tag = (int)(iqdbt_next(&r) % 5) - 1;
            iqdb_meta *meta = NULL;
            if (tag >= 0) {
                iqdb_meta_create(NULL, &meta);
                iqdb_meta_set_int(meta, "tag", tag);
                iqdb_meta_set_double(meta, "t2", tag * 0.5);
            }
            assert_int_equal(iqdb_upsert(db, id, v, meta), IQDB_OK);
            iqdb_meta_destroy(meta);
            long at = find_model(&m, id);
            if (at >= 0) { /* replace = remove + append (a replace is a new insert) */
                memmove(&m.ids[at], &m.ids[at + 1], (m.n - at - 1) * sizeof *m.ids);
                memmove(&m.vecs[at * dim], &m.vecs[(at + 1) * dim],
                        (m.n - at - 1) * dim * sizeof(float));
                memmove(&m.tag[at], &m.tag[at + 1], (m.n - at - 1) * sizeof *m.tag);
                m.n--;
            }
            m.ids[m.n] = id;
            memcpy(&m.vecs[m.n * dim], v, dim * sizeof(float));
            m.tag[m.n] = tag;
            m.n++;
        } else if (op < 8) { /* delete */
            int existed;
            assert_int_equal(iqdb_delete(db, id, &existed), IQDB_OK);
            long at = find_model(&m, id);
            assert_int_equal(existed, at >= 0);
            if (at >= 0) {
                memmove(&m.ids[at], &m.ids[at + 1], (m.n - at - 1) * sizeof *m.ids);
                memmove(&m.vecs[at * dim], &m.vecs[(at + 1) * dim],
                        (m.n - at - 1) * dim * sizeof(float));
                memmove(&m.tag[at], &m.tag[at + 1], (m.n - at - 1) * sizeof *m.tag);
                m.n--;
            }
        } else { /* search: single and batch, with and without filter */
            size_t k = 1 + iqdbt_next(&r) % 20, nq = 1 + iqdbt_next(&r) % 8;
            for (size_t i = 0; i < nq * dim; i++)
                qs[i] = metric == IQDB_METRIC_HAMMING
                            ? (float)(iqdbt_next(&r) & 1)
                            : (float)((int)(iqdbt_next(&r) % 21) - 10) / 4;
            int tagf = (int)(iqdbt_next(&r) % 5) - 1;
            iqdb_search_params p;
            iqdb_search_params_init(&p);
            p.filter = tagf >= 0 ? filters[tagf] : NULL;
            iqdb_hit hits[20], bhits[8 * 20];
            size_t n, bn[8];
            assert_int_equal(iqdb_search_batch(db, qs, nq, k, &p, bhits, bn), IQDB_OK);
            for (size_t qi = 0; qi < nq; qi++) {
                assert_int_equal(iqdb_search(db, qs + qi * dim, k, &p, hits, &n, NULL), IQDB_OK);
                check_result(&m, metric, qs + qi * dim, k, tagf, hits, n);
                /* batch equals single exactly */
                assert_int_equal(bn[qi], n);
                for (size_t j = 0; j < n; j++) {
                    assert_true(bhits[qi * k + j].id == hits[j].id);
                    assert_true(bhits[qi * k + j].distance == hits[j].distance);
                }
            }
        }
        assert_int_equal(count_of(db), m.n);
    }
    assert_int_equal(iqdb_check(db), IQDB_OK);
    for (int t = 0; t < 4; t++) iqdb_filter_destroy(filters[t]);
    free(v);
    free(qs);
    free(m.ids);
    free(m.vecs);
    free(m.tag);
    iqdb_close(db);
}

static void test_api_differential(void **state) {
    (void)state;
    const iqdb_metric metrics[] = {IQDB_METRIC_L2, IQDB_METRIC_COSINE, IQDB_METRIC_DOT,
                                   IQDB_METRIC_L1, IQDB_METRIC_HAMMING};
    const uint32_t dims[] = {1, 7, 33, 130};
    uint64_t seed = 1000;
    for (size_t mi = 0; mi < 5; mi++)
        for (size_t di = 0; di < 4; di++) run_differential(metrics[mi], dims[di], seed++);
}

/* Batch search with many queries (several worker tasks) equals single searches. */
static void test_api_batch_large(void **state) {
    (void)state;
    const uint32_t dim = 96;
    iqdb *db = open_db(dim, IQDB_METRIC_L2);
    iqdbt_rng r = {77};
    float *v = malloc(3000 * (size_t)dim * sizeof(float));
    iqdbt_fill(&r, v, 3000 * (size_t)dim, -1, 1);
    iqdb_id *ids = malloc(3000 * sizeof *ids);
    for (size_t i = 0; i < 3000; i++) ids[i] = i * 7;
    assert_int_equal(iqdb_upsert_batch(db, 3000, ids, v, NULL), IQDB_OK);
    const size_t nq = 203, k = 10;
    float *qs = malloc(nq * dim * sizeof(float));
    iqdbt_fill(&r, qs, nq * dim, -1, 1);
    iqdb_hit *bh = malloc(nq * k * sizeof *bh);
    size_t *bn = malloc(nq * sizeof *bn);
    assert_int_equal(iqdb_search_batch(db, qs, nq, k, NULL, bh, bn), IQDB_OK);
    for (size_t i = 0; i < nq; i++) {
        iqdb_hit h[10];
        size_t n;
        assert_int_equal(iqdb_search(db, qs + i * dim, k, NULL, h, &n, NULL), IQDB_OK);
        assert_int_equal(bn[i], n);
        assert_memory_equal(bh + i * k, h, n * sizeof *h);
    }
    free(v);
    free(ids);
    free(qs);
    free(bh);
    free(bn);
    iqdb_close(db);
}

/* L2 batch search takes dot products and re-checks only the rows a rounding bound cannot rule
 * out (src/index/flat.c): it must still equal single searches bit for bit where that bound is
 * tested hardest — a large common offset (distances tiny against the norms, heavy
 * cancellation), exact duplicates and near-ties, norms that overflow to inf, and values whose
 * products underflow. */
static void test_api_batch_l2_cancellation(void **state) {
    (void)state;
    const uint32_t dims[] = {3, 100, 784};
    const float offsets[] = {1000.0f, 0.0f, 3e18f, 1e-21f};
    iqdbt_rng r = {91};
    for (size_t di = 0; di < 3; di++)
        for (size_t oi = 0; oi < 4; oi++) {
            const uint32_t dim = dims[di];
            const float off = offsets[oi], scale = oi == 1 ? 1.0f : off * 1e-5f;
            const size_t n = 700, nq = 37, k = 12;
            iqdb *db = open_db(dim, IQDB_METRIC_L2);
            float *v = malloc(n * dim * sizeof(float)), *qs = malloc(nq * dim * sizeof(float));
            iqdb_id *ids = malloc(n * sizeof *ids);
            for (size_t i = 0; i < n; i++) {
                ids[i] = i;
                for (uint32_t j = 0; j < dim; j++)
                    v[i * dim + j] = off + scale * (float)((int)(iqdbt_next(&r) % 9) - 4);
                if (i % 5 == 4) memcpy(v + i * dim, v + (i - 3) * dim, dim * sizeof(float));
            }
            for (size_t i = 0; i < nq * dim; i++)
                qs[i] = off + scale * (float)((int)(iqdbt_next(&r) % 9) - 4) * 0.5f;
            memcpy(qs, v + 10 * dim, dim * sizeof(float)); /* a query equal to a stored row */
            assert_int_equal(iqdb_upsert_batch(db, n, ids, v, NULL), IQDB_OK);
            iqdb_hit *bh = malloc(nq * k * sizeof *bh), h[12];
            size_t *bn = malloc(nq * sizeof *bn), hn;
            assert_int_equal(iqdb_search_batch(db, qs, nq, k, NULL, bh, bn), IQDB_OK);
            for (size_t i = 0; i < nq; i++) {
                assert_int_equal(iqdb_search(db, qs + i * dim, k, NULL, h, &hn, NULL), IQDB_OK);
                if (bn[i] != hn || memcmp(bh + i * k, h, hn * sizeof *h) != 0) {
                    print_error("dim %u offset %g query %zu: batch differs from single\n", dim,
                                (double)off, i);
                    fail();
                }
            }
            free(v);
            free(qs);
            free(ids);
            free(bh);
            free(bn);
            iqdb_close(db);
        }
}

/* Steady-state single searches do not allocate. */
static void test_api_search_no_alloc_steady_state(void **state) {
    (void)state;
    iqdb *db = open_db(8, IQDB_METRIC_COSINE);
    float v[8];
    iqdbt_rng r = {9};
    iqdb_meta *m;
    iqdb_meta_create(NULL, &m);
    iqdb_meta_set_string(m, "lang", "en");
    for (uint64_t i = 0; i < 500; i++) {
        iqdbt_fill(&r, v, 8, -1, 1);
        iqdb_upsert(db, i, v, i % 3 ? m : NULL);
    }
    iqdb_filter *f;
    assert_int_equal(iqdb_filter_parse(NULL, "lang IN ('en', 'de')", 20, &f, NULL), IQDB_OK);
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    p.filter = f;
    iqdb_hit hits[50];
    size_t n;
    iqdb_search(db, v, 50, &p, hits, &n, NULL); /* warm up the scratch */
    long long allocs = atomic_load(&A.count);
    for (int i = 0; i < 200; i++) {
        iqdbt_fill(&r, v, 8, -1, 1);
        assert_int_equal(
            iqdb_search(db, v, (size_t)(1 + i % 50), i % 2 ? &p : NULL, hits, &n, NULL), IQDB_OK);
    }
    assert_int_equal(atomic_load(&A.count), allocs);
    iqdb_filter_destroy(f);
    iqdb_meta_destroy(m);
    iqdb_close(db);
}

/* Stats: memory components add up and follow the data. */
static void test_api_stats_memory(void **state) {
    (void)state;
    iqdb *db = open_db(64, IQDB_METRIC_L2);
    iqdb_stats a = {.struct_size = sizeof a}, b = {.struct_size = sizeof b};
    iqdb_stats_get(db, &a);
    float v[64] = {0};
    iqdb_meta *m;
    iqdb_meta_create(NULL, &m);
    iqdb_meta_set_string(m, "title", "a reasonably long title string");
    for (uint64_t i = 0; i < 5000; i++) iqdb_upsert(db, i, v, m);
    iqdb_stats_get(db, &b);
    assert_int_equal(b.count, 5000);
    assert_true(b.mem_vectors >= 5000 * 64 * sizeof(float));
    assert_true(b.mem_meta > a.mem_meta + 5000 * 30);
    assert_true(b.mem_rows > a.mem_rows);
    assert_true(b.mem_vectors + b.mem_rows + b.mem_meta + b.mem_index <= b.mem_total);
    assert_int_equal((long long)b.mem_total, atomic_load(&A.live) - 0); /* everything counted */
    assert_int_equal(b.meta_keys, 1);
    iqdb_meta_destroy(m);
    iqdb_close(db);
}

int main(void) {
    iqdbt_simd_gate();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_api_version_and_codes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_open_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_open_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_open_bad_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_options_struct_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_simd_override, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_upsert_get_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_slot_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_bad_input_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_upsert_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_search_empty_and_k0, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_search_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_search_huge_k, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_metric_distances, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_cosine_zero_vector, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_ties_insert_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_search_info, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_search_batch_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_differential, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_batch_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_batch_l2_cancellation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_search_no_alloc_steady_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_stats_memory, setup, teardown),
    };
    return cmocka_run_group_tests_name("api", tests, NULL, NULL);
}
