/*
 * quant.c — see quant.h.
 *
 * Parameter layout in memory: one block per kind (SQ8: lo | step; BINARY: thr | below | above;
 * PQ: codebooks, plus a derived table of row pointers for the kernels' rows shape).
 *
 * PQ training runs k-means in each subspace on at most PQ_TRAIN residuals (16,384: 64 per
 * centroid), 12 iterations; with 256 centroids per subspace that is 12 x 16384 x 256 x dim
 * multiply-adds in total (about 40 G at dim 784, under 2 s on one core).
 */
#include "index/quant.h"

#include <math.h>

#include "index/kmeans.h"
#include "index/metric.h"
#include "index/ser.h"

enum { PQ_TRAIN = 16384, PQ_ITERS = 12, PQ_KSUB = 256 };

static uint32_t words_of(uint32_t dim) { return (dim + 63u) / 64u; }

void iqdb__quant_init(iqdb__quant *q, iqdb__mem *mem, iqdb_quant kind, iqdb_metric metric,
                      uint32_t dim, uint32_t pq_m) {
    memset(q, 0, sizeof *q);
    q->mem = mem;
    q->kind = kind;
    q->metric = metric;
    q->dim = dim;
    q->normalize = metric == IQDB_METRIC_COSINE;
    switch (kind) {
    case IQDB_QUANT_NONE: q->code_size = 0; break;
    case IQDB_QUANT_SQ8: q->code_size = dim; break;
    case IQDB_QUANT_BINARY: q->code_size = words_of(dim) * 8u; break;
    case IQDB_QUANT_PQ:
        q->m = pq_m ? pq_m : IQDB_MAX(dim / 4u, 1u);
        if (q->m > dim) q->m = dim;
        q->dsub = (dim + q->m - 1) / q->m;
        q->code_size = q->m;
        break;
    }
}

static size_t param_floats(const iqdb__quant *q) {
    switch (q->kind) {
    case IQDB_QUANT_NONE: return 0;
    case IQDB_QUANT_SQ8: return 2 * (size_t)q->dim;
    case IQDB_QUANT_BINARY: return 3 * (size_t)q->dim;
    case IQDB_QUANT_PQ: return (size_t)q->m * q->ksub * q->dsub;
    }
    return 0;
}

static size_t param_bytes(const iqdb__quant *q) {
    size_t b = param_floats(q) * sizeof(float);
    if (q->kind == IQDB_QUANT_PQ) /* row pointers and the transposed copy */
        b += (size_t)q->m * q->ksub * (sizeof(float *) + q->dsub * sizeof(float));
    return b;
}

void iqdb__quant_clear(iqdb__quant *q) {
    if (q->trained) {
        void *blk = q->kind == IQDB_QUANT_SQ8      ? (void *)q->lo
                    : q->kind == IQDB_QUANT_BINARY ? (void *)q->thr
                                                   : (void *)q->cbp;
        iqdb__free(q->mem, blk, param_bytes(q));
    }
    q->lo = q->step = q->thr = q->below = q->above = q->cb = q->cbt = NULL;
    q->cbp = NULL;
    q->trained = 0;
    if (q->kind == IQDB_QUANT_PQ) q->ksub = 0;
}

size_t iqdb__quant_mem(const iqdb__quant *q) { return q->trained ? param_bytes(q) : 0; }

/* Allocates the parameter block for the current shape and points the arrays into it. */
static int alloc_params(iqdb__quant *q) {
    float *blk = iqdb__alloc(q->mem, param_bytes(q));
    if (!blk) return IQDB_NOMEM;
    const size_t d = q->dim;
    switch (q->kind) {
    case IQDB_QUANT_NONE: break;
    case IQDB_QUANT_SQ8:
        q->lo = blk;
        q->step = blk + d;
        break;
    case IQDB_QUANT_BINARY:
        q->thr = blk;
        q->below = blk + d;
        q->above = blk + 2 * d;
        break;
    case IQDB_QUANT_PQ: { /* the pointer table first (alignment), then the codebooks */
        size_t rows = (size_t)q->m * q->ksub;
        q->cbp = (const float **)(void *)blk;
        q->cb = (float *)(void *)(q->cbp + rows);
        q->cbt = q->cb + rows * q->dsub;
        for (size_t r = 0; r < rows; r++) q->cbp[r] = q->cb + r * q->dsub;
        break;
    }
    }
    q->trained = 1;
    return IQDB_OK;
}

/* Fills the transposed codebooks from cb (after training or reading). */
static void pq_transpose(iqdb__quant *q) {
    const size_t ks = q->ksub, ds = q->dsub;
    for (uint32_t s = 0; s < q->m; s++) {
        const float *c = q->cb + (size_t)s * ks * ds;
        float *t = q->cbt + (size_t)s * ks * ds;
        for (size_t k = 0; k < ks; k++)
            for (size_t j = 0; j < ds; j++) t[j * ks + k] = c[k * ds + j];
    }
}

/* The column op that measures a PQ subspace in the metric's geometry. */
static int pq_col(iqdb_metric m) {
    return m == IQDB_METRIC_L1        ? IQDB__COL_L1
           : m == IQDB_METRIC_HAMMING ? IQDB__COL_HAM
                                      : IQDB__COL_L2SQ;
}

/* dist[c] for every centroid c of subspace s against the w components of r, with a column
 * kernel over the transposed codebook, then argmin: one call per subspace instead of 256 calls
 * on 8-float rows. Encoding 20,000 Fashion-MNIST rows with m = 98 (AVX-512 level, this
 * machine): 0.6 G multiply-adds/s through the rows kernel and a scalar argmin, 10.4 G/s now.
 * Column kernels give the same bits at every SIMD level, so codes do not depend on it. */
static void pq_sub(const iqdb__quant *q, const iqdb__kernels *k, uint32_t s, const float *r,
                   uint32_t w, int col, float *dist) {
    k->cols[col](r, w, q->cbt + (size_t)s * q->dsub * q->ksub, q->ksub, dist);
}

/* 1/|x| in double, plain C (level-independent); 0 for a zero vector. */
static float inv_norm(const float *x, uint32_t d) {
    double s = 0;
    for (uint32_t i = 0; i < d; i++) s += (double)x[i] * x[i];
    return s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
}

/* x in code space: normalised (cosine) into work, else x itself. */
static const float *code_space(const iqdb__quant *q, const float *x, float *work) {
    if (!q->normalize) return x;
    float inv = inv_norm(x, q->dim);
    for (uint32_t i = 0; i < q->dim; i++) work[i] = x[i] * inv;
    return work;
}

/* ---- training ----------------------------------------------------------------------------- */

static int train_sq8(iqdb__quant *q, const iqdb__qtrain *t, float *work) {
    IQDB_TRY(alloc_params(q));
    const uint32_t d = q->dim;
    float *hi = work; /* dim floats */
    for (uint32_t j = 0; j < d; j++) {
        q->lo[j] = INFINITY;
        hi[j] = -INFINITY;
    }
    float *tmp = work + d;
    for (size_t i = 0; i < t->n; i++) {
        const float *x = code_space(q, t->xs[i], tmp);
        for (uint32_t j = 0; j < d; j++) {
            if (x[j] < q->lo[j]) q->lo[j] = x[j];
            if (x[j] > hi[j]) hi[j] = x[j];
        }
    }
    for (uint32_t j = 0; j < d; j++) {
        if (!(q->lo[j] <= hi[j])) q->lo[j] = hi[j] = 0.0f; /* no rows */
        float st = (hi[j] - q->lo[j]) / 255.0f;
        q->step[j] = isfinite(st) ? st : 0.0f;
    }
    return IQDB_OK;
}

static int train_binary(iqdb__quant *q, const iqdb__qtrain *t, float *work) {
    IQDB_TRY(alloc_params(q));
    const uint32_t d = q->dim;
    double *sum = (double *)(void *)work; /* dim doubles, then counts */
    double *lo_sum = sum + d, *hi_sum = lo_sum + d;
    size_t *hi_n = (size_t *)(hi_sum + d);
    float *tmp = (float *)(hi_n + d);
    memset(sum, 0, 3 * d * sizeof(double) + d * sizeof(size_t));
    for (size_t i = 0; i < t->n; i++) {
        const float *x = code_space(q, t->xs[i], tmp);
        for (uint32_t j = 0; j < d; j++) sum[j] += x[j];
    }
    for (uint32_t j = 0; j < d; j++) q->thr[j] = t->n ? (float)(sum[j] / (double)t->n) : 0.0f;
    for (size_t i = 0; i < t->n; i++) {
        const float *x = code_space(q, t->xs[i], tmp);
        for (uint32_t j = 0; j < d; j++) {
            if (x[j] > q->thr[j]) {
                hi_sum[j] += x[j];
                hi_n[j]++;
            } else {
                lo_sum[j] += x[j];
            }
        }
    }
    for (uint32_t j = 0; j < d; j++) {
        size_t lo_n = t->n - hi_n[j];
        q->below[j] = lo_n ? (float)(lo_sum[j] / (double)lo_n) : q->thr[j];
        q->above[j] = hi_n[j] ? (float)(hi_sum[j] / (double)hi_n[j]) : q->thr[j];
    }
    return IQDB_OK;
}

static iqdb__km_mode pq_mode(iqdb_metric m) {
    return m == IQDB_METRIC_L1        ? IQDB__KM_L1
           : m == IQDB_METRIC_HAMMING ? IQDB__KM_HAMMING
                                      : IQDB__KM_L2;
}

static int train_pq(iqdb__quant *q, const iqdb__qtrain *t, iqdb__mem *mem) {
    size_t n = IQDB_MIN(t->n, (size_t)PQ_TRAIN);
    IQDB_ASSERT(n >= 1);
    if (n == 0) return IQDB_ERROR;
    q->ksub = (uint32_t)IQDB_MIN((size_t)PQ_KSUB, n);
    const uint32_t dsub = q->dsub;
    /* per sampled row: its index, 1/|x| (cosine) and a pointer to its subspace slice */
    size_t bytes =
        n * (sizeof(size_t) + sizeof(float *) + sizeof(float)) + n * dsub * sizeof(float);
    uint8_t *blk = iqdb__alloc(mem, bytes);
    if (!blk) {
        q->ksub = 0;
        return IQDB_NOMEM;
    }
    size_t *src = (size_t *)(void *)blk;
    const float **pts = (const float **)(src + n);
    float *inv = (float *)(pts + n), *buf = inv + n;
    for (size_t i = 0; i < n; i++) {
        src[i] = n == t->n ? i : (size_t)((uint64_t)i * t->n / n); /* evenly spaced */
        inv[i] = q->normalize ? inv_norm(t->xs[src[i]], q->dim) : 1.0f;
        pts[i] = buf + i * dsub;
    }
    int rc = alloc_params(q);
    for (uint32_t j = 0; j < q->m && rc == IQDB_OK; j++) {
        uint32_t o = iqdb__pq_off(q, j), w = iqdb__pq_off(q, j + 1) - o;
        for (size_t i = 0; i < n; i++) { /* the residual's slice j */
            const float *x = t->xs[src[i]] + o, *ref = t->refs ? t->refs[src[i]] : NULL;
            float *b = buf + i * dsub;
            for (uint32_t c = 0; c < w; c++) b[c] = x[c] * inv[i] - (ref ? ref[o + c] : 0.0f);
        }
        iqdb__km km = {pq_mode(q->metric), pts,     NULL,    n,   w,    q->ksub, PQ_ITERS,
                       t->seed + j,        t->kern, t->pool, mem, NULL, 0};
        rc = iqdb__kmeans(&km, q->cb + (size_t)j * q->ksub * dsub, dsub, NULL);
    }
    iqdb__free(mem, blk, bytes);
    if (rc)
        iqdb__quant_clear(q);
    else
        pq_transpose(q);
    return rc;
}

int iqdb__quant_train(iqdb__quant *q, const iqdb__qtrain *t) {
    IQDB_ASSERT(!q->trained);
    if (q->kind == IQDB_QUANT_NONE) return IQDB_OK;
    if (q->kind == IQDB_QUANT_PQ) return train_pq(q, t, q->mem);
    /* SQ8 and BINARY: work for sums / maxima plus one code-space row */
    size_t bytes = (size_t)q->dim * (3 * sizeof(double) + sizeof(size_t) + 2 * sizeof(float));
    float *work = iqdb__alloc(q->mem, bytes);
    if (!work) return IQDB_NOMEM;
    int rc = q->kind == IQDB_QUANT_SQ8 ? train_sq8(q, t, work) : train_binary(q, t, work);
    iqdb__free(q->mem, work, bytes);
    if (rc) iqdb__quant_clear(q);
    return rc;
}

int iqdb__quant_copy(iqdb__quant *dst, const iqdb__quant *src) {
    IQDB_ASSERT(!dst->trained && src->trained && dst->kind == src->kind && dst->dim == src->dim);
    dst->ksub = src->ksub;
    IQDB_TRY(alloc_params(dst));
    const float *from = src->kind == IQDB_QUANT_SQ8      ? src->lo
                        : src->kind == IQDB_QUANT_BINARY ? src->thr
                                                         : src->cb;
    float *to = dst->kind == IQDB_QUANT_SQ8      ? dst->lo
                : dst->kind == IQDB_QUANT_BINARY ? dst->thr
                                                 : dst->cb;
    memcpy(to, from, param_floats(src) * sizeof(float));
    if (dst->kind == IQDB_QUANT_PQ) pq_transpose(dst);
    return IQDB_OK;
}

/* ---- encode / decode ---------------------------------------------------------------------- */

void iqdb__quant_encode(const iqdb__quant *q, const iqdb__kernels *k, const float *x,
                        const float *ref, float *work, uint8_t *code) {
    const uint32_t d = q->dim;
    switch (q->kind) {
    case IQDB_QUANT_NONE: return;
    case IQDB_QUANT_SQ8: {
        const float *v = code_space(q, x, work);
        for (uint32_t j = 0; j < d; j++) {
            float c = q->step[j] > 0.0f ? (v[j] - q->lo[j]) / q->step[j] : 0.0f;
            c = floorf(c + 0.5f);
            code[j] = c <= 0.0f ? 0 : c >= 255.0f ? 255 : (uint8_t)c;
        }
        return;
    }
    case IQDB_QUANT_BINARY: {
        const float *v = code_space(q, x, work);
        memset(code, 0, q->code_size);
        for (uint32_t j = 0; j < d; j++)
            if (v[j] > q->thr[j]) code[j >> 3] |= (uint8_t)(1u << (j & 7));
        return;
    }
    case IQDB_QUANT_PQ: {
        float inv = q->normalize ? inv_norm(x, d) : 1.0f;
        for (uint32_t j = 0; j < d; j++) work[j] = x[j] * inv - (ref ? ref[j] : 0.0f);
        float dist[PQ_KSUB];
        for (uint32_t s = 0; s < q->m; s++) {
            uint32_t o = iqdb__pq_off(q, s), w = iqdb__pq_off(q, s + 1) - o;
            pq_sub(q, k, s, work + o, w, pq_col(q->metric), dist);
            uint32_t best = k->argmin(dist, q->ksub);
            code[s] = (uint8_t)best;
        }
        return;
    }
    }
}

void iqdb__quant_decode(const iqdb__quant *q, const uint8_t *code, const float *ref, float *out) {
    const uint32_t d = q->dim;
    switch (q->kind) {
    case IQDB_QUANT_NONE: return;
    case IQDB_QUANT_SQ8:
        for (uint32_t j = 0; j < d; j++) out[j] = q->lo[j] + q->step[j] * (float)code[j];
        return;
    case IQDB_QUANT_BINARY:
        for (uint32_t j = 0; j < d; j++)
            out[j] = (code[j >> 3] >> (j & 7)) & 1u ? q->above[j] : q->below[j];
        return;
    case IQDB_QUANT_PQ:
        for (uint32_t s = 0; s < q->m; s++) {
            uint32_t o = iqdb__pq_off(q, s), w = iqdb__pq_off(q, s + 1) - o;
            const float *c = q->cbp[(size_t)s * q->ksub + code[s]];
            for (uint32_t j = 0; j < w; j++) out[o + j] = c[j] + (ref ? ref[o + j] : 0.0f);
        }
        return;
    }
}

/* ---- the query side ----------------------------------------------------------------------- */

static int proxy_is_dot(iqdb_metric m) { return m == IQDB_METRIC_DOT || m == IQDB_METRIC_COSINE; }

size_t iqdb__quant_query_floats(const iqdb__quant *q) {
    size_t f = 2 * (size_t)q->dim; /* the query in code space, and a (SQ8) or res (PQ) */
    if (q->kind == IQDB_QUANT_BINARY) f += 2 * (size_t)words_of(q->dim);
    if (q->kind == IQDB_QUANT_PQ) f += (size_t)q->m * PQ_KSUB;
    return f;
}

void iqdb__quant_query(const iqdb__quant *q, const iqdb__kernels *k, const float *v, float qnorm,
                       float *work, iqdb__qquery *qq) {
    const uint32_t d = q->dim;
    memset(qq, 0, sizeof *qq);
    float *p = work;
    if (q->kind == IQDB_QUANT_BINARY) { /* 8-byte aligned first */
        qq->bits = (uint64_t *)(void *)p;
        p += 2 * (size_t)words_of(d);
    }
    float *qv = p;
    p += d;
    if (q->normalize) {
        float inv = qnorm > 0.0f ? 1.0f / qnorm : 0.0f;
        for (uint32_t j = 0; j < d; j++) qv[j] = v[j] * inv;
        qq->q = qv;
    } else {
        qq->q = v;
    }
    switch (q->kind) {
    case IQDB_QUANT_NONE: break;
    case IQDB_QUANT_SQ8: {
        qq->a = p;
        if (proxy_is_dot(q->metric)) {
            double c = 0;
            for (uint32_t j = 0; j < d; j++) {
                qq->a[j] = qq->q[j] * q->step[j];
                c += (double)qq->q[j] * q->lo[j];
            }
            qq->cst = (float)c;
        } else {
            for (uint32_t j = 0; j < d; j++) qq->a[j] = qq->q[j] - q->lo[j];
        }
        break;
    }
    case IQDB_QUANT_BINARY: {
        uint32_t w = words_of(d);
        memset(qq->bits, 0, (size_t)w * 8u);
        for (uint32_t j = 0; j < d; j++)
            if (qq->q[j] > q->thr[j]) qq->bits[j >> 6] |= (uint64_t)1 << (j & 63);
        break;
    }
    case IQDB_QUANT_PQ:
        qq->res = p;
        qq->table = p + d;
        if (proxy_is_dot(q->metric)) /* one table for every list: -(q_s . centroid) */
            for (uint32_t s = 0; s < q->m; s++) {
                uint32_t o = iqdb__pq_off(q, s), w = iqdb__pq_off(q, s + 1) - o;
                pq_sub(q, k, s, qq->q + o, w, IQDB__COL_NDOT, qq->table + (size_t)s * q->ksub);
            }
        break;
    }
}

void iqdb__quant_query_ref(const iqdb__quant *q, const iqdb__kernels *k, iqdb__qquery *qq,
                           const float *ref) {
    if (q->kind != IQDB_QUANT_PQ) return;
    const uint32_t d = q->dim;
    if (proxy_is_dot(q->metric)) {
        qq->cst = ref ? -k->pair[IQDB__OP_DOT](qq->q, ref, d) : 0.0f;
        return;
    }
    for (uint32_t j = 0; j < d; j++) qq->res[j] = qq->q[j] - (ref ? ref[j] : 0.0f);
    for (uint32_t s = 0; s < q->m; s++) {
        uint32_t o = iqdb__pq_off(q, s), w = iqdb__pq_off(q, s + 1) - o;
        pq_sub(q, k, s, qq->res + o, w, pq_col(q->metric), qq->table + (size_t)s * q->ksub);
    }
    qq->cst = 0.0f;
}

static float pq_sum(const iqdb__quant *q, const iqdb__qquery *qq, const uint8_t *code) {
    const float *t = qq->table;
    const uint32_t m = q->m, ks = q->ksub;
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    uint32_t s = 0;
    for (; s + 4 <= m; s += 4) {
        s0 += t[(size_t)s * ks + code[s]];
        s1 += t[(size_t)(s + 1) * ks + code[s + 1]];
        s2 += t[(size_t)(s + 2) * ks + code[s + 2]];
        s3 += t[(size_t)(s + 3) * ks + code[s + 3]];
    }
    for (; s < m; s++) s0 += t[(size_t)s * ks + code[s]];
    return qq->cst + ((s0 + s1) + (s2 + s3));
}

static int sq8_op(iqdb_metric m) {
    return proxy_is_dot(m) ? IQDB__SQ8_DOT : m == IQDB_METRIC_L2 ? IQDB__SQ8_L2SQ : IQDB__SQ8_L1;
}

void iqdb__quant_scan(const iqdb__quant *q, const iqdb__kernels *k, const iqdb__qquery *qq,
                      const uint8_t *codes, size_t n, float *out) {
    switch (q->kind) {
    case IQDB_QUANT_NONE: return;
    case IQDB_QUANT_SQ8: {
        int op = sq8_op(q->metric);
        k->sq8_rows[op](qq->a, op == IQDB__SQ8_DOT ? NULL : q->step, codes, n, q->code_size, q->dim,
                        out);
        if (op == IQDB__SQ8_DOT)
            for (size_t i = 0; i < n; i++) out[i] = -(out[i] + qq->cst);
        return;
    }
    case IQDB_QUANT_BINARY: {
        size_t w = words_of(q->dim);
        for (size_t i = 0; i < n; i++)
            out[i] = (float)k->bits_pair(qq->bits,
                                         (const uint64_t *)(const void *)(codes + i * w * 8), w);
        return;
    }
    case IQDB_QUANT_PQ:
        for (size_t i = 0; i < n; i++) out[i] = pq_sum(q, qq, codes + i * q->code_size);
        return;
    }
}

float iqdb__quant_dist(const iqdb__quant *q, const iqdb__kernels *k, const iqdb__qquery *qq,
                       const uint8_t *code) {
    float d = 0.0f;
    iqdb__quant_scan(q, k, qq, code, 1, &d);
    return d;
}

void iqdb__quant_rerank_code(const iqdb__quant *q, const iqdb__env *env, const iqdb__query *qry,
                             const iqdb__cand *c, const uint8_t *code, const float *ref,
                             float *work, iqdb__topk *top) {
    iqdb__quant_decode(q, code, ref, work);
    float raw = env->kern->pair[env->op](qry->vec, work, q->dim);
    float sq = q->normalize ? env->kern->pair[IQDB__OP_DOT](work, work, q->dim) : 0.0f;
    iqdb__topk_push(top, iqdb__finish(env->metric, raw, qry->qnorm, sq), c->seq, c->slot);
}

void iqdb__quant_rerank(const iqdb__env *env, const iqdb__query *q, const iqdb__cand *cands,
                        size_t n, iqdb__topk *top) {
    const iqdb__store *st = env->store;
    iqdb__rows_fn gather = env->kern->gather[env->op];
    enum { G = 16 };
    const float *ptrs[G];
    float raw[G];
    for (size_t base = 0; base < n; base += G) {
        size_t m = IQDB_MIN((size_t)G, n - base);
        for (size_t i = 0; i < m; i++) ptrs[i] = iqdb__store_vec(st, cands[base + i].slot);
        gather(q->vec, ptrs, m, st->dim, raw);
        for (size_t i = 0; i < m; i++) {
            uint32_t slot = cands[base + i].slot;
            float dist = iqdb__finish(env->metric, raw[i], q->qnorm, st->sqnorm[slot]);
            iqdb__topk_push(top, dist, cands[base + i].seq, slot);
        }
    }
}

/* ---- persistence -------------------------------------------------------------------------- */

static int all_finite(const float *v, size_t n) { return iqdb__all_finite(v, n); }

int iqdb__quant_valid(const iqdb__quant *q) {
    if (q->kind == IQDB_QUANT_NONE || !q->trained) return 1;
    if (!all_finite(q->kind == IQDB_QUANT_SQ8      ? q->lo
                    : q->kind == IQDB_QUANT_BINARY ? q->thr
                                                   : q->cb,
                    param_floats(q)))
        return 0;
    if (q->kind == IQDB_QUANT_SQ8)
        for (uint32_t j = 0; j < q->dim; j++)
            if (!(q->step[j] >= 0.0f)) return 0;
    if (q->kind == IQDB_QUANT_PQ && (q->ksub < 1 || q->ksub > PQ_KSUB)) return 0;
    return 1;
}

int iqdb__quant_write(const iqdb__quant *q, iqdb__sink *sink) {
    if (q->kind == IQDB_QUANT_NONE) return IQDB_OK;
    IQDB_ASSERT(q->trained);
    if (q->kind == IQDB_QUANT_PQ) {
        IQDB_TRY(iqdb__ser_u32(sink, q->m));
        IQDB_TRY(iqdb__ser_u32(sink, q->ksub));
        IQDB_TRY(iqdb__ser_u32(sink, q->dsub));
    }
    const float *first = q->kind == IQDB_QUANT_SQ8      ? q->lo
                         : q->kind == IQDB_QUANT_BINARY ? q->thr
                                                        : q->cb;
    return iqdb__ser_put(sink, first, param_floats(q), 4);
}

int iqdb__quant_read(iqdb__quant *q, iqdb__source *src) {
    IQDB_ASSERT(!q->trained);
    if (q->kind == IQDB_QUANT_NONE) return IQDB_OK;
    if (q->kind == IQDB_QUANT_PQ) {
        uint32_t hdr[3];
        IQDB_TRY(iqdb__ser_get(src, hdr, 3, 4));
        if (hdr[0] != q->m || hdr[1] < 1 || hdr[1] > PQ_KSUB || hdr[2] != q->dsub)
            return IQDB_CORRUPT;
        q->ksub = hdr[1];
    }
    IQDB_TRY(alloc_params(q));
    const float *first = q->kind == IQDB_QUANT_SQ8      ? q->lo
                         : q->kind == IQDB_QUANT_BINARY ? q->thr
                                                        : q->cb;
    int rc = iqdb__ser_get(src, (void *)first, param_floats(q), 4);
    if (rc == IQDB_OK && !iqdb__quant_valid(q)) rc = IQDB_CORRUPT;
    if (rc)
        iqdb__quant_clear(q);
    else if (q->kind == IQDB_QUANT_PQ)
        pq_transpose(q);
    return rc;
}
