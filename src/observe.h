/*
 * observe.h — logging, progress reports and interrupts (the "Observability" part of iqdb.h).
 *
 * A long call (checkpoint, batch import, batch search, index build) brackets its work with
 * iqdb__long_begin and calls iqdb__long_check every so often: the check reports progress to the
 * user's callback and returns IQDB_INTERRUPTED when the callback asked to stop or when
 * iqdb_interrupt was called after the call began (the handle counts interrupts; a call compares
 * the count with the one it saw at its start). The caller then undoes its work, so an
 * interrupted call leaves the database unchanged.
 */
#ifndef IQDB_OBSERVE_H
#define IQDB_OBSERVE_H

#include "internal.h"

/* Passes a formatted line to the handle's log callback when `level` is enabled. */
void iqdb__log(const iqdb *db, iqdb_log_level level, const char *fmt, ...) IQDB_PRINTF(3, 4);
/* 1 when a message at `level` would be passed on (to skip building costly messages). */
int iqdb__log_on(const iqdb *db, iqdb_log_level level);

typedef struct iqdb__long {
    iqdb *db;
    uint64_t gen; /* the handle's interrupt count at the start */
    iqdb_progress_op op;
    uint64_t total;
    _Atomic int stop;              /* a poll decided that the call stops */
    _Atomic int busy;              /* a poller is in the progress callback (one at a time) */
    _Atomic int by;                /* what stopped it (observe.c: interrupt, callback, cancel) */
    const _Atomic int *cancel;     /* the async future's cancel flag, if run by an executor */
    _Atomic uint64_t at, at_total; /* the progress reached when it stopped */
} iqdb__long;

void iqdb__long_begin(iqdb *db, iqdb__long *lc, iqdb_progress_op op, uint64_t total);
/* IQDB_OK, or IQDB_INTERRUPTED (message recorded for db). done is clamped to total. */
int iqdb__long_check(iqdb__long *lc, uint64_t done);

/*
 * For index builds, which may run on the worker threads: 1 when the call must stop (then and
 * from then on), else 0. `total` replaces the call's total (an index counts in its own units:
 * HNSW nodes linked, IVF training steps). The progress callback sees one poller at a time (a
 * poll that finds another in it skips the report), so `done` never goes backwards. Records no
 * message: the calling thread does that with iqdb__long_fail once the workers have stopped.
 */
int iqdb__long_poll(iqdb__long *lc, uint64_t done, uint64_t total);
/* 1 when a poll stopped the call because of the progress callback (not an interrupt). */
int iqdb__long_by_callback(const iqdb__long *lc);
/* The async executor's worker sets this around a call (NULL after): long calls begun on this
 * thread also stop when *flag becomes non-zero (iqdb_future_cancel of a running call). */
void iqdb__set_cancel_flag(const _Atomic int *flag);
/* After a poll said stop: logs, records the message for the calling thread, returns
 * IQDB_INTERRUPTED. */
int iqdb__long_fail(iqdb__long *lc);

#endif
