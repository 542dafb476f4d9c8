/*
 * datasets.c — the loaders declared in datasets.h.
 */
#include "datasets.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static int fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Reads exactly n bytes; returns the count read (< n at end of file) or -1 on an error. */
static long long gz_read_full(gzFile f, unsigned char *buf, size_t n) {
    size_t done = 0;
    while (done < n) {
        size_t want = n - done;
        if (want > (1u << 30)) want = 1u << 30;
        int r = gzread(f, buf + done, (unsigned)want);
        if (r < 0) return -1;
        if (r == 0) break;
        done += (size_t)r;
    }
    return (long long)done;
}

static const char *gz_errtext(gzFile f) {
    int code = 0;
    const char *msg = gzerror(f, &code);
    if (code == Z_ERRNO) return strerror(errno);
    return msg && *msg ? msg : "read error";
}

int ds_idx3_load(const char *path, uint32_t want_count, uint32_t want_rows, uint32_t want_cols,
                 float **out, size_t *count, size_t *dim, char *err, size_t errlen) {
    *out = NULL;
    *count = 0;
    *dim = 0;
    gzFile f = gzopen(path, "rb");
    if (!f)
        return fail(err, errlen, "%s: cannot open: %s", path,
                    errno ? strerror(errno) : "out of memory");
    gzbuffer(f, 1u << 20);
    unsigned char hdr[16];
    long long got = gz_read_full(f, hdr, sizeof hdr);
    if (got < 0) {
        int rc = fail(err, errlen, "%s: %s", path, gz_errtext(f));
        gzclose(f);
        return rc;
    }
    if (got < (long long)sizeof hdr) {
        gzclose(f);
        return fail(err, errlen, "%s: truncated IDX header (%lld of 16 bytes)", path, got);
    }
    uint32_t magic = be32(hdr), n = be32(hdr + 4), rows = be32(hdr + 8), cols = be32(hdr + 12);
    const char *bad = NULL;
    char what[160];
    if (magic != DS_IDX3_UBYTE_MAGIC) {
        snprintf(what, sizeof what, "magic 0x%08x, expected 0x%08x (IDX3 of uint8)", magic,
                 DS_IDX3_UBYTE_MAGIC);
        bad = what;
    } else if (want_count && n != want_count) {
        snprintf(what, sizeof what, "%u images, expected %u", n, want_count);
        bad = what;
    } else if ((want_rows && rows != want_rows) || (want_cols && cols != want_cols)) {
        snprintf(what, sizeof what, "images of %u x %u, expected %u x %u", rows, cols, want_rows,
                 want_cols);
        bad = what;
    } else if (n == 0 || rows == 0 || cols == 0 || rows > 65536 || cols > 65536) {
        snprintf(what, sizeof what, "implausible shape %u x %u x %u", n, rows, cols);
        bad = what;
    }
    if (bad) {
        gzclose(f);
        return fail(err, errlen, "%s: not the expected IDX file: %s", path, bad);
    }
    size_t d = (size_t)rows * cols, total = (size_t)n * d;
    unsigned char *pix = malloc(total);
    float *vec = malloc(total * sizeof *vec);
    if (!pix || !vec) {
        free(pix);
        free(vec);
        gzclose(f);
        return fail(err, errlen, "%s: out of memory for %zu pixels", path, total);
    }
    got = gz_read_full(f, pix, total);
    unsigned char extra;
    long long tail = got == (long long)total ? gz_read_full(f, &extra, 1) : 0;
    int rc = 0;
    if (got < 0 || tail < 0)
        rc = fail(err, errlen, "%s: %s", path, gz_errtext(f));
    else if (got < (long long)total)
        rc = fail(err, errlen, "%s: truncated: %lld of %zu pixel bytes", path, got, total);
    else if (tail > 0)
        rc = fail(err, errlen, "%s: trailing data after %u images", path, n);
    gzclose(f);
    if (rc) {
        free(pix);
        free(vec);
        return rc;
    }
    for (size_t i = 0; i < total; i++) vec[i] = (float)pix[i];
    free(pix);
    *out = vec;
    *count = n;
    *dim = d;
    return 0;
}

int ds_fmnist_load(const char *dir, int test, float **out, size_t *count, size_t *dim, char *err,
                   size_t errlen) {
    char path[4096];
    int len = snprintf(path, sizeof path, "%s/%s", dir ? dir : DS_FMNIST_DIR,
                       test ? DS_FMNIST_TEST : DS_FMNIST_TRAIN);
    if (len < 0 || (size_t)len >= sizeof path) {
        *out = NULL;
        *count = *dim = 0;
        return fail(err, errlen, "dataset directory name too long");
    }
    return ds_idx3_load(path, test ? 10000u : 60000u, 28, 28, out, count, dim, err, errlen);
}

int ds_idx1_load(const char *path, uint32_t want_count, unsigned char **out, size_t *count,
                 char *err, size_t errlen) {
    *out = NULL;
    *count = 0;
    gzFile f = gzopen(path, "rb");
    if (!f)
        return fail(err, errlen, "%s: cannot open: %s", path,
                    errno ? strerror(errno) : "out of memory");
    unsigned char hdr[8];
    long long got = gz_read_full(f, hdr, sizeof hdr);
    if (got != (long long)sizeof hdr) {
        gzclose(f);
        return fail(err, errlen, "%s: truncated IDX header", path);
    }
    uint32_t magic = be32(hdr), n = be32(hdr + 4);
    if (magic != DS_IDX1_UBYTE_MAGIC || (want_count && n != want_count) || n == 0) {
        gzclose(f);
        return fail(err, errlen, "%s: not the expected IDX1 file (magic 0x%08x, %u items)", path,
                    magic, n);
    }
    unsigned char *b = malloc(n), extra;
    if (!b) {
        gzclose(f);
        return fail(err, errlen, "%s: out of memory", path);
    }
    got = gz_read_full(f, b, n);
    long long tail = got == (long long)n ? gz_read_full(f, &extra, 1) : 0;
    gzclose(f);
    if (got != (long long)n || tail != 0) {
        free(b);
        return fail(err, errlen, "%s: %s", path,
                    got != (long long)n ? "truncated" : "trailing data");
    }
    *out = b;
    *count = n;
    return 0;
}

int ds_fmnist_labels(const char *dir, int test, unsigned char **out, size_t *count, char *err,
                     size_t errlen) {
    char path[4096];
    int len = snprintf(path, sizeof path, "%s/%s", dir ? dir : DS_FMNIST_DIR,
                       test ? "t10k-labels-idx1-ubyte.gz" : "train-labels-idx1-ubyte.gz");
    if (len < 0 || (size_t)len >= sizeof path) {
        *out = NULL;
        *count = 0;
        return fail(err, errlen, "dataset directory name too long");
    }
    return ds_idx1_load(path, test ? 10000u : 60000u, out, count, err, errlen);
}

const char *const ds_fmnist_class_names[10] = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                               "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                               "Bag",         "Ankle boot"};

/* Shared .ivecs / .fvecs reader: 4-byte little-endian values, stored as int32 or float. */
static void store4(void *data, size_t i, uint32_t u, int is_float) {
    if (is_float) {
        float v;
        memcpy(&v, &u, sizeof v);
        ((float *)data)[i] = v;
    } else {
        ((int32_t *)data)[i] = (int32_t)u;
    }
}

static int vecs_load(const char *path, int is_float, void **out, size_t *count, size_t *dim,
                     char *err, size_t errlen) {
    const char *kind = is_float ? "fvecs" : "ivecs";
    *out = NULL;
    *count = 0;
    *dim = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    void *data = NULL;
    size_t n = 0, cap = 0, d = 0;
    unsigned char w[4];
    unsigned char *rec = NULL;
    int rc = 0;
    for (;;) {
        size_t got = fread(w, 1, 4, f);
        if (got == 0) break;
        if (got < 4) {
            rc = fail(err, errlen, "%s: truncated %s record %zu (dimension word)", path, kind, n);
            break;
        }
        uint32_t rd = le32(w);
        if (rd == 0 || rd > (1u << 24)) {
            rc = fail(err, errlen, "%s: %s record %zu has dimension %u", path, kind, n, rd);
            break;
        }
        if (n == 0) {
            d = rd;
            rec = malloc(d * 4);
            if (!rec) {
                rc = fail(err, errlen, "%s: out of memory", path);
                break;
            }
        } else if (rd != d) {
            rc = fail(err, errlen, "%s: %s record %zu has dimension %u, record 0 has %zu", path,
                      kind, n, rd, d);
            break;
        }
        if (fread(rec, 1, d * 4, f) != d * 4) {
            rc = fail(err, errlen, "%s: truncated %s record %zu", path, kind, n);
            break;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 1024;
            void *nd = realloc(data, ncap * d * 4);
            if (!nd) {
                rc = fail(err, errlen, "%s: out of memory", path);
                break;
            }
            data = nd;
            cap = ncap;
        }
        for (size_t j = 0; j < d; j++) store4(data, n * d + j, le32(rec + 4 * j), is_float);
        n++;
    }
    if (!rc && ferror(f)) rc = fail(err, errlen, "%s: read error: %s", path, strerror(errno));
    if (!rc && n == 0) rc = fail(err, errlen, "%s: empty %s file", path, kind);
    fclose(f);
    free(rec);
    if (rc) {
        free(data);
        return rc;
    }
    *out = data;
    *count = n;
    *dim = d;
    return 0;
}

int ds_ivecs_load(const char *path, int32_t **out, size_t *count, size_t *dim, char *err,
                  size_t errlen) {
    void *data;
    int rc = vecs_load(path, 0, &data, count, dim, err, errlen);
    *out = data;
    return rc;
}

int ds_fvecs_load(const char *path, float **out, size_t *count, size_t *dim, char *err,
                  size_t errlen) {
    void *data;
    int rc = vecs_load(path, 1, &data, count, dim, err, errlen);
    *out = data;
    return rc;
}
