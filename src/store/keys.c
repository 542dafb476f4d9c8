/*
 * keys.c — see keys.h.
 */
#include "store/keys.h"

#include "store/store.h"

uint8_t *iqdb__key_block_new(iqdb__mem *mem, const void *key, size_t len) {
    uint8_t *b = iqdb__alloc(mem, 4 + len);
    if (!b) return NULL;
    uint32_t n = (uint32_t)len;
    memcpy(b, &n, 4);
    memcpy(b + 4, key, len);
    return b;
}

void iqdb__key_block_free(iqdb__mem *mem, uint8_t *block) {
    if (block) iqdb__free(mem, block, iqdb__key_block_size(block));
}

/* 8 bytes at a time through the SplitMix64 finalizer, the length folded in first. Not keyed
 * against crafted collisions: those cost probe length, never correctness (bytes are compared). */
uint64_t iqdb__key_hash(const void *key, size_t len) {
    const uint8_t *p = key;
    uint64_t h = iqdb__mix64(0x6b6579735f696471ull ^ (uint64_t)len);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = iqdb__mix64(h ^ w);
        p += 8;
        len -= 8;
    }
    uint64_t w = 0;
    for (size_t i = 0; i < len; i++) w |= (uint64_t)p[i] << (8 * i);
    return iqdb__mix64(h ^ w ^ 0xff);
}

int iqdb__store_reserve_keyed(iqdb__store *s, size_t n) {
    IQDB_TRY(iqdb__store_reserve_slots(s, n));
    if (!s->keys) {
        s->keys = iqdb__calloc(s->mem, s->slots_cap, sizeof *s->keys);
        if (!s->keys) return IQDB_NOMEM;
    }
    return iqdb__idmap_reserve(&s->kmap, n);
}

void iqdb__store_set_key(iqdb__store *s, uint32_t slot, uint8_t *block) {
    IQDB_ASSERT(s->keys && !s->keys[slot] && s->live[slot]);
    s->keys[slot] = block;
    s->ids[slot] = iqdb__key_hash(iqdb__key_block_bytes(block), iqdb__key_block_len(block));
    s->key_bytes += iqdb__key_block_size(block);
}

static int same_key(const uint8_t *block, const void *key, size_t len) {
    return iqdb__key_block_len(block) == len && memcmp(iqdb__key_block_bytes(block), key, len) == 0;
}

static uint32_t find_hashed(const iqdb__store *s, uint64_t h, const void *key, size_t len) {
    size_t pos = SIZE_MAX;
    uint32_t slot;
    while ((slot = iqdb__idmap_next(&s->kmap, h, &pos)) != IQDB__NO_SLOT)
        if (same_key(s->keys[slot], key, len)) return slot;
    return IQDB__NO_SLOT;
}

uint32_t iqdb__store_key_find(const iqdb__store *s, const void *key, size_t len) {
    if (!s->kmap.count) return IQDB__NO_SLOT;
    return find_hashed(s, iqdb__key_hash(key, len), key, len);
}

uint32_t iqdb__store_key_bind(iqdb__store *s, uint32_t slot) {
    const uint8_t *b = s->keys[slot];
    uint64_t h = s->ids[slot];
    uint32_t old = find_hashed(s, h, iqdb__key_block_bytes(b), iqdb__key_block_len(b));
    if (old != IQDB__NO_SLOT) iqdb__idmap_remove_slot(&s->kmap, h, old);
    iqdb__idmap_add(&s->kmap, h, slot);
    return old;
}

void iqdb__store_key_unbind(iqdb__store *s, uint32_t slot) {
    iqdb__idmap_remove_slot(&s->kmap, s->ids[slot], slot);
}

int iqdb__store_key_check(const iqdb__store *s, uint32_t slot) {
    const uint8_t *b = s->keys[slot];
    uint32_t len = iqdb__key_block_len(b);
    if (len == 0 || len > IQDB_MAX_ID_KEY_LEN) return -1;
    if (iqdb__key_hash(iqdb__key_block_bytes(b), len) != s->ids[slot]) return -1;
    return find_hashed(s, s->ids[slot], iqdb__key_block_bytes(b), len) == slot ? 0 : -1;
}

size_t iqdb__store_mem_keys(const iqdb__store *s) {
    return (s->keys ? s->slots_cap * sizeof *s->keys : 0) + iqdb__idmap_mem(&s->kmap) +
           s->key_bytes;
}
