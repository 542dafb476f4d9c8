/*
 * meta.h — metadata: the public iqdb_meta object, the handle's key dictionary, and the compact
 * per-record encoding ("blob") that the row store keeps.
 *
 * Keys are interned once per handle into the key dictionary (key bytes -> u32 key id), so a
 * stored record never repeats its key strings and a filter resolves each key once per query.
 *
 * Blob layout (also the on-disk record layout, so every reader treats it as hostile):
 *   varint  n                       entries, 1 .. IQDB_MAX_META_ENTRIES
 *   n times:
 *     varint  key id delta          first entry: the key id; later: id - previous id (>= 1)
 *     u8      tag                   0 null, 1 false, 2 true, 3 int, 4 double, 5 string
 *     payload                       int: zigzag varint; double: 8 bytes little-endian;
 *                                   string: varint length, then the bytes
 * Entries are in strictly increasing key-id order. Varints are LEB128, at most 10 bytes.
 */
#ifndef IQDB_META_H
#define IQDB_META_H

#include "internal.h"

/* ---- the public object ------------------------------------------------------------------ */

typedef struct iqdb__meta_entry {
    char *key; /* NUL-terminated copy */
    size_t key_len;
    iqdb_value v; /* strings are owned copies, NUL-terminated */
} iqdb__meta_entry;

struct iqdb_meta {
    iqdb__mem mem;
    iqdb__meta_entry *e; /* sorted by key bytes */
    size_t n, cap;
};

/* Validates a key (non-empty, <= IQDB_MAX_KEY_LEN) and returns its length via *len. */
int iqdb__key_check(const char *key, size_t *len);
/* Validates a value for storage or comparison (type known, no NaN, string bounds). */
int iqdb__value_check(const iqdb_value *v);
/* A copy of *v whose string (if any) is owned (allocated from mem) and NUL-terminated; bools
 * normalised to 0/1. IQDB_OK or IQDB_NOMEM. */
int iqdb__value_copy(iqdb__mem *mem, const iqdb_value *v, iqdb_value *out);
/* Frees what iqdb__value_copy allocated. */
void iqdb__value_free(iqdb__mem *mem, iqdb_value *v);
/* Binary search of a key in a meta object; NULL when absent. */
const iqdb__meta_entry *iqdb__meta_find(const iqdb_meta *m, const char *key, size_t len);

/* ---- key dictionary --------------------------------------------------------------------- */

#define IQDB__NO_KEY UINT32_MAX

typedef struct iqdb__keydict {
    iqdb__mem *mem;
    char **names; /* id -> NUL-terminated key */
    uint32_t *lens;
    size_t n, cap;
    uint32_t *table;  /* open addressing over ids; IQDB__NO_KEY = empty */
    size_t table_cap; /* power of two */
    size_t name_bytes;
} iqdb__keydict;

void iqdb__keydict_init(iqdb__keydict *d, iqdb__mem *mem);
void iqdb__keydict_destroy(iqdb__keydict *d);
/* The id of a key, or IQDB__NO_KEY. */
uint32_t iqdb__keydict_find(const iqdb__keydict *d, const char *key, size_t len);
/* The id of a key, adding it when new. IQDB_OK, IQDB_NOMEM, IQDB_FULL. */
int iqdb__keydict_intern(iqdb__keydict *d, const char *key, size_t len, uint32_t *id);
size_t iqdb__keydict_mem(const iqdb__keydict *d);
/* Writes the keys in id order (the snapshot's keys section, docs/FORMAT.md). */
int iqdb__keydict_serialize(const iqdb__keydict *d, iqdb__sink *sink);
/* Reads them back into an empty dictionary, so key i gets id i again. IQDB_CORRUPT for a bad
 * length, a 0 byte or a duplicate key; IQDB_NOMEM. */
int iqdb__keydict_load(iqdb__keydict *d, iqdb__source *src);
/* Checks a key read from a file (1 .. IQDB_MAX_KEY_LEN bytes, no 0 byte) and interns it; it
 * must be new, taking id d->n. IQDB_OK, IQDB_CORRUPT, IQDB_NOMEM, IQDB_FULL. */
int iqdb__keydict_add_new(iqdb__keydict *d, const char *key, size_t len);

/* ---- blobs ------------------------------------------------------------------------------ */

enum {
    IQDB__TAG_NULL = 0,
    IQDB__TAG_FALSE,
    IQDB__TAG_TRUE,
    IQDB__TAG_INT,
    IQDB__TAG_DOUBLE,
    IQDB__TAG_STRING,
    IQDB__N_TAGS
};

/* Encodes `m` (NULL or empty: *blob NULL, *len 0), interning its keys. The blob is allocated
 * from `mem`. On failure nothing is allocated (interned keys may remain: they are invisible). */
int iqdb__meta_encode(const iqdb_meta *m, iqdb__keydict *d, iqdb__mem *mem, uint8_t **blob,
                      uint32_t *len);
/* Decodes a blob into a new iqdb_meta allocated from `mem`. IQDB_NOMEM or IQDB_CORRUPT. */
int iqdb__meta_decode(const uint8_t *blob, uint32_t len, const iqdb__keydict *d, iqdb__mem *mem,
                      iqdb_meta **out);
/* Full structural check of a blob against a dictionary of n_keys keys. IQDB_OK or
 * IQDB_CORRUPT. */
int iqdb__meta_blob_check(const uint8_t *blob, uint32_t len, size_t n_keys);
/* Finds key id `key` in a (checked) blob. Returns 1 and fills *v (strings point into the blob)
 * when present, else 0. */
int iqdb__blob_find(const uint8_t *blob, uint32_t len, uint32_t key, iqdb_value *v);

#endif
