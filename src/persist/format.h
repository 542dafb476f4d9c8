/*
 * format.h — the byte layout of the snapshot and the WAL (docs/FORMAT.md is the specification;
 * this header gives its constants names) and the little-endian field helpers every encoder and
 * decoder uses.
 *
 * Invariants: every multi-byte field goes through put_* / get_* (never a cast of a file pointer
 * to a wider type), so the layout is the same on every host and unaligned reads are safe.
 */
#ifndef IQDB_PERSIST_FORMAT_H
#define IQDB_PERSIST_FORMAT_H

#include "internal.h"

/* Version 2 added byte keys (keyed snapshot rows, WAL record types 3 and 4). Files are written
 * as version 2; version 1 files (which cannot hold keys) are still read. The bump is what makes a
 * version-1 reader refuse a keyed WAL (IQDB_FORMAT) instead of taking its first keyed record for
 * a torn tail and cutting it off. */
#define IQDB__FORMAT_VERSION 2u

/* snapshot */
#define IQDB__SNAP_MAGIC "IQDBSNAP"
#define IQDB__SNAP_HDR 64u
#define IQDB__SNAP_ENTRY 40u
#define IQDB__SNAP_SECTIONS 4u
#define IQDB__SNAP_MAX_SECTIONS 16u
#define IQDB__BLOCK_MAX (1u << 20) /* raw bytes per block */
#define IQDB__BLOCK_HDR 8u
#define IQDB__PARAMS_LEN 56u /* with the quantizer fields; 40 (no quantizer) is also read */
#define IQDB__PARAMS_LEN_NOQUANT 40u
#define IQDB__META_MAX (64u << 20) /* one stored metadata blob */

enum { IQDB__SEC_PARAMS = 1, IQDB__SEC_KEYS = 2, IQDB__SEC_ROWS = 3, IQDB__SEC_INDEX = 4 };
enum { IQDB__CODEC_NONE = 0, IQDB__CODEC_ZSTD = 1, IQDB__CODEC_LZ4 = 2 };

/* WAL */
#define IQDB__WAL_MAGIC "IQDBWAL"
#define IQDB__WAL_HDR 40u
#define IQDB__REC_HDR 40u
#define IQDB__REC_MAX (1u << 30) /* payload bytes */
enum {
    IQDB__REC_UPSERT = 1,
    IQDB__REC_DELETE = 2,
    IQDB__REC_UPSERT_KEY = 3, /* version 2 */
    IQDB__REC_DELETE_KEY = 4  /* version 2 */
};

/* ---- little-endian fields ---------------------------------------------------------------- */

static inline void iqdb__put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static inline void iqdb__put64(uint8_t *p, uint64_t v) {
    iqdb__put32(p, (uint32_t)v);
    iqdb__put32(p + 4, (uint32_t)(v >> 32));
}
static inline uint32_t iqdb__get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t iqdb__get64(const uint8_t *p) {
    return (uint64_t)iqdb__get32(p) | (uint64_t)iqdb__get32(p + 4) << 32;
}

/* Floats: a plain copy on little-endian hosts, a byte swap per value elsewhere. */
static inline void iqdb__put_f32s(uint8_t *p, const float *v, size_t n) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        iqdb__put32(p + 4 * i, u);
    }
#else
    memcpy(p, v, n * sizeof(float));
#endif
}
static inline void iqdb__get_f32s(float *v, const uint8_t *p, size_t n) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    for (size_t i = 0; i < n; i++) {
        uint32_t u = iqdb__get32(p + 4 * i);
        memcpy(&v[i], &u, 4);
    }
#else
    memcpy(v, p, n * sizeof(float));
#endif
}

#endif
