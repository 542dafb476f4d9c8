/*
 * test_ivf.c — the IVF index and the quantizers through the public API (plus the index's
 * serialize / load verbs through the internal accessors).
 *
 *  - untrained and tiny databases search exactly; training starts at the documented threshold;
 *  - recall against exact search for every metric, filtered and not, small and larger
 *    databases, before and after iqdb_optimize and after a serialize -> load round trip;
 *    probing every list (and re-ranking everything) gives exactly the exact result;
 *  - filtered searches widen until k rows match, and say so;
 *  - batch equals single bit for bit; writes after training; optimize; stats; steady-state
 *    searches do not allocate; training is deterministic across thread counts;
 *  - load treats its bytes as hostile: every truncation, byte flips, and crafted bad values;
 *    iqdb_check finds codes that disagree with their rows.
 * Every handle uses the counting allocator; teardown asserts nothing leaked. Random data come
 * from fixed seeds, printed on failure. Runs once per SIMD level.
 */
#include "../common/annutil.h"

#include <pthread.h>

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

static const iqdb_metric all_metrics[] = {IQDB_METRIC_L2, IQDB_METRIC_COSINE, IQDB_METRIC_DOT,
                                          IQDB_METRIC_L1, IQDB_METRIC_HAMMING};
static const char *metric_name(iqdb_metric m) {
    static const char *const n[] = {"default", "l2", "cosine", "dot", "l1", "hamming"};
    return n[m];
}
static const char *quant_name(iqdb_quant q) {
    static const char *const n[] = {"none", "sq8", "binary", "pq"};
    return n[q];
}

/* ---- data ----------------------------------------------------------------------------------- */

typedef iqdbt_dataset dataset;

/* n points around `clusters` centres (overlapping: the noise is as wide as the spread of the
 * centres, so recall at a few probes is well below 1); Hamming data are 0/1 with 20% of the
 * bits flipped (annutil.h). */
static float noise = 0.8f;
static dataset gen(iqdb_metric m, size_t n, uint32_t dim, uint32_t clusters, uint64_t seed) {
    return iqdbt_gen(m, n, dim, clusters, noise, seed);
}

static void gen_queries(float *q, size_t nq, uint32_t dim, iqdb_metric m, const dataset *ds,
                        uint64_t seed) {
    iqdbt_gen_queries(q, nq, dim, m, ds, seed);
}

static iqdb *open_db(uint32_t dim, iqdb_metric m, iqdb_index_kind kind, iqdb_quant q,
                     uint32_t lists, uint32_t threads) {
    iqdb_options o;
    iqdb_options_init(&o, dim, m);
    o.allocator = iqdbt_allocator(&A, 1);
    o.index = kind;
    o.quant.kind = q;
    o.ivf.n_lists = lists;
    o.threads = threads;
    iqdb *db = NULL;
    int rc = iqdb_open(NULL, &o, &db);
    if (rc) print_error("open: %s\n", iqdb_errmsg(NULL));
    assert_int_equal(rc, IQDB_OK);
    return db;
}

/* Rows with ids first_id.., metadata {"tag": i % 5} (none for every 7th row). */
static void load_rows(iqdb *db, const dataset *ds, size_t from, size_t to, iqdb_id id0) {
    iqdbt_load_rows(db, ds, from, to, id0);
}
static iqdb_stats stats_of(iqdb *db) { return iqdbt_stats(db); }
static iqdb_filter *tag_filter(int t) { return iqdbt_tag_filter(t); }

/* ---- checking results ----------------------------------------------------------------------- */

enum { K = 10, MAXK = 64 };

/* Every hit checked against a double oracle, the filter, the order (annutil.h). */
static void check_hits(iqdb *db, iqdb_metric m, const float *q, uint32_t dim, const iqdb_hit *h,
                       size_t n, int tagf) {
    iqdbt_check_hits(db, m, q, dim, h, n, tagf);
}

/* recall@k of `p` against the exact search with the same filter (annutil.h). */
static uint64_t visited; /* rows the approximate searches of the last recall() examined */
static double recall(iqdb *db, iqdb_metric m, const float *qs, size_t nq, uint32_t dim, size_t k,
                     const iqdb_search_params *p, int tagf) {
    iqdbt_recall_info ri;
    double r = iqdbt_recall(db, m, qs, nq, dim, k, p, tagf, &ri);
    visited = ri.visited;
    return r;
}

/* Searching with `p` gives exactly the exact result: same ids, same distances, same order. */
static void assert_exact(iqdb *db, const float *qs, size_t nq, uint32_t dim, size_t k,
                         const iqdb_search_params *p, const char *what) {
    iqdb_search_params ex = *p;
    ex.exact = 1;
    for (size_t i = 0; i < nq; i++) {
        iqdb_hit h[MAXK], e[MAXK];
        size_t n, ne;
        assert_int_equal(iqdb_search(db, qs + i * dim, k, p, h, &n, NULL), IQDB_OK);
        assert_int_equal(iqdb_search(db, qs + i * dim, k, &ex, e, &ne, NULL), IQDB_OK);
        if (n != ne || memcmp(h, e, n * sizeof *h)) {
            print_error("%s: query %zu differs from the exact search (n %zu vs %zu)\n", what, i, n,
                        ne);
            for (size_t j = 0; j < n && j < ne; j++)
                print_error("  %zu: %llu %.9g | %llu %.9g\n", j, (unsigned long long)h[j].id,
                            h[j].distance, (unsigned long long)e[j].id, e[j].distance);
            fail();
        }
    }
}

/* ---- in-memory sink and source -------------------------------------------------------------- */

static iqdbt_membuf serialize(iqdb *db) { return iqdbt_index_bytes(db); }
static int load(iqdb *db, const uint8_t *p, size_t n) { return iqdbt_index_load(db, p, n); }

/* ---- tests ---------------------------------------------------------------------------------- */

/* Below the training threshold an IVF (or quantized flat) database is exact, for every metric. */
static void test_ivf_untrained_is_exact(void **state) {
    (void)state;
    for (size_t mi = 0; mi < 5; mi++) {
        iqdb_metric m = all_metrics[mi];
        printf("untrained: %s\n", metric_name(m));
        dataset ds = gen(m, 600, 9, 6, 100 + mi);
        const iqdb_quant qs[] = {IQDB_QUANT_NONE, IQDB_QUANT_SQ8};
        for (int qi = 0; qi < 2; qi++) {
            iqdb *db = open_db(9, m, qi ? IQDB_INDEX_FLAT : IQDB_INDEX_IVF, qs[qi], 0, 2);
            load_rows(db, &ds, 0, ds.n, 0);
            iqdb_stats st = stats_of(db);
            assert_int_equal(st.trained, 0);
            assert_int_equal(st.ivf_lists, 0);
            float q[5 * 9];
            gen_queries(q, 5, 9, m, &ds, 7);
            iqdb_search_params p;
            iqdb_search_params_init(&p);
            assert_exact(db, q, 5, 9, K, &p, "untrained");
            iqdb_search_info info = {.struct_size = sizeof info};
            iqdb_hit h[K];
            size_t n;
            assert_int_equal(iqdb_search(db, q, K, &p, h, &n, &info), IQDB_OK);
            assert_int_equal(info.strategy, IQDB_STRATEGY_SCAN);
            assert_int_equal(info.n_lists_scanned, 0);
            iqdb_filter *f = tag_filter(2);
            p.filter = f;
            assert_exact(db, q, 5, 9, K, &p, "untrained filtered");
            assert_int_equal(iqdb_search(db, q, K, &p, h, &n, &info), IQDB_OK);
            assert_int_equal(info.strategy, IQDB_STRATEGY_SCAN_FILTERED);
            iqdb_filter_destroy(f);
            assert_int_equal(iqdb_check(db), IQDB_OK);
            iqdb_close(db);
        }
        free(ds.x);
    }
    /* a single row, and an empty database */
    iqdb *db = open_db(3, IQDB_METRIC_L2, IQDB_INDEX_IVF, IQDB_QUANT_PQ, 0, 1);
    float v[3] = {1, 2, 3};
    iqdb_hit h[K];
    size_t n = 9;
    assert_int_equal(iqdb_search(db, v, K, NULL, h, &n, NULL), IQDB_OK);
    assert_int_equal(n, 0);
    assert_int_equal(iqdb_upsert(db, 5, v, NULL), IQDB_OK);
    assert_int_equal(iqdb_search(db, v, K, NULL, h, &n, NULL), IQDB_OK);
    assert_int_equal(n, 1);
    assert_true(h[0].id == 5 && h[0].distance == 0.0f);
    iqdb_close(db);
}

/* Training starts when the row count reaches the threshold: 1024 rows (auto lists), or 8 per
 * list when n_lists is set; then searches use the lists. */
static void test_ivf_trains_at_threshold(void **state) {
    (void)state;
    dataset ds = gen(IQDB_METRIC_L2, 1700, 6, 10, 5);
    iqdb *db = open_db(6, IQDB_METRIC_L2, IQDB_INDEX_IVF, IQDB_QUANT_NONE, 0, 2);
    load_rows(db, &ds, 0, 1023, 0);
    assert_int_equal(stats_of(db).trained, 0);
    load_rows(db, &ds, 1023, 1024, 0);
    iqdb_stats st = stats_of(db);
    assert_int_equal(st.trained, 1);
    assert_int_equal(st.trained_rows, 1024);
    assert_int_equal(st.ivf_lists, 128); /* 4 sqrt(1024) */
    iqdb_search_info info = {.struct_size = sizeof info};
    iqdb_hit h[K];
    size_t n;
    assert_int_equal(iqdb_search(db, ds.x, K, NULL, h, &n, &info), IQDB_OK);
    assert_int_equal(n, K);
    assert_int_equal(info.strategy, IQDB_STRATEGY_IVF);
    assert_true(info.n_lists_scanned >= 8);
    assert_true(info.n_visited < 1024);
    assert_int_equal(h[0].id, 0); /* the row itself */
    iqdb_close(db);

    /* a fixed n_lists: 8 rows per list first */
    db = open_db(6, IQDB_METRIC_L2, IQDB_INDEX_IVF, IQDB_QUANT_NONE, 200, 2);
    load_rows(db, &ds, 0, 1599, 0);
    assert_int_equal(stats_of(db).trained, 0);
    load_rows(db, &ds, 1599, 1600, 0);
    st = stats_of(db);
    assert_int_equal(st.trained, 1);
    assert_int_equal(st.ivf_lists, 200);
    iqdb_close(db);
    free(ds.x);
}

/* Retraining on growth: after 4x the rows, the index trains again with more lists. */
static void test_ivf_retrains_on_growth(void **state) {
    (void)state;
    dataset ds = gen(IQDB_METRIC_L2, 4200, 4, 10, 6);
    iqdb *db = open_db(4, IQDB_METRIC_L2, IQDB_INDEX_IVF, IQDB_QUANT_SQ8, 0, 2);
    load_rows(db, &ds, 0, 4095, 0);
    iqdb_stats st = stats_of(db);
    assert_int_equal(st.trained_rows, 1024);
    load_rows(db, &ds, 4095, 4096, 0);
    st = stats_of(db);
    assert_int_equal(st.trained_rows, 4096);
    assert_int_equal(st.ivf_lists, 256);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    iqdb_close(db);
    free(ds.x);
}

/* Recall against exact search for every metric, unfiltered and filtered, before and after
 * optimize; probing every list gives exactly the exact result. */
static void run_recall(iqdb_metric m, iqdb_quant quant, size_t n, uint32_t dim, double floor_,
                       uint64_t seed) {
    printf("recall: %s %s n=%zu dim=%u seed=%llu\n", metric_name(m), quant_name(quant), n, dim,
           (unsigned long long)seed);
    dataset ds = gen(m, n, dim, 24, seed);
    iqdb *db = open_db(dim, m, IQDB_INDEX_IVF, quant, 0, 2);
    load_rows(db, &ds, 0, n, 0);
    assert_int_equal(stats_of(db).trained, 1);
    enum { NQ = 40 };
    float *q = malloc(NQ * dim * sizeof(float));
    gen_queries(q, NQ, dim, m, &ds, seed + 1);
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    p.n_probes = 6;
    for (int round = 0; round < 2; round++) { /* 0: as trained on insert; 1: after optimize */
        double r = recall(db, m, q, NQ, dim, K, &p, -1);
        uint64_t vis = visited;
        iqdb_filter *f = tag_filter(3);
        iqdb_search_params pf = p;
        pf.filter = f;
        double rf = recall(db, m, q, NQ, dim, K, &pf, 3);
        printf("  %s: recall@10 %.3f (%.0f%% of the rows examined), filtered %.3f\n",
               round ? "optimized" : "inserted", r, 100.0 * (double)vis / (double)(NQ * n), rf);
        if (r < floor_ || rf < floor_) {
            print_error("recall below %.2f\n", floor_);
            fail();
        }
        assert_true(vis * 5 < NQ * n); /* an index search, not a scan in disguise */
        iqdb_search_params all = p;
        all.n_probes = 1u << 20;
        all.oversample = IQDB_MAX_OVERSAMPLE;
        assert_exact(db, q, NQ, dim, K, &all, "every list");
        all.filter = f;
        assert_exact(db, q, NQ, dim, K, &all, "every list, filtered");
        iqdb_filter_destroy(f);
        assert_int_equal(iqdb_check(db), IQDB_OK);
        if (round == 0) assert_int_equal(iqdb_optimize(db), IQDB_OK);
    }
    free(q);
    free(ds.x);
    iqdb_close(db);
}

static void test_ivf_recall_small_all_metrics(void **state) {
    (void)state;
    for (size_t mi = 0; mi < 5; mi++)
        run_recall(all_metrics[mi], IQDB_QUANT_NONE, 2500, 16, 0.75, 10 + mi);
}

static void test_ivf_recall_quantized(void **state) {
    (void)state;
    const iqdb_quant qs[] = {IQDB_QUANT_SQ8, IQDB_QUANT_PQ, IQDB_QUANT_BINARY};
    for (size_t qi = 0; qi < 3; qi++)
        for (size_t mi = 0; mi < 5; mi++)
            run_recall(all_metrics[mi], qs[qi], 2000, 16, 0.75, 40 + qi * 5 + mi);
}

static void test_ivf_recall_larger(void **state) {
    (void)state;
    /* after optimize: 438 lists, 6 probed (1-2% of the rows); over seeds 77..82 recall@10 spans
     * 0.745-0.815 with the store in list order and 0.78-0.83 without (the k-means sample sees
     * the rows in another order), so the floor here is 0.72 */
    run_recall(IQDB_METRIC_L2, IQDB_QUANT_NONE, 12000, 32, 0.72, 77);
    run_recall(IQDB_METRIC_COSINE, IQDB_QUANT_SQ8, 12000, 32, 0.75, 78);
}

/* A flat index with a quantizer: recall with the default oversample, exact with everything
 * re-ranked. */
static void test_ivf_flat_quantized(void **state) {
    (void)state;
    const iqdb_quant qs[] = {IQDB_QUANT_SQ8, IQDB_QUANT_BINARY, IQDB_QUANT_PQ};
    for (size_t qi = 0; qi < 3; qi++) {
        iqdb_metric m = qi == 1 ? IQDB_METRIC_COSINE : IQDB_METRIC_L2;
        dataset ds = gen(m, 3000, 24, 12, 300 + qi);
        iqdb *db = open_db(24, m, IQDB_INDEX_FLAT, qs[qi], 0, 2);
        load_rows(db, &ds, 0, ds.n, 0);
        iqdb_stats st = stats_of(db);
        assert_int_equal(st.trained, 1);
        assert_int_equal(st.ivf_lists, 0);
        assert_int_equal(st.index, IQDB_INDEX_FLAT);
        float q[20 * 24];
        gen_queries(q, 20, 24, m, &ds, 9);
        iqdb_search_params p;
        iqdb_search_params_init(&p);
        double r = recall(db, m, q, 20, 24, K, &p, -1);
        printf("flat %s: recall@10 %.3f\n", quant_name(qs[qi]), r);
        assert_true(r >= 0.85);
        iqdb_search_info info = {.struct_size = sizeof info};
        iqdb_hit h[K];
        size_t n;
        assert_int_equal(iqdb_search(db, q, K, &p, h, &n, &info), IQDB_OK);
        assert_int_equal(info.strategy, IQDB_STRATEGY_CODES);
        assert_true(info.n_reranked >= K && info.n_reranked <= 3000);
        p.oversample = IQDB_MAX_OVERSAMPLE;
        assert_exact(db, q, 20, 24, K, &p, "everything re-ranked");
        iqdb_filter *f = tag_filter(1);
        p.filter = f;
        assert_exact(db, q, 20, 24, K, &p, "everything re-ranked, filtered");
        assert_int_equal(iqdb_search(db, q, K, &p, h, &n, &info), IQDB_OK);
        assert_int_equal(info.strategy, IQDB_STRATEGY_CODES_FILTERED);
        iqdb_filter_destroy(f);
        assert_int_equal(iqdb_check(db), IQDB_OK);
        iqdb_close(db);
        free(ds.x);
    }
}

/* A selective filter: the search scans more lists until k rows match, or all of them. */
static void test_ivf_filter_widening(void **state) {
    (void)state;
    dataset ds = gen(IQDB_METRIC_L2, 2000, 8, 16, 21);
    const iqdb_quant qs[] = {IQDB_QUANT_NONE, IQDB_QUANT_SQ8};
    for (int qi = 0; qi < 2; qi++) {
        iqdb *db = open_db(8, IQDB_METRIC_L2, IQDB_INDEX_IVF, qs[qi], 0, 1);
        load_rows(db, &ds, 0, ds.n, 0);
        /* 15 rows get a rare key, spread over the data */
        iqdb_meta *rare;
        iqdb_meta_create(NULL, &rare);
        iqdb_meta_set_bool(rare, "rare", 1);
        for (int i = 0; i < 15; i++) {
            iqdb_id id = (iqdb_id)(i * 131 % 2000);
            assert_int_equal(iqdb_upsert(db, id, ds.x + id * 8, rare), IQDB_OK);
        }
        iqdb_meta_destroy(rare);
        uint32_t lists = stats_of(db).ivf_lists;
        iqdb_filter *f;
        assert_int_equal(iqdb_filter_parse(NULL, "rare = true", 11, &f, NULL), IQDB_OK);
        iqdb_search_params p;
        iqdb_search_params_init(&p);
        p.filter = f;
        p.n_probes = 1;
        iqdb_search_info info = {.struct_size = sizeof info};
        iqdb_hit h[50];
        size_t n;
        assert_int_equal(iqdb_search(db, ds.x, 10, &p, h, &n, &info), IQDB_OK);
        assert_int_equal(n, 10);
        assert_int_equal(info.complete, 1);
        assert_int_equal(info.strategy, IQDB_STRATEGY_IVF_FILTERED);
        assert_true(info.n_lists_scanned > 1);
        assert_true(info.n_matched >= 10);
        assert_int_equal(iqdb_search(db, ds.x, 50, &p, h, &n, &info), IQDB_OK);
        assert_int_equal(n, 15); /* every matching row */
        assert_int_equal(info.n_lists_scanned, lists);
        assert_int_equal(info.complete, 1);
        iqdb_filter_destroy(f);
        /* nothing matches: every list scanned, 0 hits, complete */
        assert_int_equal(iqdb_filter_parse(NULL, "tag = 99", 8, &f, NULL), IQDB_OK);
        p.filter = f;
        assert_int_equal(iqdb_search(db, ds.x, 10, &p, h, &n, &info), IQDB_OK);
        assert_int_equal(n, 0);
        assert_int_equal(info.n_lists_scanned, lists);
        assert_int_equal(info.complete, 1);
        iqdb_filter_destroy(f);
        /* unfiltered with k larger than the probed lists hold: widened too */
        p.filter = NULL;
        assert_int_equal(iqdb_search(db, ds.x, 50, &p, h, &n, &info), IQDB_OK);
        assert_int_equal(n, 50);
        iqdb_close(db);
    }
    free(ds.x);
}

/* Batch search equals single searches bit for bit, for every quantizer, filtered or not. */
static void test_ivf_batch_equals_single(void **state) {
    (void)state;
    dataset ds = gen(IQDB_METRIC_COSINE, 3000, 20, 16, 31);
    const iqdb_quant qs[] = {IQDB_QUANT_NONE, IQDB_QUANT_SQ8, IQDB_QUANT_BINARY, IQDB_QUANT_PQ};
    enum { NQ = 37 };
    float q[NQ * 20];
    gen_queries(q, NQ, 20, IQDB_METRIC_COSINE, &ds, 3);
    for (size_t qi = 0; qi < 4; qi++) {
        iqdb *db = open_db(20, IQDB_METRIC_COSINE, IQDB_INDEX_IVF, qs[qi], 0, 3);
        load_rows(db, &ds, 0, ds.n, 0);
        iqdb_filter *f = tag_filter(4);
        for (int filtered = 0; filtered < 2; filtered++) {
            iqdb_search_params p;
            iqdb_search_params_init(&p);
            p.filter = filtered ? f : NULL;
            p.n_probes = 3;
            iqdb_hit bh[NQ * K], h[K];
            size_t bn[NQ], n;
            assert_int_equal(iqdb_search_batch(db, q, NQ, K, &p, bh, bn), IQDB_OK);
            for (size_t i = 0; i < NQ; i++) {
                assert_int_equal(iqdb_search(db, q + i * 20, K, &p, h, &n, NULL), IQDB_OK);
                assert_int_equal(bn[i], n);
                assert_memory_equal(bh + i * K, h, n * sizeof *h);
            }
        }
        iqdb_filter_destroy(f);
        iqdb_close(db);
    }
    free(ds.x);
}

/* Upserts, replacements and deletes after training keep the lists exact: probing every list
 * still equals exact search, deleted ids never come back, iqdb_check passes. */
static void test_ivf_writes_after_training(void **state) {
    (void)state;
    dataset ds = gen(IQDB_METRIC_L2, 3000, 12, 10, 41);
    const iqdb_quant qs[] = {IQDB_QUANT_NONE, IQDB_QUANT_PQ};
    for (int qi = 0; qi < 2; qi++) {
        iqdb *db = open_db(12, IQDB_METRIC_L2, IQDB_INDEX_IVF, qs[qi], 0, 2);
        load_rows(db, &ds, 0, 2000, 0);
        assert_int_equal(stats_of(db).trained, 1);
        load_rows(db, &ds, 2000, 3000, 0); /* new rows into existing lists */
        int existed;
        for (iqdb_id id = 0; id < 3000; id += 3) {
            assert_int_equal(iqdb_delete(db, id, &existed), IQDB_OK);
            assert_int_equal(existed, 1);
        }
        for (iqdb_id id = 1; id < 3000; id += 9) /* replace: moved to a new vector */
            assert_int_equal(iqdb_upsert(db, id, ds.x + ((id * 7) % 3000) * 12, NULL), IQDB_OK);
        assert_int_equal(iqdb_check(db), IQDB_OK);
        uint64_t cnt;
        iqdb_count(db, &cnt);
        assert_int_equal(cnt, 2000);
        float q[10 * 12];
        gen_queries(q, 10, 12, IQDB_METRIC_L2, &ds, 4);
        iqdb_search_params p;
        iqdb_search_params_init(&p);
        p.n_probes = 1u << 20;
        p.oversample = IQDB_MAX_OVERSAMPLE;
        assert_exact(db, q, 10, 12, K, &p, "after churn");
        iqdb_hit h[K];
        size_t n;
        p.n_probes = 4;
        p.oversample = 0;
        for (int i = 0; i < 10; i++) {
            assert_int_equal(iqdb_search(db, q + i * 12, K, &p, h, &n, NULL), IQDB_OK);
            for (size_t j = 0; j < n; j++) assert_true(h[j].id % 3 != 0);
        }
        iqdb_close(db);
    }
    free(ds.x);
}

/* iqdb_optimize: flat no-op, IVF retrain (new lists for a new size), empty -> untrained,
 * tiny -> trained anyway, quantized flat; bad handle. */
static void test_ivf_optimize(void **state) {
    (void)state;
    assert_int_equal(iqdb_optimize(NULL), IQDB_MISUSE);
    dataset ds = gen(IQDB_METRIC_L2, 3000, 8, 10, 51);
    iqdb *db = open_db(8, IQDB_METRIC_L2, IQDB_INDEX_FLAT, IQDB_QUANT_NONE, 0, 1);
    load_rows(db, &ds, 0, 100, 0);
    assert_int_equal(iqdb_optimize(db), IQDB_OK);
    assert_int_equal(stats_of(db).trained, 0);
    iqdb_close(db);

    db = open_db(8, IQDB_METRIC_L2, IQDB_INDEX_IVF, IQDB_QUANT_NONE, 0, 2);
    assert_int_equal(iqdb_optimize(db), IQDB_OK); /* empty: stays untrained */
    assert_int_equal(stats_of(db).trained, 0);
    load_rows(db, &ds, 0, 10, 0);
    assert_int_equal(iqdb_optimize(db), IQDB_OK); /* tiny: trained on demand */
    iqdb_stats st = stats_of(db);
    assert_int_equal(st.trained, 1);
    assert_true(st.ivf_lists >= 1 && st.ivf_lists <= 10);
    float q[8];
    memcpy(q, ds.x, sizeof q);
    iqdb_hit h[K];
    size_t n;
    assert_int_equal(iqdb_search(db, q, K, NULL, h, &n, NULL), IQDB_OK);
    assert_int_equal(n, 10); /* widening: k rows exist, k rows come back */
    load_rows(db, &ds, 10, 3000, 0);
    assert_int_equal(iqdb_optimize(db), IQDB_OK);
    st = stats_of(db);
    assert_int_equal(st.trained_rows, 3000);
    assert_int_equal(st.ivf_lists, 219); /* 4 sqrt(3000) */
    assert_int_equal(iqdb_check(db), IQDB_OK);
    for (iqdb_id id = 0; id < 3000; id++) iqdb_delete(db, id, NULL);
    assert_int_equal(iqdb_optimize(db), IQDB_OK); /* empty again: back to untrained */
    assert_int_equal(stats_of(db).trained, 0);
    iqdb_close(db);

    db = open_db(8, IQDB_METRIC_L2, IQDB_INDEX_FLAT, IQDB_QUANT_SQ8, 0, 2);
    load_rows(db, &ds, 0, 200, 0);
    assert_int_equal(stats_of(db).trained, 0);
    assert_int_equal(iqdb_optimize(db), IQDB_OK);
    assert_int_equal(stats_of(db).trained, 1);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    iqdb_close(db);
    free(ds.x);
}

/* Search parameters out of range. */
static void test_ivf_bad_params(void **state) {
    (void)state;
    iqdb *db = open_db(4, IQDB_METRIC_L2, IQDB_INDEX_IVF, IQDB_QUANT_SQ8, 0, 1);
    float v[4] = {1, 2, 3, 4};
    iqdb_upsert(db, 1, v, NULL);
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    iqdb_hit h[4];
    size_t n, bn[1];
    p.n_probes = (1u << 20) + 1;
    assert_int_equal(iqdb_search(db, v, 4, &p, h, &n, NULL), IQDB_INVALID);
    assert_int_equal(iqdb_search_batch(db, v, 1, 4, &p, h, bn), IQDB_INVALID);
    p.n_probes = 1u << 20; /* the largest allowed: means every list */
    assert_int_equal(iqdb_search(db, v, 4, &p, h, &n, NULL), IQDB_OK);
    p.oversample = IQDB_MAX_OVERSAMPLE + 1;
    assert_int_equal(iqdb_search(db, v, 4, &p, h, &n, NULL), IQDB_INVALID);
    assert_true(strstr(iqdb_errmsg(db), "oversample") != NULL);
    assert_int_equal(iqdb_search_batch(db, v, 1, 4, &p, h, bn), IQDB_INVALID);
    p.oversample = 1;
    assert_int_equal(iqdb_search(db, v, 4, &p, h, &n, NULL), IQDB_OK);
    assert_int_equal(n, 1);
    iqdb_close(db);
    /* pq_m: up to dim; IVF options */
    iqdb_options o;
    iqdb_options_init(&o, 8, IQDB_METRIC_L2);
    o.allocator = iqdbt_allocator(&A, 1);
    o.index = IQDB_INDEX_IVF;
    o.quant.kind = IQDB_QUANT_PQ;
    o.quant.pq_m = 8;
    assert_int_equal(iqdb_open(NULL, &o, &db), IQDB_OK);
    iqdb_close(db);
    o.quant.pq_m = 9;
    assert_int_equal(iqdb_open(NULL, &o, &db), IQDB_INVALID);
    o.quant.pq_m = 0;
    o.ivf.n_lists = 3;
    o.ivf.n_probes = 4;
    assert_int_equal(iqdb_open(NULL, &o, &db), IQDB_INVALID);
}

/* Stats: code bytes, code memory per row, lists; every component inside the total. */
static void test_ivf_stats(void **state) {
    (void)state;
    dataset ds = gen(IQDB_METRIC_L2, 2000, 64, 10, 61);
    const iqdb_quant qs[] = {IQDB_QUANT_NONE, IQDB_QUANT_SQ8, IQDB_QUANT_BINARY, IQDB_QUANT_PQ};
    const uint32_t bytes[] = {0, 64, 8, 16};
    for (size_t qi = 0; qi < 4; qi++) {
        iqdb *db = open_db(64, IQDB_METRIC_L2, IQDB_INDEX_IVF, qs[qi], 0, 1);
        load_rows(db, &ds, 0, ds.n, 0);
        iqdb_stats s = stats_of(db);
        assert_int_equal(s.quant, qs[qi]);
        assert_int_equal(s.code_bytes, bytes[qi]);
        assert_true(s.mem_codes >= 2000ull * bytes[qi]);
        assert_true(s.mem_codes <= 2ull * 2000 * bytes[qi] + 4096ull * bytes[qi]);
        assert_true(s.mem_vectors + s.mem_rows + s.mem_meta + s.mem_index + s.mem_codes <=
                    s.mem_total);
        assert_int_equal((long long)s.mem_total, atomic_load(&A.live));
        /* the lists cost a few bytes per row, not a copy of the vectors */
        assert_true(s.mem_index < s.mem_vectors / 4);
        iqdb_close(db);
    }
    free(ds.x);
}

/* Steady-state IVF searches (quantized, filtered, widened) allocate nothing. */
static void test_ivf_no_alloc_steady_state(void **state) {
    (void)state;
    dataset ds = gen(IQDB_METRIC_L2, 2000, 16, 10, 71);
    iqdb *db = open_db(16, IQDB_METRIC_L2, IQDB_INDEX_IVF, IQDB_QUANT_SQ8, 0, 1);
    load_rows(db, &ds, 0, ds.n, 0);
    iqdb_filter *f = tag_filter(2);
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    iqdb_hit h[50];
    size_t n;
    float q[16];
    p.filter = f;
    p.n_probes = 1u << 20;
    p.oversample = 64;
    assert_int_equal(iqdb_search(db, ds.x, 50, &p, h, &n, NULL), IQDB_OK); /* the largest */
    long long allocs = atomic_load(&A.count);
    iqdbt_rng r = {5};
    for (int i = 0; i < 200; i++) {
        gen_queries(q, 1, 16, IQDB_METRIC_L2, &ds, (uint64_t)i);
        p.filter = i % 2 ? f : NULL;
        p.n_probes = 1 + (uint32_t)(iqdbt_next(&r) % 8);
        p.oversample = 1 + (uint32_t)(iqdbt_next(&r) % 64);
        assert_int_equal(iqdb_search(db, q, 1 + (size_t)i % 50, &p, h, &n, NULL), IQDB_OK);
    }
    assert_int_equal(atomic_load(&A.count), allocs);
    iqdb_filter_destroy(f);
    iqdb_close(db);
    free(ds.x);
}

/* Training gives the same index with 1 and with 3 threads (byte-identical serialization). */
static void test_ivf_deterministic(void **state) {
    (void)state;
    dataset ds = gen(IQDB_METRIC_L2, 2500, 16, 10, 81);
    const iqdb_quant qs[] = {IQDB_QUANT_NONE, IQDB_QUANT_PQ};
    for (int qi = 0; qi < 2; qi++) {
        iqdb *a = open_db(16, IQDB_METRIC_L2, IQDB_INDEX_IVF, qs[qi], 0, 1);
        iqdb *b = open_db(16, IQDB_METRIC_L2, IQDB_INDEX_IVF, qs[qi], 0, 3);
        load_rows(a, &ds, 0, ds.n, 0);
        load_rows(b, &ds, 0, ds.n, 0);
        assert_int_equal(iqdb_optimize(a), IQDB_OK);
        assert_int_equal(iqdb_optimize(b), IQDB_OK);
        iqdbt_membuf x = serialize(a), y = serialize(b);
        assert_int_equal(x.n, y.n);
        assert_memory_equal(x.p, y.p, x.n);
        free(x.p);
        free(y.p);
        iqdb_close(a);
        iqdb_close(b);
    }
    free(ds.x);
}

/* IVF-Flat renumbers the store's slots list by list after each training (ivf.c, "Row order"):
 * every record keeps its vector, metadata and tie order, deleted ids stay gone, and writes after
 * the reorder behave. */
static void test_ivf_reorder_keeps_records(void **state) {
    (void)state;
    dataset ds = gen(IQDB_METRIC_L2, 3000, 12, 10, 123);
    iqdb *db = open_db(12, IQDB_METRIC_L2, IQDB_INDEX_IVF, IQDB_QUANT_NONE, 16, 2);
    load_rows(db, &ds, 0, 1500, 0);
    for (iqdb_id id = 0; id < 1500; id += 3) iqdb_delete(db, id, NULL); /* free slots */
    load_rows(db, &ds, 1500, 3000, 0); /* reuses them, trains (and reorders) on the way */
    assert_int_equal(iqdb_optimize(db), IQDB_OK);
    load_rows(db, &ds, 0, 30, 10000); /* after the reorder: to the free list first */
    float v[12];
    for (iqdb_id id = 0; id < 3000 + 10030; id++) {
        iqdb_id src = id >= 10000 ? id - 10000 : id;
        if (id >= 3000 && id < 10000) continue;
        if (id >= 10030) break;
        iqdb_meta *m = NULL;
        int rc = iqdb_get(db, id, v, &m);
        if (id < 1500 && id % 3 == 0) {
            assert_int_equal(rc, IQDB_NOTFOUND);
            continue;
        }
        assert_int_equal(rc, IQDB_OK);
        assert_memory_equal(v, ds.x + src * 12, sizeof v);
        int64_t tag = -1;
        if (src % 7 == 6) {
            assert_null(m);
        } else {
            assert_int_equal(iqdb_meta_get_int(m, "tag", &tag), IQDB_OK);
            assert_int_equal(tag, (int64_t)(src % 5));
        }
        iqdb_meta_destroy(m);
    }
    assert_int_equal(iqdb_check(db), IQDB_OK);
    /* records named by byte keys move with their rows too (key blocks and the key map) */
    char key[16];
    for (int i = 0; i < 40; i++) {
        int kl = snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(iqdb_upsert_key(db, key, (size_t)kl, ds.x + (size_t)(2000 + i) * 12, NULL),
                         IQDB_OK);
    }
    assert_int_equal(iqdb_optimize(db), IQDB_OK); /* reorders again, keyed rows included */
    for (int i = 0; i < 40; i++) {
        int kl = snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(iqdb_get_key(db, key, (size_t)kl, v, NULL), IQDB_OK);
        assert_memory_equal(v, ds.x + (size_t)(2000 + i) * 12, sizeof v);
    }
    assert_int_equal(iqdb_check(db), IQDB_OK);
    /* duplicates of existing rows (ids 10000..) tie with their originals: the earlier insert
     * wins, whatever the slots */
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    p.n_probes = 1u << 20;
    for (iqdb_id id = 1; id < 30; id += 3) {
        iqdb_hit h[2];
        size_t n;
        assert_int_equal(iqdb_search(db, ds.x + id * 12, 2, &p, h, &n, NULL), IQDB_OK);
        assert_int_equal(n, 2);
        assert_int_equal(h[0].id, id);
        assert_int_equal(h[1].id, 10000 + id);
    }
    iqdb_close(db);
    free(ds.x);
}

/* ---- serialize / load ----------------------------------------------------------------------- */

/* Two databases with the same rows in the same order (so the same slots); `a` is trained and
 * churned; its index bytes loaded into `b` reproduce `a` exactly. (In a snapshot the store's
 * slots travel with the index; here both are built alike.) */
static void roundtrip_case(iqdb_metric m, iqdb_quant quant, int trained) {
    printf("round trip: %s %s %s\n", metric_name(m), quant_name(quant),
           trained ? "trained" : "untrained");
    dataset ds = gen(m, trained ? 2500 : 300, 12, 10, 91 + (uint64_t)quant);
    iqdb *a = open_db(12, m, IQDB_INDEX_IVF, quant, 0, 2),
         *b = open_db(12, m, IQDB_INDEX_IVF, quant, 0, 2);
    load_rows(a, &ds, 0, ds.n, 0);
    load_rows(b, &ds, 0, ds.n, 0);
    iqdbt_membuf y0 = serialize(b);
    if (trained) { /* a diverges from b: retrained with other lists, then churned */
        assert_int_equal(iqdb_optimize(a), IQDB_OK);
        /* IVF-Flat renumbers the store's slots after a training (ivf.c, "Row order"): b takes
         * the same training so its slots stay equal to a's; y0 is b's state before it */
        if (quant == IQDB_QUANT_NONE) assert_int_equal(iqdb_optimize(b), IQDB_OK);
        for (iqdb_id id = 0; id < ds.n; id += 5) iqdb_delete(a, id, NULL);
        for (iqdb_id id = 0; id < ds.n; id += 5) iqdb_delete(b, id, NULL);
    }
    iqdbt_membuf x = serialize(a);
    if (trained) assert_true(x.n != y0.n || memcmp(x.p, y0.p, x.n) != 0);
    assert_int_equal(load(b, x.p, x.n), IQDB_OK);
    iqdbt_membuf y = serialize(b);
    assert_int_equal(x.n, y.n);
    assert_memory_equal(x.p, y.p, x.n);
    assert_int_equal(iqdb_check(b), IQDB_OK);
    iqdb_stats sa = stats_of(a), sb = stats_of(b);
    assert_int_equal(sa.trained, sb.trained);
    assert_int_equal(sa.trained_rows, sb.trained_rows);
    assert_int_equal(sa.ivf_lists, sb.ivf_lists);
    /* same answers, and recall still measured against exact search */
    float q[10 * 12];
    gen_queries(q, 10, 12, m, &ds, 5);
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    p.n_probes = 16;
    for (int i = 0; i < 10; i++) {
        iqdb_hit ha[K], hb[K];
        size_t na, nb;
        assert_int_equal(iqdb_search(a, q + i * 12, K, &p, ha, &na, NULL), IQDB_OK);
        assert_int_equal(iqdb_search(b, q + i * 12, K, &p, hb, &nb, NULL), IQDB_OK);
        assert_int_equal(na, nb);
        assert_memory_equal(ha, hb, na * sizeof *ha);
    }
    if (trained) {
        double r = recall(b, m, q, 10, 12, K, &p, -1);
        printf("  recall@10 after load %.3f\n", r);
        assert_true(r >= 0.85);
    }
    free(x.p);
    free(y0.p);
    free(y.p);
    iqdb_close(a);
    iqdb_close(b);
    free(ds.x);
}

static void test_ivf_roundtrip(void **state) {
    (void)state;
    for (int q = IQDB_QUANT_NONE; q <= IQDB_QUANT_PQ; q++) {
        roundtrip_case(IQDB_METRIC_L2, (iqdb_quant)q, 1);
        roundtrip_case(IQDB_METRIC_COSINE, (iqdb_quant)q, 1);
    }
    roundtrip_case(IQDB_METRIC_L1, IQDB_QUANT_SQ8, 1);
    roundtrip_case(IQDB_METRIC_HAMMING, IQDB_QUANT_BINARY, 1);
    roundtrip_case(IQDB_METRIC_DOT, IQDB_QUANT_PQ, 1);
    roundtrip_case(IQDB_METRIC_L2, IQDB_QUANT_SQ8, 0);
}

static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A failed load leaves the index exactly as it was. */
static void expect_load_fails(iqdb *b, const iqdbt_membuf *before, const uint8_t *p, size_t n,
                              int want, const char *what) {
    int rc = load(b, p, n);
    if (rc == IQDB_OK || (want && rc != want)) {
        print_error("%s: load returned %d, expected %d\n", what, rc, want);
        fail();
    }
    iqdbt_membuf after = serialize(b);
    assert_int_equal(after.n, before->n);
    assert_memory_equal(after.p, before->p, after.n);
    free(after.p);
}

/* Every truncation and hand-made bad values are refused; random byte flips never crash. */
static void test_ivf_load_hostile(void **state) {
    (void)state;
    const uint32_t dim = 6;
    dataset ds = gen(IQDB_METRIC_L2, 1100, dim, 8, 101);
    iqdb *a = open_db(dim, IQDB_METRIC_L2, IQDB_INDEX_IVF, IQDB_QUANT_SQ8, 0, 1),
         *b = open_db(dim, IQDB_METRIC_L2, IQDB_INDEX_IVF, IQDB_QUANT_SQ8, 0, 1);
    load_rows(a, &ds, 0, ds.n, 0);
    load_rows(b, &ds, 0, ds.n, 0);
    for (iqdb_id id = 0; id < 50; id++) { /* a few dead slots in both */
        iqdb_delete(a, id * 11, NULL);
        iqdb_delete(b, id * 11, NULL);
    }
    assert_int_equal(iqdb_optimize(a), IQDB_OK);
    iqdbt_membuf good = serialize(a), before = serialize(b);
    uint8_t *bad = malloc(good.n);
    /* 1. every truncation */
    for (size_t cut = 0; cut < good.n; cut++)
        expect_load_fails(b, &before, good.p, cut, 0, "truncation");
    /* 2. crafted values: layout offsets from ivf.c's header comment */
    uint32_t n_lists = get32(good.p + 24), cs = get32(good.p + 28);
    assert_int_equal(cs, dim);
    size_t lists_at = 64 + (size_t)n_lists * dim * 4 + 2 * (size_t)dim * 4, first = lists_at;
    while (get32(good.p + first) == 0) first += 4; /* the first non-empty list */
    uint32_t first_n = get32(good.p + first), slot0 = get32(good.p + first + 4);
    struct {
        size_t off;
        uint32_t val;
        int want;
        const char *what;
    } cases[] = {
        {0, 0x12345678u, IQDB_CORRUPT, "magic"},
        {4, 2, IQDB_FORMAT, "newer version"},
        {4, 0, IQDB_CORRUPT, "version 0"},
        {8, dim + 1, IQDB_CORRUPT, "dim"},
        {12, IQDB_METRIC_COSINE, IQDB_CORRUPT, "metric"},
        {16, IQDB_QUANT_PQ, IQDB_CORRUPT, "quantizer"},
        {20, 1u | 4u, IQDB_CORRUPT, "unknown flag"},
        {20, 1u | 2u, IQDB_CORRUPT, "single-list flag"},
        {20, 0, IQDB_CORRUPT, "untrained with lists"},
        {24, 0, IQDB_CORRUPT, "zero lists"},
        {24, (1u << 20) + 1, IQDB_CORRUPT, "too many lists"},
        {28, cs + 1, IQDB_CORRUPT, "code size"},
        {40, 1049, IQDB_CORRUPT, "row count"},
        {64, 0x7fc00000u, IQDB_CORRUPT, "NaN centroid"},
        {64 + (size_t)n_lists * dim * 4 + (size_t)dim * 4, 0xbf800000u, IQDB_CORRUPT,
         "negative step"},
        {64 + (size_t)n_lists * dim * 4, 0x7f800000u, IQDB_CORRUPT, "infinite lo"},
        {first, first_n + 1, IQDB_CORRUPT, "list longer"},
        {first, 0xffffffffu, IQDB_CORRUPT, "list huge"},
        {first + 4, 1100 + 7, IQDB_CORRUPT, "slot out of range"},
        {first + 4, 0, IQDB_CORRUPT, "dead slot"}, /* id 0 was deleted: slot 0 is free */
        {good.n - 4, 0, IQDB_CORRUPT, "end marker"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(bad, good.p, good.n);
        put32(bad + cases[i].off, cases[i].val);
        expect_load_fails(b, &before, bad, good.n, cases[i].want, cases[i].what);
    }
    if (first_n >= 2) { /* a slot twice */
        memcpy(bad, good.p, good.n);
        put32(bad + first + 8, slot0);
        expect_load_fails(b, &before, bad, good.n, IQDB_CORRUPT, "duplicate slot");
    }
    /* trailing bytes are left to the section reader; the bytes themselves load */
    assert_int_equal(load(b, good.p, good.n), IQDB_OK);
    /* 3. byte flips: refused (unchanged) or accepted without harm; codes that no longer match
     * their rows are found by iqdb_check */
    iqdbt_rng r = {103};
    for (size_t off = 0; off < good.n; off += 3) {
        memcpy(bad, good.p, good.n);
        bad[off] ^= (uint8_t)(1u << (iqdbt_next(&r) % 8));
        iqdbt_membuf cur = serialize(b);
        int rc = load(b, bad, good.n);
        if (rc) {
            iqdbt_membuf after = serialize(b);
            assert_int_equal(after.n, cur.n);
            assert_memory_equal(after.p, cur.p, cur.n);
            free(after.p);
        } else {
            iqdb_hit h[K];
            size_t n;
            assert_int_equal(iqdb_search(b, ds.x, K, NULL, h, &n, NULL), IQDB_OK);
            (void)iqdb_check(b);
        }
        free(cur.p);
    }
    assert_int_equal(load(b, good.p, good.n), IQDB_OK);
    assert_int_equal(iqdb_check(b), IQDB_OK);
    /* 4. a code byte that disagrees with its row: loads (any byte is a code), check refuses */
    memcpy(bad, good.p, good.n);
    bad[first + 4 + 4 * (size_t)first_n] ^= 0x55;
    assert_int_equal(load(b, bad, good.n), IQDB_OK);
    assert_int_equal(iqdb_check(b), IQDB_CORRUPT);
    assert_true(strstr(iqdb_errmsg(b), "code") != NULL);
    free(bad);
    free(good.p);
    free(before.p);
    iqdb_close(a);
    iqdb_close(b);
    free(ds.x);
}

/* PQ: a code byte beyond the codebook is refused. */
static void test_ivf_load_pq_code_range(void **state) {
    (void)state;
    dataset ds = gen(IQDB_METRIC_L2, 100, 8, 4, 111);
    iqdb *a = open_db(8, IQDB_METRIC_L2, IQDB_INDEX_IVF, IQDB_QUANT_PQ, 0, 1),
         *b = open_db(8, IQDB_METRIC_L2, IQDB_INDEX_IVF, IQDB_QUANT_PQ, 0, 1);
    load_rows(a, &ds, 0, ds.n, 0);
    load_rows(b, &ds, 0, ds.n, 0);
    assert_int_equal(iqdb_optimize(a), IQDB_OK); /* 100 rows: 100 centroids per subspace */
    iqdbt_membuf good = serialize(a), before = serialize(b);
    uint32_t n_lists = get32(good.p + 24), m = 2 /* dim / 4 */;
    size_t q_at = 64 + (size_t)n_lists * 8 * 4;
    assert_int_equal(get32(good.p + q_at), m);
    uint32_t ksub = get32(good.p + q_at + 4), dsub = get32(good.p + q_at + 8);
    assert_int_equal(ksub, 100);
    size_t first = q_at + 12 + (size_t)m * ksub * dsub * 4;
    while (get32(good.p + first) == 0) first += 4;
    uint32_t fn = get32(good.p + first);
    uint8_t *bad = malloc(good.n);
    memcpy(bad, good.p, good.n);
    bad[first + 4 + 4 * (size_t)fn] = 200;
    expect_load_fails(b, &before, bad, good.n, IQDB_CORRUPT, "PQ code >= ksub");
    memcpy(bad, good.p, good.n);
    put32(bad + q_at + 4, 0);
    expect_load_fails(b, &before, bad, good.n, IQDB_CORRUPT, "ksub 0");
    memcpy(bad, good.p, good.n);
    put32(bad + q_at, m + 1);
    expect_load_fails(b, &before, bad, good.n, IQDB_CORRUPT, "PQ m");
    free(bad);
    free(good.p);
    free(before.p);
    iqdb_close(a);
    iqdb_close(b);
    free(ds.x);
}

/* ---- differential: random writes and searches against exact search --------------------------- */

static void run_differential(iqdb_metric m, iqdb_quant quant, uint64_t seed) {
    printf("differential: %s %s seed %llu\n", metric_name(m), quant_name(quant),
           (unsigned long long)seed);
    const uint32_t dim = 10;
    dataset ds = gen(m, 1500, dim, 12, seed);
    iqdb *db = open_db(dim, m, IQDB_INDEX_IVF, quant, 0, 2);
    load_rows(db, &ds, 0, 1100, 0); /* trained */
    iqdbt_rng r = {seed};
    float q[4 * 10];
    iqdb_filter *f[5];
    for (int t = 0; t < 5; t++) f[t] = tag_filter(t);
    for (int step = 0; step < 400; step++) {
        uint64_t op = iqdbt_next(&r) % 10;
        iqdb_id id = iqdbt_next(&r) % 1400;
        if (op < 5) {
            const float *v = ds.x + (iqdbt_next(&r) % ds.n) * dim;
            assert_int_equal(iqdb_upsert(db, id, v, iqdbt_tag_meta[id % 5]), IQDB_OK);
        } else if (op < 8) {
            assert_int_equal(iqdb_delete(db, id, NULL), IQDB_OK);
        } else {
            gen_queries(q, 4, dim, m, &ds, iqdbt_next(&r));
            iqdb_search_params p;
            iqdb_search_params_init(&p);
            p.filter = iqdbt_next(&r) % 2 ? f[iqdbt_next(&r) % 5] : NULL;
            size_t k = 1 + iqdbt_next(&r) % 30;
            p.n_probes = 1u << 20;
            p.oversample = IQDB_MAX_OVERSAMPLE;
            assert_exact(db, q, 4, dim, k, &p, "differential");
            p.n_probes = 1 + (uint32_t)(iqdbt_next(&r) % 6);
            p.oversample = 0;
            (void)recall(db, m, q, 4, dim, k, &p, -2); /* checks hits and counts */
        }
        if (step % 50 == 0) assert_int_equal(iqdb_check(db), IQDB_OK);
    }
    assert_int_equal(iqdb_optimize(db), IQDB_OK);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    for (int t = 0; t < 5; t++) iqdb_filter_destroy(f[t]);
    iqdb_close(db);
    free(ds.x);
}

static void test_ivf_differential(void **state) {
    (void)state;
    run_differential(IQDB_METRIC_L2, IQDB_QUANT_NONE, 1);
    run_differential(IQDB_METRIC_COSINE, IQDB_QUANT_SQ8, 2);
    run_differential(IQDB_METRIC_DOT, IQDB_QUANT_PQ, 3);
    run_differential(IQDB_METRIC_HAMMING, IQDB_QUANT_BINARY, 4);
    run_differential(IQDB_METRIC_L1, IQDB_QUANT_NONE, 5);
}

/* ---- codes only ------------------------------------------------------------------------------ */

static iqdb *open_codes_only(uint32_t dim, iqdb_metric m, iqdb_index_kind kind, iqdb_quant q) {
    iqdb_options o;
    iqdb_options_init(&o, dim, m);
    o.allocator = iqdbt_allocator(&A, 1);
    o.index = kind;
    o.quant.kind = q;
    o.quant.flags = IQDB_QUANT_CODES_ONLY;
    o.threads = 2;
    iqdb *db = NULL;
    assert_int_equal(iqdb_open(NULL, &o, &db), IQDB_OK);
    return db;
}

/* Codes only: the vectors are released at the first training; get returns the decoded vector
 * (SQ8: within half a step); every reported distance is the metric to that vector; an exact
 * search scans every code and equals probing every list; writes, optimize (retraining on the
 * decoded rows), deletes down to empty, and the serialize -> load round trip all keep working;
 * recall against the original vectors stays high for SQ8. */
static void run_codes_only(iqdb_metric m, iqdb_index_kind kind, iqdb_quant quant) {
    printf("codes only: %s %s %s\n", metric_name(m), kind == IQDB_INDEX_IVF ? "ivf" : "flat",
           quant_name(quant));
    const uint32_t dim = 24;
    dataset ds = gen(m, 2000, dim, 12, 130 + (uint64_t)m);
    iqdb *db = open_codes_only(dim, m, kind, quant);
    load_rows(db, &ds, 0, 1000, 0);
    iqdb_stats st = stats_of(db);
    assert_int_equal(st.trained, 0);
    assert_true(st.mem_vectors >= 1000ull * dim * sizeof(float)); /* stored in full so far */
    load_rows(db, &ds, 1000, 1500, 0);                            /* trains at 1024: dropped */
    st = stats_of(db);
    assert_int_equal(st.trained, 1);
    assert_true(st.mem_vectors < 4096); /* a one-row staging area */
    assert_true(st.mem_codes >= 1500ull * st.code_bytes);
    load_rows(db, &ds, 1500, 2000, 0); /* inserted as codes only */
    float v[24], q[8 * 24];
    /* get: close to the original; for the rows the quantizer was trained on (ids < 1024) within
     * half a step (spans are below 3.6, so steps below 0.0142); later rows may fall outside the
     * trained ranges and be clamped */
    double max_err[2] = {0, 0};
    for (iqdb_id id = 0; id < 2000; id += 7) {
        assert_int_equal(iqdb_get(db, id, v, NULL), IQDB_OK);
        double nv = 1, nx = 1; /* cosine codes hold directions: compare those */
        if (m == IQDB_METRIC_COSINE) {
            nv = sqrt(iqdbt_dist(IQDB_METRIC_DOT, v, v, dim) * -1);
            nx = sqrt(iqdbt_dist(IQDB_METRIC_DOT, ds.x + id * dim, ds.x + id * dim, dim) * -1);
        }
        for (uint32_t j = 0; j < dim; j++)
            max_err[id >= 1024] =
                fmax(max_err[id >= 1024], fabs(v[j] / nv - ds.x[id * dim + j] / nx));
    }
    printf("  largest component error of get: %.4f (trained rows), %.4f (later rows)\n", max_err[0],
           max_err[1]);
    if (quant == IQDB_QUANT_SQ8) assert_true(max_err[0] <= 0.0072 && max_err[1] < 0.3);
    gen_queries(q, 8, dim, m, &ds, 3);
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 8; i++) { /* distances are the metric to the decoded vectors */
            iqdb_hit h[K];
            size_t n;
            assert_int_equal(iqdb_search(db, q + i * dim, K, &p, h, &n, NULL), IQDB_OK);
            assert_int_equal(n, K);
            check_hits(db, m, q + i * dim, dim, h, n, -1);
        }
        iqdb_search_params all = p;
        all.n_probes = 1u << 20;
        all.oversample = IQDB_MAX_OVERSAMPLE;
        assert_exact(db, q, 8, dim, K, &all, "codes only, every code");
        assert_int_equal(iqdb_check(db), IQDB_OK);
        if (round == 0) assert_int_equal(iqdb_optimize(db), IQDB_OK);
    }
    /* recall against the original vectors (an exact flat database of the same rows) */
    iqdb *ref = open_db(dim, m, IQDB_INDEX_FLAT, IQDB_QUANT_NONE, 0, 1);
    load_rows(ref, &ds, 0, 2000, 0);
    size_t good = 0;
    p.n_probes = 16;
    for (int i = 0; i < 8; i++) {
        iqdb_hit h[K], e[K];
        size_t n, ne;
        iqdb_search(db, q + i * dim, K, &p, h, &n, NULL);
        iqdb_search(ref, q + i * dim, K, NULL, e, &ne, NULL);
        for (size_t a = 0; a < n; a++)
            for (size_t b = 0; b < ne; b++) good += h[a].id == e[b].id;
    }
    printf("  recall@10 against the original vectors: %.3f\n", good / 80.0);
    if (quant == IQDB_QUANT_SQ8) assert_true(good >= 64);
    iqdb_close(ref);
    /* round trip into a twin built the same way */
    iqdb *twin = open_codes_only(dim, m, kind, quant);
    load_rows(twin, &ds, 0, 2000, 0);
    iqdbt_membuf x = serialize(db);
    assert_int_equal(load(twin, x.p, x.n), IQDB_OK);
    iqdbt_membuf y = serialize(twin);
    assert_int_equal(x.n, y.n);
    assert_memory_equal(x.p, y.p, x.n);
    assert_int_equal(iqdb_check(twin), IQDB_OK);
    free(x.p);
    free(y.p);
    /* a codes-only section does not load into a database that still has its vectors */
    iqdb *full = open_db(dim, m, kind, quant, 0, 1);
    load_rows(full, &ds, 0, 2000, 0);
    x = serialize(db);
    assert_int_equal(load(full, x.p, x.n), IQDB_CORRUPT);
    free(x.p);
    iqdb_close(full);
    iqdb_close(twin);
    /* deleted down to nothing, optimized, refilled: the codes stay the rows */
    for (iqdb_id id = 0; id < 2000; id++) iqdb_delete(db, id, NULL);
    assert_int_equal(iqdb_optimize(db), IQDB_OK);
    assert_int_equal(stats_of(db).trained, 1);
    load_rows(db, &ds, 0, 100, 0);
    assert_int_equal(iqdb_get(db, 5, v, NULL), IQDB_OK);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    iqdb_close(db);
    free(ds.x);
}

static void test_ivf_codes_only(void **state) {
    (void)state;
    run_codes_only(IQDB_METRIC_L2, IQDB_INDEX_IVF, IQDB_QUANT_SQ8);
    run_codes_only(IQDB_METRIC_COSINE, IQDB_INDEX_IVF, IQDB_QUANT_SQ8);
    run_codes_only(IQDB_METRIC_DOT, IQDB_INDEX_FLAT, IQDB_QUANT_SQ8);
    run_codes_only(IQDB_METRIC_L1, IQDB_INDEX_FLAT, IQDB_QUANT_SQ8);
    run_codes_only(IQDB_METRIC_L2, IQDB_INDEX_FLAT, IQDB_QUANT_BINARY);
}

/* ---- threads: training and batch search on the pool while other threads search and write --- */

typedef struct thr_ctx {
    iqdb *db;
    const dataset *ds;
    _Atomic int stop;
    _Atomic long searches;
} thr_ctx;

static void *searcher(void *arg) {
    thr_ctx *c = arg;
    iqdb_hit h[K * 8];
    size_t n[8];
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    p.n_probes = 4;
    for (long i = 0; !atomic_load(&c->stop); i++) {
        const float *q = c->ds->x + (size_t)(i * 37 % 1000) * c->ds->dim;
        int rc = i % 2 ? iqdb_search(c->db, q, K, &p, h, n, NULL)
                       : iqdb_search_batch(c->db, q, 8, K, &p, h, n);
        if (rc != IQDB_OK) abort();
        atomic_fetch_add(&c->searches, 1);
    }
    return NULL;
}

/* Searchers (single and batch) run while a writer inserts enough rows to trigger two
 * automatic trainings and then optimizes: results stay valid, nothing races (run under TSan by
 * the tsan preset: unit.ivf.threads). */
static void test_ivf_threads(void **state) {
    (void)state;
    dataset ds = gen(IQDB_METRIC_L2, 4200, 16, 12, 121);
    iqdb *db = open_db(16, IQDB_METRIC_L2, IQDB_INDEX_IVF, IQDB_QUANT_SQ8, 0, 3);
    load_rows(db, &ds, 0, 1000, 0);
    thr_ctx c = {db, &ds, 0, 0};
    pthread_t t[3];
    for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, searcher, &c);
    load_rows(db, &ds, 1000, 4200, 0); /* trains at 1024 and 4096, on the pool */
    assert_int_equal(iqdb_optimize(db), IQDB_OK);
    for (int i = 0; i < 100; i++) iqdb_delete(db, (iqdb_id)i * 7, NULL);
    atomic_store(&c.stop, 1);
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    printf("%ld searches ran alongside\n", atomic_load(&c.searches));
    assert_true(atomic_load(&c.searches) > 0);
    assert_int_equal(stats_of(db).trained_rows, 4200);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    iqdb_close(db);
    free(ds.x);
}

int main(void) {
    iqdbt_simd_gate();
    const char *only = getenv("IQDBT_FILTER"); /* e.g. IQDBT_FILTER='*roundtrip*' */
    if (only && *only) cmocka_set_test_filter(only);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ivf_untrained_is_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ivf_reorder_keeps_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ivf_trains_at_threshold, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ivf_retrains_on_growth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ivf_recall_small_all_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ivf_recall_quantized, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ivf_recall_larger, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ivf_flat_quantized, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ivf_filter_widening, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ivf_batch_equals_single, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ivf_writes_after_training, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ivf_optimize, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ivf_bad_params, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ivf_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ivf_no_alloc_steady_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ivf_deterministic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ivf_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ivf_load_hostile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ivf_load_pq_code_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ivf_differential, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ivf_codes_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ivf_threads, setup, teardown),
    };
    return cmocka_run_group_tests_name("ivf", tests, NULL, NULL);
}
