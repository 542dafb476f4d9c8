/*
 * dist_neon.c — AArch64 NEON kernels (NEON is part of the AArch64 baseline).
 */
#include <arm_neon.h>

#include "dist/dist.h"
#include "internal.h"

#define W 4
typedef float32x4_t V;

#define V_ZERO() vdupq_n_f32(0.0f)
#define V_LOAD(p) vld1q_f32(p)
#define V_ADD(a, b) vaddq_f32(a, b)
#define V_HSUM(v) vaddvq_f32(v)

static inline V V_LOADT(const float *p, size_t r) {
    float t[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (size_t i = 0; i < r; i++) t[i] = p[i];
    return vld1q_f32(t);
}
static inline V STEP_L2SQ(V acc, V q, V x) {
    V t = vsubq_f32(q, x);
    return vfmaq_f32(acc, t, t);
}
static inline V STEP_DOT(V acc, V q, V x) { return vfmaq_f32(acc, q, x); }
static inline V STEP_L1(V acc, V q, V x) { return vaddq_f32(acc, vabdq_f32(q, x)); }
static inline V STEP_HAM(V acc, V q, V x) {
    uint32x4_t ne = vmvnq_u32(vceqq_f32(q, x));
    return vaddq_f32(
        acc, vreinterpretq_f32_u32(vandq_u32(ne, vreinterpretq_u32_f32(vdupq_n_f32(1.0f)))));
}

/* 4 queries x 4 rows: 16 accumulators + 4 rows + query + temporary = 22 of 32 registers. */
#define QB 4
#define RB 4
#define ISA neon
#include "dist/dist_impl.h"

/* ---- quantized codes ---- */
static inline V V_LOADB(const uint8_t *p) {
    uint8_t t[8] = {p[0], p[1], p[2], p[3], 0, 0, 0, 0};
    uint16x8_t h = vmovl_u8(vld1_u8(t));
    return vcvtq_f32_u32(vmovl_u16(vget_low_u16(h)));
}
static inline V V_LOADBT(const uint8_t *p, size_t r) {
    uint8_t t[4] = {0, 0, 0, 0};
    for (size_t i = 0; i < r; i++) t[i] = p[i];
    return V_LOADB(t);
}
static inline V QSTEP_L2(V acc, V a, V s, V c) {
    V t = vfmsq_f32(a, s, c); /* a - s*c */
    return vfmaq_f32(acc, t, t);
}
static inline V QSTEP_DOT(V acc, V a, V s, V c) {
    (void)s;
    return vfmaq_f32(acc, a, c);
}
static inline V QSTEP_L1(V acc, V a, V s, V c) {
    return vaddq_f32(acc, vabsq_f32(vfmsq_f32(a, s, c)));
}
#define V_SET1(f) vdupq_n_f32(f)
#define V_STORE(p, v) vst1q_f32(p, v)
static inline V CSTEP_L2(V acc, V r, V x) {
    V e = vsubq_f32(r, x);
    return vaddq_f32(acc, vmulq_f32(e, e)); /* unfused: equal to scalar bit for bit */
}
static inline V CSTEP_L1(V acc, V r, V x) { return vaddq_f32(acc, vabdq_f32(r, x)); }
static inline V CSTEP_HAM(V acc, V r, V x) {
    uint32x4_t ne = vmvnq_u32(vceqq_f32(r, x));
    return vaddq_f32(
        acc, vreinterpretq_f32_u32(vandq_u32(ne, vreinterpretq_u32_f32(vdupq_n_f32(1.0f)))));
}
static inline V CSTEP_NDOT(V acc, V r, V x) { return vsubq_f32(acc, vmulq_f32(r, x)); }
static inline uint32_t IQDB_POPCNT_XOR(const uint64_t *a, const uint64_t *b, size_t words) {
    uint32_t n = 0;
    size_t i = 0;
    for (; i + 2 <= words; i += 2) {
        uint8x16_t x = veorq_u8(vreinterpretq_u8_u64(vld1q_u64(a + i)),
                                vreinterpretq_u8_u64(vld1q_u64(b + i)));
        n += vaddvq_u8(vcntq_u8(x));
    }
    if (i < words) n += (uint32_t)vaddv_u8(vcnt_u8(vcreate_u8(a[i] ^ b[i])));
    return n;
}
/* argmin (dist_quant_impl.h): as in the AVX2 file, four lanes at a time. */
#define ARGMIN_BLOCK(v, n, i, best, at)                          \
    do {                                                         \
        if ((n) < 8) break;                                      \
        static const uint32_t iota[4] = {0, 1, 2, 3};            \
        float32x4_t mv = vld1q_f32(v);                           \
        uint32x4_t mi = vld1q_u32(iota), idx = mi;               \
        for (i = 4; i + 4 <= (n); i += 4) {                      \
            idx = vaddq_u32(idx, vdupq_n_u32(4));                \
            float32x4_t x = vld1q_f32((v) + i);                  \
            uint32x4_t lt = vcltq_f32(x, mv);                    \
            mv = vbslq_f32(lt, x, mv);                           \
            mi = vbslq_u32(lt, idx, mi);                         \
        }                                                        \
        float lv[4];                                             \
        uint32_t li[4];                                          \
        vst1q_f32(lv, mv);                                       \
        vst1q_u32(li, mi);                                       \
        best = lv[0];                                            \
        at = li[0];                                              \
        for (int l = 1; l < 4; l++)                              \
            if (lv[l] < best || (lv[l] == best && li[l] < at)) { \
                best = lv[l];                                    \
                at = li[l];                                      \
            }                                                    \
    } while (0)
#include "dist/dist_quant_impl.h"
#define PANEL_R 4
#define PANEL_V 5
#include "dist/dist_panel_impl.h"

IQDB_KERNEL_TABLE(IQDB_SIMD_NEON, iqdb__kernels_neon)
