/*
 * crc32c.h — CRC32C (Castagnoli), the checksum of every snapshot section and WAL record.
 *
 * Three implementations computing the same function: a slice-by-8 table (portable reference),
 * SSE4.2's crc32 instruction (crc32c_sse42.c, compiled with -msse4.2) and ARMv8's CRC
 * extension (crc32c_arm.c). The CPU is probed once; iqdb__crc32c uses the best one.
 *
 * `crc` is the running value: start with 0, feed the result of one call into the next to
 * checksum a stream in pieces (the pre- and post-inversion are inside each call).
 *
 * Fuzzing builds define IQDB_FUZZ_NO_CRC so iqdb__crc_ok accepts any stored checksum and the
 * fuzzer's mutations reach the parsers behind it.
 */
#ifndef IQDB_PERSIST_CRC32C_H
#define IQDB_PERSIST_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t iqdb__crc32c(uint32_t crc, const void *p, size_t n);
/* The portable table implementation (the reference the hardware paths are tested against). */
uint32_t iqdb__crc32c_table(uint32_t crc, const void *p, size_t n);
/* "sse4.2", "armv8" or "table": the implementation iqdb__crc32c uses on this CPU. */
const char *iqdb__crc32c_impl(void);

/* Hardware paths, defined only where compiled; callable only when the CPU has them. */
uint32_t iqdb__crc32c_sse42(uint32_t crc, const void *p, size_t n);
uint32_t iqdb__crc32c_armv8(uint32_t crc, const void *p, size_t n);

static inline int iqdb__crc_ok(uint32_t stored, uint32_t computed) {
#ifdef IQDB_FUZZ_NO_CRC
    (void)stored;
    (void)computed;
    return 1;
#else
    return stored == computed;
#endif
}

#endif
