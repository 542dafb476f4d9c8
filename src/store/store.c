/*
 * store.c — see store.h.
 */
#include "store/store.h"

#include "os/vmap.h"
#include "persist/format.h"
#include "store/keys.h"

/* Rows per chunk: about 1 MiB of vectors, at least 64 rows and at most 65536. Small enough that
 * a growing database wastes little, large enough that the chunk table stays tiny and a scan
 * runs long sequential stretches. */
static uint32_t pick_chunk_shift(uint32_t stride) {
    size_t row_bytes = (size_t)stride * sizeof(float);
    uint32_t shift = 6;
    while (shift < 16 && ((size_t)2 << shift) * row_bytes <= ((size_t)1 << 20)) shift++;
    return shift;
}

void iqdb__store_init(iqdb__store *s, iqdb__mem *mem, uint32_t dim) {
    memset(s, 0, sizeof *s);
    s->mem = mem;
    s->dim = dim;
    s->stride = (dim + 15u) & ~15u;
    s->chunk_shift = pick_chunk_shift(s->stride);
    iqdb__idmap_init(&s->map, mem);
    iqdb__idmap_init(&s->kmap, mem);
}

static void free_chunk(iqdb__store *s, float *c) {
    if (s->vmap)
        iqdb__vmap_unmap(s->vmap, c, iqdb__store_chunk_bytes(s));
    else
        iqdb__free_aligned(s->mem, c, iqdb__store_chunk_bytes(s));
}

int iqdb__store_use_vmap(iqdb__store *s, iqdb__vmap *v) {
    if (s->n_chunks || s->no_vectors || s->vmap) {
        iqdb__vmap_close(v);
        return iqdb__fail(NULL, IQDB_MISUSE, "a vector file needs an empty store");
    }
    /* Larger chunks than on the heap: each is one mapping, and Linux allows 65,530 per process
     * by default (vm.max_map_count) — 1 MiB chunks would reach it at 64 GiB of vectors, 16 MiB
     * chunks at 1 TiB. The store is empty, so the slot -> chunk arithmetic may still change. */
    const size_t row_bytes = (size_t)s->stride * sizeof(float);
    while (s->chunk_shift < 16 && ((size_t)2 << s->chunk_shift) * row_bytes <= ((size_t)16 << 20))
        s->chunk_shift++;
    size_t g = iqdb__vmap_granularity(), b = iqdb__store_chunk_bytes(s);
    s->vmap = v;
    s->chunk_span = (b + g - 1) / g * g;
    return IQDB_OK;
}

#define SLOT_BYTES                                                                 \
    (sizeof(uint64_t) * 2 + sizeof(float) + sizeof(uint8_t *) + sizeof(uint32_t) + \
     sizeof(uint8_t) + sizeof(uint32_t))

void iqdb__store_destroy(iqdb__store *s) {
    for (size_t i = 0; i < s->n_slots; i++)
        if (s->live[i]) {
            iqdb__free(s->mem, s->meta[i], s->meta_len[i]);
            if (s->keys) iqdb__key_block_free(s->mem, s->keys[i]);
        }
    iqdb__free(s->mem, s->keys, s->keys ? s->slots_cap * sizeof *s->keys : 0);
    iqdb__idmap_destroy(&s->kmap);
    for (size_t c = 0; c < s->n_chunks; c++) free_chunk(s, s->chunks[c]);
    iqdb__free(s->mem, s->chunks, s->chunks_cap * sizeof *s->chunks);
    iqdb__vmap_close(s->vmap);
    iqdb__free(s->mem, s->ids, s->slots_cap * sizeof *s->ids);
    iqdb__free(s->mem, s->seqs, s->slots_cap * sizeof *s->seqs);
    iqdb__free(s->mem, s->sqnorm, s->slots_cap * sizeof *s->sqnorm);
    iqdb__free(s->mem, s->meta, s->slots_cap * sizeof *s->meta);
    iqdb__free(s->mem, s->meta_len, s->slots_cap * sizeof *s->meta_len);
    iqdb__free(s->mem, s->live, s->slots_cap * sizeof *s->live);
    iqdb__free(s->mem, s->free_list, s->slots_cap * sizeof *s->free_list);
    iqdb__free_aligned(s->mem, s->staging, s->staging ? (size_t)s->stride * sizeof(float) : 0);
    iqdb__idmap_destroy(&s->map);
    memset(s, 0, sizeof *s);
}

/* Grows every per-slot column to `ncap`: all new arrays are allocated before any old one is
 * released, so a failure leaves the store exactly as it was. */
static int grow_columns(iqdb__store *s, size_t ncap) {
    void *n[8] = {0};
    const size_t sz[8] = {sizeof *s->ids,       sizeof *s->seqs,     sizeof *s->sqnorm,
                          sizeof *s->meta,      sizeof *s->meta_len, sizeof *s->live,
                          sizeof *s->free_list, sizeof *s->keys};
    void **old[8] = {(void **)&s->ids,       (void **)&s->seqs,     (void **)&s->sqnorm,
                     (void **)&s->meta,      (void **)&s->meta_len, (void **)&s->live,
                     (void **)&s->free_list, (void **)&s->keys};
    const int nc = s->keys ? 8 : 7; /* the key column exists once a key was stored */
    for (int i = 0; i < nc; i++) {
        n[i] = iqdb__calloc(s->mem, ncap, sz[i]);
        if (!n[i]) {
            for (int j = 0; j < i; j++) iqdb__free(s->mem, n[j], ncap * sz[j]);
            return IQDB_NOMEM;
        }
    }
    for (int i = 0; i < nc; i++) {
        if (s->slots_cap) memcpy(n[i], *old[i], s->slots_cap * sz[i]);
        iqdb__free(s->mem, *old[i], s->slots_cap * sz[i]);
        *old[i] = n[i];
    }
    s->slots_cap = ncap;
    return IQDB_OK;
}

int iqdb__store_reserve(iqdb__store *s, size_t n) {
    if (n > s->n_free && n - s->n_free > (size_t)IQDB__MAX_SLOTS - s->n_slots) return IQDB_FULL;
    IQDB_TRY(iqdb__idmap_reserve(&s->map, n));
    return iqdb__store_reserve_slots(s, n);
}

int iqdb__store_reserve_slots(iqdb__store *s, size_t n) {
    /* Free slots absorb inserts first; only the rest needs new slots. */
    size_t fresh = n > s->n_free ? n - s->n_free : 0;
    if (fresh > (size_t)IQDB__MAX_SLOTS - s->n_slots) return IQDB_FULL;
    size_t need = s->n_slots + fresh;
    if (need > s->slots_cap) {
        size_t ncap = s->slots_cap ? s->slots_cap : 64;
        while (ncap < need) ncap = ncap < ((size_t)1 << 40) ? ncap * 2 : need;
        if (ncap > (size_t)IQDB__MAX_SLOTS) ncap = IQDB__MAX_SLOTS;
        IQDB_TRY(grow_columns(s, ncap));
    }
    if (s->no_vectors) return IQDB_OK; /* no arena to grow */
    size_t rows = (size_t)1 << s->chunk_shift;
    size_t chunks_need = (need + rows - 1) / rows;
    if (chunks_need > s->chunks_cap) {
        size_t cap = s->chunks_cap;
        void *p = s->chunks;
        IQDB_TRY(iqdb__grow(s->mem, &p, &cap, chunks_need, sizeof *s->chunks));
        s->chunks = p;
        s->chunks_cap = cap;
    }
    while (s->n_chunks < chunks_need) { /* chunks already added stay: they are only capacity */
        float *c;
        if (s->vmap) { /* a fresh file range reads as zeros */
            void *p;
            IQDB_TRY(iqdb__vmap_map(s->vmap, (uint64_t)s->n_chunks * s->chunk_span,
                                    iqdb__store_chunk_bytes(s), &p));
            c = p;
        } else {
            c = iqdb__alloc_aligned(s->mem, iqdb__store_chunk_bytes(s));
            if (!c) return IQDB_NOMEM;
            memset(c, 0, iqdb__store_chunk_bytes(s));
        }
        s->chunks[s->n_chunks++] = c;
    }
    return IQDB_OK;
}

uint32_t iqdb__store_add(iqdb__store *s, uint64_t id, const float *vec, float sqnorm, uint8_t *meta,
                         uint32_t meta_len) {
    uint32_t slot;
    if (s->n_free)
        slot = s->free_list[--s->n_free];
    else
        slot = (uint32_t)s->n_slots++;
    IQDB_ASSERT(slot < s->slots_cap && (s->no_vectors || (slot >> s->chunk_shift) < s->n_chunks));
    if (s->no_vectors) s->staging_slot = slot;
    memcpy(iqdb__store_vec(s, slot), vec, (size_t)s->dim * sizeof(float));
    s->ids[slot] = id;
    s->seqs[slot] = s->next_seq++;
    s->sqnorm[slot] = sqnorm;
    s->meta[slot] = meta;
    s->meta_len[slot] = meta_len;
    s->live[slot] = 1;
    s->meta_bytes += meta_len;
    s->count++;
    return slot;
}

void iqdb__store_remove(iqdb__store *s, uint32_t slot) {
    IQDB_ASSERT(slot < s->n_slots && s->live[slot]);
    iqdb__free(s->mem, s->meta[slot], s->meta_len[slot]);
    s->meta_bytes -= s->meta_len[slot];
    s->meta[slot] = NULL;
    s->meta_len[slot] = 0;
    if (s->keys && s->keys[slot]) {
        s->key_bytes -= iqdb__key_block_size(s->keys[slot]);
        iqdb__key_block_free(s->mem, s->keys[slot]);
        s->keys[slot] = NULL;
    }
    s->live[slot] = 0;
    s->free_list[s->n_free++] = slot;
    s->count--;
}

/* Puts the row held in `h` into slot a and takes slot a's row into `h`, its vector into `spare`
 * (the caller's other row buffer). */
typedef struct held_row {
    uint64_t id, seq;
    float sqnorm;
    uint8_t *meta;
    uint32_t meta_len;
    uint8_t live;
    uint8_t *key; /* the byte-key block, or NULL */
    float *vec;
} held_row;

static void swap_held(iqdb__store *s, uint32_t a, held_row *h, float *spare, size_t vbytes) {
    held_row t = {s->ids[a],
                  s->seqs[a],
                  s->sqnorm[a],
                  s->meta[a],
                  s->meta_len[a],
                  s->live[a],
                  s->keys ? s->keys[a] : NULL,
                  spare};
    float *va = iqdb__store_vec(s, a);
    memcpy(spare, va, vbytes);
    memcpy(va, h->vec, vbytes);
    s->ids[a] = h->id;
    s->seqs[a] = h->seq;
    s->sqnorm[a] = h->sqnorm;
    s->meta[a] = h->meta;
    s->meta_len[a] = h->meta_len;
    s->live[a] = h->live;
    if (s->keys) s->keys[a] = h->key;
    *h = t;
}

int iqdb__store_reorder(iqdb__store *s, const uint32_t *to) {
    if (s->no_vectors || s->n_slots < 2) return IQDB_OK;
    const size_t n = s->n_slots, vbytes = (size_t)s->stride * sizeof(float);
    uint8_t *done = iqdb__calloc(s->mem, n, 1);
    float *rows = iqdb__alloc_aligned(s->mem, 2 * vbytes);
    if (!done || !rows) {
        iqdb__free(s->mem, done, n);
        iqdb__free_aligned(s->mem, rows, 2 * vbytes);
        return IQDB_NOMEM;
    }
    /* follow each cycle of the permutation with one row in hand: the row that was at j goes to
     * to[j], and the row found there is carried on (two row buffers alternate) */
    for (size_t i = 0; i < n; i++) {
        if (done[i]) continue;
        float *bufs[2] = {rows, rows + s->stride};
        int cur = 0;
        memcpy(bufs[cur], iqdb__store_vec(s, (uint32_t)i), vbytes);
        held_row h = {s->ids[i],
                      s->seqs[i],
                      s->sqnorm[i],
                      s->meta[i],
                      s->meta_len[i],
                      s->live[i],
                      s->keys ? s->keys[i] : NULL,
                      bufs[cur]};
        size_t j = i;
        do {
            uint32_t k = to[j];
            IQDB_ASSERT(k < n && !done[k]);
            swap_held(s, k, &h, bufs[cur ^ 1], vbytes);
            cur ^= 1;
            done[k] = 1;
            j = k;
        } while (j != i);
    }
    iqdb__free(s->mem, done, n);
    iqdb__free_aligned(s->mem, rows, 2 * vbytes);
    /* the free list: every dead slot, the lowest popped first; the id map follows the rows */
    s->n_free = 0;
    for (size_t k = n; k-- > 0;)
        if (!s->live[k]) s->free_list[s->n_free++] = (uint32_t)k;
    iqdb__idmap_renumber(&s->map, to);
    iqdb__idmap_renumber(&s->kmap, to); /* byte keys: hash -> slot */
    return IQDB_OK;
}

size_t iqdb__store_mem_vectors(const iqdb__store *s) {
    size_t staging = s->staging ? (size_t)s->stride * sizeof(float) + 64 + sizeof(void *) : 0;
    if (s->vmap) return staging;
    return s->n_chunks * (iqdb__store_chunk_bytes(s) + 64 + sizeof(void *)) + staging;
}

size_t iqdb__store_mapped_vectors(const iqdb__store *s) {
    return s->vmap ? s->n_chunks * iqdb__store_chunk_bytes(s) : 0;
}

int iqdb__store_drop_vectors(iqdb__store *s) {
    if (s->no_vectors) return IQDB_OK;
    float *st = iqdb__alloc_aligned(s->mem, (size_t)s->stride * sizeof(float));
    if (!st) return IQDB_NOMEM;
    memset(st, 0, (size_t)s->stride * sizeof(float)); /* the padding stays zero */
    for (size_t c = 0; c < s->n_chunks; c++) free_chunk(s, s->chunks[c]);
    iqdb__free(s->mem, s->chunks, s->chunks_cap * sizeof *s->chunks);
    iqdb__vmap_close(s->vmap);
    s->vmap = NULL;
    s->chunks = NULL;
    s->n_chunks = s->chunks_cap = 0;
    s->staging = st;
    s->staging_slot = IQDB__NO_SLOT;
    s->no_vectors = 1;
    return IQDB_OK;
}
size_t iqdb__store_mem_rows(const iqdb__store *s) {
    return s->slots_cap * SLOT_BYTES + s->chunks_cap * sizeof *s->chunks + iqdb__idmap_mem(&s->map);
}
size_t iqdb__store_mem_meta(const iqdb__store *s) { return s->meta_bytes; }

/* ============================================================================================ */
/* Serialization (the snapshot's rows section)                                                  */
/* ============================================================================================ */

int iqdb__store_serialize(const iqdb__store *s, iqdb__sink *sink) {
    uint8_t h[40];
    iqdb__put32(h, s->dim);
    iqdb__put32(h + 4, 0);
    iqdb__put64(h + 8, s->n_slots);
    iqdb__put64(h + 16, s->next_seq);
    iqdb__put64(h + 24, s->count);
    iqdb__put64(h + 32, s->n_free);
    IQDB_TRY(sink->write(sink->ctx, h, sizeof h));
    uint8_t row[21];
    for (size_t slot = 0; slot < s->n_slots; slot++) {
        row[0] = s->live[slot];
        if (!row[0]) {
            IQDB_TRY(sink->write(sink->ctx, row, 1));
            continue;
        }
        const int keyed = iqdb__store_is_keyed((const uint8_t *const *)s->keys, (uint32_t)slot);
        if (keyed) { /* live 2: u32 key length and the key, then the row with id 0 */
            const uint8_t *kb = s->keys[slot];
            uint8_t kh[5];
            kh[0] = 2;
            iqdb__put32(kh + 1, iqdb__key_block_len(kb));
            IQDB_TRY(sink->write(sink->ctx, kh, sizeof kh));
            IQDB_TRY(sink->write(sink->ctx, iqdb__key_block_bytes(kb), iqdb__key_block_len(kb)));
        }
        iqdb__put64(row + 1, keyed ? 0 : s->ids[slot]);
        iqdb__put64(row + 9, s->seqs[slot]);
        iqdb__put32(row + 17, s->meta_len[slot]);
        IQDB_TRY(keyed ? sink->write(sink->ctx, row + 1, sizeof row - 1)
                       : sink->write(sink->ctx, row, sizeof row));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        uint8_t tmp[64];
        const float *v = iqdb__store_vec(s, (uint32_t)slot);
        for (uint32_t j = 0; j < s->dim; j += 16) {
            uint32_t m = s->dim - j < 16 ? s->dim - j : 16;
            iqdb__put_f32s(tmp, v + j, m);
            IQDB_TRY(sink->write(sink->ctx, tmp, m * 4u));
        }
#else
        IQDB_TRY(
            sink->write(sink->ctx, iqdb__store_vec(s, (uint32_t)slot), s->dim * sizeof(float)));
#endif
        if (s->meta_len[slot]) IQDB_TRY(sink->write(sink->ctx, s->meta[slot], s->meta_len[slot]));
    }
    for (size_t i = 0; i < s->n_free; i++) {
        uint8_t b[4];
        iqdb__put32(b, s->free_list[i]);
        IQDB_TRY(sink->write(sink->ctx, b, 4));
    }
    return IQDB_OK;
}

/* A dead slot while loading: added as a placeholder row, marked 2 until the free list names it. */
#define PENDING_DEAD 2

/* Reads `len` bytes into a new block that grows (doubling) only as the bytes arrive, so a
 * hostile length cannot make the reader allocate memory the input does not back. */
static int read_growing(iqdb__mem *mem, iqdb__source *src, uint32_t len, uint8_t **out) {
    uint8_t *b = NULL;
    size_t have = 0;
    *out = NULL;
    while (have < len) {
        size_t step = IQDB_MIN((size_t)len - have, IQDB_MAX(have, (size_t)4096));
        uint8_t *nb = iqdb__realloc(mem, b, have, have + step);
        if (!nb) {
            iqdb__free(mem, b, have);
            return IQDB_NOMEM;
        }
        b = nb;
        int rc = src->read(src->ctx, b + have, step);
        have += step;
        if (rc) {
            iqdb__free(mem, b, have);
            return rc;
        }
    }
    *out = b;
    return IQDB_OK;
}

/* Reads the key of a keyed row (live 2) into a new block. */
static int load_key(iqdb__store *s, iqdb__source *src, uint8_t **out) {
    uint8_t b[4], key[IQDB_MAX_ID_KEY_LEN];
    IQDB_TRY(src->read(src->ctx, b, 4));
    uint32_t len = iqdb__get32(b);
    if (len == 0 || len > IQDB_MAX_ID_KEY_LEN) return IQDB_CORRUPT;
    IQDB_TRY(src->read(src->ctx, key, len));
    if (iqdb__store_key_find(s, key, len) != IQDB__NO_SLOT) return IQDB_CORRUPT; /* twice */
    IQDB_TRY(iqdb__store_reserve_keyed(s, 1));
    *out = iqdb__key_block_new(s->mem, key, len);
    return *out ? IQDB_OK : IQDB_NOMEM;
}

/* Reads one live row into a fresh slot. `vec` is scratch of dim floats. A keyed row's key block
 * (kb) stands in for its id, which must be 0; the slot takes kb only on success. */
static int load_row(iqdb__store *s, iqdb__source *src, iqdb__pair_fn dot, uint64_t next_seq,
                    float *vec, uint8_t *kb) {
    uint8_t row[20];
    IQDB_TRY(src->read(src->ctx, row, sizeof row));
    uint64_t id = iqdb__get64(row), seq = iqdb__get64(row + 8);
    uint32_t mlen = iqdb__get32(row + 16);
    if (seq >= next_seq || mlen > IQDB__META_MAX) return IQDB_CORRUPT;
    if (kb ? id != 0 : iqdb__idmap_find(&s->map, id) != IQDB__NO_SLOT) return IQDB_CORRUPT;
    IQDB_TRY(src->read(src->ctx, vec, s->dim * sizeof(float)));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    iqdb__get_f32s(vec, (const uint8_t *)vec, s->dim);
#endif
    if (!iqdb__all_finite(vec, s->dim)) return IQDB_CORRUPT;
    uint8_t *blob = NULL;
    IQDB_TRY(read_growing(s->mem, src, mlen, &blob));
    uint32_t slot = iqdb__store_add(s, id, vec, dot(vec, vec, s->dim), blob, mlen);
    s->seqs[slot] = seq;
    if (kb) {
        iqdb__store_set_key(s, slot, kb);
        iqdb__store_key_bind(s, slot);
    } else {
        iqdb__idmap_put(&s->map, id, slot);
    }
    return IQDB_OK;
}

static int load_live(iqdb__store *s, iqdb__source *src, iqdb__pair_fn dot, uint64_t next_seq,
                     float *vec, uint8_t *kb) {
    int rc = load_row(s, src, dot, next_seq, vec, kb);
    if (rc) iqdb__key_block_free(s->mem, kb);
    return rc;
}

static int load_slots(iqdb__store *s, iqdb__source *src, iqdb__pair_fn dot, uint64_t n_slots,
                      uint64_t next_seq, float *vec) {
    for (uint64_t slot = 0; slot < n_slots; slot++) {
        /* Capacity follows the rows that actually arrive, never the header's claim. */
        if ((slot & 1023) == 0)
            IQDB_TRY(iqdb__store_reserve(s, (size_t)IQDB_MIN(1024, n_slots - slot)));
        uint8_t live;
        IQDB_TRY(src->read(src->ctx, &live, 1));
        if (live > 2) return IQDB_CORRUPT;
        uint8_t *kb = NULL;
        if (live == 2) IQDB_TRY(load_key(s, src, &kb));
        if (live) {
            IQDB_TRY(load_live(s, src, dot, next_seq, vec, kb));
        } else {
            memset(vec, 0, s->dim * sizeof(float));
            uint32_t got = iqdb__store_add(s, 0, vec, 0.0f, NULL, 0);
            s->live[got] = PENDING_DEAD;
        }
    }
    return IQDB_OK;
}

int iqdb__store_load(iqdb__store *s, iqdb__source *src, iqdb__pair_fn dot) {
    uint8_t h[40];
    IQDB_TRY(src->read(src->ctx, h, sizeof h));
    uint64_t n_slots = iqdb__get64(h + 8), next_seq = iqdb__get64(h + 16);
    uint64_t count = iqdb__get64(h + 24), n_free = iqdb__get64(h + 32);
    if (iqdb__get32(h) != s->dim || iqdb__get32(h + 4) != 0 || n_slots > IQDB__MAX_SLOTS ||
        count > n_slots || n_free != n_slots - count || s->n_slots != 0 ||
        next_seq > ((uint64_t)1 << 62)) /* far beyond any real count; leaves room to grow */
        return IQDB_CORRUPT;
    float *vec = iqdb__alloc(s->mem, s->dim * sizeof(float));
    if (!vec) return IQDB_NOMEM;
    int rc = load_slots(s, src, dot, n_slots, next_seq, vec);
    iqdb__free(s->mem, vec, s->dim * sizeof(float));
    IQDB_TRY(rc);
    /* The free list, bottom first: removing in this order rebuilds it exactly. */
    for (uint64_t i = 0; i < n_free; i++) {
        uint8_t b[4];
        IQDB_TRY(src->read(src->ctx, b, 4));
        uint32_t slot = iqdb__get32(b);
        if (slot >= n_slots || s->live[slot] != PENDING_DEAD) return IQDB_CORRUPT;
        s->live[slot] = 1;
        iqdb__store_remove(s, slot);
    }
    if (s->count != count) return IQDB_CORRUPT; /* a dead slot was missing from the free list */
    s->next_seq = next_seq;
    return IQDB_OK;
}
