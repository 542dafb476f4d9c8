/*
 * test_group.c — group commit and the PERIODIC sync thread, on real files (run under TSan by
 * `scripts/run tsan`, label "concurrency").
 *   - 8 writer threads upsert under ALWAYS while 2 threads search: every call succeeds, every
 *     acknowledged write is there after reopen, and the WAL fsyncs number fewer than the writes
 *     (concurrent writers shared them).
 *   - PERIODIC: one write, then silence; within two periods the background thread has made it
 *     durable (stats.durable_lsn reaches stats.last_lsn) without any further call writing.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

enum { WRITERS = 8, PER_WRITER = 60 };

static char dir[64], path[80];
static iqdb *db;
static _Atomic int stop_readers;

static void *writer(void *arg) {
    uint64_t w = (uint64_t)(uintptr_t)arg;
    for (int i = 0; i < PER_WRITER; i++) {
        float v[H_DIM];
        uint64_t id = w * 1000 + (uint64_t)i;
        h_vec(v, id, 1);
        if (iqdb_upsert(db, id, v, NULL) != IQDB_OK) abort();
    }
    return NULL;
}

static void *reader(void *arg) {
    (void)arg;
    float q[H_DIM] = {0};
    while (!atomic_load(&stop_readers)) {
        iqdb_hit hits[5];
        size_t n;
        if (iqdb_search(db, q, 5, NULL, hits, &n, NULL) != IQDB_OK) abort();
    }
    return NULL;
}

static void fresh_dir(void) {
    snprintf(dir, sizeof dir, "/tmp/iqdb-group-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/db", dir);
}
static void remove_dir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_group_commit(void **state) {
    (void)state;
    fresh_dir();
    iqdb_options o;
    iqdb_options_init(&o, H_DIM, IQDB_METRIC_L2);
    assert_int_equal(iqdb_open(path, &o, &db), IQDB_OK);
    pthread_t w[WRITERS], r[2];
    for (int i = 0; i < 2; i++) pthread_create(&r[i], NULL, reader, NULL);
    for (uintptr_t i = 0; i < WRITERS; i++) pthread_create(&w[i], NULL, writer, (void *)i);
    for (int i = 0; i < WRITERS; i++) pthread_join(w[i], NULL);
    atomic_store(&stop_readers, 1);
    for (int i = 0; i < 2; i++) pthread_join(r[i], NULL);
    iqdb_stats s = {.struct_size = sizeof s};
    assert_int_equal(iqdb_stats_get(db, &s), IQDB_OK);
    printf("%d writes, %llu WAL fsyncs (group commit)\n", WRITERS * PER_WRITER,
           (unsigned long long)s.wal_syncs);
    assert_int_equal(s.durable_lsn, s.last_lsn);
    assert_true(s.wal_syncs < (uint64_t)(WRITERS * PER_WRITER));
    assert_int_equal(iqdb_close(db), IQDB_OK);
    assert_int_equal(iqdb_open(path, &o, &db), IQDB_OK);
    for (uint64_t wi = 0; wi < WRITERS; wi++)
        for (int i = 0; i < PER_WRITER; i++) {
            float got[H_DIM], want[H_DIM];
            h_vec(want, wi * 1000 + (uint64_t)i, 1);
            assert_int_equal(iqdb_get(db, wi * 1000 + (uint64_t)i, got, NULL), IQDB_OK);
            assert_memory_equal(got, want, sizeof got);
        }
    assert_int_equal(iqdb_check(db), IQDB_OK);
    assert_int_equal(iqdb_close(db), IQDB_OK);
    remove_dir();
}

static void test_group_periodic_syncs_when_idle(void **state) {
    (void)state;
    fresh_dir();
    iqdb_options o;
    iqdb_options_init(&o, H_DIM, IQDB_METRIC_L2);
    o.sync = IQDB_SYNC_PERIODIC;
    o.sync_period_ms = 50;
    assert_int_equal(iqdb_open(path, &o, &db), IQDB_OK);
    float v[H_DIM];
    h_vec(v, 1, 1);
    assert_int_equal(iqdb_upsert(db, 1, v, NULL), IQDB_OK);
    iqdb_stats s = {.struct_size = sizeof s};
    int synced = 0;
    for (int i = 0; i < 200 && !synced; i++) { /* up to 2 s: generous under TSan */
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        assert_int_equal(iqdb_stats_get(db, &s), IQDB_OK);
        synced = s.durable_lsn == s.last_lsn && s.wal_syncs > 0;
    }
    assert_true(synced);
    assert_int_equal(iqdb_close(db), IQDB_OK);
    remove_dir();
}

int main(void) {
    iqdbt_simd_gate();
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_group_commit),
                                       cmocka_unit_test(test_group_periodic_syncs_when_idle)};
    return cmocka_run_group_tests_name("group", tests, NULL, NULL);
}
