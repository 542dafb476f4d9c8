/*
 * test_fault.c — I/O-error injection: for each kind of file call (create, read, write, fsync,
 * truncate, rename, directory fsync), each error (the call's EIO code, and ENOSPC where a disk
 * can be full), once (transient) and from then on (persistent), fail the Nth such call for
 * N = 1, 2, ... until a whole workload (open, upserts, deletes, batches, checkpoints, automatic
 * checkpoints, close) runs without meeting the failure. Each run checks design.md's behaviour:
 *   - a failed call returns IQDB_IOERR_* (or IQDB_FATAL after a failed fsync) — nothing else;
 *   - a failed write (not an fsync) changes nothing and the handle stays usable;
 *   - a failed fsync (WAL, snapshot directory) makes the handle fatal: later writes get
 *     IQDB_FATAL, reads still work, and no fsync is ever retried on that file;
 *   - closing frees every byte and every file handle (counting allocator, open-file count);
 *   - reopening the files — as the process left them, and as a power cut would — gives the
 *     acknowledged state (plus, possibly, the one write whose fsync failed), and iqdb_check
 *     passes.
 */
#include "harness.h"

#define PATH "/sim/db"

static iqdbt_alloc A;
static iqdb_allocator AL;
static long runs, injected;

typedef struct outcome {
    h_state sure;  /* the ops that returned OK */
    h_state maybe; /* plus the one whose fsync failed, if any */
    int has_maybe;
} outcome;

static void check_same(iqdb *db, const outcome *oc, const char *what, long n) {
    h_seen s;
    assert_int_equal(h_read(db, &s), IQDB_OK);
    if (!h_equal(&s, &oc->sure) && !(oc->has_maybe && h_equal(&s, &oc->maybe))) {
        print_error("%s N=%ld: the state is not the acknowledged one\n", what, n);
        fail();
    }
}

static int allowed(int rc) {
    return rc == IQDB_OK || IQDB_PRIMARY(rc) == IQDB_IOERR || rc == IQDB_FATAL;
}

/* One run of the workload with the failure armed; returns 1 if the failure was met. */
static int one_run(const h_workload *w, int kinds, long n, int persistent, int code,
                   const char *what) {
    simfs *fs = simfs_new();
    iqdb__io_set_default(simfs_io(fs));
    simfs_fail(fs, kinds, n, persistent, code);
    iqdbt_alloc_reset(&A);
    iqdb_options o;
    h_options(w, &o, &AL);
    iqdb *db = NULL;
    outcome oc;
    memset(&oc, 0, sizeof oc);
    int rc = iqdb_open(PATH, &o, &db), fatal = 0;
    if (!allowed(rc)) {
        print_error("%s N=%ld: open returned %d (%s)\n", what, n, rc, iqdb_errmsg(NULL));
        fail();
    }
    for (int i = 0; db && i < w->n_ops; i++) {
        const h_op *op = &w->ops[i];
        rc = h_run_op(&db, w, op, PATH, &AL);
        if (!allowed(rc)) {
            print_error("%s N=%ld op %d: returned %d (%s)\n", what, n, i, rc, iqdb_errmsg(db));
            fail();
        }
        if (fatal && op->kind != H_CHECKPOINT && rc != IQDB_FATAL) {
            print_error("%s N=%ld op %d: a fatal handle accepted a write (%d)\n", what, n, i, rc);
            fail();
        }
        if (rc == IQDB_OK) {
            h_apply(&oc.sure, op);
            oc.maybe = oc.sure;
        } else if (rc == IQDB_IOERR_FSYNC && op->kind != H_CHECKPOINT) {
            oc.maybe = oc.sure; /* applied in memory, not acknowledged */
            h_apply(&oc.maybe, op);
            oc.has_maybe = 1;
        }
        iqdb_stats st = {.struct_size = sizeof st};
        assert_int_equal(iqdb_stats_get(db, &st), IQDB_OK);
        if (rc == IQDB_IOERR_FSYNC && op->kind != H_CHECKPOINT && !st.fatal) {
            print_error("%s N=%ld op %d: a failed WAL fsync did not make the handle fatal\n", what,
                        n, i);
            fail();
        }
        fatal = st.fatal;
        check_same(db, &oc, what, n); /* reads work, and show exactly what was acknowledged */
    }
    int met = simfs_failed(fs);
    simfs_fail_off(fs);
    if (db) iqdb_close(db);
    if (atomic_load(&A.live) != 0 || simfs_open_files(fs) != 0 || atomic_load(&A.bad_free)) {
        print_error("%s N=%ld: leaked %lld bytes, %ld files\n", what, n,
                    (long long)atomic_load(&A.live), simfs_open_files(fs));
        fail();
    }
    if (simfs_sync_retries(fs)) {
        print_error("%s N=%ld: an fsync was retried after it failed\n", what, n);
        fail();
    }
    /* what a reopen finds: the files as the process left them, and after a power cut */
    simfs *disks[2] = {simfs_clone(fs), simfs_after_crash(fs, SIMFS_STRICT, 0)};
    for (int d = 0; d < 2; d++) {
        iqdb__io_set_default(simfs_io(disks[d]));
        h_options(w, &o, NULL);
        rc = iqdb_open(PATH, &o, &db);
        if (rc == IQDB_OK) {
            check_same(db, &oc, what, n);
            assert_int_equal(iqdb_check(db), IQDB_OK);
            iqdb_close(db);
        } else if (rc != IQDB_NOTFOUND && !(rc == IQDB_CORRUPT_SNAPSHOT && 0)) {
            /* an open that failed before creating anything leaves no database (NOTFOUND is
             * impossible for a writer: it creates). Anything else is a bug. */
            print_error("%s N=%ld: reopen (%s) failed with %d (%s)\n", what, n,
                        d ? "after power cut" : "as left", rc, iqdb_errmsg(NULL));
            fail();
        }
        simfs_free(disks[d]);
    }
    simfs_free(fs);
    runs++;
    injected += met;
    return met;
}

static void loop(const h_workload *w, int kinds, int code, const char *name) {
    for (int persistent = 0; persistent <= 1; persistent++) {
        long n;
        char what[64];
        snprintf(what, sizeof what, "%s %s", name, persistent ? "persistent" : "transient");
        for (n = 1; n < 10000; n++)
            if (!one_run(w, kinds, n, persistent, code, what)) break;
        printf("%-32s completed after %ld injected failures\n", what, n - 1);
        assert_true(n < 10000);
    }
}

static h_workload W;

static void test_fault_every_call(void **state) {
    (void)state;
    memset(&W, 0, sizeof W);
    W.name = "fault";
    W.sync = IQDB_SYNC_ALWAYS;
    W.codec = IQDB_COMPRESS_NONE;
    W.checkpoint_bytes = 2500; /* automatic checkpoints too */
    h_generate(&W, 21, 30, 0);
    loop(&W, SIMFS_OP_WRITE, IQDB_IOERR_WRITE, "write EIO");
    loop(&W, SIMFS_OP_WRITE, IQDB_IOERR_NOSPACE, "write ENOSPC");
    loop(&W, SIMFS_OP_SYNC, IQDB_IOERR_FSYNC, "fsync EIO");
    loop(&W, SIMFS_OP_TRUNC, IQDB_IOERR_TRUNCATE, "truncate EIO");
    loop(&W, SIMFS_OP_TRUNC, IQDB_IOERR_NOSPACE, "truncate ENOSPC");
    loop(&W, SIMFS_OP_RENAME, IQDB_IOERR_RENAME, "rename EIO");
    loop(&W, SIMFS_OP_SYNCDIR, IQDB_IOERR_DIRSYNC, "dir fsync EIO");
    loop(&W, SIMFS_OP_CREATE, IQDB_IOERR_OPEN, "create EIO");
    loop(&W, SIMFS_OP_CREATE, IQDB_IOERR_NOSPACE, "create ENOSPC");
    loop(&W, SIMFS_OP_READ, IQDB_IOERR_READ, "read EIO");
    loop(&W, SIMFS_OP_WRITE | SIMFS_OP_SYNC | SIMFS_OP_TRUNC | SIMFS_OP_RENAME, IQDB_IOERR_NOSPACE,
         "any call ENOSPC");
    iqdb__io_set_default(NULL);
    printf("fault runs: %ld, with an injected failure: %ld\n", runs, injected);
}

static int setup(void **state) {
    (void)state;
    iqdbt_alloc_reset(&A);
    AL = iqdbt_allocator(&A, 1);
    return 0;
}

int main(void) {
    iqdbt_simd_gate();
    const struct CMUnitTest tests[] = {cmocka_unit_test_setup(test_fault_every_call, setup)};
    return cmocka_run_group_tests_name("fault", tests, NULL, NULL);
}
