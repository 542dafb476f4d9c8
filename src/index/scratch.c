/*
 * scratch.c — see scratch.h.
 */
#include "index/scratch.h"

int iqdb__scratch_pool_init(iqdb__scratch_pool *p, iqdb__mem *mem) {
    p->mem = mem;
    p->idle = NULL;
    return iqdb__mutex_init(&p->m) ? IQDB_NOMEM : IQDB_OK;
}

static void scratch_free(iqdb__mem *mem, iqdb__scratch *s) {
    iqdb__free(mem, s->mark, s->mark_cap * sizeof *s->mark);
    iqdb__free(mem, s->gw, s->gw_cap * sizeof *s->gw);
    iqdb__free(mem, s->gc, s->gc_cap * sizeof *s->gc);
    iqdb__free(mem, s->gs, s->gs_cap * sizeof *s->gs);
    iqdb__free(mem, s->ids, s->ids_cap * sizeof *s->ids);
    iqdb__free(mem, s->cand, s->cand_cap * sizeof *s->cand);
    iqdb__free(mem, s->dbuf, s->dbuf_cap * sizeof *s->dbuf);
    iqdb__free(mem, s->ptrs, s->ptrs_cap * sizeof *s->ptrs);
    iqdb__free(mem, s->slots, s->slots_cap * sizeof *s->slots);
    iqdb__free(mem, s->qptrs, s->qptrs_cap * sizeof *s->qptrs);
    iqdb__free(mem, s->fbuf, s->fbuf_cap * sizeof *s->fbuf);
    iqdb__free(mem, s->lbuf, s->lbuf_cap * sizeof *s->lbuf);
    iqdb__free(mem, s->cand2, s->cand2_cap * sizeof *s->cand2);
    iqdb__cfilter_free(&s->cf, mem);
    iqdb__free(mem, s, sizeof *s);
}

void iqdb__scratch_pool_destroy(iqdb__scratch_pool *p) {
    while (p->idle) {
        iqdb__scratch *s = p->idle;
        p->idle = s->next;
        scratch_free(p->mem, s);
    }
    iqdb__mutex_destroy(&p->m);
}

iqdb__scratch *iqdb__scratch_get(iqdb__scratch_pool *p) {
    iqdb__mutex_lock(&p->m);
    iqdb__scratch *s = p->idle;
    if (s) p->idle = s->next;
    iqdb__mutex_unlock(&p->m);
    if (!s) s = iqdb__calloc(p->mem, 1, sizeof *s);
    return s;
}

void iqdb__scratch_put(iqdb__scratch_pool *p, iqdb__scratch *s) {
    if (!s) return;
    iqdb__mutex_lock(&p->m);
    s->next = p->idle;
    p->idle = s;
    iqdb__mutex_unlock(&p->m);
}

int iqdb__scratch_cand(iqdb__scratch *s, iqdb__mem *mem, size_t n) {
    void *v = s->cand;
    int rc = iqdb__grow(mem, &v, &s->cand_cap, n ? n : 1, sizeof *s->cand);
    s->cand = v;
    return rc;
}

int iqdb__scratch_rows(iqdb__scratch *s, iqdb__mem *mem, size_t n) {
    void *v = s->dbuf;
    IQDB_TRY(iqdb__grow(mem, &v, &s->dbuf_cap, n, sizeof *s->dbuf));
    s->dbuf = v;
    v = (void *)s->ptrs;
    IQDB_TRY(iqdb__grow(mem, &v, &s->ptrs_cap, n, sizeof *s->ptrs));
    s->ptrs = v;
    v = s->slots;
    IQDB_TRY(iqdb__grow(mem, &v, &s->slots_cap, n, sizeof *s->slots));
    s->slots = v;
    return IQDB_OK;
}

int iqdb__scratch_qptrs(iqdb__scratch *s, iqdb__mem *mem, size_t n) {
    void *v = (void *)s->qptrs;
    int rc = iqdb__grow(mem, &v, &s->qptrs_cap, n, sizeof *s->qptrs);
    s->qptrs = v;
    return rc;
}

/* One grow helper per typed buffer: iqdb__grow works on void pointers. */
#define IQDB_SCRATCH_GROW(name, field, cap)                                 \
    int iqdb__scratch_##name(iqdb__scratch *s, iqdb__mem *mem, size_t n) {  \
        void *v = s->field;                                                 \
        int rc = iqdb__grow(mem, &v, &s->cap, n ? n : 1, sizeof *s->field); \
        s->field = v;                                                       \
        return rc;                                                          \
    }
IQDB_SCRATCH_GROW(fbuf, fbuf, fbuf_cap)
IQDB_SCRATCH_GROW(lbuf, lbuf, lbuf_cap)
IQDB_SCRATCH_GROW(cand2, cand2, cand2_cap)

int iqdb__scratch_marks(iqdb__scratch *s, iqdb__mem *mem, size_t n) {
    if (n <= s->mark_cap) return IQDB_OK;
    /* Exact growth, not doubling: the array is as large as the database (2 bytes a slot) and
     * the index grows its own capacity geometrically already. */
    uint16_t *m = iqdb__calloc(mem, n, sizeof *m);
    if (!m) return IQDB_NOMEM;
    if (s->mark_cap) memcpy(m, s->mark, s->mark_cap * sizeof *m);
    iqdb__free(mem, s->mark, s->mark_cap * sizeof *s->mark);
    s->mark = m;
    s->mark_cap = n;
    return IQDB_OK;
}

uint16_t iqdb__scratch_epoch(iqdb__scratch *s) {
    if (++s->epoch == 0) { /* wrapped: old tags could collide with new ones */
        if (s->mark_cap) memset(s->mark, 0, s->mark_cap * sizeof *s->mark);
        s->epoch = 1;
    }
    return s->epoch;
}

int iqdb__scratch_items(iqdb__mem *mem, iqdb__gitem **p, size_t *cap, size_t n) {
    void *v = *p;
    int rc = iqdb__grow(mem, &v, cap, n ? n : 1, sizeof **p);
    *p = v;
    return rc;
}

int iqdb__scratch_ids(iqdb__scratch *s, iqdb__mem *mem, size_t n) {
    void *v = s->ids;
    int rc = iqdb__grow(mem, &v, &s->ids_cap, n ? n : 1, sizeof *s->ids);
    s->ids = v;
    return rc;
}

iqdb__scratch *iqdb__scratch_create(iqdb__mem *mem) {
    return iqdb__calloc(mem, 1, sizeof(iqdb__scratch));
}

void iqdb__scratch_destroy(iqdb__mem *mem, iqdb__scratch *s) {
    if (s) scratch_free(mem, s);
}

size_t iqdb__scratch_mem(const iqdb__scratch *s) {
    if (!s) return 0;
    return sizeof *s + s->cand_cap * sizeof *s->cand + s->dbuf_cap * sizeof *s->dbuf +
           s->ptrs_cap * sizeof *s->ptrs + s->slots_cap * sizeof *s->slots +
           s->qptrs_cap * sizeof *s->qptrs + s->mark_cap * sizeof *s->mark +
           (s->gw_cap + s->gc_cap + s->gs_cap) * sizeof(iqdb__gitem) + s->ids_cap * sizeof *s->ids +
           s->fbuf_cap * sizeof *s->fbuf + (s->lbuf_cap + s->cand2_cap) * sizeof(iqdb__cand) +
           iqdb__cfilter_mem(&s->cf);
}
