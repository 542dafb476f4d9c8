/*
 * cache_async.c — the result cache, the async executor, progress and logging in one program.
 *
 *   1. a handle with a 256-entry LRU result cache: a repeated query is served from the cache,
 *      a write far from it leaves it cached, a write near it evicts it;
 *   2. an executor: searches submitted from this thread complete on worker threads, one through
 *      a callback, one through a future we wait on; a queued call is cancelled;
 *   3. a batch upsert cancelled by its progress callback leaves the database unchanged.
 *
 * Exits non-zero if anything behaves otherwise, so the test suite runs it.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "iqdb.h"

#define DIM 32
#define N 2000

#define CHECK(x)                                                                              \
    do {                                                                                      \
        int rc_ = (x);                                                                        \
        if (rc_ != IQDB_OK) {                                                                 \
            fprintf(stderr, "%s failed: %s (%s)\n", #x, iqdb_errstr(rc_), iqdb_errmsg(NULL)); \
            exit(1);                                                                          \
        }                                                                                     \
    } while (0)
#define EXPECT(c)                                            \
    do {                                                     \
        if (!(c)) {                                          \
            fprintf(stderr, "expectation failed: %s\n", #c); \
            exit(1);                                         \
        }                                                    \
    } while (0)

static void vec_of(float *v, unsigned i) {
    unsigned s = i * 2654435761u + 1;
    for (int j = 0; j < DIM; j++) {
        s = s * 1103515245u + 12345u;
        v[j] = (float)((s >> 16) % 1000) / 1000.0f;
    }
}

static void on_log(void *ud, iqdb_log_level level, const char *msg) {
    (void)ud;
    printf("  [log %d] %s\n", (int)level, msg);
}

static int stop_early(void *ud, iqdb_progress_op op, uint64_t done, uint64_t total) {
    (void)ud;
    printf("  progress: op %d, %llu of %llu -> cancel\n", (int)op, (unsigned long long)done,
           (unsigned long long)total);
    return 1; /* non-zero: cancel the call */
}

static void on_done(void *ud, iqdb_future *f, int rc) {
    (void)f;
    atomic_store((atomic_int *)ud, rc == IQDB_OK ? 1 : -1); /* runs on a worker thread */
}

int main(void) {
    iqdb_options o;
    iqdb_options_init(&o, DIM, IQDB_METRIC_L2);
    o.cache_entries = 256;           /* the result cache is off unless this is set */
    o.cache_policy = IQDB_CACHE_LRU; /* LRU, LFU, FIFO or ARC */
    o.cache_bytes = 4u << 20;        /* and at most 4 MiB of results */
    o.log_fn = on_log;               /* silent without it */
    o.log_level = IQDB_LOG_INFO;
    iqdb *db;
    CHECK(iqdb_open(NULL, &o, &db));
    float *vecs = malloc(sizeof(float) * DIM * N);
    iqdb_id *ids = malloc(sizeof(iqdb_id) * N);
    for (unsigned i = 0; i < N; i++) {
        vec_of(vecs + i * DIM, i);
        ids[i] = i;
    }
    CHECK(iqdb_upsert_batch(db, N, ids, vecs, NULL));

    /* 1. the cache */
    printf("1. result cache\n");
    const float *q = vecs + 7 * DIM;
    iqdb_hit hits[5];
    size_t n;
    iqdb_search_info info = {.struct_size = sizeof info};
    CHECK(iqdb_search(db, q, 5, NULL, hits, &n, &info));
    printf("  first search:  cache_hit %u, %llu distances\n", info.cache_hit,
           (unsigned long long)info.n_distances);
    CHECK(iqdb_search(db, q, 5, NULL, hits, &n, &info));
    printf("  same query:    cache_hit %u, %llu distances\n", info.cache_hit,
           (unsigned long long)info.n_distances);
    EXPECT(info.cache_hit == 1 && hits[0].id == 7);
    float far[DIM];
    for (int j = 0; j < DIM; j++) far[j] = 100.0f;
    CHECK(iqdb_upsert(db, 100000, far, NULL)); /* cannot enter this top 5: entry kept */
    CHECK(iqdb_search(db, q, 5, NULL, hits, &n, &info));
    printf("  after a far write:  cache_hit %u\n", info.cache_hit);
    EXPECT(info.cache_hit == 1);
    CHECK(iqdb_upsert(db, 100001, q, NULL)); /* a copy of the query: it ties with id 7 */
    CHECK(iqdb_search(db, q, 5, NULL, hits, &n, &info));
    printf("  after a near write: cache_hit %u, hits %llu %llu\n", info.cache_hit,
           (unsigned long long)hits[0].id, (unsigned long long)hits[1].id);
    EXPECT(info.cache_hit == 0 && hits[0].id == 7 && hits[1].id == 100001);
    iqdb_stats s = {.struct_size = sizeof s};
    CHECK(iqdb_stats_get(db, &s));
    printf("  stats: %llu hits, %llu misses, %llu invalidations, %llu entries, %llu bytes\n",
           (unsigned long long)s.cache_hits, (unsigned long long)s.cache_misses,
           (unsigned long long)s.cache_invalidations, (unsigned long long)s.cache_len,
           (unsigned long long)s.cache_bytes);

    /* 2. async */
    printf("2. async calls\n");
    iqdb_async *ex;
    CHECK(iqdb_async_create(NULL, 2, &ex));
    atomic_int flag = 0;
    iqdb_hit h1[3], h2[3];
    size_t n1, n2;
    iqdb_future *f1, *f2;
    /* inputs are copied at submission; outputs (h1, n1) must live until completion */
    CHECK(iqdb_async_search(ex, db, vecs + 11 * DIM, 3, NULL, h1, &n1, NULL, on_done, &flag, &f1));
    CHECK(iqdb_async_search(ex, db, vecs + 12 * DIM, 3, NULL, h2, &n2, NULL, NULL, NULL, &f2));
    int rc;
    CHECK(iqdb_future_wait(f1, UINT32_MAX, &rc)); /* done implies the callback has run */
    CHECK(rc);
    CHECK(iqdb_future_wait(f2, 5000, &rc)); /* with a timeout: IQDB_BUSY if not done */
    CHECK(rc);
    printf("  async results: %llu (callback said %d), %llu\n", (unsigned long long)h1[0].id,
           atomic_load(&flag), (unsigned long long)h2[0].id);
    EXPECT(h1[0].id == 11 && h2[0].id == 12 && atomic_load(&flag) == 1);
    iqdb_future_release(f1);
    iqdb_future_release(f2);
    /* a call that has not started can be cancelled (it may also have started already) */
    int existed = 0;
    CHECK(iqdb_async_delete(ex, db, 3, &existed, NULL, NULL, &f1));
    rc = iqdb_future_cancel(f1);
    printf("  cancel: %s\n", rc == IQDB_OK ? "cancelled before it ran" : "it was already running");
    CHECK(iqdb_future_wait(f1, UINT32_MAX, &rc));
    EXPECT(rc == IQDB_OK || rc == IQDB_INTERRUPTED);
    iqdb_future_release(f1);
    iqdb_async_destroy(ex);

    /* 3. a progress callback that cancels: the batch is not applied */
    printf("3. progress and cancel\n");
    iqdb_close(db);
    o.progress_fn = stop_early;
    CHECK(iqdb_open(NULL, &o, &db));
    rc = iqdb_upsert_batch(db, N, ids, vecs, NULL);
    uint64_t count;
    CHECK(iqdb_count(db, &count));
    printf("  upsert_batch: %s, %llu records\n", iqdb_errstr(rc), (unsigned long long)count);
    EXPECT(rc == IQDB_INTERRUPTED && count == 0);
    iqdb_close(db);
    free(vecs);
    free(ids);
    return 0;
}
