/*
 * util.c — the `iqdb` tool's shared pieces: error reporting with the library's code names,
 * exit codes, names of metrics / index kinds / strategies, vectors typed on the command line,
 * JSON output of metadata, progress bars (stderr, only when it is a terminal) and the tool's
 * own double-precision distance (the reference the benchmark uses to recognise ties).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

cli_opts g_cli;

const char *cli_code_name(int rc) {
    static const char *const prim[] = {
        "IQDB_OK",          "IQDB_ERROR",      "IQDB_MISUSE", "IQDB_INVALID",  "IQDB_DIM",
        "IQDB_NOTFOUND",    "IQDB_NOMEM",      "IQDB_IOERR",  "IQDB_FULL",     "IQDB_CORRUPT",
        "IQDB_FORMAT",      "IQDB_MISMATCH",   "IQDB_BUSY",   "IQDB_READONLY", "IQDB_FATAL",
        "IQDB_UNSUPPORTED", "IQDB_INTERRUPTED"};
    static const char *const ioerr[] = {NULL,
                                        "IQDB_IOERR_OPEN",
                                        "IQDB_IOERR_READ",
                                        "IQDB_IOERR_WRITE",
                                        "IQDB_IOERR_FSYNC",
                                        "IQDB_IOERR_TRUNCATE",
                                        "IQDB_IOERR_RENAME",
                                        "IQDB_IOERR_DELETE",
                                        "IQDB_IOERR_DIRSYNC",
                                        "IQDB_IOERR_SIZE",
                                        "IQDB_IOERR_LOCK",
                                        "IQDB_IOERR_NOSPACE"};
    int p = IQDB_PRIMARY(rc), ext = rc >> 8;
    if (rc < 0 || p >= (int)(sizeof prim / sizeof *prim)) return "IQDB_UNKNOWN";
    if (ext == 0) return prim[p];
    if (p == IQDB_IOERR && ext < (int)(sizeof ioerr / sizeof *ioerr)) return ioerr[ext];
    if (p == IQDB_CORRUPT && ext == 1) return "IQDB_CORRUPT_SNAPSHOT";
    if (p == IQDB_CORRUPT && ext == 2) return "IQDB_CORRUPT_WAL";
    return prim[p];
}

int cli_exit_for(int rc) {
    switch (IQDB_PRIMARY(rc)) {
    case IQDB_OK: return EXIT_OK;
    case IQDB_NOTFOUND: return EXIT_NOTFOUND;
    case IQDB_CORRUPT: return EXIT_CORRUPT;
    case IQDB_BUSY: return EXIT_BUSY;
    default: return EXIT_FAIL;
    }
}

static void put_error(const char *code, const char *msg) {
    if (g_cli.json) {
        fputs("{\"error\":{\"code\":", stderr);
        cli_json_str(stderr, code, strlen(code));
        fputs(",\"message\":", stderr);
        cli_json_str(stderr, msg, strlen(msg));
        fputs("}}\n", stderr);
    } else {
        fprintf(stderr, "iqdb: %s: %s\n", code, msg);
    }
}

int cli_lib_error(const iqdb *db, int rc, const char *what) {
    char msg[1024];
    const char *detail = iqdb_errmsg(db);
    snprintf(msg, sizeof msg, "%s: %s%s%s", what, iqdb_errstr(rc), *detail ? ": " : "", detail);
    put_error(cli_code_name(rc), msg);
    return cli_exit_for(rc);
}

int cli_error(int code, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    put_error(code == EXIT_USAGE      ? "usage"
              : code == EXIT_INPUT    ? "input"
              : code == EXIT_NOTFOUND ? "IQDB_NOTFOUND"
              : code == EXIT_PARTIAL  ? "partial"
                                      : "error",
              msg);
    return code;
}

void cli_errf(cli_err *e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
}

int cli_parse_u64(const char *s, uint64_t *v) {
    if (!s || !*s || *s == '-' || *s == '+' || *s == ' ') return -1;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 0);
    if (*end || errno) return -1;
    *v = x;
    return 0;
}

int cli_parse_u32(const char *s, uint32_t *v) {
    uint64_t x;
    if (cli_parse_u64(s, &x) || x > UINT32_MAX) return -1;
    *v = (uint32_t)x;
    return 0;
}

void cli_records_free(cli_records *r) {
    if (r->metas)
        for (size_t i = 0; i < r->n; i++) iqdb_meta_destroy(r->metas[i]);
    free(r->vecs), free(r->ids), free(r->metas);
    memset(r, 0, sizeof *r);
}

void cli_records_truncate(cli_records *r, size_t n) {
    if (n >= r->n) return;
    if (r->metas)
        for (size_t i = n; i < r->n; i++) iqdb_meta_destroy(r->metas[i]), r->metas[i] = NULL;
    r->n = n;
}

/* ---- names ----------------------------------------------------------------------------------- */

static const char *const metric_names[] = {"l2", "l2", "cosine", "dot", "l1", "hamming"};

const char *cli_metric_name(iqdb_metric m) {
    int i = (int)m;
    return i >= 0 && i <= 5 ? metric_names[i] : "unknown";
}

int cli_metric_parse(const char *s, iqdb_metric *m) {
    for (int i = 1; i <= 5; i++)
        if (!strcasecmp(s, metric_names[i])) return *m = (iqdb_metric)i, 0;
    if (!strcasecmp(s, "euclidean")) return *m = IQDB_METRIC_L2, 0;
    if (!strcasecmp(s, "ip") || !strcasecmp(s, "inner")) return *m = IQDB_METRIC_DOT, 0;
    return -1;
}

static const char *const index_names[] = {"flat", "flat", "hnsw", "ivf"};

const char *cli_index_name(iqdb_index_kind k) {
    int i = (int)k;
    return i >= 0 && i <= 3 ? index_names[i] : "unknown";
}

int cli_index_parse(const char *s, iqdb_index_kind *k) {
    for (int i = 1; i <= 3; i++)
        if (!strcasecmp(s, index_names[i])) return *k = (iqdb_index_kind)i, 0;
    return -1;
}

/* By number, so a strategy added to the library later prints as its number. */
const char *cli_strategy_name(int s) {
    static const char *const names[] = {"none",         "scan",          "scan-filtered",
                                        "hnsw",         "hnsw-filtered", "ivf",
                                        "ivf-filtered", "codes",         "codes-filtered"};
    return s >= 0 && s < (int)(sizeof names / sizeof *names) ? names[s] : "other";
}

/* ---- vectors, distances ---------------------------------------------------------------------- */

int cli_parse_vector(const char *s, float *out, size_t dim, cli_err *e) {
    size_t n = 0;
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == ',' || *p == '\t' || *p == '[' || *p == ']') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        double d = strtod(p, &end);
        if (end == p) {
            cli_errf(e, "vector: '%.20s' is not a number (component %zu)", p, n);
            return -1;
        }
        float f = (float)d;
        if (!isfinite(f)) {
            cli_errf(e, "vector: component %zu is not a finite float", n);
            return -1;
        }
        if (n == dim) {
            cli_errf(e, "vector: more than %zu components (the database's dimension)", dim);
            return -1;
        }
        out[n++] = f;
        p = end;
    }
    if (n != dim) {
        cli_errf(e, "vector: %zu components; the database's dimension is %zu", n, dim);
        return -1;
    }
    return 0;
}

double cli_distance(iqdb_metric metric, const float *a, const float *b, size_t dim) {
    double s = 0, na = 0, nb = 0;
    switch (metric) {
    case IQDB_METRIC_DEFAULT:
    case IQDB_METRIC_L2:
        for (size_t i = 0; i < dim; i++) s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        return sqrt(s);
    case IQDB_METRIC_COSINE:
        for (size_t i = 0; i < dim; i++)
            s += (double)a[i] * b[i], na += (double)a[i] * a[i], nb += (double)b[i] * b[i];
        return na == 0 || nb == 0 ? 1.0 : 1.0 - s / (sqrt(na) * sqrt(nb));
    case IQDB_METRIC_DOT:
        for (size_t i = 0; i < dim; i++) s += (double)a[i] * b[i];
        return -s;
    case IQDB_METRIC_L1:
        for (size_t i = 0; i < dim; i++) s += fabs((double)a[i] - b[i]);
        return s;
    case IQDB_METRIC_HAMMING:
        for (size_t i = 0; i < dim; i++) s += a[i] != b[i];
        return s;
    }
    return 0;
}

/* ---- JSON output ----------------------------------------------------------------------------- */

void cli_json_str(FILE *f, const char *s, size_t len) {
    fputc('"', f);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (c < 0x20 || c == 0x7f)
                fprintf(f, "\\u%04x", c);
            else
                fputc(c, f);
        }
    }
    fputc('"', f);
}

void cli_put_float(FILE *f, float x) { fprintf(f, "%.9g", (double)x); }

static void put_double(FILE *f, double d) {
    if (isinf(d)) {
        fputs(d > 0 ? "1e999" : "-1e999", f); /* reads back as infinity */
        return;
    }
    char buf[40];
    snprintf(buf, sizeof buf, "%.17g", d);
    /* Keep it a double when read back: add ".0" to an integral rendering. */
    if (!strpbrk(buf, ".eEn")) strcat(buf, ".0");
    fputs(buf, f);
}

void cli_json_meta(FILE *f, const iqdb_meta *m) {
    fputc('{', f);
    size_t n = iqdb_meta_count(m);
    for (size_t i = 0; i < n; i++) {
        const char *key;
        iqdb_value v;
        if (iqdb_meta_at(m, i, &key, &v) != IQDB_OK) break;
        if (i) fputc(',', f);
        cli_json_str(f, key, strlen(key));
        fputc(':', f);
        switch (v.type) {
        case IQDB_TYPE_NULL: fputs("null", f); break;
        case IQDB_TYPE_BOOL: fputs(v.u.b ? "true" : "false", f); break;
        case IQDB_TYPE_INT: fprintf(f, "%lld", (long long)v.u.i); break;
        case IQDB_TYPE_DOUBLE: put_double(f, v.u.d); break;
        case IQDB_TYPE_STRING: cli_json_str(f, v.u.s.ptr, v.u.s.len); break;
        }
    }
    fputc('}', f);
}

/* ---- progress -------------------------------------------------------------------------------- */

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void cli_progress_start(cli_progress *p, const char *label, uint64_t total) {
    p->label = label;
    p->total = total;
    p->start = p->last = cli_now();
    p->shown = 0;
}

void cli_progress_update(cli_progress *p, uint64_t done) {
    if (!g_cli.progress) return;
    double t = cli_now();
    if (t - p->last < 0.1 && (done < p->total || !p->total)) return;
    p->last = t;
    p->shown = 1;
    if (!p->total) { /* unknown size: bytes so far */
        fprintf(stderr, "\r%-12s %.1f MB %.1fs", p->label, (double)done / 1e6, t - p->start);
        fflush(stderr);
        return;
    }
    double frac = p->total ? (double)done / (double)p->total : 1.0;
    if (frac > 1) frac = 1;
    int w = 30, fill = (int)(frac * w);
    char bar[64];
    for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : '.';
    bar[w] = 0;
    fprintf(stderr, "\r%-12s [%s] %5.1f%% %llu/%llu %.1fs", p->label, bar, frac * 100,
            (unsigned long long)done, (unsigned long long)p->total, t - p->start);
    fflush(stderr);
}

void cli_progress_end(cli_progress *p) {
    if (p->shown) fputs("\r\033[K", stderr);
}
