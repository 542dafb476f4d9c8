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

void iqdb__long_begin(iqdb *db, iqdb__long *lc, iqdb_progress_op op, uint64_t total) {
    lc->db = db;
    lc->gen = atomic_load_explicit(&db->interrupts, memory_order_acquire);
    lc->op = op;
    lc->total = total;
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

int iqdb__long_check(iqdb__long *lc, uint64_t done) {
    iqdb *db = lc->db;
    const char *why = NULL;
    if (atomic_load_explicit(&db->interrupts, memory_order_acquire) != lc->gen)
        why = "iqdb_interrupt";
    else if (db->opts.progress_fn && db->opts.progress_fn(db->opts.progress_ud, lc->op,
                                                          IQDB_MIN(done, lc->total), lc->total))
        why = "the progress callback";
    if (!why) return IQDB_OK;
    iqdb__log(db, IQDB_LOG_INFO, "%s stopped by %s at %llu of %llu", op_name(lc->op), why,
              (unsigned long long)IQDB_MIN(done, lc->total), (unsigned long long)lc->total);
    return iqdb__fail(db, IQDB_INTERRUPTED, "the %s was stopped by %s; nothing was changed",
                      op_name(lc->op), why);
}

int iqdb_interrupt(iqdb *db) {
    if (!db || db->magic != IQDB_MAGIC)
        return iqdb__fail(NULL, IQDB_MISUSE, "iqdb_interrupt: invalid or closed handle");
    atomic_fetch_add_explicit(&db->interrupts, 1, memory_order_acq_rel);
    return IQDB_OK;
}
