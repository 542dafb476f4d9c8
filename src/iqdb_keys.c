/*
 * iqdb_keys.c — the public calls for records named by byte keys (include/iqdb.h, "Records named by
 * byte keys"): argument checks, then the same write protocol and read path as the u64 calls in
 * iqdb.c (iqdb__upsert_many, iqdb__read_slot), with the key map of store/keys.h in place of the
 * id map. Key handles in search hits are resolved here too.
 *
 * A key handle is (hit.id = the version's insertion sequence number, hit.reserved = slot + 1).
 * Sequence numbers are never reused (a replace takes a new one), so a handle whose slot was
 * freed and reused by another record no longer matches: it resolves to its own key or to
 * IQDB_NOTFOUND, never to another record's key.
 */
#include "handle.h"
#include "store/keys.h"

static int check_key(iqdb *db, const void *key, size_t len, const char *fn, size_t index) {
    if (len && !key) return iqdb__fail(db, IQDB_MISUSE, "%s: key is NULL", fn);
    if (len == 0 || len > IQDB_MAX_ID_KEY_LEN) {
        if (index == SIZE_MAX)
            return iqdb__fail(db, IQDB_INVALID, "%s: key length %zu is outside 1..%u", fn, len,
                              IQDB_MAX_ID_KEY_LEN);
        return iqdb__fail(db, IQDB_INVALID, "%s: key %zu has length %zu, outside 1..%u", fn, index,
                          len, IQDB_MAX_ID_KEY_LEN);
    }
    return IQDB_OK;
}

/* Copies n keys into new key blocks (ownership to the caller) in `blocks`. */
static int make_blocks(iqdb *db, size_t n, const void *const *keys, const size_t *lens,
                       uint8_t **blocks) {
    for (size_t i = 0; i < n; i++) {
        blocks[i] = iqdb__key_block_new(&db->mem, keys[i], lens[i]);
        if (!blocks[i]) {
            while (i-- > 0) iqdb__key_block_free(&db->mem, blocks[i]);
            return iqdb__nomem(db);
        }
    }
    return IQDB_OK;
}

int iqdb_upsert_key(iqdb *db, const void *key, size_t key_len, const float *vec,
                    const iqdb_meta *meta) {
    IQDB__CHECK_DB(db);
    if (!vec) return iqdb__fail(db, IQDB_MISUSE, "iqdb_upsert_key: vec is NULL");
    IQDB_TRY(check_key(db, key, key_len, "iqdb_upsert_key", SIZE_MAX));
    uint8_t *block;
    IQDB_TRY(make_blocks(db, 1, &key, &key_len, &block));
    return iqdb__upsert_many(db, 1, NULL, &block, vec, meta ? &meta : NULL);
}

int iqdb_upsert_batch_key(iqdb *db, size_t n, const void *const *keys, const size_t *key_lens,
                          const float *vecs, const iqdb_meta *const *metas) {
    IQDB__CHECK_DB(db);
    if (n == 0) return IQDB_OK;
    if (!keys || !key_lens || !vecs)
        return iqdb__fail(db, IQDB_MISUSE,
                          "iqdb_upsert_batch_key: keys, key_lens and vecs are required");
    if (n > IQDB__MAX_SLOTS)
        return iqdb__fail(db, IQDB_INVALID, "batch of %zu records is too large", n);
    for (size_t i = 0; i < n; i++)
        IQDB_TRY(check_key(db, keys[i], key_lens[i], "iqdb_upsert_batch_key", i));
    uint8_t **blocks = iqdb__calloc(&db->mem, n, sizeof *blocks);
    if (!blocks) return iqdb__nomem(db);
    int rc = make_blocks(db, n, keys, key_lens, blocks);
    if (rc == IQDB_OK) rc = iqdb__upsert_many(db, n, NULL, blocks, vecs, metas);
    iqdb__free(&db->mem, blocks, n * sizeof *blocks);
    return rc;
}

int iqdb_get_key(iqdb *db, const void *key, size_t key_len, float *vec_out, iqdb_meta **meta_out) {
    if (meta_out) *meta_out = NULL;
    IQDB__CHECK_DB(db);
    IQDB_TRY(check_key(db, key, key_len, "iqdb_get_key", SIZE_MAX));
    iqdb__rwlock_rdlock(&db->lock);
    int rc;
    uint32_t slot = iqdb__store_key_find(&db->store, key, key_len);
    if (slot == IQDB__NO_SLOT)
        rc = iqdb__fail(db, IQDB_NOTFOUND, "no record with this key (%zu bytes)", key_len);
    else
        rc = iqdb__read_slot(db, slot, vec_out, meta_out);
    iqdb__rwlock_rdunlock(&db->lock);
    return rc;
}

int iqdb_delete_key(iqdb *db, const void *key, size_t key_len, int *existed) {
    if (existed) *existed = 0;
    IQDB__CHECK_DB(db);
    IQDB_TRY(check_key(db, key, key_len, "iqdb_delete_key", SIZE_MAX));
    iqdb__rwlock_wrlock(&db->lock);
    uint64_t lsn = 0;
    iqdb__store *st = &db->store;
    int rc = db->dur ? iqdb__dur_writable(db) : IQDB_OK;
    uint32_t slot = rc ? IQDB__NO_SLOT : iqdb__store_key_find(st, key, key_len);
    /* only a delete that changes something is logged */
    if (slot != IQDB__NO_SLOT && db->dur) rc = iqdb__dur_log_delete_key(db, st->keys[slot], &lsn);
    if (slot != IQDB__NO_SLOT && rc == IQDB_OK) {
        iqdb_id hid = iqdb__cache_hit_id(st, slot);
        iqdb__store_key_unbind(st, slot);
        iqdb__cache_on_write(db->cache, &db->env, &db->keys, &hid, 1, NULL, 0);
        iqdb__index_remove(db->index, &db->env, slot);
        iqdb__store_remove(st, slot);
    }
    iqdb__rwlock_wrunlock(&db->lock);
    if (rc) return iqdb__fail_retag(db, rc);
    if (lsn) rc = iqdb__dur_after_write(db, lsn);
    if (rc == IQDB_OK && existed) *existed = slot != IQDB__NO_SLOT;
    return rc;
}

int iqdb_hit_key(iqdb *db, const iqdb_hit *hit, void *buf, size_t cap, size_t *key_len) {
    if (key_len) *key_len = 0;
    IQDB__CHECK_DB(db);
    if (!hit || !key_len || (!buf && cap > 0))
        return iqdb__fail(db, IQDB_MISUSE, "iqdb_hit_key: hit and key_len are required");
    if (!iqdb_hit_has_key(hit))
        return iqdb__fail(db, IQDB_INVALID,
                          "iqdb_hit_key: the hit is a u64 id (%llu), not a byte key",
                          (unsigned long long)hit->id);
    uint32_t slot = hit->reserved - 1;
    const iqdb__store *st = &db->store;
    int rc = IQDB_OK;
    iqdb__rwlock_rdlock(&db->lock);
    if (slot >= st->n_slots || !st->live[slot] ||
        !iqdb__store_is_keyed((const uint8_t *const *)st->keys, slot) ||
        st->seqs[slot] != hit->id) {
        rc = iqdb__fail(db, IQDB_NOTFOUND,
                        "iqdb_hit_key: the record of this hit was deleted or replaced since");
    } else {
        const uint8_t *kb = st->keys[slot];
        size_t len = iqdb__key_block_len(kb);
        *key_len = len;
        if (cap < len)
            rc = iqdb__fail(db, IQDB_INVALID, "iqdb_hit_key: the key has %zu bytes, cap is %zu",
                            len, cap);
        else
            memcpy(buf, iqdb__key_block_bytes(kb), len);
    }
    iqdb__rwlock_rdunlock(&db->lock);
    return rc;
}
