/*
 * ivf.c — the inverted-file index: rows are partitioned into lists around trained centroids; a
 * search ranks the centroids against the query and scans the nearest lists. The same code is
 * the flat index with a quantizer ("single": one list whose codes are all scanned).
 *
 * Invariants (checked by iqdb__ivf_check):
 *  - untrained: no list exists; searches are exact scans of the store (flat.c);
 *  - trained: every live row is in exactly one list and no dead row is in any; where[slot] and
 *    pos[slot] locate a row's entry; with a quantizer, an entry's code is the encoding of the
 *    row against its list's centroid (iqdb__quant_encode, which is deterministic).
 * Lists hold slot numbers (4 bytes per row) and, with a quantizer, the codes contiguously, so a
 * list scan streams its codes. Without a quantizer the rows are read from the store in place:
 * IVF-Flat keeps no second copy of the vectors.
 *
 * Training (build()): k-means (kmeans.c) on a sample of min(rows, train_sample) live rows in the
 * metric's own geometry, then the quantizer (SQ8 / binary on every live row — one pass; PQ on
 * the residuals of the sample), then every live row is assigned to its nearest centroid (in
 * parallel over the worker pool) and encoded (in parallel by list). The new structures are
 * complete before the old ones are freed, so a failed training changes nothing.
 *
 * When training happens: iqdb__ivf_maintain runs after every applied write. An untrained index
 * trains once the row count reaches the threshold (TRAIN_MIN rows, or 8 per list with a fixed
 * n_lists); a trained one trains again when the count has grown GROW (4) times since the last
 * training, so centroids follow the data and an automatic n_lists follows its size, at an
 * amortised cost of a constant number of trainings per row. iqdb_optimize trains on demand.
 * A training that fails (out of memory) is retried after a further quarter of growth.
 *
 * Search: the n_probes lists nearest to the query are scanned (for a filter, only rows that
 * match are scored); if fewer than k rows matched, further lists are scanned in order of
 * distance until k have matched or every list has been scanned, so a search returns
 * min(k, matching) hits. With a quantizer, codes go into a shortlist of k * oversample
 * candidates by proxy distance, which is re-ranked against the full-precision rows.
 *
 * ---------------------------------------------------------------------------------------------
 * Serialized layout, format version 1 (iqdb__ivf_serialize / iqdb__ivf_load). Little-endian;
 * u32 / u64 unsigned integers, f32 IEEE-754 binary32. The persistence layer stores these bytes
 * as one opaque, checksummed section; load still checks every value.
 *
 *   offset  size  field
 *        0     4  magic 0x56495149 ("IQIV" as bytes)
 *        4     4  format version = 1 (a larger one: IQDB_FORMAT)
 *        8     4  dim                         must equal the database's
 *       12     4  metric (iqdb_metric)        must equal the database's
 *       16     4  quantizer (iqdb_quant)      must equal the options'
 *       20     4  flags: bit 0 trained, bit 1 single list (flat + quantizer), bit 2 codes
 *                 only (the rows' vectors are not stored: the codes are the rows; the store
 *                 must be in the same state); others 0
 *       24     4  n_lists                     0 untrained; 1 .. 2^20 trained (single: 1)
 *       28     4  code_size                   bytes per code: 0, dim (SQ8), 8*ceil(dim/64)
 *                                             (binary), pq_m (PQ); must match the options
 *       32     8  n_slots                     the store's slot count when written (informative)
 *       40     8  rows                        list entries; trained: = the live rows
 *       48     8  trained_rows                the row count at the last training
 *       56     8  next_train                  the row count that triggers the next training
 *   then, when trained:
 *       n_lists x dim f32                     centroids (finite)
 *       dot metric only: n_lists x 2 f32      per list the smallest and largest norm of a row
 *                                             it held (not NaN, >= 0; +inf and 0 for a list
 *                                             that never held one); the probe-order bound
 *       quantizer parameters (none for NONE):
 *         SQ8     dim f32 lo, dim f32 step (step >= 0)
 *         BINARY  dim f32 threshold, dim f32 below, dim f32 above
 *         PQ      u32 m (= pq_m), u32 ksub (1..256), u32 dsub (= ceil(dim/m)), then
 *                 m x ksub x dsub f32 codebooks (subspace j covers components
 *                 [j*dim/m, (j+1)*dim/m), zero-padded to dsub)
 *       per list, in list order: u32 n, n x u32 slot, n x code_size bytes of codes
 *         (every slot < the store's slot count, live, in exactly one list; PQ code bytes < ksub)
 *   and last:
 *                4  end magic 0x45495149 ("IQIE" as bytes)
 * Slots are the store's slot numbers, which the persistence layer preserves.
 */
#include "index/ivf.h"

#include <math.h>

#include "index/flat.h"
#include "index/kmeans.h"
#include "index/quant.h"
#include "index/ser.h"
#include "observe.h"

#define NO_LIST UINT32_MAX
#define IVF_MAGIC 0x56495149u
#define IVF_END 0x45495149u
#define IVF_VERSION 1u
#define MAX_LISTS (1u << 20)
#define F_TRAINED 1u
#define F_SINGLE 2u
#define F_CODES_ONLY 4u

enum {
    TRAIN_MIN = 1024, /* rows before the first automatic training */
    KM_ITERS = 10,    /* Lloyd iterations at most (they stop early once settled) */
    GROW = 4,         /* retrain when the row count has grown this many times */
    GROUP = 64,       /* rows per kernel call in a list scan */
    QCHUNK = 4        /* queries per batch task */
};

typedef struct ivf_list {
    uint32_t *slots;
    uint8_t *codes; /* n x code_size, contiguous */
    uint32_t n, cap;
} ivf_list;

/* Everything a training builds; swapped in whole. */
typedef struct ivf_state {
    uint32_t n_lists;
    float *cent;        /* n_lists rows of cstride floats, 64-byte aligned */
    const float **cptr; /* row pointers into cent */
    ivf_list *lists;
    uint32_t *where, *pos; /* per slot: list and position; where_cap entries */
    size_t where_cap;
    iqdb__quant quant;
    float *work; /* insert work: n_lists keys, dim floats, a code */
    size_t work_bytes;
    float *nrange;   /* dot: per list the smallest and largest |x| of its rows (probe order) */
    iqdb__quant cq;  /* lists are ranked with SQ8 codes of the centroids (derived, see rank) */
    uint8_t *ccodes; /* n_lists x dim */
    float *cnorm;    /* L2: per list |decoded centroid - lo|^2 (see rank_prepare) */
} ivf_state;

struct iqdb__ivf {
    iqdb__mem *mem;
    uint32_t dim, cstride;
    iqdb_metric metric;
    iqdb__km_mode mode;
    int single;
    uint32_t cfg_lists, n_probes, train_sample, oversample, pq_m;
    iqdb_quant qkind;
    int trained;
    int reorder; /* a training installed IVF-Flat lists: reorder the store (see Row order) */
    ivf_state st;
    uint64_t trained_rows, next_train;
};

static uint32_t default_oversample(iqdb_quant k) {
    /* Measured on Fashion-MNIST (bench/ivf_bench.cc): the smallest factors that keep recall@10
     * within 0.005 of the unquantized scan of the same lists. */
    switch (k) {
    case IQDB_QUANT_SQ8: return 4;
    case IQDB_QUANT_PQ: return 8;
    case IQDB_QUANT_BINARY: return 16;
    case IQDB_QUANT_NONE: return 1;
    }
    return 1;
}

uint64_t iqdb__ivf_train_threshold(const iqdb__ivf *v) {
    uint64_t t = TRAIN_MIN;
    if (!v->single && v->cfg_lists && 8ull * v->cfg_lists > t) t = 8ull * v->cfg_lists;
    return t;
}

/* n_lists for `n` rows when the option is 0: about 4 sqrt(n) (see docs/guide.md). */
static uint32_t auto_lists(uint64_t n) {
    double l = 4.0 * sqrt((double)n);
    uint32_t L = l < 1.0 ? 1u : l > (double)MAX_LISTS ? MAX_LISTS : (uint32_t)l;
    return (uint64_t)L > n ? (uint32_t)n : L;
}

/* ---- state lifetime ----------------------------------------------------------------------- */

static size_t cent_bytes(const iqdb__ivf *v, uint32_t n_lists) {
    return (size_t)n_lists * v->cstride * sizeof(float);
}

static void state_free(const iqdb__ivf *v, ivf_state *s) {
    iqdb__mem *mem = v->mem;
    size_t cs = s->quant.code_size;
    if (s->lists)
        for (uint32_t l = 0; l < s->n_lists; l++) {
            iqdb__free(mem, s->lists[l].slots, (size_t)s->lists[l].cap * sizeof(uint32_t));
            iqdb__free(mem, s->lists[l].codes, (size_t)s->lists[l].cap * cs);
        }
    iqdb__free(mem, s->lists, (size_t)s->n_lists * sizeof *s->lists);
    iqdb__free_aligned(mem, s->cent, cent_bytes(v, s->n_lists));
    iqdb__free(mem, (void *)s->cptr, (size_t)s->n_lists * sizeof *s->cptr);
    iqdb__free(mem, s->where, s->where_cap * sizeof *s->where);
    iqdb__free(mem, s->pos, s->where_cap * sizeof *s->pos);
    iqdb__free(mem, s->work, s->work_bytes);
    iqdb__free(mem, s->nrange, s->nrange ? 2 * (size_t)s->n_lists * sizeof(float) : 0);
    iqdb__free(mem, s->ccodes, s->ccodes ? (size_t)s->n_lists * v->dim : 0);
    iqdb__free(mem, s->cnorm, s->cnorm ? (size_t)s->n_lists * sizeof(float) : 0);
    iqdb__quant_clear(&s->quant);
    iqdb__quant_clear(&s->cq);
    memset(s, 0, sizeof *s);
}

static void state_init(const iqdb__ivf *v, ivf_state *s) {
    memset(s, 0, sizeof *s);
    iqdb__quant_init(&s->quant, v->mem, v->qkind, v->metric, v->dim, v->pq_m);
}

/* Allocates centroids, pointers, the list array and the slot maps for n_lists lists. */
static int state_alloc(const iqdb__ivf *v, ivf_state *s, uint32_t n_lists, size_t where_cap) {
    iqdb__mem *mem = v->mem;
    s->cent = iqdb__alloc_aligned(mem, cent_bytes(v, n_lists));
    s->cptr = iqdb__alloc(mem, (size_t)n_lists * sizeof *s->cptr);
    s->lists = iqdb__calloc(mem, n_lists, sizeof *s->lists);
    s->where = iqdb__alloc(mem, where_cap * sizeof *s->where);
    s->pos = iqdb__alloc(mem, where_cap * sizeof *s->pos);
    s->n_lists = n_lists;
    s->where_cap = where_cap;
    s->work_bytes = ((size_t)n_lists + v->dim) * sizeof(float) + s->quant.code_size + 8;
    s->work = iqdb__alloc(mem, s->work_bytes);
    int dot = v->metric == IQDB_METRIC_DOT;
    s->nrange = dot ? iqdb__alloc(mem, 2 * (size_t)n_lists * sizeof(float)) : NULL;
    if (!s->cent || !s->cptr || !s->lists || !s->where || !s->pos || !s->work ||
        (dot && !s->nrange)) {
        /* free what was allocated, by the sizes it was allocated with */
        iqdb__free_aligned(mem, s->cent, cent_bytes(v, n_lists));
        iqdb__free(mem, (void *)s->cptr, (size_t)n_lists * sizeof *s->cptr);
        iqdb__free(mem, s->lists, (size_t)n_lists * sizeof *s->lists);
        iqdb__free(mem, s->where, where_cap * sizeof *s->where);
        iqdb__free(mem, s->pos, where_cap * sizeof *s->pos);
        iqdb__free(mem, s->work, s->work_bytes);
        iqdb__free(mem, s->nrange, 2 * (size_t)n_lists * sizeof(float));
        s->nrange = NULL;
        s->cent = NULL;
        s->cptr = NULL;
        s->lists = NULL;
        s->where = s->pos = NULL;
        s->work = NULL;
        s->n_lists = 0;
        s->where_cap = 0;
        s->work_bytes = 0;
        return IQDB_NOMEM;
    }
    memset(s->cent, 0, cent_bytes(v, n_lists));
    for (uint32_t l = 0; l < n_lists; l++) s->cptr[l] = s->cent + (size_t)l * v->cstride;
    if (dot)
        for (uint32_t l = 0; l < n_lists; l++) {
            s->nrange[2 * l] = INFINITY;
            s->nrange[2 * l + 1] = 0.0f;
        }
    for (size_t i = 0; i < where_cap; i++) s->where[i] = NO_LIST;
    return IQDB_OK;
}

/* Sizes list l to hold exactly n entries (n may be 0). */
static int list_alloc(ivf_state *s, iqdb__mem *mem, uint32_t l, uint32_t n) {
    ivf_list *lst = &s->lists[l];
    if (n == 0) return IQDB_OK;
    lst->slots = iqdb__alloc(mem, (size_t)n * sizeof(uint32_t));
    if (!lst->slots) return IQDB_NOMEM;
    if (s->quant.code_size) {
        lst->codes = iqdb__alloc(mem, (size_t)n * s->quant.code_size);
        if (!lst->codes) {
            iqdb__free(mem, lst->slots, (size_t)n * sizeof(uint32_t));
            lst->slots = NULL;
            return IQDB_NOMEM;
        }
    }
    lst->cap = n;
    return IQDB_OK;
}

/* Dot product: a list's rows have norms within nrange, so q . x <= (q . c) * max |x| when
 * q . c > 0 — for unit centroids c and rows close to their direction. Probing lists by that
 * bound instead of q . c alone puts long vectors first, which is what an inner-product search
 * wants (on data whose norms vary, spherical clusters alone rank them poorly). The range only
 * widens (deletes leave it a bound). */
static void widen_range(ivf_state *s, uint32_t l, float sqnorm) {
    if (!s->nrange) return;
    float n = sqrtf(sqnorm > 0.0f ? sqnorm : 0.0f);
    if (n < s->nrange[2 * l]) s->nrange[2 * l] = n;
    if (n > s->nrange[2 * l + 1]) s->nrange[2 * l + 1] = n;
}

/* Ranking the lists is a scan of every centroid per query: with 1,024 lists at dim 784 that is
 * 3.2 MB of f32, about 28% of a query at 5 probes (perf, Fashion-MNIST). SQ8 codes of the
 * centroids (0.8 MB, in L2) rank them almost identically — an ordering of lists needs no exact
 * distances — in a quarter of the bytes; assignment of rows keeps the f32 centroids. Built after
 * a training and after a load (derived state, not serialized). One list needs no ranking.
 * L2 ranks by |a - s c|^2 - |a|^2 = |s c|^2 - 2 (a s) . c with a = q - lo (c: a centroid's code,
 * s: the steps): one SQ8 dot kernel pass plus a per-list constant |s c|^2 (cnorm), instead of the
 * SQ8 L2 kernel's subtract and square — 1.16x the QPS at 8 probes, 1.35x at 1 (Fashion-MNIST
 * 60,000, interleaved A/B). The order differs from the SQ8 L2 proxy's only by float rounding of
 * the expanded form (sums up to ~1e7 here: a few units, against distance gaps of thousands). */
static int rank_prepare(const iqdb__ivf *v, const iqdb__env *env, ivf_state *s) {
    if (s->n_lists < 2) return IQDB_OK;
    iqdb__quant_init(&s->cq, v->mem, IQDB_QUANT_SQ8, v->metric, v->dim, 0);
    iqdb__qtrain t = {s->cptr, NULL, s->n_lists, env->kern, NULL, 1};
    IQDB_TRY(iqdb__quant_train(&s->cq, &t));
    s->ccodes = iqdb__alloc(v->mem, (size_t)s->n_lists * v->dim);
    if (!s->ccodes) return IQDB_NOMEM; /* state_free releases cq */
    for (uint32_t l = 0; l < s->n_lists; l++)
        iqdb__quant_encode(&s->cq, env->kern, s->cptr[l], NULL, s->work,
                           s->ccodes + (size_t)l * v->dim);
    if (v->metric != IQDB_METRIC_L2) return IQDB_OK;
    s->cnorm = iqdb__alloc(v->mem, (size_t)s->n_lists * sizeof(float));
    if (!s->cnorm) return IQDB_NOMEM;
    for (uint32_t l = 0; l < s->n_lists; l++) {
        const uint8_t *cc = s->ccodes + (size_t)l * v->dim;
        double n = 0;
        for (uint32_t j = 0; j < v->dim; j++) {
            double x = (double)s->cq.step[j] * cc[j];
            n += x * x;
        }
        s->cnorm[l] = (float)n;
    }
    return IQDB_OK;
}

/* L2 list keys (see rank_prepare); a: dim floats of work. */
static void rank_l2(const iqdb__ivf *v, const iqdb__env *env, const float *q, float *a,
                    float *keys) {
    const ivf_state *s = &v->st;
    for (uint32_t j = 0; j < v->dim; j++) a[j] = (q[j] - s->cq.lo[j]) * s->cq.step[j];
    env->kern->sq8_rows[IQDB__SQ8_DOT](a, NULL, s->ccodes, s->n_lists, v->dim, v->dim, keys);
    for (uint32_t l = 0; l < s->n_lists; l++) {
        float k = s->cnorm[l] - 2.0f * keys[l];
        keys[l] = k == k ? k : INFINITY;
    }
}

/* ---- training ----------------------------------------------------------------------------- */

typedef struct enc_ctx {
    const iqdb__ivf *v;
    const iqdb__env *env;
    ivf_state *s;
    uint32_t per_task;
    _Atomic int rc;
} enc_ctx;

static void encode_task(void *arg, size_t task) {
    enc_ctx *c = arg;
    ivf_state *s = c->s;
    uint32_t l0 = (uint32_t)(task * c->per_task),
             l1 = (uint32_t)IQDB_MIN((size_t)l0 + c->per_task, (size_t)s->n_lists);
    size_t wb = iqdb__quant_work(&s->quant) * sizeof(float);
    float *work = iqdb__alloc(c->env->mem, wb);
    if (!work) {
        atomic_store(&c->rc, IQDB_NOMEM);
        return;
    }
    const size_t cs = s->quant.code_size;
    for (uint32_t l = l0; l < l1; l++) {
        ivf_list *lst = &s->lists[l];
        for (uint32_t i = 0; i < lst->n; i++)
            iqdb__quant_encode(&s->quant, c->env->kern,
                               iqdb__store_vec(c->env->store, lst->slots[i]), s->cptr[l], work,
                               lst->codes + (size_t)i * cs);
    }
    iqdb__free(c->env->mem, work, wb);
}

/* Temporary arrays of one training. */
typedef struct build_tmp {
    const float **rows, **sample, **refs; /* n, m, m */
    uint32_t *perm, *assign, *sassign;    /* n, n, m */
    uint32_t *byrow;                      /* n: sample assignments by row when m == n */
    float *w;                             /* m */
    size_t bytes;
} build_tmp;

static int tmp_alloc(iqdb__mem *mem, build_tmp *t, size_t n, size_t m) {
    t->bytes = (n + 2 * m) * sizeof(float *) + (3 * n + m) * sizeof(uint32_t) + m * sizeof(float);
    uint8_t *b = iqdb__alloc(mem, t->bytes);
    if (!b) return IQDB_NOMEM;
    t->rows = (const float **)(void *)b;
    t->sample = t->rows + n;
    t->refs = t->sample + m;
    t->perm = (uint32_t *)(void *)(t->refs + m);
    t->assign = t->perm + n;
    t->sassign = t->assign + n;
    t->byrow = t->sassign + m;
    t->w = (float *)(void *)(t->byrow + n);
    return IQDB_OK;
}

/* Builds a complete trained state from the live rows into *ns (initialised by the caller).
 * IQDB_OK or IQDB_NOMEM (ns freed). Requires at least one live row. */
/* A trained row's code, and the vector it stands for (code space: the direction for cosine). */
static const uint8_t *code_of(const ivf_state *s, uint32_t slot) {
    return s->lists[s->where[slot]].codes + (size_t)s->pos[slot] * s->quant.code_size;
}
static void decode_row(const ivf_state *s, uint32_t slot, float *out) {
    iqdb__quant_decode(&s->quant, code_of(s, slot), s->cptr[s->where[slot]], out);
}

/* A training reports progress in steps (observe.h): the k-means iterations, then the centroids,
 * the quantizer and the assignment of every row; env->lc may stop it between steps. */
#define STEPS (KM_ITERS + 3u)
#define POLL(step)                                                               \
    do {                                                                         \
        if (rc == IQDB_OK && env->lc && iqdb__long_poll(env->lc, (step), STEPS)) \
            rc = IQDB_INTERRUPTED;                                               \
    } while (0)

static int build(const iqdb__ivf *v, const iqdb__env *env, ivf_state *ns) {
    const iqdb__store *st = env->store;
    iqdb__mem *mem = v->mem;
    const size_t n = (size_t)st->count;
    IQDB_ASSERT(n > 0);
    /* Codes only (the store holds no vectors): retrain on the decoded rows — the sample
     * decoded into `dec`, every row assigned in chunks decoded into the same buffer — keep the
     * quantizer's parameters and copy the codes (SQ8 and binary codes do not depend on the
     * lists). */
    const int decoded = st->no_vectors;
    IQDB_ASSERT(!decoded || v->trained);
    uint32_t L = v->single      ? 1u
                 : v->cfg_lists ? (uint32_t)IQDB_MIN((size_t)v->cfg_lists, n)
                                : auto_lists(n);
    size_t m = IQDB_MIN(n, IQDB_MAX((size_t)v->train_sample, (size_t)L));
    build_tmp t;
    IQDB_TRY(tmp_alloc(mem, &t, n, m));
    size_t dec_bytes = decoded ? m * v->cstride * sizeof(float) : 0;
    float *dec = decoded ? iqdb__calloc(mem, m * v->cstride, sizeof(float)) : NULL;
    int rc =
        decoded && !dec ? IQDB_NOMEM : state_alloc(v, ns, L, IQDB_MAX(st->slots_cap, (size_t)1));
    /* 1. the live rows, and a deterministic sample of m of them */
    size_t j = 0;
    for (size_t slot = 0; slot < st->n_slots; slot++)
        if (st->live[slot]) {
            t.perm[j] = (uint32_t)slot;
            t.rows[j++] = iqdb__store_vec(st, (uint32_t)slot);
        }
    IQDB_ASSERT(j == n);
    uint64_t rng = 0x1f5eedull ^ ((uint64_t)n << 20) ^ L;
    for (size_t a = 0; a < n; a++) t.assign[a] = (uint32_t)a;
    for (size_t i = 0; i < m && i + 1 < n; i++) { /* partial Fisher-Yates: the first m */
        rng += 0x9e3779b97f4a7c15ull;
        size_t r = i + (size_t)(iqdb__mix64(rng) % (n - i));
        uint32_t x = t.assign[i];
        t.assign[i] = t.assign[r];
        t.assign[r] = x;
    }
    for (size_t i = 0; i < m; i++) {
        uint32_t a = t.assign[i];
        float sq = st->sqnorm[t.perm[a]];
        t.sample[i] = t.rows[a];
        if (decoded && dec) {
            float *row = dec + i * v->cstride;
            decode_row(&v->st, t.perm[a], row);
            t.sample[i] = row;
            sq = env->kern->pair[IQDB__OP_DOT](row, row, v->dim);
        }
        t.w[i] = sq > 0.0f ? 1.0f / sqrtf(sq) : 0.0f;
    }
    /* 2. centroids */
    if (rc == IQDB_OK) {
        iqdb__km km = {v->mode,   t.sample, v->mode == IQDB__KM_SPHERICAL ? t.w : NULL,
                       m,         v->dim,   L,
                       KM_ITERS,  rng,      env->kern,
                       env->pool, mem,      env->lc,
                       STEPS};
        rc = iqdb__kmeans(&km, ns->cent, v->cstride, t.sassign);
    }
    POLL(KM_ITERS + 1u); /* centroids done */
    /* 3. the quantizer: SQ8 / binary see every row (one cheap pass), PQ the sample's residuals */
    if (rc == IQDB_OK && decoded) {
        rc = iqdb__quant_copy(&ns->quant, &v->st.quant);
    } else if (rc == IQDB_OK && ns->quant.kind != IQDB_QUANT_NONE) {
        for (size_t i = 0; i < m; i++) t.refs[i] = ns->cptr[t.sassign[i]];
        int pq = ns->quant.kind == IQDB_QUANT_PQ;
        iqdb__qtrain qt = {
            pq ? t.sample : t.rows, pq ? t.refs : NULL, pq ? m : n, env->kern, env->pool,
            rng ^ 0x7051ull};
        rc = iqdb__quant_train(&ns->quant, &qt);
    }
    POLL(KM_ITERS + 2u); /* quantizer trained */
    /* 4. every live row to its nearest centroid, lists sized exactly, filled in slot order */
    if (rc == IQDB_OK && !decoded && m == n) {
        /* the sample is every row: k-means' final assignment is already the answer (saves one
         * pass of n x L x dim, about a tenth of a training) */
        for (size_t i = 0; i < n; i++) t.byrow[t.assign[i]] = t.sassign[i];
        memcpy(t.assign, t.byrow, n * sizeof *t.assign);
    } else if (rc == IQDB_OK && !decoded) {
        rc = iqdb__km_assign(env->kern, env->pool, mem, v->mode, t.rows, n, v->dim, ns->cptr, L,
                             t.assign, NULL);
    }
    for (size_t b = 0; rc == IQDB_OK && decoded && b < n; b += m) { /* chunks of m rows */
        size_t cn = IQDB_MIN(m, n - b);
        for (size_t i = 0; i < cn; i++) {
            t.sample[i] = dec + i * v->cstride;
            decode_row(&v->st, t.perm[b + i], dec + i * v->cstride);
        }
        rc = iqdb__km_assign(env->kern, env->pool, mem, v->mode, t.sample, cn, v->dim, ns->cptr, L,
                             t.assign + b, NULL);
    }
    POLL(KM_ITERS + 3u); /* rows assigned */
    if (rc == IQDB_OK) {
        for (uint32_t l = 0; l < L; l++) ns->lists[l].n = 0;
        for (size_t i = 0; i < n; i++) ns->lists[t.assign[i]].n++;
        for (uint32_t l = 0; l < L && rc == IQDB_OK; l++) {
            uint32_t cnt = ns->lists[l].n;
            ns->lists[l].n = 0;
            rc = list_alloc(ns, mem, l, cnt);
        }
    }
    if (rc == IQDB_OK) {
        for (size_t i = 0; i < n; i++) {
            uint32_t l = t.assign[i], slot = t.perm[i];
            ivf_list *lst = &ns->lists[l];
            ns->where[slot] = l;
            ns->pos[slot] = lst->n;
            lst->slots[lst->n++] = slot;
            widen_range(ns, l, st->sqnorm[slot]);
        }
        /* 5. codes: copied (codes only), else encoded in parallel by list */
        if (decoded) {
            const size_t cs = ns->quant.code_size;
            for (uint32_t l = 0; l < L; l++)
                for (uint32_t i = 0; i < ns->lists[l].n; i++)
                    memcpy(ns->lists[l].codes + (size_t)i * cs,
                           code_of(&v->st, ns->lists[l].slots[i]), cs);
        } else if (ns->quant.code_size) {
            enc_ctx ec = {v, env, ns, 16, 0};
            atomic_init(&ec.rc, IQDB_OK);
            iqdb__pool_run(env->pool, (L + 15u) / 16u, encode_task, &ec);
            rc = atomic_load(&ec.rc);
        }
    }
    if (rc == IQDB_OK) rc = rank_prepare(v, env, ns);
    iqdb__free(mem, t.rows, t.bytes);
    iqdb__free(mem, dec, dec_bytes);
    if (rc) state_free(v, ns);
    return rc;
}

static void install(iqdb__ivf *v, ivf_state *ns, uint64_t rows) {
    state_free(v, &v->st);
    v->st = *ns;
    v->trained = 1;
    v->trained_rows = rows;
    v->next_train = rows * GROW;
    v->reorder = v->qkind == IQDB_QUANT_NONE && !v->single;
}

/* ---- row order ----------------------------------------------------------------------------
 * IVF-Flat reads the rows of a list from the store in place. In insertion order a list's rows
 * are scattered over the arena, one 3 KB row here and one there (Fashion-MNIST), and a probe
 * cost 27.5 us per list of about 59 rows against faiss' 12.8 us for its contiguous copy (perf
 * sweep, iqdb-bench-ivf, 1 -> 16 probes). So after each training the store's rows are
 * renumbered list by list: a list's rows become consecutive slots, adjacent in the arena, and a
 * scan streams them. No second copy of the vectors. Rows added later go to free or new slots
 * (scattered again) until the next training, which happens after 4x growth. */
void iqdb__ivf_reorder_store(iqdb__ivf *v, const iqdb__env *env, iqdb__store *store) {
    (void)env;
    if (!v->reorder) return;
    v->reorder = 0;
    ivf_state *s = &v->st;
    const size_t n = store->n_slots;
    if (!v->trained || store->no_vectors || n < 2 || s->where_cap < n) return;
    uint32_t *to = iqdb__alloc(v->mem, n * sizeof *to);
    if (!to) return;
    for (size_t i = 0; i < n; i++) to[i] = NO_LIST;
    uint32_t next = 0;
    for (uint32_t l = 0; l < s->n_lists; l++)
        for (uint32_t i = 0; i < s->lists[l].n; i++) to[s->lists[l].slots[i]] = next++;
    for (size_t i = 0; i < n; i++)
        if (!store->live[i]) to[i] = next++;
    int whole = next == n;
    for (size_t i = 0; whole && i < n; i++) whole = to[i] != NO_LIST;
    if (whole && iqdb__store_reorder(store, to) == IQDB_OK) {
        for (size_t i = 0; i < s->where_cap; i++) s->where[i] = NO_LIST;
        for (uint32_t l = 0; l < s->n_lists; l++)
            for (uint32_t i = 0; i < s->lists[l].n; i++) {
                uint32_t slot = to[s->lists[l].slots[i]];
                s->lists[l].slots[i] = slot;
                s->where[slot] = l;
                s->pos[slot] = i;
            }
    }
    iqdb__free(v->mem, to, n * sizeof *to);
}

static void reset_untrained(iqdb__ivf *v) {
    state_free(v, &v->st);
    state_init(v, &v->st);
    v->trained = 0;
    v->trained_rows = 0;
    v->next_train = iqdb__ivf_train_threshold(v);
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

int iqdb__ivf_create(const iqdb__env *env, const iqdb_options *o, int single, iqdb__ivf **out) {
    *out = NULL;
    iqdb__ivf *v = iqdb__calloc(env->mem, 1, sizeof *v);
    if (!v) return IQDB_NOMEM;
    v->mem = env->mem;
    v->dim = env->store->dim;
    v->cstride = env->store->stride;
    v->metric = env->metric;
    v->mode = iqdb__km_mode_of(env->metric);
    v->single = single;
    v->cfg_lists = single ? 1u : o->ivf.n_lists;
    v->n_probes = o->ivf.n_probes ? o->ivf.n_probes : 8u;
    v->train_sample = o->ivf.train_sample ? o->ivf.train_sample : 65536u;
    v->qkind = o->quant.kind;
    v->pq_m = o->quant.pq_m;
    v->oversample = o->quant.oversample ? o->quant.oversample : default_oversample(v->qkind);
    state_init(v, &v->st);
    v->next_train = iqdb__ivf_train_threshold(v);
    *out = v;
    return IQDB_OK;
}

void iqdb__ivf_destroy(iqdb__ivf *v) {
    if (!v) return;
    state_free(v, &v->st);
    iqdb__free(v->mem, v, sizeof *v);
}

int iqdb__ivf_maintain(iqdb__ivf *v, const iqdb__env *env) {
    uint64_t n = env->store->count;
    if (n == 0 || n < v->next_train) return 0;
    ivf_state ns;
    state_init(v, &ns);
    if (build(v, env, &ns) != IQDB_OK) {
        v->next_train = n + n / 4 + 1; /* out of memory: try again after more growth */
        return 0;
    }
    install(v, &ns, n);
    return 1;
}

int iqdb__ivf_optimize(iqdb__ivf *v, const iqdb__env *env) {
    uint64_t n = env->store->count;
    if (n == 0) {
        /* codes only: the codes are the rows' only copy, so the index stays trained */
        if (!env->store->no_vectors) reset_untrained(v);
        return IQDB_OK;
    }
    ivf_state ns;
    state_init(v, &ns);
    IQDB_TRY(build(v, env, &ns));
    install(v, &ns, n);
    return IQDB_OK;
}

/* ---- writes ------------------------------------------------------------------------------- */

/* The list nearest to row x (ties to the lower list). */
static uint32_t nearest_list(const iqdb__ivf *v, const iqdb__env *env, const float *x,
                             float *keys) {
    const ivf_state *s = &v->st;
    if (s->n_lists == 1) return 0;
    env->kern->rows[iqdb__km_op(v->mode)](x, s->cptr, s->n_lists, v->dim, keys);
    uint32_t best = 0;
    float bk = iqdb__km_key(v->mode, keys[0]);
    for (uint32_t l = 1; l < s->n_lists; l++) {
        float k = iqdb__km_key(v->mode, keys[l]);
        if (k < bk) {
            bk = k;
            best = l;
        }
    }
    return best;
}

static int grow_where(const iqdb__ivf *v, ivf_state *s, size_t need) {
    size_t ncap = IQDB_MAX(s->where_cap * 2, need);
    uint32_t *w = iqdb__alloc(v->mem, ncap * sizeof *w), *p = iqdb__alloc(v->mem, ncap * sizeof *p);
    if (!w || !p) {
        iqdb__free(v->mem, w, w ? ncap * sizeof *w : 0);
        iqdb__free(v->mem, p, p ? ncap * sizeof *p : 0);
        return IQDB_NOMEM;
    }
    memcpy(w, s->where, s->where_cap * sizeof *w);
    memcpy(p, s->pos, s->where_cap * sizeof *p);
    for (size_t i = s->where_cap; i < ncap; i++) w[i] = NO_LIST;
    iqdb__free(v->mem, s->where, s->where_cap * sizeof *w);
    iqdb__free(v->mem, s->pos, s->where_cap * sizeof *p);
    s->where = w;
    s->pos = p;
    s->where_cap = ncap;
    return IQDB_OK;
}

/* Makes room for one more entry in list l: new arrays first, so a failure changes nothing. */
static int grow_list(const iqdb__ivf *v, ivf_state *s, uint32_t l) {
    ivf_list *lst = &s->lists[l];
    const size_t cs = s->quant.code_size;
    uint32_t ncap = lst->cap ? lst->cap * 2u : 4u;
    uint32_t *sl = iqdb__alloc(v->mem, (size_t)ncap * sizeof *sl);
    uint8_t *cd = cs ? iqdb__alloc(v->mem, (size_t)ncap * cs) : NULL;
    if (!sl || (cs && !cd)) {
        iqdb__free(v->mem, sl, sl ? (size_t)ncap * sizeof *sl : 0);
        iqdb__free(v->mem, cd, cd ? (size_t)ncap * cs : 0);
        return IQDB_NOMEM;
    }
    if (lst->n) {
        memcpy(sl, lst->slots, (size_t)lst->n * sizeof *sl);
        if (cs) memcpy(cd, lst->codes, (size_t)lst->n * cs);
    }
    iqdb__free(v->mem, lst->slots, (size_t)lst->cap * sizeof *sl);
    iqdb__free(v->mem, lst->codes, (size_t)lst->cap * cs);
    lst->slots = sl;
    lst->codes = cd;
    lst->cap = ncap;
    return IQDB_OK;
}

int iqdb__ivf_insert(iqdb__ivf *v, const iqdb__env *env, uint32_t slot, const float *vec) {
    if (!v->trained) return IQDB_OK; /* the exact scan sees the row; maintain() trains later */
    ivf_state *s = &v->st;
    if (slot >= s->where_cap) IQDB_TRY(grow_where(v, s, (size_t)slot + 1));
    const float *x = vec ? vec : iqdb__store_vec(env->store, slot);
    uint32_t l = nearest_list(v, env, x, s->work);
    ivf_list *lst = &s->lists[l];
    if (lst->n == lst->cap) IQDB_TRY(grow_list(v, s, l));
    if (s->quant.code_size)
        iqdb__quant_encode(&s->quant, env->kern, x, s->cptr[l], s->work + s->n_lists,
                           lst->codes + (size_t)lst->n * s->quant.code_size);
    s->where[slot] = l;
    s->pos[slot] = lst->n;
    lst->slots[lst->n++] = slot;
    widen_range(s, l, env->store->sqnorm[slot]);
    return IQDB_OK;
}

void iqdb__ivf_remove(iqdb__ivf *v, const iqdb__env *env, uint32_t slot) {
    (void)env;
    if (!v->trained) return;
    ivf_state *s = &v->st;
    if (slot >= s->where_cap || s->where[slot] == NO_LIST) return;
    ivf_list *lst = &s->lists[s->where[slot]];
    uint32_t p = s->pos[slot], last = lst->n - 1;
    const size_t cs = s->quant.code_size;
    if (p != last) { /* swap-remove: the last entry takes the hole */
        uint32_t moved = lst->slots[last];
        lst->slots[p] = moved;
        if (cs) memcpy(lst->codes + (size_t)p * cs, lst->codes + (size_t)last * cs, cs);
        s->pos[moved] = p;
    }
    lst->n--;
    s->where[slot] = NO_LIST;
}

/* ---- search ------------------------------------------------------------------------------- */

typedef struct scan_state {
    const iqdb__ivf *v;
    const iqdb__env *env;
    const iqdb__query *q;
    iqdb__scratch *s;
    iqdb__topk *top;   /* exact results (no quantizer) */
    iqdb__topk short_; /* shortlist by proxy distance (quantizer) */
    iqdb__qquery qq;
    uint64_t visited, matched, dists;
    uint32_t lists;
} scan_state;

/* How the rows of a list are read. After a training renumbered the store (see Row order) a
 * list's rows are consecutive rows of the arena, and streaming them one after another with the
 * rows kernel lets the hardware prefetcher run ahead: 1.3-1.7x the QPS of the four-row gather
 * kernel at 4-32 probes (Fashion-MNIST 60,000, AVX-512 and AVX2 levels, perf + interleaved
 * A/B). The gather kernel streams four rows at once, which is what scattered rows need (rows
 * added since the last training go to free or new slots). A group takes the rows kernel when
 * most of its rows follow their predecessor in memory. Both kernels give a pair the same bits
 * (dist.h), so the choice never changes a result. */
static int mostly_adjacent(const float *const *p, size_t m, size_t stride) {
    size_t adj = 0;
    for (size_t j = 1; j < m; j++) adj += p[j] == p[j - 1] + stride;
    return 2 * adj + 2 >= m;
}

static void scan_list_exact(scan_state *c, const ivf_list *lst) {
    const iqdb__store *st = c->env->store;
    iqdb__scratch *s = c->s;
    iqdb__rows_fn rows = c->env->kern->rows[c->env->op], gather = c->env->kern->gather[c->env->op];
    for (uint32_t base = 0; base < lst->n; base += GROUP) {
        uint32_t end = IQDB_MIN(base + (uint32_t)GROUP, lst->n);
        size_t m = 0;
        for (uint32_t i = base; i < end; i++) {
            uint32_t slot = lst->slots[i];
            if (c->q->filter &&
                !iqdb__cfilter_eval(c->q->filter, st->meta[slot], st->meta_len[slot]))
                continue;
            s->ptrs[m] = iqdb__store_vec(st, slot);
            s->slots[m++] = slot;
        }
        c->visited += end - base;
        if (!m) continue;
        c->matched += m;
        c->dists += m;
        const float *const *p = (const float *const *)s->ptrs;
        (mostly_adjacent(p, m, st->stride) ? rows : gather)(c->q->vec, p, m, st->dim, s->dbuf);
        iqdb__flat_push(c->env, c->q->qnorm, s->dbuf, s->slots, m, c->top);
    }
}

static void scan_list_codes(scan_state *c, const ivf_list *lst, uint32_t l) {
    const iqdb__store *st = c->env->store;
    const iqdb__quant *qt = &c->v->st.quant;
    const size_t cs = qt->code_size;
    iqdb__quant_query_ref(qt, c->env->kern, &c->qq, c->v->st.cptr[l]);
    float *d = c->s->dbuf;
    for (uint32_t base = 0; base < lst->n; base += GROUP) {
        uint32_t end = IQDB_MIN(base + (uint32_t)GROUP, lst->n);
        c->visited += end - base;
        if (!c->q->filter) {
            iqdb__quant_scan(qt, c->env->kern, &c->qq, lst->codes + (size_t)base * cs, end - base,
                             d);
            c->matched += end - base;
            c->dists += end - base;
            for (uint32_t i = base; i < end; i++) {
                uint32_t slot = lst->slots[i];
                iqdb__topk_push(&c->short_, d[i - base], st->seqs[slot], slot);
            }
            continue;
        }
        for (uint32_t i = base; i < end; i++) {
            uint32_t slot = lst->slots[i];
            if (!iqdb__cfilter_eval(c->q->filter, st->meta[slot], st->meta_len[slot])) continue;
            c->matched++;
            c->dists++;
            float p = iqdb__quant_dist(qt, c->env->kern, &c->qq, lst->codes + (size_t)i * cs);
            iqdb__topk_push(&c->short_, p, st->seqs[slot], slot);
        }
    }
}

static void scan_list(scan_state *c, uint32_t l) {
    const ivf_list *lst = &c->v->st.lists[l];
    c->lists++;
    if (c->v->st.quant.code_size)
        scan_list_codes(c, lst, l);
    else
        scan_list_exact(c, lst);
}

/* Lists in order of distance to the query, into lbuf: the best `want` of them, sorted. */
static void order_lists(const iqdb__ivf *v, const float *keys, iqdb__cand *buf, size_t want) {
    iqdb__topk t;
    iqdb__topk_init(&t, buf, want);
    for (uint32_t l = 0; l < v->st.n_lists; l++) iqdb__topk_push(&t, keys[l], l, l);
    iqdb__topk_sort(&t);
}

int iqdb__ivf_search(const iqdb__ivf *v, const iqdb__env *env, const iqdb__query *q,
                     iqdb__scratch *s, iqdb__topk *top, iqdb__sinfo *info) {
    const int codes_only = env->store->no_vectors;
    if (!v->trained || (q->exact && !codes_only)) return iqdb__flat_search(env, q, s, top, info);
    const ivf_state *S = &v->st;
    const uint32_t L = S->n_lists;
    const int coded = S->quant.code_size != 0;
    size_t P = q->n_probes ? q->n_probes : v->n_probes;
    if (P > L || q->exact) P = L; /* codes only: an exact search scans every code */
    /* scratch: the prepared query, then the list keys; list order; one group of rows */
    size_t qf = coded ? iqdb__quant_query_floats(&S->quant) : 0;
    size_t cf = S->ccodes ? iqdb__quant_query_floats(&S->cq) : 0;
    IQDB_TRY(iqdb__scratch_fbuf(s, env->mem, qf + cf + L + (codes_only ? v->dim : 0)));
    IQDB_TRY(iqdb__scratch_lbuf(s, env->mem, L));
    IQDB_TRY(iqdb__scratch_rows(s, env->mem, GROUP));
    scan_state c;
    memset(&c, 0, sizeof c);
    c.v = v;
    c.env = env;
    c.q = q;
    c.s = s;
    c.top = top;
    if (coded) {
        size_t os = q->oversample ? q->oversample : v->oversample, sl;
        if (iqdb__mul_overflow(q->k, os, &sl) || sl > env->store->count || q->exact)
            sl = (size_t)env->store->count;
        IQDB_TRY(iqdb__scratch_cand2(s, env->mem, sl));
        iqdb__topk_init(&c.short_, s->cand2, sl);
        iqdb__quant_query(&S->quant, env->kern, q->vec, q->qnorm, s->fbuf, &c.qq);
    }
    float *keys = s->fbuf + qf + cf;
    if (L > 1 && S->ccodes) { /* proxies from the centroids' codes (see rank_prepare) */
        if (S->cnorm) {
            rank_l2(v, env, q->vec, s->fbuf + qf, keys);
        } else {
            iqdb__qquery cqq;
            iqdb__quant_query(&S->cq, env->kern, q->vec, q->qnorm, s->fbuf + qf, &cqq);
            iqdb__quant_scan(&S->cq, env->kern, &cqq, S->ccodes, L, keys);
        }
        if (S->nrange) /* dot: the proxy is -(q . c); apply the norm-aware bound */
            for (uint32_t l = 0; l < L; l++) {
                float d = -keys[l], k = d > 0.0f   ? -d * S->nrange[2 * l + 1]
                                        : d < 0.0f ? -d * S->nrange[2 * l]
                                                   : 0.0f;
                keys[l] = k == k ? k : INFINITY;
            }
    } else if (L > 1) {
        env->kern->rows[iqdb__km_op(v->mode)](q->vec, S->cptr, L, v->dim, keys);
        if (S->nrange) /* dot: the norm-aware bound (see widen_range) */
            for (uint32_t l = 0; l < L; l++) {
                float d = keys[l], k = d > 0.0f   ? -d * S->nrange[2 * l + 1]
                                       : d < 0.0f ? -d * S->nrange[2 * l]
                                                  : 0.0f;
                keys[l] = k == k ? k : INFINITY; /* 0 * inf (an empty list): last */
            }
        else
            for (uint32_t l = 0; l < L; l++) keys[l] = iqdb__km_key(v->mode, keys[l]);
    } else {
        keys[0] = 0.0f;
    }
    order_lists(v, keys, s->lbuf, P);
    for (size_t i = 0; i < P; i++) scan_list(&c, s->lbuf[i].slot);
    /* Widening: the next lists in order until as many rows have matched as the probed lists
     * held — a filtered search then scores as many candidates as an unfiltered one, and keeps
     * its recall (a filter passing 20% of the rows scans about 5x the lists) — and at least k,
     * or every list. Without a filter this only widens when the lists held fewer than k. */
    uint64_t target = IQDB_MAX((uint64_t)q->k, c.visited);
    if (c.matched < target && P < L) {
        order_lists(v, keys, s->lbuf, L);
        for (size_t i = P; i < L && c.matched < target; i++) scan_list(&c, s->lbuf[i].slot);
    }
    if (coded && codes_only) { /* against the decoded rows; work: the dim floats after keys */
        for (size_t i = 0; i < c.short_.n; i++) {
            uint32_t slot = c.short_.h[i].slot;
            iqdb__quant_rerank_code(&S->quant, env, q, &c.short_.h[i], code_of(S, slot),
                                    S->cptr[S->where[slot]], keys + L, top);
        }
        info->n_reranked += (uint32_t)c.short_.n;
        c.dists += c.short_.n;
    } else if (coded) {
        iqdb__quant_rerank(env, q, c.short_.h, c.short_.n, top);
        info->n_reranked += (uint32_t)c.short_.n;
        c.dists += c.short_.n;
    }
    info->complete = 1;
    info->strategy = v->single   ? (q->filter ? IQDB_STRATEGY_CODES_FILTERED : IQDB_STRATEGY_CODES)
                     : q->filter ? IQDB_STRATEGY_IVF_FILTERED
                                 : IQDB_STRATEGY_IVF;
    info->n_distances += c.dists + (L > 1 ? L : 0);
    info->n_visited += c.visited;
    info->n_matched += c.matched;
    info->n_lists_scanned += v->single ? 0 : c.lists;
    return IQDB_OK;
}

typedef struct batch_ctx {
    const iqdb__ivf *v;
    const iqdb__env *env;
    const iqdb__batch *b;
    _Atomic int rc;
} batch_ctx;

static void batch_task(void *arg, size_t task) {
    batch_ctx *c = arg;
    const iqdb__batch *b = c->b;
    size_t q0 = task * QCHUNK, q1 = IQDB_MIN(q0 + QCHUNK, b->nq), k = b->proto.k;
    iqdb__scratch *s = iqdb__scratch_get(c->env->scratch);
    int rc = s ? iqdb__scratch_cand(s, c->env->mem, k) : IQDB_NOMEM;
    for (size_t i = q0; i < q1 && rc == IQDB_OK; i++) {
        iqdb__query q = b->proto;
        q.vec = b->qs + i * b->dim;
        q.qnorm = b->qnorms ? b->qnorms[i] : 0.0f;
        iqdb__topk top;
        iqdb__topk_init(&top, s->cand, k);
        iqdb__sinfo si;
        memset(&si, 0, sizeof si);
        rc = iqdb__ivf_search(c->v, c->env, &q, s, &top, &si);
        if (rc == IQDB_OK)
            iqdb__hits_from_top(c->env->store, &top, b->hits + i * b->out_stride, &b->n_hits[i]);
    }
    if (rc) atomic_store(&c->rc, rc);
    iqdb__scratch_put(c->env->scratch, s);
}

int iqdb__ivf_search_batch(const iqdb__ivf *v, const iqdb__env *env, const iqdb__batch *b) {
    if (!v->trained || (b->proto.exact && !env->store->no_vectors))
        return iqdb__flat_search_batch(env, b);
    batch_ctx c = {v, env, b, 0};
    atomic_init(&c.rc, IQDB_OK);
    iqdb__pool_run(env->pool, (b->nq + QCHUNK - 1) / QCHUNK, batch_task, &c);
    return atomic_load(&c.rc);
}

int iqdb__ivf_vector(const iqdb__ivf *v, const iqdb__env *env, uint32_t slot, float *out) {
    const ivf_state *s = &v->st;
    if (!v->trained || slot >= s->where_cap || s->where[slot] == NO_LIST) return IQDB_ERROR;
    decode_row(s, slot, out);
    if (s->quant.normalize) { /* codes hold the direction; the store keeps the norm */
        float n = sqrtf(IQDB_MAX(env->store->sqnorm[slot], 0.0f));
        for (uint32_t j = 0; j < v->dim; j++) out[j] *= n;
    }
    return IQDB_OK;
}

/* ---- memory and description --------------------------------------------------------------- */

size_t iqdb__ivf_mem(const iqdb__ivf *v) {
    size_t b = sizeof *v;
    const ivf_state *s = &v->st;
    if (!v->trained) return b;
    b += cent_bytes(v, s->n_lists) + 64 + sizeof(void *); /* aligned block overhead */
    b += (size_t)s->n_lists * (sizeof *s->cptr + sizeof *s->lists);
    for (uint32_t l = 0; l < s->n_lists; l++) b += (size_t)s->lists[l].cap * sizeof(uint32_t);
    b += s->where_cap * (sizeof *s->where + sizeof *s->pos) + s->work_bytes;
    if (s->nrange) b += 2 * (size_t)s->n_lists * sizeof(float);
    if (s->ccodes) b += (size_t)s->n_lists * v->dim + iqdb__quant_mem(&s->cq);
    if (s->cnorm) b += (size_t)s->n_lists * sizeof(float);
    return b + iqdb__quant_mem(&s->quant);
}

void iqdb__ivf_describe(const iqdb__ivf *v, iqdb__index_desc *d) {
    const ivf_state *s = &v->st;
    memset(d, 0, sizeof *d);
    d->quant = v->qkind;
    d->code_bytes = s->quant.code_size;
    d->trained = (uint32_t)v->trained;
    d->trained_rows = v->trained_rows;
    d->lists = v->trained && !v->single ? s->n_lists : 0;
    if (v->trained)
        for (uint32_t l = 0; l < s->n_lists; l++)
            d->mem_codes += (size_t)s->lists[l].cap * s->quant.code_size;
}

/* ---- check -------------------------------------------------------------------------------- */

int iqdb__ivf_check(const iqdb__ivf *v, const iqdb__env *env) {
    const iqdb__store *st = env->store;
    const ivf_state *s = &v->st;
    if (!v->trained) return IQDB_OK;
    for (uint32_t l = 0; l < s->n_lists; l++)
        if (!iqdb__all_finite(s->cptr[l], v->dim))
            return iqdb__fail(NULL, IQDB_CORRUPT, "ivf: centroid %u is not finite", l);
    if (!iqdb__quant_valid(&s->quant))
        return iqdb__fail(NULL, IQDB_CORRUPT, "ivf: quantizer parameters are out of range");
    const size_t cs = s->quant.code_size;
    size_t wb = iqdb__quant_work(&s->quant) * sizeof(float) + cs + 8;
    float *work = cs ? iqdb__alloc(v->mem, wb) : NULL;
    if (cs && !work) return IQDB_NOMEM;
    uint8_t *code = (uint8_t *)(work + iqdb__quant_work(&s->quant));
    uint64_t total = 0;
    int rc = IQDB_OK;
    for (uint32_t l = 0; l < s->n_lists && rc == IQDB_OK; l++) {
        const ivf_list *lst = &s->lists[l];
        if (lst->n > lst->cap) {
            rc = iqdb__fail(NULL, IQDB_CORRUPT, "ivf: list %u holds %u of %u entries", l, lst->n,
                            lst->cap);
            break;
        }
        total += lst->n;
        for (uint32_t i = 0; i < lst->n && rc == IQDB_OK; i++) {
            uint32_t slot = lst->slots[i];
            if (slot >= st->n_slots || !st->live[slot])
                rc = iqdb__fail(NULL, IQDB_CORRUPT, "ivf: list %u holds dead slot %u", l, slot);
            else if (slot >= s->where_cap || s->where[slot] != l || s->pos[slot] != i)
                rc = iqdb__fail(NULL, IQDB_CORRUPT,
                                "ivf: slot %u is in list %u at %u but the slot map disagrees", slot,
                                l, i);
            else if (s->nrange &&
                     !(sqrtf(IQDB_MAX(st->sqnorm[slot], 0.0f)) >= s->nrange[2 * l] &&
                       sqrtf(IQDB_MAX(st->sqnorm[slot], 0.0f)) <= s->nrange[2 * l + 1]))
                rc = iqdb__fail(NULL, IQDB_CORRUPT, "ivf: slot %u is outside its list's norm range",
                                slot);
            else if (cs && !st->no_vectors) { /* codes only: the codes are the rows */
                iqdb__quant_encode(&s->quant, env->kern, iqdb__store_vec(st, slot), s->cptr[l],
                                   work, code);
                if (memcmp(code, lst->codes + (size_t)i * cs, cs))
                    rc = iqdb__fail(NULL, IQDB_CORRUPT,
                                    "ivf: the code of slot %u differs from its row's encoding",
                                    slot);
            }
        }
    }
    if (rc == IQDB_OK && total != st->count)
        rc = iqdb__fail(NULL, IQDB_CORRUPT, "ivf: lists hold %llu rows, the store %llu",
                        (unsigned long long)total, (unsigned long long)st->count);
    if (rc == IQDB_OK)
        for (size_t slot = 0; slot < s->where_cap; slot++)
            if (s->where[slot] != NO_LIST && (slot >= st->n_slots || !st->live[slot])) {
                rc = iqdb__fail(NULL, IQDB_CORRUPT, "ivf: dead slot %zu is still mapped", slot);
                break;
            }
    iqdb__free(v->mem, work, cs ? wb : 0);
    return rc;
}

/* ---- serialize / load --------------------------------------------------------------------- */

int iqdb__ivf_serialize(const iqdb__ivf *v, const iqdb__env *env, iqdb__sink *sink) {
    const ivf_state *s = &v->st;
    uint64_t rows = 0;
    if (v->trained)
        for (uint32_t l = 0; l < s->n_lists; l++) rows += s->lists[l].n;
    uint32_t h32[8] = {IVF_MAGIC,
                       IVF_VERSION,
                       v->dim,
                       (uint32_t)v->metric,
                       (uint32_t)v->qkind,
                       (v->trained ? F_TRAINED : 0u) | (v->single ? F_SINGLE : 0u) |
                           (env->store->no_vectors ? F_CODES_ONLY : 0u),
                       v->trained ? s->n_lists : 0u,
                       s->quant.code_size};
    uint64_t h64[4] = {env->store->n_slots, rows, v->trained_rows, v->next_train};
    IQDB_TRY(iqdb__ser_put(sink, h32, 8, 4));
    IQDB_TRY(iqdb__ser_put(sink, h64, 4, 8));
    if (v->trained) {
        for (uint32_t l = 0; l < s->n_lists; l++)
            IQDB_TRY(iqdb__ser_put(sink, s->cptr[l], v->dim, 4));
        if (s->nrange) IQDB_TRY(iqdb__ser_put(sink, s->nrange, 2 * (size_t)s->n_lists, 4));
        IQDB_TRY(iqdb__quant_write(&s->quant, sink));
        for (uint32_t l = 0; l < s->n_lists; l++) {
            const ivf_list *lst = &s->lists[l];
            IQDB_TRY(iqdb__ser_u32(sink, lst->n));
            IQDB_TRY(iqdb__ser_put(sink, lst->slots, lst->n, 4));
            IQDB_TRY(iqdb__ser_put(sink, lst->codes, (size_t)lst->n * s->quant.code_size, 1));
        }
    }
    return iqdb__ser_u32(sink, IVF_END);
}

#define CORRUPT(...) iqdb__fail(NULL, IQDB_CORRUPT, __VA_ARGS__)

/* Reads the trained body into ns (allocated for n_lists by the caller). */
static int load_body(const iqdb__ivf *v, const iqdb__env *env, iqdb__source *src, ivf_state *ns,
                     uint64_t rows) {
    const iqdb__store *st = env->store;
    for (uint32_t l = 0; l < ns->n_lists; l++) {
        IQDB_TRY(iqdb__ser_get(src, ns->cent + (size_t)l * v->cstride, v->dim, 4));
        if (!iqdb__all_finite(ns->cptr[l], v->dim))
            return CORRUPT("ivf section: centroid %u is not finite", l);
    }
    if (ns->nrange) {
        IQDB_TRY(iqdb__ser_get(src, ns->nrange, 2 * (size_t)ns->n_lists, 4));
        for (size_t i = 0; i < 2 * (size_t)ns->n_lists; i++)
            if (!(ns->nrange[i] >= 0.0f) || (i % 2 && !(ns->nrange[i] < INFINITY)))
                return CORRUPT("ivf section: bad norm range of list %zu", i / 2);
    }
    int rc = iqdb__quant_read(&ns->quant, src);
    if (rc == IQDB_CORRUPT) return CORRUPT("ivf section: bad quantizer parameters");
    if (rc) return rc;
    const size_t cs = ns->quant.code_size;
    uint64_t left = rows;
    for (uint32_t l = 0; l < ns->n_lists; l++) {
        uint32_t n;
        IQDB_TRY(iqdb__ser_get(src, &n, 1, 4));
        if (n > left)
            return CORRUPT("ivf section: list %u claims %u rows, %llu remain", l, n,
                           (unsigned long long)left);
        left -= n;
        IQDB_TRY(list_alloc(ns, v->mem, l, n));
        ivf_list *lst = &ns->lists[l];
        IQDB_TRY(iqdb__ser_get(src, lst->slots, n, 4));
        for (uint32_t i = 0; i < n; i++) {
            uint32_t slot = lst->slots[i];
            if (slot >= st->n_slots || !st->live[slot])
                return CORRUPT("ivf section: list %u names slot %u, which holds no row", l, slot);
            if (ns->where[slot] != NO_LIST)
                return CORRUPT("ivf section: slot %u is in two lists", slot);
            ns->where[slot] = l;
            ns->pos[slot] = i;
            lst->n = i + 1;
            widen_range(ns, l, st->sqnorm[slot]); /* a range that lies is made a bound */
        }
        IQDB_TRY(iqdb__ser_get(src, lst->codes, (size_t)n * cs, 1));
        if (ns->quant.kind == IQDB_QUANT_PQ)
            for (size_t i = 0; i < (size_t)n * cs; i++)
                if (lst->codes[i] >= ns->quant.ksub)
                    return CORRUPT("ivf section: PQ code byte %u out of range", lst->codes[i]);
    }
    if (left)
        return CORRUPT("ivf section: %llu rows missing from the lists", (unsigned long long)left);
    return IQDB_OK;
}

int iqdb__ivf_load(iqdb__ivf *v, const iqdb__env *env, iqdb__source *src) {
    const iqdb__store *st = env->store;
    uint32_t h[8];
    uint64_t g[4];
    IQDB_TRY(iqdb__ser_get(src, h, 8, 4));
    if (h[0] != IVF_MAGIC) return CORRUPT("ivf section: bad magic 0x%08x", h[0]);
    if (h[1] != IVF_VERSION)
        return h[1] > IVF_VERSION
                   ? iqdb__fail(NULL, IQDB_FORMAT, "ivf section: format version %u is newer", h[1])
                   : CORRUPT("ivf section: format version %u", h[1]);
    IQDB_TRY(iqdb__ser_get(src, g, 4, 8));
    uint32_t flags = h[5], n_lists = h[6];
    int trained = (flags & F_TRAINED) != 0;
    ivf_state ns;
    state_init(v, &ns);
    if (h[2] != v->dim || h[3] != (uint32_t)v->metric || h[4] != (uint32_t)v->qkind)
        return CORRUPT("ivf section: dim / metric / quantizer %u/%u/%u, the database has %u/%u/%u",
                       h[2], h[3], h[4], v->dim, (unsigned)v->metric, (unsigned)v->qkind);
    if ((flags & ~(F_TRAINED | F_SINGLE | F_CODES_ONLY)) ||
        ((flags & F_SINGLE) != 0) != (v->single != 0) ||
        ((flags & F_CODES_ONLY) != 0) != (st->no_vectors != 0) ||
        ((flags & F_CODES_ONLY) && !trained))
        return CORRUPT("ivf section: flags 0x%x", flags);
    if (h[7] != ns.quant.code_size)
        return CORRUPT("ivf section: code size %u, expected %u", h[7], ns.quant.code_size);
    uint64_t rows = g[1];
    if (!trained) {
        if (n_lists || rows) return CORRUPT("ivf section: untrained, yet %u lists", n_lists);
    } else {
        if (n_lists < 1 || n_lists > MAX_LISTS || (v->single && n_lists != 1))
            return CORRUPT("ivf section: %u lists", n_lists);
        if (rows != st->count)
            return CORRUPT("ivf section: lists hold %llu rows, the store %llu",
                           (unsigned long long)rows, (unsigned long long)st->count);
        IQDB_TRY(state_alloc(v, &ns, n_lists, IQDB_MAX(st->slots_cap, (size_t)1)));
        int rc = load_body(v, env, src, &ns, rows);
        if (rc == IQDB_OK) rc = rank_prepare(v, env, &ns);
        if (rc) {
            state_free(v, &ns);
            return rc;
        }
    }
    uint32_t end;
    int rc = iqdb__ser_get(src, &end, 1, 4);
    if (rc == IQDB_OK && end != IVF_END) rc = CORRUPT("ivf section: bad end marker 0x%08x", end);
    if (rc) {
        state_free(v, &ns);
        return rc;
    }
    if (trained) {
        install(v, &ns, g[2]);
    } else {
        reset_untrained(v);
        v->trained_rows = g[2];
    }
    /* the next automatic training: as written, but never before the threshold or (trained)
     * the last training's row count, whatever the bytes say */
    uint64_t floor_ = trained ? IQDB_MAX(g[2], (uint64_t)1) : iqdb__ivf_train_threshold(v);
    v->next_train = g[3] > floor_ ? g[3] : floor_;
    return IQDB_OK;
}
