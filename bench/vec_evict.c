/*
 * vec_evict.c — for iqdb-bench-ivf: push a database's mapped vector file (IQDB_VECTORS_IN_FILE)
 * out of memory, as memory pressure would, so the bench can time searches whose re-ranking reads
 * the vectors back from disk. Writes the chunks back (msync) and asks the kernel to reclaim their
 * now clean pages (MADV_PAGEOUT, Linux 5.4+). Uses the handle's internals (bench only).
 */
#define _GNU_SOURCE
#include <errno.h>
#if !defined(_WIN32)
#include <sys/mman.h>
#endif

#include "handle.h"

int iqdb_bench_evict_vectors(iqdb *db);

/* 0 on success; -1 without a vector file; errno from msync / madvise otherwise. */
int iqdb_bench_evict_vectors(iqdb *db) {
    const iqdb__store *st = &db->store;
    if (!st->vmap) return -1;
#if defined(MADV_PAGEOUT) && defined(MS_SYNC)
    const size_t bytes = iqdb__store_chunk_bytes(st);
    for (size_t c = 0; c < st->n_chunks; c++) {
        if (msync(st->chunks[c], bytes, MS_SYNC)) return errno;
        if (madvise(st->chunks[c], bytes, MADV_PAGEOUT)) return errno;
    }
    return 0;
#else
    return ENOSYS;
#endif
}
