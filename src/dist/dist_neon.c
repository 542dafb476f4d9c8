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

IQDB_KERNEL_TABLE(IQDB_SIMD_NEON, iqdb__kernels_neon)
