/*
 * flat.c — exact search by scanning the row store.
 *
 * Single query: rows are taken in groups of GROUP consecutive slots; the live (and, with a
 * filter, matching) ones go through the "rows" kernel into a distance buffer, then into the
 * top-k heap. The scan reads the arena sequentially, so it runs at memory bandwidth for large
 * dimensions (measured in bench/; see docs/benchmarks.md).
 *
 * Batch: queries are cut into blocks of about 256 KiB that stay in L2; each block is a task for
 * the worker pool. A task streams every row group once. L2 (the common case) goes through dot
 * products: the "panel" kernel computes block x group dot products sgemm-style, a cheap bound
 * rejects almost every pair, and the few left get their exact distance from the single-query
 * kernel (see dot_select for why nothing that belongs is rejected). Other metrics use the "tile"
 * kernel, which performs the same per-pair arithmetic as the single-query kernel. Either way a
 * batch returns exactly what single searches would, bit for bit. With a filter, the matching
 * rows are listed once per batch, not once per block.
 *
 * Measured on Fashion-MNIST (60,000 x 784, AVX-512, one thread): the tile path ran about 31 G
 * multiply-adds/s end to end, the dot form about 48 G (docs/benchmarks.md).
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
    int dot_form; /* L2 through dot products and stored norms, exact re-check (see below) */
    _Atomic int rc;
} batch_ctx;

/* Fills ptrs/slots with the next group of rows starting at cursor *pos; returns the count. */
static size_t next_group(const batch_ctx *c, size_t *pos, const float **ptrs, uint32_t *slots) {
    const iqdb__store *st = c->env->store;
    size_t m = 0;
    if (c->match) {
        while (m < GROUP && *pos < c->n_match) {
            uint32_t slot = c->match[(*pos)++];
            ptrs[m] = iqdb__store_vec(st, slot);
            slots[m++] = slot;
        }
        return m;
    }
    while (m < GROUP && *pos < st->n_slots) {
        size_t slot = (*pos)++;
        if (!st->live[slot]) continue;
        ptrs[m] = iqdb__store_vec(st, (uint32_t)slot);
        slots[m++] = (uint32_t)slot;
    }
    return m;
}

/*
 * The L2 batch in dot-product form. ||q - x||^2 = ||q||^2 + ||x||^2 - 2 q.x: the panel kernel
 * computes only q.x (one FMA per component, register-blocked like sgemm, no horizontal sums),
 * the row norms are the store's, the query norms are computed once per task. That value differs
 * from the direct sum by rounding, so it only *rejects*: a row is passed over for query i when
 * the lower bound
 *     t = (1 - c) (|q|^2 + |x|^2) - 2 q.x,   c = (8d + 64) 2^-24
 * exceeds the heap's raw limit plus an absolute slack for underflow; every other pair gets its
 * exact distance from the same pair kernel the single-query scan uses (rows == pair bit for
 * bit), and only those reach the heap. So the kept set and the distances are exactly a single
 * search's. Why c suffices: each of |q|^2, |x|^2, q.x and the direct sum carries at most
 * gamma_d = d 2^-24 / (1 - d 2^-24) relative error against sums of |terms| bounded by
 * |q|^2 + |x|^2 (|q.x| <= (|q|^2 + |x|^2) / 2, ||q - x||^2 <= 2 (|q|^2 + |x|^2)); together about
 * (4d + 8) 2^-24 of |q|^2 + |x|^2, and c takes twice that. A non-finite t is never rejected.
 * On Fashion-MNIST about 100 pairs per query pass the test (k ln(n / k) heap entries and the
 * ones within the margin), against 60,000 computed.
 */
typedef struct dot_state {
    float *qt;          /* d x np transposed queries (zero-padded) */
    float *qn;          /* |q|^2 per query */
    size_t np;          /* nq rounded up to 16 */
    float onemc, slack; /* 1 - c, the absolute slack */
    float bound[MAX_QBLOCK], lim[MAX_QBLOCK], limx[MAX_QBLOCK];
} dot_state;

static void dot_prepare(dot_state *ds, const iqdb__env *env, const float *const *qs, size_t nq,
                        size_t d) {
    for (size_t c = 0; c < d; c++) {
        float *row = ds->qt + c * ds->np;
        for (size_t i = 0; i < nq; i++) row[i] = qs[i][c];
        for (size_t i = nq; i < ds->np; i++) row[i] = 0.0f;
    }
    for (size_t i = 0; i < nq; i++) {
        ds->qn[i] = env->kern->pair[IQDB__OP_DOT](qs[i], qs[i], d);
        ds->bound[i] = ds->lim[i] = ds->limx[i] = INFINITY;
    }
    ds->onemc = (float)(1.0 - (8.0 * (double)d + 64.0) / 16777216.0);
    ds->slack = (float)(8 * d + 64) * 1.40129846e-45f; /* multiples of FLT_TRUE_MIN */
}

/* Rows j < m of the group against the nq queries: dots[j * np + i] = q_i . x_j. */
static void dot_select(dot_state *ds, const iqdb__env *env, iqdb__scratch *s, const float *dots,
                       const float *const *ptrs, const uint32_t *slots, size_t m, size_t nq,
                       size_t k, size_t d, size_t *fill) {
    const iqdb__store *st = env->store;
    const float onemc = ds->onemc, *qn = ds->qn, *limx = ds->limx;
    iqdb__pair_fn pair = env->kern->pair[IQDB__OP_L2SQ];
    for (size_t j = 0; j < m; j++) {
        const float xj = st->sqnorm[slots[j]], *dj = dots + j * ds->np;
        int any = 0; /* a branch-free pass first: most rows are rejected for every query */
        for (size_t i = 0; i < nq; i++) {
            float lb = (qn[i] + xj) * onemc - 2.0f * dj[i];
            any |= !(lb > limx[i]) | !(lb < INFINITY);
        }
        if (!any) continue;
        for (size_t i = 0; i < nq; i++) {
            float lb = (qn[i] + xj) * onemc - 2.0f * dj[i];
            if (lb > limx[i] && lb < INFINITY) continue;
            float raw = pair(s->qptrs[i], ptrs[j], d);
            if (raw > ds->lim[i]) continue;
            float dist = iqdb__finish(IQDB_METRIC_L2, raw, 0.0f, 0.0f);
            if (dist > ds->bound[i]) continue;
            iqdb__topk t = {s->cand + i * k, fill[i], k};
            iqdb__topk_push(&t, dist, st->seqs[slots[j]], slots[j]);
            fill[i] = t.n;
            float nb = iqdb__topk_bound(&t);
            if (nb != ds->bound[i]) {
                ds->bound[i] = nb;
                ds->lim[i] = iqdb__raw_limit(IQDB_METRIC_L2, nb);
                ds->limx[i] = ds->lim[i] + ds->slack;
            }
        }
    }
}

static void batch_task(void *arg, size_t task) {
    batch_ctx *c = arg;
    const iqdb__env *env = c->env;
    const iqdb__batch *b = c->b;
    const iqdb__store *st = env->store;
    const size_t d = b->dim;
    size_t q0 = task * c->qblock, nq = IQDB_MIN(c->qblock, b->nq - q0), k = b->proto.k;
    size_t np = (nq + 15) & ~(size_t)15;
    iqdb__scratch *s = iqdb__scratch_get(env->scratch);
    if (!s || iqdb__scratch_rows(s, env->mem, GROUP * np) ||
        iqdb__scratch_cand(s, env->mem, nq * k) || iqdb__scratch_qptrs(s, env->mem, nq) ||
        (c->dot_form && iqdb__scratch_fbuf(s, env->mem, (d + 1) * np))) {
        atomic_store(&c->rc, IQDB_NOMEM);
        iqdb__scratch_put(env->scratch, s);
        return;
    }
    /* dbuf holds GROUP x np dot products (dot form) or nq x GROUP distances; ptrs/slots use the
     * first GROUP entries; the nq heaps lie back to back in cand, their fill levels in fill[];
     * fbuf holds the transposed queries and their norms (dot form). */
    for (size_t i = 0; i < nq; i++) s->qptrs[i] = b->qs + (q0 + i) * d;
    iqdb__tile_fn tile = env->kern->tile[env->op];
    dot_state ds;
    if (c->dot_form) {
        ds.np = np;
        ds.qt = s->fbuf;
        ds.qn = s->fbuf + d * np;
        dot_prepare(&ds, env, s->qptrs, nq, d);
    }
    size_t pos = 0, m, fill[MAX_QBLOCK];
    IQDB_ASSERT(nq <= MAX_QBLOCK);
    for (size_t i = 0; i < nq; i++) fill[i] = 0;
    while ((m = next_group(c, &pos, s->ptrs, s->slots)) > 0) {
        if (c->dot_form) {
            env->kern->dot_panel(ds.qt, np, s->ptrs, m, d, s->dbuf);
            dot_select(&ds, env, s, s->dbuf, s->ptrs, s->slots, m, nq, k, d, fill);
            continue;
        }
        tile(s->qptrs, nq, s->ptrs, m, d, s->dbuf);
        for (size_t i = 0; i < nq; i++) {
            iqdb__topk t = {s->cand + i * k, fill[i], k};
            float qnorm = b->qnorms ? b->qnorms[q0 + i] : 0.0f;
            iqdb__flat_push(env, qnorm, s->dbuf + i * m, s->slots, m, &t);
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
    batch_ctx c = {env, b, NULL, 0, 0, 0, 0};
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
    c.dot_form = env->op == IQDB__OP_L2SQ;
    iqdb__pool_run(env->pool, (b->nq + qb - 1) / qb, batch_task, &c);
    iqdb__free(env->mem, match, match_cap * sizeof *match);
    return atomic_load(&c.rc);
}
