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
 *  - a durable database reopens with its codes (no retraining, the same answers);
 *  - out of memory in the training write, optimize and search changes nothing;
 *  - bad input: PQ with HNSW, hostile section bytes.
 * Every handle uses the counting allocator; teardown asserts nothing leaked. Random data come
 * from fixed seeds, printed on failure. Runs once (the graph logic does not depend on the
 * kernel level; the kernels are tested per level in test_dist and test_quant).
 */
#include "../common/annutil.h"

static iqdbt_alloc A;

static int setup(void **state) {
    (void)state;
    iqdbt_alloc_reset(&A);
    iqdbt_tags_make();
    return 0;
}
static int teardown(void **state) {
    (void)state;
    iqdbt_tags_free();
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

typedef iqdbt_dataset dataset;
static dataset gen(iqdb_metric m, size_t n, uint32_t dim, uint32_t clusters, uint64_t seed) {
    return iqdbt_gen(m, n, dim, clusters, 0.8f, seed);
}
static void gen_queries(float *q, size_t nq, const dataset *ds, iqdb_metric m, uint64_t seed) {
    iqdbt_gen_queries(q, nq, ds->dim, m, ds, seed);
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

static size_t graph_walks; /* searches of the last recall() that walked the graph */
static double recall(iqdb *db, iqdb_metric m, const float *qs, size_t nq, uint32_t dim, size_t k,
                     const iqdb_search_params *p, int tagf) {
    iqdbt_recall_info ri;
    double r = iqdbt_recall(db, m, qs, nq, dim, k, p, tagf, &ri);
    graph_walks = ri.graph_walks;
    return r;
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
    iqdbt_load_rows(db, &ds, 0, n, 0);
    iqdb_stats st = iqdbt_stats(db);
    assert_int_equal(st.trained, 1);
    assert_int_equal(st.quant, quant);
    assert_int_equal(st.code_bytes, quant == IQDB_QUANT_SQ8 ? dim : 8u);
    assert_true(st.mem_codes >= n * st.code_bytes);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    float *q = malloc(NQ * dim * sizeof(float));
    gen_queries(q, NQ, &ds, m, seed + 1);
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    iqdb_filter *f = iqdbt_tag_filter(2), *g = iqdbt_tag_filter(5 + 2);
    double fl = floor_of(quant, m);
    for (int round = 0; round < 3; round++) {
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
            iqdbt_load_rows(twin, &ds, 0, n, 0);
            iqdbt_membuf x = iqdbt_index_bytes(db);
            assert_int_equal(iqdbt_index_load(twin, x.p, x.n), IQDB_OK);
            iqdbt_membuf y = iqdbt_index_bytes(twin);
            assert_int_equal(x.n, y.n);
            assert_memory_equal(x.p, y.p, x.n);
            assert_int_equal(iqdb_check(twin), IQDB_OK);
            iqdb_stats s1 = iqdbt_stats(db), s2 = iqdbt_stats(twin);
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
    iqdbt_load_rows(db, &ds, 0, 1000, 0);
    iqdb_stats st = iqdbt_stats(db);
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
    iqdbt_check_hits(db, IQDB_METRIC_L2, q, dim, h, n, -1);
    for (size_t i = 1000; i < 1030; i++) /* single upserts cross the mark */
        assert_int_equal(iqdb_upsert(db, i, ds.x + i * dim, NULL), IQDB_OK);
    st = iqdbt_stats(db);
    assert_int_equal(st.trained, 1);
    assert_int_equal(st.trained_rows, 1024);
    assert_true(st.mem_codes >= 1030ull * dim);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    assert_int_equal(iqdb_search(db, q, K, &p, h, &n, &info), IQDB_OK);
    assert_true(info.n_reranked >= K);
    iqdbt_check_hits(db, IQDB_METRIC_L2, q, dim, h, n, -1);
    /* replaces (a new vector for an old id) and deletes */
    for (iqdb_id id = 0; id < 300; id += 3)
        assert_int_equal(iqdb_upsert(db, id, ds.x + (4000 + id % 200) * dim, NULL), IQDB_OK);
    for (iqdb_id id = 1; id < 600; id += 4) assert_int_equal(iqdb_delete(db, id, NULL), IQDB_OK);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    double r = recall(db, IQDB_METRIC_L2, q, 4, dim, K, &p, -1);
    assert_true(r >= 0.9);
    /* growth: retrained at 4 x 1024 rows (880 rows + 3370) */
    iqdbt_load_rows(db, &ds, 1030, 4400, 0);
    st = iqdbt_stats(db);
    assert_true(st.trained_rows >= 4096);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    r = recall(db, IQDB_METRIC_L2, q, 4, dim, K, &p, -1);
    assert_true(r >= 0.9);
    iqdb_close(db);
    /* deleted down to nothing and optimized: untrained again (the rows are stored) */
    db = open_q(dim, IQDB_METRIC_L2, IQDB_QUANT_SQ8, 0, 1, 0);
    iqdbt_load_rows(db, &ds, 0, 1100, 0);
    assert_int_equal(iqdbt_stats(db).trained, 1);
    for (iqdb_id id = 0; id < 1100; id++) iqdb_delete(db, id, NULL);
    assert_int_equal(iqdb_optimize(db), IQDB_OK);
    st = iqdbt_stats(db);
    assert_int_equal(st.trained, 0);
    assert_int_equal(st.mem_codes, 0);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    /* a small database trains on optimize */
    iqdbt_load_rows(db, &ds, 0, 200, 0);
    assert_int_equal(iqdb_optimize(db), IQDB_OK);
    assert_int_equal(iqdbt_stats(db).trained, 1);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    iqdb_close(db);
    free(ds.x);
}

/* A bulk build on the pool's two threads (linking on codes) gives a valid graph; a batch
 * search (on the pool) returns exactly what single searches return, filtered and not. */
static void test_hnsw_quant_batch_and_threads(void **state) {
    (void)state;
    const uint32_t dim = 24;
    dataset ds = gen(IQDB_METRIC_COSINE, 3000, dim, 16, 91);
    iqdb *db = open_q(dim, IQDB_METRIC_COSINE, IQDB_QUANT_SQ8, 0, 2, 0);
    iqdbt_load_rows(db, &ds, 0, 3000, 0);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    float q[NQ * 24];
    gen_queries(q, NQ, &ds, IQDB_METRIC_COSINE, 92);
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    for (int filtered = 0; filtered < 2; filtered++) {
        iqdb_filter *f = filtered ? iqdbt_tag_filter(1) : NULL;
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
    iqdbt_load_rows(db, &ds, 0, 2000, 0);
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
    iqdbt_load_rows(db, &ds, 0, 1000, 0);
    iqdb_stats st = iqdbt_stats(db);
    assert_int_equal(st.trained, 0);
    assert_true(st.mem_vectors >= 1000ull * dim * sizeof(float));
    iqdbt_load_rows(db, &ds, 1000, 1300, 0); /* trains at 1024: the vectors go */
    st = iqdbt_stats(db);
    assert_int_equal(st.trained, 1);
    assert_true(st.mem_vectors < 4096);
    assert_true(st.mem_codes >= 1300ull * st.code_bytes);
    iqdbt_load_rows(db, &ds, 1300, 1500, 0); /* inserted as codes only */
    assert_int_equal(iqdb_check(db), IQDB_OK);
    float q[NQ * 24];
    gen_queries(q, NQ, &ds, m, seed + 1);
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    iqdb_filter *f = iqdbt_tag_filter(3);
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
            assert_int_equal(iqdbt_stats(db).trained, 1);
        }
    }
    /* recall against the original vectors (an exact flat database of the same rows) */
    if (quant == IQDB_QUANT_SQ8) {
        iqdb_options o;
        iqdb_options_init(&o, dim, m);
        o.allocator = iqdbt_allocator(&A, 1);
        iqdb *ref = NULL;
        assert_int_equal(iqdb_open(NULL, &o, &ref), IQDB_OK);
        iqdbt_load_rows(ref, &ds, 0, 1500, 0);
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
    iqdbt_load_rows(twin, &ds, 0, 1500, 0);
    iqdbt_membuf x = iqdbt_index_bytes(db);
    assert_int_equal(iqdbt_index_load(twin, x.p, x.n), IQDB_OK);
    iqdbt_membuf y = iqdbt_index_bytes(twin);
    assert_int_equal(x.n, y.n);
    assert_memory_equal(x.p, y.p, x.n);
    assert_int_equal(iqdb_check(twin), IQDB_OK);
    assert_same_answers(db, twin, q, NQ, dim, &p);
    iqdb *full = open_q(dim, m, quant, 0, 1, 0);
    iqdbt_load_rows(full, &ds, 0, 1500, 0);
    assert_int_equal(iqdbt_index_load(full, x.p, x.n), IQDB_CORRUPT);
    assert_int_equal(iqdb_check(full), IQDB_OK);
    free(x.p);
    free(y.p);
    iqdb_close(full);
    iqdb_close(twin);
    /* deleted down to nothing (L2 cases only: every delete repairs lists, which costs), or the
     * first 100 rows, then optimized and refilled: the quantizer stays */
    int drain = m == IQDB_METRIC_L2;
    for (iqdb_id id = 0; id < (drain ? 1500u : 100u); id++) iqdb_delete(db, id, NULL);
    assert_int_equal(iqdb_optimize(db), IQDB_OK);
    assert_int_equal(iqdbt_stats(db).trained, 1);
    iqdbt_load_rows(db, &ds, 0, 100, 0);
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
    iqdbt_load_rows(a, &ds, 0, 1500, 0);
    iqdbt_load_rows(b, &ds, 0, 1500, 0);
    assert_int_equal(iqdb_optimize(b), IQDB_OK); /* b differs from a */
    iqdbt_membuf x = iqdbt_index_bytes(a), before = iqdbt_index_bytes(b);
    uint8_t *c = malloc(x.n);
    for (size_t cut = 0; cut < x.n; cut += 1 + cut / 16) {
        int rc = iqdbt_index_load(b, x.p, cut);
        if (rc == IQDB_OK) {
            print_error("a section cut at %zu of %zu bytes loaded\n", cut, x.n);
            fail();
        }
    }
    /* the version word: 3 is newer (IQDB_FORMAT); 1 says "no quantizer" (corrupt here) */
    memcpy(c, x.p, x.n);
    put32(c + 4, 3);
    assert_int_equal(iqdbt_index_load(b, c, x.n), IQDB_FORMAT);
    put32(c + 4, 1);
    assert_int_equal(iqdbt_index_load(b, c, x.n), IQDB_CORRUPT);
    /* a padding bit of the last node's binary code (dim 12 of 64 bits) */
    memcpy(c, x.p, x.n);
    c[x.n - 4 - 8 + 7] ^= 0x80;
    assert_int_equal(iqdbt_index_load(b, c, x.n), IQDB_CORRUPT);
    /* the block's kind and flags words (found after the graph: the block is 32 bytes before
     * the parameters, 3 * dim floats, and 1500 codes of 8 bytes, then the end marker) */
    size_t blk = x.n - 4 - 1500 * 8 - 3 * dim * 4 - 32;
    memcpy(c, x.p, x.n);
    put32(c + blk, IQDB_QUANT_SQ8);
    assert_int_equal(iqdbt_index_load(b, c, x.n), IQDB_CORRUPT);
    memcpy(c, x.p, x.n);
    put32(c + blk + 12, 1); /* "codes only", but b stores its rows */
    assert_int_equal(iqdbt_index_load(b, c, x.n), IQDB_CORRUPT);
    /* a NaN threshold */
    memcpy(c, x.p, x.n);
    put32(c + blk + 32, 0x7fc00000u);
    assert_int_equal(iqdbt_index_load(b, c, x.n), IQDB_CORRUPT);
    iqdbt_membuf after = iqdbt_index_bytes(b);
    assert_int_equal(after.n, before.n);
    assert_memory_equal(after.p, before.p, after.n);
    assert_int_equal(iqdb_check(b), IQDB_OK);
    /* the intact bytes load */
    assert_int_equal(iqdbt_index_load(b, x.p, x.n), IQDB_OK);
    assert_int_equal(iqdb_check(b), IQDB_OK);
    /* a quantized section does not load into an index without a quantizer */
    iqdb_options_init(&o, dim, IQDB_METRIC_L2);
    o.allocator = iqdbt_allocator(&A, 1);
    o.index = IQDB_INDEX_HNSW;
    iqdb *plain = NULL;
    assert_int_equal(iqdb_open(NULL, &o, &plain), IQDB_OK);
    iqdbt_load_rows(plain, &ds, 0, 1500, 0);
    assert_int_equal(iqdbt_index_load(plain, x.p, x.n), IQDB_CORRUPT);
    /* ... and a plain section (version 1) does not load into a quantized one */
    iqdbt_membuf v1 = iqdbt_index_bytes(plain);
    assert_int_equal(v1.p[4], 1);
    assert_int_equal(iqdbt_index_load(b, v1.p, v1.n), IQDB_CORRUPT);
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

/* ---- durable: the snapshot holds the codes ------------------------------------------------- */

/* A durable HNSW-SQ8 database: checkpointed, reopened — the reopen loads quantizer and codes
 * (trained_rows unchanged: no retraining), answers are identical, iqdb_check passes; rows
 * written after the checkpoint come back from the WAL and are encoded. */
static void test_hnsw_quant_durable(void **state) {
    (void)state;
    char dir[512], path[600];
    assert_int_equal(iqdbt_mkdtemp(dir, sizeof dir, "iqdb-test-hnswq"), 0);
    snprintf(path, sizeof path, "%s/db", dir);
    const uint32_t dim = 16;
    dataset ds = gen(IQDB_METRIC_COSINE, 1600, dim, 10, 55);
    float q[NQ * 16];
    gen_queries(q, NQ, &ds, IQDB_METRIC_COSINE, 56);
    iqdb_options o;
    iqdb_options_init(&o, dim, IQDB_METRIC_COSINE);
    o.allocator = iqdbt_allocator(&A, 1);
    o.index = IQDB_INDEX_HNSW;
    o.quant.kind = IQDB_QUANT_SQ8;
    o.hnsw.ef_construction = 64;
    o.sync = IQDB_SYNC_NEVER;
    iqdb *db = NULL;
    assert_int_equal(iqdb_open(path, &o, &db), IQDB_OK);
    iqdbt_load_rows(db, &ds, 0, 1500, 0);
    assert_int_equal(iqdb_checkpoint(db), IQDB_OK);
    iqdbt_load_rows(db, &ds, 1500, 1600, 0); /* in the WAL only */
    iqdb_stats s0 = iqdbt_stats(db);
    assert_int_equal(s0.trained, 1);
    iqdb_hit before[NQ * K], after[NQ * K];
    size_t nb[NQ], na[NQ];
    for (int i = 0; i < NQ; i++)
        assert_int_equal(iqdb_search(db, q + i * dim, K, NULL, before + i * K, &nb[i], NULL),
                         IQDB_OK);
    assert_int_equal(iqdb_close(db), IQDB_OK);
    /* reopened with options that ask for no quantizer: the file's parameters win */
    iqdb_options_init(&o, dim, IQDB_METRIC_COSINE);
    o.allocator = iqdbt_allocator(&A, 1);
    assert_int_equal(iqdb_open(path, &o, &db), IQDB_OK);
    iqdb_stats s1 = iqdbt_stats(db);
    assert_int_equal(s1.quant, IQDB_QUANT_SQ8);
    assert_int_equal(s1.trained, 1);
    assert_int_equal(s1.trained_rows, s0.trained_rows);
    assert_int_equal(s1.count, 1600);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    for (int i = 0; i < NQ; i++) {
        assert_int_equal(iqdb_search(db, q + i * dim, K, NULL, after + i * K, &na[i], NULL),
                         IQDB_OK);
        assert_int_equal(na[i], nb[i]);
        assert_memory_equal(after + i * K, before + i * K, na[i] * sizeof *after);
        iqdbt_check_hits(db, IQDB_METRIC_COSINE, q + i * dim, dim, after + i * K, na[i], -1);
    }
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    assert_true(recall(db, IQDB_METRIC_COSINE, q, NQ, dim, K, &p, -1) >= 0.95);
    assert_int_equal(iqdb_close(db), IQDB_OK);
    assert_int_equal(iqdbt_rmtree(dir), 0);
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
            iqdbt_load_rows(db, &ds, 0, op == 0 ? 1000 : 1100, 0);
            iqdb_hit before[4 * K], after[4 * K];
            size_t nb[4], na[4];
            answers(db, q, dim, before, nb);
            iqdb_stats s0 = iqdbt_stats(db);
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
                iqdb_stats s1 = iqdbt_stats(db);
                assert_int_equal(s1.count, s0.count);
                assert_int_equal(s1.trained, s0.trained);
                answers(db, q, dim, after, na);
                assert_memory_equal(nb, na, sizeof nb);
                assert_memory_equal(before, after, sizeof before);
            } else if (op == 0) {
                assert_int_equal(iqdbt_stats(db).trained, 1);
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
        cmocka_unit_test_setup_teardown(test_hnsw_quant_durable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hnsw_quant_oom, setup, teardown),
    };
    /* IQDB_TEST_FILTER = pattern: run only the matching tests (the concurrency label runs the
     * parallel build and batch test alone: tests/CMakeLists.txt) */
    const char *filter = getenv("IQDB_TEST_FILTER");
    if (filter && *filter) cmocka_set_test_filter(filter);
    return cmocka_run_group_tests_name("hnsw_quant", tests, NULL, NULL);
}
