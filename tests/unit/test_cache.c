/*
 * test_cache.c — the result cache: cached answers equal uncached ones under random interleaved
 * writes (a cache-off twin handle is the oracle), precise invalidation counts, each policy's
 * eviction order, TTL, the byte bound, keys, stats and option checks.
 */
#include "../common/testutil.h"

#include <time.h>

enum { DIM = 8 };

static iqdb *open_db(iqdb_metric m, uint32_t entries, iqdb_cache_policy pol, uint64_t bytes,
                     uint32_t ttl_ms) {
    iqdb_options o;
    iqdb_options_init(&o, DIM, m);
    o.cache_entries = entries;
    o.cache_policy = pol;
    o.cache_bytes = bytes;
    o.cache_ttl_ms = ttl_ms;
    o.threads = 1;
    iqdb *db = NULL;
    assert_int_equal(iqdb_open(NULL, &o, &db), IQDB_OK);
    return db;
}

static iqdb_stats stats(iqdb *db) {
    iqdb_stats s = {.struct_size = sizeof s};
    assert_int_equal(iqdb_stats_get(db, &s), IQDB_OK);
    return s;
}

static void vec_at(float *v, float x) {
    for (int j = 0; j < DIM; j++) v[j] = x + (float)j * 0.25f; /* exact: ties stay ties */
}

/* searches and returns whether the result came from the cache */
static int search(iqdb *db, const float *q, size_t k, const iqdb_filter *f, iqdb_hit *hits,
                  size_t *n) {
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    p.filter = f;
    iqdb_search_info info = {.struct_size = sizeof info};
    assert_int_equal(iqdb_search(db, q, k, &p, hits, n, &info), IQDB_OK);
    return (int)info.cache_hit;
}

static iqdb_filter *parse(const char *text) {
    iqdb_filter *f = NULL;
    assert_int_equal(iqdb_filter_parse(NULL, text, strlen(text), &f, NULL), IQDB_OK);
    return f;
}

/* ---- the oracle test ------------------------------------------------------------------------ */

static void random_vec(iqdbt_rng *r, float *v) {
    /* small integers: many exact distance ties, so the tie rule is exercised */
    for (int j = 0; j < DIM; j++) v[j] = (float)(iqdbt_next(r) % 4);
}

static iqdb_meta *random_meta(iqdbt_rng *r) {
    uint64_t x = iqdbt_next(r);
    if (x % 5 == 0) return NULL;
    iqdb_meta *m;
    assert_int_equal(iqdb_meta_create(NULL, &m), IQDB_OK);
    iqdb_meta_set_int(m, "cat", (int64_t)((x >> 8) % 3));
    if ((x >> 16) % 3 == 0) iqdb_meta_set_string(m, "tag", "x");
    if ((x >> 20) % 7 == 0) iqdb_meta_set_bool(m, "late", 1); /* a key that appears late */
    return m;
}

/* The index a twin pair uses: the cache must match a cache-off twin with every kind. Caches
 * of approximate indexes (and quantized scans) lose their entries at every write, so `hot`
 * narrows the searches to a few keys to get hits between writes. */
typedef struct oracle_kind {
    iqdb_index_kind index;
    iqdb_quant quant;
    int hot;
} oracle_kind;

static iqdb *open_kind(iqdb_metric m, uint32_t entries, iqdb_cache_policy pol, oracle_kind kind) {
    iqdb_options o;
    iqdb_options_init(&o, DIM, m);
    o.cache_entries = entries;
    o.cache_policy = pol;
    o.threads = 1;
    o.index = kind.index;
    o.ivf.n_lists = 4; /* trains at 32 rows, within the 80 ids the steps use */
    o.ivf.n_probes = 2;
    o.quant.kind = kind.quant;
    iqdb *db = NULL;
    assert_int_equal(iqdb_open(NULL, &o, &db), IQDB_OK);
    return db;
}

static void run_oracle_kind(iqdb_metric metric, iqdb_cache_policy pol, uint64_t seed,
                            oracle_kind kind) {
    iqdbt_rng r = {seed};
    iqdb *c = open_kind(metric, 32, pol, kind), *u = open_kind(metric, 0, 0, kind);
    const char *ftext[] = {NULL,          "cat = 1",     "cat IN (0, 2)",
                           "EXISTS(tag)", "NOT cat = 1", "late = true"};
    iqdb_filter *filters[6] = {NULL};
    for (int i = 1; i < 6; i++) filters[i] = parse(ftext[i]);
    float queries[4][DIM];
    for (int i = 0; i < 4; i++) random_vec(&r, queries[i]);
    const size_t ks[] = {1, 5, 60};
    iqdb_hit hc[64], hu[64];
    long hits = 0, compared = 0, batch_looks = 0;
    const uint64_t nq = kind.hot ? 1 : 4, nk = kind.hot ? 1 : 3, nf = kind.hot ? 2 : 6;
    for (int step = 0; step < 3000; step++) {
        uint64_t x = iqdbt_next(&r) % 100;
        float v[DIM];
        if (x < 1 && step % 3 == 0) { /* a rebuild: IVF retrains, HNSW relinks */
            assert_int_equal(iqdb_optimize(c), IQDB_OK);
            assert_int_equal(iqdb_optimize(u), IQDB_OK);
        } else if (x < 14) { /* upsert: new id or replacement */
            iqdb_id id = iqdbt_next(&r) % 80;
            random_vec(&r, v);
            iqdb_meta *m = random_meta(&r);
            assert_int_equal(iqdb_upsert(c, id, v, m), IQDB_OK);
            assert_int_equal(iqdb_upsert(u, id, v, m), IQDB_OK);
            iqdb_meta_destroy(m);
        } else if (x < 17) { /* metadata change only: same vector */
            iqdb_id id = iqdbt_next(&r) % 80;
            if (iqdb_get(u, id, v, NULL) == IQDB_OK) {
                iqdb_meta *m = random_meta(&r);
                assert_int_equal(iqdb_upsert(c, id, v, m), IQDB_OK);
                assert_int_equal(iqdb_upsert(u, id, v, m), IQDB_OK);
                iqdb_meta_destroy(m);
            }
        } else if (x < 21) {
            iqdb_id id = iqdbt_next(&r) % 80;
            assert_int_equal(iqdb_delete(c, id, NULL), IQDB_OK);
            assert_int_equal(iqdb_delete(u, id, NULL), IQDB_OK);
        } else if (x < 22) { /* a batch with a duplicate id */
            iqdb_id ids[3] = {iqdbt_next(&r) % 80, iqdbt_next(&r) % 80, 0};
            ids[2] = ids[0];
            float vs[3 * DIM];
            for (int i = 0; i < 3; i++) random_vec(&r, vs + i * DIM);
            assert_int_equal(iqdb_upsert_batch(c, 3, ids, vs, NULL), IQDB_OK);
            assert_int_equal(iqdb_upsert_batch(u, 3, ids, vs, NULL), IQDB_OK);
        } else if (x < 30) { /* a batch search, compared with the twin */
            float qs[3 * DIM];
            for (int i = 0; i < 3; i++)
                memcpy(qs + i * DIM, queries[iqdbt_next(&r) % nq], sizeof qs[0] * DIM);
            size_t k = ks[iqdbt_next(&r) % nk + (kind.hot ? 1 : 0)];
            iqdb_search_params p;
            iqdb_search_params_init(&p);
            p.filter = filters[iqdbt_next(&r) % nf];
            iqdb_hit bc[3 * 60], bu[3 * 60];
            size_t nc[3], nu[3];
            assert_int_equal(iqdb_search_batch(c, qs, 3, k, &p, bc, nc), IQDB_OK);
            assert_int_equal(iqdb_search_batch(u, qs, 3, k, &p, bu, nu), IQDB_OK);
            for (int i = 0; i < 3; i++)
                if (nc[i] != nu[i] || memcmp(bc + i * k, bu + i * k, nc[i] * sizeof *bc) != 0) {
                    fprintf(stderr, "seed %llu step %d: cached batch result %d differs\n",
                            (unsigned long long)seed, step, i);
                    fail();
                }
            uint64_t cnt = 0;
            iqdb_count(u, &cnt);
            if (cnt) batch_looks += 3; /* an empty database answers without looking */
        } else {                       /* a search, compared with the twin */
            const float *q = queries[iqdbt_next(&r) % nq];
            size_t k = ks[iqdbt_next(&r) % nk + (kind.hot ? 1 : 0)];
            const iqdb_filter *f = filters[iqdbt_next(&r) % nf];
            size_t nc, nu;
            hits += search(c, q, k, f, hc, &nc);
            assert_int_equal(search(u, q, k, f, hu, &nu), 0);
            compared++;
            if (nc != nu || memcmp(hc, hu, nc * sizeof *hc) != 0) {
                fprintf(stderr, "seed %llu step %d: cached result differs (n %zu vs %zu)\n",
                        (unsigned long long)seed, step, nc, nu);
                fail();
            }
        }
    }
    iqdb_stats s = stats(c);
    if (hits < 200) fprintf(stderr, "seed %llu: only %ld hits\n", (unsigned long long)seed, hits);
    assert_true(hits >= 200); /* the cache was really used ... */
    if (kind.index == IQDB_INDEX_IVF) assert_int_equal(stats(c).trained, 1);
    assert_true(s.cache_invalidations > 0);
    assert_true(s.cache_hits >= (uint64_t)hits);
    assert_int_equal(s.cache_hits + s.cache_misses, (uint64_t)(compared + batch_looks));
    for (int i = 1; i < 6; i++) iqdb_filter_destroy(filters[i]);
    assert_int_equal(iqdb_check(c), IQDB_OK);
    iqdb_close(c);
    iqdb_close(u);
}

static void run_oracle(iqdb_metric metric, iqdb_cache_policy pol, uint64_t seed) {
    run_oracle_kind(metric, pol, seed, (oracle_kind){IQDB_INDEX_FLAT, IQDB_QUANT_NONE, 0});
}

/* The same oracle over IVF (trained during the run, retrained by optimize), HNSW and a
 * quantized flat index. */
static void test_cache_equals_uncached_indexes(void **state) {
    (void)state;
    uint64_t seed = (uint64_t)time(NULL) ^ 0x1f0ull;
    const oracle_kind ivf = {IQDB_INDEX_IVF, IQDB_QUANT_NONE, 1},
                      ivf_sq8 = {IQDB_INDEX_IVF, IQDB_QUANT_SQ8, 1},
                      hnsw = {IQDB_INDEX_HNSW, IQDB_QUANT_NONE, 1},
                      flat_sq8 = {IQDB_INDEX_FLAT, IQDB_QUANT_SQ8, 1};
    run_oracle_kind(IQDB_METRIC_L2, IQDB_CACHE_LRU, seed, ivf);
    run_oracle_kind(IQDB_METRIC_COSINE, IQDB_CACHE_ARC, seed + 1, ivf);
    run_oracle_kind(IQDB_METRIC_L1, IQDB_CACHE_LFU, seed + 2, ivf);
    run_oracle_kind(IQDB_METRIC_L2, IQDB_CACHE_FIFO, seed + 3, ivf_sq8);
    run_oracle_kind(IQDB_METRIC_L2, IQDB_CACHE_LRU, seed + 4, hnsw);
    run_oracle_kind(IQDB_METRIC_DOT, IQDB_CACHE_ARC, seed + 5, hnsw);
    run_oracle_kind(IQDB_METRIC_L2, IQDB_CACHE_LFU, seed + 6, flat_sq8);
}

static void test_cache_equals_uncached(void **state) {
    (void)state;
    const iqdb_metric metrics[] = {IQDB_METRIC_L2, IQDB_METRIC_COSINE, IQDB_METRIC_DOT,
                                   IQDB_METRIC_L1, IQDB_METRIC_HAMMING};
    const iqdb_cache_policy pols[] = {IQDB_CACHE_LRU, IQDB_CACHE_LFU, IQDB_CACHE_FIFO,
                                      IQDB_CACHE_ARC};
    uint64_t seed = (uint64_t)time(NULL);
    for (size_t m = 0; m < 5; m++)
        for (size_t p = 0; p < 4; p++) run_oracle(metrics[m], pols[p], seed + m * 4 + p);
}

/* ---- precise invalidation ------------------------------------------------------------------- */

static void test_cache_invalidation_counts(void **state) {
    (void)state;
    iqdb *db = open_db(IQDB_METRIC_L2, 100, 0, 0, 0);
    float v[DIM];
    iqdb_meta *even, *odd;
    iqdb_meta_create(NULL, &even);
    iqdb_meta_create(NULL, &odd);
    iqdb_meta_set_int(even, "par", 0);
    iqdb_meta_set_int(odd, "par", 1);
    /* records at x = 0, 10, 20, ..., 190 */
    for (int i = 0; i < 20; i++) {
        vec_at(v, (float)(i * 10));
        assert_int_equal(iqdb_upsert(db, (iqdb_id)i, v, i % 2 ? odd : even), IQDB_OK);
    }
    iqdb_filter *fodd = parse("par = 1");
    iqdb_hit h[8];
    size_t n;
    /* 5 cached queries at x = 1, 41, 81, 121, 161 (k = 2), and one filtered at 1 */
    for (int i = 0; i < 5; i++) {
        vec_at(v, (float)(i * 40 + 1));
        assert_int_equal(search(db, v, 2, NULL, h, &n), 0);
    }
    vec_at(v, 1);
    search(db, v, 2, fodd, h, &n); /* hits: ids 1 (x=10) and 3 (x=30) */
    assert_int_equal(stats(db).cache_len, 6);

    /* far from every query: evicts nothing */
    vec_at(v, 5000);
    assert_int_equal(iqdb_upsert(db, 100, v, NULL), IQDB_OK);
    assert_int_equal(stats(db).cache_invalidations, 0);
    /* deleting a record in no result: nothing */
    assert_int_equal(iqdb_delete(db, 100, NULL), IQDB_OK);
    assert_int_equal(iqdb_delete(db, 19, NULL), IQDB_OK); /* x = 190: not in any top 2 */
    assert_int_equal(stats(db).cache_invalidations, 0);
    /* a tie with the k-th hit loses (the new record is the latest): x = 21 is 11 from 10 ...
     * query 1: hits x=0 (d 1) and x=10 (d 9): a new record at x = -8 is at d 9 too */
    vec_at(v, -8);
    assert_int_equal(iqdb_upsert(db, 101, v, NULL), IQDB_OK);
    assert_int_equal(stats(db).cache_invalidations, 0);
    /* strictly nearer to query x = 41 than its 2nd hit (x = 50, d 9): one entry goes */
    vec_at(v, 42);
    assert_int_equal(iqdb_upsert(db, 102, v, NULL), IQDB_OK);
    assert_int_equal(stats(db).cache_invalidations, 1);
    assert_int_equal(stats(db).cache_len, 5);
    /* near the filtered query but not matching: the unfiltered entry at 1 goes, the filtered
     * one stays */
    vec_at(v, 2);
    assert_int_equal(iqdb_upsert(db, 103, v, even), IQDB_OK);
    assert_int_equal(stats(db).cache_invalidations, 2);
    vec_at(v, 1);
    assert_int_equal(search(db, v, 2, fodd, h, &n), 1);
    /* a metadata change makes it match: now it goes */
    vec_at(v, 2);
    assert_int_equal(iqdb_upsert(db, 103, v, odd), IQDB_OK);
    assert_int_equal(stats(db).cache_invalidations, 3);
    vec_at(v, 1);
    assert_int_equal(search(db, v, 2, fodd, h, &n), 0);
    assert_int_equal(h[0].id, 103);
    /* replacing a record inside a result (far away now) evicts that entry */
    vec_at(v, 121);
    search(db, v, 2, NULL, h, &n);
    assert_int_equal(search(db, v, 2, NULL, h, &n), 1);
    iqdb_id inside = h[0].id;
    uint64_t before = stats(db).cache_invalidations;
    vec_at(v, 9000);
    assert_int_equal(iqdb_upsert(db, inside, v, NULL), IQDB_OK);
    assert_int_equal(stats(db).cache_invalidations, before + 1);
    /* an entry with fewer than k hits takes any new match, however far */
    iqdb_filter *fnew = parse("par = 7");
    iqdb_meta *seven;
    iqdb_meta_create(NULL, &seven);
    iqdb_meta_set_int(seven, "par", 7);
    vec_at(v, 0);
    search(db, v, 5, fnew, h, &n);
    assert_int_equal(n, 0);
    before = stats(db).cache_invalidations;
    vec_at(v, 7000);
    assert_int_equal(iqdb_upsert(db, 200, v, seven), IQDB_OK);
    assert_int_equal(stats(db).cache_invalidations, before + 1);
    vec_at(v, 0);
    assert_int_equal(search(db, v, 5, fnew, h, &n), 0);
    assert_int_equal(n, 1);
    /* a filter on a key the database had never seen: the record that introduces it is seen */
    iqdb_filter *fkey = parse("brand_new = 1");
    search(db, v, 3, fkey, h, &n);
    assert_int_equal(n, 0);
    iqdb_meta *bn;
    iqdb_meta_create(NULL, &bn);
    iqdb_meta_set_int(bn, "brand_new", 1);
    vec_at(v, 8000);
    assert_int_equal(iqdb_upsert(db, 201, v, bn), IQDB_OK);
    vec_at(v, 0);
    assert_int_equal(search(db, v, 3, fkey, h, &n), 0);
    assert_int_equal(n, 1);
    /* iqdb_cache_clear */
    uint64_t len = stats(db).cache_len;
    before = stats(db).cache_invalidations;
    assert_true(len > 0);
    assert_int_equal(iqdb_cache_clear(db), IQDB_OK);
    assert_int_equal(stats(db).cache_len, 0);
    assert_int_equal(stats(db).cache_invalidations, before + len);
    iqdb_filter_destroy(fodd);
    iqdb_filter_destroy(fnew);
    iqdb_filter_destroy(fkey);
    iqdb_meta_destroy(even);
    iqdb_meta_destroy(odd);
    iqdb_meta_destroy(seven);
    iqdb_meta_destroy(bn);
    iqdb_close(db);
}

/* ---- policies ------------------------------------------------------------------------------- */

static int probe(iqdb *db, int which) {
    float v[DIM];
    vec_at(v, (float)which);
    iqdb_hit h[1];
    size_t n;
    return search(db, v, 1, NULL, h, &n);
}

static iqdb *policy_db(iqdb_cache_policy pol, uint32_t cap) {
    iqdb *db = open_db(IQDB_METRIC_L2, cap, pol, 0, 0);
    float v[DIM];
    vec_at(v, 0);
    assert_int_equal(iqdb_upsert(db, 1, v, NULL), IQDB_OK);
    return db;
}

static void test_cache_policy_lru(void **state) {
    (void)state;
    iqdb *db = policy_db(IQDB_CACHE_LRU, 3);
    probe(db, 1), probe(db, 2), probe(db, 3); /* A B C */
    assert_int_equal(probe(db, 1), 1);        /* touch A */
    probe(db, 4);                             /* D evicts B, the least recent */
    assert_int_equal(stats(db).cache_evictions, 1);
    assert_int_equal(probe(db, 1), 1);
    assert_int_equal(probe(db, 3), 1);
    assert_int_equal(probe(db, 4), 1);
    assert_int_equal(probe(db, 2), 0);
    iqdb_close(db);
}

static void test_cache_policy_fifo(void **state) {
    (void)state;
    iqdb *db = policy_db(IQDB_CACHE_FIFO, 3);
    probe(db, 1), probe(db, 2), probe(db, 3);
    assert_int_equal(probe(db, 1), 1); /* a hit does not refresh */
    probe(db, 4);                      /* D evicts A, the first in */
    assert_int_equal(probe(db, 2), 1);
    assert_int_equal(probe(db, 3), 1);
    assert_int_equal(probe(db, 4), 1);
    assert_int_equal(probe(db, 1), 0);
    iqdb_close(db);
}

static void test_cache_policy_lfu(void **state) {
    (void)state;
    iqdb *db = policy_db(IQDB_CACHE_LFU, 3);
    probe(db, 1), probe(db, 2), probe(db, 3);
    probe(db, 1), probe(db, 1), probe(db, 3); /* A used 3x, C 2x, B 1x */
    probe(db, 2);                             /* B 2x now: ties with C, B more recent */
    probe(db, 4);                             /* evicts C: lowest count (2), least recent */
    assert_int_equal(probe(db, 1), 1);
    assert_int_equal(probe(db, 2), 1);
    assert_int_equal(probe(db, 4), 1);
    assert_int_equal(probe(db, 3), 0);
    iqdb_close(db);
}

/* ARC resists a scan: two entries used twice survive a stream of one-time queries; LRU loses
 * them. */
static void scan_resistance(iqdb_cache_policy pol, int expect) {
    iqdb *db = policy_db(pol, 4);
    probe(db, 1), probe(db, 2);
    assert_int_equal(probe(db, 1), 1);
    assert_int_equal(probe(db, 2), 1);
    for (int i = 100; i < 120; i++) assert_int_equal(probe(db, i), 0);
    assert_int_equal(probe(db, 1), expect);
    assert_int_equal(probe(db, 2), expect);
    iqdb_stats s = stats(db);
    assert_true(s.cache_len <= 4);
    iqdb_close(db);
}

static void test_cache_policy_arc(void **state) {
    (void)state;
    scan_resistance(IQDB_CACHE_ARC, 1);
    scan_resistance(IQDB_CACHE_LRU, 0);
    /* an entry pushed out to a ghost list is a miss (ghosts hold no result) */
    iqdb *db = policy_db(IQDB_CACHE_ARC, 2);
    probe(db, 1), probe(db, 1), probe(db, 2); /* T2 = {1}, T1 = {2} */
    probe(db, 3);                             /* 2 goes to the ghost list B1 */
    assert_int_equal(probe(db, 1), 1);
    assert_int_equal(probe(db, 3), 1);
    assert_int_equal(probe(db, 2), 0); /* a ghost hit: recomputed, cached again */
    assert_int_equal(probe(db, 2), 1);
    assert_int_equal(stats(db).cache_len, 2);
    iqdb_close(db);
}

/* ---- TTL, bytes, keys, stats ---------------------------------------------------------------- */

static void test_cache_ttl(void **state) {
    (void)state;
    iqdb *db = open_db(IQDB_METRIC_L2, 8, 0, 0, 60);
    float v[DIM];
    vec_at(v, 0);
    assert_int_equal(iqdb_upsert(db, 1, v, NULL), IQDB_OK);
    assert_int_equal(probe(db, 5), 0);
    assert_int_equal(probe(db, 5), 1);
    struct timespec ts = {0, 120 * 1000000L};
    nanosleep(&ts, NULL);
    assert_int_equal(probe(db, 5), 0); /* expired: recomputed */
    assert_int_equal(stats(db).cache_evictions, 1);
    assert_int_equal(probe(db, 5), 1);
    iqdb_close(db);
}

static void test_cache_bytes_bound(void **state) {
    (void)state;
    iqdb *db = open_db(IQDB_METRIC_L2, 1000, 0, 0, 0);
    float v[DIM];
    for (int i = 0; i < 50; i++) {
        vec_at(v, (float)i);
        assert_int_equal(iqdb_upsert(db, (iqdb_id)i, v, NULL), IQDB_OK);
    }
    iqdb_hit h[50];
    size_t n;
    search(db, v, 10, NULL, h, &n);
    uint64_t one = stats(db).cache_bytes;
    assert_true(one > 10 * sizeof(iqdb_hit));
    iqdb_close(db);
    db = open_db(IQDB_METRIC_L2, 1000, 0, 2 * one + one / 4, 0);
    for (int i = 0; i < 50; i++) {
        vec_at(v, (float)i);
        assert_int_equal(iqdb_upsert(db, (iqdb_id)i, v, NULL), IQDB_OK);
    }
    for (int i = 0; i < 10; i++) {
        vec_at(v, (float)i + 0.5f);
        search(db, v, 10, NULL, h, &n);
    }
    iqdb_stats s = stats(db);
    assert_int_equal(s.cache_len, 2);
    assert_true(s.cache_bytes <= s.cache_max_bytes);
    assert_int_equal(s.cache_evictions, 8);
    /* a result larger than the whole budget is not cached at all */
    search(db, v, 50, NULL, h, &n);
    assert_int_equal(search(db, v, 50, NULL, h, &n), 0);
    iqdb_close(db);
}

static void test_cache_keys(void **state) {
    (void)state;
    iqdb *db = open_db(IQDB_METRIC_L2, 100, 0, 0, 0);
    float v[DIM];
    for (int i = 0; i < 10; i++) {
        vec_at(v, (float)i);
        assert_int_equal(iqdb_upsert(db, (iqdb_id)i, v, NULL), IQDB_OK);
    }
    vec_at(v, 3.3f);
    iqdb_hit h[10];
    size_t n;
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    iqdb_search_info info = {.struct_size = sizeof info};
    assert_int_equal(iqdb_search(db, v, 3, &p, h, &n, &info), IQDB_OK);
    assert_int_equal(info.cache_hit, 0);
    assert_int_equal(info.n_distances, 10);
    assert_int_equal(iqdb_search(db, v, 3, &p, h, &n, &info), IQDB_OK);
    assert_int_equal(info.cache_hit, 1);
    assert_int_equal(info.n_distances, 0);
    assert_int_equal(info.complete, 1);
    assert_int_equal(info.strategy, IQDB_STRATEGY_SCAN);
    /* any difference in k, params, filter or query bits is another key */
    assert_int_equal(search(db, v, 4, NULL, h, &n), 0);
    p.exact = 1;
    assert_int_equal(iqdb_search(db, v, 3, &p, h, &n, &info), IQDB_OK);
    assert_int_equal(info.cache_hit, 0);
    p.exact = 0;
    p.ef = 7;
    assert_int_equal(iqdb_search(db, v, 3, &p, h, &n, &info), IQDB_OK);
    assert_int_equal(info.cache_hit, 0);
    float w[DIM];
    memcpy(w, v, sizeof w);
    w[0] = nextafterf(w[0], 100.0f);
    assert_int_equal(search(db, w, 3, NULL, h, &n), 0);
    /* the same filter built two ways, and -0.0 vs 0.0, are one key */
    iqdb_filter *a = parse("x = 0.0"), *b = NULL;
    assert_int_equal(iqdb_filter_eq(NULL, "x", iqdb_double(-0.0), &b), IQDB_OK);
    assert_int_equal(search(db, v, 3, a, h, &n), 0);
    assert_int_equal(search(db, v, 3, b, h, &n), 1);
    iqdb_filter *c = parse("x = 0"); /* an int literal: another type, another key */
    assert_int_equal(search(db, v, 3, c, h, &n), 0);
    iqdb_filter_destroy(a);
    iqdb_filter_destroy(b);
    iqdb_filter_destroy(c);
    /* search_batch looks every query up, runs the misses, and caches their results */
    iqdb_stats s0 = stats(db);
    size_t nb[3];
    iqdb_hit hb[9];
    float qs[3 * DIM];
    memcpy(qs, v, sizeof v);           /* cached above with k = 3 */
    vec_at(qs + DIM, 7.7f);            /* new */
    memcpy(qs + 2 * DIM, w, sizeof w); /* cached above */
    assert_int_equal(iqdb_search_batch(db, qs, 3, 3, NULL, hb, nb), IQDB_OK);
    iqdb_stats s1 = stats(db);
    assert_int_equal(s1.cache_hits - s0.cache_hits, 2);
    assert_int_equal(s1.cache_misses - s0.cache_misses, 1);
    for (int i = 0; i < 3; i++) {
        iqdb_hit one[3];
        size_t n1;
        iqdb_search_params_init(&p);
        p.exact = 1; /* another key: computed, not cached */
        assert_int_equal(iqdb_search(db, qs + i * DIM, 3, &p, one, &n1, NULL), IQDB_OK);
        assert_int_equal(n1, nb[i]);
        assert_memory_equal(one, hb + i * 3, n1 * sizeof *one);
    }
    assert_int_equal(search(db, qs + DIM, 3, NULL, h, &n), 1); /* the batch cached it */
    iqdb_close(db);
}

static void test_cache_options_and_stats(void **state) {
    (void)state;
    iqdb_options o;
    iqdb *db = NULL;
    iqdb_options_init(&o, DIM, IQDB_METRIC_L2);
    o.cache_entries = (1u << 20) + 1;
    assert_int_equal(iqdb_open(NULL, &o, &db), IQDB_INVALID);
    iqdb_options_init(&o, DIM, IQDB_METRIC_L2);
    o.cache_policy = (iqdb_cache_policy)9;
    assert_int_equal(iqdb_open(NULL, &o, &db), IQDB_INVALID);
    iqdb_options_init(&o, DIM, IQDB_METRIC_L2);
    o.cache_reserved = 1;
    assert_int_equal(iqdb_open(NULL, &o, &db), IQDB_INVALID);
    assert_null(db);
    /* off by default: every counter 0, never a hit */
    db = open_db(IQDB_METRIC_L2, 0, 0, 0, 0);
    float v[DIM];
    vec_at(v, 1);
    assert_int_equal(iqdb_upsert(db, 1, v, NULL), IQDB_OK);
    iqdb_hit h[1];
    size_t n;
    search(db, v, 1, NULL, h, &n);
    assert_int_equal(search(db, v, 1, NULL, h, &n), 0);
    iqdb_stats s = stats(db);
    assert_int_equal(s.cache_hits + s.cache_misses + s.cache_len + s.cache_capacity, 0);
    assert_int_equal(s.mem_cache, 0);
    assert_int_equal(iqdb_cache_clear(db), IQDB_OK);
    assert_int_equal(iqdb_cache_clear(NULL), IQDB_MISUSE);
    iqdb_close(db);
    db = open_db(IQDB_METRIC_L2, 64, IQDB_CACHE_ARC, 1 << 20, 0);
    assert_int_equal(iqdb_upsert(db, 1, v, NULL), IQDB_OK);
    search(db, v, 1, NULL, h, &n);
    s = stats(db);
    assert_int_equal(s.cache_capacity, 64);
    assert_int_equal(s.cache_max_bytes, 1 << 20);
    assert_int_equal(s.cache_len, 1);
    assert_int_equal(s.cache_misses, 1);
    assert_true(s.mem_cache >= s.cache_bytes && s.cache_bytes > 0);
    assert_true(s.mem_total >= s.mem_cache);
    iqdb_close(db);
}

/* Allocation failures inside the cache never change an answer: the result is still right (or
 * the call fails cleanly), and nothing leaks. */
static void test_cache_oom(void **state) {
    (void)state;
    iqdbt_alloc al;
    for (long long at = 1; at < 400; at += 3) {
        iqdbt_alloc_reset(&al);
        iqdb_options o;
        iqdb_options_init(&o, DIM, IQDB_METRIC_L2);
        o.cache_entries = 4;
        o.threads = 1;
        o.allocator = iqdbt_allocator(&al, 0);
        iqdb *db = NULL;
        assert_int_equal(iqdb_open(NULL, &o, &db), IQDB_OK);
        float v[DIM];
        for (int i = 0; i < 20; i++) {
            vec_at(v, (float)i);
            assert_int_equal(iqdb_upsert(db, (iqdb_id)i, v, NULL), IQDB_OK);
        }
        iqdb_filter *f = NULL;
        assert_int_equal(iqdb_filter_parse(&o.allocator, "NOT a = 1", 9, &f, NULL), IQDB_OK);
        iqdbt_fail_after(&al, at, 0);
        for (int round = 0; round < 3; round++) {
            for (int i = 0; i < 6; i++) {
                vec_at(v, (float)i + 0.25f);
                iqdb_hit h[3];
                size_t n = 0;
                iqdb_search_params p;
                iqdb_search_params_init(&p);
                p.filter = i % 2 ? f : NULL;
                int rc = iqdb_search(db, v, 3, &p, h, &n, NULL);
                assert_true(rc == IQDB_OK || rc == IQDB_NOMEM);
                if (rc == IQDB_OK) {
                    assert_int_equal(n, 3);
                    assert_int_equal(h[0].id, (iqdb_id)i);
                }
            }
            vec_at(v, 2.5f);
            int rc = iqdb_upsert(db, 100 + (iqdb_id)round, v, NULL);
            assert_true(rc == IQDB_OK || rc == IQDB_NOMEM);
        }
        iqdbt_fail_off(&al);
        iqdb_filter_destroy(f);
        assert_int_equal(iqdb_close(db), IQDB_OK);
        assert_int_equal(atomic_load(&al.live), 0);
    }
}

/* A bulk write (more than 64 records and more than half the rows) empties the cache; a smaller
 * batch is checked precisely. */
static void test_cache_bulk_write(void **state) {
    (void)state;
    iqdb *db = open_db(IQDB_METRIC_L2, 16, 0, 0, 0);
    enum { N = 300 };
    float *vs = malloc(sizeof(float) * DIM * N);
    iqdb_id ids[N];
    for (int i = 0; i < N; i++) {
        vec_at(vs + i * DIM, (float)i);
        ids[i] = (iqdb_id)i;
    }
    assert_int_equal(iqdb_upsert_batch(db, 200, ids, vs, NULL), IQDB_OK);
    probe(db, 1), probe(db, 2);
    assert_int_equal(stats(db).cache_len, 2);
    /* 65 far records into 200: checked, nothing evicted */
    for (int i = 0; i < N; i++) vec_at(vs + i * DIM, 5000.0f + (float)i);
    for (int i = 0; i < N; i++) ids[i] = 1000 + (iqdb_id)i;
    assert_int_equal(iqdb_upsert_batch(db, 65, ids, vs, NULL), IQDB_OK);
    assert_int_equal(stats(db).cache_invalidations, 0);
    assert_int_equal(stats(db).cache_len, 2);
    /* 300 more into 265: more than half the rows, the cache is emptied */
    for (int i = 0; i < N; i++) ids[i] = 2000 + (iqdb_id)i;
    assert_int_equal(iqdb_upsert_batch(db, N, ids, vs, NULL), IQDB_OK);
    assert_int_equal(stats(db).cache_invalidations, 2);
    assert_int_equal(stats(db).cache_len, 0);
    free(vs);
    iqdb_close(db);
}

/* HNSW results are approximate: any write evicts them (even a far one); keyed records are
 * invalidated by the version their hits name. */
static void test_cache_hnsw_and_keys(void **state) {
    (void)state;
    iqdb_options o;
    iqdb_options_init(&o, DIM, IQDB_METRIC_L2);
    o.index = IQDB_INDEX_HNSW;
    o.cache_entries = 16;
    o.threads = 1;
    iqdb *db = NULL;
    assert_int_equal(iqdb_open(NULL, &o, &db), IQDB_OK);
    float v[DIM];
    for (int i = 0; i < 200; i++) {
        vec_at(v, (float)i);
        assert_int_equal(iqdb_upsert(db, (iqdb_id)i, v, NULL), IQDB_OK);
    }
    iqdb_hit h1[5], h2[5];
    size_t n1, n2;
    vec_at(v, 10.2f);
    assert_int_equal(search(db, v, 5, NULL, h1, &n1), 0);
    assert_int_equal(search(db, v, 5, NULL, h2, &n2), 1);
    assert_int_equal(n1, n2);
    assert_memory_equal(h1, h2, n1 * sizeof *h1);
    float distant[DIM];
    vec_at(distant, 90000);
    assert_int_equal(iqdb_upsert(db, 5000, distant, NULL), IQDB_OK);
    assert_int_equal(stats(db).cache_invalidations, 1); /* approximate: evicted anyway */
    assert_int_equal(search(db, v, 5, NULL, h2, &n2), 0);
    assert_memory_equal(h1, h2, n1 * sizeof *h1);
    iqdb_close(db);

    /* keyed records on the flat index */
    db = open_db(IQDB_METRIC_L2, 16, 0, 0, 0);
    for (int i = 0; i < 20; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        vec_at(v, (float)i);
        assert_int_equal(iqdb_upsert_key(db, key, strlen(key), v, NULL), IQDB_OK);
    }
    vec_at(v, 3.1f);
    search(db, v, 2, NULL, h1, &n1); /* k3, k4 */
    assert_int_equal(search(db, v, 2, NULL, h1, &n1), 1);
    vec_at(distant, 70000);
    assert_int_equal(iqdb_upsert_key(db, "k15", 3, distant, NULL), IQDB_OK); /* not in the result */
    assert_int_equal(stats(db).cache_invalidations, 0);
    assert_int_equal(iqdb_upsert_key(db, "k4", 2, distant, NULL), IQDB_OK); /* in it */
    assert_int_equal(stats(db).cache_invalidations, 1);
    search(db, v, 2, NULL, h1, &n1);
    assert_int_equal(search(db, v, 2, NULL, h1, &n1), 1);
    assert_int_equal(iqdb_delete_key(db, "k3", 2, NULL), IQDB_OK);
    assert_int_equal(stats(db).cache_invalidations, 2);
    iqdb_close(db);
}

int main(void) {
    iqdbt_simd_gate();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache_equals_uncached),
        cmocka_unit_test(test_cache_equals_uncached_indexes),
        cmocka_unit_test(test_cache_invalidation_counts),
        cmocka_unit_test(test_cache_policy_lru),
        cmocka_unit_test(test_cache_policy_fifo),
        cmocka_unit_test(test_cache_policy_lfu),
        cmocka_unit_test(test_cache_policy_arc),
        cmocka_unit_test(test_cache_ttl),
        cmocka_unit_test(test_cache_bytes_bound),
        cmocka_unit_test(test_cache_keys),
        cmocka_unit_test(test_cache_options_and_stats),
        cmocka_unit_test(test_cache_oom),
        cmocka_unit_test(test_cache_bulk_write),
        cmocka_unit_test(test_cache_hnsw_and_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
