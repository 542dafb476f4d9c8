/*
 * test_hnsw_quant.c — HNSW with SQ8 and binary codes through the public API (plus the index's
 * serialize / load verbs through the internal accessors).
 *
 *  - recall@10 against exact search for SQ8 and binary, every metric, filtered and not, after
 *    iqdb_optimize and after a serialize -> load round trip (which gives the same bytes and the
 *    same answers: a reopen never retrains);
 *  - every reported distance is exact (re-ranked against the rows); codes only: the metric to
 *    the decoded vector, iqdb_get returns that vector, the vectors are released, memory goes
 *    down and recall against the original vectors stays high;
 *  - training at the threshold (a bulk build is linked on codes), retraining after growth,
 *    deletes and replaces keep iqdb_check (which re-encodes every row) happy;
 *  - batch equals single; the result cache never serves a stale answer;
 *  - bad input: PQ with HNSW, hostile section bytes.
 * Every handle uses the counting allocator; teardown asserts nothing leaked. Random data come
 * from fixed seeds, printed on failure. Runs once (the graph logic does not depend on the
 * kernel level; the kernels are tested per level in test_dist and test_quant).
 */
#include "../common/testutil.h"

#include "index/index.h"

static iqdbt_alloc A;
static iqdb_meta *tag_meta[5];

static int setup(void **state) {
    (void)state;
    iqdbt_alloc_reset(&A);
    for (int t = 0; t < 5; t++) {
        assert_int_equal(iqdb_meta_create(NULL, &tag_meta[t]), IQDB_OK);
        iqdb_meta_set_int(tag_meta[t], "tag", t);
    }
    return 0;
}
static int teardown(void **state) {
    (void)state;
    for (int t = 0; t < 5; t++) iqdb_meta_destroy(tag_meta[t]);
    assert_int_equal(atomic_load(&A.live), 0);
    assert_int_equal(atomic_load(&A.blocks), 0);
    assert_int_equal(atomic_load(&A.bad_free), 0);
    return 0;
}

static const char *metric_name(iqdb_metric m) {
    static const char *const n[] = {"default", "l2", "cosine", "dot", "l1", "hamming"};
    return n[m];
}
static const char *quant_name(iqdb_quant q) {
    static const char *const n[] = {"none", "sq8", "binary", "pq"};
    return n[q];
}

enum { K = 10, MAXK = 64 };

/* ---- data: n points around `clusters` centres; Hamming data 0/1 with 20% of the bits flipped */

typedef struct dataset {
    uint32_t dim;
    size_t n;
    float *x;
} dataset;

static dataset gen(iqdb_metric m, size_t n, uint32_t dim, uint32_t clusters, uint64_t seed) {
    iqdbt_rng r = {seed};
    dataset d = {dim, n, malloc(n * dim * sizeof(float))};
    float *c = malloc((size_t)clusters * dim * sizeof(float));
    for (size_t i = 0; i < (size_t)clusters * dim; i++)
        c[i] = m == IQDB_METRIC_HAMMING ? (float)(iqdbt_next(&r) & 1) : iqdbt_uniform(&r, -1, 1);
    for (size_t i = 0; i < n; i++) {
        const float *ci = c + (iqdbt_next(&r) % clusters) * dim;
        for (uint32_t j = 0; j < dim; j++)
            d.x[i * dim + j] = m == IQDB_METRIC_HAMMING
                                   ? (iqdbt_next(&r) % 5 == 0 ? 1.0f - ci[j] : ci[j])
                                   : ci[j] + iqdbt_uniform(&r, -0.8f, 0.8f);
    }
    free(c);
    return d;
}

static void gen_queries(float *q, size_t nq, const dataset *ds, iqdb_metric m, uint64_t seed) {
    iqdbt_rng r = {seed};
    const uint32_t dim = ds->dim;
    for (size_t i = 0; i < nq; i++) {
        const float *x = ds->x + (iqdbt_next(&r) % ds->n) * dim;
        for (uint32_t j = 0; j < dim; j++)
            q[i * dim + j] = m == IQDB_METRIC_HAMMING ? (iqdbt_next(&r) % 8 ? x[j] : 1.0f - x[j])
                                                      : x[j] + iqdbt_uniform(&r, -0.2f, 0.2f);
    }
}

static iqdb *open_q(uint32_t dim, iqdb_metric m, iqdb_quant q, uint32_t flags, uint32_t threads,
                    uint32_t cache) {
    iqdb_options o;
    iqdb_options_init(&o, dim, m);
    o.allocator = iqdbt_allocator(&A, 1);
    o.index = IQDB_INDEX_HNSW;
    o.quant.kind = q;
    o.quant.flags = flags;
    o.threads = threads;
    o.cache_entries = cache;
    o.hnsw.ef_construction = 64; /* builds in a fraction of the default's time */
    iqdb *db = NULL;
    int rc = iqdb_open(NULL, &o, &db);
    if (rc) print_error("open: %s\n", iqdb_errmsg(NULL));
    assert_int_equal(rc, IQDB_OK);
    return db;
}

/* Rows [from, to) with ids id0 + i, metadata {"tag": i % 5} (none for every 7th row). */
static void load_rows(iqdb *db, const dataset *ds, size_t from, size_t to, iqdb_id id0) {
    enum { CH = 4096 };
    static iqdb_id ids[CH];
    static const iqdb_meta *metas[CH];
    for (size_t b = from; b < to; b += CH) {
        size_t m = IQDB_MIN((size_t)CH, to - b);
        for (size_t i = 0; i < m; i++) {
            ids[i] = id0 + b + i;
            metas[i] = (b + i) % 7 == 6 ? NULL : tag_meta[(b + i) % 5];
        }
        assert_int_equal(iqdb_upsert_batch(db, m, ids, ds->x + b * ds->dim, metas), IQDB_OK);
    }
}

static iqdb_stats stats_of(iqdb *db) {
    iqdb_stats s;
    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    assert_int_equal(iqdb_stats_get(db, &s), IQDB_OK);
    return s;
}

static iqdb_filter *tag_filter(int t) {
    char text[32];
    if (t < 5)
        snprintf(text, sizeof text, "tag = %d", t);
    else
        snprintf(text, sizeof text, "NOT tag = %d", t - 5);
    iqdb_filter *f;
    assert_int_equal(iqdb_filter_parse(NULL, text, strlen(text), &f, NULL), IQDB_OK);
    return f;
}

/* Every hit: an existing id whose distance to what iqdb_get returns (the row, or codes only
 * the decoded code) matches the reported one (double oracle), passing the filter (tagf < 0:
 * none; below 5: tag = tagf; else NOT tag = tagf - 5), sorted, distinct. */
static void check_hits(iqdb *db, iqdb_metric m, const float *q, uint32_t dim, const iqdb_hit *h,
                       size_t n, int tagf) {
    float *v = malloc(dim * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        iqdb_meta *meta = NULL;
        assert_int_equal(iqdb_get(db, h[i].id, v, tagf >= 0 ? &meta : NULL), IQDB_OK);
        double want = iqdbt_dist(m, q, v, dim);
        if (fabs(h[i].distance - want) > 1e-4 * (1 + fabs(want))) {
            print_error("hit %zu id %llu: distance %.9g, oracle %.9g\n", i,
                        (unsigned long long)h[i].id, h[i].distance, want);
            fail();
        }
        if (tagf >= 0) {
            int64_t t = -1;
            int rc = iqdb_meta_get_int(meta, "tag", &t);
            if (tagf < 5) { /* tag = tagf */
                assert_int_equal(rc, IQDB_OK);
                assert_int_equal(t, tagf);
            } else { /* NOT tag = tagf - 5 */
                assert_true(rc != IQDB_OK || t != tagf - 5);
            }
            iqdb_meta_destroy(meta);
        }
        if (i) assert_true(h[i - 1].distance <= h[i].distance);
        for (size_t j = 0; j < i; j++) assert_true(h[j].id != h[i].id);
    }
    free(v);
}

/* recall@k of `p` against the exact search with the same filter (a hit at a distance <= the
 * true k-th distance counts); every hit is checked; the count must be min(k, matching); the
 * strategy must be the graph's unless `any_strategy`. */
static size_t graph_walks; /* searches of recall() that walked the graph */
static double recall(iqdb *db, iqdb_metric m, const float *qs, size_t nq, uint32_t dim, size_t k,
                     const iqdb_search_params *p, int tagf) {
    iqdb_search_params ex = *p;
    ex.exact = 1;
    size_t good = 0, want = 0;
    for (size_t i = 0; i < nq; i++) {
        iqdb_hit h[MAXK], e[MAXK];
        size_t n, ne;
        iqdb_search_info info = {.struct_size = sizeof info};
        assert_int_equal(iqdb_search(db, qs + i * dim, k, p, h, &n, &info), IQDB_OK);
        assert_int_equal(iqdb_search(db, qs + i * dim, k, &ex, e, &ne, NULL), IQDB_OK);
        assert_int_equal(info.complete, 1);
        assert_int_equal(n, ne);
        if (info.strategy == IQDB_STRATEGY_HNSW || info.strategy == IQDB_STRATEGY_HNSW_FILTERED) {
            assert_true(info.n_reranked >= n);
            graph_walks++;
        }
        check_hits(db, m, qs + i * dim, dim, h, n, tagf);
        for (size_t j = 0; j < n; j++) good += h[j].distance <= e[ne - 1].distance;
        want += ne;
    }
    return want ? (double)good / (double)want : 1.0;
}

static iqdbt_membuf serialize(iqdb *db) {
    iqdbt_membuf b = {0};
    iqdb__sink sink = {iqdbt_mb_write, &b};
    assert_int_equal(iqdb__index_serialize(iqdb__db_index(db), iqdb__db_env(db), &sink), IQDB_OK);
    return b;
}
static int load(iqdb *db, const uint8_t *p, size_t n) {
    iqdbt_membuf b = {(uint8_t *)p, n, n, 0};
    iqdb__source src = {iqdbt_mb_read, &b};
    return iqdb__index_load(iqdb__db_index(db), iqdb__db_env(db), &src);
}

/* Same answers (ids and distances) from two handles. */
static void assert_same_answers(iqdb *a, iqdb *b, const float *qs, size_t nq, uint32_t dim,
                                const iqdb_search_params *p) {
    for (size_t i = 0; i < nq; i++) {
        iqdb_hit ha[K], hb[K];
        size_t na, nb;
        assert_int_equal(iqdb_search(a, qs + i * dim, K, p, ha, &na, NULL), IQDB_OK);
        assert_int_equal(iqdb_search(b, qs + i * dim, K, p, hb, &nb, NULL), IQDB_OK);
        assert_int_equal(na, nb);
        assert_memory_equal(ha, hb, na * sizeof *ha);
    }
}

/* ---- recall ---------------------------------------------------------------------------------- */

enum { NQ = 30 };

/* Floors: measured (printed below) minus a margin; a graph searched on codes without a correct
 * re-ranking or with a broken kernel falls far below them. */
static double floor_of(iqdb_quant q, iqdb_metric m) {
    if (q == IQDB_QUANT_SQ8) return 0.95; /* measured 1.000 for every metric */
    /* binary codes keep one bit a dimension: the proxy orders neighbours coarsely (dot, whose
     * nearest rows are long ones, least of all); the shortlist of k * 16 recovers most
     * (measured 0.91 dot, 0.93 cosine and L1, 0.98 L2, 1.0 Hamming) */
    return m == IQDB_METRIC_DOT ? 0.85 : 0.88;
}

static void run_recall(iqdb_metric m, iqdb_quant quant) {
    const uint32_t dim = 32;
    const size_t n = 3000;
    uint64_t seed = 400 + (uint64_t)m * 10 + (uint64_t)quant;
    printf("recall: %s %s (seed %llu)\n", metric_name(m), quant_name(quant),
           (unsigned long long)seed);
    dataset ds = gen(m, n, dim, 24, seed);
    iqdb *db = open_q(dim, m, quant, 0, 2, 0);
    load_rows(db, &ds, 0, n, 0);
    iqdb_stats st = stats_of(db);
    assert_int_equal(st.trained, 1);
    assert_int_equal(st.quant, quant);
    assert_int_equal(st.code_bytes, quant == IQDB_QUANT_SQ8 ? dim : 8u);
    assert_true(st.mem_codes >= n * st.code_bytes);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    float *q = malloc(NQ * dim * sizeof(float));
    gen_queries(q, NQ, &ds, m, seed + 1);
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    iqdb_filter *f = tag_filter(2), *g = tag_filter(5 + 2);
    double fl = floor_of(quant, m);
    for (int round = 0; round < 3; round++) {
        graph_walks = 0;
        p.filter = NULL;
        double r = recall(db, m, q, NQ, dim, K, &p, -1);
        assert_int_equal(graph_walks, NQ);
        p.filter = f; /* 17 % of the rows: the planner may scan */
        double rf = recall(db, m, q, NQ, dim, K, &p, 2);
        /* 71 %, and a short walk (ef 40): the planner walks the graph */
        iqdb_search_params pg = p;
        pg.filter = g;
        pg.ef = 16;
        pg.oversample = 4;
        graph_walks = 0;
        double rg = recall(db, m, q, NQ, dim, K, &pg, 5 + 2);
        assert_int_equal(graph_walks, NQ);
        p.filter = NULL;
        static const char *const what[] = {"built", "optimized", "loaded"};
        printf("  %-9s recall@10 %.3f, filtered (tag = 2) %.3f, (NOT tag = 2) %.3f\n", what[round],
               r, rf, rg);
        assert_true(r >= fl);
        assert_true(rf >= fl);
        /* binary: a shortlist of 40 is short for one-bit codes (the default is 160, which the
         * planner scans at this size); measured 0.63-0.71 */
        assert_true(rg >= (quant == IQDB_QUANT_SQ8 ? fl : 0.55));
        if (round == 0) {
            assert_int_equal(iqdb_optimize(db), IQDB_OK);
            assert_int_equal(iqdb_check(db), IQDB_OK);
        } else if (round == 1) {
            /* a twin of the same rows takes db's section: the same bytes back, the same answers */
            iqdb *twin = open_q(dim, m, quant, 0, 2, 0);
            load_rows(twin, &ds, 0, n, 0);
            iqdbt_membuf x = serialize(db);
            assert_int_equal(load(twin, x.p, x.n), IQDB_OK);
            iqdbt_membuf y = serialize(twin);
            assert_int_equal(x.n, y.n);
            assert_memory_equal(x.p, y.p, x.n);
            assert_int_equal(iqdb_check(twin), IQDB_OK);
            iqdb_stats s1 = stats_of(db), s2 = stats_of(twin);
            assert_int_equal(s1.trained_rows, s2.trained_rows);
            assert_int_equal(s1.mem_codes, s2.mem_codes);
            assert_same_answers(db, twin, q, NQ, dim, &p);
            free(x.p);
            free(y.p);
            iqdb_close(db);
            db = twin;
        }
    }
    /* a larger oversample re-ranks more and never finds less here */
    iqdb_search_params big = p;
    big.oversample = 64;
    big.ef = 640;
    double rb = recall(db, m, q, NQ, dim, K, &big, -1);
    printf("  oversample 64, ef 640: recall@10 %.3f\n", rb);
    assert_true(rb >= 0.97);
    iqdb_filter_destroy(f);
    iqdb_filter_destroy(g);
    free(q);
    iqdb_close(db);
    free(ds.x);
}

static void test_hnsw_quant_recall_sq8(void **state) {
    (void)state;
    for (int m = IQDB_METRIC_L2; m <= IQDB_METRIC_HAMMING; m++)
        run_recall((iqdb_metric)m, IQDB_QUANT_SQ8);
}

static void test_hnsw_quant_recall_binary(void **state) {
    (void)state;
    for (int m = IQDB_METRIC_L2; m <= IQDB_METRIC_HAMMING; m++)
        run_recall((iqdb_metric)m, IQDB_QUANT_BINARY);
}

/* ---- training ------------------------------------------------------------------------------ */

/* Untrained below 1024 rows (searches then run on the rows and stay exact in distance); the
 * write that crosses the mark trains and encodes every row; replaces and deletes keep codes
 * and rows consistent; a 4-fold growth retrains. */
static void test_hnsw_quant_training(void **state) {
    (void)state;
    const uint32_t dim = 16;
    dataset ds = gen(IQDB_METRIC_L2, 4400, dim, 16, 77);
    iqdb *db = open_q(dim, IQDB_METRIC_L2, IQDB_QUANT_SQ8, 0, 1, 0);
    load_rows(db, &ds, 0, 1000, 0);
    iqdb_stats st = stats_of(db);
    assert_int_equal(st.trained, 0);
    assert_int_equal(st.mem_codes, 0);
    float q[4 * 16];
    gen_queries(q, 4, &ds, IQDB_METRIC_L2, 78);
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    iqdb_search_info info = {.struct_size = sizeof info};
    iqdb_hit h[K];
    size_t n;
    assert_int_equal(iqdb_search(db, q, K, &p, h, &n, &info), IQDB_OK);
    assert_int_equal(info.n_reranked, 0);
    check_hits(db, IQDB_METRIC_L2, q, dim, h, n, -1);
    for (size_t i = 1000; i < 1030; i++) /* single upserts cross the mark */
        assert_int_equal(iqdb_upsert(db, i, ds.x + i * dim, NULL), IQDB_OK);
    st = stats_of(db);
    assert_int_equal(st.trained, 1);
    assert_int_equal(st.trained_rows, 1024);
    assert_true(st.mem_codes >= 1030ull * dim);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    assert_int_equal(iqdb_search(db, q, K, &p, h, &n, &info), IQDB_OK);
    assert_true(info.n_reranked >= K);
    check_hits(db, IQDB_METRIC_L2, q, dim, h, n, -1);
    /* replaces (a new vector for an old id) and deletes */
    for (iqdb_id id = 0; id < 300; id += 3)
        assert_int_equal(iqdb_upsert(db, id, ds.x + (4000 + id % 200) * dim, NULL), IQDB_OK);
    for (iqdb_id id = 1; id < 600; id += 4) assert_int_equal(iqdb_delete(db, id, NULL), IQDB_OK);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    double r = recall(db, IQDB_METRIC_L2, q, 4, dim, K, &p, -1);
    assert_true(r >= 0.9);
    /* growth: retrained at 4 x 1024 rows (880 rows + 3370) */
    load_rows(db, &ds, 1030, 4400, 0);
    st = stats_of(db);
    assert_true(st.trained_rows >= 4096);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    r = recall(db, IQDB_METRIC_L2, q, 4, dim, K, &p, -1);
    assert_true(r >= 0.9);
    iqdb_close(db);
    /* deleted down to nothing and optimized: untrained again (the rows are stored) */
    db = open_q(dim, IQDB_METRIC_L2, IQDB_QUANT_SQ8, 0, 1, 0);
    load_rows(db, &ds, 0, 1100, 0);
    assert_int_equal(stats_of(db).trained, 1);
    for (iqdb_id id = 0; id < 1100; id++) iqdb_delete(db, id, NULL);
    assert_int_equal(iqdb_optimize(db), IQDB_OK);
    st = stats_of(db);
    assert_int_equal(st.trained, 0);
    assert_int_equal(st.mem_codes, 0);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    /* a small database trains on optimize */
    load_rows(db, &ds, 0, 200, 0);
    assert_int_equal(iqdb_optimize(db), IQDB_OK);
    assert_int_equal(stats_of(db).trained, 1);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    iqdb_close(db);
    free(ds.x);
}

/* A bulk build on two threads gives a valid graph and the same recall class as one thread. */
static void test_hnsw_quant_batch_and_threads(void **state) {
    (void)state;
    const uint32_t dim = 24;
    dataset ds = gen(IQDB_METRIC_COSINE, 3000, dim, 16, 91);
    iqdb *db = open_q(dim, IQDB_METRIC_COSINE, IQDB_QUANT_SQ8, 0, 2, 0);
    load_rows(db, &ds, 0, 3000, 0);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    float q[NQ * 24];
    gen_queries(q, NQ, &ds, IQDB_METRIC_COSINE, 92);
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    for (int filtered = 0; filtered < 2; filtered++) {
        iqdb_filter *f = filtered ? tag_filter(1) : NULL;
        p.filter = f;
        iqdb_hit hb[NQ * K];
        size_t nb[NQ];
        assert_int_equal(iqdb_search_batch(db, q, NQ, K, &p, hb, nb), IQDB_OK);
        for (size_t i = 0; i < NQ; i++) {
            iqdb_hit h[K];
            size_t n;
            assert_int_equal(iqdb_search(db, q + i * dim, K, &p, h, &n, NULL), IQDB_OK);
            assert_int_equal(n, nb[i]);
            assert_memory_equal(h, hb + i * K, n * sizeof *h);
        }
        iqdb_filter_destroy(f);
    }
    iqdb_close(db);
    free(ds.x);
}

/* The result cache keeps approximate entries only until the next write: a search after an
 * upsert that lands right on the query sees it. */
static void test_hnsw_quant_cache(void **state) {
    (void)state;
    const uint32_t dim = 16;
    dataset ds = gen(IQDB_METRIC_L2, 2000, dim, 8, 31);
    iqdb *db = open_q(dim, IQDB_METRIC_L2, IQDB_QUANT_SQ8, 0, 1, 64);
    load_rows(db, &ds, 0, 2000, 0);
    float q[16];
    gen_queries(q, 1, &ds, IQDB_METRIC_L2, 32);
    iqdb_hit h[K];
    size_t n;
    iqdb_search_info info = {.struct_size = sizeof info};
    assert_int_equal(iqdb_search(db, q, K, NULL, h, &n, &info), IQDB_OK);
    assert_int_equal(iqdb_search(db, q, K, NULL, h, &n, &info), IQDB_OK);
    assert_int_equal(info.cache_hit, 1);
    assert_int_equal(iqdb_upsert(db, 999999, q, NULL), IQDB_OK);
    assert_int_equal(iqdb_search(db, q, K, NULL, h, &n, &info), IQDB_OK);
    assert_int_equal(info.cache_hit, 0);
    assert_int_equal(h[0].id, 999999);
    assert_true(h[0].distance == 0.0f);
    iqdb_close(db);
    free(ds.x);
}

/* ---- codes only ------------------------------------------------------------------------------ */

static void run_codes_only(iqdb_metric m, iqdb_quant quant) {
    const uint32_t dim = 24;
    uint64_t seed = 600 + (uint64_t)m * 10 + (uint64_t)quant;
    printf("codes only: %s %s (seed %llu)\n", metric_name(m), quant_name(quant),
           (unsigned long long)seed);
    dataset ds = gen(m, 1500, dim, 12, seed);
    iqdb *db = open_q(dim, m, quant, IQDB_QUANT_CODES_ONLY, 2, 0);
    load_rows(db, &ds, 0, 1000, 0);
    iqdb_stats st = stats_of(db);
    assert_int_equal(st.trained, 0);
    assert_true(st.mem_vectors >= 1000ull * dim * sizeof(float));
    load_rows(db, &ds, 1000, 1300, 0); /* trains at 1024: the vectors go */
    st = stats_of(db);
    assert_int_equal(st.trained, 1);
    assert_true(st.mem_vectors < 4096);
    assert_true(st.mem_codes >= 1300ull * st.code_bytes);
    load_rows(db, &ds, 1300, 1500, 0); /* inserted as codes only */
    assert_int_equal(iqdb_check(db), IQDB_OK);
    float q[NQ * 24];
    gen_queries(q, NQ, &ds, m, seed + 1);
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    iqdb_filter *f = tag_filter(3);
    for (int round = 0; round < 2; round++) {
        /* against the exact search over the codes; distances to the decoded vectors */
        double r = recall(db, m, q, NQ, dim, K, &p, -1);
        p.filter = f;
        double rf = recall(db, m, q, NQ, dim, K, &p, 3);
        p.filter = NULL;
        printf("  %s recall@10 (against the exact search of the codes) %.3f, filtered %.3f\n",
               round ? "optimized" : "built    ", r, rf);
        double fl = quant == IQDB_QUANT_SQ8 ? 0.9 : 0.75;
        assert_true(r >= fl);
        assert_true(rf >= fl);
        if (round == 0) {
            assert_int_equal(iqdb_optimize(db), IQDB_OK);
            assert_int_equal(iqdb_check(db), IQDB_OK);
            assert_int_equal(stats_of(db).trained, 1);
        }
    }
    /* recall against the original vectors (an exact flat database of the same rows) */
    if (quant == IQDB_QUANT_SQ8) {
        iqdb_options o;
        iqdb_options_init(&o, dim, m);
        o.allocator = iqdbt_allocator(&A, 1);
        iqdb *ref = NULL;
        assert_int_equal(iqdb_open(NULL, &o, &ref), IQDB_OK);
        load_rows(ref, &ds, 0, 1500, 0);
        size_t good = 0;
        for (int i = 0; i < NQ; i++) {
            iqdb_hit h[K], e[K];
            size_t n, ne;
            assert_int_equal(iqdb_search(db, q + i * dim, K, &p, h, &n, NULL), IQDB_OK);
            assert_int_equal(iqdb_search(ref, q + i * dim, K, NULL, e, &ne, NULL), IQDB_OK);
            for (size_t a = 0; a < n; a++)
                for (size_t b = 0; b < ne; b++) good += h[a].id == e[b].id;
        }
        printf("  recall@10 against the original vectors: %.3f\n", good / (double)(NQ * K));
        assert_true(good >= (size_t)(0.85 * NQ * K));
        iqdb_close(ref);
    }
    /* round trip into a twin built the same way; a codes-only section does not load into a
     * database that still has its vectors */
    iqdb *twin = open_q(dim, m, quant, IQDB_QUANT_CODES_ONLY, 2, 0);
    load_rows(twin, &ds, 0, 1500, 0);
    iqdbt_membuf x = serialize(db);
    assert_int_equal(load(twin, x.p, x.n), IQDB_OK);
    iqdbt_membuf y = serialize(twin);
    assert_int_equal(x.n, y.n);
    assert_memory_equal(x.p, y.p, x.n);
    assert_int_equal(iqdb_check(twin), IQDB_OK);
    assert_same_answers(db, twin, q, NQ, dim, &p);
    iqdb *full = open_q(dim, m, quant, 0, 1, 0);
    load_rows(full, &ds, 0, 1500, 0);
    assert_int_equal(load(full, x.p, x.n), IQDB_CORRUPT);
    assert_int_equal(iqdb_check(full), IQDB_OK);
    free(x.p);
    free(y.p);
    iqdb_close(full);
    iqdb_close(twin);
    /* deleted down to nothing, optimized, refilled: the quantizer stays */
    for (iqdb_id id = 0; id < 1500; id++) iqdb_delete(db, id, NULL);
    assert_int_equal(iqdb_optimize(db), IQDB_OK);
    assert_int_equal(stats_of(db).trained, 1);
    load_rows(db, &ds, 0, 100, 0);
    float v[24];
    assert_int_equal(iqdb_get(db, 5, v, NULL), IQDB_OK);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    iqdb_filter_destroy(f);
    iqdb_close(db);
    free(ds.x);
}

static void test_hnsw_quant_codes_only(void **state) {
    (void)state;
    run_codes_only(IQDB_METRIC_L2, IQDB_QUANT_SQ8);
    run_codes_only(IQDB_METRIC_COSINE, IQDB_QUANT_SQ8);
    run_codes_only(IQDB_METRIC_DOT, IQDB_QUANT_SQ8);
    run_codes_only(IQDB_METRIC_L2, IQDB_QUANT_BINARY);
    run_codes_only(IQDB_METRIC_HAMMING, IQDB_QUANT_BINARY);
}

/* ---- bad input ------------------------------------------------------------------------------- */

static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void test_hnsw_quant_bad_input(void **state) {
    (void)state;
    /* PQ with HNSW: unsupported, with a message that says what to use */
    iqdb_options o;
    iqdb_options_init(&o, 8, IQDB_METRIC_L2);
    o.allocator = iqdbt_allocator(&A, 1);
    o.index = IQDB_INDEX_HNSW;
    o.quant.kind = IQDB_QUANT_PQ;
    iqdb *db = (iqdb *)&o;
    assert_int_equal(iqdb_open(NULL, &o, &db), IQDB_UNSUPPORTED);
    assert_null(db);
    assert_non_null(strstr(iqdb_errmsg(NULL), "PQ"));
    /* hostile section bytes: every truncation and flipped bytes in the quantizer block fail
     * cleanly, and the index keeps what it had */
    const uint32_t dim = 12;
    dataset ds = gen(IQDB_METRIC_L2, 1500, dim, 8, 5);
    iqdb *a = open_q(dim, IQDB_METRIC_L2, IQDB_QUANT_BINARY, 0, 1, 0);
    iqdb *b = open_q(dim, IQDB_METRIC_L2, IQDB_QUANT_BINARY, 0, 1, 0);
    load_rows(a, &ds, 0, 1500, 0);
    load_rows(b, &ds, 0, 1500, 0);
    assert_int_equal(iqdb_optimize(b), IQDB_OK); /* b differs from a */
    iqdbt_membuf x = serialize(a), before = serialize(b);
    uint8_t *c = malloc(x.n);
    for (size_t cut = 0; cut < x.n; cut += 1 + cut / 16) {
        int rc = load(b, x.p, cut);
        if (rc == IQDB_OK) {
            print_error("a section cut at %zu of %zu bytes loaded\n", cut, x.n);
            fail();
        }
    }
    /* the version word: 3 is newer (IQDB_FORMAT); 1 says "no quantizer" (corrupt here) */
    memcpy(c, x.p, x.n);
    put32(c + 4, 3);
    assert_int_equal(load(b, c, x.n), IQDB_FORMAT);
    put32(c + 4, 1);
    assert_int_equal(load(b, c, x.n), IQDB_CORRUPT);
    /* a padding bit of the last node's binary code (dim 12 of 64 bits) */
    memcpy(c, x.p, x.n);
    c[x.n - 4 - 8 + 7] ^= 0x80;
    assert_int_equal(load(b, c, x.n), IQDB_CORRUPT);
    /* the block's kind and flags words (found after the graph: the block is 32 bytes before
     * the parameters, 3 * dim floats, and 1500 codes of 8 bytes, then the end marker) */
    size_t blk = x.n - 4 - 1500 * 8 - 3 * dim * 4 - 32;
    memcpy(c, x.p, x.n);
    put32(c + blk, IQDB_QUANT_SQ8);
    assert_int_equal(load(b, c, x.n), IQDB_CORRUPT);
    memcpy(c, x.p, x.n);
    put32(c + blk + 12, 1); /* "codes only", but b stores its rows */
    assert_int_equal(load(b, c, x.n), IQDB_CORRUPT);
    /* a NaN threshold */
    memcpy(c, x.p, x.n);
    put32(c + blk + 32, 0x7fc00000u);
    assert_int_equal(load(b, c, x.n), IQDB_CORRUPT);
    iqdbt_membuf after = serialize(b);
    assert_int_equal(after.n, before.n);
    assert_memory_equal(after.p, before.p, after.n);
    assert_int_equal(iqdb_check(b), IQDB_OK);
    /* the intact bytes load */
    assert_int_equal(load(b, x.p, x.n), IQDB_OK);
    assert_int_equal(iqdb_check(b), IQDB_OK);
    /* a quantized section does not load into an index without a quantizer */
    iqdb_options_init(&o, dim, IQDB_METRIC_L2);
    o.allocator = iqdbt_allocator(&A, 1);
    o.index = IQDB_INDEX_HNSW;
    iqdb *plain = NULL;
    assert_int_equal(iqdb_open(NULL, &o, &plain), IQDB_OK);
    load_rows(plain, &ds, 0, 1500, 0);
    assert_int_equal(load(plain, x.p, x.n), IQDB_CORRUPT);
    /* ... and a plain section (version 1) does not load into a quantized one */
    iqdbt_membuf v1 = serialize(plain);
    assert_int_equal(v1.p[4], 1);
    assert_int_equal(load(b, v1.p, v1.n), IQDB_CORRUPT);
    /* the search parameters are checked */
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    p.oversample = IQDB_MAX_OVERSAMPLE + 1;
    iqdb_hit h[K];
    size_t n;
    assert_int_equal(iqdb_search(b, ds.x, K, &p, h, &n, NULL), IQDB_INVALID);
    free(v1.p);
    free(after.p);
    free(before.p);
    free(x.p);
    free(c);
    iqdb_close(plain);
    iqdb_close(a);
    iqdb_close(b);
    free(ds.x);
}

/* ---- out of memory ------------------------------------------------------------------------- */

/* Answers of a few queries, for before / after comparisons. */
static void answers(iqdb *db, const float *q, uint32_t dim, iqdb_hit *out, size_t *n) {
    for (int i = 0; i < 4; i++)
        assert_int_equal(iqdb_search(db, q + i * dim, K, NULL, out + i * K, &n[i], NULL), IQDB_OK);
}

/* The write that trains (it crosses 1,024 rows), an optimize and a search, with the Nth
 * allocation failing, for every N until the call completes: a failed call returns IQDB_NOMEM
 * and leaves the answers, the count and the training state as they were; iqdb_check passes;
 * nothing leaks. */
static void test_hnsw_quant_oom(void **state) {
    (void)state;
    const uint32_t dim = 8;
    dataset ds = gen(IQDB_METRIC_L2, 1100, dim, 8, 17);
    float q[4 * 8];
    gen_queries(q, 4, &ds, IQDB_METRIC_L2, 18);
    for (int op = 0; op < 3; op++) {
        static const char *const names[] = {"upsert_batch (trains)", "optimize", "search"};
        long long n;
        int completed = 0;
        for (n = 1; n < 5000 && !completed; n++) {
            iqdb *db = open_q(dim, IQDB_METRIC_L2, IQDB_QUANT_SQ8, 0, 1, 0);
            load_rows(db, &ds, 0, op == 0 ? 1000 : 1100, 0);
            iqdb_hit before[4 * K], after[4 * K];
            size_t nb[4], na[4];
            answers(db, q, dim, before, nb);
            iqdb_stats s0 = stats_of(db);
            iqdbt_fail_after(&A, n, 0);
            int rc;
            if (op == 0) {
                iqdb_id ids[100];
                for (int i = 0; i < 100; i++) ids[i] = 1000 + (iqdb_id)i;
                rc = iqdb_upsert_batch(db, 100, ids, ds.x + 1000 * dim, NULL);
            } else if (op == 1) {
                rc = iqdb_optimize(db);
            } else {
                iqdb_hit h[K];
                size_t nh;
                rc = iqdb_search(db, q, K, NULL, h, &nh, NULL);
            }
            int failed = atomic_load(&A.failed);
            iqdbt_fail_off(&A);
            if (rc != IQDB_OK) {
                if (rc != IQDB_NOMEM) print_error("%s N=%lld: rc %d\n", names[op], n, rc);
                assert_int_equal(rc, IQDB_NOMEM);
                iqdb_stats s1 = stats_of(db);
                assert_int_equal(s1.count, s0.count);
                assert_int_equal(s1.trained, s0.trained);
                answers(db, q, dim, after, na);
                assert_memory_equal(nb, na, sizeof nb);
                assert_memory_equal(before, after, sizeof before);
            } else if (op == 0) {
                assert_int_equal(stats_of(db).trained, 1);
            }
            assert_int_equal(iqdb_check(db), IQDB_OK);
            assert_int_equal(iqdb_close(db), IQDB_OK);
            assert_int_equal(atomic_load(&A.live), 0);
            completed = rc == IQDB_OK && !failed;
        }
        printf("%-22s completed after %lld allocation failures\n", names[op], n - 2);
        assert_true(completed);
    }
    free(ds.x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hnsw_quant_recall_sq8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hnsw_quant_recall_binary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hnsw_quant_training, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hnsw_quant_batch_and_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hnsw_quant_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hnsw_quant_codes_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hnsw_quant_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hnsw_quant_oom, setup, teardown),
    };
    return cmocka_run_group_tests_name("hnsw_quant", tests, NULL, NULL);
}
