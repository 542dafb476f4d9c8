/*
 * test_group.c — group commit and the PERIODIC sync thread, on real files (run under TSan by
 * `scripts/run tsan`, label "concurrency").
 *   - 8 writer threads upsert under ALWAYS while 2 threads search: every call succeeds, every
 *     acknowledged write is there after reopen, and the WAL fsyncs number fewer than the writes
 *     (concurrent writers shared them).
 *   - PERIODIC: one write, then silence; within two periods the background thread has made it
 *     durable (stats.durable_lsn reaches stats.last_lsn) without any further call writing.
 *   - Everything at once, under ALWAYS and under PERIODIC with a 1 ms period: 4 writers
 *     (upserts, batches, deletes; two of them name their records by byte keys) whose writes
 *     trigger automatic checkpoints, 2 searching readers (resolving keyed hits), and a thread
 * calling iqdb_checkpoint, iqdb_stats_get and iqdb_check in a loop; afterwards every writer's final
 * state is there after reopen. This is the test that makes TSan watch group commit, the sync thread
 * and checkpoints interleave.
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
        for (size_t i = 0; i < n; i++) { /* gone since the search, or the 8-byte key */
            uint8_t k[8];
            size_t kl;
            int rc = iqdb_hit_has_key(&hits[i]) ? iqdb_hit_key(db, &hits[i], k, sizeof k, &kl)
                                                : IQDB_NOTFOUND;
            if (rc != IQDB_OK && rc != IQDB_NOTFOUND) abort();
            if (rc == IQDB_OK && kl != 8) abort();
        }
    }
    return NULL;
}

/* Odd writers of the stress test name record `id` by the byte key of its 8 little-endian bytes
 * (a different record from the u64 id). */
static size_t key8(uint64_t id, uint8_t *k) {
    for (int i = 0; i < 8; i++) k[i] = (uint8_t)(id >> (8 * i));
    return 8;
}
static int put_rec(uint64_t w, uint64_t id, const float *v) {
    uint8_t k[8];
    return w % 2 ? iqdb_upsert_key(db, k, key8(id, k), v, NULL) : iqdb_upsert(db, id, v, NULL);
}
static int del_rec(uint64_t w, uint64_t id, int *existed) {
    uint8_t k[8];
    return w % 2 ? iqdb_delete_key(db, k, key8(id, k), existed) : iqdb_delete(db, id, existed);
}
static int get_rec(uint64_t w, uint64_t id, float *v) {
    uint8_t k[8];
    return w % 2 ? iqdb_get_key(db, k, key8(id, k), v, NULL) : iqdb_get(db, id, v, NULL);
}

static void fresh_dir(void) {
    assert_int_equal(iqdbt_mkdtemp(dir, sizeof dir, "iqdb-group"), 0);
    snprintf(path, sizeof path, "%s/db", dir);
}
static void remove_dir(void) { assert_int_equal(iqdbt_rmtree(dir), 0); }

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

enum { STRESS_WRITERS = 4, STRESS_OPS = 120 };
static _Atomic int stop_side;

/* Writer w's ops: upserts of new ids, every 10th op a batch of 3, every 7th a delete of an
 * earlier id. present[] is its final state. */
typedef struct stress_writer {
    uint64_t w;
    int present[STRESS_OPS * 3];
} stress_writer;

static void *stress_write(void *arg) {
    stress_writer *sw = arg;
    uint64_t base = (sw->w + 1) * 100000;
    int next = 0;
    for (int i = 0; i < STRESS_OPS; i++) {
        float v[3 * H_DIM];
        if (i % 10 == 9) {
            uint64_t ids[3] = {base + (uint64_t)next, base + (uint64_t)next + 1,
                               base + (uint64_t)next + 2};
            for (int j = 0; j < 3; j++) h_vec(v + j * H_DIM, ids[j], 1);
            uint8_t kb[3][8];
            const void *keys[3] = {kb[0], kb[1], kb[2]};
            size_t kl[3] = {key8(ids[0], kb[0]), key8(ids[1], kb[1]), key8(ids[2], kb[2])};
            int rc = sw->w % 2 ? iqdb_upsert_batch_key(db, 3, keys, kl, v, NULL)
                               : iqdb_upsert_batch(db, 3, ids, v, NULL);
            if (rc != IQDB_OK) abort();
            for (int j = 0; j < 3; j++) sw->present[next++] = 1;
        } else if (i % 7 == 6) {
            int victim = next / 2;
            int existed = 0;
            if (del_rec(sw->w, base + (uint64_t)victim, &existed) != IQDB_OK) abort();
            if (existed != sw->present[victim]) abort();
            sw->present[victim] = 0;
        } else {
            h_vec(v, base + (uint64_t)next, 1);
            if (put_rec(sw->w, base + (uint64_t)next, v) != IQDB_OK) abort();
            sw->present[next++] = 1;
        }
    }
    return NULL;
}

static void *stress_side(void *arg) {
    (void)arg;
    while (!atomic_load(&stop_side)) {
        if (iqdb_checkpoint(db) != IQDB_OK) abort();
        iqdb_stats s = {.struct_size = sizeof s};
        if (iqdb_stats_get(db, &s) != IQDB_OK || s.durable_lsn > s.last_lsn) abort();
        if (iqdb_check(db) != IQDB_OK) abort();
    }
    return NULL;
}

static void stress(iqdb_sync sync) {
    fresh_dir();
    iqdb_options o;
    iqdb_options_init(&o, H_DIM, IQDB_METRIC_L2);
    o.sync = sync;
    o.sync_period_ms = 1;
    o.checkpoint_bytes = 16 << 10; /* writers trigger checkpoints too */
    assert_int_equal(iqdb_open(path, &o, &db), IQDB_OK);
    static stress_writer sw[STRESS_WRITERS];
    pthread_t w[STRESS_WRITERS], r[2], side;
    atomic_store(&stop_readers, 0);
    atomic_store(&stop_side, 0);
    for (int i = 0; i < 2; i++) pthread_create(&r[i], NULL, reader, NULL);
    pthread_create(&side, NULL, stress_side, NULL);
    for (int i = 0; i < STRESS_WRITERS; i++) {
        memset(&sw[i], 0, sizeof sw[i]);
        sw[i].w = (uint64_t)i;
        pthread_create(&w[i], NULL, stress_write, &sw[i]);
    }
    for (int i = 0; i < STRESS_WRITERS; i++) pthread_join(w[i], NULL);
    atomic_store(&stop_side, 1);
    atomic_store(&stop_readers, 1);
    pthread_join(side, NULL);
    for (int i = 0; i < 2; i++) pthread_join(r[i], NULL);
    iqdb_stats s = {.struct_size = sizeof s};
    assert_int_equal(iqdb_stats_get(db, &s), IQDB_OK);
    printf("%s: %llu WAL records, %llu WAL fsyncs, %llu checkpoints\n",
           sync == IQDB_SYNC_ALWAYS ? "ALWAYS" : "PERIODIC 1 ms", (unsigned long long)s.last_lsn,
           (unsigned long long)s.wal_syncs, (unsigned long long)s.checkpoints);
    if (sync == IQDB_SYNC_ALWAYS) assert_int_equal(s.durable_lsn, s.last_lsn);
    assert_true(s.checkpoints > 0);
    assert_int_equal(iqdb_close(db), IQDB_OK);
    assert_int_equal(iqdb_open(path, &o, &db), IQDB_OK);
    uint64_t want = 0, n;
    for (int i = 0; i < STRESS_WRITERS; i++)
        for (int j = 0; j < STRESS_OPS * 3; j++) {
            uint64_t id = (uint64_t)(i + 1) * 100000 + (uint64_t)j;
            float got[H_DIM], vec[H_DIM];
            int rc = get_rec((uint64_t)i, id, got);
            assert_int_equal(rc, sw[i].present[j] ? IQDB_OK : IQDB_NOTFOUND);
            if (rc == IQDB_OK) {
                h_vec(vec, id, 1);
                assert_memory_equal(got, vec, sizeof got);
                want++;
            }
        }
    assert_int_equal(iqdb_count(db, &n), IQDB_OK);
    assert_int_equal(n, want);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    assert_int_equal(iqdb_close(db), IQDB_OK);
    remove_dir();
}

static void test_group_stress_always(void **state) {
    (void)state;
    stress(IQDB_SYNC_ALWAYS);
}
static void test_group_stress_periodic(void **state) {
    (void)state;
    stress(IQDB_SYNC_PERIODIC);
}

int main(void) {
    iqdbt_simd_gate();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_group_commit), cmocka_unit_test(test_group_periodic_syncs_when_idle),
        cmocka_unit_test(test_group_stress_always), cmocka_unit_test(test_group_stress_periodic)};
    return cmocka_run_group_tests_name("group", tests, NULL, NULL);
}
