/*
 * compress.h — the optional snapshot codecs, one block at a time: zstd and lz4 when they were
 * found at build time (IQDB_HAVE_ZSTD / IQDB_HAVE_LZ4), and "none", which is always there.
 *
 * Decompression writes into a buffer of exactly the block's declared raw length and succeeds
 * only when the block fills it exactly: a hostile block can neither overflow the buffer nor make
 * iqdb allocate more than one block's worth (IQDB__BLOCK_MAX). zstd's working memory comes from
 * the handle's allocator (so the OOM loop reaches it); lz4 works in a state iqdb allocates.
 */
#ifndef IQDB_PERSIST_COMPRESS_H
#define IQDB_PERSIST_COMPRESS_H

#include "internal.h"

typedef struct iqdb__codec {
    int codec; /* IQDB__CODEC_* */
    int level;
    iqdb__mem *mem;
    void *cctx, *dctx; /* zstd contexts, created on first use */
    void *state;       /* lz4 compression state */
    size_t state_len;
} iqdb__codec;

/* Maps the public compression option and level to a file codec and level, or fails:
 * IQDB_UNSUPPORTED (not compiled in), IQDB_INVALID (unknown value, level out of range). The
 * message names the problem (iqdb__fail with a NULL handle). */
int iqdb__codec_choose(iqdb_compression c, int32_t level, int *codec, int *out_level);
/* 1 when the file codec can be read by this build. */
int iqdb__codec_available(int codec);
/* "none", "zstd", "lz4". */
const char *iqdb__codec_name(int codec);

void iqdb__codec_init(iqdb__codec *c, int codec, int level, iqdb__mem *mem);
void iqdb__codec_destroy(iqdb__codec *c);
/* The most bytes a block of n raw bytes can take once compressed. */
size_t iqdb__codec_bound(int codec, size_t n);
/* Compresses n bytes into dst (cap >= bound). IQDB_OK, IQDB_NOMEM or IQDB_ERROR. */
int iqdb__codec_compress(iqdb__codec *c, const void *src, size_t n, void *dst, size_t cap,
                         size_t *out);
/* Decompresses a block of n stored bytes into exactly raw_len bytes. IQDB_OK, IQDB_CORRUPT
 * (malformed, or not exactly raw_len), IQDB_NOMEM. */
int iqdb__codec_decompress(iqdb__codec *c, const void *src, size_t n, void *dst, size_t raw_len);

#endif
