/*
 * observe.c — logging, progress and interrupts (see observe.h).
 */
#include "observe.h"

#include "handle.h"

int iqdb__log_on(const iqdb *db, iqdb_log_level level) {
    if (!db || !db->opts.log_fn) return 0;
    iqdb_log_level max = db->opts.log_level ? db->opts.log_level : IQDB_LOG_INFO;
    return level <= max;
}

void iqdb__log(const iqdb *db, iqdb_log_level level, const char *fmt, ...) {
    if (!iqdb__log_on(db, level)) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    db->opts.log_fn(db->opts.log_ud, level, line);
}

enum { STOP_INTERRUPT = 0, STOP_CALLBACK = 1, STOP_CANCEL = 2 };

static IQDB_THREAD_LOCAL const _Atomic int *tl_cancel;

void iqdb__set_cancel_flag(const _Atomic int *flag) { tl_cancel = flag; }

void iqdb__long_begin(iqdb *db, iqdb__long *lc, iqdb_progress_op op, uint64_t total) {
    lc->db = db;
    lc->cancel = tl_cancel;
    lc->gen = atomic_load_explicit(&db->interrupts, memory_order_acquire);
    lc->op = op;
    lc->total = total;
    atomic_init(&lc->stop, 0);
    atomic_init(&lc->busy, 0);
    atomic_init(&lc->by, STOP_INTERRUPT);
    atomic_init(&lc->at, 0);
    atomic_init(&lc->at_total, total);
}

static const char *op_name(iqdb_progress_op op) {
    switch (op) {
    case IQDB_PROGRESS_CHECKPOINT: return "checkpoint";
    case IQDB_PROGRESS_IMPORT: return "batch upsert";
    case IQDB_PROGRESS_SEARCH_BATCH: return "batch search";
    case IQDB_PROGRESS_BUILD: return "index build";
    case IQDB_PROGRESS_OPTIMIZE: return "optimize";
    }
    return "call";
}

int iqdb__long_poll(iqdb__long *lc, uint64_t done, uint64_t total) {
    iqdb *db = lc->db;
    if (atomic_load_explicit(&lc->stop, memory_order_acquire)) return 1;
    done = IQDB_MIN(done, total);
    int stop = atomic_load_explicit(&db->interrupts, memory_order_acquire) != lc->gen;
    int by = STOP_INTERRUPT;
    if (!stop && lc->cancel && atomic_load_explicit(lc->cancel, memory_order_acquire)) {
        stop = 1;
        by = STOP_CANCEL;
    }
    if (!stop && db->opts.progress_fn && !atomic_exchange(&lc->busy, 1)) {
        stop = db->opts.progress_fn(db->opts.progress_ud, lc->op, done, total) != 0;
        by = STOP_CALLBACK;
        atomic_store(&lc->busy, 0);
    }
    if (!stop) return 0;
    if (!atomic_exchange(&lc->stop, 1)) { /* the first poll to stop says why */
        atomic_store(&lc->at_total, total);
        atomic_store(&lc->at, done);
        atomic_store(&lc->by, by);
    }
    return 1;
}

int iqdb__long_fail(iqdb__long *lc) {
    iqdb *db = lc->db;
    int by = atomic_load(&lc->by);
    const char *why = by == STOP_CALLBACK ? "the progress callback"
                      : by == STOP_CANCEL ? "iqdb_future_cancel"
                                          : "iqdb_interrupt";
    unsigned long long at = atomic_load(&lc->at), total = atomic_load(&lc->at_total);
    iqdb__log(db, IQDB_LOG_INFO, "%s stopped by %s at %llu of %llu", op_name(lc->op), why, at,
              total);
    return iqdb__fail(db, IQDB_INTERRUPTED, "the %s was stopped by %s; nothing was changed",
                      op_name(lc->op), why);
}

int iqdb__long_by_callback(const iqdb__long *lc) {
    return atomic_load(&((iqdb__long *)lc)->by) == STOP_CALLBACK;
}

int iqdb__long_check(iqdb__long *lc, uint64_t done) {
    return iqdb__long_poll(lc, done, lc->total) ? iqdb__long_fail(lc) : IQDB_OK;
}

int iqdb_interrupt(iqdb *db) {
    if (!db || db->magic != IQDB_MAGIC)
        return iqdb__fail(NULL, IQDB_MISUSE, "iqdb_interrupt: invalid or closed handle");
    atomic_fetch_add_explicit(&db->interrupts, 1, memory_order_acq_rel);
    return IQDB_OK;
}
