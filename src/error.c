/*
 * error.c — the status-code table and the thread-local error record.
 *
 * The record holds the handle the failure concerned, the code and a formatted message. It is
 * thread-local, so concurrent readers on one handle never overwrite each other's messages
 * (SQLite's serialized-mode caveat does not apply). Formatting never allocates.
 */
#include "internal.h"

#define IQDB_ERRMSG_CAP 512

typedef struct err_record {
    const iqdb *db;
    int rc;
    char msg[IQDB_ERRMSG_CAP];
} err_record;

static IQDB_THREAD_LOCAL err_record tls_err;

const char *iqdb_errstr(int rc) {
    /* Only IQDB_IOERR and IQDB_CORRUPT carry extended codes; they describe as their primary. */
    if (rc < 0 || rc > 0xffff) return "unknown status code";
    if ((rc >> 8) && IQDB_PRIMARY(rc) != IQDB_IOERR && IQDB_PRIMARY(rc) != IQDB_CORRUPT)
        return "unknown status code";
    switch (IQDB_PRIMARY(rc)) {
    case IQDB_OK: return rc == IQDB_OK ? "not an error" : "unknown status code";
    case IQDB_ERROR: return "internal error";
    case IQDB_MISUSE: return "API misuse";
    case IQDB_INVALID: return "invalid argument";
    case IQDB_DIM: return "vector dimension mismatch";
    case IQDB_NOTFOUND: return "not found";
    case IQDB_NOMEM: return "out of memory";
    case IQDB_IOERR: return "I/O error";
    case IQDB_FULL: return "capacity limit reached";
    case IQDB_CORRUPT: return "data is corrupt";
    case IQDB_FORMAT: return "unknown or newer file format";
    case IQDB_MISMATCH: return "request does not match stored data";
    case IQDB_BUSY: return "database is busy (locked by another process)";
    case IQDB_READONLY: return "database is read-only";
    case IQDB_FATAL: return "handle is unusable for writes after an fsync failure; reopen it";
    case IQDB_UNSUPPORTED: return "not supported";
    case IQDB_INTERRUPTED: return "interrupted";
    default: return "unknown status code";
    }
}

const char *iqdb_errmsg(const iqdb *db) {
    if (tls_err.rc == IQDB_OK || tls_err.db != db) return "";
    return tls_err.msg;
}

int iqdb__vfail(const iqdb *db, int rc, const char *fmt, va_list ap) {
    tls_err.db = db;
    tls_err.rc = rc;
    if (fmt) {
        int n = vsnprintf(tls_err.msg, sizeof tls_err.msg, fmt, ap);
        if (n < 0) snprintf(tls_err.msg, sizeof tls_err.msg, "%s", iqdb_errstr(rc));
    } else {
        snprintf(tls_err.msg, sizeof tls_err.msg, "%s", iqdb_errstr(rc));
    }
    return rc;
}

int iqdb__fail(const iqdb *db, int rc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    iqdb__vfail(db, rc, fmt, ap);
    va_end(ap);
    return rc;
}

int iqdb__fail_retag(const iqdb *db, int rc) {
    if (tls_err.rc != IQDB_OK && tls_err.rc == rc) {
        tls_err.db = db;
        return rc;
    }
    return iqdb__fail(db, rc, "%s", iqdb_errstr(rc));
}

int iqdb__nomem(const iqdb *db) { return iqdb__fail(db, IQDB_NOMEM, "out of memory"); }

void iqdb__assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "iqdb: internal assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}
