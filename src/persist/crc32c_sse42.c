/*
 * crc32c_sse42.c — CRC32C with SSE4.2's crc32 instruction, eight bytes per instruction. The only
 * file compiled with -msse4.2; called only after crc32c.c has seen the CPU's SSE4.2 bit.
 */
#include <nmmintrin.h>
#include <stdint.h>
#include <string.h>

#include "persist/crc32c.h"

uint32_t iqdb__crc32c_sse42(uint32_t crc, const void *p, size_t n) {
    const uint8_t *b = p;
    uint64_t c = ~crc;
    while (n && ((uintptr_t)b & 7)) {
        c = _mm_crc32_u8((uint32_t)c, *b++);
        n--;
    }
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, b, 8);
        c = _mm_crc32_u64(c, w);
        b += 8;
        n -= 8;
    }
    while (n--) c = _mm_crc32_u8((uint32_t)c, *b++);
    return ~(uint32_t)c;
}
