/*
 * durable.c — the durable half of the API layer: opening and recovering the files, logging
 * writes, group commit, the PERIODIC sync thread, checkpoints, and the on-disk checks. The
 * byte-level work is in persist/; this file owns the state shared between threads and the
 * locks around it (handle.h gives the lock order).
 *
 * Visibility and durability. A write is applied in memory and its record appended to the WAL
 * (a write() to the OS) while the writer holds the handle's write lock; it is then visible to
 * searches. Under ALWAYS the writer then releases the lock and waits until an fsync covering
 * its LSN has completed: the first waiter that finds no fsync running becomes the leader and
 * fsyncs once for every record appended so far; the others sleep and are acknowledged together
 * (group commit). So a search may see a write before it is durable, and the call returns only
 * after it is. The fsync never runs under the rwlock, so searches and the next writers proceed
 * while the disk works.
 *
 * fsync failures (fsyncgate): a failed fsync is never retried — the OS may have dropped the
 * dirty pages and a second fsync would succeed over lost data. The handle turns fatal: the
 * writes waiting on that fsync get IQDB_IOERR_FSYNC, every later write IQDB_FATAL, reads keep
 * working, and a reopen recovers from what is on disk.
 */
#include "handle.h"
#include "os/io.h"
#include "os/vmap.h"
#include "persist/compress.h"
#include "persist/recover.h"
#include "store/keys.h"

#define DEFAULT_PERIOD_MS 1000u
#define DEFAULT_CKPT_BYTES (64ull << 20)

struct iqdb__dur {
    const iqdb__io *io;
    iqdb__paths paths;
    iqdb__wal wal;
    int read_only;
    iqdb_sync sync;
    uint32_t period_ms;
    int codec, level;
    uint64_t ckpt_bytes;
    /* under the write lock (or the read lock plus ckpt_mu, which excludes writers) */
    uint64_t last_lsn;
    uint32_t keys_logged;
    int need_reset;
    int index_dirty; /* the index changed without a logged write (iqdb_optimize) */
    int upgrade;     /* the files are of an older format version: rewrite them at open */
    iqdb__mutex ckpt_mu;
    /* under mu */
    iqdb__mutex mu;
    iqdb__cond cv;
    uint64_t appended_lsn, synced_lsn, ckpt_lsn, generation, wal_bytes, n_syncs, n_ckpts;
    int syncing, fatal, fatal_rc, fatal_errno, stop;
    iqdb__thread thread;
    int has_thread, has_sync;
};

static int fatal_msg(const iqdb *db) {
    return iqdb__fail(db, IQDB_FATAL,
                      "an earlier fsync failed (%s): the handle refuses writes; reopen it",
                      iqdb_errstr(db->dur->fatal_rc));
}

/* ============================================================================================ */
/* Group commit                                                                                 */
/* ============================================================================================ */

/* With mu held: fsync everything appended so far, as the leader. Returns with mu held. */
static void lead_sync(iqdb__dur *d) {
    d->syncing = 1;
    uint64_t target = d->appended_lsn;
    iqdb__mutex_unlock(&d->mu);
    int rc = d->io->sync(d->wal.f);
    iqdb__mutex_lock(&d->mu);
    d->syncing = 0;
    d->n_syncs++;
    if (rc) {
        d->fatal = 1; /* never retried */
        d->fatal_rc = IQDB_IOERR_FSYNC;
        d->fatal_errno = iqdb__io_last_errno();
    } else if (target > d->synced_lsn) {
        d->synced_lsn = target;
    }
    iqdb__cond_broadcast(&d->cv);
}

static int wait_durable(iqdb *db, uint64_t lsn) {
    iqdb__dur *d = db->dur;
    int rc = IQDB_OK;
    iqdb__mutex_lock(&d->mu);
    while (d->synced_lsn < lsn) {
        if (d->fatal) {
            rc = d->fatal_rc;
            break;
        }
        if (d->syncing)
            iqdb__cond_wait(&d->cv, &d->mu);
        else
            lead_sync(d);
    }
    iqdb__mutex_unlock(&d->mu);
    if (rc) {
        iqdb__log(db, IQDB_LOG_ERROR, "fsync of the WAL failed (errno %d): the handle is fatal",
                  d->fatal_errno);
        return iqdb__fail(db, rc,
                          "fsync of the WAL failed (errno %d): this write may or may not survive "
                          "a reopen, and the handle now refuses writes",
                          d->fatal_errno);
    }
    return IQDB_OK;
}

/* PERIODIC: sync whatever was appended, every period, also when no more writes come. */
static void *sync_thread(void *arg) {
    iqdb__dur *d = arg;
    iqdb__mutex_lock(&d->mu);
    while (!d->stop) {
        iqdb__cond_timedwait(&d->cv, &d->mu, d->period_ms);
        if (!d->stop && !d->fatal && !d->syncing && d->appended_lsn > d->synced_lsn) lead_sync(d);
    }
    iqdb__mutex_unlock(&d->mu);
    return NULL;
}

/* ============================================================================================ */
/* Logging writes                                                                               */
/* ============================================================================================ */

int iqdb__dur_writable(iqdb *db) {
    iqdb__dur *d = db->dur;
    if (d->read_only) return iqdb__fail(db, IQDB_READONLY, "the handle is read-only");
    iqdb__mutex_lock(&d->mu);
    int fatal = d->fatal;
    iqdb__mutex_unlock(&d->mu);
    if (fatal) return fatal_msg(db);
    if (d->need_reset) {
        /* A checkpoint made its snapshot durable but could not reset the WAL: do it now, before
         * any record is appended to the old generation. */
        int rc = iqdb__wal_reset(&d->wal, d->generation, d->ckpt_lsn + 1);
        if (rc == IQDB_IOERR_FSYNC) {
            iqdb__mutex_lock(&d->mu);
            d->fatal = 1;
            d->fatal_rc = rc;
            iqdb__mutex_unlock(&d->mu);
        }
        if (rc) return iqdb__fail_retag(db, rc);
        d->need_reset = 0;
        iqdb__mutex_lock(&d->mu);
        d->wal_bytes = d->wal.end;
        iqdb__mutex_unlock(&d->mu);
    }
    return IQDB_OK;
}

static uint64_t synced_now(iqdb__dur *d) {
    iqdb__mutex_lock(&d->mu);
    uint64_t s = d->synced_lsn;
    iqdb__mutex_unlock(&d->mu);
    return s;
}

/* Appends the built record and publishes it to the group commit. */
static int append_built(iqdb *db, uint64_t *lsn) {
    iqdb__dur *d = db->dur;
    int rc = iqdb__wal_append(&d->wal);
    if (rc) return iqdb__fail_retag(db, rc);
    d->last_lsn = d->wal.rec_lsn;
    d->keys_logged = (uint32_t)db->keys.n;
    iqdb__mutex_lock(&d->mu);
    d->appended_lsn = d->last_lsn;
    d->wal_bytes = d->wal.end;
    iqdb__mutex_unlock(&d->mu);
    *lsn = d->last_lsn;
    return IQDB_OK;
}

int iqdb__dur_build_upsert(iqdb *db, size_t n, const iqdb_id *ids, uint8_t *const *keys,
                           const float *vecs, uint8_t *const *blobs, const uint32_t *lens) {
    iqdb__dur *d = db->dur;
    int rc = iqdb__wal_build_upsert(&d->wal, d->last_lsn + 1, synced_now(d), n, db->dim, ids, keys,
                                    vecs, blobs, lens, &db->keys, d->keys_logged);
    return rc ? iqdb__fail_retag(db, rc) : IQDB_OK;
}

int iqdb__dur_append_built(iqdb *db, uint64_t *lsn) { return append_built(db, lsn); }

int iqdb__dur_log_delete(iqdb *db, iqdb_id id, uint64_t *lsn) {
    iqdb__dur *d = db->dur;
    int rc = iqdb__wal_build_delete(&d->wal, d->last_lsn + 1, synced_now(d), id);
    if (rc) return iqdb__fail_retag(db, rc);
    return append_built(db, lsn);
}

int iqdb__dur_log_delete_key(iqdb *db, const uint8_t *key_block, uint64_t *lsn) {
    iqdb__dur *d = db->dur;
    int rc = iqdb__wal_build_delete_key(&d->wal, d->last_lsn + 1, synced_now(d),
                                        iqdb__key_block_bytes(key_block),
                                        iqdb__key_block_len(key_block));
    if (rc) return iqdb__fail_retag(db, rc);
    return append_built(db, lsn);
}

int iqdb__dur_after_write(iqdb *db, uint64_t lsn) {
    iqdb__dur *d = db->dur;
    if (d->sync == IQDB_SYNC_ALWAYS) IQDB_TRY(wait_durable(db, lsn));
    iqdb__mutex_lock(&d->mu);
    int big = d->wal_bytes > d->ckpt_bytes && !d->fatal;
    iqdb__mutex_unlock(&d->mu);
    if (big) iqdb__dur_checkpoint(db); /* the write is durable already; a failure shows later */
    return IQDB_OK;
}

/* ============================================================================================ */
/* Checkpoints                                                                                  */
/* ============================================================================================ */

static iqdb__params params_of(const iqdb_options *o) {
    iqdb__params p = {o->index,
                      o->hnsw.m,
                      o->hnsw.ef_construction,
                      o->hnsw.ef_search,
                      o->hnsw.filter_widen,
                      o->hnsw.seed,
                      o->ivf.n_lists,
                      o->ivf.n_probes,
                      o->ivf.train_sample,
                      o->quant.kind,
                      o->quant.pq_m,
                      o->quant.oversample,
                      o->quant.flags};
    return p;
}

static int ckpt_progress(void *ud, uint64_t done) { return iqdb__long_check(ud, done) != IQDB_OK; }

/* With ckpt_mu and the read lock held: writers are excluded, searches go on. */
static int checkpoint_locked(iqdb *db) {
    iqdb__dur *d = db->dur;
    iqdb__mutex_lock(&d->mu);
    int fatal = d->fatal;
    uint64_t gen = d->generation, ckpt_lsn = d->ckpt_lsn;
    iqdb__mutex_unlock(&d->mu);
    if (fatal) return fatal_msg(db);
    if (d->last_lsn == ckpt_lsn && !d->need_reset && !d->upgrade && !d->index_dirty)
        return IQDB_OK; /* nothing new */
    iqdb__snap_src src = {db->dim,    db->metric,  params_of(&db->opts),
                          gen + 1,    d->last_lsn, &db->keys,
                          &db->store, db->index,   &db->env,
                          NULL,       NULL};
    /* progress in raw bytes against an estimate of the rows' size */
    iqdb__long lc;
    iqdb__long_begin(db, &lc, IQDB_PROGRESS_CHECKPOINT,
                     iqdb__store_mem_vectors(&db->store) + iqdb__store_mem_rows(&db->store) +
                         iqdb__store_mem_meta(&db->store) + iqdb__index_mem(db->index));
    src.progress = ckpt_progress;
    src.progress_ud = &lc;
    uint64_t t0 = iqdb__now_ns();
    iqdb__ckpt_stage stage;
    uint64_t bytes = 0;
    int rc = iqdb__checkpoint_files(d->io, &d->paths, &src, d->codec, d->level, &db->mem, &d->wal,
                                    &stage, &bytes);
    iqdb__mutex_lock(&d->mu);
    if (stage >= IQDB__CKPT_SWITCHED) {
        d->index_dirty = 0;
        /* The snapshot holds every applied write: waiters on a WAL fsync are covered by it. */
        d->generation = gen + 1;
        d->ckpt_lsn = d->last_lsn;
        if (d->synced_lsn < d->last_lsn) d->synced_lsn = d->last_lsn;
        d->n_ckpts++;
        d->index_dirty = 0;
        d->need_reset = stage == IQDB__CKPT_SWITCHED;
        d->upgrade = 0;
        if (stage == IQDB__CKPT_DONE) d->wal_bytes = d->wal.end;
    }
    if (stage == IQDB__CKPT_UNKNOWN || (stage == IQDB__CKPT_SWITCHED && rc == IQDB_IOERR_FSYNC)) {
        d->fatal = 1;
        d->fatal_rc = rc;
    }
    iqdb__cond_broadcast(&d->cv);
    iqdb__mutex_unlock(&d->mu);
    if (rc == IQDB_OK)
        iqdb__log(db, IQDB_LOG_INFO, "checkpoint: generation %llu, LSN %llu, %llu bytes, %.1f ms",
                  (unsigned long long)(gen + 1), (unsigned long long)d->last_lsn,
                  (unsigned long long)bytes, (double)(iqdb__now_ns() - t0) / 1e6);
    else if (rc != IQDB_INTERRUPTED)
        iqdb__log(db, IQDB_LOG_ERROR, "checkpoint failed: %s (%s)", iqdb_errstr(rc),
                  iqdb_errmsg(NULL));
    return rc;
}

void iqdb__dur_index_changed(iqdb *db) {
    if (db->dur) db->dur->index_dirty = 1;
}

int iqdb__dur_checkpoint(iqdb *db) {
    iqdb__dur *d = db->dur;
    if (!d) return IQDB_OK;
    if (d->read_only) return iqdb__fail(db, IQDB_READONLY, "the handle is read-only");
    iqdb__mutex_lock(&d->ckpt_mu);
    iqdb__rwlock_rdlock(&db->lock);
    int rc = checkpoint_locked(db);
    iqdb__rwlock_rdunlock(&db->lock);
    iqdb__mutex_unlock(&d->ckpt_mu);
    return rc ? iqdb__fail_retag(db, rc) : IQDB_OK;
}

/* ============================================================================================ */
/* Opening                                                                                      */
/* ============================================================================================ */

/* Replays one WAL record through the same code as a live write (without logging it again). */
static int apply_delete(iqdb *db, const iqdb__rec *r) {
    uint32_t slot;
    if (r->type == IQDB__REC_DELETE_KEY) {
        if (r->len == 0 || r->len > IQDB_MAX_ID_KEY_LEN) return IQDB_CORRUPT_WAL;
        slot = iqdb__store_key_find(&db->store, r->payload, r->len);
        if (slot != IQDB__NO_SLOT) iqdb__store_key_unbind(&db->store, slot);
    } else {
        if (r->len != 8) return IQDB_CORRUPT_WAL;
        slot = iqdb__idmap_remove(&db->store.map, iqdb__get64(r->payload));
    }
    if (slot == IQDB__NO_SLOT) return IQDB_CORRUPT_WAL; /* only present ids are logged */
    iqdb__index_remove(db->index, &db->env, slot);
    iqdb__store_remove(&db->store, slot);
    return IQDB_OK;
}

/* Decodes the rows of a parsed upsert into arrays and applies them. */
static int apply_rows(iqdb *db, const iqdb__upsert_view *v) {
    size_t n = v->n,
           per = sizeof(iqdb_id) + 2 * sizeof(uint8_t *) + sizeof(float) + 2 * sizeof(uint32_t);
    size_t vbytes = n * db->dim * sizeof(float), bytes = n * per + vbytes;
    uint8_t *block = iqdb__alloc(&db->mem, bytes);
    if (!block) return IQDB_NOMEM;
    float *vecs = (float *)block; /* first, so it is aligned */
    iqdb_id *ids = (iqdb_id *)(block + vbytes);
    uint8_t **blobs = (uint8_t **)(ids + n), **keys = blobs + n;
    float *sqn = (float *)(keys + n);
    uint32_t *lens = (uint32_t *)(sqn + n), *slots = lens + n;
    const uint8_t *at = v->rows;
    int rc = IQDB_OK;
    size_t i;
    for (i = 0; i < n && rc == IQDB_OK; i++) {
        const uint8_t *vec, *blob, *key = NULL;
        uint32_t klen = 0;
        if (v->keyed)
            at = iqdb__wal_next_key_row(at, db->dim, &key, &klen, &vec, &blob, &lens[i]);
        else
            at = iqdb__wal_next_row(at, db->dim, &ids[i], &vec, &blob, &lens[i]);
        iqdb__get_f32s(vecs + i * db->dim, vec, db->dim);
        blobs[i] = keys[i] = NULL;
        if (key && !(keys[i] = iqdb__key_block_new(&db->mem, key, klen))) {
            rc = IQDB_NOMEM;
        } else if (!iqdb__all_finite(vecs + i * db->dim, db->dim) ||
                   iqdb__meta_blob_check(lens[i] ? blob : NULL, lens[i], db->keys.n)) {
            rc = IQDB_CORRUPT_WAL;
        } else if (lens[i] && !(blobs[i] = iqdb__alloc(&db->mem, lens[i]))) {
            rc = IQDB_NOMEM;
        } else {
            if (lens[i]) memcpy(blobs[i], blob, lens[i]);
            sqn[i] = db->kern->pair[IQDB__OP_DOT](vecs + i * db->dim, vecs + i * db->dim, db->dim);
        }
    }
    if (rc == IQDB_OK) {
        uint64_t lsn;
        rc = iqdb__apply_upserts(db, n, ids, v->keyed ? keys : NULL, vecs, sqn, blobs, lens, slots,
                                 0, &lsn);
    } else {
        for (size_t j = 0; j < i; j++) {
            iqdb__free(&db->mem, blobs[j], lens[j]);
            iqdb__key_block_free(&db->mem, keys[j]);
        }
    }
    iqdb__free(&db->mem, block, bytes);
    return rc;
}

static int apply_record(void *ctx, const iqdb__rec *r) {
    iqdb *db = ctx;
    if (r->type == IQDB__REC_DELETE || r->type == IQDB__REC_DELETE_KEY) return apply_delete(db, r);
    iqdb__upsert_view v;
    if (iqdb__wal_parse_upsert(r->payload, r->len, db->dim, r->type == IQDB__REC_UPSERT_KEY, &v) ||
        v.first_key != db->keys.n)
        return IQDB_CORRUPT_WAL;
    const uint8_t *at = v.keys;
    for (uint32_t k = 0; k < v.n_keys; k++) {
        const char *key;
        uint32_t len;
        at = iqdb__wal_next_key(at, &key, &len);
        int rc = iqdb__keydict_add_new(&db->keys, key, len);
        if (rc) return rc == IQDB_CORRUPT ? IQDB_CORRUPT_WAL : rc;
    }
    return apply_rows(db, &v);
}

/* Loads an existing snapshot: dim and metric must match; the index comes from the file. */
static int load_snapshot(iqdb *db) {
    iqdb__dur *d = db->dur;
    iqdb__snap_reader r;
    IQDB_TRY(iqdb__snapshot_open(&r, d->io, d->paths.snap, &db->mem));
    int rc = IQDB_OK;
    if (r.dim != db->dim || r.metric != db->metric) {
        rc = iqdb__fail(NULL, IQDB_MISMATCH,
                        "%s holds dim %u, metric %d; the options ask for dim %u, metric %d",
                        d->paths.snap, r.dim, (int)r.metric, db->dim, (int)db->metric);
    } else {
        iqdb_options o = db->opts;
        o.index = r.params.index;
        o.hnsw.m = r.params.m;
        o.hnsw.ef_construction = r.params.ef_construction;
        o.hnsw.ef_search = r.params.ef_search;
        o.hnsw.filter_widen = r.params.filter_widen;
        o.hnsw.seed = r.params.seed;
        o.ivf.n_lists = r.params.n_lists;
        o.ivf.n_probes = r.params.n_probes;
        o.ivf.train_sample = r.params.train_sample;
        o.quant.kind = r.params.quant;
        o.quant.pq_m = r.params.pq_m;
        o.quant.oversample = r.params.oversample;
        o.quant.flags = r.params.quant_flags;
        iqdb__index_kind kind;
        rc = iqdb__validate_index_options(&o);
        if (rc == IQDB_INVALID)
            rc = iqdb__fail(NULL, IQDB_CORRUPT_SNAPSHOT, "snapshot: bad index parameters");
        if (rc == IQDB_OK && (o.quant.flags & IQDB_QUANT_CODES_ONLY)) /* never written */
            rc = iqdb__fail(NULL, IQDB_CORRUPT_SNAPSHOT, "snapshot: a codes-only quantizer");
        if (rc == IQDB_OK) rc = iqdb__index_kind_from(&o, &kind);
        if (rc == IQDB_OK) {
            db->opts = o; /* the index reads its parameters from env.opts when created */
            rc = iqdb__index_create(kind, &db->env, &db->index);
        }
        if (rc == IQDB_OK) rc = iqdb__snapshot_load(&r, &db->keys, &db->store, db->index, &db->env);
    }
    d->generation = r.generation;
    d->ckpt_lsn = r.lsn;
    d->upgrade = r.version < IQDB__FORMAT_VERSION;
    iqdb__snapshot_close(&r);
    return rc;
}

/* No snapshot: a new database (or one whose creation was interrupted) — unless the WAL has
 * records, which would mean the snapshot was lost. */
static int create_database(iqdb *db) {
    iqdb__dur *d = db->dur;
    if (d->read_only) return iqdb__fail(NULL, IQDB_NOTFOUND, "no database at %s", d->paths.snap);
    int has;
    IQDB_TRY(iqdb__wal_has_records(&d->wal, &has));
    if (has)
        return iqdb__fail(NULL, IQDB_CORRUPT_SNAPSHOT,
                          "%s is missing but its WAL holds records: refusing to start empty",
                          d->paths.snap);
    iqdb__index_kind kind;
    IQDB_TRY(iqdb__index_kind_from(&db->opts, &kind));
    IQDB_TRY(iqdb__index_create(kind, &db->env, &db->index));
    iqdb__snap_src src = {
        db->dim, db->metric, params_of(&db->opts), 1, 0, &db->keys, &db->store, db->index, &db->env,
        NULL,    NULL};
    iqdb__ckpt_stage stage;
    uint64_t bytes;
    IQDB_TRY(iqdb__checkpoint_files(d->io, &d->paths, &src, d->codec, d->level, &db->mem, &d->wal,
                                    &stage, &bytes));
    d->generation = 1;
    d->ckpt_lsn = 0;
    return IQDB_OK;
}

static int open_files(iqdb *db) {
    iqdb__dur *d = db->dur;
    const iqdb__io *io = d->io;
    int rc;
    if (d->read_only) {
        int ex;
        IQDB_TRY(io->exists(io, d->paths.snap, &ex));
        if (!ex) return iqdb__fail(NULL, IQDB_NOTFOUND, "no database at %s", d->paths.snap);
        IQDB_TRY(io->exists(io, d->paths.wal, &ex));
        if (!ex) return IQDB_OK; /* nothing to replay */
        rc = io->open(io, d->paths.wal, IQDB__IO_READ, &d->wal.f);
        if (rc)
            return iqdb__fail(NULL, rc, "opening %s failed (errno %d)", d->paths.wal,
                              iqdb__io_last_errno());
        return IQDB_OK;
    }
    rc = io->open(io, d->paths.wal, IQDB__IO_READ | IQDB__IO_WRITE | IQDB__IO_CREATE, &d->wal.f);
    if (rc)
        return iqdb__fail(NULL, rc, "opening %s failed (errno %d)", d->paths.wal,
                          iqdb__io_last_errno());
    rc = io->lock(d->wal.f);
    if (rc == IQDB_BUSY)
        return iqdb__fail(NULL, rc, "%s is open for writing by another handle", d->paths.snap);
    if (rc) return iqdb__fail(NULL, rc, "locking %s failed", d->paths.wal);
    /* a checkpoint that never finished (only ever removed under the lock) */
    rc = io->remove(io, d->paths.tmp);
    return rc ? iqdb__fail(NULL, rc, "removing %s failed", d->paths.tmp) : IQDB_OK;
}

static int recover(iqdb *db) {
    iqdb__dur *d = db->dur;
    int ex;
    IQDB_TRY(d->io->exists(d->io, d->paths.snap, &ex));
    IQDB_TRY(ex ? load_snapshot(db) : create_database(db));
    iqdb__recovery rec = {d->ckpt_lsn, 0, 0, 0};
    if (!d->wal.f) { /* read-only, no WAL */
        d->last_lsn = d->appended_lsn = d->synced_lsn = d->ckpt_lsn;
        return IQDB_OK;
    }
    int rc = iqdb__wal_recover(&d->wal, d->generation, d->ckpt_lsn, d->read_only, apply_record, db,
                               &rec);
    if (rc == IQDB_CORRUPT_WAL && *iqdb_errmsg(NULL) == '\0')
        rc = iqdb__fail(NULL, rc, "a WAL record is malformed");
    if (rc == IQDB_NOMEM) rc = iqdb__nomem(NULL);
    IQDB_TRY(rc);
    iqdb__wal_trim(&d->wal); /* the largest replayed record's buffer */
    if (rec.truncated)
        iqdb__log(db, IQDB_LOG_WARN, "%s: a torn tail (an interrupted last write) was cut off",
                  d->paths.wal);
    if (rec.records)
        iqdb__log(db, IQDB_LOG_INFO, "%s: replayed %llu records", d->paths.wal,
                  (unsigned long long)rec.records);
    d->last_lsn = rec.last_lsn;
    d->keys_logged = (uint32_t)db->keys.n;
    if (!d->read_only) {
        if (rec.need_reset) IQDB_TRY(iqdb__wal_reset(&d->wal, d->generation, d->ckpt_lsn + 1));
        /* What was replayed may have lived only in the OS cache (after a process crash): make it
         * durable now, since later records will claim it is. */
        else if (rec.records && d->io->sync(d->wal.f))
            return iqdb__fail(NULL, IQDB_IOERR_FSYNC, "fsync of the WAL failed (errno %d)",
                              iqdb__io_last_errno());
    }
    d->appended_lsn = d->synced_lsn = d->last_lsn;
    d->wal_bytes = d->wal.end;
    if (d->wal.version < IQDB__FORMAT_VERSION) d->upgrade = 1;
    return IQDB_OK;
}

static int dur_alloc(iqdb *db, const char *path, iqdb__dur **out) {
    iqdb__dur *d = iqdb__calloc(&db->mem, 1, sizeof *d);
    if (!d) return IQDB_NOMEM;
    if (iqdb__paths_init(&d->paths, path, &db->mem)) {
        iqdb__free(&db->mem, d, sizeof *d);
        return IQDB_NOMEM;
    }
    if (iqdb__mutex_init(&d->mu) || iqdb__cond_init(&d->cv) || iqdb__mutex_init(&d->ckpt_mu)) {
        /* (these do not fail on the platforms iqdb runs on; treated as memory exhaustion) */
        iqdb__paths_free(&d->paths, &db->mem);
        iqdb__free(&db->mem, d, sizeof *d);
        return IQDB_NOMEM;
    }
    *out = d;
    return IQDB_OK;
}

/* IQDB_VECTORS_IN_FILE: "<path>.vec" backs the store's vector chunks (os/vmap.h). Opened after
 * the WAL lock is held (no other writer can be using the name) and before anything is loaded. */
static int open_vector_file(iqdb *db) {
    iqdb__dur *d = db->dur;
    char *name = iqdb__paths_sibling(&d->paths, ".vec", &db->mem);
    if (!name) return iqdb__nomem(NULL);
    iqdb__vmap *v;
    int rc = iqdb__vmap_create(&db->mem, name, &v);
    iqdb__free(&db->mem, name, d->paths.len + 5);
    IQDB_TRY(rc);
    return iqdb__store_use_vmap(&db->store, v);
}

int iqdb__dur_open(iqdb *db, const char *path) {
    iqdb__dur *d;
    IQDB_TRY(dur_alloc(db, path, &d));
    db->dur = d;
    const iqdb_options *o = &db->opts;
    d->io = iqdb__io_default();
    d->read_only = o->read_only != 0;
    d->sync = o->sync == IQDB_SYNC_DEFAULT ? IQDB_SYNC_ALWAYS : o->sync;
    d->period_ms = o->sync_period_ms ? o->sync_period_ms : DEFAULT_PERIOD_MS;
    d->ckpt_bytes = o->checkpoint_bytes ? o->checkpoint_bytes : DEFAULT_CKPT_BYTES;
    IQDB_TRY(iqdb__codec_choose(o->compression, o->compression_level, &d->codec, &d->level));
    d->wal.io = d->io;
    d->wal.mem = &db->mem;
    IQDB_TRY(open_files(db));
    if (o->flags & IQDB_VECTORS_IN_FILE) IQDB_TRY(open_vector_file(db));
    IQDB_TRY(recover(db));
    if (d->upgrade && !d->read_only) {
        /* Files of an older format version are rewritten as the current one before anything
         * is appended, so no file ever mixes versions (an older library would misread it). */
        iqdb__mutex_lock(&d->ckpt_mu);
        iqdb__rwlock_rdlock(&db->lock);
        int rc = checkpoint_locked(db);
        iqdb__rwlock_rdunlock(&db->lock);
        iqdb__mutex_unlock(&d->ckpt_mu);
        IQDB_TRY(rc);
    }
    if (d->sync == IQDB_SYNC_PERIODIC && !d->read_only) {
        if (iqdb__thread_create(&d->thread, sync_thread, d))
            return iqdb__fail(NULL, IQDB_NOMEM, "could not start the sync thread");
        d->has_thread = 1;
    }
    return IQDB_OK;
}

int iqdb__dur_close(iqdb *db, int checkpoint) {
    iqdb__dur *d = db->dur;
    if (!d) return IQDB_OK;
    int rc = IQDB_OK;
    if (checkpoint && !d->read_only) {
        rc = iqdb__dur_checkpoint(db);
        if (rc == IQDB_OK && d->sync != IQDB_SYNC_NEVER) {
            /* nothing to checkpoint can still leave unsynced records (a failed reset) */
            iqdb__mutex_lock(&d->mu);
            if (!d->fatal && !d->syncing && d->appended_lsn > d->synced_lsn) lead_sync(d);
            if (d->fatal) rc = IQDB_FATAL;
            iqdb__mutex_unlock(&d->mu);
        }
    }
    if (d->has_thread) {
        iqdb__mutex_lock(&d->mu);
        d->stop = 1;
        iqdb__cond_broadcast(&d->cv);
        iqdb__mutex_unlock(&d->mu);
        iqdb__thread_join(d->thread);
    }
    if (d->wal.f) {
        int crc = d->io->close(d->wal.f);
        if (rc == IQDB_OK && crc && !d->read_only)
            rc = iqdb__fail(db, crc, "closing the WAL failed");
    }
    iqdb__wal_destroy(&d->wal);
    iqdb__cond_destroy(&d->cv);
    iqdb__mutex_destroy(&d->mu);
    iqdb__mutex_destroy(&d->ckpt_mu);
    iqdb__paths_free(&d->paths, &db->mem);
    iqdb__free(&db->mem, d, sizeof *d);
    db->dur = NULL;
    return rc;
}

/* ============================================================================================ */
/* Checks and stats                                                                             */
/* ============================================================================================ */

int iqdb__dur_check(iqdb *db) {
    iqdb__dur *d = db->dur;
    iqdb__mutex_lock(&d->ckpt_mu);  /* the files do not change under us: no checkpoint... */
    iqdb__rwlock_rdlock(&db->lock); /* ...and no append */
    iqdb__snap_reader r;
    int rc = iqdb__snapshot_open(&r, d->io, d->paths.snap, &db->mem);
    if (rc == IQDB_OK) {
        rc = iqdb__snapshot_verify(&r);
        if (rc == IQDB_OK && (r.generation != d->generation || r.lsn != d->ckpt_lsn))
            rc = iqdb__fail(NULL, IQDB_CORRUPT_SNAPSHOT,
                            "the snapshot on disk is not this handle's");
        iqdb__snapshot_close(&r);
    }
    if (rc == IQDB_OK && d->wal.f && !d->need_reset) rc = iqdb__wal_verify(&d->wal);
    iqdb__rwlock_rdunlock(&db->lock);
    iqdb__mutex_unlock(&d->ckpt_mu);
    return rc == IQDB_NOMEM ? iqdb__nomem(db) : rc;
}

void iqdb__dur_stats(iqdb *db, iqdb_stats *s) {
    iqdb__dur *d = db->dur;
    if (!d) return;
    s->durable = 1;
    s->read_only = d->read_only;
    s->sync = d->sync;
    s->last_lsn = d->last_lsn;
    iqdb__mutex_lock(&d->mu);
    s->fatal = d->fatal;
    s->durable_lsn = d->synced_lsn;
    s->checkpoint_lsn = d->ckpt_lsn;
    s->generation = d->generation;
    s->wal_bytes = d->wal_bytes;
    s->wal_syncs = d->n_syncs;
    s->checkpoints = d->n_ckpts;
    iqdb__mutex_unlock(&d->mu);
}
