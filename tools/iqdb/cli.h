/*
 * cli.h — what the modules of the `iqdb` command-line tool share: exit codes, error reporting,
 * the loaded-records type that every importer fills, the readers and writers of the file
 * formats, the strict JSON reader, progress bars and the benchmark.
 *
 * Invariants: every reader validates the whole input before the caller writes anything (an
 * import is staged in memory, then applied), and reports a failure as one line naming the file,
 * the record (row / line / byte offset) and the problem. Nothing here keeps global state except
 * the output flags in `cli_opts`.
 */
#ifndef IQDB_CLI_H
#define IQDB_CLI_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "iqdb.h"

/* Exit codes (documented in docs/cli.md). */
enum {
    EXIT_OK = 0,
    EXIT_FAIL = 1,     /* a library call failed (message carries the IQDB_* name) */
    EXIT_USAGE = 2,    /* bad command line */
    EXIT_INPUT = 3,    /* an input file is unreadable or malformed: nothing was written */
    EXIT_NOTFOUND = 4, /* get: no such record; open: no such database */
    EXIT_CORRUPT = 5,  /* check (or open) found corruption */
    EXIT_BUSY = 6,     /* another process holds the database open for writing */
    EXIT_PARTIAL = 7   /* an import failed and its rollback failed too: see the message */
};

/* Output settings shared by every command (global options). */
typedef struct cli_opts {
    int json;     /* --json: machine-readable output on stdout, errors as JSON on stderr */
    int quiet;    /* -q: no progress, no informational lines */
    int progress; /* progress bars: stderr is a terminal and not quiet */
    uint32_t threads;
    iqdb_sync sync; /* --sync: the policy of writing commands (default: the library's) */
} cli_opts;

extern cli_opts g_cli;

/* ---- errors ------------------------------------------------------------------------------- */

/** "IQDB_DIM", "IQDB_IOERR_FSYNC", ...; "IQDB_UNKNOWN" for anything else. */
const char *cli_code_name(int rc);
/** The exit code for a library status. */
int cli_exit_for(int rc);
/** Reports a failed library call: `what: IQDB_NAME (errstr): errmsg`. Returns cli_exit_for. */
int cli_lib_error(const iqdb *db, int rc, const char *what);
/** Reports an error of the tool itself (input file, usage) and returns `code`. */
int cli_error(int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* A usage error, and the value of the option at argv[i] (a missing one is a usage error); both
 * for option loops over (argc, argv, i) that return an exit code. */
#define CLI_USAGE(...) cli_error(EXIT_USAGE, __VA_ARGS__)
#define CLI_VAL(out)                                                      \
    do {                                                                  \
        if (i + 1 >= argc) return CLI_USAGE("%s needs a value", argv[i]); \
        (out) = argv[++i];                                                \
    } while (0)

/** Strict unsigned parsing (decimal or 0x hex, no sign, nothing trailing): 0 or -1. */
int cli_parse_u64(const char *s, uint64_t *v);
int cli_parse_u32(const char *s, uint32_t *v);

/* A message buffer that the readers fill on failure. */
typedef struct cli_err {
    char msg[512];
} cli_err;
void cli_errf(cli_err *e, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ---- loaded records ------------------------------------------------------------------------ */

/** Records read from a file, validated and ready to upsert. */
typedef struct cli_records {
    size_t n, dim, cap;
    float *vecs;       /* n * dim */
    iqdb_id *ids;      /* n, or NULL: ids assigned by the caller */
    iqdb_meta **metas; /* n, or NULL; entries may be NULL */
} cli_records;

void cli_records_free(cli_records *r);
/** Keeps the first n records (frees the metadata of the rest). */
void cli_records_truncate(cli_records *r, size_t n);

/** Input formats. */
typedef enum cli_format {
    FMT_AUTO = 0,
    FMT_FVECS,
    FMT_BVECS,
    FMT_IVECS,
    FMT_NPY,
    FMT_CSV,
    FMT_JSONL,
    FMT_IDX
} cli_format;

cli_format cli_format_parse(const char *s);    /* FMT_AUTO when unknown */
cli_format cli_format_guess(const char *path); /* from the file name; FMT_AUTO when unknown */
const char *cli_format_name(cli_format f);

/**
 * Reads a whole file of vectors in `fmt` (FMT_IVECS reads int32 values as floats). `want_dim`
 * 0 accepts any dimension, else every record must have it. Every value must be finite. On
 * failure returns -1 with e->msg naming the file, the record and the problem; nothing is kept.
 * JSONL and CSV may carry ids (JSONL also metadata): r->ids / r->metas are then set.
 */
int cli_read_vectors(const char *path, cli_format fmt, size_t want_dim, cli_records *r, cli_err *e);

/** Reads an .ivecs file whose records have one value each (ids): *ids gets *n ids (>= 0). */
int cli_read_id_ivecs(const char *path, iqdb_id **ids, size_t *n, cli_err *e);
/** Reads an .ivecs file of `*k`-wide records (ground truth): *out gets *n x *k values. */
int cli_read_ivecs(const char *path, int32_t **out, size_t *n, size_t *k, cli_err *e);
/** Reads an IDX1 uint8 file (labels), gzip-compressed or plain. */
int cli_read_idx1(const char *path, unsigned char **out, size_t *n, cli_err *e);

/** Writers for export: each returns 0 or -1 with e->msg. */
typedef struct cli_writer cli_writer;
int cli_writer_open(cli_writer **w, const char *path, cli_format fmt, size_t dim, size_t n,
                    cli_err *e);
int cli_writer_put(cli_writer *w, iqdb_id id, const float *vec, const iqdb_meta *meta, cli_err *e);
int cli_writer_close(cli_writer *w, cli_err *e); /* also frees; NULL is fine */

/* ---- JSON ------------------------------------------------------------------------------------ */

/** Writes `s` (len bytes) as a JSON string literal. */
void cli_json_str(FILE *f, const char *s, size_t len);
/** Writes a metadata object as a JSON object ({} for NULL). */
void cli_json_meta(FILE *f, const iqdb_meta *m);
/** Writes a float so that it reads back bit for bit. */
void cli_put_float(FILE *f, float x);

/**
 * Parses one JSONL line: an object with "vector" (array of numbers, required), "id" (a
 * non-negative integer up to 2^64 - 1, optional) and "metadata" (an object of null / bool /
 * number / string values, optional); nothing else. *has_id says whether "id" was there;
 * *meta is NULL when there is no (or an empty) metadata object. `vec` has room for `cap`
 * floats; *dim receives the count (an error when it would pass `cap`).
 */
int cli_json_parse_record(const char *line, size_t len, float *vec, size_t cap, size_t *dim,
                          iqdb_id *id, int *has_id, iqdb_meta **meta, cli_err *e);

/* ---- vectors on the command line, progress -------------------------------------------------- */

/** Parses "0.5,1,2" (commas and/or spaces) into `dim` finite floats. */
int cli_parse_vector(const char *s, float *out, size_t dim, cli_err *e);

typedef struct cli_progress {
    const char *label;
    uint64_t total;
    double start, last;
    int shown;
} cli_progress;
void cli_progress_start(cli_progress *p, const char *label, uint64_t total);
void cli_progress_update(cli_progress *p, uint64_t done);
void cli_progress_end(cli_progress *p);

double cli_now(void);

/* ---- names ---------------------------------------------------------------------------------- */

const char *cli_metric_name(iqdb_metric m);
int cli_metric_parse(const char *s, iqdb_metric *m);
const char *cli_index_name(iqdb_index_kind k);
int cli_index_parse(const char *s, iqdb_index_kind *k);
const char *cli_strategy_name(int s);

/** Distance of two vectors in `metric`, in double precision (the tool's own reference). */
double cli_distance(iqdb_metric metric, const float *a, const float *b, size_t dim);

/* ---- commands ------------------------------------------------------------------------------- */

/** `iqdb bench`: argv[0] is "bench". `db` may be NULL (then --base is required). */
int cli_bench(iqdb *db, int argc, char **argv);

#endif
