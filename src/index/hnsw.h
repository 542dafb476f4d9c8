/*
 * hnsw.h — the HNSW graph index (hnsw.c): a hierarchical navigable small-world graph over the
 * row store's slots, with true deletes, a filter planner, parallel bulk builds and a versioned
 * serialized form.
 *
 * What it promises to the dispatcher (index.h):
 *  - insert(slots, n) is all or nothing: every allocation happens before the graph changes, so
 *    IQDB_NOMEM leaves the graph exactly as it was;
 *  - remove(slot) never fails and never allocates: the node leaves the graph and the nodes that
 *    linked to it are re-linked (repair);
 *  - search and search_batch only read the graph (any number of threads at once, under the
 *    handle's shared lock); a batch returns exactly what single searches return;
 *  - check verifies every structural invariant listed at the top of hnsw.c; load verifies the
 *    same on hostile bytes and returns IQDB_CORRUPT instead of asserting;
 *  - with a quantizer (SQ8 or binary), once trained, every node has a code and the graph's
 *    distances (build and search) are computed on codes; a search re-ranks its best
 *    k * oversample candidates (of max(ef, k) walked) against the rows (or, codes only, the
 *    decoded codes).
 */
#ifndef IQDB_HNSW_H
#define IQDB_HNSW_H

#include "index/index.h"

typedef struct iqdb__hnsw iqdb__hnsw;

int iqdb__hnsw_create(const iqdb__env *env, iqdb__hnsw **out);
void iqdb__hnsw_destroy(iqdb__hnsw *h);
/* vecs (may be NULL): row i's vector at vecs + i * dim (a codes-only store keeps none). */
int iqdb__hnsw_insert(iqdb__hnsw *h, const iqdb__env *env, const uint32_t *slots, size_t n,
                      const float *vecs);
void iqdb__hnsw_remove(iqdb__hnsw *h, const iqdb__env *env, uint32_t slot);
int iqdb__hnsw_search(iqdb__hnsw *h, const iqdb__env *env, const iqdb__query *q, iqdb__scratch *s,
                      iqdb__topk *top, iqdb__sinfo *info);
int iqdb__hnsw_search_batch(iqdb__hnsw *h, const iqdb__env *env, const iqdb__batch *b);
int iqdb__hnsw_serialize(const iqdb__hnsw *h, const iqdb__env *env, iqdb__sink *sink);
int iqdb__hnsw_load(iqdb__hnsw *h, const iqdb__env *env, iqdb__source *src);
size_t iqdb__hnsw_mem(const iqdb__hnsw *h);
int iqdb__hnsw_check(const iqdb__hnsw *h, const iqdb__env *env);
int iqdb__hnsw_optimize(iqdb__hnsw *h, const iqdb__env *env);
/* Quantized graphs (SQ8 or binary codes; see "Quantized graphs" in hnsw.c): training after a
 * write (1 when the codes changed), the stats view, and the decoded vector of a node. */
int iqdb__hnsw_maintain(iqdb__hnsw *h, const iqdb__env *env);
void iqdb__hnsw_describe_quant(const iqdb__hnsw *h, iqdb__index_desc *d);
int iqdb__hnsw_vector(const iqdb__hnsw *h, const iqdb__env *env, uint32_t slot, float *out);

/* Structure figures for tests and benchmarks. */
typedef struct iqdb__hnsw_info {
    uint64_t nodes, edges0, edges_upper, overflow;
    int top;
    uint32_t entry, root;
} iqdb__hnsw_info;
void iqdb__hnsw_describe(const iqdb__hnsw *h, iqdb__hnsw_info *out);

#endif
