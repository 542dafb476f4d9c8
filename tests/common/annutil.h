/*
 * annutil.h — shared pieces of the approximate-index tests (test_ivf.c, test_hnsw_quant.c):
 * clustered data and queries from a seed, the hit checker (every reported distance against a
 * double oracle on what iqdb_get returns), recall against the exact search with the same
 * filter, and the index's serialize / load verbs through in-memory buffers.
 *
 * Metadata convention of these tests: row i has {"tag": i % 5} (none for every 7th row); a
 * `tagf` of -1 means no filter, 0..4 "tag = tagf", 5..9 "NOT tag = tagf - 5".
 */
#ifndef IQDBT_ANNUTIL_H
#define IQDBT_ANNUTIL_H

#include "testutil.h"

#include "index/index.h"

typedef struct iqdbt_dataset {
    uint32_t dim;
    size_t n;
    float *x;
} iqdbt_dataset;

/* n points around `clusters` centres, each component within +-noise of its centre's (centres
 * uniform in [-1, 1]); Hamming data are 0/1 with 20% of the bits flipped. */
static inline iqdbt_dataset iqdbt_gen(iqdb_metric m, size_t n, uint32_t dim, uint32_t clusters,
                                      float noise, uint64_t seed) {
    iqdbt_rng r = {seed};
    iqdbt_dataset d = {dim, n, malloc(n * dim * sizeof(float))};
    float *c = malloc((size_t)clusters * dim * sizeof(float));
    for (size_t i = 0; i < (size_t)clusters * dim; i++)
        c[i] = m == IQDB_METRIC_HAMMING ? (float)(iqdbt_next(&r) & 1) : iqdbt_uniform(&r, -1, 1);
    for (size_t i = 0; i < n; i++) {
        const float *ci = c + (iqdbt_next(&r) % clusters) * dim;
        for (uint32_t j = 0; j < dim; j++)
            d.x[i * dim + j] = m == IQDB_METRIC_HAMMING
                                   ? (iqdbt_next(&r) % 5 == 0 ? 1.0f - ci[j] : ci[j])
                                   : ci[j] + iqdbt_uniform(&r, -noise, noise);
    }
    free(c);
    return d;
}

/* The rows' metadata: {"tag": t} for t < 5 (make before, free after the test). */
static iqdb_meta *iqdbt_tag_meta[5];
static inline void iqdbt_tags_make(void) {
    for (int t = 0; t < 5; t++) {
        assert_int_equal(iqdb_meta_create(NULL, &iqdbt_tag_meta[t]), IQDB_OK);
        iqdb_meta_set_int(iqdbt_tag_meta[t], "tag", t);
    }
}
static inline void iqdbt_tags_free(void) {
    for (int t = 0; t < 5; t++) iqdb_meta_destroy(iqdbt_tag_meta[t]);
}

/* Rows [from, to) of ds with ids id0 + i and the convention's metadata, in batches. */
static inline void iqdbt_load_rows(iqdb *db, const iqdbt_dataset *ds, size_t from, size_t to,
                                   iqdb_id id0) {
    enum { CH = 512 };
    iqdb_id ids[CH];
    const iqdb_meta *metas[CH];
    for (size_t b = from; b < to; b += CH) {
        size_t m = IQDB_MIN((size_t)CH, to - b);
        for (size_t i = 0; i < m; i++) {
            ids[i] = id0 + b + i;
            metas[i] = (b + i) % 7 == 6 ? NULL : iqdbt_tag_meta[(b + i) % 5];
        }
        assert_int_equal(iqdb_upsert_batch(db, m, ids, ds->x + b * ds->dim, metas), IQDB_OK);
    }
}

static inline iqdb_stats iqdbt_stats(iqdb *db) {
    iqdb_stats s;
    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    assert_int_equal(iqdb_stats_get(db, &s), IQDB_OK);
    return s;
}

/* The filter of `tagf` (0..9, see the top). */
static inline iqdb_filter *iqdbt_tag_filter(int tagf) {
    char text[32];
    if (tagf < 5)
        snprintf(text, sizeof text, "tag = %d", tagf);
    else
        snprintf(text, sizeof text, "NOT tag = %d", tagf - 5);
    iqdb_filter *f;
    assert_int_equal(iqdb_filter_parse(NULL, text, strlen(text), &f, NULL), IQDB_OK);
    return f;
}

/* nq queries near random rows, so queries follow the data. */
static inline void iqdbt_gen_queries(float *q, size_t nq, uint32_t dim, iqdb_metric m,
                                     const iqdbt_dataset *ds, uint64_t seed) {
    iqdbt_rng r = {seed};
    for (size_t i = 0; i < nq; i++) {
        const float *x = ds->x + (iqdbt_next(&r) % ds->n) * dim;
        for (uint32_t j = 0; j < dim; j++)
            q[i * dim + j] = m == IQDB_METRIC_HAMMING ? (iqdbt_next(&r) % 8 ? x[j] : 1.0f - x[j])
                                                      : x[j] + iqdbt_uniform(&r, -0.2f, 0.2f);
    }
}

/* Every hit: an existing id whose distance to what iqdb_get returns (the row, or for a
 * codes-only database the decoded code) matches the reported one, passing the filter `tagf`,
 * sorted, distinct. */
static inline void iqdbt_check_hits(iqdb *db, iqdb_metric m, const float *q, uint32_t dim,
                                    const iqdb_hit *h, size_t n, int tagf) {
    float *v = malloc(dim * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        iqdb_meta *meta = NULL;
        assert_int_equal(iqdb_get(db, h[i].id, v, tagf >= 0 ? &meta : NULL), IQDB_OK);
        double want = iqdbt_dist(m, q, v, dim);
        if (fabs(h[i].distance - want) > 1e-4 * (1 + fabs(want))) {
            print_error("hit %zu id %llu: distance %.9g, oracle %.9g\n", i,
                        (unsigned long long)h[i].id, h[i].distance, want);
            fail();
        }
        if (tagf >= 0) {
            int64_t t = -1;
            int rc = iqdb_meta_get_int(meta, "tag", &t);
            if (tagf < 5) {
                assert_int_equal(rc, IQDB_OK);
                assert_int_equal(t, tagf);
            } else {
                assert_true(rc != IQDB_OK || t != tagf - 5);
            }
            iqdb_meta_destroy(meta);
        }
        if (i) assert_true(h[i - 1].distance <= h[i].distance);
        for (size_t j = 0; j < i; j++) assert_true(h[j].id != h[i].id);
    }
    free(v);
}

/* What the approximate searches of one iqdbt_recall did. */
typedef struct iqdbt_recall_info {
    uint64_t visited;   /* rows examined (search info n_visited) */
    size_t graph_walks; /* searches whose strategy was HNSW or HNSW_FILTERED */
} iqdbt_recall_info;

/* recall@k of `p` against the exact search with the same filter (a hit at a distance <= the
 * true k-th distance counts); every hit is checked as above; the count must be min(k, matching)
 * and the result complete; a graph search of a quantized index re-ranked at least its hits.
 * k <= 64. */
static inline double iqdbt_recall(iqdb *db, iqdb_metric m, const float *qs, size_t nq, uint32_t dim,
                                  size_t k, const iqdb_search_params *p, int tagf,
                                  iqdbt_recall_info *ri) {
    iqdb_search_params ex = *p;
    ex.exact = 1;
    size_t good = 0, want = 0;
    iqdbt_recall_info sum = {0, 0};
    for (size_t i = 0; i < nq; i++) {
        iqdb_hit h[64], e[64];
        size_t n, ne;
        iqdb_search_info info = {.struct_size = sizeof info};
        assert_int_equal(iqdb_search(db, qs + i * dim, k, p, h, &n, &info), IQDB_OK);
        assert_int_equal(iqdb_search(db, qs + i * dim, k, &ex, e, &ne, NULL), IQDB_OK);
        assert_int_equal(info.complete, 1);
        assert_int_equal(n, ne);
        sum.visited += info.n_visited;
        if (info.strategy == IQDB_STRATEGY_HNSW || info.strategy == IQDB_STRATEGY_HNSW_FILTERED) {
            sum.graph_walks++;
            iqdb_stats st = {.struct_size = sizeof st};
            assert_int_equal(iqdb_stats_get(db, &st), IQDB_OK);
            if (st.trained) assert_true(info.n_reranked >= n);
        }
        iqdbt_check_hits(db, m, qs + i * dim, dim, h, n, tagf);
        for (size_t j = 0; j < n; j++) good += h[j].distance <= e[ne - 1].distance;
        want += ne;
    }
    if (ri) *ri = sum;
    return want ? (double)good / (double)want : 1.0;
}

/* The index's serialized section, in memory (free .p). */
static inline iqdbt_membuf iqdbt_index_bytes(iqdb *db) {
    iqdbt_membuf b = {0};
    iqdb__sink sink = {iqdbt_mb_write, &b};
    assert_int_equal(iqdb__index_serialize(iqdb__db_index(db), iqdb__db_env(db), &sink), IQDB_OK);
    return b;
}
/* Loads n bytes into the index; returns the verb's status. */
static inline int iqdbt_index_load(iqdb *db, const uint8_t *p, size_t n) {
    iqdbt_membuf b = {(uint8_t *)p, n, n, 0};
    iqdb__source src = {iqdbt_mb_read, &b};
    return iqdb__index_load(iqdb__db_index(db), iqdb__db_env(db), &src);
}

#endif
