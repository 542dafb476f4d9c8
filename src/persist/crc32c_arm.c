/*
 * crc32c_arm.c — CRC32C with the ARMv8 CRC extension (__crc32cd: eight bytes per instruction).
 * Compiled only for aarch64, with -march=armv8-a+crc; called only after crc32c.c has seen the
 * CPU's CRC32 hwcap.
 */
#if defined(__aarch64__)
#include <arm_acle.h>
#include <stdint.h>
#include <string.h>

#include "persist/crc32c.h"

uint32_t iqdb__crc32c_armv8(uint32_t crc, const void *p, size_t n) {
    const uint8_t *b = p;
    uint32_t c = ~crc;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, b, 8);
        c = __crc32cd(c, w);
        b += 8;
        n -= 8;
    }
    while (n--) c = __crc32cb(c, *b++);
    return ~c;
}
#endif
