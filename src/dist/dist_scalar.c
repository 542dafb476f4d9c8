/*
 * dist_scalar.c — the portable reference kernels: 8 virtual lanes held in a struct, so the
 * arithmetic is fixed by the C source (this file is compiled with -ffp-contract=off) and the
 * compiler is still free to map the independent lanes onto whatever vector unit the baseline
 * target has.
 */
#include "dist/dist.h"
#include "internal.h"

#define W 8
typedef struct {
    float v[W];
} V;

static inline V V_ZERO(void) {
    V r;
    for (int l = 0; l < W; l++) r.v[l] = 0.0f;
    return r;
}
static inline V V_LOAD(const float *p) {
    V r;
    for (int l = 0; l < W; l++) r.v[l] = p[l];
    return r;
}
static inline V V_LOADT(const float *p, size_t n) {
    V r = V_ZERO();
    for (size_t l = 0; l < n; l++) r.v[l] = p[l];
    return r;
}
static inline V V_ADD(V a, V b) {
    for (int l = 0; l < W; l++) a.v[l] += b.v[l];
    return a;
}
static inline float V_HSUM(V a) {
    return ((a.v[0] + a.v[1]) + (a.v[2] + a.v[3])) + ((a.v[4] + a.v[5]) + (a.v[6] + a.v[7]));
}
static inline V STEP_L2SQ(V acc, V q, V x) {
    for (int l = 0; l < W; l++) {
        float t = q.v[l] - x.v[l];
        acc.v[l] += t * t;
    }
    return acc;
}
static inline V STEP_DOT(V acc, V q, V x) {
    for (int l = 0; l < W; l++) acc.v[l] += q.v[l] * x.v[l];
    return acc;
}
static inline V STEP_L1(V acc, V q, V x) {
    for (int l = 0; l < W; l++) {
        float t = q.v[l] - x.v[l];
        acc.v[l] += t < 0 ? -t : t;
    }
    return acc;
}
static inline V STEP_HAM(V acc, V q, V x) {
    for (int l = 0; l < W; l++) acc.v[l] += q.v[l] != x.v[l] ? 1.0f : 0.0f;
    return acc;
}

#define IQDB_NO_TILE_UNROLL
#define QB 2
#define RB 2
#define ISA scalar
#define GATHER_PASSES 2
#include "dist/dist_impl.h"

/* ---- quantized codes ---- */
static inline V V_LOADB(const uint8_t *p) {
    V r;
    for (int l = 0; l < W; l++) r.v[l] = (float)p[l];
    return r;
}
static inline V V_LOADBT(const uint8_t *p, size_t n) {
    V r = V_ZERO();
    for (size_t l = 0; l < n; l++) r.v[l] = (float)p[l];
    return r;
}
static inline V QSTEP_L2(V acc, V a, V s, V c) {
    for (int l = 0; l < W; l++) {
        float t = a.v[l] - s.v[l] * c.v[l];
        acc.v[l] += t * t;
    }
    return acc;
}
static inline V QSTEP_DOT(V acc, V a, V s, V c) {
    (void)s;
    for (int l = 0; l < W; l++) acc.v[l] += a.v[l] * c.v[l];
    return acc;
}
static inline V QSTEP_L1(V acc, V a, V s, V c) {
    for (int l = 0; l < W; l++) {
        float t = a.v[l] - s.v[l] * c.v[l];
        acc.v[l] += t < 0 ? -t : t;
    }
    return acc;
}
static inline V V_SET1(float f) {
    V r;
    for (int l = 0; l < W; l++) r.v[l] = f;
    return r;
}
static inline void V_STORE(float *p, V a) {
    for (int l = 0; l < W; l++) p[l] = a.v[l];
}
static inline V CSTEP_L2(V acc, V r, V x) {
    for (int l = 0; l < W; l++) {
        float e = r.v[l] - x.v[l];
        acc.v[l] += e * e;
    }
    return acc;
}
static inline V CSTEP_L1(V acc, V r, V x) {
    for (int l = 0; l < W; l++) {
        float e = r.v[l] - x.v[l];
        acc.v[l] += e < 0.0f ? -e : e;
    }
    return acc;
}
static inline V CSTEP_HAM(V acc, V r, V x) {
    for (int l = 0; l < W; l++) acc.v[l] += r.v[l] != x.v[l] ? 1.0f : 0.0f;
    return acc;
}
static inline V CSTEP_NDOT(V acc, V r, V x) {
    for (int l = 0; l < W; l++) acc.v[l] -= r.v[l] * x.v[l];
    return acc;
}
static inline uint32_t IQDB_POPCNT_XOR(const uint64_t *a, const uint64_t *b, size_t words) {
    uint32_t n = 0;
    for (size_t i = 0; i < words; i++) n += iqdb__popcount64(a[i] ^ b[i]);
    return n;
}
#define ARGMIN_BLOCK(v, n, i, best, at) ((void)0) /* the plain loop */
#include "dist/dist_quant_impl.h"
#define PANEL_R 4
#define PANEL_V 2
#include "dist/dist_panel_impl.h"

IQDB_KERNEL_TABLE(IQDB_SIMD_SCALAR, iqdb__kernels_scalar)
