/*
 * wal.h — the write-ahead log file (layout and recovery rules: docs/FORMAT.md).
 *
 * Single-threaded functions over one open WAL file; the API layer (iqdb.c) serializes appends
 * under the handle's write lock and runs group-commit fsyncs itself. Invariant: records are
 * appended at `end` only; nothing after `end` in the file is ever trusted, and a failed append
 * cuts the file back to `end`.
 */
#ifndef IQDB_PERSIST_WAL_H
#define IQDB_PERSIST_WAL_H

#include "meta/meta.h"
#include "os/io.h"
#include "persist/format.h"

typedef struct iqdb__wal {
    const iqdb__io *io;
    iqdb__file *f;
    iqdb__mem *mem;
    uint64_t generation, start_lsn;
    uint32_t
        version;     /* the header's format version (recovery sets it; a reset writes the newest) */
    uint64_t end;    /* where the next record goes */
    uint8_t *buf;    /* the record being built */
    size_t cap, len; /* buf capacity, built record length */
    uint64_t rec_lsn; /* LSN of the built record */
} iqdb__wal;

/* Empties the WAL and starts generation `generation` at `start_lsn`: truncate to 0, fsync,
 * write the header, fsync. A failed fsync is reported as IQDB_IOERR_FSYNC whatever the OS said
 * (ENOSPC included), so callers can tell the failures that must make a handle fatal. */
int iqdb__wal_reset(iqdb__wal *w, uint64_t generation, uint64_t start_lsn);
/* Writes the built record at `end`. On failure the file is cut back (best effort) and nothing
 * changed. */
int iqdb__wal_append(iqdb__wal *w);
void iqdb__wal_destroy(iqdb__wal *w); /* frees the buffer; the caller closes the file */
/* Frees the buffer if a large record grew it past 1 MiB (append does this itself). */
void iqdb__wal_trim(iqdb__wal *w);

/* Builds an upsert record of n rows into w->buf: keys [first_key, keys->n) are the new keys
 * the rows' metadata introduced. Rows are named by `ids`, or, when `id_keys` is not NULL, by
 * those key blocks (store/keys.h; a keyed record, type 3). IQDB_OK, IQDB_NOMEM, IQDB_INVALID
 * (over IQDB__REC_MAX). */
int iqdb__wal_build_upsert(iqdb__wal *w, uint64_t lsn, uint64_t synced_lsn, size_t n, uint32_t dim,
                           const uint64_t *ids, uint8_t *const *id_keys, const float *vecs,
                           uint8_t *const *blobs, const uint32_t *blob_lens,
                           const iqdb__keydict *keys, uint32_t first_key);
int iqdb__wal_build_delete(iqdb__wal *w, uint64_t lsn, uint64_t synced_lsn, uint64_t id);
/* A delete of the record named by a byte key (type 4; the payload is the key). */
int iqdb__wal_build_delete_key(iqdb__wal *w, uint64_t lsn, uint64_t synced_lsn, const uint8_t *key,
                               uint32_t len);

/* A parsed upsert payload: structurally valid (every length inside the payload). */
typedef struct iqdb__upsert_view {
    uint32_t n, first_key, n_keys, dim;
    int keyed;           /* type 3: rows start with u32 key length + key instead of u64 id */
    const uint8_t *keys; /* n_keys x (u32 len, bytes) */
    const uint8_t *rows; /* n x (u64 id, u32 meta_len, dim floats, blob) */
} iqdb__upsert_view;
int iqdb__wal_parse_upsert(const uint8_t *p, uint32_t len, uint32_t dim, int keyed,
                           iqdb__upsert_view *v);
/* Steps through a parsed view (cursors start at v->keys / v->rows). */
const uint8_t *iqdb__wal_next_key(const uint8_t *at, const char **key, uint32_t *len);
const uint8_t *iqdb__wal_next_row(const uint8_t *at, uint32_t dim, uint64_t *id,
                                  const uint8_t **vec, const uint8_t **blob, uint32_t *blob_len);
/* The same for a keyed view: *key and *key_len instead of the id. */
const uint8_t *iqdb__wal_next_key_row(const uint8_t *at, uint32_t dim, const uint8_t **key,
                                      uint32_t *key_len, const uint8_t **vec, const uint8_t **blob,
                                      uint32_t *blob_len);

/* Recovery. `apply` is called for each valid record in order; a non-OK result stops recovery
 * with that code. */
typedef struct iqdb__rec {
    uint8_t type;
    uint64_t lsn;
    const uint8_t *payload;
    uint32_t len;
} iqdb__rec;
typedef int (*iqdb__apply_fn)(void *ctx, const iqdb__rec *r);

typedef struct iqdb__recovery {
    uint64_t last_lsn; /* the last record applied (snapshot LSN when none) */
    int need_reset;    /* the WAL must be reset before records are appended */
    int truncated;     /* a torn tail was cut off (or, read-only, ignored) */
    uint64_t records;  /* records replayed */
} iqdb__recovery;

/* Validates the open WAL `w->f` against the snapshot (generation, LSN) and replays it. With
 * `read_only` nothing is written (a torn tail is only ignored). Sets w->generation, start_lsn
 * and end. IQDB_CORRUPT_WAL, IQDB_BUSY (read-only, a checkpoint is under way), IQDB_NOMEM,
 * IQDB_IOERR_*, or apply's code. */
int iqdb__wal_recover(iqdb__wal *w, uint64_t snap_gen, uint64_t snap_lsn, int read_only,
                      iqdb__apply_fn apply, void *ctx, iqdb__recovery *out);
/* 1 when the WAL file holds anything beyond an (unchecked) header: a database whose snapshot
 * is missing but whose WAL has records must not be recreated empty. */
int iqdb__wal_has_records(iqdb__wal *w, int *has);
/* Re-reads records [HDR, end) and checks every CRC, the generation and the LSN sequence. */
int iqdb__wal_verify(iqdb__wal *w);

#endif
