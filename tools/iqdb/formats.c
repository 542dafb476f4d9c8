/*
 * formats.c — the file formats of the `iqdb` tool: readers for .fvecs / .bvecs / .ivecs, NumPy
 * .npy (float32, 2-D, C order), CSV, JSONL and IDX (the MNIST / Fashion-MNIST layout), and
 * writers for .fvecs, .npy, CSV and JSONL.
 *
 * A reader loads and validates the whole file before returning: right dimension everywhere,
 * every value finite, nothing truncated, nothing trailing. Its error names the file, the record
 * and the byte or line. A name ending in ".gz" is decompressed through `gzip -dc` (Debian's
 * dataset-fashion-mnist ships its IDX files gzip-compressed); gzip's exit status is checked,
 * so a damaged archive is an error, not a short file. Binary layouts are little-endian (IDX is
 * big-endian, as its definition says) and decoded byte by byte, so the host's order does not
 * matter.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

/* ---- format names ---------------------------------------------------------------------------- */

static const char *const fmt_names[] = {"auto", "fvecs", "bvecs", "ivecs",
                                        "npy",  "csv",   "jsonl", "idx"};

const char *cli_format_name(cli_format f) { return fmt_names[(int)f]; }

cli_format cli_format_parse(const char *s) {
    for (int i = 1; i < (int)(sizeof fmt_names / sizeof *fmt_names); i++)
        if (!strcasecmp(s, fmt_names[i])) return (cli_format)i;
    if (!strcasecmp(s, "ndjson")) return FMT_JSONL;
    return FMT_AUTO;
}

static int ends_with(const char *s, size_t n, const char *suf) {
    size_t l = strlen(suf);
    return n >= l && !strncasecmp(s + n - l, suf, l);
}

cli_format cli_format_guess(const char *path) {
    size_t n = strlen(path);
    if (ends_with(path, n, ".gz")) n -= 3;
    if (ends_with(path, n, ".fvecs")) return FMT_FVECS;
    if (ends_with(path, n, ".bvecs")) return FMT_BVECS;
    if (ends_with(path, n, ".ivecs")) return FMT_IVECS;
    if (ends_with(path, n, ".npy")) return FMT_NPY;
    if (ends_with(path, n, ".csv")) return FMT_CSV;
    if (ends_with(path, n, ".jsonl") || ends_with(path, n, ".ndjson")) return FMT_JSONL;
    if (ends_with(path, n, ".idx") || ends_with(path, n, "-idx3-ubyte") ||
        ends_with(path, n, ".idx3-ubyte"))
        return FMT_IDX;
    return FMT_AUTO;
}

/* ---- input: plain or through gzip ------------------------------------------------------------ */

typedef struct input {
    FILE *f;
    pid_t gz; /* 0 when the file is read directly */
    const char *path;
    uint64_t off;    /* bytes consumed (of the decompressed stream) */
    uint64_t size;   /* the file's size when read directly, else 0 (unknown) */
    cli_progress pg; /* "read": bytes consumed */
} input;

static void in_progress(input *in) { cli_progress_update(&in->pg, in->off); }

static int in_open(input *in, const char *path, cli_err *e) {
    memset(in, 0, sizeof *in);
    in->path = path;
    size_t n = strlen(path);
    if (!ends_with(path, n, ".gz")) {
        in->f = fopen(path, "rb");
        if (!in->f) {
            cli_errf(e, "%s: %s", path, strerror(errno));
            return -1;
        }
        struct stat st;
        if (fstat(fileno(in->f), &st) == 0 && S_ISREG(st.st_mode)) in->size = (uint64_t)st.st_size;
        cli_progress_start(&in->pg, "read", in->size);
        return 0;
    }
    if (access(path, R_OK) != 0) {
        cli_errf(e, "%s: %s", path, strerror(errno));
        return -1;
    }
    int fd[2];
    if (pipe(fd)) {
        cli_errf(e, "%s: pipe: %s", path, strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        cli_errf(e, "%s: fork: %s", path, strerror(errno));
        close(fd[0]), close(fd[1]);
        return -1;
    }
    if (pid == 0) { /* the child: gzip -dc -- path > pipe (no shell, so any name is safe) */
        dup2(fd[1], 1);
        close(fd[0]), close(fd[1]);
        execlp("gzip", "gzip", "-dc", "--", path, (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    in->f = fdopen(fd[0], "rb");
    if (!in->f) {
        close(fd[0]);
        waitpid(pid, NULL, 0);
        cli_errf(e, "%s: fdopen: %s", path, strerror(errno));
        return -1;
    }
    in->gz = pid;
    cli_progress_start(&in->pg, "read", 0);
    return 0;
}

/* Closes; with `check`, a failed gzip is an error (a damaged or truncated archive). */
static int in_close(input *in, int check, cli_err *e) {
    int bad = 0;
    if (in->f) cli_progress_end(&in->pg);
    if (in->f) {
        if (in->gz && check) { /* drain so gzip can finish and report */
            char buf[4096];
            while (fread(buf, 1, sizeof buf, in->f) > 0) bad = 1;
            if (bad) cli_errf(e, "%s: data after the end of the content", in->path);
        }
        fclose(in->f);
    }
    if (in->gz) {
        int st = 0;
        waitpid(in->gz, &st, 0);
        in->gz = 0;
        if (check && !bad && (!WIFEXITED(st) || WEXITSTATUS(st) != 0)) {
            cli_errf(e, "%s: gzip could not decompress it (damaged or truncated archive%s)",
                     in->path, WIFEXITED(st) && WEXITSTATUS(st) == 127 ? ", or no gzip" : "");
            bad = 1;
        }
    }
    in->f = NULL;
    return bad ? -1 : 0;
}

/* Reads exactly n bytes; returns n, or the short count at the end of the stream. */
static size_t in_read(input *in, void *buf, size_t n) {
    size_t got = fread(buf, 1, n, in->f);
    in->off += got;
    in_progress(in);
    return got;
}

static uint32_t le32(const unsigned char *b) {
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}
static uint32_t be32(const unsigned char *b) {
    return (uint32_t)b[3] | (uint32_t)b[2] << 8 | (uint32_t)b[1] << 16 | (uint32_t)b[0] << 24;
}
static float lef32(const unsigned char *b) {
    uint32_t u = le32(b);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---- the records being built ----------------------------------------------------------------- */

static float *rec_push(cli_records *r, cli_err *e, const char *path) {
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 1024;
        float *v = realloc(r->vecs, cap * r->dim * sizeof *v);
        if (!v) goto oom;
        r->vecs = v;
        if (r->ids) {
            iqdb_id *ids = realloc(r->ids, cap * sizeof *ids);
            if (!ids) goto oom;
            r->ids = ids;
        }
        if (r->metas) {
            iqdb_meta **m = realloc(r->metas, cap * sizeof *m);
            if (!m) goto oom;
            r->metas = m;
            memset(m + r->cap, 0, (cap - r->cap) * sizeof *m);
        }
        r->cap = cap;
    }
    return r->vecs + r->n++ * r->dim;
oom:
    cli_errf(e, "%s: out of memory after %zu records", path, r->n);
    return NULL;
}

static int check_dim(size_t d, size_t want, size_t have, const char *path, const char *where,
                     cli_err *e) {
    if (d == 0 || d > IQDB_MAX_DIM) {
        cli_errf(e, "%s: %s: dimension %zu is out of range (1 .. %u)", path, where, d,
                 IQDB_MAX_DIM);
        return -1;
    }
    if (have && d != have) {
        cli_errf(e, "%s: %s: dimension %zu, but earlier records have %zu", path, where, d, have);
        return -1;
    }
    if (want && d != want) {
        cli_errf(e, "%s: %s: dimension %zu; the database's is %zu (IQDB_DIM)", path, where, d,
                 want);
        return -1;
    }
    return 0;
}

static int check_finite(const float *v, size_t dim, const char *path, const char *where,
                        cli_err *e) {
    for (size_t j = 0; j < dim; j++)
        if (!isfinite(v[j])) {
            cli_errf(e, "%s: %s, component %zu: %s (vectors must be finite: IQDB_INVALID)", path,
                     where, j, isnan(v[j]) ? "NaN" : "infinite");
            return -1;
        }
    return 0;
}

/* ---- .fvecs .bvecs .ivecs -------------------------------------------------------------------- */

static int read_xvecs(input *in, cli_format fmt, size_t want, cli_records *r, cli_err *e) {
    size_t es = fmt == FMT_BVECS ? 1 : 4;
    unsigned char *buf = NULL;
    char where[64];
    for (;;) {
        unsigned char h[4];
        uint64_t at = in->off;
        size_t got = in_read(in, h, 4);
        if (got == 0) break;
        snprintf(where, sizeof where, "record %zu (byte %llu)", r->n, (unsigned long long)at);
        if (got < 4) {
            cli_errf(e, "%s: %s: truncated dimension word", in->path, where);
            goto bad;
        }
        size_t d = le32(h);
        if (check_dim(d, want, r->dim, in->path, where, e)) goto bad;
        if (!r->dim) {
            r->dim = d;
            buf = malloc(d * es);
            if (!buf) goto oom;
        }
        if (in_read(in, buf, d * es) != d * es) {
            cli_errf(e, "%s: %s: truncated (%zu values expected)", in->path, where, d);
            goto bad;
        }
        float *v = rec_push(r, e, in->path);
        if (!v) goto bad;
        for (size_t j = 0; j < d; j++)
            v[j] = fmt == FMT_BVECS   ? (float)buf[j]
                   : fmt == FMT_IVECS ? (float)(int32_t)le32(buf + 4 * j)
                                      : lef32(buf + 4 * j);
        if (check_finite(v, d, in->path, where, e)) goto bad;
    }
    free(buf);
    return 0;
oom:
    cli_errf(e, "%s: out of memory", in->path);
bad:
    free(buf);
    return -1;
}

/* ---- .npy ------------------------------------------------------------------------------------ */

/* Finds `'key':` in the header dict and returns what follows (spaces skipped), or NULL. */
static const char *npy_field(const char *h, const char *key) {
    char pat[32];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(h, pat);
    if (!p) return NULL;
    p += strlen(pat);
    while (*p == ' ') p++;
    if (*p != ':') return NULL;
    p++;
    while (*p == ' ') p++;
    return p;
}

static int read_npy(input *in, size_t want, cli_records *r, cli_err *e) {
    unsigned char pre[12];
    char *h = NULL;
    if (in_read(in, pre, 10) != 10 || memcmp(pre, "\x93NUMPY", 6)) {
        cli_errf(e, "%s: not a .npy file (no \\x93NUMPY magic)", in->path);
        return -1;
    }
    size_t hlen;
    if (pre[6] == 1) {
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
    } else if (pre[6] == 2 || pre[6] == 3) {
        if (in_read(in, pre + 10, 2) != 2) goto trunc;
        hlen = le32(pre + 8);
        if (hlen > (1u << 20)) {
            cli_errf(e, "%s: .npy header of %zu bytes is too large", in->path, hlen);
            return -1;
        }
    } else {
        cli_errf(e, "%s: .npy format version %u is not supported (1, 2, 3)", in->path, pre[6]);
        return -1;
    }
    h = malloc(hlen + 1);
    if (!h) goto oom;
    if (in_read(in, h, hlen) != hlen) goto trunc;
    h[hlen] = 0;
    const char *d = npy_field(h, "descr"), *fo = npy_field(h, "fortran_order"),
               *sh = npy_field(h, "shape");
    if (!d || !fo || !sh) {
        cli_errf(e, "%s: .npy header lacks descr, fortran_order or shape", in->path);
        goto bad;
    }
    if (strncmp(d, "'<f4'", 5)) {
        cli_errf(e, "%s: .npy dtype %.8s is not supported: only little-endian float32 ('<f4')",
                 in->path, d);
        goto bad;
    }
    if (strncmp(fo, "False", 5)) {
        cli_errf(e, "%s: .npy in Fortran order is not supported (save it C-ordered)", in->path);
        goto bad;
    }
    unsigned long long n, dim;
    int used = 0;
    if (sscanf(sh, "(%llu, %llu)%n", &n, &dim, &used) != 2 || !used) {
        cli_errf(e, "%s: .npy shape %.40s is not (rows, dim)", in->path, sh);
        goto bad;
    }
    if (check_dim((size_t)dim, want, 0, in->path, "shape", e)) goto bad;
    if (n > SIZE_MAX / 4 / dim) {
        cli_errf(e, "%s: .npy shape is too large", in->path);
        goto bad;
    }
    r->dim = (size_t)dim;
    r->vecs = malloc((n ? n : 1) * dim * sizeof(float));
    if (!r->vecs) goto oom;
    r->cap = (size_t)n;
    unsigned char buf[4096];
    size_t total = (size_t)(n * dim), k = 0;
    while (k < total) {
        size_t want_b = (total - k) * 4 < sizeof buf ? (total - k) * 4 : sizeof buf;
        size_t got = in_read(in, buf, want_b);
        for (size_t j = 0; j + 4 <= got; j += 4) r->vecs[k++] = lef32(buf + j);
        if (got != want_b) {
            cli_errf(e, "%s: truncated: %zu of %zu float32 values present", in->path, k, total);
            goto bad;
        }
    }
    r->n = (size_t)n;
    for (size_t i = 0; i < r->n; i++) {
        char where[32];
        snprintf(where, sizeof where, "row %zu", i);
        if (check_finite(r->vecs + i * dim, dim, in->path, where, e)) goto bad;
    }
    free(h);
    return 0;
trunc:
    cli_errf(e, "%s: truncated .npy header", in->path);
    goto bad;
oom:
    cli_errf(e, "%s: out of memory", in->path);
bad:
    free(h);
    return -1;
}

/* ---- IDX (MNIST layout) ---------------------------------------------------------------------- */

static int read_idx3(input *in, size_t want, cli_records *r, cli_err *e) {
    unsigned char h[16];
    if (in_read(in, h, 16) != 16) {
        cli_errf(e, "%s: truncated IDX header", in->path);
        return -1;
    }
    if (be32(h) != 0x00000803u) {
        cli_errf(e, "%s: not an IDX3 uint8 file (magic 0x%08x, expected 0x00000803)", in->path,
                 be32(h));
        return -1;
    }
    size_t n = be32(h + 4), rows = be32(h + 8), cols = be32(h + 12);
    if (rows == 0 || cols == 0 || rows * cols > IQDB_MAX_DIM) {
        cli_errf(e, "%s: image shape %zu x %zu is out of range", in->path, rows, cols);
        return -1;
    }
    size_t dim = rows * cols;
    if (check_dim(dim, want, 0, in->path, "images", e)) return -1;
    r->dim = dim;
    r->vecs = malloc((n ? n : 1) * dim * sizeof(float));
    unsigned char *px = malloc(dim);
    if (!r->vecs || !px) {
        free(px);
        cli_errf(e, "%s: out of memory", in->path);
        return -1;
    }
    r->cap = n;
    for (size_t i = 0; i < n; i++) {
        if (in_read(in, px, dim) != dim) {
            cli_errf(e, "%s: truncated: image %zu of %zu is incomplete", in->path, i, n);
            free(px);
            return -1;
        }
        for (size_t j = 0; j < dim; j++) r->vecs[i * dim + j] = px[j];
        r->n++;
    }
    free(px);
    return 0;
}

int cli_read_idx1(const char *path, unsigned char **out, size_t *n, cli_err *e) {
    input in;
    *out = NULL, *n = 0;
    if (in_open(&in, path, e)) return -1;
    unsigned char h[8];
    if (in_read(&in, h, 8) != 8 || be32(h) != 0x00000801u) {
        cli_errf(e, "%s: not an IDX1 uint8 file (labels)", path);
        in_close(&in, 0, e);
        return -1;
    }
    size_t cnt = be32(h + 4);
    unsigned char *b = malloc(cnt ? cnt : 1);
    if (!b || in_read(&in, b, cnt) != cnt) {
        cli_errf(e, b ? "%s: truncated: fewer labels than the header's count" : "%s: out of memory",
                 path);
        free(b);
        in_close(&in, 0, e);
        return -1;
    }
    if (in_close(&in, 1, e)) {
        free(b);
        return -1;
    }
    *out = b, *n = cnt;
    return 0;
}

/* ---- CSV ------------------------------------------------------------------------------------- */

/* Splits `line` at commas in place; returns the number of fields (at most cap). */
static size_t csv_split(char *line, char **f, size_t cap) {
    size_t n = 0;
    char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t') p++;
        if (n < cap) f[n] = p;
        n++;
        char *c = strchr(p, ',');
        char *end = c ? c : p + strlen(p);
        char *t = end;
        while (t > p && (t[-1] == ' ' || t[-1] == '\t')) t--;
        *t = 0;
        if (!c) break;
        p = c + 1;
    }
    return n;
}

static int csv_number(const char *s, double *d) {
    if (!*s) return -1;
    char *end;
    errno = 0;
    *d = strtod(s, &end);
    return *end ? -1 : 0;
}

static int read_csv(input *in, size_t want, cli_records *r, cli_err *e) {
    char *line = NULL, **f = NULL;
    size_t lcap = 0, fcap = 0, lineno = 0, ncols = 0;
    int id_col = 0, header_done = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, in->f)) >= 0) {
        lineno++;
        in->off += (uint64_t)len;
        in_progress(in);
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (len == 0) continue; /* blank lines are skipped */
        if (memchr(line, 0, (size_t)len)) {
            cli_errf(e, "%s: line %zu: a zero byte", in->path, lineno);
            goto bad;
        }
        size_t commas = 0;
        for (ssize_t k = 0; k < len; k++) commas += line[k] == ',';
        if (commas + 1 > fcap) {
            free(f);
            fcap = commas + 1;
            f = malloc(fcap * sizeof *f);
            if (!f) goto oom;
        }
        size_t nf = csv_split(line, f, fcap);
        double d;
        if (!header_done) {
            header_done = 1;
            if (csv_number(f[0], &d)) { /* a header line */
                id_col = !strcasecmp(f[0], "id");
                ncols = nf;
                continue;
            }
            ncols = nf;
        }
        if (nf != ncols) {
            cli_errf(e, "%s: line %zu: %zu fields; the first line has %zu", in->path, lineno, nf,
                     ncols);
            goto bad;
        }
        if (!r->dim) {
            char where[32];
            snprintf(where, sizeof where, "line %zu", lineno);
            if (check_dim(nf - (size_t)id_col, want, 0, in->path, where, e)) goto bad;
            r->dim = nf - (size_t)id_col;
            if (id_col) r->ids = malloc(1), r->cap = 0;
        }
        float *v = rec_push(r, e, in->path);
        if (!v) goto bad;
        if (id_col) {
            char *end;
            errno = 0;
            unsigned long long id = strtoull(f[0], &end, 10);
            if (!*f[0] || *end || errno || f[0][0] == '-') {
                cli_errf(e, "%s: line %zu: id '%s' is not an integer 0 .. 2^64-1", in->path, lineno,
                         f[0]);
                goto bad;
            }
            r->ids[r->n - 1] = id;
        }
        for (size_t j = 0; j < r->dim; j++) {
            const char *s = f[j + (size_t)id_col];
            if (csv_number(s, &d) || !isfinite((float)d)) {
                cli_errf(e,
                         "%s: line %zu, column %zu: '%.40s' is not a finite number "
                         "(IQDB_INVALID)",
                         in->path, lineno, j + (size_t)id_col + 1, s);
                goto bad;
            }
            v[j] = (float)d;
        }
    }
    free(line), free(f);
    return 0;
oom:
    cli_errf(e, "%s: out of memory", in->path);
bad:
    free(line), free(f);
    return -1;
}

/* ---- JSONL ----------------------------------------------------------------------------------- */

static int read_jsonl(input *in, size_t want, cli_records *r, cli_err *e) {
    char *line = NULL;
    size_t lcap = 0, lineno = 0, cap = want ? want : IQDB_MAX_DIM;
    float *vec = malloc(cap * sizeof *vec);
    int ids_mode = -1; /* -1 unknown, 0 none, 1 every record has an id */
    ssize_t len;
    if (!vec) goto oom;
    r->metas = malloc(1);
    if (!r->metas) goto oom;
    while ((len = getline(&line, &lcap, in->f)) >= 0) {
        lineno++;
        in->off += (uint64_t)len;
        in_progress(in);
        size_t l = (size_t)len;
        while (l > 0 && (line[l - 1] == '\n' || line[l - 1] == '\r')) l--;
        size_t k = 0;
        while (k < l && (line[k] == ' ' || line[k] == '\t')) k++;
        if (k == l) continue; /* blank lines are skipped */
        size_t dim;
        iqdb_id id;
        int has_id;
        iqdb_meta *meta;
        cli_err je;
        if (cli_json_parse_record(line, l, vec, cap, &dim, &id, &has_id, &meta, &je)) {
            cli_errf(e, "%s: line %zu: %s", in->path, lineno, je.msg);
            goto bad;
        }
        char where[32];
        snprintf(where, sizeof where, "line %zu", lineno);
        if (check_dim(dim, want, r->dim, in->path, where, e)) {
            iqdb_meta_destroy(meta);
            goto bad;
        }
        if (ids_mode < 0) {
            ids_mode = has_id;
            if (has_id) {
                r->ids = malloc(r->cap ? r->cap * sizeof *r->ids : 1);
                if (!r->ids) {
                    iqdb_meta_destroy(meta);
                    goto oom;
                }
            }
        } else if (ids_mode != has_id) {
            cli_errf(e, "%s: line %zu: %s \"id\" (every record has one, or none does)", in->path,
                     lineno, has_id ? "unexpected" : "missing");
            iqdb_meta_destroy(meta);
            goto bad;
        }
        if (!r->dim) r->dim = dim;
        float *v = rec_push(r, e, in->path);
        if (!v) {
            iqdb_meta_destroy(meta);
            goto bad;
        }
        memcpy(v, vec, dim * sizeof *v);
        r->metas[r->n - 1] = meta;
        if (has_id) r->ids[r->n - 1] = id;
    }
    free(line), free(vec);
    return 0;
oom:
    cli_errf(e, "%s: out of memory", in->path);
bad:
    free(line), free(vec);
    return -1;
}

/* ---- entry points ---------------------------------------------------------------------------- */

int cli_read_vectors(const char *path, cli_format fmt, size_t want, cli_records *r, cli_err *e) {
    memset(r, 0, sizeof *r);
    if (fmt == FMT_AUTO) fmt = cli_format_guess(path);
    if (fmt == FMT_AUTO) {
        cli_errf(e, "%s: unknown format (name it with --format)", path);
        return -1;
    }
    input in;
    if (in_open(&in, path, e)) return -1;
    int rc;
    switch (fmt) {
    case FMT_FVECS:
    case FMT_BVECS:
    case FMT_IVECS: rc = read_xvecs(&in, fmt, want, r, e); break;
    case FMT_NPY: rc = read_npy(&in, want, r, e); break;
    case FMT_CSV: rc = read_csv(&in, want, r, e); break;
    case FMT_JSONL: rc = read_jsonl(&in, want, r, e); break;
    case FMT_IDX: rc = read_idx3(&in, want, r, e); break;
    case FMT_AUTO:
    default: rc = -1; break;
    }
    if (rc == 0) {
        /* Nothing may follow the content (fvecs / CSV / JSONL end at EOF by construction). */
        if (fmt == FMT_NPY || fmt == FMT_IDX) {
            int c = fgetc(in.f);
            if (c != EOF) {
                cli_errf(e, "%s: bytes after the last %s", path, fmt == FMT_NPY ? "row" : "image");
                rc = -1;
            }
        }
        if (rc == 0 && ferror(in.f)) {
            cli_errf(e, "%s: read error", path);
            rc = -1;
        }
        if (rc == 0 && in_close(&in, 1, e)) rc = -1;
    }
    if (rc) {
        in_close(&in, 0, e);
        cli_records_free(r);
        return -1;
    }
    if (r->n == 0 && !r->dim) r->dim = want;
    return 0;
}

int cli_read_ivecs(const char *path, int32_t **out, size_t *n, size_t *k, cli_err *e) {
    cli_records r;
    *out = NULL, *n = *k = 0;
    if (cli_read_vectors(path, FMT_IVECS, 0, &r, e)) return -1;
    int32_t *v = malloc((r.n ? r.n : 1) * r.dim * sizeof *v);
    if (!v) {
        cli_records_free(&r);
        cli_errf(e, "%s: out of memory", path);
        return -1;
    }
    /* int32 -> float -> int32 is exact below 2^24; larger ids are checked by the caller. */
    for (size_t i = 0; i < r.n * r.dim; i++) v[i] = (int32_t)r.vecs[i];
    *out = v, *n = r.n, *k = r.dim;
    cli_records_free(&r);
    return 0;
}

int cli_read_id_ivecs(const char *path, iqdb_id **ids, size_t *n, cli_err *e) {
    input in;
    *ids = NULL, *n = 0;
    if (in_open(&in, path, e)) return -1;
    size_t cap = 0;
    iqdb_id *v = NULL;
    unsigned char b[8];
    size_t got;
    while ((got = in_read(&in, b, 8)) > 0) {
        if (got != 8 || le32(b) != 1) {
            cli_errf(e, "%s: record %zu: %s", path, *n,
                     got != 8 ? "truncated" : "an id file holds one int32 per record (dim 1)");
            goto bad;
        }
        int32_t id = (int32_t)le32(b + 4);
        if (id < 0) {
            cli_errf(e, "%s: record %zu: negative id %d", path, *n, id);
            goto bad;
        }
        if (*n == cap) {
            cap = cap ? cap * 2 : 1024;
            iqdb_id *nv = realloc(v, cap * sizeof *v);
            if (!nv) {
                cli_errf(e, "%s: out of memory", path);
                goto bad;
            }
            v = nv;
        }
        v[(*n)++] = (iqdb_id)id;
    }
    if (in_close(&in, 1, e)) {
        free(v);
        *n = 0;
        return -1;
    }
    *ids = v;
    return 0;
bad:
    in_close(&in, 0, e);
    free(v);
    *n = 0;
    return -1;
}

/* ---- writers --------------------------------------------------------------------------------- */

struct cli_writer {
    FILE *f;
    cli_format fmt;
    size_t dim, n, written;
    const char *path;
};

int cli_writer_open(cli_writer **out, const char *path, cli_format fmt, size_t dim, size_t n,
                    cli_err *e) {
    *out = NULL;
    if (fmt == FMT_AUTO) fmt = cli_format_guess(path);
    if (fmt != FMT_FVECS && fmt != FMT_NPY && fmt != FMT_JSONL && fmt != FMT_CSV) {
        cli_errf(e, "%s: export writes fvecs, npy, csv or jsonl (name it with --format)", path);
        return -1;
    }
    cli_writer *w = calloc(1, sizeof *w);
    if (!w) {
        cli_errf(e, "out of memory");
        return -1;
    }
    w->f = !strcmp(path, "-") ? stdout : fopen(path, "wb");
    if (!w->f) {
        cli_errf(e, "%s: %s", path, strerror(errno));
        free(w);
        return -1;
    }
    w->fmt = fmt, w->dim = dim, w->n = n, w->path = path;
    if (fmt == FMT_NPY) {
        char h[128];
        int l = snprintf(h, sizeof h,
                         "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, %zu), }", n, dim);
        int total = 10 + l + 1, pad = (64 - total % 64) % 64;
        unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0};
        unsigned hl = (unsigned)(l + pad + 1);
        pre[8] = (unsigned char)(hl & 0xff), pre[9] = (unsigned char)(hl >> 8);
        fwrite(pre, 1, 10, w->f);
        fwrite(h, 1, (size_t)l, w->f);
        for (int i = 0; i < pad; i++) fputc(' ', w->f);
        fputc('\n', w->f);
    } else if (fmt == FMT_CSV) {
        fputs("id", w->f);
        for (size_t j = 0; j < dim; j++) fprintf(w->f, ",x%zu", j);
        fputc('\n', w->f);
    }
    *out = w;
    return 0;
}

static void put_le32(FILE *f, uint32_t u) {
    unsigned char b[4] = {(unsigned char)u, (unsigned char)(u >> 8), (unsigned char)(u >> 16),
                          (unsigned char)(u >> 24)};
    fwrite(b, 1, 4, f);
}

int cli_writer_put(cli_writer *w, iqdb_id id, const float *vec, const iqdb_meta *meta, cli_err *e) {
    (void)e;
    switch (w->fmt) {
    case FMT_FVECS:
        put_le32(w->f, (uint32_t)w->dim);
        /* fallthrough */
    case FMT_NPY:
        for (size_t j = 0; j < w->dim; j++) {
            uint32_t u;
            memcpy(&u, &vec[j], 4);
            put_le32(w->f, u);
        }
        break;
    case FMT_CSV:
        fprintf(w->f, "%llu", (unsigned long long)id);
        for (size_t j = 0; j < w->dim; j++) fputc(',', w->f), cli_put_float(w->f, vec[j]);
        fputc('\n', w->f);
        break;
    case FMT_JSONL:
        fprintf(w->f, "{\"id\":%llu,\"vector\":[", (unsigned long long)id);
        for (size_t j = 0; j < w->dim; j++) {
            if (j) fputc(',', w->f);
            cli_put_float(w->f, vec[j]);
        }
        fputc(']', w->f);
        if (meta && iqdb_meta_count(meta)) {
            fputs(",\"metadata\":", w->f);
            cli_json_meta(w->f, meta);
        }
        fputs("}\n", w->f);
        break;
    case FMT_AUTO:
    case FMT_BVECS:
    case FMT_IVECS:
    case FMT_IDX: break;
    }
    w->written++;
    return 0;
}

int cli_writer_close(cli_writer *w, cli_err *e) {
    if (!w) return 0;
    int bad = ferror(w->f);
    if (w->f != stdout) {
        if (fclose(w->f)) bad = 1;
    } else if (fflush(w->f)) {
        bad = 1;
    }
    if (bad) cli_errf(e, "%s: write failed: %s", w->path, strerror(errno));
    free(w);
    return bad ? -1 : 0;
}
