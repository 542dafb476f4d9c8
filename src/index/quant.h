/*
 * quant.h — vector quantizers: the codec (train, encode, decode), the query side (prepare a
 * query, distance of a query to one or many codes), and re-ranking of a shortlist against the
 * full-precision rows. Where codes are stored is the index's business: IVF keeps them inside its
 * lists (contiguous, so a list scan streams them); a graph index can keep them per slot.
 *
 * Kinds (iqdb_quant):
 *   SQ8     one byte per dimension: x_i ~ lo_i + step_i c_i, lo and step per dimension from the
 *           training rows (min and (max - min) / 255; values outside are clamped)
 *   BINARY  one bit per dimension: x_i > thr_i, thr the per-dimension mean; decodes to the mean
 *           of the training values below / above the threshold
 *   PQ      m bytes: the vector (in IVF, its residual from the list centroid) cut into m
 *           subspaces, each coded by the nearest of ksub <= 256 centroids (k-means per subspace)
 *
 * Code space: for the cosine metric codes describe x / |x| (the norm is in the row store), so a
 * code's inner product with a normalised query is its cosine similarity. Encoding uses plain C
 * and the column kernels, which give the same bits at every SIMD level, so a code is a function
 * of (vector, parameters, reference) alone: iqdb_check can re-encode and compare bytes, and a
 * database reopened with another IQDB_SIMD still verifies.
 *
 * A "proxy" distance of a query to a code orders candidates only (smaller is nearer): squared
 * L2 for L2, minus the inner product for dot and cosine, L1 for L1 and Hamming (SQ8, PQ), the
 * popcount of differing bits (BINARY). Reported distances always come from re-ranking against
 * the full-precision rows (iqdb__quant_rerank), in exactly the arithmetic of the flat index.
 */
#ifndef IQDB_QUANT_H
#define IQDB_QUANT_H

#include "index/index.h"

typedef struct iqdb__quant {
    iqdb__mem *mem;
    iqdb_quant kind;
    iqdb_metric metric;
    uint32_t dim;
    uint32_t code_size; /* bytes per code (0 for NONE) */
    int normalize;      /* cosine: codes describe x / |x| */
    int trained;
    float *lo, *step;           /* SQ8, dim each */
    float *thr, *below, *above; /* BINARY, dim each */
    uint32_t m, ksub, dsub;     /* PQ: subspaces, centroids per subspace, widest subspace */
    float *cb;                  /* PQ: m x ksub x dsub, zero-padded */
    const float **cbp;          /* PQ: pointers to each codebook row (derived, not stored) */
    float *cbt;                 /* PQ: each subspace's codebook transposed, dsub x ksub (derived):
                                   one loop over the 256 centroids per component vectorises */
} iqdb__quant;

/* An untrained quantizer (no allocation). pq_m: PQ subspaces, 1..dim (0 = dim / 4, at least 1). */
void iqdb__quant_init(iqdb__quant *q, iqdb__mem *mem, iqdb_quant kind, iqdb_metric metric,
                      uint32_t dim, uint32_t pq_m);
/* Frees the parameters; the quantizer is untrained again (kind and shape kept). */
void iqdb__quant_clear(iqdb__quant *q);
/* Parameter bytes (codes are counted by their owner). */
size_t iqdb__quant_mem(const iqdb__quant *q);
/* The PQ subspace j covers components [iqdb__pq_off(q, j), iqdb__pq_off(q, j + 1)). */
static inline uint32_t iqdb__pq_off(const iqdb__quant *q, uint32_t j) {
    return (uint32_t)((uint64_t)j * q->dim / q->m);
}

/* Training input: n full-precision rows; for PQ also the reference (list centroid, in code
 * space) each row's residual is taken from, or NULL for none. */
typedef struct iqdb__qtrain {
    const float *const *xs;
    const float *const *refs; /* PQ only; may be NULL */
    size_t n;
    const iqdb__kernels *kern;
    iqdb__pool *pool;
    uint64_t seed;
} iqdb__qtrain;

/* Trains an initialised, untrained quantizer. IQDB_OK or IQDB_NOMEM (q stays untrained). */
int iqdb__quant_train(iqdb__quant *q, const iqdb__qtrain *t);
/* Copies trained parameters into an initialised, untrained quantizer of the same shape. */
int iqdb__quant_copy(iqdb__quant *dst, const iqdb__quant *src);

/* Floats of work memory iqdb__quant_encode needs. */
static inline size_t iqdb__quant_work(const iqdb__quant *q) { return q->dim; }
/* Encodes the row x (raw, full precision) against reference `ref` (PQ; NULL = none) into
 * code_size bytes. Deterministic whatever the kernel level `k`: plain C and the column kernels,
 * which agree bit for bit across levels. */
void iqdb__quant_encode(const iqdb__quant *q, const iqdb__kernels *k, const float *x,
                        const float *ref, float *work, uint8_t *code);
/* The vector a code stands for, in code space (normalised for cosine), into out (dim floats). */
void iqdb__quant_decode(const iqdb__quant *q, const uint8_t *code, const float *ref, float *out);

/* ---- the query side ------------------------------------------------------------------------ */

typedef struct iqdb__qquery {
    const float *q; /* the query in code space (normalised for cosine) */
    float *a;       /* SQ8: the prepared query (dim) */
    float cst;      /* SQ8 dot / cosine: q . lo;  PQ: the per-reference constant */
    uint64_t *bits; /* BINARY: the query's bits */
    float *table;   /* PQ: m x ksub proxy terms */
    float *res;     /* PQ: dim floats of work */
} iqdb__qquery;

/* Floats of scratch a prepared query needs (the query in code space included). */
size_t iqdb__quant_query_floats(const iqdb__quant *q);
/* Prepares query v (|v| = qnorm) in `work` (iqdb__quant_query_floats floats, 8-byte aligned). */
void iqdb__quant_query(const iqdb__quant *q, const iqdb__kernels *k, const float *v, float qnorm,
                       float *work, iqdb__qquery *qq);
/* Adapts a prepared query to the codes of one reference (PQ: per list); no-op otherwise. */
void iqdb__quant_query_ref(const iqdb__quant *q, const iqdb__kernels *k, iqdb__qquery *qq,
                           const float *ref);
/* Proxy distances of n contiguous codes (code_size bytes apart) into out. */
void iqdb__quant_scan(const iqdb__quant *q, const iqdb__kernels *k, const iqdb__qquery *qq,
                      const uint8_t *codes, size_t n, float *out);
/* Proxy distance of one code. */
float iqdb__quant_dist(const iqdb__quant *q, const iqdb__kernels *k, const iqdb__qquery *qq,
                       const uint8_t *code);

/* Codes only: offers candidate `c` to `top` at the distance between the query and the vector
 * its code decodes to (against reference `ref`; work: dim floats). */
void iqdb__quant_rerank_code(const iqdb__quant *q, const iqdb__env *env, const iqdb__query *qry,
                             const iqdb__cand *c, const uint8_t *code, const float *ref,
                             float *work, iqdb__topk *top);

/* Offers each shortlisted candidate (slot and sequence; its proxy distance is ignored) to `top`
 * with its exact reported distance from the full-precision row. */
void iqdb__quant_rerank(const iqdb__env *env, const iqdb__query *q, const iqdb__cand *cands,
                        size_t n, iqdb__topk *top);

/* ---- persistence --------------------------------------------------------------------------- */

/* Writes the trained parameters (layout in ivf.c's header comment). */
int iqdb__quant_write(const iqdb__quant *q, iqdb__sink *sink);
/* Reads parameters into an initialised, untrained quantizer of the same kind and dim, checking
 * every value (IQDB_CORRUPT with nothing allocated on failure; IQDB_NOMEM). */
int iqdb__quant_read(iqdb__quant *q, iqdb__source *src);
/* 1 when every parameter is finite and in range (iqdb_check). */
int iqdb__quant_valid(const iqdb__quant *q);

#endif
