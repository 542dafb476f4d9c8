/*
 * dist.h — the distance kernel table, one per SIMD level.
 *
 * Four raw operations over float vectors of length d:
 *   L2SQ  sum (a_i - b_i)^2          DOT  sum a_i b_i
 *   L1    sum |a_i - b_i|            HAM  count of a_i != b_i
 * each in three shapes:
 *   pair(a, b, d)                          one distance
 *   rows(q, xs, n, d, out)                 out[i] = pair(q, xs[i], d)
 *   tile(qs, nq, xs, nx, d, out)           out[i*nx + j] = pair(qs[i], xs[j], d)
 *
 * The invariant that makes batch search exact: within one level, the three shapes perform the
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

#include "iqdb.h"

enum { IQDB__OP_L2SQ = 0, IQDB__OP_DOT = 1, IQDB__OP_L1 = 2, IQDB__OP_HAM = 3, IQDB__N_OPS = 4 };

typedef float (*iqdb__pair_fn)(const float *a, const float *b, size_t d);
typedef void (*iqdb__rows_fn)(const float *q, const float *const *xs, size_t n, size_t d,
                              float *out);
typedef void (*iqdb__tile_fn)(const float *const *qs, size_t nq, const float *const *xs, size_t nx,
                              size_t d, float *out);

typedef struct iqdb__kernels {
    iqdb_simd level;
    unsigned width; /* floats per SIMD lane group (W) */
    iqdb__pair_fn pair[IQDB__N_OPS];
    iqdb__rows_fn rows[IQDB__N_OPS];
    iqdb__tile_fn tile[IQDB__N_OPS];
} iqdb__kernels;

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
