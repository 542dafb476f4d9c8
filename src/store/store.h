/*
 * store.h — the row store: the source of truth for every record.
 *
 * A record lives in a dense slot (u32). Per slot: the external id, an insertion sequence number
 * (ties in search go to the smaller one), the vector's squared norm (computed once with the
 * handle's dot kernel, so cosine needs one dot product per row), an optional metadata blob, and
 * a live flag. Vectors live in one arena of 64-byte aligned chunks; slot s is row (s & mask) of
 * chunk (s >> shift), rows `stride` floats apart (dim rounded up to 16, zero-padded). Chunks
 * never move, so growth costs no copy of existing vectors and no 2x peak.
 *
 * Deleted slots go on a free list and are reused by later inserts. The id map lives beside the
 * slots, owned by the caller (iqdb.c), which decides when a slot becomes visible under an id.
 *
 * Failure discipline: iqdb__store_reserve is the only function that allocates (besides the
 * caller-provided metadata blobs). After a successful reserve(n), n calls of iqdb__store_add and
 * any number of iqdb__store_remove succeed.
 *
 * Without vectors (iqdb__store_drop_vectors, for a codes-only quantized index): the arena is
 * freed and never grows again; the index keeps the only copy of each row, as a code. The vector
 * of the row being added stays in a one-row staging area until the next add, which is exactly
 * as long as the write protocol needs it (the index encodes it right after the add);
 * iqdb__store_vec returns NULL for every other slot.
 *
 * With a vector file (iqdb__store_use_vmap, for IQDB_VECTORS_IN_FILE) the chunks are mapped from
 * that file instead of allocated: chunk c at offset c * chunk_span. Nothing else changes —
 * iqdb__store_vec still returns a pointer, the rows are written and read in place — but the
 * vectors are page cache rather than heap, and growing the arena can fail with an I/O code.
 */
#ifndef IQDB_STORE_H
#define IQDB_STORE_H

#include "dist/dist.h"
#include "internal.h"
#include "store/idmap.h"

/* A hard limit that keeps slot numbers below IQDB__NO_SLOT with room to spare. */
#define IQDB__MAX_SLOTS (UINT32_MAX - 1u)

typedef struct iqdb__store {
    iqdb__mem *mem;
    uint32_t dim;
    uint32_t stride;      /* floats between rows: dim rounded up to 16 */
    uint32_t chunk_shift; /* log2(rows per chunk) */
    float **chunks;
    size_t n_chunks, chunks_cap;
    /* per-slot columns, slots_cap entries each */
    uint64_t *ids;
    uint64_t *seqs;
    float *sqnorm;
    uint8_t **meta;
    uint32_t *meta_len;
    uint8_t *live;
    uint32_t *free_list; /* capacity slots_cap, so pushing never allocates */
    size_t n_free;
    size_t n_slots; /* slots ever used: [0, n_slots) */
    size_t slots_cap;
    uint64_t count; /* live slots */
    uint64_t next_seq;
    size_t meta_bytes;       /* sum of meta_len over live slots */
    iqdb__idmap map;         /* id -> slot, maintained by the caller */
    int no_vectors;          /* the arena was dropped (codes only) */
    struct iqdb__vmap *vmap; /* chunks mapped from this file (owned), or NULL: allocated */
    size_t chunk_span;       /* vmap: file bytes per chunk (chunk bytes rounded up to the map
                                granularity) */
    float *staging;          /* no_vectors: the last added row's vector, `stride` floats */
    uint32_t staging_slot;
    /* Byte keys (store/keys.h). Until the first keyed record arrives `keys` is NULL and `kmap`
     * empty, so a database of u64 ids pays nothing for them. */
    uint8_t **keys;   /* per slot: NULL (a u64 id) or the slot's key block */
    iqdb__idmap kmap; /* hash of the key bytes -> slot, a multimap; maintained by the caller */
    size_t key_bytes; /* sum of the key blocks of live slots */
} iqdb__store;

void iqdb__store_init(iqdb__store *s, iqdb__mem *mem, uint32_t dim);
void iqdb__store_destroy(iqdb__store *s);

/* Ensures capacity for `n` more slots (vectors, columns, free list) and `n` more ids. IQDB_OK,
 * IQDB_NOMEM, IQDB_FULL; with a vector file also IQDB_IOERR_* (message set). */
int iqdb__store_reserve(iqdb__store *s, size_t n);
/* The same for slots alone (the id map untouched): store/keys.c reserves its own map. */
int iqdb__store_reserve_slots(iqdb__store *s, size_t n);

/* Takes a slot (free list first), copies the vector, stores id, sequence, norm and the metadata
 * blob (ownership passes to the store; may be NULL). Requires a prior reserve. */
uint32_t iqdb__store_add(iqdb__store *s, uint64_t id, const float *vec, float sqnorm, uint8_t *meta,
                         uint32_t meta_len);
/* Frees the slot's metadata (and key block) and puts it on the free list. Never fails. */
void iqdb__store_remove(iqdb__store *s, uint32_t slot);

static inline uint32_t iqdb__store_rows_per_chunk(const iqdb__store *s) {
    return 1u << s->chunk_shift;
}
/* Bytes of one arena chunk (a whole number of rows). */
static inline size_t iqdb__store_chunk_bytes(const iqdb__store *s) {
    return ((size_t)1 << s->chunk_shift) * s->stride * sizeof(float);
}
static inline float *iqdb__store_vec(const iqdb__store *s, uint32_t slot) {
    if (IQDB_UNLIKELY(s->no_vectors)) return slot == s->staging_slot ? s->staging : NULL;
    return s->chunks[slot >> s->chunk_shift] +
           (size_t)(slot & ((1u << s->chunk_shift) - 1u)) * s->stride;
}

/* Maps the arena's chunks from `v` from now on; the store owns `v` (closed with the store, also
 * on failure). Only on a store with no chunks yet and vectors kept: IQDB_MISUSE otherwise. */
int iqdb__store_use_vmap(iqdb__store *s, struct iqdb__vmap *v);

/* Frees the vector arena for good (see above). IQDB_OK, or IQDB_NOMEM with nothing changed. */
int iqdb__store_drop_vectors(iqdb__store *s);
/* Writes every slot (live or free), the sequence counter and the free list to `sink`, in the
 * layout of the snapshot's rows section (docs/FORMAT.md). */
int iqdb__store_serialize(const iqdb__store *s, iqdb__sink *sink);
/* Reads what iqdb__store_serialize wrote into an empty store of the same dim, keeping slot
 * numbers, sequence numbers and the free-list order, and fills the id map. Norms are recomputed
 * with `dot`. Every field is hostile: IQDB_CORRUPT on any inconsistency (duplicate id,
 * non-finite vector, a dead slot missing from the free list, ...), IQDB_NOMEM; memory grows only
 * as rows actually arrive. Metadata blobs are not checked here (the caller knows the keys). On
 * failure the store holds a partial state the caller destroys. */
int iqdb__store_load(iqdb__store *s, iqdb__source *src, iqdb__pair_fn dot);

/* Moves every row to a new slot: the row in slot j goes to slot to[j] (`to`, n_slots entries, is
 * a permutation of [0, n_slots)). Ids, sequence numbers, norms, metadata and liveness move with
 * their vectors; the id map and the free list are rebuilt. Only between writes, when every live
 * slot is in the id map. IQDB_OK, or IQDB_NOMEM with nothing changed; a store without vectors
 * is left as it is. */
int iqdb__store_reorder(iqdb__store *s, const uint32_t *to);

/* Memory by component. mem_vectors counts heap only; mapped_vectors the mapped chunks' bytes. */
size_t iqdb__store_mem_vectors(const iqdb__store *s);
size_t iqdb__store_mapped_vectors(const iqdb__store *s);
size_t iqdb__store_mem_rows(const iqdb__store *s);
size_t iqdb__store_mem_meta(const iqdb__store *s);

#endif
