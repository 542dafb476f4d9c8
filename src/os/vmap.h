/*
 * vmap.h — a scratch file whose pages back memory: with IQDB_VECTORS_IN_FILE the row store maps
 * its vector chunks from one here instead of allocating them (store/store.h).
 *
 * The file holds derived data only: it is filled from the snapshot and the WAL at every open,
 * never synced, and gone after close (POSIX: unlinked as soon as it is opened, so a crash leaves
 * nothing behind; Windows: opened delete-on-close). Its pages are the kernel's page cache — the
 * process's heap does not hold the vectors, and under memory pressure the kernel writes them
 * back to the file and drops them instead of failing an allocation.
 *
 * Growth allocates the file's blocks before mapping them (posix_fallocate, or zeros written
 * where the file system has no fallocate; SetEndOfFile on Windows), so a
 * full disk is an IQDB_IOERR_NOSPACE from the write that needed the room, never a SIGBUS on a
 * later store into a hole. Not part of the I/O seam (io.h): that seam is for files whose
 * contents must survive, which this one never has to.
 */
#ifndef IQDB_VMAP_H
#define IQDB_VMAP_H

#include <stdint.h>

#include "internal.h"

typedef struct iqdb__vmap iqdb__vmap;

/* Map offsets are multiples of this (the page size; 64 KiB on Windows). */
size_t iqdb__vmap_granularity(void);
/* Creates (or truncates) the file at `path` and opens it for mapping. IQDB_OK, IQDB_NOMEM,
 * IQDB_IOERR_OPEN / _DELETE (message set). */
int iqdb__vmap_create(iqdb__mem *mem, const char *path, iqdb__vmap **out);
/* Grows the file to cover [off, off + len) (off a multiple of the granularity) with its blocks
 * allocated, and maps that range read-write into *p. IQDB_OK, IQDB_IOERR_NOSPACE,
 * IQDB_IOERR_TRUNCATE, IQDB_IOERR_MMAP (message set); the file may have grown on failure. */
int iqdb__vmap_map(iqdb__vmap *v, uint64_t off, size_t len, void **p);
/* Unmaps a range iqdb__vmap_map returned. */
void iqdb__vmap_unmap(iqdb__vmap *v, void *p, size_t len);
/* Closes (and, where it still exists, removes) the file. NULL is a no-op. */
void iqdb__vmap_close(iqdb__vmap *v);

/* Test hook: the n-th iqdb__vmap_map from now on (1 = the next) fails with IQDB_IOERR_MMAP;
 * 0 turns it off. Process-wide; tests only. */
void iqdb__vmap_fail_at(unsigned n);
/* Test hook: 1 = grow the file as on a file system without fallocate (zeros written); 0 = off. */
void iqdb__vmap_no_fallocate(int on);

#endif
