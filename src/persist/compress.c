/*
 * compress.c — see compress.h. One block in, one block out; no streaming state crosses blocks,
 * so a reader holds at most one block and a corrupt block is caught where it is.
 */
#include "persist/compress.h"

#include "persist/format.h"

#ifdef IQDB_HAVE_ZSTD
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_customMem: route zstd's memory through the hooks */
#include <zstd.h>
#include <zstd_errors.h>
#endif
#ifdef IQDB_HAVE_LZ4
#include <lz4.h>
#include <lz4hc.h>
#endif

int iqdb__codec_available(int codec) {
    switch (codec) {
    case IQDB__CODEC_NONE: return 1;
#ifdef IQDB_HAVE_ZSTD
    case IQDB__CODEC_ZSTD: return 1;
#endif
#ifdef IQDB_HAVE_LZ4
    case IQDB__CODEC_LZ4: return 1;
#endif
    default: return 0;
    }
}

const char *iqdb__codec_name(int codec) {
    return codec == IQDB__CODEC_ZSTD ? "zstd" : codec == IQDB__CODEC_LZ4 ? "lz4" : "none";
}

int iqdb__codec_choose(iqdb_compression c, int32_t level, int *codec, int *out_level) {
    switch (c) {
    case IQDB_COMPRESS_DEFAULT:
    case IQDB_COMPRESS_NONE:
        if (level)
            return iqdb__fail(NULL, IQDB_INVALID, "compression_level %d without compression",
                              (int)level);
        *codec = IQDB__CODEC_NONE;
        *out_level = 0;
        return IQDB_OK;
    case IQDB_COMPRESS_ZSTD:
        if (level < 0 || level > 22)
            return iqdb__fail(NULL, IQDB_INVALID, "zstd level %d is outside 1..22 (0 = default)",
                              (int)level);
        if (!iqdb__codec_available(IQDB__CODEC_ZSTD))
            return iqdb__fail(NULL, IQDB_UNSUPPORTED, "zstd compression was not compiled in");
        *codec = IQDB__CODEC_ZSTD;
        *out_level = level ? level : 3;
        return IQDB_OK;
    case IQDB_COMPRESS_LZ4:
        if (level < 0 || level > 12)
            return iqdb__fail(NULL, IQDB_INVALID, "lz4 level %d is outside 1..12 (0 = default)",
                              (int)level);
        if (!iqdb__codec_available(IQDB__CODEC_LZ4))
            return iqdb__fail(NULL, IQDB_UNSUPPORTED, "lz4 compression was not compiled in");
        *codec = IQDB__CODEC_LZ4;
        *out_level = level ? level : 1;
        return IQDB_OK;
    }
    return iqdb__fail(NULL, IQDB_INVALID, "unknown compression %d", (int)c);
}

void iqdb__codec_init(iqdb__codec *c, int codec, int level, iqdb__mem *mem) {
    memset(c, 0, sizeof *c);
    c->codec = codec;
    c->level = level;
    c->mem = mem;
}

#ifdef IQDB_HAVE_ZSTD
/* zstd frees without a size: keep it in a 16-byte header so the sized-free hooks get it. */
static void *zalloc(void *opaque, size_t size) {
    if (size > SIZE_MAX - 16) return NULL;
    unsigned char *p = iqdb__alloc(opaque, size + 16);
    if (!p) return NULL;
    memcpy(p, &size, sizeof size);
    return p + 16;
}
static void zfree(void *opaque, void *addr) {
    if (!addr) return;
    unsigned char *p = (unsigned char *)addr - 16;
    size_t size;
    memcpy(&size, p, sizeof size);
    iqdb__free(opaque, p, size + 16);
}
#endif

void iqdb__codec_destroy(iqdb__codec *c) {
#ifdef IQDB_HAVE_ZSTD
    ZSTD_freeCCtx(c->cctx);
    ZSTD_freeDCtx(c->dctx);
#endif
    iqdb__free(c->mem, c->state, c->state_len);
    memset(c, 0, sizeof *c);
}

size_t iqdb__codec_bound(int codec, size_t n) {
    switch (codec) {
#ifdef IQDB_HAVE_ZSTD
    case IQDB__CODEC_ZSTD: return ZSTD_compressBound(n);
#endif
#ifdef IQDB_HAVE_LZ4
    case IQDB__CODEC_LZ4: return (size_t)LZ4_compressBound((int)n);
#endif
    default: return n;
    }
}

int iqdb__codec_compress(iqdb__codec *c, const void *src, size_t n, void *dst, size_t cap,
                         size_t *out) {
    *out = 0;
    switch (c->codec) {
#ifdef IQDB_HAVE_ZSTD
    case IQDB__CODEC_ZSTD: {
        if (!c->cctx) {
            ZSTD_customMem cm = {zalloc, zfree, c->mem};
            c->cctx = ZSTD_createCCtx_advanced(cm);
            if (!c->cctx) return IQDB_NOMEM;
        }
        size_t r = ZSTD_compressCCtx(c->cctx, dst, cap, src, n, c->level);
        if (ZSTD_isError(r))
            return ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation ? IQDB_NOMEM : IQDB_ERROR;
        *out = r;
        return IQDB_OK;
    }
#endif
#ifdef IQDB_HAVE_LZ4
    case IQDB__CODEC_LZ4: {
        size_t need = c->level > 1 ? (size_t)LZ4_sizeofStateHC() : (size_t)LZ4_sizeofState();
        if (!c->state) {
            c->state = iqdb__alloc(c->mem, need);
            if (!c->state) return IQDB_NOMEM;
            c->state_len = need;
        }
        int r = c->level > 1
                    ? LZ4_compress_HC_extStateHC(c->state, src, dst, (int)n, (int)cap, c->level)
                    : LZ4_compress_fast_extState(c->state, src, dst, (int)n, (int)cap, 1);
        if (r <= 0) return IQDB_ERROR;
        *out = (size_t)r;
        return IQDB_OK;
    }
#endif
    default:
        if (cap < n) return IQDB_ERROR;
        memcpy(dst, src, n);
        *out = n;
        return IQDB_OK;
    }
}

int iqdb__codec_decompress(iqdb__codec *c, const void *src, size_t n, void *dst, size_t raw_len) {
    switch (c->codec) {
#ifdef IQDB_HAVE_ZSTD
    case IQDB__CODEC_ZSTD: {
        if (!c->dctx) {
            ZSTD_customMem cm = {zalloc, zfree, c->mem};
            c->dctx = ZSTD_createDCtx_advanced(cm);
            if (!c->dctx) return IQDB_NOMEM;
        }
        /* Exactly one frame that fills exactly raw_len: ZSTD_decompressDCtx never writes past
         * the capacity it is given, and a frame that would is an error. */
        size_t r = ZSTD_decompressDCtx(c->dctx, dst, raw_len, src, n);
        if (ZSTD_isError(r))
            return ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation ? IQDB_NOMEM : IQDB_CORRUPT;
        return r == raw_len ? IQDB_OK : IQDB_CORRUPT;
    }
#endif
#ifdef IQDB_HAVE_LZ4
    case IQDB__CODEC_LZ4: {
        if (n > (size_t)INT32_MAX || raw_len > (size_t)INT32_MAX) return IQDB_CORRUPT;
        int r = LZ4_decompress_safe(src, dst, (int)n, (int)raw_len);
        return r >= 0 && (size_t)r == raw_len ? IQDB_OK : IQDB_CORRUPT;
    }
#endif
    default:
        if (n != raw_len) return IQDB_CORRUPT;
        memcpy(dst, src, n);
        return IQDB_OK;
    }
}
