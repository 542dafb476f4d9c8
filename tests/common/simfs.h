/*
 * simfs.h — a simulated file system behind iqdb's I/O seam, for the crash, fault, hostile-file
 * and fuzz tests. One directory, in memory, deterministic.
 *
 * It keeps what a real disk would have after a power cut: per file, the durable content (as of
 * the last successful sync) and the list of writes and truncations since; per directory, the
 * durable names (as of the last sync_dir) and the creates, renames and removes since. Modelled
 * on SQLite's test6.c crash VFS and LevelDB's fault-injection environment.
 *
 *  - Crash: simfs_crash_at(fs, N) makes the Nth mutating call (create, write, sync, truncate,
 *    rename, remove, sync_dir) and every one after it fail, as if the power went out just
 *    before it. simfs_after_crash() then builds the disk a reboot would find, under a model:
 *      SIMFS_STRICT   every unsynced change is lost (files at their durable content, names as
 *                     of the last directory sync);
 *      SIMFS_REORDER  a random subset of the unsynced writes and truncations reached the disk,
 *                     in any order, and a random prefix of the directory changes;
 *      SIMFS_TORN     as REORDER, and each write that reached the disk may be torn (a prefix of
 *                     it, the rest of its range zeros or garbage) or entirely garbage.
 *    simfs_clone() is the process-crash model: everything written is kept.
 *  - Faults: simfs_fail() makes the nth call of the chosen kinds fail, once or from then on. A
 *    failed write may have written the first half of its bytes (as a real ENOSPC can).
 */
#ifndef IQDBT_SIMFS_H
#define IQDBT_SIMFS_H

#include <stddef.h>
#include <stdint.h>

#include "os/io.h"

typedef struct simfs simfs;

enum { SIMFS_STRICT = 0, SIMFS_REORDER = 1, SIMFS_TORN = 2 };
enum {
    SIMFS_OP_CREATE = 1,
    SIMFS_OP_WRITE = 2,
    SIMFS_OP_SYNC = 4,
    SIMFS_OP_TRUNC = 8,
    SIMFS_OP_RENAME = 16,
    SIMFS_OP_REMOVE = 32,
    SIMFS_OP_SYNCDIR = 64,
    SIMFS_OP_READ = 128 /* faults only; reads never count as crash points */
};

simfs *simfs_new(void);
void simfs_free(simfs *fs);
/* The seam to install with iqdb__io_set_default. */
const iqdb__io *simfs_io(simfs *fs);

void simfs_crash_at(simfs *fs, long n); /* 0: never */
long simfs_ops(const simfs *fs);        /* mutating calls so far (crash points) */
int simfs_crashed(const simfs *fs);
/* The disk after a power cut now, under `model`, with damage chosen by `seed`. */
simfs *simfs_after_crash(const simfs *fs, int model, uint64_t seed);
simfs *simfs_clone(const simfs *fs); /* everything written survives (a process crash) */

/* Fail the nth call (1-based, counted from now) whose kind is in `kinds`; with `persistent`
 * also every later one. `rc` is returned (an IQDB_IOERR_* code). Also counts fsyncs issued on a
 * file after one of its fsyncs failed (a retried fsync: must stay 0). */
void simfs_fail(simfs *fs, int kinds, long nth, int persistent, int rc);
void simfs_fail_off(simfs *fs);
int simfs_failed(const simfs *fs);        /* an injected failure happened */
long simfs_sync_retries(const simfs *fs); /* fsyncs after a failed fsync on the same file */
long simfs_open_files(const simfs *fs);   /* handles open now (leak check) */

/* Direct access to a file's current content (hostile-file tests build and mutate images). */
int simfs_get(const simfs *fs, const char *name, uint8_t **data, size_t *len); /* malloc'd */
void simfs_put(simfs *fs, const char *name, const uint8_t *data, size_t len);  /* durable */
void simfs_unlink(simfs *fs, const char *name);

#endif
