/*
 * popcnt_avx2.h — popcount of a ^ b over 64-bit words with AVX2 (included by the AVX2 and
 * AVX-512 kernel files, which are compiled with -mavx2 or a superset).
 *
 * Four words at a time: a 16-entry nibble table looked up with VPSHUFB gives per-byte counts, and
 * VPSADBW sums them into four 64-bit lanes (Mula's method). The last (at most three) words use
 * a scalar SWAR popcount.
 */
#ifndef IQDB_POPCNT_AVX2_H
#define IQDB_POPCNT_AVX2_H

#include <immintrin.h>
#include <stdint.h>

#include "dist/dist.h"

static inline uint32_t IQDB_POPCNT_XOR(const uint64_t *a, const uint64_t *b, size_t words) {
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2,
                                         1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0f);
    __m256i acc = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 4 <= words; i += 4) {
        __m256i x = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(a + i)),
                                     _mm256_loadu_si256((const __m256i *)(b + i)));
        __m256i lo = _mm256_and_si256(x, low), hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), low);
        __m256i cnt = _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
        acc = _mm256_add_epi64(acc, _mm256_sad_epu8(cnt, _mm256_setzero_si256()));
    }
    uint64_t lanes[4];
    _mm256_storeu_si256((__m256i *)lanes, acc);
    uint32_t n = (uint32_t)(lanes[0] + lanes[1] + lanes[2] + lanes[3]);
    for (; i < words; i++) n += iqdb__popcount64(a[i] ^ b[i]);
    return n;
}

#endif
