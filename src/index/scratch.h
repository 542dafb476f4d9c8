/*
 * scratch.h — per-search working memory, pooled per handle.
 *
 * A search takes a scratch from the handle's pool, grows what it needs, and gives it back. The
 * pool keeps as many scratches as searches ever ran at once, each as large as the largest
 * search it served, so steady-state searches allocate nothing. All growth goes through the
 * handle's allocator.
 *
 * Graph searches (hnsw.c) also keep here an epoch-tagged visited array — mark[slot] == epoch
 * means "seen in this search", so starting a search costs one increment instead of clearing an
 * array the size of the database — and their two candidate heaps. The same struct serves as the
 * HNSW writer's working memory (iqdb__scratch_create / iqdb__scratch_destroy).
 */
#ifndef IQDB_SCRATCH_H
#define IQDB_SCRATCH_H

#include "index/topk.h"
#include "internal.h"
#include "meta/filter.h"
#include "os/thread.h"

/* One graph-search candidate: its distance in the index's internal domain and its slot. */
typedef struct iqdb__gitem {
    float d;
    uint32_t slot;
} iqdb__gitem;

typedef struct iqdb__scratch {
    struct iqdb__scratch *next;
    iqdb__cand *cand;
    size_t cand_cap;
    float *dbuf;
    size_t dbuf_cap;
    const float **ptrs;
    size_t ptrs_cap;
    uint32_t *slots;
    size_t slots_cap;
    const float **qptrs;
    size_t qptrs_cap;
    iqdb__cfilter cf;
    /* index work memory (IVF and quantizers): floats (list keys, a prepared query), candidates
     * (list order, re-ranking shortlist) */
    float *fbuf;
    size_t fbuf_cap;
    iqdb__cand *lbuf;
    size_t lbuf_cap;
    iqdb__cand *cand2;
    size_t cand2_cap;
    /* graph searches */
    uint16_t *mark; /* visited iff mark[slot] == epoch */
    size_t mark_cap;
    uint16_t epoch;
    iqdb__gitem *gw, *gc, *gs; /* result heap, candidate heap, selection buffer */
    size_t gw_cap, gc_cap, gs_cap;
    uint32_t *ids; /* neighbour ids being scored */
    size_t ids_cap;
} iqdb__scratch;

typedef struct iqdb__scratch_pool {
    iqdb__mem *mem;
    iqdb__mutex m;
    iqdb__scratch *idle;
} iqdb__scratch_pool;

int iqdb__scratch_pool_init(iqdb__scratch_pool *p, iqdb__mem *mem);
void iqdb__scratch_pool_destroy(iqdb__scratch_pool *p);
/* A scratch (new when the pool is empty); NULL on allocation failure. */
iqdb__scratch *iqdb__scratch_get(iqdb__scratch_pool *p);
void iqdb__scratch_put(iqdb__scratch_pool *p, iqdb__scratch *s);

/* Grow helpers: IQDB_OK or IQDB_NOMEM. */
int iqdb__scratch_cand(iqdb__scratch *s, iqdb__mem *mem, size_t n);
int iqdb__scratch_rows(iqdb__scratch *s, iqdb__mem *mem, size_t n); /* dbuf, ptrs, slots */
int iqdb__scratch_qptrs(iqdb__scratch *s, iqdb__mem *mem, size_t n);
int iqdb__scratch_fbuf(iqdb__scratch *s, iqdb__mem *mem, size_t n);
int iqdb__scratch_lbuf(iqdb__scratch *s, iqdb__mem *mem, size_t n);
int iqdb__scratch_cand2(iqdb__scratch *s, iqdb__mem *mem, size_t n);
/* A visited array for slots [0, n): grows (zeroed) and keeps its epoch. */
int iqdb__scratch_marks(iqdb__scratch *s, iqdb__mem *mem, size_t n);
/* Starts a new visit: returns the epoch to tag with (clears the array when the tag wraps). */
uint16_t iqdb__scratch_epoch(iqdb__scratch *s);
/* Grows a graph-item buffer (gw, gc or gs) to at least n items. */
int iqdb__scratch_items(iqdb__mem *mem, iqdb__gitem **p, size_t *cap, size_t n);
int iqdb__scratch_ids(iqdb__scratch *s, iqdb__mem *mem, size_t n);

/* A scratch outside the pool (the HNSW writer's own); destroy accepts NULL. */
iqdb__scratch *iqdb__scratch_create(iqdb__mem *mem);
void iqdb__scratch_destroy(iqdb__mem *mem, iqdb__scratch *s);
/* Bytes a scratch holds. */
size_t iqdb__scratch_mem(const iqdb__scratch *s);

#endif
