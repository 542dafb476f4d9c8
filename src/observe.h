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
} iqdb__long;

void iqdb__long_begin(iqdb *db, iqdb__long *lc, iqdb_progress_op op, uint64_t total);
/* IQDB_OK, or IQDB_INTERRUPTED (message recorded for db). done is clamped to total. */
int iqdb__long_check(iqdb__long *lc, uint64_t done);

#endif
