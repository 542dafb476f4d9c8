/*
 * idmap.c — see idmap.h.
 */
#include "store/idmap.h"

static inline size_t home(uint64_t key, size_t mask) { return (size_t)iqdb__mix64(key) & mask; }

void iqdb__idmap_init(iqdb__idmap *m, iqdb__mem *mem) {
    m->mem = mem;
    m->e = NULL;
    m->cap = 0;
    m->count = 0;
}

void iqdb__idmap_destroy(iqdb__idmap *m) {
    iqdb__free(m->mem, m->e, m->cap * sizeof *m->e);
    m->e = NULL;
    m->cap = m->count = 0;
}

static void raw_put(iqdb__idmap_entry *e, size_t mask, uint64_t key, uint32_t slot) {
    size_t i = home(key, mask);
    while (e[i].slot != IQDB__NO_SLOT && e[i].key != key) i = (i + 1) & mask;
    e[i].key = key;
    e[i].slot = slot;
}

int iqdb__idmap_reserve(iqdb__idmap *m, size_t extra) {
    if (extra > SIZE_MAX / 4 - m->count) return IQDB_NOMEM;
    size_t need = (m->count + extra) * 2;
    if (need <= m->cap) return IQDB_OK;
    size_t ncap = m->cap ? m->cap : 16;
    while (ncap < need) ncap *= 2;
    size_t bytes;
    if (iqdb__mul_overflow(ncap, sizeof *m->e, &bytes)) return IQDB_NOMEM;
    iqdb__idmap_entry *ne = iqdb__alloc(m->mem, bytes);
    if (!ne) return IQDB_NOMEM;
    for (size_t i = 0; i < ncap; i++) {
        ne[i].slot = IQDB__NO_SLOT;
        ne[i].key = 0;
        ne[i].pad_ = 0;
    }
    for (size_t i = 0; i < m->cap; i++)
        if (m->e[i].slot != IQDB__NO_SLOT) raw_put(ne, ncap - 1, m->e[i].key, m->e[i].slot);
    iqdb__free(m->mem, m->e, m->cap * sizeof *m->e);
    m->e = ne;
    m->cap = ncap;
    return IQDB_OK;
}

uint32_t iqdb__idmap_find(const iqdb__idmap *m, uint64_t key) {
    if (!m->cap) return IQDB__NO_SLOT;
    size_t mask = m->cap - 1, i = home(key, mask);
    for (;;) {
        const iqdb__idmap_entry *x = &m->e[i];
        if (x->slot == IQDB__NO_SLOT) return IQDB__NO_SLOT;
        if (x->key == key) return x->slot;
        i = (i + 1) & mask;
    }
}

void iqdb__idmap_put(iqdb__idmap *m, uint64_t key, uint32_t slot) {
    IQDB_ASSERT(m->cap && (m->count + 1) * 2 <= m->cap + 1);
    size_t mask = m->cap - 1, i = home(key, mask);
    while (m->e[i].slot != IQDB__NO_SLOT && m->e[i].key != key) i = (i + 1) & mask;
    if (m->e[i].slot == IQDB__NO_SLOT) m->count++;
    m->e[i].key = key;
    m->e[i].slot = slot;
}

void iqdb__idmap_renumber(iqdb__idmap *m, const uint32_t *to) {
    for (size_t i = 0; i < m->cap; i++)
        if (m->e[i].slot != IQDB__NO_SLOT) m->e[i].slot = to[m->e[i].slot];
}

/* Backward-shift deletion of entry i: pull later members of the probe run into the hole when
 * the hole lies between their home and their position (cyclically). */
static void erase_at(iqdb__idmap *m, size_t i) {
    size_t mask = m->cap - 1, hole = i, j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (m->e[j].slot == IQDB__NO_SLOT) break;
        size_t h = home(m->e[j].key, mask);
        int movable = hole <= j ? (h <= hole || h > j) : (h <= hole && h > j);
        if (movable) {
            m->e[hole] = m->e[j];
            hole = j;
        }
    }
    m->e[hole].slot = IQDB__NO_SLOT;
    m->e[hole].key = 0;
    m->count--;
}

uint32_t iqdb__idmap_remove(iqdb__idmap *m, uint64_t key) {
    if (!m->cap) return IQDB__NO_SLOT;
    size_t mask = m->cap - 1, i = home(key, mask);
    while (m->e[i].slot != IQDB__NO_SLOT && m->e[i].key != key) i = (i + 1) & mask;
    if (m->e[i].slot == IQDB__NO_SLOT) return IQDB__NO_SLOT;
    uint32_t slot = m->e[i].slot;
    erase_at(m, i);
    return slot;
}

void iqdb__idmap_add(iqdb__idmap *m, uint64_t key, uint32_t slot) {
    IQDB_ASSERT(m->cap && (m->count + 1) * 2 <= m->cap + 1);
    size_t mask = m->cap - 1, i = home(key, mask);
    while (m->e[i].slot != IQDB__NO_SLOT) i = (i + 1) & mask;
    m->e[i].key = key;
    m->e[i].slot = slot;
    m->count++;
}

uint32_t iqdb__idmap_next(const iqdb__idmap *m, uint64_t key, size_t *pos) {
    if (!m->cap) return IQDB__NO_SLOT;
    size_t mask = m->cap - 1, i = *pos == SIZE_MAX ? home(key, mask) : ((*pos + 1) & mask);
    /* The run is bounded: load <= 1/2 guarantees an empty entry. */
    for (; m->e[i].slot != IQDB__NO_SLOT; i = (i + 1) & mask)
        if (m->e[i].key == key) {
            *pos = i;
            return m->e[i].slot;
        }
    return IQDB__NO_SLOT;
}

int iqdb__idmap_remove_slot(iqdb__idmap *m, uint64_t key, uint32_t slot) {
    if (!m->cap) return 0;
    size_t mask = m->cap - 1, i = home(key, mask);
    for (; m->e[i].slot != IQDB__NO_SLOT; i = (i + 1) & mask)
        if (m->e[i].key == key && m->e[i].slot == slot) {
            erase_at(m, i);
            return 1;
        }
    return 0;
}

size_t iqdb__idmap_mem(const iqdb__idmap *m) { return m->cap * sizeof *m->e; }
