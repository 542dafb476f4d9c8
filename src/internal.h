/*
 * internal.h — what every module of iqdb shares: error capture, the allocator wrappers, small
 * helpers, and the poisoning of the C library's allocation names.
 *
 * Invariants:
 *  - Every allocation goes through iqdb__alloc_* with an iqdb__mem (the handle's or an object's
 *    allocator). The libc names malloc / calloc / realloc / free are poisoned below, after the
 *    system headers, so a stray call does not compile (antirez's trick in hnsw.c).
 *  - Frees are sized: every call site knows the size it allocated. That gives exact memory
 *    accounting (iqdb_stats) and lets the user's allocator be an arena.
 *  - Errors are returned as int codes; iqdb__fail records the detail message in thread-local
 *    storage together with the handle it concerns.
 */
#ifndef IQDB_INTERNAL_H
#define IQDB_INTERNAL_H

#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iqdb.h"

/* ---- compiler helpers ------------------------------------------------------------------- */

#if defined(__GNUC__) || defined(__clang__)
#define IQDB_LIKELY(x) __builtin_expect(!!(x), 1)
#define IQDB_UNLIKELY(x) __builtin_expect(!!(x), 0)
#if defined(__MINGW32__)
/* mingw: printf-style calls go to mingw's C99 printf (__USE_MINGW_ANSI_STDIO, set by the build),
 * which knows %zu; plain "printf" would be checked against msvcrt's. */
#define IQDB_PRINTF(a, b) __attribute__((format(gnu_printf, a, b)))
#else
#define IQDB_PRINTF(a, b) __attribute__((format(printf, a, b)))
#endif
#define IQDB_UNUSED __attribute__((unused))
#define IQDB_PREFETCH(p) __builtin_prefetch((const void *)(p), 0, 3)
#else
#define IQDB_LIKELY(x) (x)
#define IQDB_UNLIKELY(x) (x)
#define IQDB_PRINTF(a, b)
#define IQDB_UNUSED
#define IQDB_PREFETCH(p) ((void)(p))
#endif

#if defined(_MSC_VER)
#define IQDB_THREAD_LOCAL __declspec(thread)
#else
#define IQDB_THREAD_LOCAL _Thread_local
#endif

#define IQDB_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define IQDB_MIN(a, b) ((a) < (b) ? (a) : (b))
#define IQDB_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Internal assertion: for invariants of our own data structures, never for bytes read from disk
 * or arguments from the caller. Active unless NDEBUG. */
#ifdef NDEBUG
#define IQDB_ASSERT(x) ((void)0)
#else
#define IQDB_ASSERT(x) ((x) ? (void)0 : iqdb__assert_fail(#x, __FILE__, __LINE__))
#endif
void iqdb__assert_fail(const char *expr, const char *file, int line);

/* ---- errors ----------------------------------------------------------------------------- */

/* Records `rc` and a printf-style message for `db` (NULL for handle-less calls) in the calling
 * thread's error record, and returns rc. */
int iqdb__fail(const iqdb *db, int rc, const char *fmt, ...) IQDB_PRINTF(3, 4);
int iqdb__vfail(const iqdb *db, int rc, const char *fmt, va_list ap);
/* Re-tags the calling thread's last error record with `db` (a module that had no handle failed
 * on the handle's behalf). Returns rc. */
int iqdb__fail_retag(const iqdb *db, int rc);
/* Records an out-of-memory failure. */
int iqdb__nomem(const iqdb *db);

/* Forward a non-OK code from an expression. */
#define IQDB_TRY(expr)                                             \
    do {                                                           \
        int iqdb__rc_ = (expr);                                    \
        if (IQDB_UNLIKELY(iqdb__rc_ != IQDB_OK)) return iqdb__rc_; \
    } while (0)

/* ---- allocation ------------------------------------------------------------------------- */

/* An allocator plus the live-byte counter behind iqdb_stats.mem_total. Shared by a handle and
 * every structure inside it; metadata and filter objects carry their own. */
typedef struct iqdb__mem {
    iqdb_allocator a;
    _Atomic uint64_t live; /* bytes currently allocated */
} iqdb__mem;

/* Validates a user allocator (NULL, or all-NULL functions = libc). */
int iqdb__mem_check(const iqdb_allocator *a);
/* Initialises `m` from a user allocator (assumed valid). */
void iqdb__mem_init(iqdb__mem *m, const iqdb_allocator *a);

void *iqdb__alloc(iqdb__mem *m, size_t size);
void *iqdb__calloc(iqdb__mem *m, size_t n, size_t size); /* zeroed; overflow-checked */
void *iqdb__realloc(iqdb__mem *m, void *p, size_t old_size, size_t size);
void iqdb__free(iqdb__mem *m, void *p, size_t size); /* p may be NULL */

/* 64-byte aligned blocks (the vector arena). Freed with the same size. */
void *iqdb__alloc_aligned(iqdb__mem *m, size_t size);
void iqdb__free_aligned(iqdb__mem *m, void *p, size_t size);

/* Grows a dynamic array so that it holds at least `need` elements of `elem` bytes; *cap is
 * updated. Doubles the capacity. Returns IQDB_OK or IQDB_NOMEM (nothing changed). */
int iqdb__grow(iqdb__mem *m, void **p, size_t *cap, size_t need, size_t elem);

/* Overflow-checked multiply: returns 0 and sets *out, or returns 1 on overflow. */
static inline int iqdb__mul_overflow(size_t a, size_t b, size_t *out) {
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_mul_overflow(a, b, out);
#else
    if (b && a > SIZE_MAX / b) return 1;
    *out = a * b;
    return 0;
#endif
}

/* Duplicates `n` bytes and appends a NUL. */
char *iqdb__strndup(iqdb__mem *m, const char *s, size_t n);

/* ---- serialization streams --------------------------------------------------------------- */

/* Byte sink and source for the serialize / load verbs of the store, the key dictionary and the
 * indexes; the persistence layer supplies them. write takes all n bytes or fails; read fills all
 * n bytes or fails (IQDB_CORRUPT when the data ends first). Either may return IQDB_NOMEM or an
 * I/O code. */
typedef struct iqdb__sink {
    int (*write)(void *ctx, const void *p, size_t n);
    void *ctx;
} iqdb__sink;
typedef struct iqdb__source {
    int (*read)(void *ctx, void *p, size_t n);
    void *ctx;
} iqdb__source;

/* ---- small helpers ---------------------------------------------------------------------- */

/* 1 when every one of the n floats is finite. */
int iqdb__all_finite(const float *v, size_t n);

/* SplitMix64: a fast 64-bit mixer and PRNG step. */
static inline uint64_t iqdb__mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* ---- poison the libc allocator ---------------------------------------------------------- */
/* Everything above may include system headers; nothing below may call libc allocation. Code
 * that must reach libc (alloc.c's default hooks) defines IQDB_ALLOW_LIBC_ALLOC first. */
#if (defined(__GNUC__) || defined(__clang__)) && !defined(IQDB_ALLOW_LIBC_ALLOC)
#pragma GCC poison malloc calloc realloc free strdup strndup aligned_alloc posix_memalign
#endif

#endif /* IQDB_INTERNAL_H */
