/*
 * cache.c — the result cache (see cache.h; the contract is in iqdb.h).
 *
 * Layout. Every entry is one block: the node, the query (dim floats), the hits and the
 * canonical filter bytes; a filtered entry also owns a clone of the filter and its compiled
 * form (for invalidation). Nodes sit in a chained hash table and in the policy's lists, head =
 * most recent. ARC uses four lists (T1, T2 and the ghost lists B1, B2 whose nodes hold only the
 * key's hash: a hash collision there costs adaptivity, never correctness); the other policies
 * use list 0 only. LFU also keeps its entries in a binary min-heap ordered by (use count, last
 * use), so the victim — the lowest count, ties to the least recently used — is the root: a hit,
 * an insertion and an eviction cost O(log entries). The scan of list 0 it replaces made a
 * missing search that evicts cost about 1 ms at 65,536 entries (now 3 us; 6 -> 1.8 us at 1,024),
 * far more than the search itself.
 *
 * Why exact entries may survive a write (iqdb__cache_on_write). An exact result is the k
 * matching rows with the smallest (distance, insert sequence). A write removes old versions
 * and adds new ones; each new version carries the newest sequence, so it loses every distance
 * tie. The result is unchanged unless (a) a removed version is one of its hits, or (b) a new
 * version matches the filter and either the entry held fewer than k hits (every match is in
 * it) or its distance is strictly below the k-th hit's. Distances are computed with the same
 * kernel ("rows") and the same finishing step as the scan, so they are bit-identical to what a
 * search computes (dist.h pins rows == pair == tile). Metadata changes are writes of a new
 * version, so they are covered by (a) and (b). The compiled filter of an entry names keys by
 * the handle's key ids; a write that adds keys makes it recompile first, so a filter on a key
 * that did not exist when the entry was cached still sees the record that introduces it.
 */
#include "cache.h"

#include "index/metric.h"
#include "os/thread.h"

enum { T1 = 0, T2 = 1, B1 = 2, B2 = 3 };
#define MAX_ENTRIES (1u << 20)

typedef struct cache_entry {
    struct cache_entry *hnext, *prev, *next;
    uint64_t hash;
    uint8_t list, ghost, exact;
    int complete;
    iqdb_strategy strategy;
    uint64_t freq, born_ns;
    uint64_t used;       /* LFU: the cache's use tick at the last hit or insertion */
    size_t hpos;         /* LFU: the entry's index in the heap */
    size_t block, bytes; /* allocated block; bytes charged to the byte bound */
    /* key */
    size_t k;
    uint32_t ef, n_probes;
    int pexact;
    size_t flen;
    uint8_t *fbytes;
    float *q;
    float qnorm;
    /* value */
    size_t n;
    iqdb_hit *hits;
    iqdb_filter *filter; /* clone, or NULL */
    iqdb__cfilter cf;
    size_t keys_n; /* key-dictionary size cf was compiled against */
} cache_entry;

typedef struct list {
    cache_entry *head, *tail;
    size_t n;
} list;

struct iqdb__cache {
    iqdb__mem *mem;
    iqdb__mutex mu;
    uint32_t dim;
    iqdb_cache_policy policy;
    size_t cap;
    uint64_t max_bytes, ttl_ns;
    cache_entry **buckets;
    size_t nb, nodes;
    list l[4];
    size_t len, p; /* real entries; ARC's target size of T1 */
    uint64_t bytes, ghost_bytes;
    uint64_t hits, misses, evictions, invalidations;
    cache_entry **heap; /* LFU: every real entry, min-heap by (freq, used) */
    size_t heap_n, heap_cap;
    uint64_t tick;
};

/* ---- keys ----------------------------------------------------------------------------------- */

/* Four independent multiply-rotate lanes over 32-byte strides, then a full mix: the query
 * (3 KiB at 784 dimensions) is hashed on every cached search, and one dependent mix64 per word
 * made that about 1.5 us; independent lanes let the multiplies overlap. */
static uint64_t hash_bytes(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    const uint64_t K = 0x9fb21c651e98df25ull;
    uint64_t l[4] = {h ^ 0x243f6a8885a308d3ull, h ^ 0x13198a2e03707344ull,
                     h ^ 0xa4093822299f31d0ull, h ^ 0x082efa98ec4e6c89ull};
    while (n >= 32) {
        for (int i = 0; i < 4; i++) {
            uint64_t w;
            memcpy(&w, b + 8 * i, 8);
            l[i] = (l[i] ^ w) * K;
            l[i] ^= l[i] >> 29;
        }
        b += 32;
        n -= 32;
    }
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, b, 8);
        l[0] = iqdb__mix64(l[0] ^ w);
        b += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, b, n);
    h = iqdb__mix64(l[0] ^ w ^ ((uint64_t)n << 56));
    h = iqdb__mix64(h ^ l[1]);
    h = iqdb__mix64(h ^ l[2]);
    return iqdb__mix64(h ^ l[3]);
}

static void put(uint8_t *out, size_t cap, size_t *at, const void *p, size_t n) {
    if (*at + n <= cap) memcpy(out + *at, p, n);
    *at += n;
}

static void put_value(uint8_t *out, size_t cap, size_t *at, const iqdb_value *v) {
    uint8_t t = (uint8_t)v->type;
    put(out, cap, at, &t, 1);
    switch (v->type) {
    case IQDB_TYPE_NULL: break;
    case IQDB_TYPE_BOOL: {
        uint8_t b = v->u.b != 0;
        put(out, cap, at, &b, 1);
        break;
    }
    case IQDB_TYPE_INT: put(out, cap, at, &v->u.i, 8); break;
    case IQDB_TYPE_DOUBLE: {
        double d = v->u.d == 0.0 ? 0.0 : v->u.d; /* -0.0 and 0.0 match the same records */
        put(out, cap, at, &d, 8);
        break;
    }
    case IQDB_TYPE_STRING: {
        uint64_t len = v->u.s.len;
        put(out, cap, at, &len, 8);
        put(out, cap, at, v->u.s.ptr, v->u.s.len);
        break;
    }
    }
}

/* The canonical bytes of a filter tree: the structure with every operand, type-tagged. Writes
 * what fits in cap and returns the full length. */
static size_t filter_bytes(const iqdb_filter *f, uint8_t *out, size_t cap, size_t at) {
    uint8_t hdr[2] = {f->kind, f->kind == IQDB__F_CMP ? f->op : 0};
    put(out, cap, &at, hdr, 2);
    uint32_t n32;
    switch ((iqdb__fkind)f->kind) {
    case IQDB__F_CMP:
    case IQDB__F_IN:
    case IQDB__F_EXISTS:
        n32 = (uint32_t)f->key_len;
        put(out, cap, &at, &n32, 4);
        put(out, cap, &at, f->key, f->key_len);
        if (f->kind == IQDB__F_CMP) put_value(out, cap, &at, &f->v);
        if (f->kind == IQDB__F_IN) {
            n32 = (uint32_t)f->n_vals;
            put(out, cap, &at, &n32, 4);
            for (size_t i = 0; i < f->n_vals; i++) put_value(out, cap, &at, &f->vals[i]);
        }
        break;
    case IQDB__F_AND:
    case IQDB__F_OR:
    case IQDB__F_NOT:
        n32 = (uint32_t)f->n_kids;
        put(out, cap, &at, &n32, 4);
        for (size_t i = 0; i < f->n_kids; i++) at = filter_bytes(f->kids[i], out, cap, at);
        break;
    }
    return at;
}

int iqdb__cache_key_init(iqdb__cache *c, iqdb__cache_key *key, const float *q, size_t k,
                         const iqdb_search_params *p) {
    key->q = q;
    key->k = k;
    key->ef = p->ef;
    key->n_probes = p->n_probes;
    key->exact = p->exact != 0;
    key->fbytes = NULL;
    key->flen = 0;
    if (p->filter) {
        size_t len = filter_bytes(p->filter, key->small, sizeof key->small, 0);
        if (len <= sizeof key->small) {
            key->fbytes = key->small;
        } else {
            key->fbytes = iqdb__alloc(c->mem, len);
            if (!key->fbytes) return IQDB_NOMEM;
            filter_bytes(p->filter, key->fbytes, len, 0);
        }
        key->flen = len;
    }
    uint64_t h = hash_bytes(0x1bdb, q, c->dim * sizeof *q);
    uint64_t params[4] = {(uint64_t)k, key->ef, key->n_probes, (uint64_t)key->exact};
    h = hash_bytes(h, params, sizeof params);
    if (key->fbytes) h = hash_bytes(h ^ 0xf11e, key->fbytes, key->flen);
    key->hash = h;
    return IQDB_OK;
}

void iqdb__cache_key_free(iqdb__cache *c, iqdb__cache_key *key) {
    if (key->fbytes && key->fbytes != key->small) iqdb__free(c->mem, key->fbytes, key->flen);
    key->fbytes = NULL;
}

static int key_equal(const iqdb__cache *c, const cache_entry *e, const iqdb__cache_key *key) {
    return e->hash == key->hash && e->k == key->k && e->ef == key->ef &&
           e->n_probes == key->n_probes && e->pexact == key->exact && e->flen == key->flen &&
           (e->flen == 0 || memcmp(e->fbytes, key->fbytes, e->flen) == 0) &&
           memcmp(e->q, key->q, c->dim * sizeof(float)) == 0;
}

/* ---- filter clone --------------------------------------------------------------------------- */

int iqdb__filter_clone(const iqdb_allocator *a, const iqdb_filter *f, iqdb_filter **out) {
    *out = NULL;
    if ((f->kind == IQDB__F_CMP || f->kind == IQDB__F_IN || f->kind == IQDB__F_EXISTS) &&
        memchr(f->key, 0, f->key_len))
        return IQDB_UNSUPPORTED; /* the builders take NUL-terminated keys */
    switch ((iqdb__fkind)f->kind) {
    case IQDB__F_CMP: return iqdb_filter_cmp(a, f->key, (iqdb_op)f->op, f->v, out);
    case IQDB__F_IN: return iqdb_filter_in(a, f->key, f->vals, f->n_vals, out);
    case IQDB__F_EXISTS: return iqdb_filter_exists(a, f->key, out);
    case IQDB__F_NOT: {
        iqdb_filter *kid;
        IQDB_TRY(iqdb__filter_clone(a, f->kids[0], &kid));
        return iqdb_filter_not(kid, out);
    }
    case IQDB__F_AND:
    case IQDB__F_OR: {
        iqdb__mem m;
        iqdb__mem_init(&m, a);
        size_t n = f->n_kids, bytes = (n ? n : 1) * sizeof(iqdb_filter *);
        iqdb_filter **kids = iqdb__alloc(&m, bytes);
        if (!kids) return IQDB_NOMEM;
        int rc = IQDB_OK;
        for (size_t i = 0; i < n; i++) {
            rc = iqdb__filter_clone(a, f->kids[i], &kids[i]);
            if (rc) {
                for (size_t j = 0; j < i; j++) iqdb_filter_destroy(kids[j]);
                iqdb__free(&m, kids, bytes);
                return rc;
            }
        }
        rc = f->kind == IQDB__F_AND ? iqdb_filter_and(a, kids, n, out)
                                    : iqdb_filter_or(a, kids, n, out);
        iqdb__free(&m, kids, bytes);
        return rc;
    }
    }
    return IQDB_ERROR;
}

/* ---- create / destroy ----------------------------------------------------------------------- */

int iqdb__cache_validate(const iqdb_options *o) {
    if (o->cache_entries > MAX_ENTRIES)
        return iqdb__fail(NULL, IQDB_INVALID, "cache_entries %u exceeds %u", o->cache_entries,
                          MAX_ENTRIES);
    if ((unsigned)o->cache_policy > IQDB_CACHE_ARC)
        return iqdb__fail(NULL, IQDB_INVALID, "unknown cache policy %d", (int)o->cache_policy);
    if (o->cache_reserved) return iqdb__fail(NULL, IQDB_INVALID, "cache_reserved must be 0");
    return IQDB_OK;
}

int iqdb__cache_create(iqdb__mem *mem, const iqdb_options *o, uint32_t dim, iqdb__cache **out) {
    *out = NULL;
    IQDB_TRY(iqdb__cache_validate(o));
    if (!o->cache_entries) return IQDB_OK;
    iqdb__cache *c = iqdb__calloc(mem, 1, sizeof *c);
    if (!c) return IQDB_NOMEM;
    c->mem = mem;
    c->dim = dim;
    c->policy = o->cache_policy == IQDB_CACHE_DEFAULT ? IQDB_CACHE_LRU : o->cache_policy;
    c->cap = o->cache_entries;
    c->max_bytes = o->cache_bytes;
    c->ttl_ns = (uint64_t)o->cache_ttl_ms * 1000000u;
    c->nb = 64;
    c->buckets = iqdb__calloc(mem, c->nb, sizeof *c->buckets);
    if (!c->buckets || iqdb__mutex_init(&c->mu)) {
        iqdb__free(mem, c->buckets, c->nb * sizeof *c->buckets);
        iqdb__free(mem, c, sizeof *c);
        return IQDB_NOMEM;
    }
    *out = c;
    return IQDB_OK;
}

/* ---- nodes ---------------------------------------------------------------------------------- */

static void list_push(list *l, cache_entry *e) {
    e->prev = NULL;
    e->next = l->head;
    if (l->head)
        l->head->prev = e;
    else
        l->tail = e;
    l->head = e;
    l->n++;
}

static void list_unlink(list *l, cache_entry *e) {
    if (e->prev)
        e->prev->next = e->next;
    else
        l->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        l->tail = e->prev;
    e->prev = e->next = NULL;
    l->n--;
}

static void hash_link(iqdb__cache *c, cache_entry *e) {
    if (c->nodes + 1 > c->nb) { /* grow (a failure only makes chains longer) */
        size_t nb = c->nb * 2;
        cache_entry **b = iqdb__calloc(c->mem, nb, sizeof *b);
        if (b) {
            for (size_t i = 0; i < c->nb; i++)
                for (cache_entry *x = c->buckets[i], *nx; x; x = nx) {
                    nx = x->hnext;
                    x->hnext = b[x->hash & (nb - 1)];
                    b[x->hash & (nb - 1)] = x;
                }
            iqdb__free(c->mem, c->buckets, c->nb * sizeof *c->buckets);
            c->buckets = b;
            c->nb = nb;
        }
    }
    cache_entry **slot = &c->buckets[e->hash & (c->nb - 1)];
    e->hnext = *slot;
    *slot = e;
    c->nodes++;
}

static void hash_unlink(iqdb__cache *c, cache_entry *e) {
    cache_entry **pp = &c->buckets[e->hash & (c->nb - 1)];
    while (*pp && *pp != e) pp = &(*pp)->hnext;
    if (*pp) *pp = e->hnext;
    c->nodes--;
}

static void free_entry(iqdb__cache *c, cache_entry *e) {
    if (!e->ghost) {
        iqdb_filter_destroy(e->filter);
        iqdb__cfilter_free(&e->cf, c->mem);
    }
    iqdb__free(c->mem, e, e->block);
}

/* ---- LFU heap ------------------------------------------------------------------------------ */

static int lfu_before(const cache_entry *a, const cache_entry *b) {
    return a->freq < b->freq || (a->freq == b->freq && a->used < b->used);
}

static void heap_set(iqdb__cache *c, size_t i, cache_entry *e) {
    c->heap[i] = e;
    e->hpos = i;
}

static void heap_up(iqdb__cache *c, size_t i) {
    cache_entry *e = c->heap[i];
    while (i > 0 && lfu_before(e, c->heap[(i - 1) / 2])) {
        heap_set(c, i, c->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(c, i, e);
}

static void heap_down(iqdb__cache *c, size_t i) {
    cache_entry *e = c->heap[i];
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        const cache_entry *best = e;
        if (l < c->heap_n && lfu_before(c->heap[l], best)) best = c->heap[m = l];
        if (l + 1 < c->heap_n && lfu_before(c->heap[l + 1], best)) m = l + 1;
        if (m == i) break;
        heap_set(c, i, c->heap[m]);
        i = m;
    }
    heap_set(c, i, e);
}

/* Room for one more entry in the heap (before an insertion). IQDB_OK or IQDB_NOMEM. */
static int heap_reserve(iqdb__cache *c) {
    return iqdb__grow(c->mem, (void **)&c->heap, &c->heap_cap, c->heap_n + 1, sizeof *c->heap);
}

static void heap_remove(iqdb__cache *c, cache_entry *e) {
    size_t i = e->hpos;
    cache_entry *last = c->heap[--c->heap_n];
    if (last == e) return;
    heap_set(c, i, last);
    heap_up(c, i);
    heap_down(c, last->hpos);
}

/* Unlinks and frees a node (real or ghost). */
static void drop(iqdb__cache *c, cache_entry *e) {
    if (c->policy == IQDB_CACHE_LFU) heap_remove(c, e);
    list_unlink(&c->l[e->list], e);
    hash_unlink(c, e);
    if (e->ghost) {
        c->ghost_bytes -= e->block;
    } else {
        c->len--;
        c->bytes -= e->bytes;
    }
    free_entry(c, e);
}

/* ARC: a real entry leaves the cache and its key goes to ghost list `to` (B1 or B2). */
static void to_ghost(iqdb__cache *c, cache_entry *e, int to) {
    uint64_t h = e->hash;
    drop(c, e);
    c->evictions++;
    cache_entry *g = iqdb__calloc(c->mem, 1, sizeof *g);
    if (!g) return; /* only adaptivity is lost */
    g->ghost = 1;
    g->hash = h;
    g->block = sizeof *g;
    g->list = (uint8_t)to;
    list_push(&c->l[to], g);
    hash_link(c, g);
    c->ghost_bytes += g->block;
    /* evictions for bytes or after invalidations can outrun ARC's own bookkeeping: keep the
     * ghosts within the capacity */
    while (c->l[B1].n + c->l[B2].n > c->cap)
        drop(c, c->l[B1].n >= c->l[B2].n ? c->l[B1].tail : c->l[B2].tail);
}

static cache_entry *find_ghost(iqdb__cache *c, uint64_t h) {
    for (cache_entry *e = c->buckets[h & (c->nb - 1)]; e; e = e->hnext)
        if (e->ghost && e->hash == h) return e;
    return NULL;
}

/* ARC's REPLACE: one entry of T1 or T2 goes to its ghost list. */
static void arc_replace(iqdb__cache *c, int hit_in_b2) {
    list *t1 = &c->l[T1], *t2 = &c->l[T2];
    if (t1->n && (t1->n > c->p || (hit_in_b2 && t1->n == c->p) || !t2->n))
        to_ghost(c, t1->tail, B1);
    else if (t2->n)
        to_ghost(c, t2->tail, B2);
}

/* Frees one entry to make room (not `keep`). Returns 0 when nothing could go. */
static int evict_one(iqdb__cache *c, const cache_entry *keep) {
    if (c->policy == IQDB_CACHE_ARC) {
        list *t1 = &c->l[T1], *t2 = &c->l[T2];
        size_t before = c->len;
        if (t1->tail == keep && t2->n == 0) return 0;
        if (t2->tail == keep && t1->n == 0) return 0;
        if (t1->n && t1->tail != keep && (t1->n > c->p || !t2->n || t2->tail == keep))
            to_ghost(c, t1->tail, B1);
        else if (t2->n && t2->tail != keep)
            to_ghost(c, t2->tail, B2);
        else if (t1->n && t1->tail != keep)
            to_ghost(c, t1->tail, B1);
        return c->len < before;
    }
    cache_entry *v = NULL;
    if (c->policy == IQDB_CACHE_LFU) {
        if (c->heap_n) v = c->heap[0];
        if (v == keep) { /* the better child of the root */
            v = c->heap_n > 1 ? c->heap[1] : NULL;
            if (c->heap_n > 2 && lfu_before(c->heap[2], v)) v = c->heap[2];
        }
    } else {
        v = c->l[0].tail;
        if (v == keep) v = v->prev;
    }
    if (!v) return 0;
    drop(c, v);
    c->evictions++;
    return 1;
}

/* Links a new real entry by the policy's insertion rule (with room made first). */
static void policy_insert(iqdb__cache *c, cache_entry *e) {
    if (c->policy != IQDB_CACHE_ARC) {
        while (c->len >= c->cap && evict_one(c, NULL)) {
        }
        e->list = 0;
        list_push(&c->l[0], e);
        if (c->policy == IQDB_CACHE_LFU) { /* room was reserved by the caller */
            e->used = ++c->tick;
            heap_set(c, c->heap_n++, e);
            heap_up(c, e->hpos);
        }
    } else {
        list *t1 = &c->l[T1], *t2 = &c->l[T2], *b1 = &c->l[B1], *b2 = &c->l[B2];
        cache_entry *g = find_ghost(c, e->hash);
        if (g && g->list == B1) {
            size_t d = IQDB_MAX(b1->n ? b2->n / b1->n : 1, (size_t)1);
            c->p = IQDB_MIN(c->cap, c->p + d);
            drop(c, g);
            if (c->len >= c->cap) arc_replace(c, 0);
            e->list = T2;
        } else if (g && g->list == B2) {
            size_t d = IQDB_MAX(b2->n ? b1->n / b2->n : 1, (size_t)1);
            c->p = c->p > d ? c->p - d : 0;
            drop(c, g);
            if (c->len >= c->cap) arc_replace(c, 1);
            e->list = T2;
        } else {
            if (t1->n + b1->n >= c->cap) {
                if (t1->n < c->cap) {
                    if (b1->n) drop(c, b1->tail);
                    if (c->len >= c->cap) arc_replace(c, 0);
                } else {
                    drop(c, t1->tail);
                    c->evictions++;
                }
            } else if (t1->n + t2->n + b1->n + b2->n >= c->cap) {
                if (t1->n + t2->n + b1->n + b2->n >= 2 * c->cap && b2->n) drop(c, b2->tail);
                if (c->len >= c->cap) arc_replace(c, 0);
            }
            e->list = T1;
        }
        while (c->len >= c->cap && evict_one(c, NULL)) {
        }
        list_push(&c->l[e->list], e);
    }
    hash_link(c, e);
    c->len++;
    c->bytes += e->bytes;
    if (c->max_bytes)
        while (c->bytes > c->max_bytes && evict_one(c, e)) {
        }
}

static cache_entry *find(iqdb__cache *c, const iqdb__cache_key *key) {
    for (cache_entry *e = c->buckets[key->hash & (c->nb - 1)]; e; e = e->hnext)
        if (!e->ghost && key_equal(c, e, key)) return e;
    return NULL;
}

/* ---- lookup and insert ---------------------------------------------------------------------- */

int iqdb__cache_lookup(iqdb__cache *c, const iqdb__cache_key *key, iqdb_hit *hits, size_t *n,
                       iqdb__sinfo *info) {
    iqdb__mutex_lock(&c->mu);
    cache_entry *e = find(c, key);
    if (e && c->ttl_ns && iqdb__now_ns() - e->born_ns >= c->ttl_ns) {
        drop(c, e);
        c->evictions++;
        e = NULL;
    }
    if (!e) {
        c->misses++;
        iqdb__mutex_unlock(&c->mu);
        return 0;
    }
    c->hits++;
    if (e->n) memcpy(hits, e->hits, e->n * sizeof *hits);
    *n = e->n;
    info->complete = e->complete;
    info->strategy = e->strategy;
    switch (c->policy) {
    case IQDB_CACHE_LFU:
        e->freq++;
        e->used = ++c->tick;
        heap_down(c, e->hpos);
        list_unlink(&c->l[0], e);
        list_push(&c->l[0], e);
        break;
    case IQDB_CACHE_DEFAULT:
    case IQDB_CACHE_LRU:
        e->freq++;
        list_unlink(&c->l[0], e);
        list_push(&c->l[0], e);
        break;
    case IQDB_CACHE_FIFO: break;
    case IQDB_CACHE_ARC:
        list_unlink(&c->l[e->list], e);
        e->list = T2;
        list_push(&c->l[T2], e);
        break;
    }
    iqdb__mutex_unlock(&c->mu);
    return 1;
}

void iqdb__cache_insert(iqdb__cache *c, const iqdb__cache_key *key, const iqdb_filter *filter,
                        const iqdb__keydict *keys, float qnorm, int exact, const iqdb_hit *hits,
                        size_t n, const iqdb__sinfo *info) {
    size_t qb = c->dim * sizeof(float), hb, block;
    if (iqdb__mul_overflow(n, sizeof *hits, &hb)) return;
    block = sizeof(cache_entry) + qb + hb + key->flen;
    if (block < hb) return;
    if (c->max_bytes && block > c->max_bytes) return; /* could never fit */
    cache_entry *e = iqdb__alloc(c->mem, block);
    if (!e) return;
    memset(e, 0, sizeof *e);
    e->block = block;
    e->q = (float *)(e + 1);
    e->hits = (iqdb_hit *)((uint8_t *)e->q + qb);
    e->fbytes = key->flen ? (uint8_t *)e->hits + hb : NULL;
    memcpy(e->q, key->q, qb);
    if (n) memcpy(e->hits, hits, hb);
    if (key->flen) memcpy(e->fbytes, key->fbytes, key->flen);
    e->hash = key->hash;
    e->k = key->k;
    e->ef = key->ef;
    e->n_probes = key->n_probes;
    e->pexact = key->exact;
    e->flen = key->flen;
    e->n = n;
    e->qnorm = qnorm;
    e->exact = exact != 0;
    e->complete = info->complete;
    e->strategy = info->strategy;
    e->freq = 1;
    if (c->ttl_ns) e->born_ns = iqdb__now_ns();
    e->bytes = block;
    if (filter && e->exact) { /* approximate entries die at any write: no filter needed */
        if (iqdb__filter_clone(&c->mem->a, filter, &e->filter) ||
            iqdb__filter_compile(e->filter, keys, &e->cf, c->mem)) {
            free_entry(c, e);
            return;
        }
        e->keys_n = keys->n;
        e->bytes += iqdb__cfilter_mem(&e->cf) + 2 * key->flen + 64;
    }
    if (c->max_bytes && e->bytes > c->max_bytes) {
        free_entry(c, e);
        return;
    }
    iqdb__mutex_lock(&c->mu);
    if (find(c, key) || (c->policy == IQDB_CACHE_LFU && heap_reserve(c))) {
        /* a concurrent miss of the same search got here first, or no memory for the heap */
        iqdb__mutex_unlock(&c->mu);
        free_entry(c, e);
        return;
    }
    policy_insert(c, e);
    iqdb__mutex_unlock(&c->mu);
}

/* ---- invalidation --------------------------------------------------------------------------- */

static int cmp_id(const void *a, const void *b) {
    iqdb_id x = *(const iqdb_id *)a, y = *(const iqdb_id *)b;
    return (x > y) - (x < y);
}

static int holds_any(const cache_entry *e, const iqdb_id *ids, size_t n, int sorted) {
    for (size_t i = 0; i < e->n; i++) {
        iqdb_id h = e->hits[i].id;
        if (sorted) {
            if (bsearch(&h, ids, n, sizeof *ids, cmp_id)) return 1;
        } else {
            for (size_t j = 0; j < n; j++)
                if (ids[j] == h) return 1;
        }
    }
    return 0;
}

/* Could one of the new rows enter e's result? Uses ptrs/dist/ms as scratch (n_slots each). */
static int new_rows_enter(iqdb__cache *c, cache_entry *e, const iqdb__env *env,
                          const iqdb__keydict *keys, const uint32_t *slots, size_t n_slots,
                          const float **ptrs, float *dist, uint32_t *ms) {
    const iqdb__store *st = env->store;
    if (e->filter && e->keys_n != keys->n) { /* new keys: resolve them */
        if (iqdb__filter_compile(e->filter, keys, &e->cf, c->mem)) return 1; /* play safe */
        e->keys_n = keys->n;
    }
    size_t m = 0;
    for (size_t i = 0; i < n_slots; i++) {
        uint32_t s = slots[i];
        if (!st->live[s]) continue; /* replaced again later in the same batch */
        if (e->filter && !iqdb__cfilter_eval(&e->cf, st->meta[s], st->meta_len[s])) continue;
        ptrs[m] = iqdb__store_vec(st, s);
        ms[m++] = s;
    }
    if (m == 0) return 0;
    if (e->n < e->k) return 1; /* it holds every match: a new one enters */
    env->kern->rows[env->op](e->q, ptrs, m, c->dim, dist);
    float kth = e->hits[e->n - 1].distance;
    for (size_t j = 0; j < m; j++)
        if (iqdb__finish(env->metric, dist[j], e->qnorm, st->sqnorm[ms[j]]) < kth) return 1;
    return 0;
}

static void clear_locked(iqdb__cache *c, int count) {
    for (int l = 0; l < 4; l++)
        while (c->l[l].head) {
            cache_entry *e = c->l[l].head;
            if (!e->ghost && count) c->invalidations++;
            drop(c, e);
        }
    c->p = 0;
}

void iqdb__cache_on_write(iqdb__cache *c, const iqdb__env *env, const iqdb__keydict *keys,
                          const iqdb_id *ids, size_t n_ids, const uint32_t *slots, size_t n_slots) {
    if (!c) return;
    iqdb__mutex_lock(&c->mu);
    if (c->len == 0) {
        iqdb__mutex_unlock(&c->mu);
        return;
    }
    /* A write of more rows than half the database (a bulk import) would cost more to check,
     * n_slots distances per entry, than recomputing each entry costs, one scan: forget them all,
     * which is always correct. */
    if (n_slots > 64 && n_slots > env->store->count / 2) {
        clear_locked(c, 1);
        iqdb__mutex_unlock(&c->mu);
        return;
    }
    size_t per = sizeof(float *) + sizeof(float) + sizeof(uint32_t), sbytes = 0, ibytes = 0;
    uint8_t *scratch = NULL;
    iqdb_id *sorted = NULL;
    int ok = !iqdb__mul_overflow(n_slots ? n_slots : 1, per, &sbytes) &&
             (scratch = iqdb__alloc(c->mem, sbytes)) != NULL;
    if (ok && n_ids > 16) {
        ibytes = n_ids * sizeof *ids;
        sorted = iqdb__alloc(c->mem, ibytes);
        if (sorted) {
            memcpy(sorted, ids, ibytes);
            qsort(sorted, n_ids, sizeof *sorted, cmp_id);
        } else {
            ok = 0;
        }
    }
    if (!ok) { /* no memory to decide: forgetting everything is always correct */
        clear_locked(c, 1);
    } else {
        const float **ptrs = (const float **)scratch;
        float *dist = (float *)(ptrs + (n_slots ? n_slots : 1));
        uint32_t *ms = (uint32_t *)(dist + (n_slots ? n_slots : 1));
        for (int l = 0; l < 2; l++)
            for (cache_entry *e = c->l[l].head, *nx; e; e = nx) {
                nx = e->next;
                if (e->ghost) continue;
                if (!e->exact || holds_any(e, sorted ? sorted : ids, n_ids, sorted != NULL) ||
                    new_rows_enter(c, e, env, keys, slots, n_slots, ptrs, dist, ms)) {
                    drop(c, e);
                    c->invalidations++;
                }
            }
    }
    iqdb__mutex_unlock(&c->mu);
    iqdb__free(c->mem, scratch, sbytes);
    iqdb__free(c->mem, sorted, ibytes);
}

void iqdb__cache_clear(iqdb__cache *c) {
    if (!c) return;
    iqdb__mutex_lock(&c->mu);
    clear_locked(c, 1);
    iqdb__mutex_unlock(&c->mu);
}

void iqdb__cache_stats_get(iqdb__cache *c, iqdb__cache_stats *s) {
    memset(s, 0, sizeof *s);
    if (!c) return;
    iqdb__mutex_lock(&c->mu);
    s->hits = c->hits;
    s->misses = c->misses;
    s->evictions = c->evictions;
    s->invalidations = c->invalidations;
    s->len = c->len;
    s->capacity = c->cap;
    s->bytes = c->bytes;
    s->max_bytes = c->max_bytes;
    s->mem = sizeof *c + c->nb * sizeof *c->buckets + c->heap_cap * sizeof *c->heap + c->bytes +
             c->ghost_bytes;
    iqdb__mutex_unlock(&c->mu);
}

void iqdb__cache_destroy(iqdb__cache *c) {
    if (!c) return;
    clear_locked(c, 0);
    iqdb__free(c->mem, c->heap, c->heap_cap * sizeof *c->heap);
    iqdb__mutex_destroy(&c->mu);
    iqdb__free(c->mem, c->buckets, c->nb * sizeof *c->buckets);
    iqdb__free(c->mem, c, sizeof *c);
}
