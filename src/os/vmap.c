/*
 * vmap.c — the vector file (os/vmap.h) on POSIX (open + unlink, posix_fallocate, mmap) and on
 * Windows (delete-on-close temporary file, SetEndOfFile, one mapping object per view).
 */
#if !defined(_WIN32)
#define _GNU_SOURCE
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#else
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#endif

#include <stdatomic.h>

#include "os/vmap.h"

static _Atomic unsigned fail_at;
static _Atomic int no_fallocate;

void iqdb__vmap_fail_at(unsigned n) { atomic_store(&fail_at, n); }
void iqdb__vmap_no_fallocate(int on) { atomic_store(&no_fallocate, on); }

/* 1 when the test hook says this call fails. */
static int injected(void) {
    unsigned n = atomic_load(&fail_at);
    while (n) {
        if (atomic_compare_exchange_weak(&fail_at, &n, n - 1)) return n == 1;
    }
    return 0;
}

#if !defined(_WIN32)

struct iqdb__vmap {
    iqdb__mem *mem;
    int fd;
    uint64_t size; /* bytes allocated in the file */
};

size_t iqdb__vmap_granularity(void) {
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (size_t)p : 4096u;
}

int iqdb__vmap_create(iqdb__mem *mem, const char *path, iqdb__vmap **out) {
    *out = NULL;
    iqdb__vmap *v = iqdb__alloc(mem, sizeof *v);
    if (!v) return iqdb__nomem(NULL);
    int fd;
    do fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        int e = errno;
        iqdb__free(mem, v, sizeof *v);
        return iqdb__fail(NULL, IQDB_IOERR_OPEN, "vector file %s: open: %s", path, strerror(e));
    }
    if (unlink(path) != 0) {
        int e = errno;
        close(fd);
        iqdb__free(mem, v, sizeof *v);
        return iqdb__fail(NULL, IQDB_IOERR_DELETE, "vector file %s: unlink: %s", path, strerror(e));
    }
    v->mem = mem;
    v->fd = fd;
    v->size = 0;
    *out = v;
    return IQDB_OK;
}

/* Allocates [from, to) of the file by writing zeros: for file systems without fallocate. A hole
 * left by ftruncate would turn a full disk into a SIGBUS on some later store into the mapping;
 * written blocks cannot. 0 or an errno. */
static int write_zeros(int fd, uint64_t from, uint64_t to) {
    static const char zeros[65536];
    while (from < to) {
        size_t n = to - from < sizeof zeros ? (size_t)(to - from) : sizeof zeros;
        ssize_t w = pwrite(fd, zeros, n, (off_t)from);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return errno;
        if (w == 0) return ENOSPC;
        from += (uint64_t)w;
    }
    return 0;
}

int iqdb__vmap_map(iqdb__vmap *v, uint64_t off, size_t len, void **p) {
    *p = NULL;
    if (injected()) return iqdb__fail(NULL, IQDB_IOERR_MMAP, "vector file: mmap: injected failure");
    if (off + len > v->size) {
        int e = atomic_load(&no_fallocate)
                    ? EOPNOTSUPP
                    : posix_fallocate(v->fd, (off_t)v->size, (off_t)(off + len - v->size));
        if (e == EINVAL || e == EOPNOTSUPP) /* a file system without fallocate */
            e = write_zeros(v->fd, v->size, off + len);
        if (e)
            return iqdb__fail(NULL,
                              e == ENOSPC || e == EDQUOT ? IQDB_IOERR_NOSPACE : IQDB_IOERR_TRUNCATE,
                              "vector file: growing to %llu bytes: %s",
                              (unsigned long long)(off + len), strerror(e));
        v->size = off + len;
    }
    void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, (off_t)off);
    if (m == MAP_FAILED)
        return iqdb__fail(NULL, IQDB_IOERR_MMAP, "vector file: mmap of %zu bytes: %s", len,
                          strerror(errno));
    *p = m;
    return IQDB_OK;
}

void iqdb__vmap_unmap(iqdb__vmap *v, void *p, size_t len) {
    (void)v;
    if (p) munmap(p, len);
}

void iqdb__vmap_close(iqdb__vmap *v) {
    if (!v) return;
    close(v->fd);
    iqdb__free(v->mem, v, sizeof *v);
}

#else /* _WIN32 */

struct iqdb__vmap {
    iqdb__mem *mem;
    HANDLE h;
    uint64_t size;
};

size_t iqdb__vmap_granularity(void) {
    SYSTEM_INFO si;
    GetSystemInfo(&si);
    return si.dwAllocationGranularity ? (size_t)si.dwAllocationGranularity : 65536u;
}

int iqdb__vmap_create(iqdb__mem *mem, const char *path, iqdb__vmap **out) {
    *out = NULL;
    iqdb__vmap *v = iqdb__alloc(mem, sizeof *v);
    if (!v) return iqdb__nomem(NULL);
    HANDLE h =
        CreateFileA(path, GENERIC_READ | GENERIC_WRITE, FILE_SHARE_DELETE, NULL, CREATE_ALWAYS,
                    FILE_ATTRIBUTE_TEMPORARY | FILE_FLAG_DELETE_ON_CLOSE, NULL);
    if (h == INVALID_HANDLE_VALUE) {
        unsigned long e = GetLastError();
        iqdb__free(mem, v, sizeof *v);
        return iqdb__fail(NULL, IQDB_IOERR_OPEN, "vector file %s: CreateFile: error %lu", path, e);
    }
    v->mem = mem;
    v->h = h;
    v->size = 0;
    *out = v;
    return IQDB_OK;
}

int iqdb__vmap_map(iqdb__vmap *v, uint64_t off, size_t len, void **p) {
    *p = NULL;
    if (injected()) return iqdb__fail(NULL, IQDB_IOERR_MMAP, "vector file: mmap: injected failure");
    uint64_t end = off + len;
    if (end > v->size) {
        LARGE_INTEGER li;
        li.QuadPart = (LONGLONG)end;
        if (!SetFilePointerEx(v->h, li, NULL, FILE_BEGIN) || !SetEndOfFile(v->h)) {
            unsigned long e = GetLastError();
            return iqdb__fail(NULL, e == ERROR_DISK_FULL ? IQDB_IOERR_NOSPACE : IQDB_IOERR_TRUNCATE,
                              "vector file: growing to %llu bytes: error %lu",
                              (unsigned long long)end, e);
        }
        v->size = end;
    }
    HANDLE m = CreateFileMappingA(v->h, NULL, PAGE_READWRITE, (DWORD)(end >> 32),
                                  (DWORD)(end & 0xffffffffu), NULL);
    if (!m)
        return iqdb__fail(NULL, IQDB_IOERR_MMAP, "vector file: CreateFileMapping: error %lu",
                          GetLastError());
    void *a =
        MapViewOfFile(m, FILE_MAP_ALL_ACCESS, (DWORD)(off >> 32), (DWORD)(off & 0xffffffffu), len);
    unsigned long e = GetLastError();
    CloseHandle(m); /* the view keeps the mapping alive */
    if (!a) return iqdb__fail(NULL, IQDB_IOERR_MMAP, "vector file: MapViewOfFile: error %lu", e);
    *p = a;
    return IQDB_OK;
}

void iqdb__vmap_unmap(iqdb__vmap *v, void *p, size_t len) {
    (void)v;
    (void)len;
    if (p) UnmapViewOfFile(p);
}

void iqdb__vmap_close(iqdb__vmap *v) {
    if (!v) return;
    CloseHandle(v->h);
    iqdb__free(v->mem, v, sizeof *v);
}

#endif
