/*
 * fuzz_snapshot.c — libFuzzer target for the snapshot decoder: the input is a snapshot file
 * (docs/FORMAT.md), opened through the simulated file system with no WAL beside it.
 *
 * The options take dim and metric from the input's header (bytes 16..23), so a mutation is not
 * stopped by IQDB_MISMATCH before the sections are read. Checks:
 *  - a failed open returns a clean code (fuzz_common.h);
 *  - an open that succeeds gives a database that passes iqdb_check, whose exact search returns
 *    every record exactly once, and whose records can all be read;
 *  - round trip: a checkpoint writes the loaded state into a new snapshot, and reopening that
 *    gives the same records, byte for byte (so the decoder accepts only what the encoder could
 *    have written, and nothing it accepts is lost or changed on the way back).
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    simfs *fs = simfs_new();
    simfs_put(fs, FZ_PATH, data, size);
    iqdb__io_set_default(simfs_io(fs));
    uint32_t dim = size >= 24 ? iqdb__get32(data + 16) : 1;
    uint32_t metric = size >= 24 ? iqdb__get32(data + 20) : 1;
    if (dim == 0 || dim > IQDB_MAX_DIM) dim = 1;
    if (metric < IQDB_METRIC_L2 || metric > IQDB_METRIC_HAMMING) metric = IQDB_METRIC_L2;
    iqdb_options o;
    fz_options(&o, dim, (iqdb_metric)metric);
    iqdb *db = NULL;
    int rc = iqdb_open(FZ_PATH, &o, &db);
    if (rc != IQDB_OK) {
        fz_clean_failure(rc);
    } else {
        fz_state a;
        fz_read(db, &a);
        FZ_CHECK(iqdb_check(db) == IQDB_OK);
        fz_touch(db, &a);
        FZ_CHECK(iqdb_checkpoint(db) == IQDB_OK);
        fz_close_reopen_equal(db, &o, &a);
        fz_free(&a);
    }
    iqdb__io_set_default(NULL);
    simfs_free(fs);
    return 0;
}
