/*
 * crc32c.c — the portable slice-by-8 CRC32C and the run-time choice of implementation.
 *
 * Slice-by-8 reads eight bytes per step through eight 256-entry tables (8 KiB, built once):
 * about 1 byte per cycle, several times the one-table loop. The hardware paths are 3-10x
 * faster again; which one runs is decided once per process from the CPU's feature bits.
 */
#include "persist/crc32c.h"

#include <stdlib.h>
#include <string.h>

#include "os/thread.h"

#define POLY 0x82F63B78u /* Castagnoli, reflected */

static uint32_t table[8][256];
static iqdb__once table_once = IQDB__ONCE_INIT;

static void build_table(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (POLY & (0u - (c & 1u)));
        table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xff];
}

uint32_t iqdb__crc32c_table(uint32_t crc, const void *p, size_t n) {
    iqdb__call_once(&table_once, build_table);
    const uint8_t *b = p;
    uint32_t c = ~crc;
    while (n >= 8) {
        uint32_t lo = c ^ ((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                           (uint32_t)b[3] << 24);
        uint32_t hi =
            (uint32_t)b[4] | (uint32_t)b[5] << 8 | (uint32_t)b[6] << 16 | (uint32_t)b[7] << 24;
        c = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^ table[5][(lo >> 16) & 0xff] ^
            table[4][lo >> 24] ^ table[3][hi & 0xff] ^ table[2][(hi >> 8) & 0xff] ^
            table[1][(hi >> 16) & 0xff] ^ table[0][hi >> 24];
        b += 8;
        n -= 8;
    }
    while (n--) c = (c >> 8) ^ table[0][(c ^ *b++) & 0xff];
    return ~c;
}

/* ---- CPU probe -------------------------------------------------------------------------- */

typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);
static crc_fn best = iqdb__crc32c_table;
static const char *best_name = "table";
static iqdb__once probe_once = IQDB__ONCE_INIT;

#if defined(IQDB_HAVE_CRC_SSE42) && (defined(__x86_64__) || defined(_M_X64))
#if defined(_MSC_VER)
#include <intrin.h>
static int cpu_sse42(void) {
    int r[4];
    __cpuid(r, 1);
    return (r[2] >> 20) & 1;
}
#else
#include <cpuid.h>
static int cpu_sse42(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    return (c >> 20) & 1;
}
#endif
#endif

#if defined(IQDB_HAVE_CRC_ARMV8) && defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1 << 7)
#endif
static int cpu_armv8_crc(void) { return (getauxval(AT_HWCAP) & HWCAP_CRC32) != 0; }
#endif

static void probe(void) {
    const char *force = getenv("IQDB_CRC");
    if (force && strcmp(force, "table") == 0) return;
#if defined(IQDB_HAVE_CRC_SSE42) && (defined(__x86_64__) || defined(_M_X64))
    if (cpu_sse42()) {
        best = iqdb__crc32c_sse42;
        best_name = "sse4.2";
    }
#endif
#if defined(IQDB_HAVE_CRC_ARMV8) && defined(__aarch64__) && defined(__linux__)
    if (cpu_armv8_crc()) {
        best = iqdb__crc32c_armv8;
        best_name = "armv8";
    }
#endif
}

uint32_t iqdb__crc32c(uint32_t crc, const void *p, size_t n) {
    iqdb__call_once(&probe_once, probe);
    return best(crc, p, n);
}

const char *iqdb__crc32c_impl(void) {
    iqdb__call_once(&probe_once, probe);
    return best_name;
}
