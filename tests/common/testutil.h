/*
 * testutil.h — shared helpers for the cmocka tests.
 *
 *  - iqdbt_simd_gate(): exit 77 (CTest SKIP) when IQDB_SIMD names a level this CPU cannot run,
 *    so the suite registered once per level skips cleanly where a level is missing.
 *  - A counting, failing allocator: every block carries a header with its size, and the free
 *    hook checks that iqdb frees with exactly the size it allocated (sized-free discipline).
 *    It can fail the Nth allocation, once (transient) or from then on (persistent).
 *  - A seeded PRNG and a double-precision brute-force oracle for search.
 *  - Portable file helpers (a fresh temporary directory, remove a tree, copy/move/remove a
 *    file) and, on Windows, setenv/unsetenv over _putenv_s, so the same tests run under wine.
 */
#ifndef IQDBT_TESTUTIL_H
#define IQDBT_TESTUTIL_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
/* Tests may use libc allocation next to the internal headers (which poison it for the library). */
#define IQDB_ALLOW_LIBC_ALLOC

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "iqdb.h"

/* ---- portability (tests/common/port.c, linked into every test) ------------------------- */

#if defined(_WIN32)
#include <process.h>
/* Windows has no setenv/unsetenv: these go through _putenv_s (port.c). */
int setenv(const char *name, const char *value, int overwrite);
int unsetenv(const char *name);
/* Shims for tests written against POSIX (prefer the iqdbt_ helpers below in new tests):
 * mkdtemp (a "/tmp/..." template is made under \tmp of the current drive) and
 * system("rm -rf PATH..." / "rm -f PATH..."), which cmd.exe cannot run; any other command
 * goes to the real system(). */
char *iqdbt_win_mkdtemp(char *tmpl);
int iqdbt_win_system(const char *cmd);
#define mkdtemp iqdbt_win_mkdtemp
#define system iqdbt_win_system
#define IQDBT_HAVE_FORK 0
#else
#define IQDBT_HAVE_FORK 1
#endif

/* Makes a new empty directory "<temp>/<tag>-<unique>" into out; 0 on success. The temporary
 * folder is $TMPDIR or /tmp (POSIX), GetTempPath (Windows). */
int iqdbt_mkdtemp(char *out, size_t cap, const char *tag);
/* Removes a directory and everything in it; 0 on success. */
int iqdbt_rmtree(const char *dir);
/* Removes a file; a missing one is fine. 0 on success. */
int iqdbt_rm(const char *path);
/* Copies a file byte for byte (replacing `to`); 0 on success. */
int iqdbt_cp(const char *from, const char *to);
/* Renames a file over `to` (which Windows' rename() refuses when it exists); 0 on success. */
int iqdbt_mv(const char *from, const char *to);

/* ---- SIMD gate -------------------------------------------------------------------------- */

static inline void iqdbt_simd_gate(void) {
    const char *e = getenv("IQDB_SIMD");
    if (!e || !*e || strcmp(e, "auto") == 0) return;
    static const iqdb_simd all[] = {IQDB_SIMD_SCALAR, IQDB_SIMD_AVX2, IQDB_SIMD_AVX512,
                                    IQDB_SIMD_NEON};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(e, iqdb_simd_name(all[i])) == 0) {
            if (!iqdb_simd_available(all[i])) {
                printf("SKIP: IQDB_SIMD=%s is not available on this machine\n", e);
                exit(77);
            }
            return;
        }
}

/* ---- allocator -------------------------------------------------------------------------- */

typedef struct iqdbt_alloc {
    _Atomic long long live; /* bytes */
    _Atomic long long blocks;
    _Atomic long long count;   /* allocations attempted */
    _Atomic long long fail_at; /* fail allocation number fail_at (1-based); 0 = never */
    _Atomic int persistent;    /* keep failing after the first failure */
    _Atomic int failed;        /* an allocation was failed */
    _Atomic int bad_free;      /* a free with the wrong size was seen */
} iqdbt_alloc;

#define IQDBT_HDR 16

static inline int iqdbt_should_fail(iqdbt_alloc *a) {
    long long n = atomic_fetch_add(&a->count, 1) + 1;
    long long f = atomic_load(&a->fail_at);
    if (f && (n == f || (atomic_load(&a->persistent) && n > f))) {
        atomic_store(&a->failed, 1);
        return 1;
    }
    return 0;
}

static inline void *iqdbt_alloc_fn(void *ud, size_t size) {
    iqdbt_alloc *a = ud;
    if (iqdbt_should_fail(a)) return NULL;
    unsigned char *p = malloc(size + IQDBT_HDR);
    if (!p) return NULL;
    memcpy(p, &size, sizeof size);
    atomic_fetch_add(&a->live, (long long)size);
    atomic_fetch_add(&a->blocks, 1);
    return p + IQDBT_HDR;
}

static inline void iqdbt_free_fn(void *ud, void *ptr, size_t size) {
    iqdbt_alloc *a = ud;
    unsigned char *p = (unsigned char *)ptr - IQDBT_HDR;
    size_t was;
    memcpy(&was, p, sizeof was);
    if (was != size) {
        fprintf(stderr, "sized free mismatch: allocated %zu, freed as %zu\n", was, size);
        atomic_store(&a->bad_free, 1);
    }
    atomic_fetch_sub(&a->live, (long long)was);
    atomic_fetch_sub(&a->blocks, 1);
    free(p);
}

static inline void *iqdbt_realloc_fn(void *ud, void *ptr, size_t old_size, size_t size) {
    iqdbt_alloc *a = ud;
    if (iqdbt_should_fail(a)) return NULL;
    unsigned char *p = (unsigned char *)ptr - IQDBT_HDR;
    size_t was;
    memcpy(&was, p, sizeof was);
    if (was != old_size) {
        fprintf(stderr, "realloc size mismatch: allocated %zu, passed %zu\n", was, old_size);
        atomic_store(&a->bad_free, 1);
    }
    unsigned char *q = realloc(p, size + IQDBT_HDR);
    if (!q) return NULL;
    memcpy(q, &size, sizeof size);
    atomic_fetch_add(&a->live, (long long)size - (long long)was);
    return q + IQDBT_HDR;
}

static inline iqdb_allocator iqdbt_allocator(iqdbt_alloc *a, int with_realloc) {
    iqdb_allocator al;
    al.alloc_fn = iqdbt_alloc_fn;
    al.realloc_fn = with_realloc ? iqdbt_realloc_fn : NULL;
    al.free_fn = iqdbt_free_fn;
    al.ud = a;
    return al;
}

static inline void iqdbt_alloc_reset(iqdbt_alloc *a) { memset(a, 0, sizeof *a); }

/* Arms failure of allocation number n (counted from now). */
static inline void iqdbt_fail_after(iqdbt_alloc *a, long long n, int persistent) {
    atomic_store(&a->count, 0);
    atomic_store(&a->failed, 0);
    atomic_store(&a->persistent, persistent);
    atomic_store(&a->fail_at, n);
}
static inline void iqdbt_fail_off(iqdbt_alloc *a) { atomic_store(&a->fail_at, 0); }

/* ---- an in-memory byte sink and source (index serialize / load) --------------------------- */

/* Bytes written by iqdbt_mb_write (a sink's write), read back by iqdbt_mb_read (a source's read,
 * which reports IQDB_CORRUPT when asked for more than is left, as a checked section reader
 * does). Release p with free(). */
typedef struct iqdbt_membuf {
    uint8_t *p;
    size_t n, cap, pos;
} iqdbt_membuf;

static inline int iqdbt_mb_write(void *ctx, const void *p, size_t n) {
    iqdbt_membuf *b = ctx;
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
    return IQDB_OK;
}
static inline int iqdbt_mb_read(void *ctx, void *p, size_t n) {
    iqdbt_membuf *b = ctx;
    if (n > b->n - b->pos) return IQDB_CORRUPT;
    memcpy(p, b->p + b->pos, n);
    b->pos += n;
    return IQDB_OK;
}

/* ---- PRNG ------------------------------------------------------------------------------- */

typedef struct iqdbt_rng {
    uint64_t s;
} iqdbt_rng;

static inline uint64_t iqdbt_next(iqdbt_rng *r) {
    uint64_t x = (r->s += 0x9e3779b97f4a7c15ull);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
/* uniform in [lo, hi) */
static inline float iqdbt_uniform(iqdbt_rng *r, float lo, float hi) {
    return lo + (hi - lo) * (float)((iqdbt_next(r) >> 40) * (1.0 / 16777216.0));
}
static inline void iqdbt_fill(iqdbt_rng *r, float *v, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) v[i] = iqdbt_uniform(r, lo, hi);
}

/* ---- the same buffer with a write that reports IQDB_NOMEM instead of aborting (for serialize /
 * load: the write / read shapes of iqdb__sink and iqdb__source) ------------------------------- */

static inline int iqdbt_mem_write(void *ctx, const void *p, size_t n) {
    iqdbt_membuf *b = ctx;
    if (b->n + n > b->cap) {
        size_t cap = (b->n + n) * 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q) return IQDB_NOMEM;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
    return IQDB_OK;
}

/* Reads exactly n bytes; a read past the end (a truncated stream) is IQDB_CORRUPT. */
static inline int iqdbt_mem_read(void *ctx, void *p, size_t n) {
    iqdbt_membuf *b = ctx;
    if (n > b->n - b->pos) return IQDB_CORRUPT;
    memcpy(p, b->p + b->pos, n);
    b->pos += n;
    return IQDB_OK;
}

/* ---- oracle ----------------------------------------------------------------------------- */

/* The distance of iqdb_metric m in double precision. */
static inline double iqdbt_dist(iqdb_metric m, const float *a, const float *b, size_t d) {
    double s = 0, na = 0, nb = 0;
    for (size_t i = 0; i < d; i++) {
        double x = a[i], y = b[i];
        switch (m) {
        case IQDB_METRIC_DEFAULT:
        case IQDB_METRIC_L2: s += (x - y) * (x - y); break;
        case IQDB_METRIC_COSINE:
            s += x * y;
            na += x * x;
            nb += y * y;
            break;
        case IQDB_METRIC_DOT: s += x * y; break;
        case IQDB_METRIC_L1: s += fabs(x - y); break;
        case IQDB_METRIC_HAMMING: s += x != y; break;
        }
    }
    switch (m) {
    case IQDB_METRIC_DEFAULT:
    case IQDB_METRIC_L2: return sqrt(s);
    case IQDB_METRIC_COSINE: {
        double den = sqrt(na) * sqrt(nb);
        if (den == 0) return 1.0;
        double c = 1.0 - s / den;
        return c < 0 ? 0 : c > 2 ? 2 : c;
    }
    case IQDB_METRIC_DOT: return -s;
    case IQDB_METRIC_L1:
    case IQDB_METRIC_HAMMING: return s;
    }
    return s;
}

#endif
