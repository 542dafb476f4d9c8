/*
 * dist_avx2.c — AVX2 + FMA kernels (compiled with -mavx2 -mfma; only called after cpu.c saw
 * both, and the OS saves YMM state).
 */
#include <immintrin.h>

#include "dist/dist.h"
#include "internal.h"

#define W 8
typedef __m256 V;

static const int32_t tail_mask_tab[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

#define V_ZERO() _mm256_setzero_ps()
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_LOADT(p, r) \
    _mm256_maskload_ps((p), _mm256_loadu_si256((const __m256i *)(tail_mask_tab + 8 - (r))))
#define V_ADD(a, b) _mm256_add_ps(a, b)

static inline float V_HSUM(__m256 v) {
    __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 1));
    return _mm_cvtss_f32(lo);
}
static inline V STEP_L2SQ(V acc, V q, V x) {
    V t = _mm256_sub_ps(q, x);
    return _mm256_fmadd_ps(t, t, acc);
}
static inline V STEP_DOT(V acc, V q, V x) { return _mm256_fmadd_ps(q, x, acc); }
static inline V STEP_L1(V acc, V q, V x) {
    V t = _mm256_sub_ps(q, x);
    return _mm256_add_ps(acc, _mm256_andnot_ps(_mm256_set1_ps(-0.0f), t));
}
static inline V STEP_HAM(V acc, V q, V x) {
    V ne = _mm256_cmp_ps(q, x, _CMP_NEQ_OQ);
    return _mm256_add_ps(acc, _mm256_and_ps(ne, _mm256_set1_ps(1.0f)));
}

/* 4 queries x 2 rows: 8 accumulators + 2 row vectors + query + temporary = 12 of 16 YMM. */
#define QB 4
#define RB 2
#define ISA avx2
#define GATHER_PASSES 2 /* 16 YMM: 4 rows x 2 accumulators per pass */
#include "dist/dist_impl.h"

/* ---- quantized codes ---- */
#define V_LOADB(p) _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p))))
static inline __m256 V_LOADBT(const uint8_t *p, size_t r) {
    uint8_t t[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (size_t i = 0; i < r; i++) t[i] = p[i];
    return V_LOADB(t);
}
static inline V QSTEP_L2(V acc, V a, V s, V c) {
    V t = _mm256_fnmadd_ps(s, c, a); /* a - s*c */
    return _mm256_fmadd_ps(t, t, acc);
}
static inline V QSTEP_DOT(V acc, V a, V s, V c) {
    (void)s;
    return _mm256_fmadd_ps(a, c, acc);
}
static inline V QSTEP_L1(V acc, V a, V s, V c) {
    V t = _mm256_fnmadd_ps(s, c, a);
    return _mm256_add_ps(acc, _mm256_andnot_ps(_mm256_set1_ps(-0.0f), t));
}
#include "dist/popcnt_avx2.h"
/* (after the popcount it uses) */
#include "dist/dist_quant_impl.h"

IQDB_KERNEL_TABLE(IQDB_SIMD_AVX2, iqdb__kernels_avx2)
