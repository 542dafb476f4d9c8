/*
 * ser.h — little-endian reading and writing through the persistence layer's byte sink and
 * source (index.h), for the index sections (ivf.c, quant.c).
 *
 * Bytes are little-endian on every host: a big-endian host swaps through a small stack buffer.
 * Readers return the source's status unchanged (so an I/O error stays an I/O error) and never
 * interpret a value: every count and id read here is checked by the caller before use.
 */
#ifndef IQDB_SER_H
#define IQDB_SER_H

#include "index/index.h"

static inline int iqdb__host_le(void) {
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* Writes n items of `size` bytes (1, 4 or 8) from p, little-endian. */
static inline int iqdb__ser_put(iqdb__sink *k, const void *p, size_t n, size_t size) {
    if (n == 0) return IQDB_OK;
    if (size == 1 || iqdb__host_le()) return k->write(k->ctx, p, n * size);
    unsigned char buf[512];
    const unsigned char *s = p;
    while (n) {
        size_t m = IQDB_MIN(n, sizeof buf / size);
        for (size_t i = 0; i < m; i++)
            for (size_t b = 0; b < size; b++) buf[i * size + b] = s[i * size + size - 1 - b];
        IQDB_TRY(k->write(k->ctx, buf, m * size));
        s += m * size;
        n -= m;
    }
    return IQDB_OK;
}

/* Reads n items of `size` bytes into p, converting from little-endian. */
static inline int iqdb__ser_get(iqdb__source *src, void *p, size_t n, size_t size) {
    if (n == 0) return IQDB_OK;
    IQDB_TRY(src->read(src->ctx, p, n * size));
    if (size == 1 || iqdb__host_le()) return IQDB_OK;
    unsigned char *d = p;
    for (size_t i = 0; i < n; i++)
        for (size_t b = 0; b < size / 2; b++) {
            unsigned char t = d[i * size + b];
            d[i * size + b] = d[i * size + size - 1 - b];
            d[i * size + size - 1 - b] = t;
        }
    return IQDB_OK;
}

static inline int iqdb__ser_u32(iqdb__sink *k, uint32_t v) { return iqdb__ser_put(k, &v, 1, 4); }
static inline int iqdb__ser_u64(iqdb__sink *k, uint64_t v) { return iqdb__ser_put(k, &v, 1, 8); }

#endif
