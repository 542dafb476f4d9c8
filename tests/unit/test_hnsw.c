/*
 * test_hnsw.c — the HNSW index: structure and invariants (iqdb_check after every kind of
 * change), true deletes, the filter planner and completeness, batch = single, determinism, the
 * parallel build, optimize, and the serialized form: round trip, every truncation, bit flips and
 * hand-made hostile counts fail cleanly. Recall is measured in tests/recall.
 *
 * Runs once per SIMD level. Handles use the counting allocator (teardown: nothing leaked, every
 * free sized right). Random tests print their seed.
 */
#include "../common/testutil.h"

#include "index/index.h"
#include "index/metric.h"
#include "pool.h"

static iqdbt_alloc A;

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

static iqdb *open_hnsw(uint32_t dim, iqdb_metric metric, uint32_t m, unsigned threads,
                       uint64_t seed) {
    iqdb_options o;
    iqdb_options_init(&o, dim, metric);
    o.index = IQDB_INDEX_HNSW;
    o.hnsw.m = m;
    o.hnsw.ef_construction = m < 8 ? 32 : 64;
    o.hnsw.seed = seed;
    o.threads = threads;
    o.allocator = iqdbt_allocator(&A, 1);
    iqdb *db = NULL;
    int rc = iqdb_open(NULL, &o, &db);
    if (rc) print_error("open: %s\n", iqdb_errmsg(NULL));
    assert_int_equal(rc, IQDB_OK);
    return db;
}

static void check_ok(iqdb *db, const char *when) {
    int rc = iqdb_check(db);
    if (rc) print_error("iqdb_check after %s: %s\n", when, iqdb_errmsg(db));
    assert_int_equal(rc, IQDB_OK);
}

/* Vectors with structure: clusters of points around random centres (Hamming: 0/1). */
static void fill_vec(iqdbt_rng *r, iqdb_metric metric, float *v, uint32_t dim) {
    if (metric == IQDB_METRIC_HAMMING) {
        for (uint32_t j = 0; j < dim; j++) v[j] = (float)(iqdbt_next(r) & 1);
        return;
    }
    iqdbt_fill(r, v, dim, -1, 1);
}

static size_t search_ids(iqdb *db, const float *q, size_t k, const iqdb_search_params *p,
                         iqdb_hit *hits, iqdb_search_info *info) {
    size_t n = 0;
    int rc = iqdb_search(db, q, k, p, hits, &n, info);
    if (rc) print_error("search: %s\n", iqdb_errmsg(db));
    assert_int_equal(rc, IQDB_OK);
    return n;
}

/* ---- basics -------------------------------------------------------------------------------- */

/* Opening HNSW: defaults, stats, the edge cases of search on tiny databases. */
static void test_hnsw_open_and_edges(void **state) {
    (void)state;
    iqdb *db = open_hnsw(4, IQDB_METRIC_L2, 0, 1, 0);
    iqdb_stats st = {.struct_size = sizeof st};
    assert_int_equal(iqdb_stats_get(db, &st), IQDB_OK);
    assert_int_equal(st.index, IQDB_INDEX_HNSW);
    float q[4] = {0, 0, 0, 0}, v[4] = {1, 2, 3, 4};
    iqdb_hit hits[4];
    iqdb_search_info info = {.struct_size = sizeof info};
    /* empty */
    assert_int_equal(search_ids(db, q, 3, NULL, hits, &info), 0);
    assert_int_equal(info.strategy, IQDB_STRATEGY_NONE);
    check_ok(db, "open");
    /* one record: k = 0, k = 1, k = 3 */
    assert_int_equal(iqdb_upsert(db, 7, v, NULL), IQDB_OK);
    check_ok(db, "first insert");
    assert_int_equal(search_ids(db, q, 0, NULL, hits, &info), 0);
    assert_int_equal(search_ids(db, q, 3, NULL, hits, &info), 1);
    assert_int_equal(info.strategy, IQDB_STRATEGY_HNSW);
    assert_int_equal(info.complete, 1);
    assert_true(hits[0].id == 7 && fabsf(hits[0].distance - sqrtf(30)) < 1e-6f);
    /* replace it, delete it, empty again */
    v[0] = 5;
    assert_int_equal(iqdb_upsert(db, 7, v, NULL), IQDB_OK);
    check_ok(db, "replace of the only record");
    int existed = 0;
    assert_int_equal(iqdb_delete(db, 7, &existed), IQDB_OK);
    assert_int_equal(existed, 1);
    check_ok(db, "delete of the only record");
    assert_int_equal(search_ids(db, q, 3, NULL, hits, &info), 0);
    assert_int_equal(iqdb_upsert(db, 8, v, NULL), IQDB_OK);
    check_ok(db, "insert into an emptied graph");
    assert_int_equal(search_ids(db, q, 3, NULL, hits, &info), 1);
    assert_int_equal(st.index, IQDB_INDEX_HNSW);
    iqdb_close(db);
}

/* With ef >= the record count a search is exact, for every metric (the walk plus the sweep). */
static void test_hnsw_exact_when_ef_covers(void **state) {
    (void)state;
    const iqdb_metric metrics[] = {IQDB_METRIC_L2, IQDB_METRIC_COSINE, IQDB_METRIC_DOT,
                                   IQDB_METRIC_L1, IQDB_METRIC_HAMMING};
    for (size_t mi = 0; mi < 5; mi++) {
        uint64_t seed = 100 + mi;
        printf("exact-when-ef-covers: metric %d seed %llu\n", (int)metrics[mi],
               (unsigned long long)seed);
        const uint32_t dim = 12;
        iqdb *db = open_hnsw(dim, metrics[mi], 4, 1, seed);
        iqdbt_rng r = {seed};
        float v[12];
        for (uint64_t id = 0; id < 150; id++) {
            fill_vec(&r, metrics[mi], v, dim);
            assert_int_equal(iqdb_upsert(db, id * 3, v, NULL), IQDB_OK);
        }
        check_ok(db, "150 inserts");
        iqdb_search_params p, px;
        iqdb_search_params_init(&p);
        iqdb_search_params_init(&px);
        p.ef = 150;
        px.exact = 1;
        for (int t = 0; t < 40; t++) {
            fill_vec(&r, metrics[mi], v, dim);
            iqdb_hit a[20], b[20];
            size_t na = search_ids(db, v, 20, &p, a, NULL),
                   nb = search_ids(db, v, 20, &px, b, NULL);
            assert_int_equal(na, nb);
            for (size_t i = 0; i < na; i++) {
                if (a[i].id != b[i].id || a[i].distance != b[i].distance)
                    print_error("metric %d query %d rank %zu: %llu %g vs exact %llu %g\n",
                                (int)metrics[mi], t, i, (unsigned long long)a[i].id, a[i].distance,
                                (unsigned long long)b[i].id, b[i].distance);
                assert_true(a[i].id == b[i].id && a[i].distance == b[i].distance);
            }
        }
        iqdb_close(db);
    }
}

/* ---- deletes --------------------------------------------------------------------------------- */

/* Random inserts, replaces and deletes (every kind of node: entry, root, hubs), iqdb_check after
 * each step; small m so lists are full and repairs and overflow chains are exercised. */
static void run_churn(iqdb_metric metric, uint32_t m, unsigned threads, uint64_t seed) {
    printf("churn: metric %d m %u threads %u seed %llu\n", (int)metric, m, threads,
           (unsigned long long)seed);
    const uint32_t dim = 6;
    iqdb *db = open_hnsw(dim, metric, m, threads, seed);
    iqdbt_rng r = {seed};
    float v[6];
    int present[300] = {0};
    size_t live = 0;
    for (int step = 0; step < 1000; step++) {
        uint64_t op = iqdbt_next(&r) % 10;
        iqdb_id id = iqdbt_next(&r) % 300;
        if (op < 5) {
            fill_vec(&r, metric, v, dim);
            if (op == 0) v[0] = v[1] = 0.5f; /* duplicates and near-duplicates */
            assert_int_equal(iqdb_upsert(db, id, v, NULL), IQDB_OK);
            live += !present[id];
            present[id] = 1;
        } else if (op < 9) {
            int existed;
            assert_int_equal(iqdb_delete(db, id, &existed), IQDB_OK);
            assert_int_equal(existed, present[id]);
            live -= (size_t)present[id];
            present[id] = 0;
        } else { /* a batch (parallel when large and threads > 1) */
            size_t n = 1 + iqdbt_next(&r) % 300;
            iqdb_id ids[300];
            float *vs = malloc(n * dim * sizeof(float));
            for (size_t i = 0; i < n; i++) {
                ids[i] = iqdbt_next(&r) % 300;
                fill_vec(&r, metric, vs + i * dim, dim);
            }
            assert_int_equal(iqdb_upsert_batch(db, n, ids, vs, NULL), IQDB_OK);
            for (size_t i = 0; i < n; i++) {
                live += !present[ids[i]];
                present[ids[i]] = 1;
            }
            free(vs);
        }
        if (step % 5 == 0 || op >= 5) {
            char when[64];
            snprintf(when, sizeof when, "step %d (op %llu)", step, (unsigned long long)op);
            check_ok(db, when);
        }
        uint64_t n;
        assert_int_equal(iqdb_count(db, &n), IQDB_OK);
        assert_int_equal(n, live);
    }
    /* every record is still found: each one's own vector finds it at distance 0 (ef covers) */
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    p.ef = 300;
    for (iqdb_id id = 0; id < 300; id++) {
        if (!present[id]) continue;
        assert_int_equal(iqdb_get(db, id, v, NULL), IQDB_OK);
        iqdb_hit hits[300];
        size_t nh = search_ids(db, v, 300, &p, hits, NULL);
        assert_int_equal(nh, live);
        int found = 0;
        for (size_t i = 0; i < nh; i++) found |= hits[i].id == id;
        assert_true(found);
    }
    /* delete everything */
    for (iqdb_id id = 0; id < 300; id++) iqdb_delete(db, id, NULL);
    check_ok(db, "deleting everything");
    iqdb_stats st = {.struct_size = sizeof st};
    iqdb_stats_get(db, &st);
    assert_int_equal(st.count, 0);
    iqdb_close(db);
}

static void test_hnsw_churn_invariants(void **state) {
    (void)state;
    run_churn(IQDB_METRIC_L2, 2, 1, 11);
    run_churn(IQDB_METRIC_L2, 4, 1, 12);
    run_churn(IQDB_METRIC_COSINE, 3, 1, 13);
    run_churn(IQDB_METRIC_HAMMING, 4, 1, 14);
    run_churn(IQDB_METRIC_DOT, 8, 1, 15);
    run_churn(IQDB_METRIC_L1, 4, 2, 16);
}

/* Deleting leaves no trace: memory returns to what it was (true delete, not a tombstone). */
static void test_hnsw_delete_frees(void **state) {
    (void)state;
    const uint32_t dim = 16;
    iqdb *db = open_hnsw(dim, IQDB_METRIC_L2, 8, 1, 5);
    iqdbt_rng r = {5};
    float v[16];
    for (uint64_t id = 0; id < 1000; id++) {
        iqdbt_fill(&r, v, dim, -1, 1);
        iqdb_upsert(db, id, v, NULL);
    }
    iqdb_stats a = {.struct_size = sizeof a}, b = {.struct_size = sizeof b};
    iqdb_stats_get(db, &a);
    /* replace every record five times: slots are reused, memory must not grow */
    for (int round = 0; round < 5; round++)
        for (uint64_t id = 0; id < 1000; id++) {
            iqdbt_fill(&r, v, dim, -1, 1);
            iqdb_upsert(db, id, v, NULL);
        }
    check_ok(db, "5 rounds of replaces");
    iqdb_stats_get(db, &b);
    assert_int_equal(b.count, 1000);
    assert_true(b.slots <= a.slots + 1);
    if (b.mem_index > a.mem_index + a.mem_index / 10)
        print_error("index memory grew under churn: %llu -> %llu\n",
                    (unsigned long long)a.mem_index, (unsigned long long)b.mem_index);
    assert_true(b.mem_index <= a.mem_index + a.mem_index / 10);
    iqdb_close(db);
}

/* ---- filters --------------------------------------------------------------------------------- */

static iqdb *filtered_db(uint32_t dim, size_t n, uint64_t seed) {
    iqdb *db = open_hnsw(dim, IQDB_METRIC_L2, 8, 1, seed);
    iqdbt_rng r = {seed};
    float *vs = malloc(n * dim * sizeof(float));
    iqdb_id *ids = malloc(n * sizeof *ids);
    iqdb_meta **ms = malloc(n * sizeof *ms);
    for (size_t i = 0; i < n; i++) {
        iqdbt_fill(&r, vs + i * dim, dim, -1, 1);
        ids[i] = i;
        iqdb_meta_create(NULL, &ms[i]);
        iqdb_meta_set_int(ms[i], "mod", (int64_t)(i % 1000)); /* mod < t: t/1000 match */
    }
    assert_int_equal(iqdb_upsert_batch(db, n, ids, vs, (const iqdb_meta *const *)ms), IQDB_OK);
    for (size_t i = 0; i < n; i++) iqdb_meta_destroy(ms[i]);
    free(ms);
    free(ids);
    free(vs);
    return db;
}

/* A filtered search returns min(k, matching) hits, all matching, for selectivities from 100 %
 * down to a handful of records, and says which strategy ran. */
static void test_hnsw_filter_completeness(void **state) {
    (void)state;
    const uint32_t dim = 16;
    const size_t n = 4000;
    iqdb *db = filtered_db(dim, n, 21);
    const int64_t thr[] = {1000, 500, 100, 10, 1, 0};
    iqdbt_rng r = {22};
    int saw_graph = 0, saw_scan = 0;
    for (size_t t = 0; t < sizeof thr / sizeof thr[0]; t++) {
        iqdb_filter *f;
        assert_int_equal(iqdb_filter_lt(NULL, "mod", iqdb_int(thr[t]), &f), IQDB_OK);
        size_t matching = (size_t)thr[t] * (n / 1000);
        iqdb_search_params p;
        iqdb_search_params_init(&p);
        p.filter = f;
        for (int qn = 0; qn < 20; qn++) {
            float q[16];
            iqdbt_fill(&r, q, dim, -1, 1);
            size_t k = qn % 2 ? 10 : 50;
            iqdb_hit hits[50];
            iqdb_search_info info = {.struct_size = sizeof info};
            size_t got = search_ids(db, q, k, &p, hits, &info);
            if (got != IQDB_MIN(k, matching))
                print_error("threshold %lld k %zu: %zu hits, %zu match\n", (long long)thr[t], k,
                            got, matching);
            assert_int_equal(got, IQDB_MIN(k, matching));
            assert_int_equal(info.complete, 1);
            for (size_t i = 0; i < got; i++) {
                assert_true((int64_t)(hits[i].id % 1000) < thr[t]);
                if (i) assert_true(hits[i - 1].distance <= hits[i].distance);
            }
            saw_graph |= info.strategy == IQDB_STRATEGY_HNSW_FILTERED;
            saw_scan |= info.strategy == IQDB_STRATEGY_SCAN_FILTERED;
            if (thr[t] == 1000) assert_int_equal(info.strategy, IQDB_STRATEGY_HNSW_FILTERED);
            if (thr[t] <= 1) { /* planned as a scan up front: it visits each row once */
                assert_int_equal(info.strategy, IQDB_STRATEGY_SCAN_FILTERED);
                assert_int_equal(info.n_visited, n);
            }
        }
        iqdb_filter_destroy(f);
    }
    assert_true(saw_graph && saw_scan);
    iqdb_close(db);
}

/* Batch search equals single searches, filtered or not, for several k and ef. */
static void test_hnsw_batch_equals_single(void **state) {
    (void)state;
    const uint32_t dim = 24;
    iqdb *db = filtered_db(dim, 3000, 31);
    iqdb_filter *f[2]; /* the planner walks the graph for the first, scans for the second */
    assert_int_equal(iqdb_filter_parse(NULL, "mod < 800", 9, &f[0], NULL), IQDB_OK);
    assert_int_equal(iqdb_filter_parse(NULL, "mod < 30", 8, &f[1], NULL), IQDB_OK);
    iqdbt_rng r = {32};
    const size_t nq = 37;
    float *qs = malloc(nq * dim * sizeof(float));
    iqdbt_fill(&r, qs, nq * dim, -1, 1);
    for (int variant = 0; variant < 6; variant++) {
        iqdb_search_params p;
        iqdb_search_params_init(&p);
        p.filter = variant % 3 ? f[variant % 3 - 1] : NULL;
        p.ef = variant >= 3 ? 100 : 0;
        size_t k = variant >= 3 ? 25 : 10;
        iqdb_hit bh[37 * 25];
        size_t bn[37];
        assert_int_equal(iqdb_search_batch(db, qs, nq, k, &p, bh, bn), IQDB_OK);
        for (size_t i = 0; i < nq; i++) {
            iqdb_hit h[25];
            size_t n = search_ids(db, qs + i * dim, k, &p, h, NULL);
            assert_int_equal(bn[i], n);
            assert_memory_equal(bh + i * k, h, n * sizeof *h);
        }
    }
    free(qs);
    iqdb_filter_destroy(f[0]);
    iqdb_filter_destroy(f[1]);
    iqdb_close(db);
}

/* exact = 1 bypasses the graph: the flat scan's strategy and its (exact) answer. */
static void test_hnsw_exact_param(void **state) {
    (void)state;
    iqdb *db = filtered_db(8, 500, 41);
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    p.exact = 1;
    float q[8] = {0};
    iqdb_hit h[5];
    iqdb_search_info info = {.struct_size = sizeof info};
    assert_int_equal(search_ids(db, q, 5, &p, h, &info), 5);
    assert_int_equal(info.strategy, IQDB_STRATEGY_SCAN);
    assert_int_equal(info.n_visited, 500);
    iqdb_close(db);
}

/* Steady-state searches (filtered or not, any k and ef) do not allocate: a workload run twice
 * allocates nothing the second time. */
static void test_hnsw_search_no_alloc(void **state) {
    (void)state;
    iqdb *db = filtered_db(16, 2000, 51);
    iqdb_filter *f;
    assert_int_equal(iqdb_filter_parse(NULL, "mod < 500", 9, &f, NULL), IQDB_OK);
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    iqdbt_rng r = {52};
    float q[16];
    iqdb_hit hits[64];
    size_t n;
    long long allocs = 0;
    for (int pass = 0; pass < 2; pass++) {
        iqdbt_rng r2 = r;
        if (pass) allocs = atomic_load(&A.count);
        for (int i = 0; i < 300; i++) {
            iqdbt_fill(&r2, q, 16, -1, 1);
            p.filter = i % 2 ? f : NULL;
            p.ef = (uint32_t)(i % 200);
            assert_int_equal(iqdb_search(db, q, (size_t)(1 + i % 64), &p, hits, &n, NULL), IQDB_OK);
        }
    }
    assert_int_equal(atomic_load(&A.count), allocs);
    iqdb_filter_destroy(f);
    iqdb_close(db);
}

/* ---- builds ------------------------------------------------------------------------------------
 */

/* Reads the graph's serialized bytes through a public-level trick: two databases built the same
 * way answer every search identically iff their graphs agree on what searches see. */
static void answers(iqdb *db, const float *qs, size_t nq, uint32_t dim, iqdb_hit *out) {
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    p.ef = 10;
    for (size_t i = 0; i < nq; i++) {
        size_t n;
        memset(out + i * 10, 0, 10 * sizeof *out);
        assert_int_equal(iqdb_search(db, qs + i * dim, 10, &p, out + i * 10, &n, NULL), IQDB_OK);
    }
}

/* One thread and a fixed seed: the same graph every time; another seed gives another one. The
 * parallel build gives a valid graph. */
static void test_hnsw_build_determinism(void **state) {
    (void)state;
    const uint32_t dim = 20;
    const size_t n = 3000, nq = 50;
    iqdbt_rng r = {61};
    float *vs = malloc(n * dim * sizeof(float)), *qs = malloc(nq * dim * sizeof(float));
    iqdbt_fill(&r, vs, n * dim, -1, 1);
    iqdbt_fill(&r, qs, nq * dim, -1, 1);
    iqdb_id *ids = malloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++) ids[i] = i;
    iqdb_hit *res[4];
    for (int b = 0; b < 4; b++) {
        /* 0, 1: one thread, seed 7; 2: seed 8; 3: two threads */
        iqdb *db = open_hnsw(dim, IQDB_METRIC_L2, 6, b == 3 ? 2 : 1, b == 2 ? 8 : 7);
        assert_int_equal(iqdb_upsert_batch(db, n / 2, ids, vs, NULL), IQDB_OK);
        for (size_t i = n / 2; i < n; i++)
            assert_int_equal(iqdb_upsert(db, ids[i], vs + i * dim, NULL), IQDB_OK);
        check_ok(db, "build");
        res[b] = malloc(nq * 10 * sizeof(iqdb_hit));
        answers(db, qs, nq, dim, res[b]);
        iqdb_close(db);
    }
    assert_memory_equal(res[0], res[1], nq * 10 * sizeof(iqdb_hit));
    assert_true(memcmp(res[0], res[2], nq * 10 * sizeof(iqdb_hit)) != 0);
    for (int b = 0; b < 4; b++) free(res[b]);
    free(vs);
    free(qs);
    free(ids);
}

/* Bulk builds on two threads (the concurrency label: run under TSan): valid graphs, batches
 * mixing new ids and replacements, repeated. */
static void test_hnsw_parallel_build(void **state) {
    (void)state;
    const uint32_t dim = 12;
#if defined(__SANITIZE_THREAD__)
    /* TSan runs this test alone (unit.hnsw.parallel) at 10-20x the cost: smaller, still
     * batches of 256+, which are linked on the worker threads */
    const size_t n = 600;
    const int batches = 2;
#else
    const size_t n = 1500;
    const int batches = 3;
#endif
    iqdbt_rng r = {71};
    float *vs = malloc(n * dim * sizeof(float));
    iqdb_id *ids = malloc(n * sizeof *ids);
    for (int round = 0; round < 3; round++) {
        iqdb *db = open_hnsw(dim, round == 1 ? IQDB_METRIC_COSINE : IQDB_METRIC_L2, 4 + 4 * round,
                             2, 70 + (uint64_t)round);
        for (int batch = 0; batch < batches; batch++) {
            iqdbt_fill(&r, vs, n * dim, -1, 1);
            for (size_t i = 0; i < n; i++) ids[i] = iqdbt_next(&r) % (n + n / 2);
            assert_int_equal(iqdb_upsert_batch(db, n, ids, vs, NULL), IQDB_OK);
            check_ok(db, "parallel batch");
        }
        assert_int_equal(iqdb_optimize(db), IQDB_OK);
        check_ok(db, "parallel optimize");
        iqdb_close(db);
    }
    free(vs);
    free(ids);
}

/* optimize: rebuilds after churn; searches keep working; memory does not grow. */
static void test_hnsw_optimize(void **state) {
    (void)state;
    const uint32_t dim = 16;
    iqdb *db = filtered_db(dim, 2000, 81);
    iqdbt_rng r = {82};
    float v[16];
    for (uint64_t id = 0; id < 2000; id += 2) iqdb_delete(db, id, NULL);
    for (uint64_t id = 2000; id < 2500; id++) {
        iqdbt_fill(&r, v, dim, -1, 1);
        iqdb_upsert(db, id, v, NULL);
    }
    check_ok(db, "churn");
    iqdb_stats a = {.struct_size = sizeof a}, b = {.struct_size = sizeof b};
    iqdb_stats_get(db, &a);
    assert_int_equal(iqdb_optimize(db), IQDB_OK);
    check_ok(db, "optimize");
    iqdb_stats_get(db, &b);
    assert_int_equal(b.count, 1500);
    assert_true(b.mem_index <= a.mem_index);
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    p.ef = 1500; /* exact */
    iqdb_search_params px;
    iqdb_search_params_init(&px);
    px.exact = 1;
    iqdb_hit h1[10], h2[10];
    iqdbt_fill(&r, v, dim, -1, 1);
    assert_int_equal(search_ids(db, v, 10, &p, h1, NULL), 10);
    assert_int_equal(search_ids(db, v, 10, &px, h2, NULL), 10);
    assert_memory_equal(h1, h2, sizeof h1);
    assert_int_equal(iqdb_optimize(NULL), IQDB_MISUSE);
    iqdb_close(db);
    /* a flat database has nothing to optimize */
    iqdb_options o;
    iqdb_options_init(&o, 4, IQDB_METRIC_L2);
    o.allocator = iqdbt_allocator(&A, 1);
    assert_int_equal(iqdb_open(NULL, &o, &db), IQDB_OK);
    assert_int_equal(iqdb_optimize(db), IQDB_OK);
    iqdb_close(db);
}

/* ---- serialized form (internal: the durability layer's view) --------------------------------- */

typedef struct fixture {
    iqdb__mem mem;
    iqdb__store st;
    iqdb__scratch_pool sp;
    iqdb__pool *pool;
    iqdb_options opts;
    iqdb__env env;
    iqdb__index *ix;
} fixture;

static void fx_init(fixture *f, uint32_t dim, iqdb_metric metric, uint32_t m) {
    memset(f, 0, sizeof *f);
    iqdb_allocator al = iqdbt_allocator(&A, 1);
    iqdb__mem_init(&f->mem, &al);
    iqdb__store_init(&f->st, &f->mem, dim);
    assert_int_equal(iqdb__scratch_pool_init(&f->sp, &f->mem), IQDB_OK);
    assert_int_equal(iqdb__pool_create(&f->mem, 1, &f->pool), IQDB_OK);
    iqdb_options_init(&f->opts, dim, metric);
    f->opts.index = IQDB_INDEX_HNSW;
    f->opts.hnsw.m = m;
    f->opts.hnsw.ef_construction = 40;
    f->env.store = &f->st;
    f->env.kern = iqdb__kernels_get(IQDB_SIMD_AUTO);
    f->env.metric = metric;
    f->env.op = iqdb__metric_op(metric);
    f->env.mem = &f->mem;
    f->env.scratch = &f->sp;
    f->env.pool = f->pool;
    f->env.opts = &f->opts;
    assert_int_equal(iqdb__index_create(IQDB__INDEX_HNSW, &f->env, &f->ix), IQDB_OK);
}

static void fx_destroy(fixture *f) {
    iqdb__index_destroy(f->ix);
    iqdb__pool_destroy(f->pool);
    iqdb__scratch_pool_destroy(&f->sp);
    iqdb__store_destroy(&f->st);
}

static uint32_t fx_add(fixture *f, uint64_t id, const float *v) {
    assert_int_equal(iqdb__store_reserve(&f->st, 1), IQDB_OK);
    float sq = f->env.kern->pair[IQDB__OP_DOT](v, v, f->st.dim);
    uint32_t slot = iqdb__store_add(&f->st, id, v, sq, NULL, 0);
    iqdb__idmap_put(&f->st.map, id, slot);
    assert_int_equal(iqdb__index_insert(f->ix, &f->env, slot), IQDB_OK);
    return slot;
}

static void fx_del(fixture *f, uint64_t id) {
    uint32_t slot = iqdb__idmap_remove(&f->st.map, id);
    assert_true(slot != IQDB__NO_SLOT);
    iqdb__index_remove(f->ix, &f->env, slot);
    iqdb__store_remove(&f->st, slot);
}

/* k results of the index for q, into hits (ids and distances). */
static size_t fx_search(fixture *f, iqdb__index *ix, const float *q, size_t k, iqdb_hit *hits) {
    iqdb__scratch *s = iqdb__scratch_get(&f->sp);
    assert_non_null(s);
    assert_int_equal(iqdb__scratch_cand(s, &f->mem, k), IQDB_OK);
    iqdb__query qq = {
        q, sqrtf(f->env.kern->pair[IQDB__OP_DOT](q, q, f->st.dim)), k, NULL, NULL, 12, 0, 0, 0};
    iqdb__topk top;
    iqdb__topk_init(&top, s->cand, k);
    iqdb__sinfo si = {1, IQDB_STRATEGY_NONE, 0, 0, 0, 0, 0};
    assert_int_equal(iqdb__index_search(ix, &f->env, &qq, s, &top, &si), IQDB_OK);
    size_t n;
    iqdb__hits_from_top(&f->st, &top, hits, &n);
    iqdb__scratch_put(&f->sp, s);
    return n;
}

/* Loads bytes into a fresh index of the fixture's store; returns the code. On success the index
 * is left in *out (caller destroys). */
static int fx_load(fixture *f, const uint8_t *p, size_t n, iqdb__index **out) {
    iqdb__index *ix;
    assert_int_equal(iqdb__index_create(IQDB__INDEX_HNSW, &f->env, &ix), IQDB_OK);
    iqdbt_membuf b = {(uint8_t *)p, n, n, 0};
    iqdb__source src = {iqdbt_mem_read, &b};
    int rc = iqdb__index_load(ix, &f->env, &src);
    if (rc == IQDB_OK && out) {
        assert_int_equal(iqdb__index_check(ix, &f->env), IQDB_OK);
        *out = ix;
    } else {
        iqdb__index_destroy(ix);
    }
    return rc;
}

static void fx_build(fixture *f, size_t n, uint64_t seed) {
    iqdbt_rng r = {seed};
    float v[8];
    for (uint64_t id = 0; id < n; id++) {
        iqdbt_fill(&r, v, f->st.dim, -1, 1);
        fx_add(f, id, v);
    }
    for (uint64_t id = 0; id < n; id += 3) fx_del(f, id); /* holes, repairs, a new root */
    for (uint64_t id = 0; id < n / 3; id++) {
        iqdbt_fill(&r, v, f->st.dim, -1, 1);
        fx_add(f, n + id, v);
    }
    assert_int_equal(iqdb__index_check(f->ix, &f->env), IQDB_OK);
}

static void serialize(fixture *f, iqdb__index *ix, iqdbt_membuf *b) {
    memset(b, 0, sizeof *b);
    iqdb__sink sink = {iqdbt_mem_write, b};
    assert_int_equal(iqdb__index_serialize(ix, &f->env, &sink), IQDB_OK);
}

/* serialize -> load gives identical search results and identical bytes. */
static void test_hnsw_serialize_roundtrip(void **state) {
    (void)state;
    const iqdb_metric metrics[] = {IQDB_METRIC_L2, IQDB_METRIC_COSINE, IQDB_METRIC_HAMMING};
    for (size_t mi = 0; mi < 3; mi++) {
        fixture f;
        fx_init(&f, 8, metrics[mi], 3);
        fx_build(&f, 400, 90 + mi);
        iqdbt_membuf b;
        serialize(&f, f.ix, &b);
        iqdb__index *ix2 = NULL;
        assert_int_equal(fx_load(&f, b.p, b.n, &ix2), IQDB_OK);
        iqdbt_membuf b2;
        serialize(&f, ix2, &b2);
        assert_int_equal(b.n, b2.n);
        assert_memory_equal(b.p, b2.p, b.n);
        iqdbt_rng r = {95};
        for (int t = 0; t < 50; t++) {
            float q[8];
            iqdbt_fill(&r, q, 8, -1, 1);
            iqdb_hit h1[10], h2[10];
            size_t n1 = fx_search(&f, f.ix, q, 10, h1), n2 = fx_search(&f, ix2, q, 10, h2);
            assert_int_equal(n1, n2);
            assert_memory_equal(h1, h2, n1 * sizeof *h1);
        }
        /* the loaded graph keeps working: deletes and inserts */
        iqdb__index_destroy(f.ix);
        f.ix = ix2;
        for (uint64_t id = 1; id < 200; id += 3) fx_del(&f, id);
        float v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
        fx_add(&f, 9999, v);
        assert_int_equal(iqdb__index_check(f.ix, &f.env), IQDB_OK);
        free(b.p);
        free(b2.p);
        fx_destroy(&f);
    }
}

/* Every truncation and thousands of single bit flips: load returns IQDB_CORRUPT / IQDB_FORMAT
 * (never crashes, never leaks), or, when the flipped bytes still describe a valid graph of these
 * rows, a graph that passes the check. */
static void test_hnsw_load_hostile(void **state) {
    (void)state;
    fixture f;
    fx_init(&f, 4, IQDB_METRIC_L2, 2);
    fx_build(&f, 150, 97);
    iqdbt_membuf b;
    serialize(&f, f.ix, &b);
    printf("serialized graph: %zu bytes\n", b.n);
    for (size_t len = 0; len < b.n; len++) {
        int rc = fx_load(&f, b.p, len, NULL);
        if (rc != IQDB_CORRUPT) print_error("truncation to %zu bytes gave %d\n", len, rc);
        assert_int_equal(rc, IQDB_CORRUPT);
    }
    uint8_t *c = malloc(b.n);
    iqdbt_rng r = {98};
    size_t rejected = 0, accepted = 0;
    for (int t = 0; t < 4000; t++) {
        memcpy(c, b.p, b.n);
        size_t at = (size_t)(iqdbt_next(&r) % b.n);
        c[at] ^= (uint8_t)(1u << (iqdbt_next(&r) % 8));
        iqdb__index *ix = NULL;
        int rc = fx_load(&f, c, b.n, &ix);
        if (rc == IQDB_OK) {
            accepted++;
            iqdb__index_destroy(ix);
        } else {
            if (rc != IQDB_CORRUPT && rc != IQDB_FORMAT)
                print_error("flip at %zu gave %d\n", at, rc);
            assert_true(rc == IQDB_CORRUPT || rc == IQDB_FORMAT);
            rejected++;
        }
    }
    printf("bit flips: %zu rejected, %zu still valid graphs (then checked)\n", rejected, accepted);
    assert_true(rejected > accepted * 4);
    free(c);
    free(b.p);
    fx_destroy(&f);
}

static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Hand-made hostile fields: each gets IQDB_CORRUPT (or IQDB_FORMAT for a newer version). */
static void test_hnsw_load_hostile_fields(void **state) {
    (void)state;
    fixture f;
    fx_init(&f, 4, IQDB_METRIC_L2, 2);
    fx_build(&f, 60, 99);
    iqdbt_membuf b;
    serialize(&f, f.ix, &b);
    /* header: magic version m efc ef widen seed(8) n_slots n_nodes entry root top+1; the first
     * node record follows at 52 (slot level parent ovf_next ovf_head, count, ids) */
    struct {
        const char *id;
        size_t at;
        uint32_t v;
        int want;
    } cases[] = {
        {"1.magic", 0, 0x12345678, IQDB_CORRUPT},
        {"2.version", 4, 3, IQDB_FORMAT},
        {"2b.version_quantized", 4, 2, IQDB_CORRUPT}, /* version 2 carries a quantizer */
        {"3.m_small", 8, 1, IQDB_CORRUPT},
        {"4.m_huge", 8, 0xffffffffu, IQDB_CORRUPT},
        {"5.efc", 12, 0, IQDB_CORRUPT},
        {"6.ef", 16, 0xffffffffu, IQDB_CORRUPT},
        {"7.seed0", 24, 0, IQDB_CORRUPT},
        {"8.n_slots", 32, 0xffffffffu, IQDB_CORRUPT},
        {"9.n_nodes", 36, 0xffffffffu, IQDB_CORRUPT},
        {"10.n_nodes_less", 36, 3, IQDB_CORRUPT},
        {"11.entry", 40, 0xfffffffeu, IQDB_CORRUPT},
        {"12.root", 44, 0xfffffffeu, IQDB_CORRUPT},
        {"13.top", 48, 31, IQDB_CORRUPT},
        {"14.slot", 52, 0xffffffffu, IQDB_CORRUPT},
        {"15.level", 56, 30, IQDB_CORRUPT},
        {"16.parent_self", 60, 0, IQDB_CORRUPT},
        {"17.ovf_next", 64, 0x7fffffff, IQDB_CORRUPT},
        {"18.ovf_head", 68, 1, IQDB_CORRUPT},
        {"19.count_huge", 72, 0xffffffffu, IQDB_CORRUPT},
        {"20.count_cap", 72, 5, IQDB_CORRUPT},
        {"21.link", 76, 0xffffffffu, IQDB_CORRUPT},
        {"22.self_link", 76, 0, IQDB_CORRUPT},
        {"23.m_other", 8, 3, IQDB_CORRUPT},         /* in range, but not the index's m */
        {"24.ef_other", 16, 65, IQDB_CORRUPT},      /* nor its ef_search */
        {"25.seed_other", 24, 12345, IQDB_CORRUPT}, /* nor its seed */
    };
    /* the first node is slot 1 (slot 0 was deleted and refilled: find it) */
    uint32_t first = (uint32_t)b.p[52] | (uint32_t)b.p[53] << 8;
    uint8_t *c = malloc(b.n);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(c, b.p, b.n);
        uint32_t v = cases[i].v;
        if (!strcmp(cases[i].id, "16.parent_self") || !strcmp(cases[i].id, "22.self_link"))
            v = first;
        put32(c + cases[i].at, v);
        if (!strcmp(cases[i].id, "7.seed0")) put32(c + 28, 0);
        int rc = fx_load(&f, c, b.n, NULL);
        if (rc != cases[i].want) print_error("case %s: got %d\n", cases[i].id, rc);
        assert_int_equal(rc, cases[i].want);
    }
    /* a duplicated link: the first node's first link written twice */
    memcpy(c, b.p, b.n);
    uint32_t cnt = (uint32_t)c[72] | (uint32_t)c[73] << 8;
    if (cnt >= 2) {
        memcpy(c + 80, c + 76, 4);
        assert_int_equal(fx_load(&f, c, b.n, NULL), IQDB_CORRUPT);
    }
    /* trailing garbage is not the end marker */
    memcpy(c, b.p, b.n);
    put32(c + b.n - 4, 0);
    assert_int_equal(fx_load(&f, c, b.n, NULL), IQDB_CORRUPT);
    free(c);
    free(b.p);
    fx_destroy(&f);
}

int main(void) {
    iqdbt_simd_gate();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hnsw_open_and_edges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hnsw_exact_when_ef_covers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hnsw_churn_invariants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hnsw_delete_frees, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hnsw_filter_completeness, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hnsw_batch_equals_single, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hnsw_exact_param, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hnsw_search_no_alloc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hnsw_build_determinism, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hnsw_parallel_build, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hnsw_optimize, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hnsw_serialize_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hnsw_load_hostile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hnsw_load_hostile_fields, setup, teardown),
    };
    /* IQDB_TEST_FILTER / IQDB_TEST_SKIP = pattern: run only / skip the matching tests (CTest
     * runs the parallel ones as a test of their own, the one the TSan stage runs:
     * tests/CMakeLists.txt) */
    const char *filter = getenv("IQDB_TEST_FILTER"), *skip = getenv("IQDB_TEST_SKIP");
    if (filter && *filter) cmocka_set_test_filter(filter);
    if (skip && *skip) cmocka_set_skip_filter(skip);
    return cmocka_run_group_tests_name("hnsw", tests, NULL, NULL);
}
