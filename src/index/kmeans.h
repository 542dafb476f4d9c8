/*
 * kmeans.h — clustering for the IVF coarse quantizer and the PQ codebooks.
 *
 * Each metric is clustered in its own geometry (the seed clustered everything with squared L2):
 *   L2         Lloyd's k-means: assign by squared L2, centroid = mean
 *   SPHERICAL  cosine and dot: assign by the largest inner product with unit centroids, centroid
 *              = the normalised mean of the normalised points (points are weighted by 1/|x|, so
 *              they need not be normalised in memory)
 *   L1         k-medians: assign by L1, centroid = the per-component (lower) median
 *   HAMMING    assign by Hamming distance, centroid = the per-component median (for 0/1 vectors,
 *              the majority vote)
 * Initialisation is k-means++ (D^2 sampling for L2, D for the others) on a subsample of at most
 * 8k points; empty clusters are re-seeded with the point farthest from its centroid. Everything
 * is deterministic for a given seed: the assignment step is parallel over the worker pool in a
 * fixed partition, and every reduction runs in a fixed order, so the thread count does not change
 * the result.
 *
 * Points are given as pointers (the store's rows are used in place, nothing is copied).
 * Centroids are rows `cstride` floats apart, zero-padded past `dim`.
 */
#ifndef IQDB_KMEANS_H
#define IQDB_KMEANS_H

#include "dist/dist.h"
#include "internal.h"
#include "pool.h"

typedef enum iqdb__km_mode {
    IQDB__KM_L2 = 0,
    IQDB__KM_SPHERICAL = 1,
    IQDB__KM_L1 = 2,
    IQDB__KM_HAMMING = 3
} iqdb__km_mode;

typedef struct iqdb__km {
    iqdb__km_mode mode;
    const float *const *xs; /* n points of dim floats */
    const float *w;         /* SPHERICAL: per point 1/|x| (0 for a zero vector); else NULL */
    size_t n;
    uint32_t dim;
    uint32_t k;     /* clusters, 1 <= k <= n */
    uint32_t iters; /* Lloyd iterations at most */
    uint64_t seed;
    const iqdb__kernels *kern;
    iqdb__pool *pool; /* may be NULL */
    iqdb__mem *mem;
    struct iqdb__long *lc; /* polled after every iteration (observe.h), or NULL */
    uint64_t lc_total;     /* the total reported with iteration i + 1 as done */
} iqdb__km;

/* The mode that clusters `metric` in its own geometry. */
iqdb__km_mode iqdb__km_mode_of(iqdb_metric metric);

/* Clusters the points into `centroids` (k rows, cstride >= dim floats each, written in full) and,
 * when `assign` is not NULL, the final cluster of each point. IQDB_OK, IQDB_NOMEM or
 * IQDB_INTERRUPTED (km->lc said stop); on failure centroids and assign are unspecified. */
int iqdb__kmeans(const iqdb__km *km, float *centroids, size_t cstride, uint32_t *assign);

/* The nearest of k centroids for each of n points, in parallel over the pool: assign[i] and, when
 * `dist` is not NULL, the mode's key of that centroid (smaller is nearer: squared L2, minus the
 * inner product, L1, Hamming). Ties go to the lower centroid number. IQDB_OK or IQDB_NOMEM. */
int iqdb__km_assign(const iqdb__kernels *kern, iqdb__pool *pool, iqdb__mem *mem, iqdb__km_mode mode,
                    const float *const *xs, size_t n, uint32_t dim, const float *const *cs,
                    uint32_t k, uint32_t *assign, float *dist);

/* The mode's key for a raw kernel value (see iqdb__km_assign) and the kernel op it uses. */
static inline int iqdb__km_op(iqdb__km_mode m) {
    switch (m) {
    case IQDB__KM_L2: return IQDB__OP_L2SQ;
    case IQDB__KM_SPHERICAL: return IQDB__OP_DOT;
    case IQDB__KM_L1: return IQDB__OP_L1;
    case IQDB__KM_HAMMING: return IQDB__OP_HAM;
    }
    return IQDB__OP_L2SQ;
}
static inline float iqdb__km_key(iqdb__km_mode m, float raw) {
    return m == IQDB__KM_SPHERICAL ? -raw : raw;
}

#endif
