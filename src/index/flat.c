/*
 * flat.c — exact search by scanning the row store.
 *
 * Single query: rows are taken in groups of GROUP consecutive slots; the live (and, with a
 * filter, matching) ones go through the "rows" kernel into a distance buffer, then into the
 * top-k heap. The scan reads the arena sequentially, so it runs at memory bandwidth for large
 * dimensions (measured in bench/; see docs/benchmarks.md).
 *
 * Batch: queries are cut into blocks of QBLOCK that fit in L2 with one group of rows; each
 * block is a task for the worker pool. A task streams every row group once and computes all
 * block x group distances with the "tile" kernel, which performs the same per-pair arithmetic
 * as the single-query kernel — so a batch returns exactly what single searches would. With a
 * filter, the matching rows are listed once per batch, not once per block.
 */
#include "index/flat.h"

#include "index/metric.h"

#define GROUP 64
#define MAX_QBLOCK 128

/* Offers m computed rows to the heap, rejecting in the raw domain first (see metric.h). */
void iqdb__flat_push(const iqdb__env *env, float qnorm, const float *raw, const uint32_t *slots,
                     size_t m, iqdb__topk *top) {
    const iqdb__store *st = env->store;
    const iqdb_metric metric = env->metric;
    float bound = iqdb__topk_bound(top), lim = iqdb__raw_limit(metric, bound);
    for (size_t i = 0; i < m; i++) {
        if (iqdb__raw_key(metric, raw[i]) > lim) continue;
        uint32_t slot = slots[i];
        float dist = iqdb__finish(metric, raw[i], qnorm, st->sqnorm[slot]);
        if (dist > bound) continue;
        iqdb__topk_push(top, dist, st->seqs[slot], slot);
        float nb = iqdb__topk_bound(top);
        if (nb != bound) {
            bound = nb;
            lim = iqdb__raw_limit(metric, bound);
        }
    }
}

int iqdb__flat_search(const iqdb__env *env, const iqdb__query *q, iqdb__scratch *s, iqdb__topk *top,
                      iqdb__sinfo *info) {
    const iqdb__store *st = env->store;
    IQDB_TRY(iqdb__scratch_rows(s, env->mem, GROUP));
    iqdb__rows_fn rows = env->kern->rows[env->op];
    const size_t d = st->dim, n_slots = st->n_slots;
    uint64_t visited = 0, matched = 0;
    for (size_t base = 0; base < n_slots; base += GROUP) {
        size_t end = IQDB_MIN(base + GROUP, n_slots), m = 0;
        for (size_t slot = base; slot < end; slot++) {
            if (!st->live[slot]) continue;
            visited++;
            if (q->filter && !iqdb__cfilter_eval(q->filter, st->meta[slot], st->meta_len[slot]))
                continue;
            s->ptrs[m] = iqdb__store_vec(st, (uint32_t)slot);
            s->slots[m++] = (uint32_t)slot;
        }
        if (!m) continue;
        matched += m;
        rows(q->vec, s->ptrs, m, d, s->dbuf);
        iqdb__flat_push(env, q->qnorm, s->dbuf, s->slots, m, top);
    }
    info->complete = 1;
    info->strategy = q->filter ? IQDB_STRATEGY_SCAN_FILTERED : IQDB_STRATEGY_SCAN;
    info->n_distances += matched;
    info->n_visited += visited;
    info->n_matched += matched;
    return IQDB_OK;
}

/* ---- batch ---------------------------------------------------------------------------------- */

typedef struct batch_ctx {
    const iqdb__env *env;
    const iqdb__batch *b;
    const uint32_t *match; /* slots to scan (filtered), or NULL: every live slot */
    size_t n_match;
    size_t qblock;
    _Atomic int rc;
} batch_ctx;

/* Fills ptrs/slots with the next group of rows starting at cursor *pos; returns the count. */
static size_t next_group(const batch_ctx *c, size_t *pos, iqdb__scratch *s) {
    const iqdb__store *st = c->env->store;
    size_t m = 0;
    if (c->match) {
        while (m < GROUP && *pos < c->n_match) {
            uint32_t slot = c->match[(*pos)++];
            s->ptrs[m] = iqdb__store_vec(st, slot);
            s->slots[m++] = slot;
        }
        return m;
    }
    while (m < GROUP && *pos < st->n_slots) {
        size_t slot = (*pos)++;
        if (!st->live[slot]) continue;
        s->ptrs[m] = iqdb__store_vec(st, (uint32_t)slot);
        s->slots[m++] = (uint32_t)slot;
    }
    return m;
}

static void batch_task(void *arg, size_t task) {
    batch_ctx *c = arg;
    const iqdb__env *env = c->env;
    const iqdb__batch *b = c->b;
    const iqdb__store *st = env->store;
    size_t q0 = task * c->qblock, nq = IQDB_MIN(c->qblock, b->nq - q0), k = b->proto.k;
    iqdb__scratch *s = iqdb__scratch_get(env->scratch);
    if (!s || iqdb__scratch_rows(s, env->mem, GROUP * IQDB_MAX(nq, 1)) ||
        iqdb__scratch_cand(s, env->mem, nq * k) || iqdb__scratch_qptrs(s, env->mem, nq)) {
        atomic_store(&c->rc, IQDB_NOMEM);
        iqdb__scratch_put(env->scratch, s);
        return;
    }
    /* dbuf holds nq x GROUP distances; ptrs/slots use the first GROUP entries; the nq heaps lie
     * back to back in cand, their fill levels in fill[]. */
    for (size_t i = 0; i < nq; i++) s->qptrs[i] = b->qs + (q0 + i) * b->dim;
    iqdb__tile_fn tile = env->kern->tile[env->op];
    size_t pos = 0, m, fill[MAX_QBLOCK];
    IQDB_ASSERT(nq <= MAX_QBLOCK);
    for (size_t i = 0; i < nq; i++) fill[i] = 0;
    while ((m = next_group(c, &pos, s)) > 0) {
        tile(s->qptrs, nq, s->ptrs, m, b->dim, s->dbuf);
        for (size_t i = 0; i < nq; i++) {
            iqdb__topk t = {s->cand + i * k, fill[i], k};
            float qn = b->qnorms ? b->qnorms[q0 + i] : 0.0f;
            iqdb__flat_push(env, qn, s->dbuf + i * m, s->slots, m, &t);
            fill[i] = t.n;
        }
    }
    for (size_t i = 0; i < nq; i++) {
        iqdb__topk t = {s->cand + i * k, fill[i], k};
        iqdb__hits_from_top(st, &t, b->hits + (q0 + i) * b->out_stride, &b->n_hits[q0 + i]);
    }
    iqdb__scratch_put(env->scratch, s);
}

int iqdb__flat_search_batch(const iqdb__env *env, const iqdb__batch *b) {
    const iqdb__store *st = env->store;
    batch_ctx c = {env, b, NULL, 0, 0, 0};
    atomic_init(&c.rc, IQDB_OK);
    uint32_t *match = NULL;
    size_t match_cap = 0;
    if (b->proto.filter) {
        /* One pass over the metadata for the whole batch. */
        match_cap = st->count ? (size_t)st->count : 1;
        match = iqdb__alloc(env->mem, match_cap * sizeof *match);
        if (!match) return IQDB_NOMEM;
        for (size_t slot = 0; slot < st->n_slots; slot++)
            if (st->live[slot] &&
                iqdb__cfilter_eval(b->proto.filter, st->meta[slot], st->meta_len[slot]))
                match[c.n_match++] = (uint32_t)slot;
        c.match = match;
    }
    /* Query block: about 256 KiB of queries (with a GROUP of rows, it stays in L2), 4..128, a
     * multiple of 4; smaller when that gives the workers too few tasks. */
    size_t row_bytes = b->dim * sizeof(float);
    size_t qb =
        IQDB_MAX((size_t)4, IQDB_MIN((size_t)MAX_QBLOCK, (256u << 10) / IQDB_MAX(row_bytes, 1)));
    unsigned width = iqdb__pool_width(env->pool);
    while (qb > 4 && (b->nq + qb - 1) / qb < 2 * (size_t)width) qb /= 2;
    qb &= ~(size_t)3;
    if (qb < 4) qb = 4;
    c.qblock = qb;
    iqdb__pool_run(env->pool, (b->nq + qb - 1) / qb, batch_task, &c);
    iqdb__free(env->mem, match, match_cap * sizeof *match);
    return atomic_load(&c.rc);
}
