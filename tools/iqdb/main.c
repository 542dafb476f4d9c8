/*
 * main.c — `iqdb`, the command-line tool and shell for iqdb databases (docs/cli.md).
 *
 *   iqdb [--json] [-q] [--threads N] <command> [DB] [options]
 *
 * Commands: create import search get delete count info stats check checkpoint compact export
 * bench shell help. Each command opens the database, does its work and closes it (read-only
 * commands open read-only, so they take no lock); the shell opens it once for writing and runs
 * the same commands, one per line, from stdin.
 *
 * A database is opened with the dimension and metric its snapshot header records (docs/FORMAT.md,
 * header bytes 16..23), so no command needs --dim except create. Imports are staged: the whole
 * file is read and validated first, and only then written (see do_import for the all-or-nothing
 * rule across chunks).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"

typedef struct ctx {
    const char *path; /* NULL: in memory (shell only) */
    iqdb *db;
    int writable;
    int shell;
} ctx;

#define USAGE CLI_USAGE
#define VAL CLI_VAL
#define parse_u64 cli_parse_u64
#define parse_u32 cli_parse_u32

#define NUM32(opt, dst)                                                               \
    do {                                                                              \
        const char *v_;                                                               \
        VAL(v_);                                                                      \
        if (parse_u32(v_, &(dst))) return USAGE("%s: '%s' is not a number", opt, v_); \
    } while (0)
#define NUM64(opt, dst)                                                               \
    do {                                                                              \
        const char *v_;                                                               \
        VAL(v_);                                                                      \
        if (parse_u64(v_, &(dst))) return USAGE("%s: '%s' is not a number", opt, v_); \
    } while (0)

/* ---- opening --------------------------------------------------------------------------------- */

/* Reads dim, metric and codec from the snapshot header. 0 on success; 1 no file; -1 not
 * readable. */
static int read_header(const char *path, uint32_t *dim, iqdb_metric *metric,
                       iqdb_compression *codec) {
    FILE *f = fopen(path, "rb");
    if (!f) return errno == ENOENT ? 1 : -1;
    unsigned char h[64];
    size_t got = fread(h, 1, sizeof h, f);
    fclose(f);
    if (got != sizeof h || memcmp(h, "IQDBSNAP", 8)) return -1;
    *dim = (uint32_t)h[16] | (uint32_t)h[17] << 8 | (uint32_t)h[18] << 16 | (uint32_t)h[19] << 24;
    *metric = (iqdb_metric)(h[20] | h[21] << 8 | h[22] << 16 | h[23] << 24);
    /* Byte 28: the sections' codec (0 none, 1 zstd, 2 lz4): later checkpoints keep it. */
    *codec = h[28] == 1 ? IQDB_COMPRESS_ZSTD : h[28] == 2 ? IQDB_COMPRESS_LZ4 : IQDB_COMPRESS_NONE;
    return 0;
}

static int open_path(const char *path, int writable, iqdb **out) {
    uint32_t dim = 1;
    iqdb_metric metric = IQDB_METRIC_L2;
    iqdb_compression codec = IQDB_COMPRESS_NONE;
    int h = read_header(path, &dim, &metric, &codec);
    if (h == 1) {
        return cli_error(EXIT_NOTFOUND,
                         "%s: no such database (make one with: iqdb create %s --dim N)", path,
                         path);
    }
    /* An unreadable header: let the library say what is wrong with the file. */
    iqdb_options o;
    iqdb_options_init(&o, h == 0 ? dim : 1, h == 0 ? metric : IQDB_METRIC_L2);
    o.read_only = !writable;
    o.threads = g_cli.threads;
    if (writable) {
        o.compression = codec;
        o.sync = g_cli.sync;
    }
    int rc = iqdb_open(path, &o, out);
    if (rc != IQDB_OK) return cli_lib_error(NULL, rc, path);
    if (h != 0) { /* the library accepted what we could not read: trust it, but say so */
        iqdb_close(*out);
        *out = NULL;
        return cli_error(EXIT_FAIL, "%s: unreadable snapshot header", path);
    }
    return EXIT_OK;
}

/* The handle for this command: in the shell the one open handle, else a new one. */
static int get_db(ctx *c, int writable, iqdb **db) {
    *db = NULL;
    if (c->db) {
        *db = c->db;
        return EXIT_OK;
    }
    if (!c->path) return cli_error(EXIT_USAGE, "no database: run create first (or name a file)");
    int rc = open_path(c->path, c->shell ? 1 : writable, &c->db);
    if (rc) return rc;
    c->writable = c->shell ? 1 : writable;
    *db = c->db;
    return EXIT_OK;
}

/* Ends a command: outside the shell the handle is closed (its final checkpoint reported). */
static int done(ctx *c, int code) {
    if (!c->shell && c->db) {
        int rc = iqdb_close(c->db);
        c->db = NULL;
        if (rc != IQDB_OK && code == EXIT_OK) return cli_lib_error(NULL, rc, "close");
    }
    return code;
}

static void info_line(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
static void info_line(const char *fmt, ...) {
    if (g_cli.quiet || g_cli.json) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
}

/* ---- create ---------------------------------------------------------------------------------- */

static int cmd_create(ctx *c, int argc, char **argv) {
    iqdb_options o;
    iqdb_options_init(&o, 0, IQDB_METRIC_L2);
    o.threads = g_cli.threads;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--dim")) {
            NUM32(a, o.dim);
        } else if (!strcmp(a, "--metric")) {
            VAL(v);
            if (cli_metric_parse(v, &o.metric))
                return USAGE("--metric: '%s' (l2, cosine, dot, l1, hamming)", v);
        } else if (!strcmp(a, "--index")) {
            VAL(v);
            if (cli_index_parse(v, &o.index)) return USAGE("--index: '%s' (flat, hnsw, ivf)", v);
        } else if (!strcmp(a, "--m")) {
            NUM32(a, o.hnsw.m);
        } else if (!strcmp(a, "--ef-construction")) {
            NUM32(a, o.hnsw.ef_construction);
        } else if (!strcmp(a, "--ef-search")) {
            NUM32(a, o.hnsw.ef_search);
        } else if (!strcmp(a, "--filter-widen")) {
            NUM32(a, o.hnsw.filter_widen);
        } else if (!strcmp(a, "--seed")) {
            NUM64(a, o.hnsw.seed);
        } else if (!strcmp(a, "--lists")) {
            NUM32(a, o.ivf.n_lists);
        } else if (!strcmp(a, "--probes")) {
            NUM32(a, o.ivf.n_probes);
        } else if (!strcmp(a, "--train-sample")) {
            NUM32(a, o.ivf.train_sample);
#ifdef IQDB_CLI_HAVE_QUANT
        } else if (!strcmp(a, "--quant")) {
            VAL(v);
            if (!strcasecmp(v, "none"))
                o.quant.kind = IQDB_QUANT_NONE;
            else if (!strcasecmp(v, "sq8"))
                o.quant.kind = IQDB_QUANT_SQ8;
            else if (!strcasecmp(v, "binary"))
                o.quant.kind = IQDB_QUANT_BINARY;
            else if (!strcasecmp(v, "pq"))
                o.quant.kind = IQDB_QUANT_PQ;
            else
                return USAGE("--quant: '%s' (none, sq8, binary, pq)", v);
        } else if (!strcmp(a, "--pq-m")) {
            NUM32(a, o.quant.pq_m);
        } else if (!strcmp(a, "--oversample")) {
            NUM32(a, o.quant.oversample);
        } else if (!strcmp(a, "--codes-only")) {
            o.quant.flags |= IQDB_QUANT_CODES_ONLY;
#endif
        } else if (!strcmp(a, "--sync")) {
            VAL(v);
            if (!strcasecmp(v, "always"))
                o.sync = IQDB_SYNC_ALWAYS;
            else if (!strcasecmp(v, "periodic"))
                o.sync = IQDB_SYNC_PERIODIC;
            else if (!strcasecmp(v, "never"))
                o.sync = IQDB_SYNC_NEVER;
            else
                return USAGE("--sync: '%s' (always, periodic, never)", v);
        } else if (!strcmp(a, "--sync-period")) {
            NUM32(a, o.sync_period_ms);
        } else if (!strcmp(a, "--compression")) {
            VAL(v);
            if (!strcasecmp(v, "none"))
                o.compression = IQDB_COMPRESS_NONE;
            else if (!strcasecmp(v, "zstd"))
                o.compression = IQDB_COMPRESS_ZSTD;
            else if (!strcasecmp(v, "lz4"))
                o.compression = IQDB_COMPRESS_LZ4;
            else
                return USAGE("--compression: '%s' (none, zstd, lz4)", v);
        } else if (!strcmp(a, "--level")) {
            uint32_t l;
            NUM32(a, l);
            if (l > INT32_MAX) return USAGE("--level: out of range");
            o.compression_level = (int32_t)l;
        } else if (!strcmp(a, "--checkpoint-bytes")) {
            NUM64(a, o.checkpoint_bytes);
        } else {
            return USAGE("create: unknown option '%s'", a);
        }
    }
    if (!o.dim) return USAGE("create: --dim N is required");
    if (c->db) return cli_error(EXIT_FAIL, "create: a database is already open in this shell");
    if (c->path && access(c->path, F_OK) == 0)
        return cli_error(EXIT_FAIL, "create: %s already exists", c->path);
    int rc = iqdb_open(c->path, &o, &c->db);
    if (rc != IQDB_OK) {
        if (IQDB_PRIMARY(rc) == IQDB_UNSUPPORTED && o.index != IQDB_INDEX_FLAT &&
            o.index != IQDB_INDEX_DEFAULT)
            return cli_error(EXIT_FAIL,
                             "create: IQDB_UNSUPPORTED: this libiqdb has no %s index (%s); use "
                             "--index flat",
                             cli_index_name(o.index), iqdb_errmsg(NULL));
        return cli_lib_error(NULL, rc, "create");
    }
    c->writable = 1;
    if (g_cli.json)
        printf("{\"created\":%s,\"dim\":%u,\"metric\":\"%s\",\"index\":\"%s\"}\n",
               c->path ? "true" : "false", o.dim, cli_metric_name(o.metric),
               cli_index_name(o.index));
    else
        info_line("created %s: dim %u, metric %s, index %s\n", c->path ? c->path : "(in memory)",
                  o.dim, cli_metric_name(o.metric), cli_index_name(o.index));
    return done(c, EXIT_OK);
}

/* ---- import
 * -------------------------------------------------------------------------------------- */

/* The state of records an import is about to replace, for a rollback. */
typedef struct saved {
    size_t n;
    iqdb_id *ids;
    float *vecs;
    iqdb_meta **metas;
    int *existed; /* per import record: the id existed before */
} saved;

static void saved_free(saved *s, size_t n_import) {
    (void)n_import;
    if (s->metas)
        for (size_t i = 0; i < s->n; i++) iqdb_meta_destroy(s->metas[i]);
    free(s->ids), free(s->vecs), free(s->metas), free(s->existed);
    memset(s, 0, sizeof *s);
}

static int save_prior(iqdb *db, const iqdb_id *ids, size_t n, size_t dim, saved *s) {
    memset(s, 0, sizeof *s);
    s->existed = calloc(n ? n : 1, sizeof *s->existed);
    s->ids = malloc((n ? n : 1) * sizeof *s->ids);
    s->metas = calloc(n ? n : 1, sizeof *s->metas);
    if (!s->existed || !s->ids || !s->metas) return IQDB_NOMEM;
    size_t cap = 0;
    for (size_t i = 0; i < n; i++) {
        if (cap == s->n) {
            cap = cap ? cap * 2 : 64;
            float *v = realloc(s->vecs, cap * dim * sizeof *v);
            if (!v) return IQDB_NOMEM;
            s->vecs = v;
        }
        int rc = iqdb_get(db, ids[i], s->vecs + s->n * dim, &s->metas[s->n]);
        if (rc == IQDB_NOTFOUND) continue;
        if (rc != IQDB_OK) return rc;
        s->existed[i] = 1;
        s->ids[s->n++] = ids[i];
    }
    return IQDB_OK;
}

/* Undoes chunks [0, upto): deletes the ids that were new, puts back the replaced records. */
static int rollback(iqdb *db, const iqdb_id *ids, size_t upto, const saved *s, size_t *undone) {
    *undone = 0;
    for (size_t i = 0; i < upto; i++) {
        if (s->existed[i]) continue;
        int rc = iqdb_delete(db, ids[i], NULL);
        if (rc != IQDB_OK) return rc;
        ++*undone;
    }
    if (s->n) {
        int rc = iqdb_upsert_batch(db, s->n, s->ids, s->vecs, (const iqdb_meta *const *)s->metas);
        if (rc != IQDB_OK) return rc;
    }
    return IQDB_OK;
}

/* A generous estimate of a metadata object's bytes in a WAL record. */
static size_t meta_bytes(const iqdb_meta *m) {
    size_t n = iqdb_meta_count(m), b = 8;
    for (size_t i = 0; i < n; i++) {
        const char *key;
        iqdb_value v;
        if (iqdb_meta_at(m, i, &key, &v) != IQDB_OK) break;
        b += strlen(key) + 16 + (v.type == IQDB_TYPE_STRING ? v.u.s.len : 0);
    }
    return b;
}

/* The size of the batch starting at record `at`: at most `chunk` records and (beyond its first
 * record) at most 256 MiB, far below the WAL's 1 GiB record cap. */
static size_t next_batch(const cli_records *r, size_t at, size_t chunk) {
    size_t bytes = 0, m = 0;
    while (at + m < r->n && m < chunk) {
        size_t b = r->dim * sizeof(float) + 64 + (r->metas ? meta_bytes(r->metas[at + m]) : 0);
        if (m && bytes + b > ((size_t)256 << 20)) break;
        bytes += b;
        m++;
    }
    return m;
}

static int cmd_import(ctx *c, int argc, char **argv) {
    const char *file = NULL, *ids_file = NULL, *labels = NULL, *label_key = "label", *v;
    cli_format fmt = FMT_AUTO;
    uint64_t start_id = 0, limit = 0, chunk = 10000;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--format")) {
            VAL(v);
            if ((fmt = cli_format_parse(v)) == FMT_AUTO)
                return USAGE("--format: '%s' (fvecs, bvecs, npy, csv, jsonl, idx)", v);
        } else if (!strcmp(a, "--ids")) {
            VAL(ids_file);
        } else if (!strcmp(a, "--labels")) {
            VAL(labels);
        } else if (!strcmp(a, "--label-key")) {
            VAL(label_key);
        } else if (!strcmp(a, "--start-id")) {
            NUM64(a, start_id);
        } else if (!strcmp(a, "--limit")) {
            NUM64(a, limit);
        } else if (!strcmp(a, "--chunk")) {
            NUM64(a, chunk);
        } else if (a[0] == '-' && a[1]) {
            return USAGE("import: unknown option '%s'", a);
        } else if (!file) {
            file = a;
        } else {
            return USAGE("import: one input file at a time");
        }
    }
    if (!file) return USAGE("import: name the input file");
    if (fmt == FMT_IVECS) return USAGE("import: .ivecs files hold ids (--ids), not vectors");
    iqdb *db;
    int code = get_db(c, 1, &db);
    if (code) return code;
    iqdb_stats st = {.struct_size = sizeof st};
    iqdb_stats_get(db, &st);
    uint64_t before = st.count;

    /* 1. Stage: read and validate everything before the first write. */
    cli_records r;
    cli_err e;
    double t0 = cli_now();
    if (cli_read_vectors(file, fmt, st.dim, &r, &e))
        return done(c, cli_error(EXIT_INPUT, "%s", e.msg));
    if (limit) cli_records_truncate(&r, (size_t)limit);
    if (ids_file) {
        iqdb_id *ids;
        size_t n_ids;
        if (r.ids)
            code = cli_error(EXIT_INPUT, "%s already carries ids; drop --ids", file);
        else if (cli_read_id_ivecs(ids_file, &ids, &n_ids, &e))
            code = cli_error(EXIT_INPUT, "%s", e.msg);
        else if (n_ids < r.n) {
            free(ids);
            code = cli_error(EXIT_INPUT, "%s: %zu ids for %zu vectors", ids_file, n_ids, r.n);
        } else {
            r.ids = ids;
        }
    }
    if (!code && labels) {
        unsigned char *lab;
        size_t n_lab;
        if (cli_read_idx1(labels, &lab, &n_lab, &e)) {
            code = cli_error(EXIT_INPUT, "%s", e.msg);
        } else if (n_lab < r.n) {
            code = cli_error(EXIT_INPUT, "%s: %zu labels for %zu vectors", labels, n_lab, r.n);
            free(lab);
        } else {
            if (!r.metas) r.metas = calloc(r.n ? r.n : 1, sizeof *r.metas);
            if (!r.metas) code = cli_error(EXIT_FAIL, "out of memory");
            for (size_t i = 0; i < r.n && !code; i++) {
                int rc = r.metas[i] ? IQDB_OK : iqdb_meta_create(NULL, &r.metas[i]);
                if (rc == IQDB_OK) rc = iqdb_meta_set_int(r.metas[i], label_key, lab[i]);
                if (rc != IQDB_OK) code = cli_lib_error(NULL, rc, "--label-key");
            }
            free(lab);
        }
    }
    if (!code && !r.ids) {
        r.ids = malloc((r.n ? r.n : 1) * sizeof *r.ids);
        if (!r.ids) code = cli_error(EXIT_FAIL, "out of memory");
        for (size_t i = 0; r.ids && i < r.n; i++) r.ids[i] = start_id + i;
    }
    if (code) {
        cli_records_free(&r);
        return done(c, code);
    }
    double t_read = cli_now() - t0;

    /* 2. Apply in chunks of `chunk` records (and at most 256 MiB: next_batch). Each
     * chunk is one all-or-nothing batch; if a later chunk fails, the earlier ones are rolled
     * back: their new ids deleted and the records they replaced put back. */
    if (!chunk) chunk = 1;
    saved s;
    memset(&s, 0, sizeof s);
    int rc = IQDB_OK;
    if (next_batch(&r, 0, (size_t)chunk) < r.n) rc = save_prior(db, r.ids, r.n, r.dim, &s);
    if (rc != IQDB_OK) {
        saved_free(&s, r.n);
        cli_records_free(&r);
        return done(c, cli_lib_error(db, rc, "import: reading the records it would replace"));
    }
    cli_progress pg;
    cli_progress_start(&pg, "import", r.n);
    t0 = cli_now();
    size_t at = 0, batch = 0;
    /* Fault injection for the tests of the rollback (docs/testing.md): the Nth batch fails
     * with IQDB_IOERR_WRITE instead of being written. */
    const char *fail_env = getenv("IQDB_CLI_TEST_FAIL_BATCH");
    size_t fail_at = fail_env ? (size_t)strtoul(fail_env, NULL, 10) : 0;
    while (at < r.n) {
        size_t m = next_batch(&r, at, (size_t)chunk);
        if (++batch == fail_at)
            rc = IQDB_IOERR_WRITE;
        else
            rc = iqdb_upsert_batch(db, m, r.ids + at, r.vecs + at * r.dim,
                                   r.metas ? (const iqdb_meta *const *)(r.metas + at) : NULL);
        if (rc != IQDB_OK) break;
        at += m;
        cli_progress_update(&pg, at);
    }
    cli_progress_end(&pg);
    double t_write = cli_now() - t0;
    if (rc != IQDB_OK) {
        char what[200];
        snprintf(what, sizeof what, "import of %s: the batch of records %zu..%zu", file, at,
                 at + next_batch(&r, at, (size_t)chunk) - 1);
        code = cli_lib_error(db, rc, what);
        if (at > 0) {
            size_t undone;
            int rb = rollback(db, r.ids, at, &s, &undone);
            if (rb != IQDB_OK) {
                cli_lib_error(db, rb, "import: rolling back the earlier batches");
                code = cli_error(EXIT_PARTIAL,
                                 "import: records 0..%zu of %s were written and could not all be "
                                 "rolled back: the database holds part of this import",
                                 at - 1, file);
            } else {
                cli_error(code,
                          "import: rolled back the %zu records already written (%zu new "
                          "ids deleted, %zu replaced records restored); nothing imported",
                          at, undone, s.n);
            }
        }
        saved_free(&s, r.n);
        cli_records_free(&r);
        return done(c, code);
    }
    iqdb_stats_get(db, &st);
    if (g_cli.json)
        printf("{\"imported\":%zu,\"count_before\":%llu,\"count\":%llu,\"read_seconds\":%.3f,"
               "\"write_seconds\":%.3f}\n",
               r.n, (unsigned long long)before, (unsigned long long)st.count, t_read, t_write);
    else
        info_line("imported %zu records from %s (%s) in %.2f s + %.2f s; %llu records now\n", r.n,
                  file, cli_format_name(fmt ? fmt : cli_format_guess(file)), t_read, t_write,
                  (unsigned long long)st.count);
    saved_free(&s, r.n);
    cli_records_free(&r);
    return done(c, EXIT_OK);
}

/* ---- search ---------------------------------------------------------------------------------- */

static void print_hits(iqdb *db, size_t q, const iqdb_hit *h, size_t n,
                       const iqdb_search_info *info, int with_meta) {
    if (g_cli.json) {
        printf("{\"query\":%zu,\"hits\":[", q);
        for (size_t i = 0; i < n; i++) {
            printf("%s{\"id\":%llu,\"distance\":", i ? "," : "", (unsigned long long)h[i].id);
            cli_put_float(stdout, h[i].distance);
            if (with_meta) {
                iqdb_meta *m = NULL;
                iqdb_get(db, h[i].id, NULL, &m);
                fputs(",\"metadata\":", stdout);
                cli_json_meta(stdout, m);
                iqdb_meta_destroy(m);
            }
            putchar('}');
        }
        printf("]");
        if (info)
            printf(",\"complete\":%s,\"strategy\":\"%s\",\"distances\":%llu",
                   info->complete ? "true" : "false", cli_strategy_name((int)info->strategy),
                   (unsigned long long)info->n_distances);
        printf("}\n");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        printf("%zu\t%zu\t%llu\t", q, i + 1, (unsigned long long)h[i].id);
        cli_put_float(stdout, h[i].distance);
        if (with_meta) {
            iqdb_meta *m = NULL;
            iqdb_get(db, h[i].id, NULL, &m);
            putchar('\t');
            cli_json_meta(stdout, m);
            iqdb_meta_destroy(m);
        }
        putchar('\n');
    }
}

static int cmd_search(ctx *c, int argc, char **argv) {
    const char *vec_text = NULL, *qfile = NULL, *filter_text = NULL, *v;
    cli_format fmt = FMT_AUTO;
    uint64_t k = 10, max_q = 0;
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    int with_meta = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--vector") || !strcmp(a, "-v")) {
            VAL(vec_text);
        } else if (!strcmp(a, "--queries")) {
            VAL(qfile);
        } else if (!strcmp(a, "--format")) {
            VAL(v);
            if ((fmt = cli_format_parse(v)) == FMT_AUTO) return USAGE("--format: '%s'", v);
        } else if (!strcmp(a, "-k") || !strcmp(a, "--k")) {
            NUM64(a, k);
        } else if (!strcmp(a, "--filter")) {
            VAL(filter_text);
        } else if (!strcmp(a, "--ef")) {
            NUM32(a, p.ef);
        } else if (!strcmp(a, "--probes")) {
            NUM32(a, p.n_probes);
        } else if (!strcmp(a, "--exact")) {
            p.exact = 1;
        } else if (!strcmp(a, "--meta")) {
            with_meta = 1;
        } else if (!strcmp(a, "--max-queries")) {
            NUM64(a, max_q);
        } else {
            return USAGE("search: unknown argument '%s'", a);
        }
    }
    if (!vec_text == !qfile) return USAGE("search: give --vector V or --queries FILE");
    if (k > (1u << 24)) return USAGE("-k: at most 16777216");
    iqdb *db;
    int code = get_db(c, 0, &db);
    if (code) return code;
    iqdb_stats st = {.struct_size = sizeof st};
    iqdb_stats_get(db, &st);
    iqdb_filter *f = NULL;
    if (filter_text) {
        size_t off = 0;
        int rc = iqdb_filter_parse(NULL, filter_text, strlen(filter_text), &f, &off);
        if (rc != IQDB_OK) {
            char what[64];
            snprintf(what, sizeof what, "--filter, at byte %zu", off);
            return done(c, cli_lib_error(NULL, rc, what));
        }
        p.filter = f;
    }
    cli_records q;
    memset(&q, 0, sizeof q);
    cli_err e;
    if (vec_text) {
        q.n = 1, q.dim = st.dim;
        q.vecs = malloc(st.dim * sizeof *q.vecs);
        if (!q.vecs) snprintf(e.msg, sizeof e.msg, "out of memory");
        if (!q.vecs || cli_parse_vector(vec_text, q.vecs, st.dim, &e)) {
            iqdb_filter_destroy(f);
            cli_records_free(&q);
            return done(c, cli_error(EXIT_USAGE, "%s", e.msg));
        }
    } else if (cli_read_vectors(qfile, fmt, st.dim, &q, &e)) {
        iqdb_filter_destroy(f);
        return done(c, cli_error(EXIT_INPUT, "%s", e.msg));
    }
    if (max_q) cli_records_truncate(&q, (size_t)max_q);
    iqdb_hit *hits = malloc((k ? k : 1) * sizeof *hits);
    int rc = hits ? IQDB_OK : IQDB_NOMEM;
    for (size_t i = 0; i < q.n && rc == IQDB_OK; i++) {
        size_t n;
        iqdb_search_info info = {.struct_size = sizeof info};
        rc = iqdb_search(db, q.vecs + i * q.dim, (size_t)k, &p, hits, &n, &info);
        if (rc == IQDB_OK) print_hits(db, i, hits, n, &info, with_meta);
    }
    if (rc != IQDB_OK) code = cli_lib_error(db, rc, "search");
    free(hits);
    iqdb_filter_destroy(f);
    cli_records_free(&q);
    return done(c, code);
}

/* ---- get, delete, count ---------------------------------------------------------------------- */

static int collect_ids(int argc, char **argv, const char *cmd, iqdb_id **ids, size_t *n) {
    *ids = malloc((size_t)(argc ? argc : 1) * sizeof **ids);
    *n = 0;
    if (!*ids) return cli_error(EXIT_FAIL, "out of memory");
    for (int i = 0; i < argc; i++) {
        uint64_t id;
        if (parse_u64(argv[i], &id)) {
            free(*ids);
            return USAGE("%s: '%s' is not an id (0 .. 2^64-1)", cmd, argv[i]);
        }
        (*ids)[(*n)++] = id;
    }
    if (!*n) {
        free(*ids);
        return USAGE("%s: name at least one id", cmd);
    }
    return EXIT_OK;
}

static int cmd_get(ctx *c, int argc, char **argv) {
    iqdb_id *ids;
    size_t n;
    int code = collect_ids(argc, argv, "get", &ids, &n);
    if (code) return code;
    iqdb *db;
    if ((code = get_db(c, 0, &db))) {
        free(ids);
        return code;
    }
    iqdb_stats st = {.struct_size = sizeof st};
    iqdb_stats_get(db, &st);
    float *vec = malloc(st.dim * sizeof *vec);
    for (size_t i = 0; i < n && vec; i++) {
        iqdb_meta *m = NULL;
        int rc = iqdb_get(db, ids[i], vec, &m);
        if (rc == IQDB_NOTFOUND) {
            code =
                cli_error(EXIT_NOTFOUND, "get: no record with id %llu", (unsigned long long)ids[i]);
            continue;
        }
        if (rc != IQDB_OK) {
            code = cli_lib_error(db, rc, "get");
            break;
        }
        if (g_cli.json) {
            printf("{\"id\":%llu,\"vector\":[", (unsigned long long)ids[i]);
            for (uint32_t j = 0; j < st.dim; j++) {
                if (j) putchar(',');
                cli_put_float(stdout, vec[j]);
            }
            fputs("],\"metadata\":", stdout);
            cli_json_meta(stdout, m);
            puts("}");
        } else {
            printf("%llu\t", (unsigned long long)ids[i]);
            for (uint32_t j = 0; j < st.dim; j++) {
                if (j) putchar(',');
                cli_put_float(stdout, vec[j]);
            }
            putchar('\t');
            cli_json_meta(stdout, m);
            putchar('\n');
        }
        iqdb_meta_destroy(m);
    }
    if (!vec) code = cli_error(EXIT_FAIL, "out of memory");
    free(vec), free(ids);
    return done(c, code);
}

static int cmd_delete(ctx *c, int argc, char **argv) {
    iqdb_id *ids;
    size_t n, deleted = 0;
    int code = collect_ids(argc, argv, "delete", &ids, &n);
    if (code) return code;
    iqdb *db;
    if ((code = get_db(c, 1, &db))) {
        free(ids);
        return code;
    }
    for (size_t i = 0; i < n; i++) {
        int existed;
        int rc = iqdb_delete(db, ids[i], &existed);
        if (rc != IQDB_OK) {
            code = cli_lib_error(db, rc, "delete");
            break;
        }
        deleted += (size_t)existed;
    }
    if (g_cli.json)
        printf("{\"deleted\":%zu,\"absent\":%zu}\n", deleted, code ? 0 : n - deleted);
    else
        info_line("deleted %zu of %zu ids (%zu absent)\n", deleted, n, code ? 0 : n - deleted);
    free(ids);
    return done(c, code);
}

static int cmd_count(ctx *c, int argc, char **argv) {
    (void)argv;
    if (argc) return USAGE("count takes no arguments");
    iqdb *db;
    int code = get_db(c, 0, &db);
    if (code) return code;
    uint64_t n = 0;
    iqdb_count(db, &n);
    if (g_cli.json)
        printf("{\"count\":%llu}\n", (unsigned long long)n);
    else
        printf("%llu\n", (unsigned long long)n);
    return done(c, EXIT_OK);
}

/* ---- info, stats ----------------------------------------------------------------------------- */

static const char *sync_name(iqdb_sync s) {
    switch (s) {
    case IQDB_SYNC_DEFAULT:
    case IQDB_SYNC_ALWAYS: return "always";
    case IQDB_SYNC_PERIODIC: return "periodic";
    case IQDB_SYNC_NEVER: return "never";
    }
    return "unknown";
}

static int cmd_info(ctx *c, int argc, char **argv, int full) {
    (void)argv;
    if (argc) return USAGE("%s takes no arguments", full ? "stats" : "info");
    iqdb *db;
    int code = get_db(c, 0, &db);
    if (code) return code;
    iqdb_stats s = {.struct_size = sizeof s};
    int rc = iqdb_stats_get(db, &s);
    if (rc != IQDB_OK) return done(c, cli_lib_error(db, rc, "stats"));
    struct {
        const char *k;
        unsigned long long v;
        int full_only;
    } nums[] = {{"count", s.count, 0},
                {"dim", s.dim, 0},
                {"threads", s.threads, 1},
                {"slots", s.slots, 1},
                {"meta_keys", s.meta_keys, 0},
                {"mem_total", s.mem_total, 0},
                {"mem_vectors", s.mem_vectors, 1},
                {"mem_rows", s.mem_rows, 1},
                {"mem_meta", s.mem_meta, 1},
                {"mem_index", s.mem_index, 1},
                {"mem_scratch", s.mem_scratch, 1},
                {"durable", (unsigned long long)s.durable, 0},
                {"read_only", (unsigned long long)s.read_only, 1},
                {"fatal", (unsigned long long)s.fatal, 1},
                {"last_lsn", s.last_lsn, 1},
                {"durable_lsn", s.durable_lsn, 1},
                {"checkpoint_lsn", s.checkpoint_lsn, 1},
                {"generation", s.generation, 0},
                {"wal_bytes", s.wal_bytes, 0},
                {"wal_syncs", s.wal_syncs, 1},
                {"checkpoints", s.checkpoints, 1}};
    const char *strs[][2] = {{"path", c->path ? c->path : ":memory:"},
                             {"metric", cli_metric_name(s.metric)},
                             {"index", cli_index_name(s.index)},
                             {"simd", iqdb_simd_name(s.simd)},
                             {"sync", s.durable ? sync_name(s.sync) : "none"},
                             {"version", iqdb_version()}};
    if (g_cli.json) putchar('{');
    int first = 1;
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++) {
        if (g_cli.json) {
            printf("%s\"%s\":", first ? "" : ",", strs[i][0]);
            cli_json_str(stdout, strs[i][1], strlen(strs[i][1]));
        } else {
            printf("%-15s %s\n", strs[i][0], strs[i][1]);
        }
        first = 0;
    }
    for (size_t i = 0; i < sizeof nums / sizeof *nums; i++) {
        if (nums[i].full_only && !full) continue;
        if (g_cli.json)
            printf(",\"%s\":%llu", nums[i].k, nums[i].v);
        else
            printf("%-15s %llu\n", nums[i].k, nums[i].v);
    }
    if (g_cli.json) puts("}");
    return done(c, EXIT_OK);
}

/* ---- check, checkpoint, compact -------------------------------------------------------------- */

static int cmd_check(ctx *c, int argc, char **argv) {
    (void)argv;
    if (argc) return USAGE("check takes no arguments");
    iqdb *db;
    int code = get_db(c, 0, &db);
    if (code) return code;
    double t0 = cli_now();
    int rc = iqdb_check(db);
    if (rc != IQDB_OK) return done(c, cli_lib_error(db, rc, "check"));
    uint64_t n = 0;
    iqdb_count(db, &n);
    if (g_cli.json)
        printf("{\"ok\":true,\"count\":%llu,\"seconds\":%.3f}\n", (unsigned long long)n,
               cli_now() - t0);
    else
        info_line("ok: %llu records; invariants and checksums verified in %.2f s\n",
                  (unsigned long long)n, cli_now() - t0);
    return done(c, EXIT_OK);
}

static int cmd_checkpoint(ctx *c, int argc, char **argv, int compact) {
    (void)argv;
    if (argc) return USAGE("%s takes no arguments", compact ? "compact" : "checkpoint");
    iqdb *db;
    int code = get_db(c, 1, &db);
    if (code) return code;
    double t0 = cli_now();
    if (compact) {
#ifdef IQDB_CLI_HAVE_OPTIMIZE
        int rc = iqdb_optimize(db);
        if (rc != IQDB_OK) return done(c, cli_lib_error(db, rc, "compact (iqdb_optimize)"));
#else
        return done(c, cli_error(EXIT_FAIL, "compact: IQDB_UNSUPPORTED: this libiqdb has no "
                                            "iqdb_optimize (use checkpoint)"));
#endif
    }
    int rc = iqdb_checkpoint(db);
    if (rc != IQDB_OK) return done(c, cli_lib_error(db, rc, "checkpoint"));
    if (g_cli.json)
        printf("{\"ok\":true,\"seconds\":%.3f}\n", cli_now() - t0);
    else
        info_line("%s done in %.2f s\n", compact ? "compact" : "checkpoint", cli_now() - t0);
    return done(c, EXIT_OK);
}

/* ---- export ---------------------------------------------------------------------------------- */

static int cmp_hit_id(const void *a, const void *b) {
    const iqdb_hit *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Every record, in id order: an exact search with k = count from the zero vector lists them
 * all (the API has no cursor; the search allocates nothing k-sized). */
static int cmd_export(ctx *c, int argc, char **argv) {
    const char *file = NULL, *v;
    cli_format fmt = FMT_AUTO;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--format")) {
            VAL(v);
            if ((fmt = cli_format_parse(v)) == FMT_AUTO) return USAGE("--format: '%s'", v);
        } else if (a[0] == '-' && a[1]) {
            return USAGE("export: unknown option '%s'", a);
        } else if (!file) {
            file = a;
        } else {
            return USAGE("export: one output file");
        }
    }
    if (!file) return USAGE("export: name the output file (- for stdout)");
    if (fmt == FMT_AUTO && cli_format_guess(file) == FMT_AUTO)
        return USAGE("export: name the format with --format (fvecs, npy, csv, jsonl)");
    iqdb *db;
    int code = get_db(c, 0, &db);
    if (code) return code;
    iqdb_stats st = {.struct_size = sizeof st};
    iqdb_stats_get(db, &st);
    size_t n = (size_t)st.count;
    iqdb_hit *hits = malloc((n ? n : 1) * sizeof *hits);
    float *zero = calloc(st.dim, sizeof *zero), *vec = malloc(st.dim * sizeof *vec);
    if (!hits || !zero || !vec) {
        free(hits), free(zero), free(vec);
        return done(c, cli_error(EXIT_FAIL, "out of memory"));
    }
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    p.exact = 1;
    size_t got = 0;
    int rc = iqdb_search(db, zero, n, &p, hits, &got, NULL);
    cli_writer *w = NULL;
    cli_err e;
    if (rc != IQDB_OK) {
        code = cli_lib_error(db, rc, "export: listing the records");
    } else if (cli_writer_open(&w, file, fmt, st.dim, got, &e)) {
        code = cli_error(EXIT_FAIL, "%s", e.msg);
    } else {
        qsort(hits, got, sizeof *hits, cmp_hit_id);
        cli_progress pg;
        cli_progress_start(&pg, "export", got);
        for (size_t i = 0; i < got && !code; i++) {
            iqdb_meta *m = NULL;
            rc = iqdb_get(db, hits[i].id, vec, &m);
            if (rc != IQDB_OK)
                code = cli_lib_error(db, rc, "export: get");
            else
                cli_writer_put(w, hits[i].id, vec, m, &e);
            iqdb_meta_destroy(m);
            if ((i & 1023) == 0) cli_progress_update(&pg, i);
        }
        cli_progress_end(&pg);
        if (cli_writer_close(w, &e) && !code) code = cli_error(EXIT_FAIL, "%s", e.msg);
        if (!code && strcmp(file, "-")) {
            if (g_cli.json)
                printf("{\"exported\":%zu}\n", got);
            else
                info_line("exported %zu records to %s\n", got, file);
        }
    }
    free(hits), free(zero), free(vec);
    return done(c, code);
}

/* ---- bench ----------------------------------------------------------------------------------- */

static int cmd_bench(ctx *c, int argc, char **argv) {
    int has_base = 0;
    for (int i = 1; i < argc; i++) has_base |= !strcmp(argv[i], "--base");
    iqdb *db = NULL;
    if (!has_base) {
        int code = get_db(c, 0, &db);
        if (code) return code;
    }
    return done(c, cli_bench(db, argc, argv));
}

/* ---- dispatch and shell ---------------------------------------------------------------------- */

static const char *const help_text =
    "usage: iqdb [--json] [-q] [--threads N] [--sync P] <command> DB [options]\n"
    "\n"
    "  create DB --dim N [--metric l2|cosine|dot|l1|hamming] [--index flat|hnsw|ivf]\n"
    "            [--m N --ef-construction N --ef-search N --filter-widen N --seed N]\n"
    "            [--lists N --probes N --train-sample N]\n"
    "            [--sync always|periodic|never --sync-period MS]\n"
    "            [--compression none|zstd|lz4 --level N] [--checkpoint-bytes N]\n"
    "  import DB FILE [--format fvecs|bvecs|npy|csv|jsonl|idx] [--ids FILE.ivecs]\n"
    "            [--labels FILE.idx1 --label-key KEY] [--start-id N] [--limit N] [--chunk N]\n"
    "  search DB (--vector V | --queries FILE [--format F]) [-k N] [--filter TEXT]\n"
    "            [--ef N] [--probes N] [--exact] [--meta] [--max-queries N]\n"
    "  get DB ID...          delete DB ID...        count DB\n"
    "  info DB               stats DB               check DB\n"
    "  checkpoint DB         compact DB\n"
    "  export DB FILE [--format fvecs|npy|csv|jsonl]\n"
    "  bench [DB] --queries FILE [--base FILE --index K ...] [--gt FILE.ivecs] [-k N]\n"
    "            [--ef LIST] [--probes LIST] [--filter TEXT] [--csv F] [--json-out F] [--svg F]\n"
    "  shell [DB] [--bail]   commands from stdin, one per line, without the DB argument\n"
    "  help | version\n"
    "\n"
    "Exit codes: 0 ok, 1 library error, 2 usage, 3 bad input file, 4 not found, 5 corrupt,\n"
    "6 busy, 7 partial import. Reference: docs/cli.md.\n";

static int run_shell(ctx *c, int argc, char **argv);

/* Runs one command; argv[0] is its name, the DB (if any) is already in c->path. */
static int dispatch(ctx *c, int argc, char **argv) {
    const char *cmd = argv[0];
    argc--, argv++;
    if (!strcmp(cmd, "create")) return cmd_create(c, argc, argv);
    if (!strcmp(cmd, "import")) return cmd_import(c, argc, argv);
    if (!strcmp(cmd, "search")) return cmd_search(c, argc, argv);
    if (!strcmp(cmd, "get")) return cmd_get(c, argc, argv);
    if (!strcmp(cmd, "delete")) return cmd_delete(c, argc, argv);
    if (!strcmp(cmd, "count")) return cmd_count(c, argc, argv);
    if (!strcmp(cmd, "info")) return cmd_info(c, argc, argv, 0);
    if (!strcmp(cmd, "stats")) return cmd_info(c, argc, argv, 1);
    if (!strcmp(cmd, "check")) return cmd_check(c, argc, argv);
    if (!strcmp(cmd, "checkpoint")) return cmd_checkpoint(c, argc, argv, 0);
    if (!strcmp(cmd, "compact")) return cmd_checkpoint(c, argc, argv, 1);
    if (!strcmp(cmd, "export")) return cmd_export(c, argc, argv);
    if (!strcmp(cmd, "bench")) return cmd_bench(c, argc + 1, argv - 1);
    if (!strcmp(cmd, "help")) {
        fputs(help_text, stdout);
        return EXIT_OK;
    }
    return USAGE("unknown command '%s' (iqdb help)", cmd);
}

/* Splits a shell line into words: blanks separate; '...' is literal; "..." allows \" and \\. */
static int split_line(char *s, char **w, int cap, int *n) {
    *n = 0;
    char *out = s;
    while (*s) {
        while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n') s++;
        if (!*s || *s == '#') break;
        if (*n == cap) return -1;
        w[(*n)++] = out;
        while (*s && *s != ' ' && *s != '\t' && *s != '\r' && *s != '\n') {
            if (*s == '\'') {
                s++;
                while (*s && *s != '\'') *out++ = *s++;
                if (!*s) return -2;
                s++;
            } else if (*s == '"') {
                s++;
                while (*s && *s != '"') {
                    if (*s == '\\' && (s[1] == '"' || s[1] == '\\')) s++;
                    *out++ = *s++;
                }
                if (!*s) return -2;
                s++;
            } else {
                *out++ = *s++;
            }
        }
        if (*s) s++;
        *out++ = 0;
    }
    return 0;
}

static int run_shell(ctx *c, int argc, char **argv) {
    int bail = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--bail"))
            bail = 1;
        else
            return USAGE("shell: unknown option '%s'", argv[i]);
    }
    c->shell = 1;
    int tty = isatty(0), last_err = EXIT_OK;
    if (c->path && access(c->path, F_OK) == 0) {
        iqdb *db;
        int code = get_db(c, 1, &db);
        if (code) return code;
    }
    if (tty && !g_cli.quiet)
        fprintf(stderr, "iqdb %s shell on %s; 'help' lists the commands, 'quit' leaves\n",
                iqdb_version(), c->path ? c->path : "an in-memory database");
    char *line = NULL;
    size_t cap = 0;
    for (;;) {
        if (tty) fputs("iqdb> ", stderr), fflush(stderr);
        if (getline(&line, &cap, stdin) < 0) break;
        char *w[256];
        int n, s = split_line(line, w, 256, &n);
        if (s) {
            last_err = USAGE(s == -1 ? "too many words" : "unterminated quote");
            if (bail) break;
            continue;
        }
        if (n == 0) continue;
        if (!strcmp(w[0], "quit") || !strcmp(w[0], "exit") || !strcmp(w[0], ".quit")) break;
        if (!strcmp(w[0], "shell")) {
            last_err = USAGE("already in the shell");
        } else {
            int code = dispatch(c, n, w);
            if (code) last_err = code;
        }
        fflush(stdout);
        if (last_err && bail) break;
    }
    free(line);
    if (c->db) {
        int rc = iqdb_close(c->db);
        c->db = NULL;
        if (rc != IQDB_OK) last_err = cli_lib_error(NULL, rc, "close");
    }
    return last_err;
}

int main(int argc, char **argv) {
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json")) {
            g_cli.json = 1;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            g_cli.quiet = 1;
        } else if (!strcmp(a, "--threads")) {
            if (i + 1 >= argc || parse_u32(argv[i + 1], &g_cli.threads))
                return USAGE("--threads needs a number");
            i++;
        } else if (!strcmp(a, "--sync")) {
            const char *v = i + 1 < argc ? argv[++i] : "";
            if (!strcasecmp(v, "always"))
                g_cli.sync = IQDB_SYNC_ALWAYS;
            else if (!strcasecmp(v, "periodic"))
                g_cli.sync = IQDB_SYNC_PERIODIC;
            else if (!strcasecmp(v, "never"))
                g_cli.sync = IQDB_SYNC_NEVER;
            else
                return USAGE("--sync: '%s' (always, periodic, never)", v);
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(help_text, stdout);
            return EXIT_OK;
        } else if (!strcmp(a, "--version")) {
            printf("iqdb %s\n", iqdb_version());
            return EXIT_OK;
        } else {
            return USAGE("unknown option '%s' (iqdb help)", a);
        }
    }
    g_cli.progress = !g_cli.quiet && isatty(2);
    if (i >= argc) {
        fputs(help_text, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[i];
    if (!strcmp(cmd, "help")) {
        fputs(help_text, stdout);
        return EXIT_OK;
    }
    if (!strcmp(cmd, "version")) {
        printf("iqdb %s\n", iqdb_version());
        return EXIT_OK;
    }
    ctx c = {0};
    int rest = i + 1;
    /* The DB argument: required except for shell (optional) and bench (optional). */
    int optional = !strcmp(cmd, "shell") || !strcmp(cmd, "bench");
    if (rest < argc && (argv[rest][0] != '-' || !argv[rest][1])) {
        c.path = argv[rest++];
    } else if (!optional) {
        return USAGE("%s: name the database file (iqdb help)", cmd);
    }
    if (!strcmp(cmd, "shell")) return run_shell(&c, argc - rest, argv + rest);
    /* dispatch wants argv[0] = the command: reuse the slot before the options. */
    argv[rest - 1] = (char *)cmd;
    return dispatch(&c, argc - rest + 1, argv + rest - 1);
}
