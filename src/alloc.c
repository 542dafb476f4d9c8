/*
 * alloc.c — the allocator hooks and the wrappers every module allocates through.
 *
 * The default hooks forward to libc; this is the one file allowed to name malloc and free.
 * Aligned blocks are carved from an over-allocation: the hook's block address is stored in the
 * word just below the aligned pointer, so any hook (even a bump allocator) can back the arena.
 */
#define IQDB_ALLOW_LIBC_ALLOC
#include "internal.h"

static void *libc_alloc(void *ud, size_t size) {
    (void)ud;
    return malloc(size ? size : 1);
}
static void *libc_realloc(void *ud, void *p, size_t old_size, size_t size) {
    (void)ud;
    (void)old_size;
    return realloc(p, size ? size : 1);
}
static void libc_free(void *ud, void *p, size_t size) {
    (void)ud;
    (void)size;
    free(p);
}

int iqdb__mem_check(const iqdb_allocator *a) {
    if (!a) return IQDB_OK;
    int has_alloc = a->alloc_fn != NULL, has_free = a->free_fn != NULL;
    if (has_alloc != has_free)
        return iqdb__fail(NULL, IQDB_INVALID,
                          "allocator: alloc_fn and free_fn must both be set or both be NULL");
    if (!has_alloc && a->realloc_fn)
        return iqdb__fail(NULL, IQDB_INVALID, "allocator: realloc_fn set without alloc_fn");
    return IQDB_OK;
}

void iqdb__mem_init(iqdb__mem *m, const iqdb_allocator *a) {
    if (a && a->alloc_fn) {
        m->a = *a;
    } else {
        m->a.alloc_fn = libc_alloc;
        m->a.realloc_fn = libc_realloc;
        m->a.free_fn = libc_free;
        m->a.ud = NULL;
    }
    atomic_init(&m->live, 0);
}

void *iqdb__alloc(iqdb__mem *m, size_t size) {
    void *p = m->a.alloc_fn(m->a.ud, size);
    if (p) atomic_fetch_add_explicit(&m->live, size, memory_order_relaxed);
    return p;
}

void *iqdb__calloc(iqdb__mem *m, size_t n, size_t size) {
    size_t total;
    if (iqdb__mul_overflow(n, size, &total)) return NULL;
    void *p = iqdb__alloc(m, total);
    if (p) memset(p, 0, total);
    return p;
}

void *iqdb__realloc(iqdb__mem *m, void *p, size_t old_size, size_t size) {
    if (!p) return iqdb__alloc(m, size);
    void *q;
    if (m->a.realloc_fn) {
        q = m->a.realloc_fn(m->a.ud, p, old_size, size);
        if (!q) return NULL;
    } else {
        q = m->a.alloc_fn(m->a.ud, size);
        if (!q) return NULL;
        memcpy(q, p, old_size < size ? old_size : size);
        m->a.free_fn(m->a.ud, p, old_size);
    }
    if (size >= old_size)
        atomic_fetch_add_explicit(&m->live, size - old_size, memory_order_relaxed);
    else
        atomic_fetch_sub_explicit(&m->live, old_size - size, memory_order_relaxed);
    return q;
}

void iqdb__free(iqdb__mem *m, void *p, size_t size) {
    if (!p) return;
    atomic_fetch_sub_explicit(&m->live, size, memory_order_relaxed);
    m->a.free_fn(m->a.ud, p, size);
}

#define ALIGN 64u

void *iqdb__alloc_aligned(iqdb__mem *m, size_t size) {
    if (size > SIZE_MAX - ALIGN - sizeof(void *)) return NULL;
    size_t total = size + ALIGN + sizeof(void *);
    unsigned char *raw = iqdb__alloc(m, total);
    if (!raw) return NULL;
    uintptr_t base = (uintptr_t)(raw + sizeof(void *));
    uintptr_t aligned = (base + ALIGN - 1) & ~(uintptr_t)(ALIGN - 1);
    memcpy((void *)(aligned - sizeof(void *)), &raw, sizeof raw);
    return (void *)aligned;
}

void iqdb__free_aligned(iqdb__mem *m, void *p, size_t size) {
    if (!p) return;
    void *raw;
    memcpy(&raw, (unsigned char *)p - sizeof(void *), sizeof raw);
    iqdb__free(m, raw, size + ALIGN + sizeof(void *));
}

int iqdb__grow(iqdb__mem *m, void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return IQDB_OK;
    size_t ncap = *cap ? *cap : 8;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2) return IQDB_NOMEM;
        ncap *= 2;
    }
    size_t old_bytes, new_bytes;
    if (iqdb__mul_overflow(*cap, elem, &old_bytes) || iqdb__mul_overflow(ncap, elem, &new_bytes))
        return IQDB_NOMEM;
    void *q = iqdb__realloc(m, *p, old_bytes, new_bytes);
    if (!q) return IQDB_NOMEM;
    *p = q;
    *cap = ncap;
    return IQDB_OK;
}

char *iqdb__strndup(iqdb__mem *m, const char *s, size_t n) {
    if (n == SIZE_MAX) return NULL;
    char *d = iqdb__alloc(m, n + 1);
    if (!d) return NULL;
    if (n) memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

int iqdb__all_finite(const float *v, size_t n) {
    /* Bit test instead of isfinite(): an exponent of all ones is Inf or NaN. Branch-free inner
     * loop so long vectors check at memory speed. */
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], sizeof u);
        bad |= ((u & 0x7f800000u) == 0x7f800000u);
    }
    return bad == 0;
}
