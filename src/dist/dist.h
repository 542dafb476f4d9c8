/*
 * dist.h — the distance kernel table, one per SIMD level.
 *
 * Four raw operations over float vectors of length d:
 *   L2SQ  sum (a_i - b_i)^2          DOT  sum a_i b_i
 *   L1    sum |a_i - b_i|            HAM  count of a_i != b_i
 * each in four shapes:
 *   pair(a, b, d)                          one distance
 *   rows(q, xs, n, d, out)                 out[i] = pair(q, xs[i], d)
 *   tile(qs, nq, xs, nx, d, out)           out[i*nx + j] = pair(qs[i], xs[j], d)
 *   gather(q, xs, n, d, out)               as rows, for rows at scattered addresses: four
 *                                          rows are streamed together (IVF lists, re-ranking)
 *
 * The invariant that makes batch search exact: within one level, the shapes perform the
 * same floating-point operations in the same order for every pair, so their results are equal
 * bit for bit (tests/unit/test_dist.c pins it). Each level's arithmetic is "W lanes, 4
 * accumulators, block b of W floats goes to accumulator b mod 4, the last block zero-padded,
 * then (acc0 + acc1) + (acc2 + acc3) and a fixed horizontal sum". Different levels differ in W
 * and the horizontal sum, so they agree only within rounding (also tested).
 *
 * Levels are separate translation units with their own compiler flags; nothing outside them is
 * compiled with -mavx2 etc. iqdb__kernels_get returns NULL for a level that was not compiled
 * in or that the CPU cannot run.
 */
#ifndef IQDB_DIST_H
#define IQDB_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "iqdb.h"

enum { IQDB__OP_L2SQ = 0, IQDB__OP_DOT = 1, IQDB__OP_L1 = 2, IQDB__OP_HAM = 3, IQDB__N_OPS = 4 };

typedef float (*iqdb__pair_fn)(const float *a, const float *b, size_t d);
typedef void (*iqdb__rows_fn)(const float *q, const float *const *xs, size_t n, size_t d,
                              float *out);
typedef void (*iqdb__tile_fn)(const float *const *qs, size_t nq, const float *const *xs, size_t nx,
                              size_t d, float *out);
/* panel(qt, np, xs, nx, d, out): out[j * np + i] = dot(query i, xs[j]) for np queries stored
 * transposed (qt[c * np + i] = component c of query i; np a multiple of 16, at most
 * IQDB_PANEL_MAX). Register-blocked like sgemm; its summation order is its own, so it agrees
 * with pair only within rounding (the L2 batch uses it to reject rows, src/index/flat.c). */
#define IQDB_PANEL_MAX 128
typedef void (*iqdb__panel_fn)(const float *qt, size_t np, const float *const *xs, size_t nx,
                               size_t d, float *out);

/* Quantized codes (dist_quant_impl.h has the definitions, src/index/quant.c the encodings).
 * SQ8: a vector x is stored as bytes c with x_i ~ lo_i + s_i c_i; the query is prepared once:
 *   SQ8_L2SQ  sum (a_i - s_i c_i)^2   a = q - lo       the squared L2 to the decoded vector
 *   SQ8_DOT   sum a_i c_i             a = q * s, s unused (the caller adds q . lo)
 *   SQ8_L1    sum |a_i - s_i c_i|     a = q - lo
 *   sq8_pair(a, s, c, d); sq8_rows(a, s, codes, n, stride, d, out): n codes `stride` bytes apart.
 * Binary: one bit per dimension in 64-bit words; bits_pair(a, b, words) = popcount(a ^ b), and
 * bits_rows(q, codes, n, words, out) over n codes `words` words apart. Within a level pair and
 * rows agree bit for bit; across levels SQ8 agrees within rounding and binary exactly. */
enum { IQDB__SQ8_L2SQ = 0, IQDB__SQ8_DOT = 1, IQDB__SQ8_L1 = 2, IQDB__N_SQ8 = 3 };

/* Columns: one short vector r (w floats) against ks centroids stored transposed (t holds w rows
 * of ks floats: row j is component j of every centroid), out[c] for every c < ks:
 *   COL_L2SQ  sum (r_j - t_jc)^2    COL_L1  sum |r_j - t_jc|
 *   COL_HAM   count of r_j != t_jc  COL_NDOT  -sum r_j t_jc
 * (PQ encoding and query tables, k-means in small subspaces). Vectorised across centroids, with
 * separate multiply and add (never fused) and each c summed over j in order: every level gives
 * bit-identical results, so codes computed with them do not depend on the SIMD level. */
enum {
    IQDB__COL_L2SQ = 0,
    IQDB__COL_L1 = 1,
    IQDB__COL_HAM = 2,
    IQDB__COL_NDOT = 3,
    IQDB__N_COL = 4
};
typedef void (*iqdb__cols_fn)(const float *r, size_t w, const float *t, size_t ks, float *out);

typedef float (*iqdb__sq8_fn)(const float *a, const float *s, const uint8_t *c, size_t d);
typedef void (*iqdb__sq8_rows_fn)(const float *a, const float *s, const uint8_t *codes, size_t n,
                                  size_t stride, size_t d, float *out);
typedef uint32_t (*iqdb__bits_fn)(const uint64_t *a, const uint64_t *b, size_t words);
typedef void (*iqdb__bits_rows_fn)(const uint64_t *q, const uint64_t *codes, size_t n, size_t words,
                                   uint32_t *out);

typedef struct iqdb__kernels {
    iqdb_simd level;
    unsigned width; /* floats per SIMD lane group (W) */
    iqdb__pair_fn pair[IQDB__N_OPS];
    iqdb__rows_fn rows[IQDB__N_OPS];
    iqdb__tile_fn tile[IQDB__N_OPS];
    iqdb__rows_fn gather[IQDB__N_OPS]; /* rows at scattered addresses, 4 streamed together */
    iqdb__sq8_fn sq8_pair[IQDB__N_SQ8];
    iqdb__sq8_rows_fn sq8_rows[IQDB__N_SQ8];
    iqdb__bits_fn bits_pair;
    iqdb__bits_rows_fn bits_rows;
    iqdb__cols_fn cols[IQDB__N_COL];
    uint32_t (*argmin)(const float *v, size_t n); /* first smallest of n >= 1 floats */
    iqdb__panel_fn dot_panel;                     /* dot products against transposed queries */
} iqdb__kernels;

/* Portable popcount (SWAR), for the baseline x86-64 target, which has no POPCNT instruction,
 * and for the tails of the SIMD popcount loops. */
static inline uint32_t iqdb__popcount64(uint64_t x) {
    x = x - ((x >> 1) & 0x5555555555555555ull);
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return (uint32_t)((x * 0x0101010101010101ull) >> 56);
}

/* The table for `level` (AUTO = best available), or NULL when it cannot run here. */
const iqdb__kernels *iqdb__kernels_get(iqdb_simd level);
/* The best level this CPU runs. */
iqdb_simd iqdb__simd_best(void);
/* 1 when the CPU (and OS) support the level's instructions; independent of compilation. */
int iqdb__cpu_has(iqdb_simd level);

/* Per-ISA tables (defined only where compiled). */
extern const iqdb__kernels iqdb__kernels_scalar;
extern const iqdb__kernels iqdb__kernels_avx2;
extern const iqdb__kernels iqdb__kernels_avx512;
extern const iqdb__kernels iqdb__kernels_neon;

#endif
