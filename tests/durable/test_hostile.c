/*
 * test_hostile.c — hostile files. Reference databases (snapshot plain, zstd and lz4, and a WAL
 * with records after the snapshot) are damaged in every way listed below; each damaged pair
 * must open with verified content (every record equal to what was written) or fail with a clean
 * code (IQDB_FORMAT, IQDB_CORRUPT_*, IQDB_UNSUPPORTED, IQDB_MISMATCH for a crafted dim or
 * metric), without a crash, a sanitizer report, a
 * leak, or more than 16 MiB of memory at any moment (the reference files are a few KiB).
 *   - every truncation of each snapshot and of the WAL (a WAL truncation is a torn tail: it must
 *     open, with the records before the cut);
 *   - every bit flip in the first 1 KiB of each snapshot (header, section table, block headers)
 *     and in the WAL header and every WAL record header; a flip in a record that a later record
 *     proves synced must be IQDB_CORRUPT_WAL, never a silent cut;
 *   - handcrafted hostile lengths and counts with their checksums recomputed, so the parser
 *     behind the CRC sees them (0, 1, 2^31, 2^32 - 1, 2^64 - 1, ... in every length field);
 *   - decompression bombs: a zstd block that expands to 64 MiB declared as 1 MiB, blocks whose
 *     declared raw length is smaller or larger than what they hold;
 *   - an HNSW database: truncations and flips as above, and its graph section changed byte by
 *     byte and field by field with the checksums recomputed (it must load as a graph that
 *     passes iqdb_check, or fail cleanly).
 * Prints the number of inputs.
 */
#ifdef IQDB_HAVE_ZSTD
#include <zstd.h>
#endif

#include "harness.h"
#include "persist/crc32c.h"
#include "persist/format.h"

#define PATH "/sim/db"
#define MEM_CAP (16u << 20)

static iqdbt_alloc A;
static _Atomic long long peak;
static long inputs;

static void *peak_alloc(void *ud, size_t size) {
    void *p = iqdbt_alloc_fn(ud, size);
    long long live = atomic_load(&A.live);
    if (live > atomic_load(&peak)) atomic_store(&peak, live);
    return p;
}
static void *peak_realloc(void *ud, void *ptr, size_t old, size_t size) {
    void *p = iqdbt_realloc_fn(ud, ptr, old, size);
    long long live = atomic_load(&A.live);
    if (live > atomic_load(&peak)) atomic_store(&peak, live);
    return p;
}

typedef struct ref {
    const char *name;
    uint8_t *snap, *wal;
    size_t snap_len, wal_len;
    h_state states[H_MAX_OPS + 1]; /* after each prefix */
    int ckpt_ops, n_ops;           /* ops in the snapshot, ops in all */
    size_t rec_off[H_MAX_OPS];     /* WAL record offsets */
    int n_recs;
} ref;

static h_workload W;

/* Builds a reference: ops, a checkpoint after 60% of them, more ops; the process "stops" (no
 * close) so the WAL keeps its records. */
static void build(ref *r, iqdb_compression codec, iqdb_index_kind index, const char *name) {
    memset(r, 0, sizeof *r);
    r->name = name;
    memset(&W, 0, sizeof W);
    W.index = index;
    W.sync = IQDB_SYNC_ALWAYS;
    W.codec = codec;
    W.checkpoint_bytes = UINT64_MAX;
    h_generate(&W, 77, 30, 0);
    for (int i = 0; i < W.n_ops; i++) /* one explicit checkpoint, at op 18 */
        if (W.ops[i].kind == H_CHECKPOINT) W.ops[i].kind = H_UPSERT;
    W.ops[18].kind = H_CHECKPOINT;
    simfs *fs = simfs_new();
    iqdb__io_set_default(simfs_io(fs));
    iqdb_options o;
    h_options(&W, &o, NULL);
    iqdb *db;
    assert_int_equal(iqdb_open(PATH, &o, &db), IQDB_OK);
    for (int i = 0; i < W.n_ops; i++) {
        assert_int_equal(h_run_op(&db, &W, &W.ops[i], PATH, NULL), IQDB_OK);
        r->states[i + 1] = r->states[i];
        h_apply(&r->states[i + 1], &W.ops[i]);
    }
    r->ckpt_ops = 19;
    r->n_ops = W.n_ops;
    simfs *left = simfs_clone(fs); /* the files as a crashed process leaves them */
    assert_true(simfs_get(left, PATH, &r->snap, &r->snap_len));
    assert_true(simfs_get(left, PATH ".wal", &r->wal, &r->wal_len));
    for (size_t off = IQDB__WAL_HDR; off < r->wal_len;) {
        r->rec_off[r->n_recs++] = off;
        off += IQDB__REC_HDR + ((iqdb__get32(r->wal + off + 32) + 7u) & ~7u);
    }
    iqdb_close(db); /* frees the handle; its checkpoint goes to `fs`, not `left` */
    simfs_free(left);
    simfs_free(fs);
}

/* ANY: verified content or a clean failure. CRAFTED: checksums were recomputed, so the file
 * may be a valid database that differs from the reference: an open must pass iqdb_check. */
enum { ANY, MUST_OPEN, MUST_CORRUPT, CRAFTED };

/* Opens the pair; returns the status. OK is accepted only with verified content. */
static int try_open(const ref *r, const uint8_t *snap, size_t sl, const uint8_t *wal, size_t wl,
                    int expect, const char *what, long i) {
    inputs++;
    simfs *fs = simfs_new();
    simfs_put(fs, PATH, snap, sl);
    if (wal) simfs_put(fs, PATH ".wal", wal, wl);
    iqdb__io_set_default(simfs_io(fs));
    iqdbt_alloc_reset(&A);
    atomic_store(&peak, 0);
    iqdb_allocator al = {peak_alloc, peak_realloc, iqdbt_free_fn, &A};
    iqdb_options o;
    h_options(&W, &o, &al);
    iqdb *db = NULL;
    int rc = iqdb_open(PATH, &o, &db);
    if (rc == IQDB_OK) {
        h_seen s;
        int ok = h_read(db, &s) == IQDB_OK, match = 0;
        for (int j = r->ckpt_ops; ok && j <= r->n_ops && !match; j++)
            match = expect == CRAFTED || h_equal(&s, &r->states[j]);
        if (!match || iqdb_check(db) != IQDB_OK) {
            print_error("%s %s #%ld: opened with content that was never written\n", r->name, what,
                        i);
            fail();
        }
        iqdb_close(db);
    } else {
        int p = IQDB_PRIMARY(rc);
        if (p != IQDB_FORMAT && p != IQDB_CORRUPT && p != IQDB_UNSUPPORTED && p != IQDB_MISMATCH) {
            print_error("%s %s #%ld: unclean failure %d (%s)\n", r->name, what, i, rc,
                        iqdb_errmsg(NULL));
            fail();
        }
    }
    if ((expect == MUST_OPEN && rc != IQDB_OK) ||
        (expect == MUST_CORRUPT && rc != IQDB_CORRUPT_WAL)) {
        print_error("%s %s #%ld: got %d (%s), expected %s\n", r->name, what, i, rc,
                    iqdb_errmsg(NULL), expect == MUST_OPEN ? "a successful open" : "CORRUPT_WAL");
        fail();
    }
    if (atomic_load(&A.live) != 0 || atomic_load(&peak) > MEM_CAP) {
        print_error("%s %s #%ld: %lld bytes leaked, peak %lld\n", r->name, what, i,
                    (long long)atomic_load(&A.live), (long long)atomic_load(&peak));
        fail();
    }
    simfs_free(fs);
    return rc;
}

static void truncations_and_flips(const ref *r) {
    long before = inputs;
    uint8_t *b = malloc(IQDB_MAX(r->snap_len, r->wal_len));
    for (size_t n = 0; n < r->snap_len; n++)
        try_open(r, r->snap, n, r->wal, r->wal_len, ANY, "snapshot truncation", (long)n);
    for (size_t bit = 0; bit < IQDB_MIN(r->snap_len, (size_t)1024) * 8; bit++) {
        memcpy(b, r->snap, r->snap_len);
        b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        int rc =
            try_open(r, b, r->snap_len, r->wal, r->wal_len, ANY, "snapshot bit flip", (long)bit);
        if (rc == IQDB_OK) { /* only possible if the flip hit nothing the CRCs cover: none */
            print_error("%s: snapshot bit %zu flipped and still opened\n", r->name, bit);
            fail();
        }
    }
    for (size_t n = 0; n < r->wal_len; n++)
        try_open(r, r->snap, r->snap_len, r->wal, n, MUST_OPEN, "WAL truncation", (long)n);
    for (int k = -1; k < r->n_recs; k++) {
        size_t off = k < 0 ? 0 : r->rec_off[k];
        for (size_t bit = 0; bit < IQDB__REC_HDR * 8; bit++) {
            memcpy(b, r->wal, r->wal_len);
            b[off + bit / 8] ^= (uint8_t)(1u << (bit % 8));
            /* damage to the header, or to a record a later one proves synced, is corruption */
            int expect = k < r->n_recs - 1 ? MUST_CORRUPT : MUST_OPEN;
            try_open(r, r->snap, r->snap_len, b, r->wal_len, expect, "WAL header bit flip",
                     (long)(k * 1000 + (long)bit));
        }
    }
    free(b);
    printf("%-6s truncations and bit flips: %ld inputs\n", r->name, inputs - before);
}

/* ---- handcrafted fields, CRCs recomputed ---------------------------------------------------- */

/* Recomputes every CRC of an uncompressed snapshot whose block headers are intact. */
static void recrc_snapshot(uint8_t *s, size_t len) {
    for (uint32_t i = 0; i < IQDB__SNAP_SECTIONS; i++) {
        uint8_t *e = s + IQDB__SNAP_HDR + i * IQDB__SNAP_ENTRY;
        uint64_t off = iqdb__get64(e + 8), stored = iqdb__get64(e + 16);
        if (off > len || stored > len - off) continue;
        uint32_t raw = 0;
        for (uint64_t p = off; p + 8 <= off + stored;) {
            uint32_t bl = iqdb__get32(s + p + 4);
            if (bl > off + stored - p - 8) break;
            raw = iqdb__crc32c(raw, s + p + 8, bl);
            p += 8 + bl;
        }
        iqdb__put32(e + 32, iqdb__crc32c(0, s + off, (size_t)stored));
        iqdb__put32(e + 36, raw);
    }
    iqdb__put32(s + 52,
                iqdb__crc32c(0, s + IQDB__SNAP_HDR, IQDB__SNAP_SECTIONS * IQDB__SNAP_ENTRY));
    iqdb__put32(s + 60, iqdb__crc32c(0, s, 60));
}

/* Recomputes a record's CRCs; the payload CRC only when the (hostile) length fits in `room`. */
static void recrc_record(uint8_t *rec, size_t room) {
    uint32_t len = iqdb__get32(rec + 32);
    if (len <= room - IQDB__REC_HDR)
        iqdb__put32(rec + 4, iqdb__crc32c(0, rec + IQDB__REC_HDR, len));
    iqdb__put32(rec, iqdb__crc32c(0, rec + 4, IQDB__REC_HDR - 4));
}

static const uint64_t hostile[] = {0,
                                   1,
                                   2,
                                   7,
                                   255,
                                   256,
                                   65535,
                                   65536,
                                   1u << 20,
                                   (1u << 20) + 1,
                                   1u << 30,
                                   INT32_MAX,
                                   0x80000000u,
                                   UINT32_MAX - 2,
                                   UINT32_MAX - 1,
                                   UINT32_MAX,
                                   1ull << 32,
                                   1ull << 40,
                                   INT64_MAX,
                                   UINT64_MAX - 1,
                                   UINT64_MAX};

static void poke(uint8_t *p, int width, uint64_t v) {
    if (width == 8)
        iqdb__put64(p, v);
    else if (width == 4)
        iqdb__put32(p, (uint32_t)v);
    else
        *p = (uint8_t)v;
}

/* The HNSW graph section with its checksums recomputed: every byte of its payload xored with
 * 0x01, 0x80 and 0xff, then a handful of hostile values at every 4-byte field. Each must open as
 * a graph that passes iqdb_check (a change that keeps the graph valid: a different but sound
 * link, say) or fail cleanly, never crash, leak or loop. */
static void crafted_graph(const ref *r) {
    long before = inputs;
    uint8_t *b = malloc(r->snap_len);
    const uint8_t *e = r->snap + IQDB__SNAP_HDR + (IQDB__SEC_INDEX - 1) * IQDB__SNAP_ENTRY;
    assert_int_equal(iqdb__get32(e), IQDB__SEC_INDEX);
    size_t off = (size_t)iqdb__get64(e + 8), stored = (size_t)iqdb__get64(e + 16);
    assert_true(stored > 8 && off + stored <= r->snap_len);
    assert_int_equal(iqdb__get32(r->snap + off + 4), stored - 8); /* one block */
    size_t lo = off + 8, hi = off + stored;
    const uint8_t pats[] = {0x01, 0x80, 0xff};
    for (size_t i = lo; i < hi; i++)
        for (size_t p = 0; p < sizeof pats; p++) {
            memcpy(b, r->snap, r->snap_len);
            b[i] ^= pats[p];
            recrc_snapshot(b, r->snap_len);
            try_open(r, b, r->snap_len, r->wal, r->wal_len, CRAFTED, "graph byte",
                     (long)((i - lo) * 4 + p));
        }
    const uint32_t vals[] = {0, 1, 2, 31, 32, 33, 64, 0x7fffffffu, 0xfffffffeu, 0xffffffffu};
    for (size_t i = lo; i + 4 <= hi; i += 4)
        for (size_t v = 0; v < sizeof vals / sizeof vals[0]; v++) {
            memcpy(b, r->snap, r->snap_len);
            iqdb__put32(b + i, vals[v]);
            recrc_snapshot(b, r->snap_len);
            try_open(r, b, r->snap_len, r->wal, r->wal_len, CRAFTED, "graph field",
                     (long)((i - lo) * 16 + v));
        }
    free(b);
    printf("%-6s crafted graph sections: %ld inputs\n", r->name, inputs - before);
}

/* The offset of the first keyed row (live byte 2) in an uncompressed snapshot's rows section,
 * or 0. `rows` is where the section starts (its one block header first). */
static size_t first_keyed_row(const ref *r, size_t rows) {
    size_t pos = rows + IQDB__BLOCK_HDR, end = pos + iqdb__get32(r->snap + rows);
    uint64_t n_slots = iqdb__get64(r->snap + pos + 8);
    pos += 40;
    for (uint64_t i = 0; i < n_slots && pos < end; i++) {
        uint8_t live = r->snap[pos];
        if (live == 2) return pos;
        if (live == 0) {
            pos += 1;
            continue;
        }
        pos += 1 + 20 + H_DIM * 4 + iqdb__get32(r->snap + pos + 17);
    }
    return 0;
}

static void handcrafted(const ref *r) {
    long before = inputs;
    uint8_t *b = malloc(r->snap_len + 64);
    /* the field table: offset in the file (negative: relative to a section start), width */
    uint64_t rows = iqdb__get64(r->snap + IQDB__SNAP_HDR + 2 * IQDB__SNAP_ENTRY + 8);
    uint64_t keys = iqdb__get64(r->snap + IQDB__SNAP_HDR + 1 * IQDB__SNAP_ENTRY + 8);
    const struct {
        size_t off;
        int width;
    } fields[] = {{8, 4},
                  {12, 4},
                  {16, 4},
                  {20, 4},
                  {24, 4},
                  {28, 4},
                  {32, 8},
                  {40, 8},
                  {48, 4},
                  {56, 4},
                  /* section table: offset, stored, raw of each section */
                  {64 + 8, 8},
                  {64 + 16, 8},
                  {64 + 24, 8},
                  {104 + 8, 8},
                  {104 + 16, 8},
                  {104 + 24, 8},
                  {144 + 8, 8},
                  {144 + 16, 8},
                  {144 + 24, 8},
                  {184 + 8, 8},
                  {184 + 16, 8},
                  {184 + 24, 8},
                  /* block headers of the keys and rows sections */
                  {keys, 4},
                  {keys + 4, 4},
                  {rows, 4},
                  {rows + 4, 4},
                  /* the key count and first key length; the rows header: dim, n_slots, next_seq,
                   * count, n_free; the first slot: live, id, seq, meta_len */
                  {keys + 8, 4},
                  {keys + 12, 4},
                  {rows + 8, 4},
                  {rows + 12, 4},
                  {rows + 16, 8},
                  {rows + 24, 8},
                  {rows + 32, 8},
                  {rows + 40, 8},
                  {rows + 48, 1},
                  {rows + 49, 8},
                  {rows + 57, 8},
                  {rows + 65, 4}};
    for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++)
        for (size_t v = 0; v < sizeof hostile / sizeof hostile[0]; v++) {
            if (fields[f].off + (size_t)fields[f].width > r->snap_len) continue;
            memcpy(b, r->snap, r->snap_len);
            poke(b + fields[f].off, fields[f].width, hostile[v]);
            recrc_snapshot(b, r->snap_len);
            try_open(r, b, r->snap_len, r->wal, r->wal_len, CRAFTED, "hostile snapshot field",
                     (long)(f * 100 + v));
        }
    /* a keyed row: its live byte, key length and (zero) id field */
    size_t kr = r->snap[28] == IQDB__CODEC_NONE ? first_keyed_row(r, rows) : 0;
    if (r->snap[28] == IQDB__CODEC_NONE) assert_true(kr != 0); /* the workload wrote some */
    if (kr) {
        size_t kfields[3][2] = {{kr, 1}, {kr + 1, 4}, {kr + 5 + iqdb__get32(r->snap + kr + 1), 8}};
        for (size_t f = 0; f < 3; f++)
            for (size_t v = 0; v < sizeof hostile / sizeof hostile[0]; v++) {
                memcpy(b, r->snap, r->snap_len);
                poke(b + kfields[f][0], (int)kfields[f][1], hostile[v]);
                recrc_snapshot(b, r->snap_len);
                try_open(r, b, r->snap_len, r->wal, r->wal_len, CRAFTED, "hostile keyed row",
                         (long)(f * 100 + v));
            }
    }
    /* WAL: the length field of each record, and an upsert's row and key counts */
    uint8_t *w = malloc(r->wal_len);
    for (int k = 0; k < r->n_recs; k++)
        for (size_t v = 0; v < sizeof hostile / sizeof hostile[0]; v++)
            for (size_t fo = 32; fo <= IQDB__REC_HDR + 8; fo += 4) {
                size_t off = r->rec_off[k];
                memcpy(w, r->wal, r->wal_len);
                if (fo >= IQDB__REC_HDR && r->wal[off + 36] != IQDB__REC_UPSERT &&
                    r->wal[off + 36] != IQDB__REC_UPSERT_KEY)
                    continue;
                poke(w + off + fo, 4, hostile[v]);
                recrc_record(w + off, r->wal_len - off);
                try_open(r, r->snap, r->snap_len, w, r->wal_len, CRAFTED, "hostile WAL field",
                         (long)(k * 1000 + (long)v));
            }
    /* a keyed upsert's first row: its key length; a keyed delete's payload length */
    int keyed_recs = 0;
    for (int k = 0; k < r->n_recs; k++) {
        size_t off = r->rec_off[k], at = off + IQDB__REC_HDR + 12;
        if (r->wal[off + 36] != IQDB__REC_UPSERT_KEY) continue;
        keyed_recs++;
        for (uint32_t i = 0, nk = iqdb__get32(r->wal + off + IQDB__REC_HDR + 8); i < nk; i++)
            at += 4 + iqdb__get32(r->wal + at);
        for (size_t v = 0; v < sizeof hostile / sizeof hostile[0]; v++) {
            memcpy(w, r->wal, r->wal_len);
            poke(w + at, 4, hostile[v]);
            recrc_record(w + off, r->wal_len - off);
            try_open(r, r->snap, r->snap_len, w, r->wal_len, CRAFTED, "hostile WAL key length",
                     (long)(k * 1000 + (long)v));
        }
    }
    assert_true(keyed_recs > 0); /* the workload logged keyed upserts after the checkpoint */
    free(w);
    free(b);
    printf("%-6s handcrafted hostile fields: %ld inputs\n", r->name, inputs - before);
}

#ifdef IQDB_HAVE_ZSTD
/* zstd blocks that lie about their size, and one that would expand to 64 MiB. */
static void bombs(const ref *r) {
    long before = inputs;
    size_t rows_off = (size_t)iqdb__get64(r->snap + IQDB__SNAP_HDR + 2 * IQDB__SNAP_ENTRY + 8);
    size_t big = 64u << 20;
    uint8_t *zeros = calloc(1, big);
    size_t cap = ZSTD_compressBound(big);
    uint8_t *frame = malloc(cap);
    size_t flen = ZSTD_compress(frame, cap, zeros, big, 19);
    assert_false(ZSTD_isError(flen));
    const uint32_t declared[] = {
        1, 4096, IQDB__BLOCK_MAX - 1, IQDB__BLOCK_MAX, IQDB__BLOCK_MAX + 1, UINT32_MAX};
    for (size_t d = 0; d < sizeof declared / sizeof declared[0]; d++) {
        /* replace the rows section with one block holding the bomb */
        size_t len = rows_off + 8 + flen;
        uint8_t *b = malloc(len);
        memcpy(b, r->snap, rows_off);
        iqdb__put32(b + rows_off, declared[d]);
        iqdb__put32(b + rows_off + 4, (uint32_t)flen);
        memcpy(b + rows_off + 8, frame, flen);
        uint8_t *e = b + IQDB__SNAP_HDR + 2 * IQDB__SNAP_ENTRY;
        iqdb__put64(e + 16, 8 + flen);
        iqdb__put64(e + 24, declared[d]);
        iqdb__put32(e + 32, iqdb__crc32c(0, b + rows_off, 8 + flen));
        iqdb__put32(e + 36, 0);
        iqdb__put32(b + 52,
                    iqdb__crc32c(0, b + IQDB__SNAP_HDR, IQDB__SNAP_SECTIONS * IQDB__SNAP_ENTRY));
        iqdb__put32(b + 60, iqdb__crc32c(0, b, 60));
        /* the index section now starts elsewhere: the file is rows-last, so drop it */
        try_open(r, b, len, r->wal, r->wal_len, CRAFTED, "zstd bomb", (long)d);
        free(b);
    }
    /* real blocks whose declared raw length is off by one either way */
    for (int delta = -2; delta <= 2; delta++) {
        if (!delta) continue;
        uint8_t *b = malloc(r->snap_len);
        memcpy(b, r->snap, r->snap_len);
        iqdb__put32(b + rows_off, iqdb__get32(b + rows_off) + (uint32_t)delta);
        recrc_snapshot(b, r->snap_len);
        try_open(r, b, r->snap_len, r->wal, r->wal_len, CRAFTED, "declared length off", delta);
        free(b);
    }
    free(frame);
    free(zeros);
    printf("%-6s decompression bombs: %ld inputs\n", r->name, inputs - before);
}
#endif

static void test_hostile_files(void **state) {
    (void)state;
    const struct {
        iqdb_compression c;
        const char *name;
    } codecs[] = {
        {IQDB_COMPRESS_NONE, "plain"}, {IQDB_COMPRESS_ZSTD, "zstd"}, {IQDB_COMPRESS_LZ4, "lz4"}};
    static ref r;
    for (size_t c = 0; c < 3; c++) {
        if (!iqdb_compression_available(codecs[c].c)) continue;
        build(&r, codecs[c].c, IQDB_INDEX_FLAT, codecs[c].name);
        try_open(&r, r.snap, r.snap_len, r.wal, r.wal_len, MUST_OPEN, "reference", 0);
        truncations_and_flips(&r);
        if (codecs[c].c == IQDB_COMPRESS_NONE) handcrafted(&r);
#ifdef IQDB_HAVE_ZSTD
        if (codecs[c].c == IQDB_COMPRESS_ZSTD) bombs(&r);
#endif
        free(r.snap);
        free(r.wal);
    }
    /* an HNSW database: its graph section truncated and flipped like the rest (the graph's own
     * fields behind a valid checksum are tested by test_hnsw and the snapshot fuzz target) */
    build(&r, IQDB_COMPRESS_NONE, IQDB_INDEX_HNSW, "hnsw");
    try_open(&r, r.snap, r.snap_len, r.wal, r.wal_len, MUST_OPEN, "reference", 0);
    truncations_and_flips(&r);
    crafted_graph(&r);
    free(r.snap);
    free(r.wal);
    iqdb__io_set_default(NULL);
    printf("hostile inputs: %ld\n", inputs);
    assert_true(inputs >= 10000);
}

int main(void) {
    iqdbt_simd_gate();
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_hostile_files)};
    return cmocka_run_group_tests_name("hostile", tests, NULL, NULL);
}
