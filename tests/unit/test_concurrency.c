/*
 * test_concurrency.c — 8 readers and 2 writers on one handle for a bounded time (default 2 s;
 * IQDB_TEST_SECONDS overrides). Run under ThreadSanitizer in CI.
 *
 * The data is built so that readers can check every answer exactly while writers churn:
 *  - a record's vector is [x1(id) | rotate(base2, version)]: the first half depends only on the
 *    id, the second is a rotation of one fixed vector, so its norm never changes;
 *  - queries are [q1 | 0], so the L2 distance of a record is sqrt(|q1 - x1(id)|^2 + |base2|^2)
 *    whatever its version — and all values are small integers, so the float sums are exact;
 *  - ids 0..899 are only ever replaced (writer 1, single and batched upserts); ids 900..999 lie
 *    far away and are deleted and re-inserted (writer 2), so they never enter a top-k.
 * Readers check: each result is sorted and holds exactly the expected distances (the k nearest
 * stable records, or the nearest even ones under a filter), hit ids have the right distance,
 * batches agree, and a record read with iqdb_get is never torn (its metadata version matches
 * the rotation of its vector).
 */
#include "../common/testutil.h"

#include <pthread.h>
#include <time.h>

enum { DIM = 16, HALF = 8, STABLE = 900, TOTAL = 1000, READERS = 8, WRITERS = 2 };

static const float base2[HALF] = {3, -1, 4, 1, -5, 9, 2, -6};
static float x1[TOTAL][HALF];
static iqdb *db;
static _Atomic int stop;
static _Atomic long n_search, n_batch, n_get, n_write, errors;
static iqdb_filter *even;

static void make_vec(float *v, uint64_t id, unsigned version) {
    for (int j = 0; j < HALF; j++) v[j] = x1[id][j];
    for (int j = 0; j < HALF; j++) v[HALF + j] = base2[(j + version) % HALF];
}

static iqdb_meta *make_meta(uint64_t id, unsigned version) {
    iqdb_meta *m;
    iqdb_meta_create(NULL, &m);
    iqdb_meta_set_int(m, "par", (int64_t)(id % 2));
    iqdb_meta_set_int(m, "ver", (int64_t)version);
    return m;
}

static float expected_dist(const float *q1, uint64_t id) {
    float s = 0;
    for (int j = 0; j < HALF; j++) s += (q1[j] - x1[id][j]) * (q1[j] - x1[id][j]);
    for (int j = 0; j < HALF; j++) s += base2[j] * base2[j];
    return sqrtf(s);
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

#define REPORT(...)                   \
    do {                              \
        fprintf(stderr, __VA_ARGS__); \
        atomic_fetch_add(&errors, 1); \
    } while (0)

/* Checks one result for query q1 (even_only: the filter was applied). */
static void verify(const float *q1, size_t k, int even_only, const iqdb_hit *h, size_t n) {
    float want[STABLE];
    size_t m = 0;
    for (uint64_t id = 0; id < STABLE; id++)
        if (!even_only || id % 2 == 0) want[m++] = expected_dist(q1, id);
    qsort(want, m, sizeof *want, cmp_float);
    if (n != k) REPORT("expected %zu hits, got %zu\n", k, n);
    for (size_t i = 0; i < n && i < k; i++) {
        if (h[i].id >= STABLE)
            REPORT("a far-away record (%llu) in the top-k\n", (unsigned long long)h[i].id);
        else if (h[i].distance != expected_dist(q1, h[i].id))
            REPORT("hit %llu: distance %g, expected %g\n", (unsigned long long)h[i].id,
                   h[i].distance, expected_dist(q1, h[i].id));
        if (even_only && h[i].id % 2)
            REPORT("filtered result holds odd id %llu\n", (unsigned long long)h[i].id);
        if (h[i].distance != want[i])
            REPORT("rank %zu: distance %g, expected %g\n", i, h[i].distance, want[i]);
    }
}

static int pooled; /* the cached run: queries come from a pool of 24, so they repeat */

static void random_query(iqdbt_rng *r, float *q) {
    iqdbt_rng pr = {iqdbt_next(r) % 24 + 99};
    if (pooled) r = &pr;
    for (int j = 0; j < HALF; j++) q[j] = (float)((int)(iqdbt_next(r) % 11) - 5);
    for (int j = HALF; j < DIM; j++) q[j] = 0;
}

static void *reader_main(void *arg) {
    iqdbt_rng r = {(uint64_t)(uintptr_t)arg * 7919 + 1};
    float q[4 * DIM];
    iqdb_hit hits[4 * 50];
    size_t n[4];
    while (!atomic_load(&stop)) {
        uint64_t what = iqdbt_next(&r) % 4;
        size_t k = 1 + iqdbt_next(&r) % 50;
        if (what == 0 || what == 1) { /* single, plain or filtered */
            random_query(&r, q);
            iqdb_search_params p;
            iqdb_search_params_init(&p);
            p.filter = what == 1 ? even : NULL;
            if (iqdb_search(db, q, k, &p, hits, &n[0], NULL) != IQDB_OK)
                REPORT("search failed\n");
            else
                verify(q, k, what == 1, hits, n[0]);
            atomic_fetch_add(&n_search, 1);
        } else if (what == 2) { /* batch */
            for (int i = 0; i < 4; i++) random_query(&r, q + i * DIM);
            if (iqdb_search_batch(db, q, 4, k, NULL, hits, n) != IQDB_OK)
                REPORT("batch failed\n");
            else
                for (int i = 0; i < 4; i++) verify(q + i * DIM, k, 0, hits + i * k, n[i]);
            atomic_fetch_add(&n_batch, 1);
        } else { /* get: never torn */
            uint64_t id = iqdbt_next(&r) % STABLE;
            float v[DIM];
            iqdb_meta *m = NULL;
            if (iqdb_get(db, id, v, &m) != IQDB_OK) {
                REPORT("stable id %llu missing\n", (unsigned long long)id);
            } else {
                int64_t ver = -1;
                iqdb_meta_get_int(m, "ver", &ver);
                float want[DIM];
                make_vec(want, id, (unsigned)ver);
                if (memcmp(v, want, sizeof v)) REPORT("torn record %llu\n", (unsigned long long)id);
            }
            iqdb_meta_destroy(m);
            uint64_t c;
            iqdb_count(db, &c);
            if (c < TOTAL - 1 || c > TOTAL) REPORT("count %llu\n", (unsigned long long)c);
            atomic_fetch_add(&n_get, 1);
        }
    }
    return NULL;
}

static void *writer_main(void *arg) {
    int which = (int)(uintptr_t)arg;
    iqdbt_rng r = {(uint64_t)which * 104729 + 5};
    unsigned version = 1;
    while (!atomic_load(&stop)) {
        if (which == 0) { /* replace stable records, single or batched */
            if (iqdbt_next(&r) % 2) {
                uint64_t id = iqdbt_next(&r) % STABLE;
                float v[DIM];
                make_vec(v, id, version);
                iqdb_meta *m = make_meta(id, version);
                if (iqdb_upsert(db, id, v, m) != IQDB_OK) REPORT("upsert failed\n");
                iqdb_meta_destroy(m);
            } else {
                iqdb_id ids[8];
                float v[8 * DIM];
                iqdb_meta *ms[8];
                for (int i = 0; i < 8; i++) {
                    ids[i] = iqdbt_next(&r) % STABLE;
                    make_vec(v + i * DIM, ids[i], version + (unsigned)i);
                    ms[i] = make_meta(ids[i], version + (unsigned)i);
                }
                /* a duplicate id inside the batch: the later entry wins, still consistent */
                if (iqdb_upsert_batch(db, 8, ids, v, (const iqdb_meta *const *)ms) != IQDB_OK)
                    REPORT("batch upsert failed\n");
                for (int i = 0; i < 8; i++) iqdb_meta_destroy(ms[i]);
            }
        } else { /* delete and re-insert far-away records */
            uint64_t id = STABLE + iqdbt_next(&r) % (TOTAL - STABLE);
            int existed;
            iqdb_delete(db, id, &existed);
            if (!existed) REPORT("volatile id %llu was missing\n", (unsigned long long)id);
            float v[DIM];
            make_vec(v, id, version);
            iqdb_meta *m = make_meta(id, version);
            if (iqdb_upsert(db, id, v, m) != IQDB_OK) REPORT("reinsert failed\n");
            iqdb_meta_destroy(m);
        }
        version += 8;
        atomic_fetch_add(&n_write, 1);
    }
    return NULL;
}

static void run(uint32_t cache_entries) {
    pooled = cache_entries > 0;
    atomic_store(&stop, 0);
    iqdbt_rng r = {2024};
    for (uint64_t id = 0; id < TOTAL; id++)
        for (int j = 0; j < HALF; j++)
            x1[id][j] = id < STABLE ? (float)((int)(iqdbt_next(&r) % 17) - 8)
                                    : (float)(100 + (int)(iqdbt_next(&r) % 17));
    iqdb_options o;
    iqdb_options_init(&o, DIM, IQDB_METRIC_L2);
    o.threads = 2;
    o.cache_entries = cache_entries;
    assert_int_equal(iqdb_open(NULL, &o, &db), IQDB_OK);
    for (uint64_t id = 0; id < TOTAL; id++) {
        float v[DIM];
        make_vec(v, id, 0);
        iqdb_meta *m = make_meta(id, 0);
        assert_int_equal(iqdb_upsert(db, id, v, m), IQDB_OK);
        iqdb_meta_destroy(m);
    }
    assert_int_equal(iqdb_filter_parse(NULL, "par = 0", 7, &even, NULL), IQDB_OK);
    const char *env = getenv("IQDB_TEST_SECONDS");
    double seconds = env ? atof(env) : 2.0;
    pthread_t rt[READERS], wt[WRITERS];
    for (uintptr_t i = 0; i < READERS; i++)
        pthread_create(&rt[i], NULL, reader_main, (void *)(i + 1));
    for (uintptr_t i = 0; i < WRITERS; i++) pthread_create(&wt[i], NULL, writer_main, (void *)i);
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
    atomic_store(&stop, 1);
    for (int i = 0; i < READERS; i++) pthread_join(rt[i], NULL);
    for (int i = 0; i < WRITERS; i++) pthread_join(wt[i], NULL);
    printf("%.1f s: %ld searches, %ld batches, %ld gets, %ld writes, %ld errors\n", seconds,
           atomic_load(&n_search), atomic_load(&n_batch), atomic_load(&n_get),
           atomic_load(&n_write), atomic_load(&errors));
    assert_int_equal(atomic_load(&errors), 0);
    assert_true(atomic_load(&n_write) > 0 && atomic_load(&n_search) > 0 &&
                atomic_load(&n_batch) > 0);
    uint64_t c;
    iqdb_count(db, &c);
    assert_int_equal(c, TOTAL);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    if (cache_entries) {
        iqdb_stats s = {.struct_size = sizeof s};
        iqdb_stats_get(db, &s);
        printf("cache: %llu hits, %llu misses, %llu invalidations\n",
               (unsigned long long)s.cache_hits, (unsigned long long)s.cache_misses,
               (unsigned long long)s.cache_invalidations);
        assert_true(s.cache_hits > 0 && s.cache_invalidations > 0);
    }
    iqdb_filter_destroy(even);
    iqdb_close(db);
}

static void test_concurrency_readers_and_writers(void **state) {
    (void)state;
    run(0);
}

/* The same with a result cache and repeating queries: cached answers pass the same exact checks
 * while writers churn (and TSan watches lookups, inserts and invalidations interleave). */
static void test_concurrency_with_cache(void **state) {
    (void)state;
    run(64);
}

int main(void) {
    iqdbt_simd_gate();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrency_readers_and_writers),
        cmocka_unit_test(test_concurrency_with_cache),
    };
    return cmocka_run_group_tests_name("concurrency", tests, NULL, NULL);
}
