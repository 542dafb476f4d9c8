/*
 * test_crash.c — crash-point enumeration over the simulated file system (simfs.h).
 *
 * For each workload: run it once cleanly to count its mutating file calls T; then for every
 * N in 1..T run it again with the power failing at call N, and build the disks a reboot could
 * find — strict (every unsynced change lost), reordered (a random subset of them kept) and torn
 * (kept writes torn or garbage), with several damage seeds. Each disk is reopened and must
 * satisfy:
 *   - the open succeeds (a torn tail is never an error);
 *   - the state equals the workload's state after some prefix j of its operations, byte for
 *     byte (vectors and metadata), with nothing invented: no gap, no half batch;
 *   - ALWAYS: j >= every operation acknowledged before the crash; NEVER / PERIODIC: j >= every
 *     operation a completed checkpoint covered;
 *   - iqdb_check passes (every checksum on disk, every invariant) and exact search equals brute
 *     force over the expected state;
 *   - reopening once more gives the same state (recovery is idempotent).
 * Compound case: for every fifth crash point the strict disk is recovered with the power failing
 * again at each call recovery makes, and the result is checked the same way.
 *
 * Prints the number of crash states checked and the violations (which must be 0).
 */
#include "harness.h"

#define PATH "/sim/db"

static long states, violations;

typedef struct result {
    int acked;     /* operations that returned IQDB_OK, in order, before the first failure */
    int issued;    /* operations started (the failed one included) */
    int last_ckpt; /* operations covered by the last completed checkpoint (or close) */
} result;

static void run(simfs *fs, const h_workload *w, long crash_at, result *res) {
    memset(res, 0, sizeof *res);
    iqdb__io_set_default(simfs_io(fs));
    simfs_crash_at(fs, crash_at);
    iqdb_options o;
    h_options(w, &o, NULL);
    iqdb *db = NULL;
    if (iqdb_open(PATH, &o, &db) != IQDB_OK) return;
    int i;
    for (i = 0; i < w->n_ops; i++) {
        int rc = h_run_op(&db, w, &w->ops[i], PATH, NULL);
        res->issued = i + 1;
        if (rc != IQDB_OK) break;
        res->acked = i + 1;
        if (w->ops[i].kind == H_CHECKPOINT || w->ops[i].kind == H_REOPEN) res->last_ckpt = i + 1;
    }
    if (db) {
        int rc = iqdb_close(db);
        if (rc == IQDB_OK && i == w->n_ops) res->last_ckpt = w->n_ops;
    }
}

static void violation(const h_workload *w, long n, int model, uint64_t seed, const char *what) {
    violations++;
    if (violations <= 20)
        printf("VIOLATION workload=%s crash_at=%ld model=%d seed=%llu: %s (%s)\n", w->name, n,
               model, (unsigned long long)seed, what, iqdb_errmsg(NULL));
}

/* Reopens the disk `img` and checks it against the workload's prefixes [lo, res->issued]. */
static void verify(simfs *img, const h_workload *w, const result *res, long n, int model,
                   uint64_t seed) {
    states++;
    iqdb__io_set_default(simfs_io(img));
    iqdb_options o;
    h_options(w, &o, NULL);
    iqdb *db;
    int rc = iqdb_open(PATH, &o, &db);
    if (rc != IQDB_OK) {
        char msg[160];
        snprintf(msg, sizeof msg, "open failed with %d", rc);
        violation(w, n, model, seed, msg);
        return;
    }
    h_seen seen;
    h_state st = {{0}};
    int lo = w->sync == IQDB_SYNC_ALWAYS ? res->acked : res->last_ckpt, match = -1;
    if (h_read(db, &seen) == IQDB_OK)
        for (int j = 0; j <= res->issued && match < 0; j++) {
            if (j > 0) h_apply(&st, &w->ops[j - 1]);
            if (j >= lo && h_equal(&seen, &st)) match = j;
        }
    if (match < 0) {
        violation(w, n, model, seed, "the state is no allowed prefix of the workload");
    } else {
        if (iqdb_check(db) != IQDB_OK) violation(w, n, model, seed, "iqdb_check failed");
        if (!h_search_ok(db, &st, (uint64_t)n)) violation(w, n, model, seed, "search differs");
    }
    iqdb_close(db);
    if (match >= 0) { /* idempotent: the same state again */
        h_seen again;
        if (iqdb_open(PATH, &o, &db) != IQDB_OK || h_read(db, &again) != IQDB_OK ||
            !h_equal(&again, &st))
            violation(w, n, model, seed, "a second reopen gives another state");
        iqdb_close(db);
    }
}

/* Recovery itself crashes at each of its calls; the disk after that must still recover. */
static void compound(simfs *img, const h_workload *w, const result *res, long n) {
    simfs *probe = simfs_clone(img);
    iqdb__io_set_default(simfs_io(probe));
    iqdb_options o;
    h_options(w, &o, NULL);
    iqdb *db;
    int prc = iqdb_open(PATH, &o, &db);
    if (prc == IQDB_OK) iqdb_close(db);
    long calls = simfs_ops(probe);
    simfs_free(probe);
    for (long m = 1; m <= calls; m++) {
        simfs *fs = simfs_clone(img);
        iqdb__io_set_default(simfs_io(fs));
        simfs_crash_at(fs, m);
        if (iqdb_open(PATH, &o, &db) == IQDB_OK) iqdb_close(db);
        simfs *after = simfs_after_crash(fs, SIMFS_TORN, (uint64_t)m);
        verify(after, w, res, n * 1000 + m, SIMFS_TORN, (uint64_t)m);
        simfs_free(after);
        simfs_free(fs);
    }
}

static void enumerate(const h_workload *w) {
    long before = states, vbefore = violations;
    simfs *clean = simfs_new();
    result res;
    run(clean, w, 0, &res);
    long total = simfs_ops(clean);
    assert_int_equal(res.acked, w->n_ops);
    simfs_free(clean);
    for (long n = 1; n <= total; n++) {
        simfs *fs = simfs_new();
        run(fs, w, n, &res);
        const struct {
            int model;
            uint64_t seed;
        } disks[] = {{SIMFS_STRICT, 0}, {SIMFS_REORDER, 1}, {SIMFS_TORN, 2}, {SIMFS_TORN, 3}};
        for (size_t k = 0; k < sizeof disks / sizeof disks[0]; k++) {
            simfs *img = simfs_after_crash(fs, disks[k].model, (uint64_t)n * 31 + disks[k].seed);
            if (k == 0 && n % 5 == 0) { /* before verify, whose reopen recovers the disk */
                simfs *copy = simfs_clone(img);
                compound(copy, w, &res, n);
                simfs_free(copy);
            }
            verify(img, w, &res, n, disks[k].model, disks[k].seed);
            simfs_free(img);
        }
        simfs_free(fs);
    }
    printf("%-22s %4ld crash points, %5ld crash states, %ld violations\n", w->name, total,
           states - before, violations - vbefore);
}

static h_workload W;

static void test_crash_workloads(void **state) {
    (void)state;
    const struct {
        const char *name;
        iqdb_sync sync;
        iqdb_compression codec;
        uint64_t ckpt;
        int n_ops, reopen;
        uint64_t seed;
        iqdb_index_kind index;
    } defs[] = {
        {"always", IQDB_SYNC_ALWAYS, IQDB_COMPRESS_NONE, 0, 40, 1, 11, IQDB_INDEX_FLAT},
        {"always-zstd", IQDB_SYNC_ALWAYS, IQDB_COMPRESS_ZSTD, 0, 30, 1, 12, IQDB_INDEX_FLAT},
        {"always-lz4-autockpt", IQDB_SYNC_ALWAYS, IQDB_COMPRESS_LZ4, 1500, 30, 0, 13,
         IQDB_INDEX_FLAT},
        {"never", IQDB_SYNC_NEVER, IQDB_COMPRESS_NONE, UINT64_MAX, 40, 1, 14, IQDB_INDEX_FLAT},
        {"periodic", IQDB_SYNC_PERIODIC, IQDB_COMPRESS_NONE, UINT64_MAX, 25, 0, 15,
         IQDB_INDEX_FLAT},
        /* the graph in the snapshot, WAL records replayed into it */
        {"always-hnsw", IQDB_SYNC_ALWAYS, IQDB_COMPRESS_NONE, 0, 24, 1, 16, IQDB_INDEX_HNSW},
    };
    long ran = 0;
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
        if (!iqdb_compression_available(defs[i].codec)) {
            printf("%-22s skipped: codec not compiled in\n", defs[i].name);
            continue;
        }
        ran++;
        memset(&W, 0, sizeof W);
        W.name = defs[i].name;
        W.sync = defs[i].sync;
        W.codec = defs[i].codec;
        W.checkpoint_bytes = defs[i].ckpt;
        W.index = defs[i].index;
        h_generate(&W, defs[i].seed, defs[i].n_ops, defs[i].reopen);
        enumerate(&W);
    }
    iqdb__io_set_default(NULL);
    printf("crash states checked: %ld, violations: %ld\n", states, violations);
    assert_int_equal(violations, 0);
    assert_true(states >=
                400 * ran); /* 2000 with all five workloads (a build without codecs runs 3) */
}

int main(void) {
    iqdbt_simd_gate();
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_crash_workloads)};
    return cmocka_run_group_tests_name("crash", tests, NULL, NULL);
}
