/*
 * dist_avx512.c — AVX-512F kernels (compiled with -mavx512f; only called after cpu.c saw
 * AVX-512F and the OS saves ZMM state).
 */
#include <immintrin.h>

#include "dist/dist.h"
#include "internal.h"

#define W 16
typedef __m512 V;

#define V_ZERO() _mm512_setzero_ps()
#define V_LOAD(p) _mm512_loadu_ps(p)
#define V_LOADT(p, r) _mm512_maskz_loadu_ps((__mmask16)((1u << (r)) - 1u), (p))
#define V_ADD(a, b) _mm512_add_ps(a, b)
#define V_HSUM(v) _mm512_reduce_add_ps(v)

static inline V STEP_L2SQ(V acc, V q, V x) {
    V t = _mm512_sub_ps(q, x);
    return _mm512_fmadd_ps(t, t, acc);
}
static inline V STEP_DOT(V acc, V q, V x) { return _mm512_fmadd_ps(q, x, acc); }
static inline V STEP_L1(V acc, V q, V x) {
    __m512i t = _mm512_castps_si512(_mm512_sub_ps(q, x));
    return _mm512_add_ps(acc,
                         _mm512_castsi512_ps(_mm512_and_epi32(t, _mm512_set1_epi32(0x7fffffff))));
}
static inline V STEP_HAM(V acc, V q, V x) {
    __mmask16 ne = _mm512_cmp_ps_mask(q, x, _CMP_NEQ_OQ);
    return _mm512_mask_add_ps(acc, ne, acc, _mm512_set1_ps(1.0f));
}

/* 4 queries x 4 rows: 16 accumulators + 4 rows + query + temporary = 22 of 32 ZMM. */
#define QB 4
#define RB 4
#define ISA avx512
#include "dist/dist_impl.h"

IQDB_KERNEL_TABLE(IQDB_SIMD_AVX512, iqdb__kernels_avx512)
