/*
 * cache.h — the result cache: whole search results keyed on (query bits, k, canonical filter,
 * search parameters), bounded by entries and bytes, evicted by LRU / LFU / FIFO / ARC, with an
 * optional TTL, and invalidated by writes (the contract is in iqdb.h, "Result cache").
 *
 * The promise is "a cached result equals what an uncached search returns now". Two rules keep
 * it:
 *  - exact entries (found by an exact scan) are invalidated precisely by iqdb__cache_on_write:
 *    an entry survives a write only when the write provably cannot change it (see cache.c);
 *  - approximate entries (any other strategy) die at every write, because an approximate
 *    index can change its answer for reasons the exact rules do not see (a new graph edge, a
 *    moved list). Index code that changes search results without a write — an optimize, a
 *    retrain, a rebuild — must call iqdb__cache_clear.
 *
 * Threads: lookup and insert run under the handle's shared lock and take the cache's own mutex;
 * iqdb__cache_on_write runs under the exclusive lock (no search runs), so the distance work of
 * invalidation is done without the mutex held by anyone else.
 */
#ifndef IQDB_CACHE_H
#define IQDB_CACHE_H

#include "index/index.h"
#include "internal.h"
#include "meta/filter.h"
#include "store/keys.h"

typedef struct iqdb__cache iqdb__cache;

/* The key of one search. Built by iqdb__cache_key_init (which may allocate for a long filter:
 * release with iqdb__cache_key_free). */
typedef struct iqdb__cache_key {
    const float *q;
    size_t k;
    uint32_t ef, n_probes;
    int exact;
    uint8_t *fbytes; /* canonical filter, or NULL */
    size_t flen;
    uint64_t hash;
    uint8_t small[256]; /* fbytes points here when the filter is short */
} iqdb__cache_key;

typedef struct iqdb__cache_stats {
    uint64_t hits, misses, evictions, invalidations, len, capacity, bytes, max_bytes, mem;
} iqdb__cache_stats;

/* NULL *out (and IQDB_OK) when o->cache_entries is 0. Validates the cache options. */
int iqdb__cache_create(iqdb__mem *mem, const iqdb_options *o, uint32_t dim, iqdb__cache **out);
void iqdb__cache_destroy(iqdb__cache *c);
/* Checks the cache fields of the options (also used before anything is allocated). */
int iqdb__cache_validate(const iqdb_options *o);

int iqdb__cache_key_init(iqdb__cache *c, iqdb__cache_key *key, const float *q, size_t k,
                         const iqdb_search_params *p);
void iqdb__cache_key_free(iqdb__cache *c, iqdb__cache_key *key);

/* 1 on a hit (hits, *n and the info are written), 0 on a miss. */
int iqdb__cache_lookup(iqdb__cache *c, const iqdb__cache_key *key, iqdb_hit *hits, size_t *n,
                       iqdb__sinfo *info);
/* Remembers a computed result. `filter` (the caller's, may be NULL) is cloned; `exact` says the
 * result came from an exact scan. Failure to allocate just skips caching. */
void iqdb__cache_insert(iqdb__cache *c, const iqdb__cache_key *key, const iqdb_filter *filter,
                        const iqdb__keydict *keys, float qnorm, int exact, const iqdb_hit *hits,
                        size_t n, const iqdb__sinfo *info);

/* Under the exclusive lock, after a write was applied: `ids` were replaced or deleted (their
 * old versions are gone), `slots` are the live rows the write added (their new versions). */
void iqdb__cache_on_write(iqdb__cache *c, const iqdb__env *env, const iqdb__keydict *keys,
                          const iqdb_id *ids, size_t n_ids, const uint32_t *slots, size_t n_slots);
/* The id a hit on `slot` carries (index.c, iqdb__hits_from_top): the u64 id, or for a keyed
 * record its version's sequence number. Removed versions are passed to iqdb__cache_on_write by
 * this id; comparing ids only (not the keyed flag) can only over-evict. */
static inline iqdb_id iqdb__cache_hit_id(const iqdb__store *st, uint32_t slot) {
    return iqdb__store_is_keyed((const uint8_t *const *)st->keys, slot) ? st->seqs[slot]
                                                                        : st->ids[slot];
}
/* Drops every entry (counted as invalidations). */
void iqdb__cache_clear(iqdb__cache *c);
void iqdb__cache_stats_get(iqdb__cache *c, iqdb__cache_stats *s);

/* A deep copy of a filter through `alloc` (used by the cache and the async calls). */
int iqdb__filter_clone(const iqdb_allocator *alloc, const iqdb_filter *f, iqdb_filter **out);

#endif
