/*
 * store.c — see store.h.
 */
#include "store/store.h"

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
}

static size_t chunk_bytes(const iqdb__store *s) {
    return ((size_t)1 << s->chunk_shift) * s->stride * sizeof(float);
}

#define SLOT_BYTES                                                                 \
    (sizeof(uint64_t) * 2 + sizeof(float) + sizeof(uint8_t *) + sizeof(uint32_t) + \
     sizeof(uint8_t) + sizeof(uint32_t))

void iqdb__store_destroy(iqdb__store *s) {
    for (size_t i = 0; i < s->n_slots; i++)
        if (s->live[i]) iqdb__free(s->mem, s->meta[i], s->meta_len[i]);
    for (size_t c = 0; c < s->n_chunks; c++)
        iqdb__free_aligned(s->mem, s->chunks[c], chunk_bytes(s));
    iqdb__free(s->mem, s->chunks, s->chunks_cap * sizeof *s->chunks);
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
    void *n[7] = {0};
    const size_t sz[7] = {sizeof *s->ids,      sizeof *s->seqs,     sizeof *s->sqnorm,
                          sizeof *s->meta,     sizeof *s->meta_len, sizeof *s->live,
                          sizeof *s->free_list};
    void **old[7] = {(void **)&s->ids,      (void **)&s->seqs,     (void **)&s->sqnorm,
                     (void **)&s->meta,     (void **)&s->meta_len, (void **)&s->live,
                     (void **)&s->free_list};
    for (int i = 0; i < 7; i++) {
        n[i] = iqdb__calloc(s->mem, ncap, sz[i]);
        if (!n[i]) {
            for (int j = 0; j < i; j++) iqdb__free(s->mem, n[j], ncap * sz[j]);
            return IQDB_NOMEM;
        }
    }
    for (int i = 0; i < 7; i++) {
        if (s->slots_cap) memcpy(n[i], *old[i], s->slots_cap * sz[i]);
        iqdb__free(s->mem, *old[i], s->slots_cap * sz[i]);
        *old[i] = n[i];
    }
    s->slots_cap = ncap;
    return IQDB_OK;
}

int iqdb__store_reserve(iqdb__store *s, size_t n) {
    /* Free slots absorb inserts first; only the rest needs new slots. */
    size_t fresh = n > s->n_free ? n - s->n_free : 0;
    if (fresh > (size_t)IQDB__MAX_SLOTS - s->n_slots) return IQDB_FULL;
    size_t need = s->n_slots + fresh;
    IQDB_TRY(iqdb__idmap_reserve(&s->map, n));
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
    while (s->n_chunks < chunks_need) {
        float *c = iqdb__alloc_aligned(s->mem, chunk_bytes(s));
        if (!c) return IQDB_NOMEM; /* chunks already added stay: they are only capacity */
        memset(c, 0, chunk_bytes(s));
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
    s->live[slot] = 0;
    s->free_list[s->n_free++] = slot;
    s->count--;
}

size_t iqdb__store_mem_vectors(const iqdb__store *s) {
    size_t staging = s->staging ? (size_t)s->stride * sizeof(float) + 64 + sizeof(void *) : 0;
    return s->n_chunks * (chunk_bytes(s) + 64 + sizeof(void *)) + staging;
}

int iqdb__store_drop_vectors(iqdb__store *s) {
    if (s->no_vectors) return IQDB_OK;
    float *st = iqdb__alloc_aligned(s->mem, (size_t)s->stride * sizeof(float));
    if (!st) return IQDB_NOMEM;
    memset(st, 0, (size_t)s->stride * sizeof(float)); /* the padding stays zero */
    for (size_t c = 0; c < s->n_chunks; c++)
        iqdb__free_aligned(s->mem, s->chunks[c], chunk_bytes(s));
    iqdb__free(s->mem, s->chunks, s->chunks_cap * sizeof *s->chunks);
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
