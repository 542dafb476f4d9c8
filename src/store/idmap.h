/*
 * idmap.h — external id (u64) -> dense slot (u32), open addressing with linear probing and
 * backward-shift deletion (no tombstones, so probe lengths do not grow under churn).
 *
 * Every u64 is a valid id, so emptiness is marked in the value: IQDB__NO_SLOT. The table keeps
 * its load at or below 1/2. Growth happens only in iqdb__idmap_reserve, which callers run
 * before they change anything; insert after a successful reserve cannot fail.
 */
#ifndef IQDB_IDMAP_H
#define IQDB_IDMAP_H

#include "internal.h"

#define IQDB__NO_SLOT UINT32_MAX

typedef struct iqdb__idmap_entry {
    uint64_t key;
    uint32_t slot;
    uint32_t pad_;
} iqdb__idmap_entry;

typedef struct iqdb__idmap {
    iqdb__mem *mem;
    iqdb__idmap_entry *e;
    size_t cap; /* power of two, or 0 */
    size_t count;
} iqdb__idmap;

void iqdb__idmap_init(iqdb__idmap *m, iqdb__mem *mem);
void iqdb__idmap_destroy(iqdb__idmap *m);
/* Ensures room for `extra` more keys without growing later. IQDB_OK or IQDB_NOMEM/FULL. */
int iqdb__idmap_reserve(iqdb__idmap *m, size_t extra);
/* The slot for key, or IQDB__NO_SLOT. */
uint32_t iqdb__idmap_find(const iqdb__idmap *m, uint64_t key);
/* Sets key -> slot (insert or overwrite). Requires a prior reserve when the key is new. */
void iqdb__idmap_put(iqdb__idmap *m, uint64_t key, uint32_t slot);
/* Maps every entry's slot s to to[s] (a permutation of the slots; keys stay where they are). */
void iqdb__idmap_renumber(iqdb__idmap *m, const uint32_t *to);
/* Removes key; returns its slot or IQDB__NO_SLOT. */
uint32_t iqdb__idmap_remove(iqdb__idmap *m, uint64_t key);
size_t iqdb__idmap_mem(const iqdb__idmap *m);

/* Multimap use (the byte-key map of store/keys.h, whose map key is a hash of the key bytes, so
 * several entries may share one map key): */
/* Adds an entry key -> slot without looking for an existing one. Requires a prior reserve. */
void iqdb__idmap_add(iqdb__idmap *m, uint64_t key, uint32_t slot);
/* Steps through the slots stored under `key`: start with *pos = SIZE_MAX; returns the next slot
 * or IQDB__NO_SLOT at the end. The map must not change during the walk. */
uint32_t iqdb__idmap_next(const iqdb__idmap *m, uint64_t key, size_t *pos);
/* Removes the entry key -> slot; returns 1 if it was there. */
int iqdb__idmap_remove_slot(iqdb__idmap *m, uint64_t key, uint32_t slot);

#endif
