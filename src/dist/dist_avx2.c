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
#define V_SET1(f) _mm256_set1_ps(f)
#define V_STORE(p, v) _mm256_storeu_ps(p, v)
static inline V CSTEP_L2(V acc, V r, V x) {
    V e = _mm256_sub_ps(r, x);
    return _mm256_add_ps(acc, _mm256_mul_ps(e, e)); /* unfused: equal to scalar bit for bit */
}
static inline V CSTEP_L1(V acc, V r, V x) {
    return _mm256_add_ps(acc, _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_sub_ps(r, x)));
}
static inline V CSTEP_HAM(V acc, V r, V x) {
    return _mm256_add_ps(acc,
                         _mm256_and_ps(_mm256_cmp_ps(r, x, _CMP_NEQ_UQ), _mm256_set1_ps(1.0f)));
}
static inline V CSTEP_NDOT(V acc, V r, V x) { return _mm256_sub_ps(acc, _mm256_mul_ps(r, x)); }
/* argmin (dist_quant_impl.h): per lane the first minimum (strict <) and its index, eight lanes
 * at a time; then the smallest value across lanes, on equal values the smallest index. */
#define ARGMIN_BLOCK(v, n, i, best, at)                                                   \
    do {                                                                                  \
        if ((n) < 16) break;                                                              \
        __m256 mv = _mm256_loadu_ps(v);                                                   \
        __m256i mi = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), idx = mi;                 \
        for (i = 8; i + 8 <= (n); i += 8) {                                               \
            idx = _mm256_add_epi32(idx, _mm256_set1_epi32(8));                            \
            __m256 x = _mm256_loadu_ps((v) + i);                                          \
            __m256 lt = _mm256_cmp_ps(x, mv, _CMP_LT_OQ);                                 \
            mv = _mm256_blendv_ps(mv, x, lt);                                             \
            mi = _mm256_castps_si256(                                                     \
                _mm256_blendv_ps(_mm256_castsi256_ps(mi), _mm256_castsi256_ps(idx), lt)); \
        }                                                                                 \
        float lv[8];                                                                      \
        uint32_t li[8];                                                                   \
        _mm256_storeu_ps(lv, mv);                                                         \
        _mm256_storeu_si256((__m256i *)(void *)li, mi);                                   \
        best = lv[0];                                                                     \
        at = li[0];                                                                       \
        for (int l = 1; l < 8; l++)                                                       \
            if (lv[l] < best || (lv[l] == best && li[l] < at)) {                          \
                best = lv[l];                                                             \
                at = li[l];                                                               \
            }                                                                             \
    } while (0)
#include "dist/popcnt_avx2.h"
/* (after the popcount it uses) */
#include "dist/dist_quant_impl.h"
#define PANEL_R 4
#define PANEL_V 3
#include "dist/dist_panel_impl.h"

IQDB_KERNEL_TABLE(IQDB_SIMD_AVX2, iqdb__kernels_avx2)
