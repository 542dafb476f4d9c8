/*
 * fuzz_wal.c — libFuzzer target for WAL recovery: the input is a WAL file, replayed onto a
 * fixed base snapshot (fz_build_base: generation 2, LSN 3, dim 4, two metadata keys), so the
 * seeds (tests/fuzz/corpus/wal, written by gen_corpus against the same base) start valid and
 * mutations explore the record headers, the payloads, the torn-tail rule and the search for a
 * record that proves an earlier one synced.
 *
 * Checks:
 *  - a failed open returns a clean code, and a read-only open of the same files fails too;
 *  - an open that succeeds passes iqdb_check and gives state A, and:
 *      a read-only open of the original files gives A (it replays without cutting anything);
 *      the files as the open left them (torn tail cut on disk), opened again as after a process
 *      crash, give A (recovery is idempotent);
 *      closing (which checkpoints A into a new snapshot and resets the WAL) and reopening
 *      gives A.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t *base_snap, *base_wal;
static size_t base_snap_len, base_wal_len;

static simfs *files(const uint8_t *wal, size_t wal_len) {
    simfs *fs = simfs_new();
    simfs_put(fs, FZ_PATH, base_snap, base_snap_len);
    simfs_put(fs, FZ_WAL, wal, wal_len);
    return fs;
}

static int open_on(simfs *fs, const iqdb_options *o, iqdb **db) {
    iqdb__io_set_default(simfs_io(fs));
    return iqdb_open(FZ_PATH, o, db);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!base_snap) fz_build_base(&base_snap, &base_snap_len, &base_wal, &base_wal_len);
    simfs *rw = files(data, size), *ro = files(data, size);
    iqdb_options o, ro_opts;
    fz_options(&o, FZ_BASE_DIM, IQDB_METRIC_L2);
    ro_opts = o;
    ro_opts.read_only = 1;
    iqdb *db = NULL, *rdb = NULL;
    int rc = open_on(rw, &o, &db);
    int rrc = open_on(ro, &ro_opts, &rdb);
    if (rc != IQDB_OK) {
        fz_clean_failure(rc);
        FZ_CHECK(rrc != IQDB_OK);
    } else {
        fz_state a, b;
        fz_read(db, &a);
        FZ_CHECK(iqdb_check(db) == IQDB_OK);
        FZ_CHECK(rrc == IQDB_OK);
        fz_read(rdb, &b);
        FZ_CHECK(fz_equal(&a, &b));
        fz_free(&b);
        /* the files as this open left them, after a process crash */
        simfs *again = simfs_clone(rw);
        iqdb *db2 = NULL;
        FZ_CHECK(open_on(again, &o, &db2) == IQDB_OK);
        fz_read(db2, &b);
        FZ_CHECK(fz_equal(&a, &b));
        fz_free(&b);
        FZ_CHECK(iqdb_close(db2) == IQDB_OK);
        simfs_free(again);
        /* checkpointed by close, reopened */
        iqdb__io_set_default(simfs_io(rw));
        fz_close_reopen_equal(db, &o, &a);
        fz_free(&a);
    }
    if (rdb) iqdb_close(rdb);
    iqdb__io_set_default(NULL);
    simfs_free(rw);
    simfs_free(ro);
    return 0;
}
