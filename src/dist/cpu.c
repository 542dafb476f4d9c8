/*
 * cpu.c — CPU feature detection, once per process, and the choice of kernel table.
 *
 * x86: AVX2 needs CPUID.7.EBX[5] and FMA CPUID.1.ECX[12], plus OSXSAVE and XCR0 bits 1-2 (the
 * OS saves XMM/YMM). AVX-512F needs CPUID.7.EBX[16] and XCR0 bits 5-7 (opmask, ZMM). AArch64:
 * NEON is baseline.
 */
#include "dist/dist.h"
#include "internal.h"
#include "os/thread.h"

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)
#define IQDB_X86 1
#if defined(_MSC_VER)
#include <intrin.h>
static void cpuid(unsigned leaf, unsigned sub, unsigned r[4]) {
    int t[4];
    __cpuidex(t, (int)leaf, (int)sub);
    for (int i = 0; i < 4; i++) r[i] = (unsigned)t[i];
}
static uint64_t xgetbv0(void) { return _xgetbv(0); }
#else
#include <cpuid.h>
static void cpuid(unsigned leaf, unsigned sub, unsigned r[4]) {
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
}
static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}
#endif
#endif

static int has_avx2, has_avx512;
static iqdb__once detect_once = IQDB__ONCE_INIT;

static void detect(void) {
#ifdef IQDB_X86
    unsigned r[4];
    cpuid(0, 0, r);
    unsigned max_leaf = r[0];
    if (max_leaf < 7) return;
    cpuid(1, 0, r);
    int fma = (r[2] >> 12) & 1, osxsave = (r[2] >> 27) & 1, avx = (r[2] >> 28) & 1;
    if (!osxsave || !avx) return;
    uint64_t xcr0 = xgetbv0();
    int ymm_ok = (xcr0 & 0x6) == 0x6, zmm_ok = (xcr0 & 0xe6) == 0xe6;
    cpuid(7, 0, r);
    int avx2 = (r[1] >> 5) & 1, avx512f = (r[1] >> 16) & 1;
    has_avx2 = avx2 && fma && ymm_ok;
    has_avx512 = avx512f && has_avx2 && zmm_ok;
#endif
}

int iqdb__cpu_has(iqdb_simd level) {
    iqdb__call_once(&detect_once, detect);
    switch (level) {
    case IQDB_SIMD_AUTO:
    case IQDB_SIMD_SCALAR: return 1;
    case IQDB_SIMD_AVX2: return has_avx2;
    case IQDB_SIMD_AVX512: return has_avx512;
    case IQDB_SIMD_NEON:
#if defined(__aarch64__) || defined(_M_ARM64)
        return 1;
#else
        return 0;
#endif
    }
    return 0;
}

static const iqdb__kernels *compiled(iqdb_simd level) {
    switch (level) {
    case IQDB_SIMD_SCALAR: return &iqdb__kernels_scalar;
    case IQDB_SIMD_AVX2:
#ifdef IQDB_HAVE_AVX2
        return &iqdb__kernels_avx2;
#else
        return NULL;
#endif
    case IQDB_SIMD_AVX512:
#ifdef IQDB_HAVE_AVX512
        return &iqdb__kernels_avx512;
#else
        return NULL;
#endif
    case IQDB_SIMD_NEON:
#ifdef IQDB_HAVE_NEON
        return &iqdb__kernels_neon;
#else
        return NULL;
#endif
    case IQDB_SIMD_AUTO: return NULL;
    }
    return NULL;
}

iqdb_simd iqdb__simd_best(void) {
    static const iqdb_simd order[] = {IQDB_SIMD_AVX512, IQDB_SIMD_AVX2, IQDB_SIMD_NEON};
    for (size_t i = 0; i < IQDB_ARRAY_LEN(order); i++)
        if (compiled(order[i]) && iqdb__cpu_has(order[i])) return order[i];
    return IQDB_SIMD_SCALAR;
}

const iqdb__kernels *iqdb__kernels_get(iqdb_simd level) {
    if (level == IQDB_SIMD_AUTO) level = iqdb__simd_best();
    const iqdb__kernels *k = compiled(level);
    return k && iqdb__cpu_has(level) ? k : NULL;
}

int iqdb_simd_available(iqdb_simd level) {
    if (level == IQDB_SIMD_AUTO) return 1;
    return iqdb__kernels_get(level) != NULL;
}

const char *iqdb_simd_name(iqdb_simd level) {
    switch (level) {
    case IQDB_SIMD_AUTO: return "auto";
    case IQDB_SIMD_SCALAR: return "scalar";
    case IQDB_SIMD_AVX2: return "avx2";
    case IQDB_SIMD_AVX512: return "avx512";
    case IQDB_SIMD_NEON: return "neon";
    }
    return "unknown";
}
