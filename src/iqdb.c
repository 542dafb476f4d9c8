/*
 * iqdb.c — the API layer: argument checks, handle state, the reader–writer lock, error capture;
 * then the modules (store, meta, index) do the work, single-threaded, under the lock taken here.
 *
 * The write protocol (upsert, upsert_batch) is what makes every write all or nothing:
 *   1. everything that can fail without touching the database runs first: argument checks,
 *      norms, metadata encoding, capacity reservation in the store and the id map;
 *   2. phase A adds each new version in a fresh slot, then inserts all of them into the index
 *      at once (all or nothing: an index may build them in parallel); a failure there removes
 *      the new slots again;
 *   3. phase B, which cannot fail, points each id at its new slot and drops the old version.
 * Searches hold the lock shared, so they never see a half-applied write.
 *
 * A durable handle (durable.c) logs each write between phase A and phase B, so the WAL record
 * is appended only for a write that will certainly apply; a failed append is undone like a
 * failed insert. The wait for its fsync happens after the lock is released (group commit).
 */
#include <stddef.h>

#include "handle.h"
#include "persist/compress.h"
#include "persist/format.h"
#include "store/keys.h"

iqdb__index *iqdb__db_index(iqdb *db) { return db->index; }
const iqdb__env *iqdb__db_env(iqdb *db) { return &db->env; }

const char *iqdb_version(void) { return IQDB_VERSION_STRING; }
uint32_t iqdb_version_number(void) { return IQDB_VERSION_NUMBER; }

#define CHECK_DB(db)                                                                        \
    do {                                                                                    \
        if (!(db) || (db)->magic != IQDB_MAGIC)                                             \
            return iqdb__fail(NULL, IQDB_MISUSE, "%s: invalid or closed handle", __func__); \
    } while (0)

/* ============================================================================================ */
/* Options                                                                                      */
/* ============================================================================================ */

/* Reads a caller struct of `size` bytes into a zeroed library struct of `ours` bytes: fields past
 * the caller's size keep their defaults, and caller bytes past ours must be zero. */
static int read_versioned(const void *in, size_t size, void *out, size_t ours, size_t min_size,
                          const char *what) {
    if (size < min_size)
        return iqdb__fail(NULL, IQDB_MISUSE, "%s: struct_size %zu is too small (init it first)",
                          what, size);
    memset(out, 0, ours);
    memcpy(out, in, size < ours ? size : ours);
    for (size_t i = ours; i < size; i++)
        if (((const unsigned char *)in)[i])
            return iqdb__fail(NULL, IQDB_UNSUPPORTED,
                              "%s: the caller's struct has fields this library (%s) does not know",
                              what, IQDB_VERSION_STRING);
    return IQDB_OK;
}

static int parse_simd_env(iqdb_simd *out) {
    const char *e = getenv("IQDB_SIMD");
    *out = IQDB_SIMD_AUTO;
    if (!e || !*e || strcmp(e, "auto") == 0) return IQDB_OK;
    static const iqdb_simd all[] = {IQDB_SIMD_SCALAR, IQDB_SIMD_AVX2, IQDB_SIMD_AVX512,
                                    IQDB_SIMD_NEON};
    for (size_t i = 0; i < IQDB_ARRAY_LEN(all); i++)
        if (strcmp(e, iqdb_simd_name(all[i])) == 0) {
            *out = all[i];
            return IQDB_OK;
        }
    return iqdb__fail(NULL, IQDB_INVALID,
                      "IQDB_SIMD=%s is not one of auto, scalar, avx2, avx512, neon", e);
}

static int validate_durability(const iqdb_options *o);

static int validate_options(iqdb_options *o) {
    if (o->dim == 0 || o->dim > IQDB_MAX_DIM)
        return iqdb__fail(NULL, IQDB_INVALID, "dim %u is outside 1..%u", o->dim, IQDB_MAX_DIM);
    if ((unsigned)o->metric > IQDB_METRIC_HAMMING)
        return iqdb__fail(NULL, IQDB_INVALID, "unknown metric %d", (int)o->metric);
    if (o->metric == IQDB_METRIC_DEFAULT) o->metric = IQDB_METRIC_L2;
    if ((unsigned)o->index > IQDB_INDEX_IVF)
        return iqdb__fail(NULL, IQDB_INVALID, "unknown index kind %d", (int)o->index);
    if (o->index == IQDB_INDEX_DEFAULT) o->index = IQDB_INDEX_FLAT;
    if ((unsigned)o->simd > IQDB_SIMD_NEON)
        return iqdb__fail(NULL, IQDB_INVALID, "unknown simd level %d", (int)o->simd);
    if (o->threads > IQDB_MAX_THREADS)
        return iqdb__fail(NULL, IQDB_INVALID, "threads %u exceeds %u", o->threads,
                          IQDB_MAX_THREADS);
    if (o->flags & ~IQDB_VECTORS_IN_FILE)
        return iqdb__fail(NULL, IQDB_INVALID, "flags 0x%x has unknown bits", o->flags);
    IQDB_TRY(iqdb__mem_check(&o->allocator));
    IQDB_TRY(validate_durability(o));
    IQDB_TRY(iqdb__cache_validate(o));
    if ((unsigned)o->log_level > IQDB_LOG_DEBUG)
        return iqdb__fail(NULL, IQDB_INVALID, "unknown log level %d", (int)o->log_level);
    return iqdb__validate_index_options(o);
}

static int validate_durability(const iqdb_options *o) {
    if ((unsigned)o->sync > IQDB_SYNC_NEVER)
        return iqdb__fail(NULL, IQDB_INVALID, "unknown sync policy %d", (int)o->sync);
    if (o->sync_period_ms > 3600000u)
        return iqdb__fail(NULL, IQDB_INVALID, "sync_period_ms %u exceeds 3,600,000",
                          o->sync_period_ms);
    if (o->durability_reserved)
        return iqdb__fail(NULL, IQDB_INVALID, "durability_reserved must be 0");
    int codec, level;
    return iqdb__codec_choose(o->compression, o->compression_level, &codec, &level);
}

int iqdb__validate_index_options(iqdb_options *o) {
    /* HNSW parameters (validated whatever the index, so a typo never hides) */
    if (o->hnsw.m && (o->hnsw.m < 2 || o->hnsw.m > 128))
        return iqdb__fail(NULL, IQDB_INVALID, "hnsw.m %u is outside 2..128", o->hnsw.m);
    uint32_t m = o->hnsw.m ? o->hnsw.m : 16;
    if (o->hnsw.ef_construction &&
        (o->hnsw.ef_construction < m || o->hnsw.ef_construction > 100000))
        return iqdb__fail(NULL, IQDB_INVALID, "hnsw.ef_construction %u is outside m..100000",
                          o->hnsw.ef_construction);
    if (o->hnsw.ef_search > 100000)
        return iqdb__fail(NULL, IQDB_INVALID, "hnsw.ef_search %u exceeds 100000",
                          o->hnsw.ef_search);
    if (o->hnsw.filter_widen > 1024)
        return iqdb__fail(NULL, IQDB_INVALID, "hnsw.filter_widen %u exceeds 1024",
                          o->hnsw.filter_widen);
    if (o->ivf.n_lists > (1u << 20))
        return iqdb__fail(NULL, IQDB_INVALID, "ivf.n_lists %u exceeds %u", o->ivf.n_lists,
                          1u << 20);
    if (o->ivf.n_lists && o->ivf.n_probes > o->ivf.n_lists)
        return iqdb__fail(NULL, IQDB_INVALID, "ivf.n_probes %u exceeds ivf.n_lists %u",
                          o->ivf.n_probes, o->ivf.n_lists);
    if (o->ivf.n_probes > (1u << 20))
        return iqdb__fail(NULL, IQDB_INVALID, "ivf.n_probes %u exceeds %u", o->ivf.n_probes,
                          1u << 20);
    if (o->ivf.reserved) return iqdb__fail(NULL, IQDB_INVALID, "ivf.reserved must be 0");
    /* quantizer (also validated whatever the index) */
    if ((unsigned)o->quant.kind > IQDB_QUANT_PQ)
        return iqdb__fail(NULL, IQDB_INVALID, "unknown quant.kind %d", (int)o->quant.kind);
    if (o->quant.pq_m > o->dim)
        return iqdb__fail(NULL, IQDB_INVALID, "quant.pq_m %u exceeds dim %u", o->quant.pq_m,
                          o->dim);
    if (o->quant.oversample > IQDB_MAX_OVERSAMPLE)
        return iqdb__fail(NULL, IQDB_INVALID, "quant.oversample %u exceeds %u", o->quant.oversample,
                          IQDB_MAX_OVERSAMPLE);
    if (o->quant.flags & ~IQDB_QUANT_CODES_ONLY)
        return iqdb__fail(NULL, IQDB_INVALID, "quant.flags 0x%x has unknown bits", o->quant.flags);
    if ((o->quant.flags & IQDB_QUANT_CODES_ONLY) && o->quant.kind != IQDB_QUANT_SQ8 &&
        o->quant.kind != IQDB_QUANT_BINARY)
        return iqdb__fail(NULL, IQDB_INVALID,
                          "IQDB_QUANT_CODES_ONLY needs an SQ8 or BINARY quantizer");
    iqdb__index_kind kind;
    return iqdb__index_kind_from(o, &kind);
}

int iqdb__index_kind_from(const iqdb_options *o, iqdb__index_kind *out) {
    switch (o->index) {
    case IQDB_INDEX_DEFAULT:
    case IQDB_INDEX_FLAT: /* with a quantizer: the IVF module with one list */
        *out = o->quant.kind != IQDB_QUANT_NONE ? IQDB__INDEX_IVF : IQDB__INDEX_FLAT;
        return IQDB_OK;
    case IQDB_INDEX_IVF: *out = IQDB__INDEX_IVF; return IQDB_OK;
    case IQDB_INDEX_HNSW:
        if (o->quant.kind == IQDB_QUANT_PQ)
            return iqdb__fail(NULL, IQDB_UNSUPPORTED,
                              "PQ codes with the HNSW index are not supported (a graph scores "
                              "one neighbour at a time, where a PQ table lookup per code is no "
                              "faster than SQ8): use IQDB_QUANT_SQ8 or IQDB_QUANT_BINARY");
        *out = IQDB__INDEX_HNSW;
        return IQDB_OK;
    }
    return iqdb__fail(NULL, IQDB_INVALID, "unknown index kind %d", (int)o->index);
}

int iqdb_compression_available(iqdb_compression c) {
    switch (c) {
    case IQDB_COMPRESS_DEFAULT:
    case IQDB_COMPRESS_NONE: return 1;
    case IQDB_COMPRESS_ZSTD: return iqdb__codec_available(IQDB__CODEC_ZSTD);
    case IQDB_COMPRESS_LZ4: return iqdb__codec_available(IQDB__CODEC_LZ4);
    }
    return 0;
}

static int choose_kernels(const iqdb_options *o, const iqdb__kernels **out) {
    iqdb_simd level = o->simd;
    if (level == IQDB_SIMD_AUTO) IQDB_TRY(parse_simd_env(&level));
    const iqdb__kernels *k = iqdb__kernels_get(level);
    if (!k)
        return iqdb__fail(NULL, IQDB_UNSUPPORTED,
                          "SIMD level %s is not available on this CPU/build",
                          iqdb_simd_name(level));
    *out = k;
    return IQDB_OK;
}

/* ============================================================================================ */
/* Open and close                                                                               */
/* ============================================================================================ */

static void teardown(iqdb *db) {
    iqdb__cache_destroy(db->cache);
    iqdb__index_destroy(db->index);
    iqdb__pool_destroy(db->pool);
    iqdb__scratch_pool_destroy(&db->scratch);
    iqdb__keydict_destroy(&db->keys);
    iqdb__store_destroy(&db->store);
    iqdb__rwlock_destroy(&db->lock);
}

int iqdb_open(const char *path, const iqdb_options *opts, iqdb **out) {
    if (out) *out = NULL;
    if (!opts || !out) return iqdb__fail(NULL, IQDB_MISUSE, "iqdb_open: opts and out are required");
    iqdb_options o;
    IQDB_TRY(read_versioned(opts, opts->struct_size, &o, sizeof o,
                            offsetof(iqdb_options, metric) + sizeof o.metric, "iqdb_options"));
    o.struct_size = sizeof o;
    IQDB_TRY(validate_options(&o));
    const iqdb__kernels *kern = NULL;
    IQDB_TRY(choose_kernels(&o, &kern));
    if (path && !*path) return iqdb__fail(NULL, IQDB_INVALID, "iqdb_open: the path is empty");
    if (path && (o.quant.flags & IQDB_QUANT_CODES_ONLY))
        return iqdb__fail(NULL, IQDB_UNSUPPORTED,
                          "iqdb_open: IQDB_QUANT_CODES_ONLY databases are in memory only");
    if (!path && o.read_only)
        return iqdb__fail(NULL, IQDB_INVALID, "iqdb_open: read_only needs a path");
    if (o.flags & IQDB_VECTORS_IN_FILE) {
        if (!path)
            return iqdb__fail(NULL, IQDB_INVALID,
                              "iqdb_open: IQDB_VECTORS_IN_FILE needs a path (the file goes beside "
                              "the database)");
        if (o.read_only)
            return iqdb__fail(NULL, IQDB_UNSUPPORTED,
                              "iqdb_open: IQDB_VECTORS_IN_FILE with read_only (the vector file "
                              "would be written)");
    }

    iqdb__mem boot;
    iqdb__mem_init(&boot, &o.allocator);
    iqdb *db = iqdb__calloc(&boot, 1, sizeof *db);
    if (!db) return iqdb__nomem(NULL);
    iqdb__mem_init(&db->mem, &boot.a);
    atomic_store(&db->mem.live, sizeof *db);
    db->opts = o;
    db->dim = o.dim;
    db->metric = o.metric;
    db->kern = kern;
    db->threads = o.threads ? o.threads : iqdb__cpu_count();
    if (db->threads > IQDB_MAX_THREADS) db->threads = IQDB_MAX_THREADS;
    if (iqdb__rwlock_init(&db->lock)) {
        iqdb__free(&boot, db, sizeof *db);
        return iqdb__nomem(NULL);
    }
    iqdb__store_init(&db->store, &db->mem, db->dim);
    iqdb__keydict_init(&db->keys, &db->mem);
    int rc = iqdb__scratch_pool_init(&db->scratch, &db->mem);
    if (rc) {
        iqdb__store_destroy(&db->store);
        iqdb__rwlock_destroy(&db->lock);
        iqdb__free(&boot, db, sizeof *db);
        return iqdb__nomem(NULL);
    }
    db->env.store = &db->store;
    db->env.kern = kern;
    db->env.metric = db->metric;
    db->env.op = iqdb__metric_op(db->metric);
    db->env.mem = &db->mem;
    db->env.scratch = &db->scratch;
    db->env.opts = &db->opts;
    rc = iqdb__pool_create(&db->mem, db->threads - 1, &db->pool);
    if (rc == IQDB_OK) {
        db->env.pool = db->pool;
        iqdb__index_kind kind = IQDB__INDEX_FLAT;
        if (path)
            rc = iqdb__dur_open(db, path); /* the index kind comes from the file */
        else if ((rc = iqdb__index_kind_from(&db->opts, &kind)) == IQDB_OK)
            rc = iqdb__index_create(kind, &db->env, &db->index);
    }
    if (rc == IQDB_OK) rc = iqdb__cache_create(&db->mem, &db->opts, db->dim, &db->cache);
    if (rc) {
        iqdb__dur_close(db, 0);
        teardown(db);
        iqdb__free(&boot, db, sizeof *db);
        return rc == IQDB_NOMEM ? iqdb__nomem(NULL) : rc;
    }
    db->magic = IQDB_MAGIC;
    *out = db;
    iqdb__log(db, IQDB_LOG_INFO, "opened %s: %llu records, dim %u, %s", path ? path : "(memory)",
              (unsigned long long)db->store.count, db->dim,
              db->cache ? "result cache on" : "no result cache");
    return IQDB_OK;
}

int iqdb_close(iqdb *db) {
    if (!db) return IQDB_OK;
    CHECK_DB(db);
    int rc = iqdb__dur_close(db, 1);
    db->magic = 0;
    teardown(db);
    iqdb__mem boot;
    iqdb__mem_init(&boot, &db->mem.a);
    iqdb__free(&boot, db, sizeof *db);
    return rc;
}

int iqdb_checkpoint(iqdb *db) {
    CHECK_DB(db);
    int rc = iqdb__dur_checkpoint(db);
    return rc ? iqdb__fail_retag(db, rc) : IQDB_OK;
}

/* ============================================================================================ */
/* Writes                                                                                       */
/* ============================================================================================ */

static int check_vector(const iqdb *db, const float *v, const char *what, size_t index) {
    if (iqdb__all_finite(v, db->dim)) return IQDB_OK;
    size_t bad = 0;
    while (bad < db->dim && iqdb__all_finite(v + bad, 1)) bad++;
    if (index == SIZE_MAX)
        return iqdb__fail(db, IQDB_INVALID, "%s has a NaN or infinite component at index %zu", what,
                          bad);
    return iqdb__fail(db, IQDB_INVALID, "%s %zu has a NaN or infinite component at index %zu", what,
                      index, bad);
}

/* A codes-only quantized index: once its codes are trained, the store drops the full-precision
 * vectors (the codes are the rows from then on). Out of memory for the store's one-row staging
 * area leaves the vectors in place until the next write tries again. */
static void settle_codes_only(iqdb *db) {
    if (!(db->opts.quant.flags & IQDB_QUANT_CODES_ONLY) || db->store.no_vectors) return;
    iqdb__index_desc d;
    iqdb__index_describe(db->index, &d);
    if (d.trained) (void)iqdb__store_drop_vectors(&db->store);
}

/* The index's chance to reorganise after a write (IVF training). A logged write (`watch`) lets
 * the progress callback and iqdb_interrupt (since `gen`, the call's start) stop a long training:
 * the training is then skipped and tried again later, and the write stands. 1 when the index
 * reorganised. */
static int maintain(iqdb *db, int watch, uint64_t gen) {
    iqdb__long lc;
    if (watch) {
        iqdb__long_begin(db, &lc, IQDB_PROGRESS_BUILD, 0);
        lc.gen = gen;
        db->env.lc = &lc;
    }
    int changed = iqdb__index_maintain(db->index, &db->env);
    db->env.lc = NULL;
    if (watch && atomic_load(&lc.stop))
        iqdb__log(db, IQDB_LOG_INFO,
                  "an automatic index training was stopped by %s; the write "
                  "stands and the training is tried again later",
                  iqdb__long_by_callback(&lc) ? "the progress callback" : "an interrupt");
    return changed;
}

/* Removes the first `n` slots phase A added (in reverse, so the free list is as it was). */
static void undo_phase_a(iqdb *db, const uint32_t *slots, size_t n) {
    for (size_t j = n; j-- > 0;) {
        iqdb__index_remove(db->index, &db->env, slots[j]);
        iqdb__store_remove(&db->store, slots[j]);
    }
}

/* Frees the key blocks [from, n) of a keyed write (keys may be NULL: a u64 write). */
static void free_keys(iqdb *db, uint8_t **keys, size_t from, size_t n) {
    for (size_t i = from; keys && i < n; i++) {
        iqdb__key_block_free(&db->mem, keys[i]);
        keys[i] = NULL;
    }
}

int iqdb__apply_upserts(iqdb *db, size_t n, const iqdb_id *ids, uint8_t **keys, const float *vecs,
                        const float *sqn, uint8_t **blobs, const uint32_t *blob_len,
                        uint32_t *slots, int log, uint64_t *lsn) {
    iqdb__store *st = &db->store;
    *lsn = 0;
    int rc = keys ? iqdb__store_reserve_keyed(st, n) : iqdb__store_reserve(st, n);
    if (rc) {
        free_keys(db, keys, 0, n);
        for (size_t i = 0; i < n; i++) iqdb__free(&db->mem, blobs[i], blob_len[i]);
        return rc == IQDB_FULL
                   ? iqdb__fail(db, IQDB_FULL, "the database holds the maximum of %u rows",
                                IQDB__MAX_SLOTS)
               : rc == IQDB_NOMEM ? iqdb__nomem(db)
                                  : iqdb__fail_retag(db, rc); /* the vector file's I/O */
    }
    /* phase A (a long live batch reports progress and can be interrupted here) */
    iqdb__long lc, blc;
    int watch = log && n >= 1024;
    if (log) iqdb__long_begin(db, &lc, IQDB_PROGRESS_IMPORT, n);
    for (size_t i = 0; i < n; i++) {
        if (watch && (i % 1024 == 1023 || i + 1 == n) && (rc = iqdb__long_check(&lc, i)) != 0) {
            undo_phase_a(db, slots, i);
            for (size_t j = i; j < n; j++) iqdb__free(&db->mem, blobs[j], blob_len[j]);
            return rc;
        }
        slots[i] = iqdb__store_add(st, keys ? 0 : ids[i], vecs + i * db->dim, sqn[i], blobs[i],
                                   blob_len[i]);
        blobs[i] = NULL;
        if (keys) {
            iqdb__store_set_key(st, slots[i], keys[i]);
            keys[i] = NULL;
        }
    }
    /* The WAL record is built before the index changes (building allocates), and appended
     * between the phases: phase B cannot fail, so a logged write always applies. */
    if (log && db->dur) {
        for (size_t i = 0; i < n; i++) { /* borrowed */
            blobs[i] = st->meta[slots[i]];
            if (keys) keys[i] = st->keys[slots[i]];
        }
        rc = iqdb__dur_build_upsert(db, n, ids, keys, vecs, blobs, blob_len);
        for (size_t i = 0; i < n; i++) {
            blobs[i] = NULL;
            if (keys) keys[i] = NULL;
        }
        if (rc) {
            for (size_t j = n; j-- > 0;) iqdb__store_remove(st, slots[j]);
            return rc == IQDB_NOMEM ? iqdb__nomem(db) : rc;
        }
    }
    /* a logged write's index build polls progress and interrupts since the call began (a
     * replayed one, during open, does not) */
    if (log) {
        iqdb__long_begin(db, &blc, IQDB_PROGRESS_BUILD, n);
        blc.gen = lc.gen;
        db->env.lc = &blc;
    }
    rc = iqdb__index_insert_batch(db->index, &db->env, slots, n, vecs);
    db->env.lc = NULL;
    if (rc) { /* all or nothing: the index holds none of the slots */
        for (size_t j = n; j-- > 0;) iqdb__store_remove(st, slots[j]);
        return rc == IQDB_NOMEM         ? iqdb__nomem(db)
               : rc == IQDB_INTERRUPTED ? iqdb__long_fail(&blc)
                                        : iqdb__fail_retag(db, rc);
    }
    /* A failed append (an I/O error) is undone by removing the new nodes: the records are as
     * before; an HNSW graph stays valid, though its repaired lists need not be the same. */
    if (log && db->dur && (rc = iqdb__dur_append_built(db, lsn)) != IQDB_OK) {
        undo_phase_a(db, slots, n);
        return rc;
    }
    /* phase B: cannot fail. The result cache learns which versions went (by the id their hits
     * carry: iqdb__cache_hit_id); without memory for the list it forgets everything. */
    iqdb_id *gone = db->cache ? iqdb__alloc(&db->mem, n * sizeof *gone) : NULL;
    size_t n_gone = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t old;
        if (keys) {
            old = iqdb__store_key_bind(st, slots[i]);
        } else {
            old = iqdb__idmap_find(&st->map, ids[i]);
            iqdb__idmap_put(&st->map, ids[i], slots[i]);
        }
        if (old != IQDB__NO_SLOT) {
            if (gone) gone[n_gone++] = iqdb__cache_hit_id(st, old);
            iqdb__index_remove(db->index, &db->env, old);
            iqdb__store_remove(st, old);
        }
    }
    if (gone) {
        iqdb__cache_on_write(db->cache, &db->env, &db->keys, gone, n_gone, slots, n);
        iqdb__free(&db->mem, gone, n * sizeof *gone);
    } else {
        iqdb__cache_clear(db->cache);
    }
    /* the write is done; the index may now reorganise (IVF training), which never fails. A
     * training renumbers the rows (list by list) and retrains the codes: cached hits then name
     * stale slots, so the cache is emptied. */
    if (maintain(db, log, log ? lc.gen : 0)) iqdb__cache_clear(db->cache);
    iqdb__index_reorder_store(db->index, &db->env, &db->store);
    settle_codes_only(db);
    return IQDB_OK;
}

int iqdb_upsert(iqdb *db, iqdb_id id, const float *vec, const iqdb_meta *meta) {
    CHECK_DB(db);
    if (!vec) return iqdb__fail(db, IQDB_MISUSE, "iqdb_upsert: vec is NULL");
    IQDB_TRY(check_vector(db, vec, "vector", SIZE_MAX));
    float sqn = db->kern->pair[IQDB__OP_DOT](vec, vec, db->dim);
    iqdb__rwlock_wrlock(&db->lock);
    uint64_t lsn = 0;
    int rc = db->dur ? iqdb__dur_writable(db) : IQDB_OK;
    if (rc) {
        rc = iqdb__fail_retag(db, rc);
    } else {
        uint8_t *blob;
        uint32_t len, slot;
        rc = iqdb__meta_encode(meta, &db->keys, &db->mem, &blob, &len);
        if (rc == IQDB_OK)
            rc = iqdb__apply_upserts(db, 1, &id, NULL, vec, &sqn, &blob, &len, &slot, 1, &lsn);
        else
            rc = rc == IQDB_NOMEM ? iqdb__nomem(db)
                                  : iqdb__fail(db, rc, "metadata could not be stored");
    }
    iqdb__rwlock_wrunlock(&db->lock);
    if (rc == IQDB_OK && lsn) rc = iqdb__dur_after_write(db, lsn);
    return rc;
}

int iqdb_upsert_batch(iqdb *db, size_t n, const iqdb_id *ids, const float *vecs,
                      const iqdb_meta *const *metas) {
    CHECK_DB(db);
    if (n == 0) return IQDB_OK;
    if (!ids || !vecs)
        return iqdb__fail(db, IQDB_MISUSE, "iqdb_upsert_batch: ids and vecs are required");
    return iqdb__upsert_many(db, n, ids, NULL, vecs, metas);
}

int iqdb__upsert_many(iqdb *db, size_t n, const iqdb_id *ids, uint8_t **keys, const float *vecs,
                      const iqdb_meta *const *metas) {
    size_t total;
    int rc = IQDB_OK;
    if (iqdb__mul_overflow(n, db->dim, &total) || n > IQDB__MAX_SLOTS)
        rc = iqdb__fail(db, IQDB_INVALID, "batch of %zu records is too large", n);
    for (size_t i = 0; i < n && rc == IQDB_OK; i++)
        rc = check_vector(db, vecs + i * db->dim, "record", i);
    /* One block for the per-record scratch: norms, blob pointers, lengths, slots. */
    size_t per = sizeof(float) + sizeof(uint8_t *) + sizeof(uint32_t) * 2, bytes = 0;
    if (rc == IQDB_OK && iqdb__mul_overflow(n, per, &bytes)) rc = iqdb__nomem(db);
    uint8_t **blobs = rc ? NULL : iqdb__alloc(&db->mem, bytes);
    if (rc == IQDB_OK && !blobs) rc = iqdb__nomem(db);
    if (rc) {
        free_keys(db, keys, 0, n);
        return rc;
    }
    float *sqn = (float *)(blobs + n);
    uint32_t *lens = (uint32_t *)(sqn + n);
    uint32_t *slots = lens + n;
    for (size_t i = 0; i < n; i++) {
        blobs[i] = NULL;
        lens[i] = 0;
        sqn[i] = db->kern->pair[IQDB__OP_DOT](vecs + i * db->dim, vecs + i * db->dim, db->dim);
    }
    iqdb__rwlock_wrlock(&db->lock);
    rc = db->dur ? iqdb__dur_writable(db) : IQDB_OK;
    if (rc) rc = iqdb__fail_retag(db, rc);
    uint64_t lsn = 0;
    for (size_t i = 0; i < n && rc == IQDB_OK; i++) {
        rc = iqdb__meta_encode(metas ? metas[i] : NULL, &db->keys, &db->mem, &blobs[i], &lens[i]);
        if (rc) {
            for (size_t j = 0; j < i; j++) iqdb__free(&db->mem, blobs[j], lens[j]);
            rc = rc == IQDB_NOMEM
                     ? iqdb__nomem(db)
                     : iqdb__fail(db, rc, "metadata of record %zu could not be stored", i);
        }
    }
    if (rc == IQDB_OK)
        rc = iqdb__apply_upserts(db, n, ids, keys, vecs, sqn, blobs, lens, slots, 1, &lsn);
    else
        free_keys(db, keys, 0, n);
    iqdb__rwlock_wrunlock(&db->lock);
    iqdb__free(&db->mem, blobs, bytes);
    if (rc == IQDB_OK && lsn) rc = iqdb__dur_after_write(db, lsn);
    return rc;
}

int iqdb_delete(iqdb *db, iqdb_id id, int *existed) {
    if (existed) *existed = 0;
    CHECK_DB(db);
    iqdb__rwlock_wrlock(&db->lock);
    uint64_t lsn = 0;
    int rc = db->dur ? iqdb__dur_writable(db) : IQDB_OK;
    uint32_t slot = rc ? IQDB__NO_SLOT : iqdb__idmap_find(&db->store.map, id);
    /* only a delete that changes something is logged */
    if (slot != IQDB__NO_SLOT && db->dur) rc = iqdb__dur_log_delete(db, id, &lsn);
    if (slot != IQDB__NO_SLOT && rc == IQDB_OK) {
        iqdb__idmap_remove(&db->store.map, id);
        iqdb__index_remove(db->index, &db->env, slot);
        iqdb__store_remove(&db->store, slot);
        iqdb__cache_on_write(db->cache, &db->env, &db->keys, &id, 1, NULL, 0);
    }
    iqdb__rwlock_wrunlock(&db->lock);
    if (rc) return iqdb__fail_retag(db, rc);
    if (lsn) rc = iqdb__dur_after_write(db, lsn);
    if (rc == IQDB_OK && existed) *existed = slot != IQDB__NO_SLOT;
    return rc;
}

/* ============================================================================================ */
/* Reads                                                                                        */
/* ============================================================================================ */

int iqdb_get(iqdb *db, iqdb_id id, float *vec_out, iqdb_meta **meta_out) {
    if (meta_out) *meta_out = NULL;
    CHECK_DB(db);
    iqdb__rwlock_rdlock(&db->lock);
    int rc = IQDB_OK;
    uint32_t slot = iqdb__idmap_find(&db->store.map, id);
    if (slot == IQDB__NO_SLOT)
        rc = iqdb__fail(db, IQDB_NOTFOUND, "no record with id %llu", (unsigned long long)id);
    else if (vec_out && db->store.no_vectors) { /* codes only: the decoded code */
        if (iqdb__index_vector(db->index, &db->env, slot, vec_out))
            rc = iqdb__fail(db, IQDB_CORRUPT, "id %llu has no code", (unsigned long long)id);
        else
            rc = iqdb__read_slot(db, slot, NULL, meta_out);
    } else {
        rc = iqdb__read_slot(db, slot, vec_out, meta_out);
    }
    iqdb__rwlock_rdunlock(&db->lock);
    return rc;
}

int iqdb__read_slot(iqdb *db, uint32_t slot, float *vec_out, iqdb_meta **meta_out) {
    int rc = IQDB_OK;
    if (vec_out) memcpy(vec_out, iqdb__store_vec(&db->store, slot), db->dim * sizeof(float));
    if (meta_out && db->store.meta[slot]) {
        rc = iqdb__meta_decode(db->store.meta[slot], db->store.meta_len[slot], &db->keys, &db->mem,
                               meta_out);
        if (rc == IQDB_NOMEM)
            rc = iqdb__nomem(db);
        else if (rc)
            rc = iqdb__fail(db, rc, "metadata of slot %u is corrupt", slot);
    }
    return rc;
}

int iqdb_count(iqdb *db, uint64_t *n) {
    if (n) *n = 0;
    CHECK_DB(db);
    if (!n) return iqdb__fail(db, IQDB_MISUSE, "iqdb_count: n is NULL");
    iqdb__rwlock_rdlock(&db->lock);
    *n = db->store.count;
    iqdb__rwlock_rdunlock(&db->lock);
    return IQDB_OK;
}

/* ============================================================================================ */
/* Search                                                                                       */
/* ============================================================================================ */

static int read_params(const iqdb *db, const iqdb_search_params *p, iqdb_search_params *out) {
    if (!p) {
        iqdb_search_params_init(out);
        return IQDB_OK;
    }
    int rc = read_versioned(p, p->struct_size, out, sizeof *out,
                            offsetof(iqdb_search_params, filter) + sizeof p->filter,
                            "iqdb_search_params");
    if (rc) return iqdb__fail_retag(db, rc);
    if (out->n_probes > (1u << 20))
        return iqdb__fail(db, IQDB_INVALID, "search params: n_probes %u exceeds %u", out->n_probes,
                          1u << 20);
    if (out->oversample > IQDB_MAX_OVERSAMPLE)
        return iqdb__fail(db, IQDB_INVALID, "search params: oversample %u exceeds %u",
                          out->oversample, IQDB_MAX_OVERSAMPLE);
    return IQDB_OK;
}

/* 1 when searches compare full-precision vectors (no quantizer): the result cache's precise
 * invalidation computes distances from the written vectors, which only then equal the scan's. */
static int full_precision(const iqdb *db) {
    iqdb__index_desc d;
    iqdb__index_describe(db->index, &d);
    return d.quant == IQDB_QUANT_NONE;
}

static iqdb__query make_query(const iqdb_search_params *prm) {
    iqdb__query q;
    memset(&q, 0, sizeof q);
    q.filter_src = prm->filter;
    q.ef = prm->ef;
    q.n_probes = prm->n_probes;
    q.exact = prm->exact;
    q.oversample = prm->oversample;
    return q;
}

static float query_norm(const iqdb *db, const float *q) {
    if (db->metric != IQDB_METRIC_COSINE) return 0.0f;
    return sqrtf(db->kern->pair[IQDB__OP_DOT](q, q, db->dim));
}

static void write_info(iqdb_search_info *info, const iqdb__sinfo *si, int cache_hit) {
    if (!info) return;
    iqdb_search_info full;
    memset(&full, 0, sizeof full);
    full.struct_size = info->struct_size;
    full.complete = si->complete;
    full.strategy = si->strategy;
    full.n_distances = si->n_distances;
    full.n_visited = si->n_visited;
    full.n_matched = si->n_matched;
    full.cache_hit = cache_hit != 0;
    full.n_lists_scanned = si->n_lists_scanned;
    full.n_reranked = si->n_reranked;
    size_t n = info->struct_size < sizeof full ? info->struct_size : sizeof full;
    memcpy(info, &full, n);
}

int iqdb_search(iqdb *db, const float *query, size_t k, const iqdb_search_params *p, iqdb_hit *hits,
                size_t *n_hits, iqdb_search_info *info) {
    if (n_hits) *n_hits = 0;
    CHECK_DB(db);
    if (!query || !n_hits || (!hits && k > 0))
        return iqdb__fail(db, IQDB_MISUSE, "iqdb_search: query, n_hits and hits are required");
    if (info && info->struct_size < offsetof(iqdb_search_info, strategy))
        return iqdb__fail(db, IQDB_MISUSE, "iqdb_search: set info->struct_size = sizeof *info");
    iqdb_search_params prm;
    IQDB_TRY(read_params(db, p, &prm));
    IQDB_TRY(check_vector(db, query, "query", SIZE_MAX));
    iqdb__sinfo si;
    memset(&si, 0, sizeof si);
    si.complete = 1;
    si.strategy = IQDB_STRATEGY_NONE;
    iqdb__query q = make_query(&prm);
    q.vec = query;
    q.qnorm = query_norm(db, query);
    iqdb__cache_key ck;
    int use_cache = db->cache && iqdb__cache_key_init(db->cache, &ck, query, k, &prm) == IQDB_OK;
    int hit = 0;
    iqdb__rwlock_rdlock(&db->lock);
    int rc = IQDB_OK;
    q.k = k < db->store.count ? k : (size_t)db->store.count;
    if (use_cache) hit = iqdb__cache_lookup(db->cache, &ck, hits, n_hits, &si);
    if (q.k > 0 && !hit) {
        iqdb__scratch *s = iqdb__scratch_get(&db->scratch);
        if (!s || iqdb__scratch_cand(s, &db->mem, q.k) ||
            (prm.filter && iqdb__filter_compile(prm.filter, &db->keys, &s->cf, &db->mem))) {
            rc = iqdb__nomem(db);
        } else {
            if (prm.filter) q.filter = &s->cf;
            iqdb__topk top;
            iqdb__topk_init(&top, s->cand, q.k);
            rc = iqdb__index_search(db->index, &db->env, &q, s, &top, &si);
            if (rc == IQDB_OK)
                iqdb__hits_from_top(&db->store, &top, hits, n_hits);
            else
                rc = rc == IQDB_NOMEM ? iqdb__nomem(db) : iqdb__fail_retag(db, rc);
        }
        iqdb__scratch_put(&db->scratch, s);
    }
    /* Only an exact scan over full-precision rows (or nothing to scan) is kept under the
     * precise invalidation rule; everything else is approximate and dies at the next write
     * (cache.h). */
    if (use_cache && !hit && rc == IQDB_OK)
        iqdb__cache_insert(db->cache, &ck, prm.filter, &db->keys, q.qnorm,
                           full_precision(db) && (si.strategy == IQDB_STRATEGY_NONE ||
                                                  si.strategy == IQDB_STRATEGY_SCAN ||
                                                  si.strategy == IQDB_STRATEGY_SCAN_FILTERED),
                           hits, *n_hits, &si);
    iqdb__rwlock_rdunlock(&db->lock);
    if (use_cache) iqdb__cache_key_free(db->cache, &ck);
    if (rc == IQDB_OK) write_info(info, &si, hit);
    return rc;
}

/* Runs a batch in chunks of BATCH_CHUNK queries, so a long batch reports progress and can be
 * interrupted between chunks (each chunk still spreads over the worker threads). */
#define BATCH_CHUNK 2048
static int batch_in_chunks(iqdb *db, const iqdb__batch *b) {
    if (b->nq <= BATCH_CHUNK && !db->opts.progress_fn)
        return iqdb__index_search_batch(db->index, &db->env, b);
    iqdb__long lc;
    iqdb__long_begin(db, &lc, IQDB_PROGRESS_SEARCH_BATCH, b->nq);
    for (size_t at = 0; at < b->nq; at += BATCH_CHUNK) {
        IQDB_TRY(iqdb__long_check(&lc, at));
        iqdb__batch c = *b;
        c.qs = b->qs + at * b->dim;
        c.nq = IQDB_MIN((size_t)BATCH_CHUNK, b->nq - at);
        c.qnorms = b->qnorms ? b->qnorms + at : NULL;
        c.hits = b->hits + at * b->out_stride;
        c.n_hits = b->n_hits + at;
        IQDB_TRY(iqdb__index_search_batch(db->index, &db->env, &c));
    }
    return iqdb__long_check(&lc, b->nq);
}

/* A batch on a handle with a result cache: each query is looked up first; the misses run as one
 * smaller batch (copied together), and on the flat index — an exact scan, so the precise
 * invalidation rule holds — their results are cached. Under the shared lock, like the batch. */
static int batch_cached(iqdb *db, const iqdb__batch *b, const iqdb_search_params *prm, size_t k) {
    size_t n = b->nq, dim = b->dim, m = 0, stride = b->out_stride;
    size_t *miss = iqdb__alloc(&db->mem, n * sizeof *miss);
    if (!miss) return IQDB_NOMEM;
    iqdb__cache_key ck;
    for (size_t i = 0; i < n; i++) {
        iqdb__sinfo si;
        memset(&si, 0, sizeof si);
        si.complete = 1;
        si.strategy = IQDB_STRATEGY_NONE;
        int hit = 0;
        if (iqdb__cache_key_init(db->cache, &ck, b->qs + i * dim, k, prm) == IQDB_OK) {
            hit = iqdb__cache_lookup(db->cache, &ck, b->hits + i * stride, &b->n_hits[i], &si);
            iqdb__cache_key_free(db->cache, &ck);
        }
        if (!hit) miss[m++] = i;
    }
    int rc = IQDB_OK;
    if (m == n) {
        rc = batch_in_chunks(db, b);
    } else if (m > 0) {
        /* hits first (8-byte aligned), then counts, queries and norms */
        size_t hb = m * stride * sizeof(iqdb_hit), nb = m * sizeof(size_t),
               qb = m * dim * sizeof(float), qn = b->qnorms ? m * sizeof(float) : 0;
        uint8_t *blk = iqdb__alloc(&db->mem, hb + nb + qb + qn);
        if (!blk) {
            rc = IQDB_NOMEM;
        } else {
            iqdb__batch c = *b;
            c.hits = (iqdb_hit *)blk;
            c.n_hits = (size_t *)(blk + hb);
            float *cq = (float *)(blk + hb + nb), *cqn = qn ? cq + m * dim : NULL;
            for (size_t j = 0; j < m; j++) {
                memcpy(cq + j * dim, b->qs + miss[j] * dim, dim * sizeof(float));
                if (cqn) cqn[j] = b->qnorms[miss[j]];
            }
            c.qs = cq;
            c.qnorms = cqn;
            c.nq = m;
            rc = batch_in_chunks(db, &c);
            for (size_t j = 0; j < m && rc == IQDB_OK; j++) {
                b->n_hits[miss[j]] = c.n_hits[j];
                memcpy(b->hits + miss[j] * stride, c.hits + j * stride,
                       c.n_hits[j] * sizeof(iqdb_hit));
            }
            iqdb__free(&db->mem, blk, hb + nb + qb + qn);
        }
    }
    if (rc == IQDB_OK && iqdb__index_kind_of(db->index) == IQDB__INDEX_FLAT && full_precision(db)) {
        iqdb__sinfo si;
        memset(&si, 0, sizeof si);
        si.complete = 1;
        si.strategy = prm->filter ? IQDB_STRATEGY_SCAN_FILTERED : IQDB_STRATEGY_SCAN;
        for (size_t j = 0; j < m; j++) {
            size_t i = miss[j];
            if (iqdb__cache_key_init(db->cache, &ck, b->qs + i * dim, k, prm)) continue;
            iqdb__cache_insert(db->cache, &ck, prm->filter, &db->keys,
                               b->qnorms ? b->qnorms[i] : 0.0f, 1, b->hits + i * stride,
                               b->n_hits[i], &si);
            iqdb__cache_key_free(db->cache, &ck);
        }
    }
    iqdb__free(&db->mem, miss, n * sizeof *miss);
    return rc;
}

int iqdb_search_batch(iqdb *db, const float *qs, size_t n, size_t k, const iqdb_search_params *p,
                      iqdb_hit *hits, size_t *n_hits) {
    if (n_hits)
        for (size_t i = 0; i < n; i++) n_hits[i] = 0;
    CHECK_DB(db);
    if (n == 0) return IQDB_OK;
    if (!qs || !n_hits || (!hits && k > 0))
        return iqdb__fail(db, IQDB_MISUSE, "iqdb_search_batch: qs, n_hits and hits are required");
    size_t tmp;
    if (iqdb__mul_overflow(n, k, &tmp) || iqdb__mul_overflow(n, db->dim, &tmp))
        return iqdb__fail(db, IQDB_INVALID, "iqdb_search_batch: n * k or n * dim overflows");
    iqdb_search_params prm;
    IQDB_TRY(read_params(db, p, &prm));
    for (size_t i = 0; i < n; i++) IQDB_TRY(check_vector(db, qs + i * db->dim, "query", i));
    float *qnorms = NULL;
    if (db->metric == IQDB_METRIC_COSINE) {
        qnorms = iqdb__alloc(&db->mem, n * sizeof *qnorms);
        if (!qnorms) return iqdb__nomem(db);
        for (size_t i = 0; i < n; i++) qnorms[i] = query_norm(db, qs + i * db->dim);
    }
    iqdb__rwlock_rdlock(&db->lock);
    int rc = IQDB_OK;
    size_t kk = k < db->store.count ? k : (size_t)db->store.count;
    if (kk > 0) {
        iqdb__scratch *s = NULL;
        iqdb__batch b = {qs, n, db->dim, make_query(&prm), qnorms, hits, k, n_hits};
        b.proto.k = kk;
        if (prm.filter) {
            s = iqdb__scratch_get(&db->scratch);
            if (!s || iqdb__filter_compile(prm.filter, &db->keys, &s->cf, &db->mem))
                rc = IQDB_NOMEM;
            else
                b.proto.filter = &s->cf;
        }
        if (rc == IQDB_OK) rc = db->cache ? batch_cached(db, &b, &prm, k) : batch_in_chunks(db, &b);
        iqdb__scratch_put(&db->scratch, s);
        if (rc) {
            for (size_t i = 0; i < n; i++) n_hits[i] = 0;
            rc = rc == IQDB_NOMEM ? iqdb__nomem(db) : iqdb__fail_retag(db, rc);
        }
    }
    iqdb__rwlock_rdunlock(&db->lock);
    iqdb__free(&db->mem, qnorms, n * sizeof *qnorms);
    return rc;
}

/* ============================================================================================ */
/* Stats and check                                                                              */
/* ============================================================================================ */

int iqdb_stats_get(iqdb *db, iqdb_stats *s) {
    CHECK_DB(db);
    if (!s || s->struct_size < offsetof(iqdb_stats, dim))
        return iqdb__fail(db, IQDB_MISUSE, "iqdb_stats_get: set s->struct_size = sizeof *s");
    iqdb_stats full;
    memset(&full, 0, sizeof full);
    full.struct_size = s->struct_size;
    iqdb__rwlock_rdlock(&db->lock);
    full.count = db->store.count;
    full.dim = db->dim;
    full.metric = db->metric;
    full.index = db->opts.index;
    full.simd = db->kern->level;
    full.threads = iqdb__pool_width(db->pool);
    full.slots = db->store.n_slots;
    full.meta_keys = db->keys.n;
    full.mem_total = atomic_load_explicit(&db->mem.live, memory_order_relaxed);
    full.mem_vectors = iqdb__store_mem_vectors(&db->store);
    full.mem_rows = iqdb__store_mem_rows(&db->store);
    full.mem_meta = iqdb__store_mem_meta(&db->store) + iqdb__keydict_mem(&db->keys);
    full.mem_index = iqdb__index_mem(db->index);
    full.keyed = db->store.kmap.count;
    full.mem_keys = iqdb__store_mem_keys(&db->store);
    iqdb__cache_stats cs;
    iqdb__cache_stats_get(db->cache, &cs);
    full.cache_hits = cs.hits;
    full.cache_misses = cs.misses;
    full.cache_evictions = cs.evictions;
    full.cache_invalidations = cs.invalidations;
    full.cache_len = cs.len;
    full.cache_capacity = cs.capacity;
    full.cache_bytes = cs.bytes;
    full.cache_max_bytes = cs.max_bytes;
    full.mem_cache = cs.mem;
    iqdb__index_desc d;
    iqdb__index_describe(db->index, &d);
    full.mem_codes = d.mem_codes;
    full.quant = d.quant;
    full.code_bytes = d.code_bytes;
    full.ivf_lists = d.lists;
    full.trained = d.trained;
    full.trained_rows = d.trained_rows;
    full.mapped_vectors = iqdb__store_mapped_vectors(&db->store);
    uint64_t known = full.mem_vectors + full.mem_rows + full.mem_meta + full.mem_index +
                     full.mem_keys + full.mem_codes + full.mem_cache;
    full.mem_scratch = full.mem_total > known ? full.mem_total - known : 0;
    iqdb__dur_stats(db, &full);
    iqdb__rwlock_rdunlock(&db->lock);
    memcpy(s, &full, s->struct_size < sizeof full ? s->struct_size : sizeof full);
    return IQDB_OK;
}

static int check_rows(iqdb *db, uint8_t *seen) {
    const iqdb__store *st = &db->store;
    uint64_t live = 0, keyed = 0;
    for (size_t i = 0; i < st->n_free; i++) {
        uint32_t slot = st->free_list[i];
        if (slot >= st->n_slots || st->live[slot] || seen[slot])
            return iqdb__fail(db, IQDB_CORRUPT, "free list entry %zu (slot %u) is invalid", i,
                              slot);
        seen[slot] = 1;
    }
    for (size_t slot = 0; slot < st->n_slots; slot++) {
        if (!st->live[slot]) {
            if (!seen[slot])
                return iqdb__fail(db, IQDB_CORRUPT, "dead slot %zu is not on the free list", slot);
            continue;
        }
        live++;
        if (iqdb__store_is_keyed((const uint8_t *const *)st->keys, (uint32_t)slot)) {
            keyed++;
            if (iqdb__store_key_check(st, (uint32_t)slot))
                return iqdb__fail(db, IQDB_CORRUPT, "the key map does not lead to slot %zu", slot);
        } else if (iqdb__idmap_find(&st->map, st->ids[slot]) != slot) {
            return iqdb__fail(db, IQDB_CORRUPT, "id map does not lead to slot %zu", slot);
        }
        if (!st->no_vectors) { /* codes only: the index checks its codes */
            const float *v = iqdb__store_vec(st, (uint32_t)slot);
            if (!iqdb__all_finite(v, db->dim))
                return iqdb__fail(db, IQDB_CORRUPT, "slot %zu holds a non-finite vector", slot);
            float sq = db->kern->pair[IQDB__OP_DOT](v, v, db->dim);
            if (!(sq == st->sqnorm[slot]))
                return iqdb__fail(db, IQDB_CORRUPT, "slot %zu has a stale norm", slot);
        }
        if (st->seqs[slot] >= st->next_seq)
            return iqdb__fail(db, IQDB_CORRUPT, "slot %zu has a sequence from the future", slot);
        if (iqdb__meta_blob_check(st->meta[slot], st->meta_len[slot], db->keys.n))
            return iqdb__fail(db, IQDB_CORRUPT, "slot %zu has malformed metadata", slot);
    }
    if (live != st->count || st->map.count + keyed != st->count || st->kmap.count != keyed)
        return iqdb__fail(
            db, IQDB_CORRUPT, "row count %llu, live slots %llu, ids %zu, keys %zu disagree",
            (unsigned long long)st->count, (unsigned long long)live, st->map.count, st->kmap.count);
    return IQDB_OK;
}

int iqdb_check(iqdb *db) {
    CHECK_DB(db);
    iqdb__rwlock_rdlock(&db->lock);
    size_t n = db->store.n_slots ? db->store.n_slots : 1;
    uint8_t *seen = iqdb__calloc(&db->mem, n, 1);
    int rc;
    if (!seen) {
        rc = iqdb__nomem(db);
    } else {
        rc = check_rows(db, seen);
        if (rc == IQDB_OK) {
            rc = iqdb__index_check(db->index, &db->env);
            if (rc == IQDB_NOMEM)
                rc = iqdb__nomem(db);
            else if (rc)
                rc = iqdb__fail_retag(db, rc);
        }
        iqdb__free(&db->mem, seen, n);
    }
    iqdb__rwlock_rdunlock(&db->lock);
    if (rc == IQDB_OK && db->dur) {
        rc = iqdb__dur_check(db);
        if (rc) rc = iqdb__fail_retag(db, rc);
    }
    return rc;
}

int iqdb_cache_clear(iqdb *db) {
    CHECK_DB(db);
    iqdb__cache_clear(db->cache);
    return IQDB_OK;
}

/* ============================================================================================ */
/* Optimize                                                                                     */
/* ============================================================================================ */

int iqdb_optimize(iqdb *db) {
    CHECK_DB(db);
    iqdb__long lc; /* an interrupt while the call waits for the lock counts */
    iqdb__long_begin(db, &lc, IQDB_PROGRESS_OPTIMIZE, 0);
    iqdb__rwlock_wrlock(&db->lock);
    int rc = db->dur ? iqdb__dur_writable(db) : IQDB_OK;
    if (rc) {
        iqdb__rwlock_wrunlock(&db->lock);
        return iqdb__fail_retag(db, rc);
    }
    db->env.lc = &lc;
    rc = iqdb__index_optimize(db->index, &db->env);
    db->env.lc = NULL;
    if (rc == IQDB_INTERRUPTED) {
        iqdb__rwlock_wrunlock(&db->lock);
        return iqdb__long_fail(&lc);
    }
    if (rc == IQDB_OK) iqdb__index_reorder_store(db->index, &db->env, &db->store);
    if (rc == IQDB_OK) {
        settle_codes_only(db);
        iqdb__dur_index_changed(db);
        iqdb__cache_clear(db->cache); /* answers may change, slots may be renumbered */
    }
    iqdb__rwlock_wrunlock(&db->lock);
    if (rc) return rc == IQDB_NOMEM ? iqdb__nomem(db) : iqdb__fail_retag(db, rc);
    /* durable: the new structures go into a snapshot now (they have no WAL record), so a
     * reopen — even after a crash — never trains again */
    return db->dur ? iqdb__dur_checkpoint(db) : IQDB_OK;
}
