/*
 * snapshot.c — see snapshot.h for the design; docs/FORMAT.md for the bytes.
 *
 * Reader invariants: a length read from the file is compared with what remains of its section
 * (or the file) before it is used, in the form `len <= end - pos` that cannot overflow; a block
 * never decompresses into more than its declared raw length, which is at most IQDB__BLOCK_MAX and
 * within the section's declared raw length; the CRCs are checked when a section ends, so a
 * section is only trusted once all of it has been read.
 */
#include "persist/snapshot.h"

#include "persist/crc32c.h"

static int corrupt(const char *fmt, ...) IQDB_PRINTF(1, 2);
static int corrupt(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = iqdb__vfail(NULL, IQDB_CORRUPT_SNAPSHOT, fmt, ap);
    va_end(ap);
    return rc;
}

static int ioerr(int rc, const char *what, const char *path) {
    if (rc == IQDB_NOMEM) return iqdb__fail(NULL, rc, "out of memory");
    if (rc == IQDB_INTERRUPTED) return iqdb__fail(NULL, rc, "%s %s was interrupted", what, path);
    return iqdb__fail(NULL, rc, "%s %s failed (errno %d)", what, path, iqdb__io_last_errno());
}

/* ============================================================================================ */
/* Writing                                                                                      */
/* ============================================================================================ */

typedef struct writer {
    const iqdb__io *io;
    iqdb__file *f;
    iqdb__mem *mem;
    iqdb__codec cx;
    uint64_t pos;
    uint8_t *raw, *out;
    size_t fill, out_cap;
    iqdb__snap_entry cur;
    uint64_t done; /* raw bytes so far, over every section */
    int (*progress)(void *ud, uint64_t done);
    void *progress_ud;
} writer;

static int flush_block(writer *w) {
    if (!w->fill) return IQDB_OK;
    size_t n;
    IQDB_TRY(iqdb__codec_compress(&w->cx, w->raw, w->fill, w->out + IQDB__BLOCK_HDR,
                                  w->out_cap - IQDB__BLOCK_HDR, &n));
    iqdb__put32(w->out, (uint32_t)w->fill);
    iqdb__put32(w->out + 4, (uint32_t)n);
    IQDB_TRY(w->io->write_at(w->f, w->out, IQDB__BLOCK_HDR + n, w->pos));
    w->cur.stored_crc = iqdb__crc32c(w->cur.stored_crc, w->out, IQDB__BLOCK_HDR + n);
    w->cur.raw_crc = iqdb__crc32c(w->cur.raw_crc, w->raw, w->fill);
    w->pos += IQDB__BLOCK_HDR + n;
    w->cur.stored += IQDB__BLOCK_HDR + n;
    w->cur.raw += w->fill;
    w->done += w->fill;
    w->fill = 0;
    if (w->progress && w->progress(w->progress_ud, w->done)) return IQDB_INTERRUPTED;
    return IQDB_OK;
}

static int sink_write(void *ctx, const void *p, size_t n) {
    writer *w = ctx;
    const uint8_t *b = p;
    while (n) {
        size_t take = IQDB_MIN(n, IQDB__BLOCK_MAX - w->fill);
        memcpy(w->raw + w->fill, b, take);
        w->fill += take;
        b += take;
        n -= take;
        if (w->fill == IQDB__BLOCK_MAX) IQDB_TRY(flush_block(w));
    }
    return IQDB_OK;
}

static void put_params(uint8_t *b, const iqdb__params *p) {
    iqdb__put32(b, (uint32_t)p->index);
    iqdb__put32(b + 4, p->m);
    iqdb__put32(b + 8, p->ef_construction);
    iqdb__put32(b + 12, p->ef_search);
    iqdb__put32(b + 16, p->filter_widen);
    iqdb__put64(b + 20, p->seed);
    iqdb__put32(b + 28, p->n_lists);
    iqdb__put32(b + 32, p->n_probes);
    iqdb__put32(b + 36, p->train_sample);
    iqdb__put32(b + 40, (uint32_t)p->quant);
    iqdb__put32(b + 44, p->pq_m);
    iqdb__put32(b + 48, p->oversample);
    iqdb__put32(b + 52, p->quant_flags);
}

/* Writes section `id` through the block sink. */
static int write_section(writer *w, const iqdb__snap_src *src, uint32_t id) {
    memset(&w->cur, 0, sizeof w->cur);
    w->cur.id = id;
    w->cur.offset = w->pos;
    iqdb__sink sink = {sink_write, w};
    switch (id) {
    case IQDB__SEC_PARAMS: {
        uint8_t b[IQDB__PARAMS_LEN];
        put_params(b, &src->params);
        IQDB_TRY(sink_write(w, b, sizeof b));
        break;
    }
    case IQDB__SEC_KEYS: IQDB_TRY(iqdb__keydict_serialize(src->keys, &sink)); break;
    case IQDB__SEC_ROWS: IQDB_TRY(iqdb__store_serialize(src->store, &sink)); break;
    default: IQDB_TRY(iqdb__index_serialize(src->index, src->env, &sink)); break;
    }
    return flush_block(w);
}

static int write_header(writer *w, const iqdb__snap_src *src, const iqdb__snap_entry *sec) {
    uint8_t b[IQDB__SNAP_HDR + IQDB__SNAP_SECTIONS * IQDB__SNAP_ENTRY];
    memset(b, 0, sizeof b);
    uint8_t *t = b + IQDB__SNAP_HDR;
    for (uint32_t i = 0; i < IQDB__SNAP_SECTIONS; i++) {
        uint8_t *e = t + i * IQDB__SNAP_ENTRY;
        iqdb__put32(e, sec[i].id);
        iqdb__put64(e + 8, sec[i].offset);
        iqdb__put64(e + 16, sec[i].stored);
        iqdb__put64(e + 24, sec[i].raw);
        iqdb__put32(e + 32, sec[i].stored_crc);
        iqdb__put32(e + 36, sec[i].raw_crc);
    }
    memcpy(b, IQDB__SNAP_MAGIC, 8);
    iqdb__put32(b + 8, IQDB__FORMAT_VERSION);
    iqdb__put32(b + 12, IQDB__SNAP_HDR);
    iqdb__put32(b + 16, src->dim);
    iqdb__put32(b + 20, (uint32_t)src->metric);
    iqdb__put32(b + 24, (uint32_t)src->params.index);
    iqdb__put32(b + 28, (uint32_t)w->cx.codec);
    iqdb__put64(b + 32, src->generation);
    iqdb__put64(b + 40, src->lsn);
    iqdb__put32(b + 48, IQDB__SNAP_SECTIONS);
    iqdb__put32(b + 52, iqdb__crc32c(0, t, IQDB__SNAP_SECTIONS * IQDB__SNAP_ENTRY));
    iqdb__put32(b + 60, iqdb__crc32c(0, b, 60));
    return w->io->write_at(w->f, b, sizeof b, 0);
}

static int write_all(writer *w, const iqdb__snap_src *src) {
    iqdb__snap_entry sec[IQDB__SNAP_SECTIONS];
    w->pos = IQDB__SNAP_HDR + IQDB__SNAP_SECTIONS * IQDB__SNAP_ENTRY;
    for (uint32_t i = 0; i < IQDB__SNAP_SECTIONS; i++) {
        IQDB_TRY(write_section(w, src, i + 1));
        sec[i] = w->cur;
    }
    IQDB_TRY(write_header(w, src, sec));
    return w->io->sync(w->f) ? IQDB_IOERR_FSYNC : IQDB_OK;
}

int iqdb__snapshot_write(const iqdb__io *io, const char *path, const iqdb__snap_src *src, int codec,
                         int level, iqdb__mem *mem, uint64_t *bytes) {
    writer w;
    memset(&w, 0, sizeof w);
    w.io = io;
    w.mem = mem;
    w.progress = src->progress;
    w.progress_ud = src->progress_ud;
    iqdb__codec_init(&w.cx, codec, level, mem);
    w.out_cap = IQDB__BLOCK_HDR + iqdb__codec_bound(codec, IQDB__BLOCK_MAX);
    w.raw = iqdb__alloc(mem, IQDB__BLOCK_MAX);
    w.out = iqdb__alloc(mem, w.out_cap);
    int rc = w.raw && w.out ? IQDB_OK : IQDB_NOMEM;
    if (rc == IQDB_OK)
        rc = io->open(io, path, IQDB__IO_READ | IQDB__IO_WRITE | IQDB__IO_CREATE, &w.f);
    if (rc == IQDB_OK) rc = io->truncate(w.f, 0);
    if (rc == IQDB_OK) rc = write_all(&w, src);
    if (w.f) {
        int crc = io->close(w.f);
        if (rc == IQDB_OK) rc = crc;
    }
    iqdb__free(mem, w.raw, IQDB__BLOCK_MAX);
    iqdb__free(mem, w.out, w.out_cap);
    iqdb__codec_destroy(&w.cx);
    if (rc) {
        if (w.f) io->remove(io, path);
        return ioerr(rc, "writing the snapshot", path);
    }
    if (bytes) *bytes = w.pos;
    return IQDB_OK;
}

/* ============================================================================================ */
/* Reading                                                                                      */
/* ============================================================================================ */

static int read_exact(iqdb__snap_reader *r, void *p, size_t n, uint64_t off) {
    size_t got;
    int rc = r->io->read_at(r->f, p, n, off, &got);
    if (rc)
        return iqdb__fail(NULL, rc, "reading the snapshot failed (errno %d)",
                          iqdb__io_last_errno());
    return got == n ? IQDB_OK
                    : corrupt("snapshot: the file ended early (at offset %llu)",
                              (unsigned long long)(off + got));
}

static int check_header(iqdb__snap_reader *r, const uint8_t *h, uint32_t *n) {
    if (!iqdb__crc_ok(iqdb__get32(h + 60), iqdb__crc32c(0, h, 60)))
        return corrupt("snapshot: header checksum mismatch");
    uint32_t version = iqdb__get32(h + 8);
    if (version > IQDB__FORMAT_VERSION)
        return iqdb__fail(NULL, IQDB_FORMAT,
                          "snapshot: format version %u is newer than this library's (%u)", version,
                          IQDB__FORMAT_VERSION);
    r->dim = iqdb__get32(h + 16);
    uint32_t metric = iqdb__get32(h + 20), kind = iqdb__get32(h + 24), codec = iqdb__get32(h + 28);
    *n = iqdb__get32(h + 48);
    if (version == 0 || iqdb__get32(h + 12) != IQDB__SNAP_HDR || iqdb__get32(h + 56) != 0 ||
        r->dim == 0 || r->dim > IQDB_MAX_DIM || metric < IQDB_METRIC_L2 ||
        metric > IQDB_METRIC_HAMMING || kind < IQDB_INDEX_FLAT || kind > IQDB_INDEX_IVF ||
        codec > IQDB__CODEC_LZ4 || *n != IQDB__SNAP_SECTIONS)
        return corrupt("snapshot: header field out of range");
    if (!iqdb__codec_available((int)codec))
        return iqdb__fail(NULL, IQDB_UNSUPPORTED,
                          "snapshot is compressed with %s, which this build does not have",
                          iqdb__codec_name((int)codec));
    r->metric = (iqdb_metric)metric;
    r->version = version;
    r->params.index = (iqdb_index_kind)kind;
    r->codec = (int)codec;
    r->generation = iqdb__get64(h + 32);
    r->lsn = iqdb__get64(h + 40);
    return IQDB_OK;
}

static int check_table(iqdb__snap_reader *r, const uint8_t *t, uint32_t n, uint32_t table_crc) {
    if (!iqdb__crc_ok(table_crc, iqdb__crc32c(0, t, (size_t)n * IQDB__SNAP_ENTRY)))
        return corrupt("snapshot: section table checksum mismatch");
    uint64_t pos = IQDB__SNAP_HDR + (uint64_t)n * IQDB__SNAP_ENTRY;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *e = t + i * IQDB__SNAP_ENTRY;
        iqdb__snap_entry *s = &r->sec[i];
        s->id = iqdb__get32(e);
        s->offset = iqdb__get64(e + 8);
        s->stored = iqdb__get64(e + 16);
        s->raw = iqdb__get64(e + 24);
        s->stored_crc = iqdb__get32(e + 32);
        s->raw_crc = iqdb__get32(e + 36);
        if (s->id != i + 1 || iqdb__get32(e + 4) != 0 || s->offset != pos ||
            s->stored > r->size - pos)
            return corrupt("snapshot: section %u is misplaced", i + 1);
        pos += s->stored;
    }
    if (pos != r->size)
        return corrupt("snapshot: %llu stray bytes at the end",
                       (unsigned long long)(r->size - pos));
    return IQDB_OK;
}

static int alloc_buffers(iqdb__snap_reader *r) {
    uint64_t max_raw = 0;
    for (uint32_t i = 0; i < IQDB__SNAP_SECTIONS; i++) max_raw = IQDB_MAX(max_raw, r->sec[i].raw);
    size_t raw_cap = (size_t)IQDB_MIN(max_raw, (uint64_t)IQDB__BLOCK_MAX);
    iqdb__codec_init(&r->cx, r->codec, 0, r->mem);
    r->raw = iqdb__alloc(r->mem, raw_cap ? raw_cap : 1);
    r->stored = iqdb__alloc(r->mem, iqdb__codec_bound(r->codec, raw_cap) + 1);
    return r->raw && r->stored ? IQDB_OK : iqdb__fail(NULL, IQDB_NOMEM, "out of memory");
}

/* A stream over one section's blocks. */
typedef struct secr {
    iqdb__snap_reader *r;
    const iqdb__snap_entry *e;
    uint64_t pos, end, raw_seen;
    size_t blen, bpos;
    uint32_t scrc, rcrc;
} secr;

static void secr_init(secr *s, iqdb__snap_reader *r, uint32_t id) {
    memset(s, 0, sizeof *s);
    s->r = r;
    s->e = &r->sec[id - 1];
    s->pos = s->e->offset;
    s->end = s->e->offset + s->e->stored;
}

static int next_block(secr *s) {
    iqdb__snap_reader *r = s->r;
    uint8_t h[IQDB__BLOCK_HDR];
    if (s->end - s->pos < IQDB__BLOCK_HDR)
        return corrupt("snapshot section %u ends early", s->e->id);
    IQDB_TRY(read_exact(r, h, sizeof h, s->pos));
    uint32_t raw = iqdb__get32(h), stored = iqdb__get32(h + 4);
    if (raw == 0 || raw > IQDB__BLOCK_MAX || raw > s->e->raw - s->raw_seen ||
        stored > s->end - s->pos - IQDB__BLOCK_HDR || stored > iqdb__codec_bound(r->codec, raw) ||
        (r->codec == IQDB__CODEC_NONE && stored != raw))
        return corrupt("snapshot section %u: bad block header at offset %llu", s->e->id,
                       (unsigned long long)s->pos);
    uint8_t *dst = r->codec == IQDB__CODEC_NONE ? r->raw : r->stored;
    IQDB_TRY(read_exact(r, dst, stored, s->pos + IQDB__BLOCK_HDR));
    s->scrc = iqdb__crc32c(s->scrc, h, sizeof h);
    s->scrc = iqdb__crc32c(s->scrc, dst, stored);
    if (r->codec != IQDB__CODEC_NONE) {
        int rc = iqdb__codec_decompress(&r->cx, r->stored, stored, r->raw, raw);
        if (rc == IQDB_NOMEM) return iqdb__fail(NULL, rc, "out of memory");
        if (rc)
            return corrupt("snapshot section %u: a %s block does not decompress to %u bytes",
                           s->e->id, iqdb__codec_name(r->codec), raw);
    }
    s->rcrc = iqdb__crc32c(s->rcrc, r->raw, raw);
    s->raw_seen += raw;
    s->blen = raw;
    s->bpos = 0;
    s->pos += IQDB__BLOCK_HDR + stored;
    return IQDB_OK;
}

static int secr_read(void *ctx, void *p, size_t n) {
    secr *s = ctx;
    uint8_t *b = p;
    while (n) {
        if (s->bpos == s->blen) {
            if (s->pos == s->end) return IQDB_CORRUPT; /* the content wants more than there is */
            IQDB_TRY(next_block(s));
        }
        size_t take = IQDB_MIN(n, s->blen - s->bpos);
        memcpy(b, s->r->raw + s->bpos, take);
        s->bpos += take;
        b += take;
        n -= take;
    }
    return IQDB_OK;
}

static int secr_finish(secr *s) {
    if (s->bpos != s->blen || s->pos != s->end || s->raw_seen != s->e->raw)
        return corrupt("snapshot section %u: content and length disagree", s->e->id);
    if (!iqdb__crc_ok(s->e->stored_crc, s->scrc) || !iqdb__crc_ok(s->e->raw_crc, s->rcrc))
        return corrupt("snapshot section %u: checksum mismatch", s->e->id);
    return IQDB_OK;
}

/* Maps a module's bare IQDB_CORRUPT to the snapshot code with a message; keeps the others. */
static int section_rc(int rc, uint32_t id) {
    if (IQDB_PRIMARY(rc) == IQDB_CORRUPT && rc != IQDB_CORRUPT_SNAPSHOT)
        return corrupt("snapshot section %u: malformed content", id);
    if (rc == IQDB_NOMEM) return iqdb__fail(NULL, rc, "out of memory");
    return rc;
}

static int read_params(iqdb__snap_reader *r) {
    secr s;
    secr_init(&s, r, IQDB__SEC_PARAMS);
    uint8_t b[IQDB__PARAMS_LEN];
    memset(b, 0, sizeof b); /* a 40-byte section (written before quantizers) has no quantizer */
    if (r->sec[0].raw != IQDB__PARAMS_LEN && r->sec[0].raw != IQDB__PARAMS_LEN_NOQUANT)
        return corrupt("snapshot: parameters section length");
    IQDB_TRY(section_rc(secr_read(&s, b, (size_t)r->sec[0].raw), IQDB__SEC_PARAMS));
    IQDB_TRY(secr_finish(&s));
    if (iqdb__get32(b) != (uint32_t)r->params.index)
        return corrupt("snapshot: the parameters name another index kind");
    r->params.m = iqdb__get32(b + 4);
    r->params.ef_construction = iqdb__get32(b + 8);
    r->params.ef_search = iqdb__get32(b + 12);
    r->params.filter_widen = iqdb__get32(b + 16);
    r->params.seed = iqdb__get64(b + 20);
    r->params.n_lists = iqdb__get32(b + 28);
    r->params.n_probes = iqdb__get32(b + 32);
    r->params.train_sample = iqdb__get32(b + 36);
    r->params.quant = (iqdb_quant)iqdb__get32(b + 40); /* range-checked by the caller */
    r->params.pq_m = iqdb__get32(b + 44);
    r->params.oversample = iqdb__get32(b + 48);
    r->params.quant_flags = iqdb__get32(b + 52);
    return IQDB_OK;
}

static int open_checked(iqdb__snap_reader *r, const char *path) {
    int rc = r->io->open(r->io, path, IQDB__IO_READ, &r->f);
    if (rc) return ioerr(rc, "opening the snapshot", path);
    rc = r->io->size(r->f, &r->size);
    if (rc) return ioerr(rc, "reading the size of", path);
    uint8_t h[IQDB__SNAP_HDR];
    size_t got;
    rc = r->io->read_at(r->f, h, sizeof h, 0, &got);
    if (rc) return ioerr(rc, "reading", path);
    if (got < 8 || memcmp(h, IQDB__SNAP_MAGIC, 8) != 0)
        return iqdb__fail(NULL, IQDB_FORMAT, "%s is not an iqdb snapshot", path);
    if (got < sizeof h) return corrupt("snapshot: the header is cut short");
    uint32_t n = 0;
    IQDB_TRY(check_header(r, h, &n));
    if (r->size - IQDB__SNAP_HDR < (uint64_t)n * IQDB__SNAP_ENTRY)
        return corrupt("snapshot: the section table is cut short");
    uint8_t t[IQDB__SNAP_SECTIONS * IQDB__SNAP_ENTRY];
    IQDB_TRY(read_exact(r, t, (size_t)n * IQDB__SNAP_ENTRY, IQDB__SNAP_HDR));
    IQDB_TRY(check_table(r, t, n, iqdb__get32(h + 52)));
    IQDB_TRY(alloc_buffers(r));
    return read_params(r);
}

int iqdb__snapshot_open(iqdb__snap_reader *r, const iqdb__io *io, const char *path,
                        iqdb__mem *mem) {
    memset(r, 0, sizeof *r);
    r->io = io;
    r->mem = mem;
    int rc = open_checked(r, path);
    if (rc) iqdb__snapshot_close(r);
    return rc;
}

static int load_rows(iqdb__snap_reader *r, iqdb__keydict *keys, iqdb__store *store,
                     const iqdb__env *env) {
    secr s;
    secr_init(&s, r, IQDB__SEC_ROWS);
    iqdb__source src = {secr_read, &s};
    IQDB_TRY(
        section_rc(iqdb__store_load(store, &src, env->kern->pair[IQDB__OP_DOT]), IQDB__SEC_ROWS));
    IQDB_TRY(secr_finish(&s));
    for (size_t slot = 0; slot < store->n_slots; slot++)
        if (store->live[slot] &&
            iqdb__meta_blob_check(store->meta[slot], store->meta_len[slot], keys->n))
            return corrupt("snapshot: the metadata of slot %zu is malformed", slot);
    return IQDB_OK;
}

int iqdb__snapshot_load(iqdb__snap_reader *r, iqdb__keydict *keys, iqdb__store *store,
                        iqdb__index *index, const iqdb__env *env) {
    secr s;
    secr_init(&s, r, IQDB__SEC_KEYS);
    iqdb__source src = {secr_read, &s};
    IQDB_TRY(section_rc(iqdb__keydict_load(keys, &src), IQDB__SEC_KEYS));
    IQDB_TRY(secr_finish(&s));
    IQDB_TRY(load_rows(r, keys, store, env));
    secr_init(&s, r, IQDB__SEC_INDEX);
    IQDB_TRY(section_rc(iqdb__index_load(index, env, &src), IQDB__SEC_INDEX));
    return secr_finish(&s);
}

int iqdb__snapshot_verify(iqdb__snap_reader *r) {
    for (uint32_t id = 1; id <= IQDB__SNAP_SECTIONS; id++) {
        secr s;
        secr_init(&s, r, id);
        while (s.pos != s.end) IQDB_TRY(next_block(&s));
        s.bpos = s.blen;
        IQDB_TRY(secr_finish(&s));
    }
    return IQDB_OK;
}

void iqdb__snapshot_close(iqdb__snap_reader *r) {
    if (r->f) r->io->close(r->f);
    size_t raw_cap = 0;
    for (uint32_t i = 0; i < IQDB__SNAP_SECTIONS; i++)
        raw_cap = (size_t)IQDB_MAX(raw_cap, IQDB_MIN(r->sec[i].raw, (uint64_t)IQDB__BLOCK_MAX));
    iqdb__free(r->mem, r->raw, raw_cap ? raw_cap : 1);
    iqdb__free(r->mem, r->stored, iqdb__codec_bound(r->codec, raw_cap) + 1);
    iqdb__codec_destroy(&r->cx);
    memset(r, 0, sizeof *r);
}
