/*
 * test_quant.c — the k-means and quantizer modules directly (internal API).
 *
 *  - k-means recovers well-separated clusters in every mode (L2, spherical, L1, Hamming), is
 *    deterministic for a seed whatever the pool width, and handles k = n and duplicates;
 *  - SQ8 codes decode within half a step; binary codes are the bits above the thresholds; PQ
 *    reconstructs better than the subspace centroids' spread; the proxy distance of every
 *    kind equals the metric applied to the decoded vector (the scan kernels agree with
 *    decode), within rounding;
 *  - parameters round-trip through write / read, and read refuses non-finite values, a
 *    negative step, a wrong PQ shape.
 * Runs once per SIMD level.
 */
#include "../common/testutil.h"
#include "index/kmeans.h"
#include "index/quant.h"
#include "pool.h"

static iqdb__mem M;

static int setup(void **state) {
    (void)state;
    iqdb__mem_init(&M, NULL);
    return 0;
}
static int teardown(void **state) {
    (void)state;
    assert_int_equal(atomic_load(&M.live), 0);
    return 0;
}

static const iqdb__kernels *kern(void) {
    const char *e = getenv("IQDB_SIMD");
    iqdb_simd l = IQDB_SIMD_AUTO;
    if (e && strcmp(e, "scalar") == 0) l = IQDB_SIMD_SCALAR;
    if (e && strcmp(e, "avx2") == 0) l = IQDB_SIMD_AVX2;
    if (e && strcmp(e, "avx512") == 0) l = IQDB_SIMD_AVX512;
    const iqdb__kernels *k = iqdb__kernels_get(l);
    assert_non_null(k);
    return k;
}

/* n points in `c` clusters far apart (centres on the axes, radius 10; noise 0.5, or 0/1 data
 * with 3 flipped bits for Hamming); truth[i] = cluster. */
static float *clusters(iqdb__km_mode mode, size_t n, uint32_t dim, uint32_t c, uint32_t *truth,
                       uint64_t seed) {
    iqdbt_rng r = {seed};
    float *x = calloc(n * dim, sizeof(float));
    for (size_t i = 0; i < n; i++) {
        uint32_t k = (uint32_t)(i % c);
        truth[i] = k;
        float *p = x + i * dim;
        if (mode == IQDB__KM_HAMMING) {
            for (uint32_t j = 0; j < dim; j++) p[j] = (float)((j / (dim / c)) == k);
            for (int f = 0; f < 3; f++) {
                uint32_t j = (uint32_t)(iqdbt_next(&r) % dim);
                p[j] = 1.0f - p[j];
            }
        } else {
            for (uint32_t j = 0; j < dim; j++) p[j] = iqdbt_uniform(&r, -0.5f, 0.5f);
            p[k % dim] += 10.0f;
            if (mode == IQDB__KM_SPHERICAL) /* directions matter, not lengths */
                for (uint32_t j = 0; j < dim; j++) p[j] *= 1.0f + (float)(i % 7);
        }
    }
    return x;
}

/* Every cluster's points share one centroid, and different clusters different ones. */
static void test_kmeans_recovers_clusters(void **state) {
    (void)state;
    const iqdb__km_mode modes[] = {IQDB__KM_L2, IQDB__KM_SPHERICAL, IQDB__KM_L1, IQDB__KM_HAMMING};
    const uint32_t dim = 24, c = 6;
    const size_t n = 600;
    for (size_t mi = 0; mi < 4; mi++) {
        printf("kmeans mode %zu\n", mi);
        uint32_t truth[600], got[600];
        float *x = clusters(modes[mi], n, dim, c, truth, 10 + mi);
        const float *xs[600];
        float w[600];
        for (size_t i = 0; i < n; i++) {
            xs[i] = x + i * dim;
            double s = 0;
            for (uint32_t j = 0; j < dim; j++) s += (double)xs[i][j] * xs[i][j];
            w[i] = (float)(1.0 / sqrt(s));
        }
        float cent[6 * 32];
        iqdb__km km = {modes[mi], xs,  modes[mi] == IQDB__KM_SPHERICAL ? w : NULL,
                       n,         dim, c,
                       20,        7,   kern(),
                       NULL,      &M,  NULL,
                       0};
        assert_int_equal(iqdb__kmeans(&km, cent, 32, got), IQDB_OK);
        uint32_t map[6];
        for (uint32_t k = 0; k < c; k++) map[k] = UINT32_MAX;
        for (size_t i = 0; i < n; i++) {
            if (map[truth[i]] == UINT32_MAX) map[truth[i]] = got[i];
            assert_int_equal(got[i], map[truth[i]]);
        }
        for (uint32_t a = 0; a < c; a++)
            for (uint32_t b = a + 1; b < c; b++) assert_true(map[a] != map[b]);
        for (uint32_t k = 0; k < c; k++) /* padding is zero */
            for (uint32_t j = dim; j < 32; j++) assert_true(cent[k * 32 + j] == 0.0f);
        if (modes[mi] == IQDB__KM_SPHERICAL)
            for (uint32_t k = 0; k < c; k++) {
                double s = 0;
                for (uint32_t j = 0; j < dim; j++) s += (double)cent[k * 32 + j] * cent[k * 32 + j];
                assert_true(fabs(s - 1.0) < 1e-4);
            }
        if (modes[mi] == IQDB__KM_HAMMING) /* medians of 0/1 data are 0/1 */
            for (uint32_t k = 0; k < c; k++)
                for (uint32_t j = 0; j < dim; j++)
                    assert_true(cent[k * 32 + j] == 0.0f || cent[k * 32 + j] == 1.0f);
        free(x);
    }
}

/* The same seed gives the same centroids with no pool and with a 3-thread pool; k = n and
 * duplicate points (fewer distinct points than k) work. */
static void test_kmeans_deterministic_and_edges(void **state) {
    (void)state;
    const uint32_t dim = 16;
    const size_t n = 2000;
    uint32_t *truth = malloc(n * sizeof *truth);
    float *x = clusters(IQDB__KM_L2, n, dim, 8, truth, 3);
    const float **xs = malloc(n * sizeof *xs);
    for (size_t i = 0; i < n; i++) xs[i] = x + i * dim;
    iqdb__pool *pool;
    assert_int_equal(iqdb__pool_create(&M, 2, &pool), IQDB_OK);
    float *a = malloc(40 * dim * sizeof(float)), *b = malloc(40 * dim * sizeof(float));
    iqdb__km km = {IQDB__KM_L2, xs, NULL, n, dim, 40, 10, 99, kern(), NULL, &M, NULL, 0};
    assert_int_equal(iqdb__kmeans(&km, a, dim, NULL), IQDB_OK);
    km.pool = pool;
    assert_int_equal(iqdb__kmeans(&km, b, dim, NULL), IQDB_OK);
    assert_memory_equal(a, b, 40 * dim * sizeof(float));
    /* k = n: every point is a centroid of its own */
    km.n = 40;
    km.k = 40;
    uint32_t as[40];
    assert_int_equal(iqdb__kmeans(&km, a, dim, as), IQDB_OK);
    for (int i = 0; i < 40; i++)
        for (int j = i + 1; j < 40; j++) assert_true(as[i] != as[j]);
    /* 30 copies of 3 points, k = 10: terminates, every point assigned */
    for (size_t i = 0; i < 30; i++) xs[i] = x + (i % 3) * dim;
    km.n = 30;
    km.k = 10;
    assert_int_equal(iqdb__kmeans(&km, a, dim, as), IQDB_OK);
    for (int i = 0; i < 30; i++) assert_true(as[i] < 10);
    for (int i = 3; i < 30; i++) assert_true(as[i] == as[i % 3]);
    iqdb__pool_destroy(pool);
    free(a);
    free(b);
    free(xs);
    free(x);
    free(truth);
}

/* ---- quantizers ----------------------------------------------------------------------------- */

enum { DIM = 40, N = 500 };

static void train(iqdb__quant *q, iqdb_quant kind, iqdb_metric m, const float *x, size_t n,
                  uint32_t pq_m) {
    iqdb__quant_init(q, &M, kind, m, DIM, pq_m);
    const float **xs = malloc(n * sizeof *xs);
    for (size_t i = 0; i < n; i++) xs[i] = x + i * DIM;
    iqdb__qtrain t = {xs, NULL, n, kern(), NULL, 5};
    assert_int_equal(iqdb__quant_train(q, &t), IQDB_OK);
    assert_true(q->trained);
    free(xs);
}

static float *data(uint64_t seed, float lo, float hi) {
    iqdbt_rng r = {seed};
    float *x = malloc(N * DIM * sizeof(float));
    iqdbt_fill(&r, x, N * DIM, lo, hi);
    return x;
}

/* SQ8: every decoded component within half a step of the original (inside the trained range),
 * codes clamp outside it, and a constant dimension decodes exactly. */
static void test_quant_sq8_codec(void **state) {
    (void)state;
    float *x = data(1, -3, 5);
    for (size_t i = 0; i < N; i++) x[i * DIM + 7] = 2.5f; /* constant */
    iqdb__quant q;
    train(&q, IQDB_QUANT_SQ8, IQDB_METRIC_L2, x, N, 0);
    assert_int_equal(q.code_size, DIM);
    assert_true(q.step[7] == 0.0f && q.lo[7] == 2.5f);
    uint8_t code[DIM];
    float work[DIM], dec[DIM];
    for (size_t i = 0; i < N; i++) {
        iqdb__quant_encode(&q, kern(), x + i * DIM, NULL, work, code);
        iqdb__quant_decode(&q, code, NULL, dec);
        for (uint32_t j = 0; j < DIM; j++)
            assert_true(fabsf(dec[j] - x[i * DIM + j]) <= q.step[j] * 0.5f + 1e-5f);
    }
    float out[DIM];
    for (uint32_t j = 0; j < DIM; j++) out[j] = 1000.0f;
    iqdb__quant_encode(&q, kern(), out, NULL, work, code);
    for (uint32_t j = 0; j < DIM; j++) assert_int_equal(code[j], j == 7 ? 0 : 255);
    for (uint32_t j = 0; j < DIM; j++) out[j] = -1000.0f;
    iqdb__quant_encode(&q, kern(), out, NULL, work, code);
    for (uint32_t j = 0; j < DIM; j++) assert_int_equal(code[j], 0);
    iqdb__quant_clear(&q);
    free(x);
}

/* Binary: bit j is x_j > mean_j; below / above decode to the sides' means. */
static void test_quant_binary_codec(void **state) {
    (void)state;
    float *x = data(2, 0, 1);
    iqdb__quant q;
    train(&q, IQDB_QUANT_BINARY, IQDB_METRIC_L2, x, N, 0);
    assert_int_equal(q.code_size, 8); /* 40 bits in one 64-bit word */
    for (uint32_t j = 0; j < DIM; j++) {
        double s = 0;
        for (size_t i = 0; i < N; i++) s += x[i * DIM + j];
        assert_true(fabs(q.thr[j] - s / N) < 1e-4);
        assert_true(q.below[j] <= q.thr[j] && q.above[j] >= q.thr[j]);
    }
    uint8_t code[8];
    float work[DIM];
    iqdb__quant_encode(&q, kern(), x, NULL, work, code);
    for (uint32_t j = 0; j < DIM; j++)
        assert_int_equal((code[j >> 3] >> (j & 7)) & 1, x[j] > q.thr[j]);
    for (uint32_t j = DIM; j < 64; j++) assert_int_equal((code[j >> 3] >> (j & 7)) & 1, 0);
    iqdb__quant_clear(&q);
    free(x);
}

/* PQ: m subspaces (any m <= dim, uneven widths), reconstruction error well below the data's
 * spread, encoding deterministic. */
static void test_quant_pq_codec(void **state) {
    (void)state;
    float *x = data(3, -1, 1);
    const uint32_t ms[] = {1, 7, 10, 40};
    for (size_t mi = 0; mi < 4; mi++) {
        iqdb__quant q;
        train(&q, IQDB_QUANT_PQ, IQDB_METRIC_L2, x, N, ms[mi]);
        assert_int_equal(q.code_size, ms[mi]);
        assert_int_equal(q.ksub, 256);
        assert_int_equal(iqdb__pq_off(&q, q.m), DIM);
        uint8_t code[DIM], code2[DIM];
        float work[DIM], dec[DIM];
        double err = 0, var = 0;
        for (size_t i = 0; i < N; i++) {
            iqdb__quant_encode(&q, kern(), x + i * DIM, NULL, work, code);
            iqdb__quant_encode(&q, kern(), x + i * DIM, NULL, work, code2);
            assert_memory_equal(code, code2, q.code_size);
            iqdb__quant_decode(&q, code, NULL, dec);
            for (uint32_t j = 0; j < DIM; j++) {
                err += (dec[j] - x[i * DIM + j]) * (dec[j] - x[i * DIM + j]);
                var += x[i * DIM + j] * x[i * DIM + j];
            }
        }
        printf("pq m=%u: relative squared error %.3f\n", ms[mi], err / var);
        assert_true(err < 0.5 * var); /* 256 centroids per subspace beat the mean by far */
        if (ms[mi] == DIM) assert_true(err < 0.01 * var);
        iqdb__quant_clear(&q);
    }
    free(x);
}

/* The proxy distance (scan kernels, tables) equals the metric on the decoded vector. */
static void test_quant_proxy_matches_decode(void **state) {
    (void)state;
    const iqdb__kernels *k = kern();
    const iqdb_quant kinds[] = {IQDB_QUANT_SQ8, IQDB_QUANT_PQ};
    const iqdb_metric metrics[] = {IQDB_METRIC_L2, IQDB_METRIC_COSINE, IQDB_METRIC_DOT,
                                   IQDB_METRIC_L1};
    float *x = data(4, -2, 2);
    iqdbt_rng r = {8};
    float ref[DIM];
    iqdbt_fill(&r, ref, DIM, -0.3f, 0.3f);
    for (size_t ki = 0; ki < 2; ki++)
        for (size_t mi = 0; mi < 4; mi++) {
            iqdb_metric m = metrics[mi];
            iqdb__quant q;
            train(&q, kinds[ki], m, x, N, 8);
            const float *rp = kinds[ki] == IQDB_QUANT_PQ ? ref : NULL;
            float *work = malloc(iqdb__quant_query_floats(&q) * sizeof(float) + 64);
            float qv[DIM], enc_work[DIM], dec[DIM], out[N];
            iqdbt_fill(&r, qv, DIM, -2, 2);
            double qn = 0;
            for (uint32_t j = 0; j < DIM; j++) qn += (double)qv[j] * qv[j];
            iqdb__qquery qq;
            iqdb__quant_query(&q, k, qv, (float)sqrt(qn), work, &qq);
            iqdb__quant_query_ref(&q, k, &qq, rp);
            uint8_t *codes = malloc((size_t)N * q.code_size);
            for (size_t i = 0; i < N; i++)
                iqdb__quant_encode(&q, kern(), x + i * DIM, rp, enc_work, codes + i * q.code_size);
            iqdb__quant_scan(&q, k, &qq, codes, N, out);
            for (size_t i = 0; i < N; i++) {
                iqdb__quant_decode(&q, codes + i * q.code_size, rp, dec);
                double want = 0;
                for (uint32_t j = 0; j < DIM; j++) {
                    double a = qq.q[j], b = dec[j];
                    want += m == IQDB_METRIC_L2   ? (a - b) * (a - b)
                            : m == IQDB_METRIC_L1 ? fabs(a - b)
                                                  : -a * b;
                }
                float one = iqdb__quant_dist(&q, k, &qq, codes + i * q.code_size);
                assert_true(one == out[i]);
                if (fabs(out[i] - want) > 1e-3 * (1 + fabs(want))) {
                    print_error("%s metric %d code %zu: proxy %.6g, decoded %.6g\n",
                                kinds[ki] == IQDB_QUANT_SQ8 ? "sq8" : "pq", (int)m, i, out[i],
                                want);
                    fail();
                }
            }
            free(codes);
            free(work);
            iqdb__quant_clear(&q);
        }
    free(x);
}

/* ---- persistence ----------------------------------------------------------------------------- */

static int read_into(iqdb__quant *q, iqdb_quant kind, uint32_t pq_m, const iqdbt_membuf *b) {
    iqdb__quant_init(q, &M, kind, IQDB_METRIC_L2, DIM, pq_m);
    iqdbt_membuf c = *b;
    c.pos = 0;
    iqdb__source src = {iqdbt_mb_read, &c};
    int rc = iqdb__quant_read(q, &src);
    if (rc == IQDB_OK) assert_int_equal(c.pos, b->n);
    return rc;
}

static void put_f32(uint8_t *p, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(u >> (8 * i));
}

static void test_quant_persistence(void **state) {
    (void)state;
    float *x = data(5, -1, 1);
    const iqdb_quant kinds[] = {IQDB_QUANT_SQ8, IQDB_QUANT_BINARY, IQDB_QUANT_PQ};
    for (size_t ki = 0; ki < 3; ki++) {
        iqdb__quant q, r;
        train(&q, kinds[ki], IQDB_METRIC_L2, x, N, 8);
        iqdbt_membuf b = {0}, b2 = {0};
        iqdb__sink sink = {iqdbt_mb_write, &b}, sink2 = {iqdbt_mb_write, &b2};
        assert_int_equal(iqdb__quant_write(&q, &sink), IQDB_OK);
        assert_int_equal(read_into(&r, kinds[ki], 8, &b), IQDB_OK);
        assert_int_equal(iqdb__quant_write(&r, &sink2), IQDB_OK);
        assert_int_equal(b.n, b2.n);
        assert_memory_equal(b.p, b2.p, b.n);
        iqdb__quant_clear(&r);
        /* every truncation fails and leaves r untrained with nothing allocated */
        for (size_t cut = 0; cut < b.n; cut += 7) {
            iqdbt_membuf t = b;
            t.n = cut;
            assert_int_equal(read_into(&r, kinds[ki], 8, &t), IQDB_CORRUPT);
            assert_false(r.trained);
        }
        /* a NaN / infinite parameter */
        size_t hdr = kinds[ki] == IQDB_QUANT_PQ ? 12 : 0;
        uint8_t save[4];
        memcpy(save, b.p + hdr + 4, 4);
        put_f32(b.p + hdr + 4, NAN);
        assert_int_equal(read_into(&r, kinds[ki], 8, &b), IQDB_CORRUPT);
        put_f32(b.p + hdr + 4, INFINITY);
        assert_int_equal(read_into(&r, kinds[ki], 8, &b), IQDB_CORRUPT);
        memcpy(b.p + hdr + 4, save, 4);
        if (kinds[ki] == IQDB_QUANT_SQ8) { /* a negative step */
            put_f32(b.p + DIM * 4, -1.0f);
            assert_int_equal(read_into(&r, kinds[ki], 8, &b), IQDB_CORRUPT);
        }
        if (kinds[ki] == IQDB_QUANT_PQ) { /* another m than configured; ksub 0 and 257 */
            assert_int_equal(read_into(&r, kinds[ki], 10, &b), IQDB_CORRUPT);
            b.p[4] = 0;
            b.p[5] = 0;
            assert_int_equal(read_into(&r, kinds[ki], 8, &b), IQDB_CORRUPT);
            b.p[4] = 1;
            b.p[5] = 1;
            assert_int_equal(read_into(&r, kinds[ki], 8, &b), IQDB_CORRUPT);
        }
        assert_int_equal(atomic_load(&M.live) > 0, 1); /* q still holds its parameters */
        iqdb__quant_clear(&q);
        free(b.p);
        free(b2.p);
    }
    free(x);
}

int main(void) {
    iqdbt_simd_gate();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kmeans_recovers_clusters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kmeans_deterministic_and_edges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quant_sq8_codec, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quant_binary_codec, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quant_pq_codec, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quant_proxy_matches_decode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quant_persistence, setup, teardown),
    };
    return cmocka_run_group_tests_name("quant", tests, NULL, NULL);
}
