/*
 * keys.h — byte-string keys beside u64 ids in the row store.
 *
 * A record is named either by a u64 id (the id map, store->map) or by a non-empty byte string
 * of at most IQDB_MAX_ID_KEY_LEN bytes (this module). The two kinds never meet: the u64 1 and
 * the one-byte key 0x01 are different records, because they live in different maps.
 *
 * A keyed slot holds its key in a key block (u32 length in host order, then the bytes), owned by
 * the store (store->keys[slot]); store->ids[slot] holds the key's hash, so rehashing and
 * checking never rehash the bytes. The key map (store->kmap) is the u64 id map used as a
 * multimap from that hash to slots: the hash only finds the bucket, and every lookup compares
 * the full key bytes, so two keys with one hash stay two records.
 *
 * Zero cost for u64-only databases: store->keys stays NULL and kmap empty until the first keyed
 * record is reserved; search then pays one NULL test per hit.
 *
 * Failure discipline as in store.h: iqdb__store_reserve_keyed allocates; after it succeeds, n
 * calls of store_add + store_set_key + store_key_bind succeed.
 */
#ifndef IQDB_STORE_KEYS_H
#define IQDB_STORE_KEYS_H

#include "internal.h"
#include "store/idmap.h"

struct iqdb__store;

/* A new key block holding a copy of `key` (1 .. IQDB_MAX_ID_KEY_LEN bytes, checked by the
 * caller), or NULL (no memory). */
uint8_t *iqdb__key_block_new(iqdb__mem *mem, const void *key, size_t len);
void iqdb__key_block_free(iqdb__mem *mem, uint8_t *block); /* NULL is fine */
static inline uint32_t iqdb__key_block_len(const uint8_t *b) {
    uint32_t n;
    memcpy(&n, b, 4);
    return n;
}
static inline const uint8_t *iqdb__key_block_bytes(const uint8_t *b) { return b + 4; }
static inline size_t iqdb__key_block_size(const uint8_t *b) {
    return 4 + (size_t)iqdb__key_block_len(b);
}

/* The hash that places a key in the key map. */
uint64_t iqdb__key_hash(const void *key, size_t len);

/* Ensures capacity for n more keyed slots (creates the key column on first use). */
int iqdb__store_reserve_keyed(struct iqdb__store *s, size_t n);
/* Gives slot (just added, not yet bound) its key block; ownership passes to the store. */
void iqdb__store_set_key(struct iqdb__store *s, uint32_t slot, uint8_t *block);
/* The live slot bound to `key`, or IQDB__NO_SLOT. */
uint32_t iqdb__store_key_find(const struct iqdb__store *s, const void *key, size_t len);
/* Binds slot's key to slot; returns the slot it was bound to before (now unbound), or
 * IQDB__NO_SLOT. Requires a prior reserve. */
uint32_t iqdb__store_key_bind(struct iqdb__store *s, uint32_t slot);
/* Unbinds a keyed slot from the key map (before removing it). */
void iqdb__store_key_unbind(struct iqdb__store *s, uint32_t slot);
/* 1 when the slot is live and keyed. */
static inline int iqdb__store_is_keyed(const uint8_t *const *keys, uint32_t slot) {
    return keys && keys[slot];
}
/* Checks a live keyed slot: its length, its hash, and that the map leads to it. 0 or -1. */
int iqdb__store_key_check(const struct iqdb__store *s, uint32_t slot);
/* Memory of the key column, the key map and the key blocks. */
size_t iqdb__store_mem_keys(const struct iqdb__store *s);

#endif
