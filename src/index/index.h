/*
 * index.h — the index dispatcher: a closed set of index kinds, each implementing the same verbs
 *
 *   create destroy insert insert_batch remove maintain reorder_store optimize search
 *   search_batch serialize load mem describe vector check
 *
 * index.c switches over the kind with no default case, and the build uses -Wswitch-enum, so a
 * new kind does not compile until every verb handles it.
 *
 * Indexes never own rows: the row store (store.h) is the truth, and an index keeps only the
 * structures that find candidate slots quickly. Modules are single-threaded; the caller (iqdb.c)
 * holds the handle's lock: shared for search, exclusive for everything else. remove never
 * fails, so a writer can always roll back or commit after the fallible steps. An index may use
 * the worker pool inside one exclusive call (the HNSW bulk build); it then does its own locking,
 * documented in its file.
 */
#ifndef IQDB_INDEX_H
#define IQDB_INDEX_H

#include "dist/dist.h"
#include "index/scratch.h"
#include "index/topk.h"
#include "internal.h"
#include "meta/filter.h"
#include "pool.h"
#include "store/store.h"

/* FLAT: the exact scan, no structure. HNSW: the graph (hnsw.c). IVF: inverted lists (ivf.c),
 * also used for a flat index with a quantizer (one list holding every code). */
typedef enum iqdb__index_kind {
    IQDB__INDEX_FLAT = 0,
    IQDB__INDEX_HNSW = 1,
    IQDB__INDEX_IVF = 2
} iqdb__index_kind;

/* What every index verb may read: the rows, the kernels, the metric. */
typedef struct iqdb__env {
    const iqdb__store *store;
    const iqdb__kernels *kern;
    iqdb_metric metric;
    int op; /* kernel op of the metric */
    iqdb__mem *mem;
    iqdb__scratch_pool *scratch;
    iqdb__pool *pool;
    const iqdb_options *opts; /* the handle's normalised options (index parameters) */
    /* Set by iqdb.c (under the write lock) around a call that may build for long — a bulk
     * insert, maintain, optimize: the index polls it (observe.h) and, when told to stop,
     * undoes its work and returns IQDB_INTERRUPTED. NULL: nothing polls. */
    struct iqdb__long *lc;
} iqdb__env;

/* One query, already validated. */
typedef struct iqdb__query {
    const float *vec;
    float qnorm;                 /* |q| (cosine) */
    size_t k;                    /* min(k, rows): never more than the rows that exist */
    const iqdb__cfilter *filter; /* compiled, or NULL */
    const iqdb_filter *filter_src;
    uint32_t ef, n_probes;
    int exact;
    uint32_t oversample; /* re-ranking factor; 0 = the index's */
} iqdb__query;

typedef struct iqdb__sinfo {
    int complete;
    iqdb_strategy strategy;
    uint64_t n_distances, n_visited, n_matched;
    uint32_t n_lists_scanned, n_reranked;
} iqdb__sinfo;

/* iqdb__sink and iqdb__source (serialize / load) are in internal.h. */

typedef struct iqdb__index iqdb__index;

/* The index reads its parameters (and the quantizer) from env->opts. */
int iqdb__index_create(iqdb__index_kind kind, const iqdb__env *env, iqdb__index **out);
void iqdb__index_destroy(iqdb__index *ix);
iqdb__index_kind iqdb__index_kind_of(const iqdb__index *ix);
/* The slot's row is in the store; make it findable. IQDB_OK or IQDB_NOMEM (nothing changed). */
int iqdb__index_insert(iqdb__index *ix, const iqdb__env *env, uint32_t slot);
/* The same for n slots, all or nothing (an index may build them in parallel; IQDB_NOMEM, or
 * IQDB_INTERRUPTED when env->lc said stop). The slots are
 * live in the store, distinct, and not yet in the index; their sequence numbers increase.
 * `vecs` (may be NULL) holds row i's vector at vecs + i * dim: a codes-only store keeps no
 * vectors, so the IVF index encodes from there. */
int iqdb__index_insert_batch(iqdb__index *ix, const iqdb__env *env, const uint32_t *slots, size_t n,
                             const float *vecs);
/* Forget the slot (its row is still in the store during the call). Never fails. */
void iqdb__index_remove(iqdb__index *ix, const iqdb__env *env, uint32_t slot);
/* Called after a write has been applied, under the write lock: the index may reorganise itself
 * (IVF trains when the row count crosses its thresholds). Never fails: a reorganisation that
 * cannot be done (out of memory) is skipped and tried again later. Returns 1 when the index
 * reorganised (answers, codes and, after reorder_store, slots may change), else 0. */
int iqdb__index_maintain(iqdb__index *ix, const iqdb__env *env);
/* Rebuilds the index from the rows (iqdb_optimize). IQDB_OK, IQDB_NOMEM or IQDB_INTERRUPTED
 * (env->lc said stop): the index is then unchanged. */
int iqdb__index_optimize(iqdb__index *ix, const iqdb__env *env);
/* Right after maintain / optimize, with every live slot in the id map: the index may move rows
 * to other slots (iqdb__store_reorder) so that rows it scans together are adjacent in memory,
 * and renumbers its own structures. The one verb that gets the store writable, from iqdb.c,
 * which owns it. Never fails. */
void iqdb__index_reorder_store(iqdb__index *ix, const iqdb__env *env, iqdb__store *store);
/* The best q->k candidates into `top` (initialised by the caller with capacity q->k). */
int iqdb__index_search(iqdb__index *ix, const iqdb__env *env, const iqdb__query *q,
                       iqdb__scratch *s, iqdb__topk *top, iqdb__sinfo *info);

/* A batch: queries qs[i] (all with the same k, filter and parameters as `proto`). Results for
 * query i go to hits + i * out_stride, their count to n_hits[i]. */
typedef struct iqdb__batch {
    const float *qs;
    size_t nq;
    size_t dim;
    iqdb__query proto;   /* vec and qnorm unused */
    const float *qnorms; /* per query |q| (cosine), or NULL */
    iqdb_hit *hits;
    size_t out_stride;
    size_t *n_hits;
} iqdb__batch;

int iqdb__index_search_batch(iqdb__index *ix, const iqdb__env *env, const iqdb__batch *b);

int iqdb__index_serialize(const iqdb__index *ix, const iqdb__env *env, iqdb__sink *sink);
int iqdb__index_load(iqdb__index *ix, const iqdb__env *env, iqdb__source *src);
/* The vector of a live slot when the store holds none (a codes-only quantized index): the
 * decoded code into out (dim floats). IQDB_OK, or IQDB_ERROR when the index has no code. */
int iqdb__index_vector(const iqdb__index *ix, const iqdb__env *env, uint32_t slot, float *out);
/* Bytes the index structures use (codes excluded). */
size_t iqdb__index_mem(const iqdb__index *ix);
/* What iqdb_stats reports about the index. */
typedef struct iqdb__index_desc {
    size_t mem_codes;
    iqdb_quant quant;
    uint32_t code_bytes, lists, trained;
    uint64_t trained_rows;
} iqdb__index_desc;
void iqdb__index_describe(const iqdb__index *ix, iqdb__index_desc *d);
/* Verifies the index's invariants against the store. IQDB_OK or IQDB_CORRUPT (message set);
 * IQDB_NOMEM. */
int iqdb__index_check(const iqdb__index *ix, const iqdb__env *env);

/* The handle's index and environment (iqdb.c), for the persistence layer and the tests: the
 * caller holds the handle's lock as the verb requires. */
iqdb__index *iqdb__db_index(iqdb *db);
const iqdb__env *iqdb__db_env(iqdb *db);

/* Writes the sorted candidates of `top` as hits. */
void iqdb__hits_from_top(const iqdb__store *st, iqdb__topk *top, iqdb_hit *hits, size_t *n);

#endif
