/*
 * handle.h — the handle (struct iqdb) and what the two API-layer files share: iqdb.c (the
 * public calls, in memory) and durable.c (files, WAL, group commit, checkpoints). Both may take
 * the handle's locks; the modules below them never do.
 *
 * Locks, in the order they may be taken: ckpt_mu (one checkpoint at a time) -> the handle's
 * rwlock -> dur->mu (group-commit state). A writer appends its WAL record while it holds the
 * rwlock exclusively and waits for the fsync after releasing it, so readers and the next
 * writers are never held up by a disk flush.
 */
#ifndef IQDB_HANDLE_H
#define IQDB_HANDLE_H

#include "cache.h"
#include "dist/dist.h"
#include "index/index.h"
#include "index/metric.h"
#include "index/scratch.h"
#include "internal.h"
#include "meta/filter.h"
#include "meta/meta.h"
#include "observe.h"
#include "os/thread.h"
#include "pool.h"
#include "store/store.h"

#define IQDB_MAGIC 0x69716462u /* "iqdb" */

typedef struct iqdb__dur iqdb__dur;

struct iqdb {
    uint32_t magic;
    iqdb__mem mem;
    iqdb_options opts; /* normalised */
    uint32_t dim;
    iqdb_metric metric;
    const iqdb__kernels *kern;
    unsigned threads;
    iqdb__rwlock lock;
    iqdb__store store;
    iqdb__keydict keys;
    iqdb__scratch_pool scratch;
    iqdb__pool *pool;
    iqdb__index *index;
    iqdb__env env;
    iqdb__dur *dur;              /* NULL for an in-memory handle */
    iqdb__cache *cache;          /* NULL without a result cache (cache.h) */
    _Atomic uint64_t interrupts; /* iqdb_interrupt calls so far (observe.h) */
};

/* iqdb.c: applies n upserts under the write lock (the protocol at the top of iqdb.c); `log`
 * makes a durable handle write the WAL record between phase A and phase B, so a failed append
 * leaves nothing behind. Blobs pass in and are freed on every path. *lsn gets the record's LSN
 * (0 when nothing was logged). */
int iqdb__apply_upserts(iqdb *db, size_t n, const iqdb_id *ids, uint8_t **keys, const float *vecs,
                        const float *sqn, uint8_t **blobs, const uint32_t *blob_len,
                        uint32_t *slots, int log, uint64_t *lsn);
/* `keys`: NULL for records named by the u64 `ids`; else n key blocks (store/keys.h) naming them
 * (ids unused), which pass in like the blobs and are freed on every failure path. */

/* iqdb.c: the body of iqdb_upsert_batch and its keyed twin (src/iqdb_keys.c) after the argument
 * checks: ids or keys (as above; keys are freed on every path), vectors, metadata. */
int iqdb__upsert_many(iqdb *db, size_t n, const iqdb_id *ids, uint8_t **keys, const float *vecs,
                      const iqdb_meta *const *metas);
/* iqdb.c: under the read lock, the vector and metadata of a live slot (iqdb_get's output). */
int iqdb__read_slot(iqdb *db, uint32_t slot, float *vec_out, iqdb_meta **meta_out);

#define IQDB__CHECK_DB(db)                                                                  \
    do {                                                                                    \
        if (!(db) || (db)->magic != IQDB_MAGIC)                                             \
            return iqdb__fail(NULL, IQDB_MISUSE, "%s: invalid or closed handle", __func__); \
    } while (0)
/* iqdb.c: validates the parameters an index kind takes (also for parameters read from a file). */
int iqdb__validate_index_options(iqdb_options *o);
/* iqdb.c: the internal kind for the options' index and quantizer (a flat index with a quantizer
 * is the IVF module with one list), or IQDB_UNSUPPORTED / IQDB_INVALID. */
int iqdb__index_kind_from(const iqdb_options *o, iqdb__index_kind *out);

/* durable.c — each is a no-op (IQDB_OK) on an in-memory handle where that makes sense. */
/* Opens or creates the files, loads the snapshot, creates the index, replays the WAL. */
int iqdb__dur_open(iqdb *db, const char *path);
/* Checkpoints if `checkpoint` and needed, stops the sync thread, closes the files. */
int iqdb__dur_close(iqdb *db, int checkpoint);
/* Under the write lock: may this handle write now? (read-only, fatal, a pending WAL reset) */
int iqdb__dur_writable(iqdb *db);
/* Under the write lock: log an upsert in two steps, so that every allocation comes before the
 * index changes: build the record (may fail: IQDB_NOMEM, IQDB_INVALID), then append and publish
 * it (may fail: I/O). A built record that is not appended is simply overwritten by the next. */
int iqdb__dur_build_upsert(iqdb *db, size_t n, const iqdb_id *ids, uint8_t *const *keys,
                           const float *vecs, uint8_t *const *blobs, const uint32_t *lens);
int iqdb__dur_append_built(iqdb *db, uint64_t *lsn);
int iqdb__dur_log_delete(iqdb *db, iqdb_id id, uint64_t *lsn);
int iqdb__dur_log_delete_key(iqdb *db, const uint8_t *key_block, uint64_t *lsn);
/* After the write lock is released: wait for durability (ALWAYS), checkpoint if the WAL is big. */
int iqdb__dur_after_write(iqdb *db, uint64_t lsn);
int iqdb__dur_checkpoint(iqdb *db);
/* With the write lock held: the index changed without a logged write (iqdb_optimize), so the
 * next checkpoint (or close) writes a snapshot even if no record was logged. */
void iqdb__dur_index_changed(iqdb *db);
/* Verifies the files' checksums (iqdb_check). Called with no lock held. */
int iqdb__dur_check(iqdb *db);
void iqdb__dur_stats(iqdb *db, iqdb_stats *s);

#endif
