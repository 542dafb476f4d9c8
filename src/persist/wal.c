/*
 * wal.c — see wal.h; the recovery rules are docs/FORMAT.md's.
 *
 * Why records carry a "synced LSN": with group commit (and under PERIODIC / NEVER) several
 * records are written before one fsync, and a power loss may keep a later one and lose an
 * earlier one. "A bad record followed by valid ones is corruption" would then refuse to open a
 * database after an ordinary crash. The synced LSN settles it: a record that claims the bad
 * one's LSN was already durable when it was written proves the bad record is damage to synced
 * data (corruption); without such a claim, nothing after the bad record was ever synced, and it
 * is a torn tail.
 */
#include "persist/wal.h"

#include "persist/crc32c.h"
#include "store/keys.h"

static int corrupt(const char *fmt, ...) IQDB_PRINTF(1, 2);
static int corrupt(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = iqdb__vfail(NULL, IQDB_CORRUPT_WAL, fmt, ap);
    va_end(ap);
    return rc;
}

static int ioerr(int rc, const char *what) {
    if (rc == IQDB_NOMEM) return iqdb__fail(NULL, rc, "out of memory");
    return iqdb__fail(NULL, rc, "%s the WAL failed (errno %d)", what, iqdb__io_last_errno());
}

static uint64_t rec_size(uint64_t len) { return IQDB__REC_HDR + ((len + 7) & ~(uint64_t)7); }

static int ensure(iqdb__wal *w, size_t need) {
    if (need <= w->cap) return IQDB_OK;
    size_t ncap = w->cap ? w->cap : 4096;
    while (ncap < need) ncap *= 2;
    uint8_t *b = iqdb__realloc(w->mem, w->buf, w->cap, ncap);
    if (!b) return IQDB_NOMEM;
    w->buf = b;
    w->cap = ncap;
    return IQDB_OK;
}

/* Buffers up to this size are kept for the next record; a larger one (a big batch) is freed
 * once written, rather than holding the batch's size for the handle's life. */
#define KEEP_BYTES ((size_t)1 << 20)

void iqdb__wal_trim(iqdb__wal *w) {
    if (w->cap > KEEP_BYTES) iqdb__wal_destroy(w);
}

void iqdb__wal_destroy(iqdb__wal *w) {
    iqdb__free(w->mem, w->buf, w->cap);
    w->buf = NULL;
    w->cap = 0;
}

/* ============================================================================================ */
/* Writing                                                                                      */
/* ============================================================================================ */

static void seal(iqdb__wal *w, uint64_t lsn, uint64_t synced, uint32_t len, uint8_t type) {
    uint8_t *h = w->buf;
    size_t total = (size_t)rec_size(len);
    memset(w->buf + IQDB__REC_HDR + len, 0, total - IQDB__REC_HDR - len);
    iqdb__put32(h + 4, iqdb__crc32c(0, h + IQDB__REC_HDR, len));
    iqdb__put64(h + 8, lsn);
    iqdb__put64(h + 16, w->generation);
    iqdb__put64(h + 24, synced);
    iqdb__put32(h + 32, len);
    h[36] = type;
    h[37] = h[38] = h[39] = 0;
    iqdb__put32(h, iqdb__crc32c(0, h + 4, IQDB__REC_HDR - 4));
    w->len = total;
    w->rec_lsn = lsn;
}

int iqdb__wal_build_upsert(iqdb__wal *w, uint64_t lsn, uint64_t synced_lsn, size_t n, uint32_t dim,
                           const uint64_t *ids, uint8_t *const *id_keys, const float *vecs,
                           uint8_t *const *blobs, const uint32_t *blob_lens,
                           const iqdb__keydict *keys, uint32_t first_key) {
    uint64_t len = 12, row = 12 + (uint64_t)dim * 4; /* a keyed row: 8 + key + the same */
    for (size_t k = first_key; k < keys->n; k++) len += 4 + (uint64_t)keys->lens[k];
    for (size_t i = 0; i < n && len <= IQDB__REC_MAX; i++) {
        len += row + blob_lens[i];
        if (id_keys) len = len + iqdb__key_block_size(id_keys[i]) - 8; /* len >= 12: no wrap */
    }
    if (len > IQDB__REC_MAX || n > UINT32_MAX - 2)
        return iqdb__fail(NULL, IQDB_INVALID, "the batch needs a WAL record over 1 GiB");
    if (ensure(w, (size_t)rec_size(len))) return iqdb__fail(NULL, IQDB_NOMEM, "out of memory");
    uint8_t *p = w->buf + IQDB__REC_HDR;
    iqdb__put32(p, (uint32_t)n);
    iqdb__put32(p + 4, first_key);
    iqdb__put32(p + 8, (uint32_t)(keys->n - first_key));
    p += 12;
    for (size_t k = first_key; k < keys->n; k++) {
        iqdb__put32(p, keys->lens[k]);
        memcpy(p + 4, keys->names[k], keys->lens[k]);
        p += 4 + keys->lens[k];
    }
    for (size_t i = 0; i < n; i++) {
        if (id_keys) {
            uint32_t kl = iqdb__key_block_len(id_keys[i]);
            iqdb__put32(p, kl);
            memcpy(p + 4, iqdb__key_block_bytes(id_keys[i]), kl);
            /* the key takes the u64 id's place; (p + 4 + kl) - 8 stays inside the buffer */
            p = p + 4 + kl - 8;
        } else {
            iqdb__put64(p, ids[i]);
        }
        iqdb__put32(p + 8, blob_lens[i]);
        iqdb__put_f32s(p + 12, vecs + i * dim, dim);
        p += row;
        if (blob_lens[i]) memcpy(p, blobs[i], blob_lens[i]);
        p += blob_lens[i];
    }
    seal(w, lsn, synced_lsn, (uint32_t)len, id_keys ? IQDB__REC_UPSERT_KEY : IQDB__REC_UPSERT);
    return IQDB_OK;
}

int iqdb__wal_build_delete(iqdb__wal *w, uint64_t lsn, uint64_t synced_lsn, uint64_t id) {
    if (ensure(w, (size_t)rec_size(8))) return iqdb__fail(NULL, IQDB_NOMEM, "out of memory");
    iqdb__put64(w->buf + IQDB__REC_HDR, id);
    seal(w, lsn, synced_lsn, 8, IQDB__REC_DELETE);
    return IQDB_OK;
}

int iqdb__wal_build_delete_key(iqdb__wal *w, uint64_t lsn, uint64_t synced_lsn, const uint8_t *key,
                               uint32_t len) {
    if (ensure(w, (size_t)rec_size(len))) return iqdb__fail(NULL, IQDB_NOMEM, "out of memory");
    memcpy(w->buf + IQDB__REC_HDR, key, len);
    seal(w, lsn, synced_lsn, len, IQDB__REC_DELETE_KEY);
    return IQDB_OK;
}

int iqdb__wal_append(iqdb__wal *w) {
    int rc = w->io->write_at(w->f, w->buf, w->len, w->end);
    iqdb__wal_trim(w);
    if (rc) {
        w->io->truncate(w->f, w->end); /* best effort: `end` stays the truth either way */
        return ioerr(rc, "appending to");
    }
    w->end += w->len;
    return IQDB_OK;
}

int iqdb__wal_reset(iqdb__wal *w, uint64_t generation, uint64_t start_lsn) {
    uint8_t h[IQDB__WAL_HDR];
    memset(h, 0, sizeof h);
    memcpy(h, IQDB__WAL_MAGIC, 8);
    iqdb__put32(h + 8, IQDB__FORMAT_VERSION);
    iqdb__put32(h + 12, IQDB__WAL_HDR);
    iqdb__put64(h + 16, generation);
    iqdb__put64(h + 24, start_lsn);
    iqdb__put32(h + 36, iqdb__crc32c(0, h, 36));
    /* Empty and sync first: a crash then leaves either the old WAL or at most a header's worth
     * of bytes, never a new header in front of old records. */
    int rc = w->io->truncate(w->f, 0);
    if (rc == IQDB_OK && w->io->sync(w->f)) rc = IQDB_IOERR_FSYNC;
    if (rc == IQDB_OK) rc = w->io->write_at(w->f, h, sizeof h, 0);
    if (rc == IQDB_OK && w->io->sync(w->f)) rc = IQDB_IOERR_FSYNC;
    if (rc) return ioerr(rc, "resetting");
    w->generation = generation;
    w->start_lsn = start_lsn;
    w->version = IQDB__FORMAT_VERSION;
    w->end = IQDB__WAL_HDR;
    return IQDB_OK;
}

/* ============================================================================================ */
/* Parsing payloads                                                                             */
/* ============================================================================================ */

int iqdb__wal_parse_upsert(const uint8_t *p, uint32_t len, uint32_t dim, int keyed,
                           iqdb__upsert_view *v) {
    const uint8_t *end = p + len;
    v->keyed = keyed;
    if (len < 12) return IQDB_CORRUPT;
    v->n = iqdb__get32(p);
    v->first_key = iqdb__get32(p + 4);
    v->n_keys = iqdb__get32(p + 8);
    v->dim = dim;
    if (v->n == 0 || v->n > UINT32_MAX - 2 || v->n_keys > UINT32_MAX - 2 - v->first_key)
        return IQDB_CORRUPT;
    p += 12;
    v->keys = p;
    for (uint32_t k = 0; k < v->n_keys; k++) {
        if ((size_t)(end - p) < 4) return IQDB_CORRUPT;
        uint32_t kl = iqdb__get32(p);
        if (kl == 0 || kl > IQDB_MAX_KEY_LEN || kl > (size_t)(end - p) - 4) return IQDB_CORRUPT;
        p += 4 + kl;
    }
    v->rows = p;
    size_t fixed = 12 + (size_t)dim * 4;
    for (uint32_t i = 0; i < v->n; i++) {
        if (keyed) { /* u32 key length and the key stand where the u64 id is */
            if ((size_t)(end - p) < 4) return IQDB_CORRUPT;
            uint32_t kl = iqdb__get32(p);
            if (kl == 0 || kl > IQDB_MAX_ID_KEY_LEN || kl > (size_t)(end - p) - 4)
                return IQDB_CORRUPT;
            p = p + 4 + kl - 8;
        }
        if ((size_t)(end - p) < fixed) return IQDB_CORRUPT;
        uint32_t bl = iqdb__get32(p + 8);
        if (bl > IQDB__META_MAX || bl > (size_t)(end - p) - fixed) return IQDB_CORRUPT;
        p += fixed + bl;
    }
    return p == end ? IQDB_OK : IQDB_CORRUPT;
}

const uint8_t *iqdb__wal_next_key(const uint8_t *at, const char **key, uint32_t *len) {
    *len = iqdb__get32(at);
    *key = (const char *)at + 4;
    return at + 4 + *len;
}

const uint8_t *iqdb__wal_next_row(const uint8_t *at, uint32_t dim, uint64_t *id,
                                  const uint8_t **vec, const uint8_t **blob, uint32_t *blob_len) {
    *id = iqdb__get64(at);
    *blob_len = iqdb__get32(at + 8);
    *vec = at + 12;
    *blob = at + 12 + (size_t)dim * 4;
    return *blob + *blob_len;
}

const uint8_t *iqdb__wal_next_key_row(const uint8_t *at, uint32_t dim, const uint8_t **key,
                                      uint32_t *key_len, const uint8_t **vec, const uint8_t **blob,
                                      uint32_t *blob_len) {
    uint64_t unused;
    *key_len = iqdb__get32(at);
    *key = at + 4;
    return iqdb__wal_next_row(at + 4 + *key_len - 8, dim, &unused, vec, blob, blob_len);
}

/* ============================================================================================ */
/* Reading records                                                                              */
/* ============================================================================================ */

typedef struct hdr {
    uint32_t pcrc, len;
    uint64_t lsn, gen, synced;
    uint8_t type;
} hdr;

/* Decodes a record header; 0 when its own CRC and reserved bytes check. */
static int parse_hdr(const uint8_t *h, hdr *out) {
    if (!iqdb__crc_ok(iqdb__get32(h), iqdb__crc32c(0, h + 4, IQDB__REC_HDR - 4))) return -1;
    out->pcrc = iqdb__get32(h + 4);
    out->lsn = iqdb__get64(h + 8);
    out->gen = iqdb__get64(h + 16);
    out->synced = iqdb__get64(h + 24);
    out->len = iqdb__get32(h + 32);
    out->type = h[36];
    return h[37] | h[38] | h[39] ? -1 : 0;
}

static int read_at(iqdb__wal *w, void *p, size_t n, uint64_t off) {
    size_t got;
    int rc = w->io->read_at(w->f, p, n, off, &got);
    if (rc) return ioerr(rc, "reading");
    return got == n ? IQDB_OK : corrupt("the WAL changed size while it was read");
}

/* Reads the record at `pos`: 1 valid (payload in w->buf), 0 invalid, < 0 an error code. */
static int read_record(iqdb__wal *w, uint64_t pos, uint64_t size, uint64_t expect, hdr *h) {
    uint8_t b[IQDB__REC_HDR];
    if (size - pos < IQDB__REC_HDR) return 0;
    int rc = read_at(w, b, sizeof b, pos);
    if (rc) return -rc;
    if (parse_hdr(b, h) || h->gen != w->generation || h->lsn != expect || h->len > IQDB__REC_MAX ||
        rec_size(h->len) > size - pos || h->type < IQDB__REC_UPSERT ||
        h->type > IQDB__REC_DELETE_KEY)
        return 0;
    if (ensure(w, h->len ? h->len : 1)) return -iqdb__fail(NULL, IQDB_NOMEM, "out of memory");
    rc = read_at(w, w->buf, h->len, pos + IQDB__REC_HDR);
    if (rc) return -rc;
    return iqdb__crc_ok(h->pcrc, iqdb__crc32c(0, w->buf, h->len)) ? 1 : 0;
}

/* After an invalid record at `pos`: is there a later record header proving `expect` had been
 * synced? Reads the rest of the file once, in chunks. */
static int scan_for_proof(iqdb__wal *w, uint64_t pos, uint64_t size, uint64_t expect) {
    enum { CHUNK = 1 << 16 };
    uint8_t *buf = iqdb__alloc(w->mem, CHUNK + IQDB__REC_HDR);
    if (!buf) return iqdb__fail(NULL, IQDB_NOMEM, "out of memory");
    int rc = IQDB_OK;
    for (uint64_t base = pos + 8; rc == IQDB_OK && base < size && size - base >= IQDB__REC_HDR;
         base += CHUNK) {
        size_t want = (size_t)IQDB_MIN((uint64_t)CHUNK + IQDB__REC_HDR, size - base);
        rc = read_at(w, buf, want, base);
        for (size_t o = 0; rc == IQDB_OK && o < CHUNK && o + IQDB__REC_HDR <= want; o += 8) {
            hdr h;
            if (iqdb__get64(buf + o + 16) != w->generation || parse_hdr(buf + o, &h)) continue;
            if (h.synced >= expect)
                rc = corrupt("WAL record %llu at offset %llu is damaged, but the record at offset "
                             "%llu was written after it had been synced",
                             (unsigned long long)expect, (unsigned long long)pos,
                             (unsigned long long)(base + o));
        }
    }
    iqdb__free(w->mem, buf, CHUNK + IQDB__REC_HDR);
    return rc;
}

/* Header check; returns 1 valid, 0 invalid, or an error code (negated). */
static int read_header(iqdb__wal *w, uint64_t size) {
    uint8_t h[IQDB__WAL_HDR];
    if (size < IQDB__WAL_HDR) return 0;
    int rc = read_at(w, h, sizeof h, 0);
    if (rc) return -rc;
    if (memcmp(h, IQDB__WAL_MAGIC, 8) || !iqdb__crc_ok(iqdb__get32(h + 36), iqdb__crc32c(0, h, 36)))
        return 0;
    if (iqdb__get32(h + 8) > IQDB__FORMAT_VERSION)
        return -iqdb__fail(NULL, IQDB_FORMAT, "the WAL's format version %u is newer than %u",
                           iqdb__get32(h + 8), IQDB__FORMAT_VERSION);
    if (iqdb__get32(h + 8) == 0 || iqdb__get32(h + 12) != IQDB__WAL_HDR || iqdb__get32(h + 32))
        return 0;
    w->generation = iqdb__get64(h + 16);
    w->start_lsn = iqdb__get64(h + 24);
    w->version = iqdb__get32(h + 8);
    return 1;
}

/* Applies valid records from the start; stops at the first invalid one. *pos, *expect: where. */
static int replay(iqdb__wal *w, uint64_t size, iqdb__apply_fn apply, void *ctx, uint64_t *pos,
                  uint64_t *expect, uint64_t *count) {
    *pos = IQDB__WAL_HDR;
    *expect = w->start_lsn;
    for (;;) {
        hdr h = {0, 0, 0, 0, 0, 0};
        int v = read_record(w, *pos, size, *expect, &h);
        if (v < 0) return -v;
        if (v == 0) return IQDB_OK;
        if (apply) {
            iqdb__rec r = {h.type, h.lsn, w->buf, h.len};
            IQDB_TRY(apply(ctx, &r));
        }
        *pos += rec_size(h.len);
        (*expect)++;
        (*count)++;
    }
}

int iqdb__wal_recover(iqdb__wal *w, uint64_t snap_gen, uint64_t snap_lsn, int read_only,
                      iqdb__apply_fn apply, void *ctx, iqdb__recovery *out) {
    memset(out, 0, sizeof *out);
    out->last_lsn = snap_lsn;
    uint64_t size;
    int rc = w->io->size(w->f, &size);
    if (rc) return ioerr(rc, "sizing");
    int hv = read_header(w, size);
    if (hv < 0) return -hv;
    w->end = IQDB__WAL_HDR;
    if (hv == 0) {
        if (size > IQDB__WAL_HDR) return corrupt("the WAL header is damaged");
        /* Records are appended only after the header is synced: this is an interrupted reset
         * or creation, holding nothing. */
        w->generation = snap_gen;
        w->start_lsn = snap_lsn + 1;
        out->need_reset = 1;
        return IQDB_OK;
    }
    uint64_t pos, expect;
    if (w->generation + 1 == snap_gen) {
        /* The snapshot's checkpoint crashed before resetting the WAL: all of it is included. */
        IQDB_TRY(replay(w, size, NULL, NULL, &pos, &expect, &out->records));
        if (expect - 1 > snap_lsn)
            return corrupt("the previous generation's WAL has records the snapshot lacks");
        out->records = 0;
        out->need_reset = 1;
        return IQDB_OK;
    }
    if (read_only && w->generation == snap_gen + 1)
        return iqdb__fail(NULL, IQDB_BUSY, "a checkpoint is under way; open again");
    if (w->generation != snap_gen || w->start_lsn != snap_lsn + 1)
        return corrupt("the WAL (generation %llu) does not belong to the snapshot (generation "
                       "%llu)",
                       (unsigned long long)w->generation, (unsigned long long)snap_gen);
    IQDB_TRY(replay(w, size, apply, ctx, &pos, &expect, &out->records));
    if (pos < size) {
        IQDB_TRY(scan_for_proof(w, pos, size, expect));
        out->truncated = 1;
        if (!read_only) {
            rc = w->io->truncate(w->f, pos);
            if (rc == IQDB_OK && w->io->sync(w->f)) rc = IQDB_IOERR_FSYNC;
            if (rc) return ioerr(rc, "cutting the torn tail of");
        }
    }
    w->end = pos;
    out->last_lsn = expect - 1;
    return IQDB_OK;
}

int iqdb__wal_has_records(iqdb__wal *w, int *has) {
    *has = 0; /* set on every path (the amalgamation's -O2 sees through the call) */
    uint64_t size;
    int rc = w->io->size(w->f, &size);
    if (rc) return ioerr(rc, "sizing");
    *has = size > IQDB__WAL_HDR;
    return IQDB_OK;
}

int iqdb__wal_verify(iqdb__wal *w) {
    uint64_t pos, expect, n = 0, gen = w->generation, start = w->start_lsn;
    int hv = read_header(w, w->end);
    if (hv < 0) return -hv;
    if (hv == 0 || w->generation != gen || w->start_lsn != start) {
        w->generation = gen;
        w->start_lsn = start;
        return corrupt("the WAL header is damaged");
    }
    IQDB_TRY(replay(w, w->end, NULL, NULL, &pos, &expect, &n));
    if (pos != w->end)
        return corrupt("WAL record %llu at offset %llu fails its checksum",
                       (unsigned long long)expect, (unsigned long long)pos);
    return IQDB_OK;
}
