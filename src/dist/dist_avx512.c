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
/* The horizontal sum, spelled out so that the 256-bit rows kernel below can reproduce it
 * exactly: add the two 256-bit halves, then the AVX2 reduction. */
static inline float hsum8(__m256 v) {
    __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 1));
    return _mm_cvtss_f32(lo);
}
static inline __m256 hi256(__m512 v) {
    return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
}
static inline float V_HSUM(__m512 v) {
    return hsum8(_mm256_add_ps(_mm512_castps512_ps256(v), hi256(v)));
}

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

/* ---- the rows shape with 256-bit instructions ------------------------------------------------
 * On AMD Zen 4 (which runs 512-bit operations as two 256-bit halves) a streaming scan with zmm
 * loads reads ~21.5 GB/s, with ymm loads ~25 GB/s (one thread, 188 MB, measured here). The
 * single-query scan is bound by that bandwidth, so the rows shape keeps the AVX-512 arithmetic —
 * 16-lane blocks, four accumulators — but holds each 16-lane accumulator as two ymm halves.
 * Lane by lane the operations are the same, and V_HSUM above reduces the halves in the same
 * order, so rows still equals pair and tile bit for bit (tests/unit/test_dist.c). */
static const int32_t tail_mask_tab[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
static inline __m256 ld8t(const float *p, size_t r) { /* r in 0..8 floats, the rest zero */
    if (r >= 8) return _mm256_loadu_ps(p);
    if (r == 0) return _mm256_setzero_ps();
    return _mm256_maskload_ps(p, _mm256_loadu_si256((const __m256i *)(tail_mask_tab + 8 - r)));
}
static inline __m256 S8_l2sq(__m256 acc, __m256 q, __m256 x) {
    __m256 t = _mm256_sub_ps(q, x);
    return _mm256_fmadd_ps(t, t, acc);
}
static inline __m256 S8_dot(__m256 acc, __m256 q, __m256 x) { return _mm256_fmadd_ps(q, x, acc); }
static inline __m256 S8_l1(__m256 acc, __m256 q, __m256 x) {
    __m256 t = _mm256_sub_ps(q, x);
    return _mm256_add_ps(acc, _mm256_andnot_ps(_mm256_set1_ps(-0.0f), t));
}
static inline __m256 S8_ham(__m256 acc, __m256 q, __m256 x) {
    __m256 ne = _mm256_cmp_ps(q, x, _CMP_NEQ_OQ);
    return _mm256_add_ps(acc, _mm256_and_ps(ne, _mm256_set1_ps(1.0f)));
}

/* One 16-float block into accumulator k (both halves): ROWS_FULL for a full block, ROWS_BLOCK
 * for one that may be the partial last. The accumulators are named variables, never indexed by
 * a run-time value: with lo[k] arrays and a tail loop over k, GCC 12 kept all eight in memory
 * and stored them after every block (two stores per 64 bytes read). */
#define ROWS_FULL(S, k, blk)                                                        \
    do {                                                                            \
        size_t o_ = (blk)*16;                                                       \
        lo##k = S(lo##k, _mm256_loadu_ps(a + o_), _mm256_loadu_ps(b + o_));         \
        hi##k = S(hi##k, _mm256_loadu_ps(a + o_ + 8), _mm256_loadu_ps(b + o_ + 8)); \
    } while (0)
#define ROWS_BLOCK(S, k, blk)                                             \
    do {                                                                  \
        size_t t_ = (blk)*16;                                             \
        if ((blk) < nfull) {                                              \
            ROWS_FULL(S, k, blk);                                         \
        } else {                                                          \
            size_t r0 = r < 8 ? r : 8, r1 = r > 8 ? r - 8 : 0;            \
            lo##k = S(lo##k, ld8t(a + t_, r0), ld8t(b + t_, r0));         \
            hi##k = S(hi##k, ld8t(a + t_ + 8, r1), ld8t(b + t_ + 8, r1)); \
        }                                                                 \
    } while (0)

#define IQDB_ROWS_IMPL(op)                                                                        \
    static inline float op##_row256(const float *a, const float *b, size_t d) {                   \
        __m256 lo0 = _mm256_setzero_ps(), lo1 = lo0, lo2 = lo0, lo3 = lo0;                        \
        __m256 hi0 = lo0, hi1 = lo0, hi2 = lo0, hi3 = lo0;                                        \
        size_t nfull = d / 16, r = d % 16, nb = nfull + (r != 0), blk = 0;                        \
        for (; blk + 4 <= nfull; blk += 4) {                                                      \
            ROWS_FULL(S8_##op, 0, blk);                                                           \
            ROWS_FULL(S8_##op, 1, blk + 1);                                                       \
            ROWS_FULL(S8_##op, 2, blk + 2);                                                       \
            ROWS_FULL(S8_##op, 3, blk + 3);                                                       \
        }                                                                                         \
        /* at most four blocks left, to accumulators 0, 1, 2, 3 in turn (block b to b % 4) */     \
        if (blk < nb) {                                                                           \
            ROWS_BLOCK(S8_##op, 0, blk);                                                          \
            blk++;                                                                                \
        }                                                                                         \
        if (blk < nb) {                                                                           \
            ROWS_BLOCK(S8_##op, 1, blk);                                                          \
            blk++;                                                                                \
        }                                                                                         \
        if (blk < nb) {                                                                           \
            ROWS_BLOCK(S8_##op, 2, blk);                                                          \
            blk++;                                                                                \
        }                                                                                         \
        if (blk < nb) {                                                                           \
            ROWS_BLOCK(S8_##op, 3, blk);                                                          \
            blk++;                                                                                \
        }                                                                                         \
        __m256 l = _mm256_add_ps(_mm256_add_ps(lo0, lo1), _mm256_add_ps(lo2, lo3));               \
        __m256 h = _mm256_add_ps(_mm256_add_ps(hi0, hi1), _mm256_add_ps(hi2, hi3));               \
        return hsum8(_mm256_add_ps(l, h));                                                        \
    }                                                                                             \
    void iqdb__##op##_rows_f32_avx512(const float *q, const float *const *xs, size_t n, size_t d, \
                                      float *out) {                                               \
        for (size_t i = 0; i < n; i++) {                                                          \
            if (i + 1 < n) IQDB_PREFETCH_ROW_START(xs[i + 1], d);                                 \
            out[i] = op##_row256(q, xs[i], d);                                                    \
        }                                                                                         \
    }

/* 4 queries x 4 rows: 16 accumulators + 4 rows + query + temporary = 22 of 32 ZMM. */
#define QB 4
#define RB 4
#define ISA avx512
#include "dist/dist_impl.h"

/* ---- quantized codes ---- */
#define V_LOADB(p) _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(p))))
#define V_LOADBT(p, r) \
    _mm512_cvtepi32_ps(_mm512_maskz_cvtepu8_epi32((__mmask16)((1u << (r)) - 1u), ld_bytes(p, r)))
static inline __m128i ld_bytes(const uint8_t *p, size_t r) { /* r < 16 bytes, the rest zero */
    uint8_t t[16] = {0};
    for (size_t i = 0; i < r; i++) t[i] = p[i];
    return _mm_loadu_si128((const __m128i *)t);
}
static inline V QSTEP_L2(V acc, V a, V s, V c) {
    V t = _mm512_fnmadd_ps(s, c, a);
    return _mm512_fmadd_ps(t, t, acc);
}
static inline V QSTEP_DOT(V acc, V a, V s, V c) {
    (void)s;
    return _mm512_fmadd_ps(a, c, acc);
}
static inline V QSTEP_L1(V acc, V a, V s, V c) {
    __m512i t = _mm512_castps_si512(_mm512_fnmadd_ps(s, c, a));
    return _mm512_add_ps(acc,
                         _mm512_castsi512_ps(_mm512_and_epi32(t, _mm512_set1_epi32(0x7fffffff))));
}
/* The popcount uses 256-bit AVX2 instructions: VPOPCNTQ needs AVX512_VPOPCNTDQ, which this
 * level does not require. */
#define V_SET1(f) _mm512_set1_ps(f)
#define V_STORE(p, v) _mm512_storeu_ps(p, v)
static inline V CSTEP_L2(V acc, V r, V x) {
    V e = _mm512_sub_ps(r, x);
    return _mm512_add_ps(acc, _mm512_mul_ps(e, e)); /* unfused: equal to scalar bit for bit */
}
static inline V CSTEP_L1(V acc, V r, V x) {
    __m512i t = _mm512_castps_si512(_mm512_sub_ps(r, x));
    return _mm512_add_ps(acc,
                         _mm512_castsi512_ps(_mm512_and_epi32(t, _mm512_set1_epi32(0x7fffffff))));
}
static inline V CSTEP_HAM(V acc, V r, V x) {
    __mmask16 ne = _mm512_cmp_ps_mask(r, x, _CMP_NEQ_UQ);
    return _mm512_mask_add_ps(acc, ne, acc, _mm512_set1_ps(1.0f));
}
static inline V CSTEP_NDOT(V acc, V r, V x) { return _mm512_sub_ps(acc, _mm512_mul_ps(r, x)); }
/* argmin (dist_quant_impl.h): as in the AVX2 file, sixteen lanes at a time. */
#define ARGMIN_BLOCK(v, n, i, best, at)                                                       \
    do {                                                                                      \
        if ((n) < 32) break;                                                                  \
        __m512 mv = _mm512_loadu_ps(v);                                                       \
        __m512i mi = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15); \
        __m512i idx = mi;                                                                     \
        for (i = 16; i + 16 <= (n); i += 16) {                                                \
            idx = _mm512_add_epi32(idx, _mm512_set1_epi32(16));                               \
            __m512 x = _mm512_loadu_ps((v) + i);                                              \
            __mmask16 lt = _mm512_cmp_ps_mask(x, mv, _CMP_LT_OQ);                             \
            mv = _mm512_mask_mov_ps(mv, lt, x);                                               \
            mi = _mm512_mask_mov_epi32(mi, lt, idx);                                          \
        }                                                                                     \
        float lv[16];                                                                         \
        uint32_t li[16];                                                                      \
        _mm512_storeu_ps(lv, mv);                                                             \
        _mm512_storeu_si512((void *)li, mi);                                                  \
        best = lv[0];                                                                         \
        at = li[0];                                                                           \
        for (int l = 1; l < 16; l++)                                                          \
            if (lv[l] < best || (lv[l] == best && li[l] < at)) {                              \
                best = lv[l];                                                                 \
                at = li[l];                                                                   \
            }                                                                                 \
    } while (0)
#include "dist/popcnt_avx2.h"
/* (after the popcount it uses) */
#include "dist/dist_quant_impl.h"
#define PANEL_R 4
#define PANEL_V 5
#include "dist/dist_panel_impl.h"

IQDB_KERNEL_TABLE(IQDB_SIMD_AVX512, iqdb__kernels_avx512)
