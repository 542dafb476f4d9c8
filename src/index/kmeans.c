/*
 * kmeans.c — see kmeans.h.
 *
 * Cost. One Lloyd iteration is n x k x dim multiply-adds in the assignment step; everything
 * else is O(n x dim). The assignment uses the kernels' tile shape (a register-blocked micro-tile
 * over 32 points x 64 centroids, both blocks in L2) and runs over the worker pool in a fixed
 * partition of 32-point tasks, so the result does not depend on the thread count.
 * k-means++ on a subsample of min(n, 4k) points costs 4k^2 x dim (0.1 s for k = 1024 at dim 784),
 * small next to the iterations.
 */
#include "index/kmeans.h"

#include "observe.h"

#include <math.h>

enum { PB = 32, CB = 64 }; /* points x centroids per assignment block (8 KiB of distances) */

/* Small subspaces (PQ codebooks: 8 components, 256 centroids) are assigned with the column
 * kernels over transposed centroids instead of the tile shape, whose per-block overhead
 * dominates at such widths: PQ training on 20,000 Fashion-MNIST rows (m = 98 subspaces of 8,
 * 256 centroids each) took 38 s through the tile kernel, 3.7 s with columns and the vector
 * argmin (one thread, AVX-512 level, this machine). */
enum { SMALL_DIM = 32, SMALL_K = 4096 };

static int km_col(iqdb__km_mode m) {
    switch (m) {
    case IQDB__KM_L2: return IQDB__COL_L2SQ;
    case IQDB__KM_SPHERICAL: return IQDB__COL_NDOT; /* minus the inner product: the key itself */
    case IQDB__KM_L1: return IQDB__COL_L1;
    case IQDB__KM_HAMMING: return IQDB__COL_HAM;
    }
    return IQDB__COL_L2SQ;
}

iqdb__km_mode iqdb__km_mode_of(iqdb_metric metric) {
    switch (metric) {
    case IQDB_METRIC_COSINE:
    case IQDB_METRIC_DOT: return IQDB__KM_SPHERICAL;
    case IQDB_METRIC_L1: return IQDB__KM_L1;
    case IQDB_METRIC_HAMMING: return IQDB__KM_HAMMING;
    case IQDB_METRIC_DEFAULT:
    case IQDB_METRIC_L2: return IQDB__KM_L2;
    }
    return IQDB__KM_L2;
}

/* ---- assignment --------------------------------------------------------------------------- */

typedef struct assign_ctx {
    const iqdb__kernels *kern;
    iqdb__km_mode mode;
    const float *const *xs;
    size_t n;
    uint32_t dim;
    const float *const *cs;
    uint32_t k;
    uint32_t *assign;
    float *dist;
    const float *ct; /* small dims: centroids transposed (dim x k), else NULL */
} assign_ctx;

static void assign_task_small(const assign_ctx *c, size_t p0, size_t np) {
    float out[SMALL_K];
    iqdb__cols_fn cols = c->kern->cols[km_col(c->mode)];
    for (size_t i = p0; i < p0 + np; i++) {
        cols(c->xs[i], c->dim, c->ct, c->k, out);
        uint32_t best = c->kern->argmin(out, c->k); /* ties keep the lower centroid */
        c->assign[i] = best;
        if (c->dist) c->dist[i] = out[best];
    }
}

static void assign_task(void *arg, size_t task) {
    const assign_ctx *c = arg;
    size_t p0 = task * PB, np = IQDB_MIN((size_t)PB, c->n - p0);
    if (c->ct) {
        assign_task_small(c, p0, np);
        return;
    }
    iqdb__tile_fn tile = c->kern->tile[iqdb__km_op(c->mode)];
    float out[PB * CB], best[PB];
    uint32_t arg_best[PB];
    for (size_t i = 0; i < np; i++) {
        best[i] = INFINITY;
        arg_best[i] = 0;
    }
    for (uint32_t c0 = 0; c0 < c->k; c0 += CB) {
        size_t nc = IQDB_MIN((size_t)CB, (size_t)(c->k - c0));
        tile(c->xs + p0, np, c->cs + c0, nc, c->dim, out);
        for (size_t i = 0; i < np; i++)
            for (size_t j = 0; j < nc; j++) {
                float key = iqdb__km_key(c->mode, out[i * nc + j]);
                if (key < best[i]) { /* strict: ties keep the lower centroid */
                    best[i] = key;
                    arg_best[i] = c0 + (uint32_t)j;
                }
            }
    }
    for (size_t i = 0; i < np; i++) {
        c->assign[p0 + i] = arg_best[i];
        if (c->dist) c->dist[p0 + i] = best[i];
    }
}

int iqdb__km_assign(const iqdb__kernels *kern, iqdb__pool *pool, iqdb__mem *mem, iqdb__km_mode mode,
                    const float *const *xs, size_t n, uint32_t dim, const float *const *cs,
                    uint32_t k, uint32_t *assign, float *dist) {
    if (n == 0) return IQDB_OK;
    assign_ctx c = {kern, mode, xs, n, dim, cs, k, assign, dist, NULL};
    float *ct = NULL;
    size_t ct_bytes = (size_t)dim * k * sizeof(float);
    if (dim <= SMALL_DIM && k <= SMALL_K) {
        ct = iqdb__alloc(mem, ct_bytes);
        if (!ct) return IQDB_NOMEM;
        for (uint32_t j = 0; j < k; j++)
            for (uint32_t d = 0; d < dim; d++) ct[(size_t)d * k + j] = cs[j][d];
        c.ct = ct;
    }
    iqdb__pool_run(pool, (n + PB - 1) / PB, assign_task, &c);
    iqdb__free(mem, ct, ct ? ct_bytes : 0);
    return IQDB_OK;
}

/* ---- small helpers ------------------------------------------------------------------------ */

static uint64_t rng_next(uint64_t *s) {
    *s += 0x9e3779b97f4a7c15ull;
    return iqdb__mix64(*s);
}
static double rng_unit(uint64_t *s) {
    return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

/* The first m entries of a deterministic random permutation of 0..n-1, into idx (room for n). */
static void sample_indices(uint32_t *idx, size_t n, size_t m, uint64_t *rng) {
    for (size_t i = 0; i < n; i++) idx[i] = (uint32_t)i;
    for (size_t i = 0; i < m && i + 1 < n; i++) {
        size_t j = i + (size_t)(rng_next(rng) % (n - i));
        uint32_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}

/* Writes point x (scaled by `w` when spherical, which makes it a unit vector) as centroid row. */
static void set_centroid(const iqdb__km *km, float *row, size_t cstride, const float *x, float w) {
    for (uint32_t j = 0; j < km->dim; j++)
        row[j] = km->mode == IQDB__KM_SPHERICAL ? x[j] * w : x[j];
    for (size_t j = km->dim; j < cstride; j++) row[j] = 0.0f;
}

/* A dissimilarity >= 0 from a mode key, for seeding weights and "farthest point" choices. */
static double badness(const iqdb__km *km, float key, size_t point) {
    if (km->mode == IQDB__KM_SPHERICAL) {
        double w = km->w ? km->w[point] : 1.0;
        double b = 1.0 + (double)key * w; /* 1 - cos */
        return b > 0 ? b : 0;
    }
    if (km->mode == IQDB__KM_L2) return key > 0 ? key : 0; /* D^2 */
    return key > 0 ? key : 0;                              /* D (k-medians++) */
}

/* ---- k-means++ ---------------------------------------------------------------------------- */

static int seed_plus_plus(const iqdb__km *km, float *cent, size_t cstride, uint64_t *rng) {
    size_t m = IQDB_MIN(km->n, IQDB_MAX((size_t)km->k * 4, (size_t)256));
    if (m < km->k) m = km->k;
    size_t bytes = m * (sizeof(float *) + sizeof(double) + sizeof(float) + sizeof(uint32_t)) +
                   km->n * sizeof(uint32_t);
    uint8_t *blk = iqdb__alloc(km->mem, bytes);
    if (!blk) return IQDB_NOMEM;
    const float **ptrs = (const float **)blk; /* m */
    double *dmin = (double *)(ptrs + m);      /* m */
    float *tmp = (float *)(dmin + m);         /* m */
    uint32_t *chosen = (uint32_t *)(tmp + m); /* m flags */
    uint32_t *perm = chosen + m;              /* n */
    sample_indices(perm, km->n, m, rng);
    for (size_t i = 0; i < m; i++) {
        ptrs[i] = km->xs[perm[i]];
        dmin[i] = INFINITY;
        chosen[i] = 0;
    }
    iqdb__rows_fn rows = km->kern->rows[iqdb__km_op(km->mode)];
    size_t pick = (size_t)(rng_next(rng) % m);
    for (uint32_t c = 0; c < km->k; c++) {
        size_t p = perm[pick];
        chosen[pick] = 1;
        float *row = cent + (size_t)c * cstride;
        set_centroid(km, row, cstride, km->xs[p], km->w ? km->w[p] : 1.0f);
        if (c + 1 == km->k) break;
        rows(row, ptrs, m, km->dim, tmp);
        double total = 0;
        for (size_t i = 0; i < m; i++) {
            double b = badness(km, iqdb__km_key(km->mode, tmp[i]), perm[i]);
            if (b < dmin[i]) dmin[i] = b;
            if (!chosen[i]) total += dmin[i];
        }
        /* D-weighted choice among the points not chosen yet; uniform when every weight is 0. */
        size_t next = m;
        if (total > 0) {
            double r = rng_unit(rng) * total, acc = 0;
            for (size_t i = 0; i < m; i++) {
                if (chosen[i]) continue;
                acc += dmin[i];
                next = i;
                if (acc > r) break;
            }
        }
        if (next == m || chosen[next]) {
            size_t left = 0;
            for (size_t i = 0; i < m; i++) left += !chosen[i];
            size_t t = (size_t)(rng_next(rng) % (left ? left : 1));
            for (size_t i = 0; i < m; i++)
                if (!chosen[i] && t-- == 0) {
                    next = i;
                    break;
                }
        }
        pick = next;
    }
    iqdb__free(km->mem, blk, bytes);
    return IQDB_OK;
}

/* ---- update steps ------------------------------------------------------------------------- */

/* Mean (L2) or normalised weighted mean (spherical) of each cluster; counts[c] = members.
 * A cluster without members keeps count 0 (re-seeded by the caller). */
static void update_mean(const iqdb__km *km, const uint32_t *assign, float *cent, size_t cstride,
                        double *acc, uint32_t *counts) {
    const uint32_t d = km->dim;
    memset(acc, 0, (size_t)km->k * d * sizeof *acc);
    memset(counts, 0, (size_t)km->k * sizeof *counts);
    for (size_t i = 0; i < km->n; i++) {
        uint32_t c = assign[i];
        double w = km->mode == IQDB__KM_SPHERICAL ? (km->w ? km->w[i] : 1.0) : 1.0;
        double *a = acc + (size_t)c * d;
        const float *x = km->xs[i];
        for (uint32_t j = 0; j < d; j++) a[j] += w * x[j];
        counts[c]++;
    }
    for (uint32_t c = 0; c < km->k; c++) {
        if (!counts[c]) continue;
        const double *a = acc + (size_t)c * d;
        float *row = cent + (size_t)c * cstride;
        if (km->mode == IQDB__KM_SPHERICAL) {
            double nn = 0;
            for (uint32_t j = 0; j < d; j++) nn += a[j] * a[j];
            if (!(nn > 0)) continue; /* only zero vectors: keep the old centroid */
            double inv = 1.0 / sqrt(nn);
            for (uint32_t j = 0; j < d; j++) row[j] = (float)(a[j] * inv);
        } else {
            for (uint32_t j = 0; j < d; j++) row[j] = (float)(a[j] / counts[c]);
        }
    }
}

/* The lower median of v[0..n-1] (reorders v): quickselect with a median-of-three pivot and a
 * three-way partition, so runs of equal values (0/1 data under Hamming) stay linear. */
static float lower_median(float *v, size_t n) {
    ptrdiff_t want = (ptrdiff_t)(n - 1) / 2, lo = 0, hi = (ptrdiff_t)n - 1;
    while (lo < hi) {
        float a = v[lo], b = v[lo + (hi - lo) / 2], c = v[hi];
        float p = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
        ptrdiff_t lt = lo, i = lo, gt = hi;
        while (i <= gt) {
            float x = v[i];
            if (x < p) {
                v[i++] = v[lt];
                v[lt++] = x;
            } else if (x > p) {
                v[i] = v[gt];
                v[gt--] = x;
            } else {
                i++;
            }
        }
        /* [lo, lt) < p, [lt, gt] == p, (gt, hi] > p */
        if (want < lt)
            hi = lt - 1;
        else if (want > gt)
            lo = gt + 1;
        else
            return p;
    }
    return v[want];
}

/* Per-component lower median of each cluster (L1, Hamming). Members are grouped by cluster with
 * a counting sort; components are taken 16 at a time so each member row is read one cache line
 * at a time. `order` has room for n, `buf` for 16 x n floats. */
static void update_median(const iqdb__km *km, const uint32_t *assign, float *cent, size_t cstride,
                          uint32_t *counts, uint32_t *start, uint32_t *order, float *buf) {
    memset(counts, 0, (size_t)km->k * sizeof *counts);
    for (size_t i = 0; i < km->n; i++) counts[assign[i]]++;
    uint32_t run = 0;
    for (uint32_t c = 0; c < km->k; c++) {
        start[c] = run;
        run += counts[c];
    }
    for (size_t i = 0; i < km->n; i++) order[start[assign[i]]++] = (uint32_t)i;
    for (uint32_t c = 0; c < km->k; c++) start[c] -= counts[c];
    for (uint32_t c = 0; c < km->k; c++) {
        size_t m = counts[c];
        if (!m) continue;
        const uint32_t *mem = order + start[c];
        float *row = cent + (size_t)c * cstride;
        for (uint32_t j0 = 0; j0 < km->dim; j0 += 16) {
            uint32_t nj = IQDB_MIN(16u, km->dim - j0);
            for (size_t t = 0; t < m; t++) {
                const float *x = km->xs[mem[t]] + j0;
                for (uint32_t j = 0; j < nj; j++) buf[j * m + t] = x[j];
            }
            for (uint32_t j = 0; j < nj; j++) row[j0 + j] = lower_median(buf + j * m, m);
        }
    }
}

/* Re-seeds every empty cluster with one of the points farthest from their centroids, taking
 * points from clusters that keep at least one member. Points are ranked once (a sort by
 * badness, O(n log n): the first version scanned all points per empty cluster, which was
 * quadratic for PQ codebooks — 256 centroids, many empty on small samples). `rank` has room for
 * n entries. Deterministic: ties go to the lower point number. */
typedef struct ranked {
    double bad;
    uint32_t point;
} ranked;

static int ranked_cmp(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->bad != y->bad) return x->bad > y->bad ? -1 : 1;
    return x->point < y->point ? -1 : x->point > y->point;
}

static void reseed_empty(const iqdb__km *km, float *cent, size_t cstride, uint32_t *assign,
                         const float *dist, uint32_t *counts, ranked *rank) {
    uint32_t empties = 0;
    for (uint32_t c = 0; c < km->k; c++) empties += counts[c] == 0;
    if (!empties) return;
    for (size_t i = 0; i < km->n; i++) {
        rank[i].bad = badness(km, dist[i], i);
        rank[i].point = (uint32_t)i;
    }
    qsort(rank, km->n, sizeof *rank, ranked_cmp);
    size_t next = 0;
    for (uint32_t c = 0; c < km->k; c++) {
        if (counts[c]) continue;
        while (next < km->n && counts[assign[rank[next].point]] < 2) next++;
        if (next == km->n) break; /* every cluster has one member: nothing to split */
        uint32_t at = rank[next++].point;
        counts[assign[at]]--;
        assign[at] = c;
        counts[c] = 1;
        set_centroid(km, cent + (size_t)c * cstride, cstride, km->xs[at], km->w ? km->w[at] : 1.0f);
    }
}

/* ---- driver ------------------------------------------------------------------------------- */

int iqdb__kmeans(const iqdb__km *km, float *cent, size_t cstride, uint32_t *assign_out) {
    IQDB_ASSERT(km->k >= 1 && km->k <= km->n);
    uint64_t rng = km->seed ^ 0x6b6d65616e73ull; /* "kmeans" */
    IQDB_TRY(seed_plus_plus(km, cent, cstride, &rng));
    const int median = km->mode == IQDB__KM_L1 || km->mode == IQDB__KM_HAMMING;
    const size_t n = km->n, k = km->k;
    size_t bytes =
        n * sizeof(ranked) + n * (2 * sizeof(uint32_t) + sizeof(float)) +
        k * (2 * sizeof(uint32_t)) + k * sizeof(const float *) +
        (median ? n * sizeof(uint32_t) + 16 * n * sizeof(float) : k * km->dim * sizeof(double));
    uint8_t *blk = iqdb__alloc(km->mem, bytes);
    if (!blk) return IQDB_NOMEM;
    /* 8-byte aligned arrays first, then floats and u32s */
    ranked *rank = (ranked *)(void *)blk;
    double *acc = median ? NULL : (double *)(void *)(rank + n);
    uint8_t *p = (uint8_t *)(rank + n) + (median ? 0 : k * km->dim * sizeof(double));
    const float **cs = (const float **)(void *)p;
    p += k * sizeof *cs;
    float *dist = (float *)p;
    p += n * sizeof(float);
    float *buf = median ? (float *)p : NULL;
    p += median ? 16 * n * sizeof(float) : 0;
    uint32_t *assign = (uint32_t *)p, *prev = assign + n, *counts = prev + n, *start = counts + k;
    uint32_t *order = median ? start + k : NULL;
    for (size_t c = 0; c < k; c++) cs[c] = cent + c * cstride;
    for (size_t i = 0; i < n; i++) prev[i] = UINT32_MAX;
    uint32_t iters = km->iters ? km->iters : 1;
    int rc = IQDB_OK;
    for (uint32_t it = 0; it < iters; it++) {
        rc = iqdb__km_assign(km->kern, km->pool, km->mem, km->mode, km->xs, n, km->dim, cs,
                             (uint32_t)k, assign, dist);
        if (rc) break;
        size_t changed = 0;
        for (size_t i = 0; i < n; i++) changed += assign[i] != prev[i];
        if (changed == 0) break;
        if (median)
            update_median(km, assign, cent, cstride, counts, start, order, buf);
        else
            update_mean(km, assign, cent, cstride, acc, counts);
        reseed_empty(km, cent, cstride, assign, dist, counts, rank);
        memcpy(prev, assign, n * sizeof *assign);
        /* fewer than 1 in 1000 points moved: the partition is settled for an index's purposes */
        if (changed * 1000 < n) break;
        if (km->lc && iqdb__long_poll(km->lc, it + 1u, km->lc_total)) {
            rc = IQDB_INTERRUPTED;
            break;
        }
    }
    if (rc == IQDB_OK && assign_out)
        rc = iqdb__km_assign(km->kern, km->pool, km->mem, km->mode, km->xs, n, km->dim, cs,
                             (uint32_t)k, assign_out, NULL);
    iqdb__free(km->mem, blk, bytes);
    return rc;
}
