/*
 * snapshot.h — writing and reading snapshot files (layout: docs/FORMAT.md).
 *
 * A snapshot is written once, to a temp file, by iqdb__snapshot_write, streaming: each section
 * goes through a sink that cuts it into blocks of at most IQDB__BLOCK_MAX raw bytes, compresses
 * each block alone and writes it, so memory stays at two block buffers whatever the database
 * size. The header and section table are written last, at offset 0, once the lengths and CRCs
 * are known.
 *
 * Reading is two steps, because the index must be created (its kind comes from the file) before
 * its section can be loaded: iqdb__snapshot_open validates the header and the section table,
 * iqdb__snapshot_load streams the sections into an empty key dictionary, store and index. Every
 * field is hostile input; a failure returns IQDB_FORMAT / IQDB_CORRUPT_SNAPSHOT / ... with a
 * message (iqdb__fail, no handle) and leaves the caller to destroy the partial state.
 */
#ifndef IQDB_PERSIST_SNAPSHOT_H
#define IQDB_PERSIST_SNAPSHOT_H

#include "index/index.h"
#include "meta/meta.h"
#include "os/io.h"
#include "persist/compress.h"
#include "persist/format.h"

/* Index kind and parameters, as stored (section 1). */
typedef struct iqdb__params {
    iqdb_index_kind index;
    uint32_t m, ef_construction, ef_search, filter_widen;
    uint64_t seed;
    uint32_t n_lists, n_probes, train_sample;
    iqdb_quant quant; /* quantizer: kind, PQ subspaces, oversample, flags */
    uint32_t pq_m, oversample, quant_flags;
} iqdb__params;

/* Everything a snapshot is made of. */
typedef struct iqdb__snap_src {
    uint32_t dim;
    iqdb_metric metric;
    iqdb__params params;
    uint64_t generation, lsn;
    const iqdb__keydict *keys;
    const iqdb__store *store;
    const iqdb__index *index;
    const iqdb__env *env;
    /* Optional: called after each block with the raw bytes written so far; non-zero stops the
     * write with IQDB_INTERRUPTED (the file is removed). */
    int (*progress)(void *ud, uint64_t done);
    void *progress_ud;
} iqdb__snap_src;

/* Writes a complete snapshot to `path` (created or truncated), fsyncs and closes it. On failure
 * the file is removed (best effort). *bytes (may be NULL) receives the file size. */
int iqdb__snapshot_write(const iqdb__io *io, const char *path, const iqdb__snap_src *src, int codec,
                         int level, iqdb__mem *mem, uint64_t *bytes);

typedef struct iqdb__snap_entry {
    uint32_t id;
    uint64_t offset, stored, raw;
    uint32_t stored_crc, raw_crc;
} iqdb__snap_entry;

typedef struct iqdb__snap_reader {
    const iqdb__io *io;
    iqdb__file *f;
    iqdb__mem *mem;
    uint64_t size;
    uint32_t dim;
    iqdb_metric metric;
    int codec;
    uint32_t version; /* the file's format version */
    uint64_t generation, lsn;
    iqdb__params params;
    iqdb__snap_entry sec[IQDB__SNAP_SECTIONS];
    iqdb__codec cx;
    uint8_t *raw, *stored; /* one block each */
} iqdb__snap_reader;

/* Opens `path` and validates its header, section table and parameters section. */
int iqdb__snapshot_open(iqdb__snap_reader *r, const iqdb__io *io, const char *path, iqdb__mem *mem);
/* Loads keys, rows and index structures (all empty on entry) and checks every CRC. */
int iqdb__snapshot_load(iqdb__snap_reader *r, iqdb__keydict *keys, iqdb__store *store,
                        iqdb__index *index, const iqdb__env *env);
/* Reads every block of every section and checks every CRC, without decoding the content. */
int iqdb__snapshot_verify(iqdb__snap_reader *r);
void iqdb__snapshot_close(iqdb__snap_reader *r);

#endif
