/*
 * test_dist.c — the distance kernels.
 *
 * For every SIMD level this machine runs: each op agrees with the scalar reference within a
 * relative tolerance for every dim 1..300, 768 and 1536, at unaligned starting offsets; the
 * scalar reference agrees with a double-precision computation; and within a level the pair,
 * rows, tile and gather shapes agree bit for bit (the property batch search relies on). The same
 * for the quantized-code kernels: SQ8 within tolerance of scalar and double, binary popcounts
 * exactly. The panel shape (dot products against transposed queries, its own summation order)
 * within the rounding bound of a plain sum of d products.
 */
#include "../common/testutil.h"
#include "dist/dist.h"

static const iqdb_simd levels[] = {IQDB_SIMD_SCALAR, IQDB_SIMD_AVX2, IQDB_SIMD_AVX512,
                                   IQDB_SIMD_NEON};
static const char *const op_names[] = {"l2sq", "dot", "l1", "ham"};

/* Double-precision value of op, and the magnitude sum of its terms (for the tolerance). */
static double ref(int op, const float *a, const float *b, size_t d, double *mag) {
    double s = 0, m = 0;
    for (size_t i = 0; i < d; i++) {
        double x = a[i], y = b[i], t;
        switch (op) {
        case IQDB__OP_L2SQ: t = (x - y) * (x - y); break;
        case IQDB__OP_DOT: t = x * y; break;
        case IQDB__OP_L1: t = fabs(x - y); break;
        default: t = x != y; break;
        }
        s += t;
        m += fabs(t);
    }
    *mag = m;
    return s;
}

static size_t dims[320];
static size_t n_dims;

static void setup_dims(void) {
    n_dims = 0;
    for (size_t d = 1; d <= 300; d++) dims[n_dims++] = d;
    dims[n_dims++] = 768;
    dims[n_dims++] = 1536;
}

/* Random vectors where some components are equal (so Hamming and L1 see zeros too). */
static void fill_pair(iqdbt_rng *r, float *a, float *b, size_t d) {
    for (size_t i = 0; i < d; i++) {
        a[i] = iqdbt_uniform(r, -2.0f, 2.0f);
        b[i] = (iqdbt_next(r) & 3) == 0 ? a[i] : iqdbt_uniform(r, -2.0f, 2.0f);
    }
}

/* Each level matches scalar, and scalar matches double, within tolerance. */
static void test_dist_levels_match_scalar(void **state) {
    (void)state;
    setup_dims();
    const iqdb__kernels *sc = iqdb__kernels_get(IQDB_SIMD_SCALAR);
    assert_non_null(sc);
    float *buf_a = malloc((1536 + 8) * sizeof(float)), *buf_b = malloc((1536 + 8) * sizeof(float));
    iqdbt_rng r = {42};
    int levels_run = 0;
    for (size_t li = 0; li < sizeof levels / sizeof levels[0]; li++) {
        const iqdb__kernels *k = iqdb__kernels_get(levels[li]);
        if (!k) continue;
        levels_run++;
        for (size_t di = 0; di < n_dims; di++) {
            size_t d = dims[di];
            for (size_t off = 0; off < 4; off++) {
                float *a = buf_a + off, *b = buf_b + (3 - off);
                fill_pair(&r, a, b, d);
                for (int op = 0; op < IQDB__N_OPS; op++) {
                    double mag, want = ref(op, a, b, d, &mag);
                    float s = sc->pair[op](a, b, d), v = k->pair[op](a, b, d);
                    double tol = 4e-6 * mag + 1e-30;
                    if (fabs(s - want) > tol || fabs(v - s) > 2 * tol) {
                        print_error("level %s op %s dim %zu offset %zu: scalar %.9g level %.9g "
                                    "double %.9g\n",
                                    iqdb_simd_name(levels[li]), op_names[op], d, off, s, v, want);
                        fail();
                    }
                    if (op == IQDB__OP_HAM) assert_true(v == s && s == (float)want);
                }
            }
        }
    }
    assert_true(levels_run >= 1);
    free(buf_a);
    free(buf_b);
}

/* pair, rows, tile and gather give identical floats within one level. */
static void test_dist_shapes_identical(void **state) {
    (void)state;
    const size_t test_dims[] = {1,  3,  7,  8,   15,  16,  17,  31, 33,
                                63, 64, 65, 100, 127, 129, 784, 785};
    iqdbt_rng r = {7};
    enum { NQ = 9, NX = 11 };
    for (size_t li = 0; li < sizeof levels / sizeof levels[0]; li++) {
        const iqdb__kernels *k = iqdb__kernels_get(levels[li]);
        if (!k) continue;
        for (size_t di = 0; di < sizeof test_dims / sizeof test_dims[0]; di++) {
            size_t d = test_dims[di];
            float *q = malloc(NQ * d * sizeof(float)), *x = malloc(NX * d * sizeof(float));
            iqdbt_fill(&r, q, NQ * d, -1, 1);
            iqdbt_fill(&r, x, NX * d, -1, 1);
            for (size_t i = 0; i < NX * d; i += 5) x[i] = q[i % (NQ * d)];
            const float *qs[NQ], *xs[NX];
            for (int i = 0; i < NQ; i++) qs[i] = q + i * d;
            for (int j = 0; j < NX; j++) xs[j] = x + j * d;
            for (int op = 0; op < IQDB__N_OPS; op++) {
                for (size_t nq = 1; nq <= NQ; nq += 2) {
                    for (size_t nx = 1; nx <= NX; nx += 3) {
                        float tile[NQ * NX], rows[NX], gath[NX];
                        k->tile[op](qs, nq, xs, nx, d, tile);
                        for (size_t i = 0; i < nq; i++) {
                            k->rows[op](qs[i], xs, nx, d, rows);
                            k->gather[op](qs[i], xs, nx, d, gath);
                            for (size_t j = 0; j < nx; j++) {
                                float p = k->pair[op](qs[i], xs[j], d);
                                if (!(p == rows[j] && p == tile[i * nx + j] && p == gath[j])) {
                                    print_error("level %s op %s dim %zu q%zu x%zu: pair %.9g rows "
                                                "%.9g tile %.9g gather %.9g\n",
                                                iqdb_simd_name(levels[li]), op_names[op], d, i, j,
                                                p, rows[j], tile[i * nx + j], gath[j]);
                                    fail();
                                }
                            }
                        }
                    }
                }
            }
            free(q);
            free(x);
        }
    }
}

/* panel: every output within d 2^-24 (plus a little) of the sum of |terms| of the exact dot
 * product, for ragged row counts and every panel width; nothing written past nx rows. */
static void test_dist_panel(void **state) {
    (void)state;
    const size_t test_dims[] = {1, 3, 7, 8, 15, 16, 17, 33, 64, 100, 127, 784, 785};
    const size_t nps[] = {16, 32, 48, 64, 80, 96, 112, 128};
    enum { NX = 13 };
    iqdbt_rng r = {11};
    for (size_t li = 0; li < sizeof levels / sizeof levels[0]; li++) {
        const iqdb__kernels *k = iqdb__kernels_get(levels[li]);
        if (!k) continue;
        for (size_t di = 0; di < sizeof test_dims / sizeof test_dims[0]; di++) {
            size_t d = test_dims[di];
            float *q = malloc(IQDB_PANEL_MAX * d * sizeof(float));
            float *x = malloc(NX * d * sizeof(float) + sizeof(float));
            float *qt = malloc(IQDB_PANEL_MAX * d * sizeof(float));
            float *out = malloc((NX + 1) * IQDB_PANEL_MAX * sizeof(float));
            iqdbt_fill(&r, q, IQDB_PANEL_MAX * d, -2, 2);
            iqdbt_fill(&r, x, NX * d, -2, 2);
            const float *xs[NX];
            for (int j = 0; j < NX; j++) xs[j] = x + 1 + j * d - (j % 2); /* mixed alignment */
            for (size_t pi = 0; pi < sizeof nps / sizeof nps[0]; pi++) {
                size_t np = nps[pi];
                for (size_t c = 0; c < d; c++)
                    for (size_t i = 0; i < np; i++) qt[c * np + i] = q[i * d + c];
                for (size_t nx = 1; nx <= NX; nx += 4) {
                    for (size_t i = 0; i < (NX + 1) * np; i++) out[i] = -7.0f;
                    k->dot_panel(qt, np, xs, nx, d, out);
                    for (size_t j = 0; j < nx; j++)
                        for (size_t i = 0; i < np; i++) {
                            double mag, want = ref(IQDB__OP_DOT, q + i * d, xs[j], d, &mag);
                            double tol = (double)(d + 2) / 16777216.0 * mag + 1e-30;
                            float got = out[j * np + i];
                            if (!(fabs(got - want) <= tol)) {
                                print_error("level %s dim %zu np %zu nx %zu: out[%zu][%zu] %.9g, "
                                            "double %.9g\n",
                                            iqdb_simd_name(levels[li]), d, np, nx, j, i, got, want);
                                fail();
                            }
                        }
                    for (size_t i = nx * np; i < (NX + 1) * np; i++) assert_true(out[i] == -7.0f);
                }
            }
            free(q);
            free(x);
            free(qt);
            free(out);
        }
    }
}

/* Zero vectors give zero for every op; identical vectors give zero except dot. */
static void test_dist_zero_and_identical(void **state) {
    (void)state;
    float z[1536] = {0}, v[1536];
    iqdbt_rng r = {3};
    iqdbt_fill(&r, v, 1536, -3, 3);
    for (size_t li = 0; li < sizeof levels / sizeof levels[0]; li++) {
        const iqdb__kernels *k = iqdb__kernels_get(levels[li]);
        if (!k) continue;
        for (size_t d = 1; d <= 1536; d += 97) {
            for (int op = 0; op < IQDB__N_OPS; op++) assert_true(k->pair[op](z, z, d) == 0.0f);
            assert_true(k->pair[IQDB__OP_L2SQ](v, v, d) == 0.0f);
            assert_true(k->pair[IQDB__OP_L1](v, v, d) == 0.0f);
            assert_true(k->pair[IQDB__OP_HAM](v, v, d) == 0.0f);
            assert_true(k->pair[IQDB__OP_DOT](v, z, d) == 0.0f);
        }
    }
}

/* Hamming counts value inequality: +0 equals -0, and it counts exactly. */
static void test_dist_hamming_semantics(void **state) {
    (void)state;
    float a[40], b[40];
    for (int i = 0; i < 40; i++) {
        a[i] = (float)(i & 1);
        b[i] = (float)((i >> 1) & 1);
    }
    a[0] = 0.0f;
    b[0] = -0.0f;
    int want = 0;
    for (int i = 0; i < 40; i++) want += a[i] != b[i];
    for (size_t li = 0; li < sizeof levels / sizeof levels[0]; li++) {
        const iqdb__kernels *k = iqdb__kernels_get(levels[li]);
        if (!k) continue;
        assert_true(k->pair[IQDB__OP_HAM](a, b, 40) == (float)want);
    }
}

/* ---- quantized codes ------------------------------------------------------------------------ */

static const char *const sq8_names[] = {"sq8_l2sq", "sq8_dot", "sq8_l1"};

/* Double-precision value of an SQ8 op and the magnitude sum of its terms. */
static double sq8_ref(int op, const float *a, const float *s, const uint8_t *c, size_t d,
                      double *mag) {
    double sum = 0, m = 0;
    for (size_t i = 0; i < d; i++) {
        double t;
        switch (op) {
        case IQDB__SQ8_L2SQ:
            t = ((double)a[i] - (double)s[i] * c[i]) * ((double)a[i] - (double)s[i] * c[i]);
            break;
        case IQDB__SQ8_DOT: t = (double)a[i] * c[i]; break;
        default: t = fabs((double)a[i] - (double)s[i] * c[i]); break;
        }
        sum += t;
        m += fabs(t);
    }
    *mag = m;
    return sum;
}

/* SQ8 kernels: every level within tolerance of scalar, scalar of double, for dims 1..300, 768,
 * 1536 at unaligned offsets; pair and rows identical within a level. */
static void test_dist_sq8_levels(void **state) {
    (void)state;
    setup_dims();
    const iqdb__kernels *sc = iqdb__kernels_get(IQDB_SIMD_SCALAR);
    float *a = malloc((1536 + 8) * sizeof(float)), *sv = malloc((1536 + 8) * sizeof(float));
    uint8_t *codes = malloc(3 * (1536 + 16));
    iqdbt_rng r = {4242};
    for (size_t li = 0; li < sizeof levels / sizeof levels[0]; li++) {
        const iqdb__kernels *k = iqdb__kernels_get(levels[li]);
        if (!k) continue;
        for (size_t di = 0; di < n_dims; di++) {
            size_t d = dims[di], stride = d + 5;
            for (size_t off = 0; off < 4; off++) {
                float *aa = a + off, *ss = sv + (3 - off);
                uint8_t *cc = codes + off;
                iqdbt_fill(&r, aa, d, -300.0f, 300.0f);
                iqdbt_fill(&r, ss, d, 0.0f, 2.0f);
                for (size_t i = 0; i < 3 * stride - off && i < 3 * (1536 + 16) - off; i++)
                    cc[i] = (uint8_t)(iqdbt_next(&r) & 0xff);
                for (int op = 0; op < IQDB__N_SQ8; op++) {
                    double mag, want = sq8_ref(op, aa, ss, cc, d, &mag);
                    float sref = sc->sq8_pair[op](aa, ss, cc, d),
                          v = k->sq8_pair[op](aa, ss, cc, d);
                    double tol = 4e-6 * mag + 1e-30;
                    if (fabs(sref - want) > tol || fabs(v - sref) > 2 * tol) {
                        print_error("level %s op %s dim %zu offset %zu: scalar %.9g level %.9g "
                                    "double %.9g\n",
                                    iqdb_simd_name(levels[li]), sq8_names[op], d, off, sref, v,
                                    want);
                        fail();
                    }
                    float rows[3];
                    k->sq8_rows[op](aa, ss, cc, 3, stride, d, rows);
                    for (size_t j = 0; j < 3; j++) {
                        float p = k->sq8_pair[op](aa, ss, cc + j * stride, d);
                        if (!(p == rows[j])) {
                            print_error("level %s op %s dim %zu row %zu: pair %.9g rows %.9g\n",
                                        iqdb_simd_name(levels[li]), sq8_names[op], d, j, p,
                                        rows[j]);
                            fail();
                        }
                    }
                }
            }
        }
    }
    free(a);
    free(sv);
    free(codes);
}

/* The SQ8 dot kernel never reads `s` (quant.c passes NULL), and zero codes give zero. */
static void test_dist_sq8_edges(void **state) {
    (void)state;
    float a[1536];
    uint8_t z[1536] = {0};
    iqdbt_rng r = {5};
    iqdbt_fill(&r, a, 1536, -1, 1);
    for (size_t li = 0; li < sizeof levels / sizeof levels[0]; li++) {
        const iqdb__kernels *k = iqdb__kernels_get(levels[li]);
        if (!k) continue;
        for (size_t d = 1; d <= 1536; d += 61) {
            assert_true(k->sq8_pair[IQDB__SQ8_DOT](a, NULL, z, d) == 0.0f);
            float zero[1536] = {0};
            assert_true(k->sq8_pair[IQDB__SQ8_L2SQ](zero, a, z, d) == 0.0f);
            assert_true(k->sq8_pair[IQDB__SQ8_L1](zero, a, z, d) == 0.0f);
        }
    }
}

static uint32_t naive_popcount_xor(const uint64_t *a, const uint64_t *b, size_t w) {
    uint32_t n = 0;
    for (size_t i = 0; i < w; i++)
        for (int bit = 0; bit < 64; bit++) n += (uint32_t)(((a[i] ^ b[i]) >> bit) & 1u);
    return n;
}

/* Binary codes: every level equals a bit-by-bit count exactly, for 1..40 words and both
 * shapes. */
static void test_dist_bits_exact(void **state) {
    (void)state;
    enum { MAXW = 40, NR = 5 };
    uint64_t q[MAXW], codes[NR * MAXW];
    iqdbt_rng r = {99};
    for (size_t li = 0; li < sizeof levels / sizeof levels[0]; li++) {
        const iqdb__kernels *k = iqdb__kernels_get(levels[li]);
        if (!k) continue;
        for (size_t w = 1; w <= MAXW; w++) {
            for (size_t i = 0; i < w; i++) q[i] = iqdbt_next(&r);
            for (size_t i = 0; i < NR * w; i++)
                codes[i] = (i % 7 == 0) ? q[i % w] : iqdbt_next(&r); /* some equal words */
            codes[0] = ~q[0];                                        /* all 64 bits differ */
            uint32_t rows[NR];
            k->bits_rows(q, codes, NR, w, rows);
            for (size_t j = 0; j < NR; j++) {
                uint32_t want = naive_popcount_xor(q, codes + j * w, w);
                assert_int_equal(k->bits_pair(q, codes + j * w, w), want);
                assert_int_equal(rows[j], want);
            }
            assert_int_equal(k->bits_pair(q, q, w), 0);
        }
    }
}

/* Columns: every level equals the scalar reference bit for bit (unfused arithmetic, each
 * centroid summed in order), and scalar is within rounding of double, for ks = 1..300 centroids
 * (tails of every length) and w = 1..17 components. */
static void test_dist_cols_exact(void **state) {
    (void)state;
    static const char *const names[] = {"l2sq", "l1", "ham", "ndot"};
    const iqdb__kernels *sc = iqdb__kernels_get(IQDB_SIMD_SCALAR);
    float r[17], *t = malloc(17 * 300 * sizeof(float)), out[300], ref_out[300];
    iqdbt_rng g = {321};
    for (size_t li = 0; li < sizeof levels / sizeof levels[0]; li++) {
        const iqdb__kernels *k = iqdb__kernels_get(levels[li]);
        if (!k) continue;
        for (size_t w = 1; w <= 17; w += 4)
            for (size_t ks = 1; ks <= 300; ks += (ks < 40 ? 1 : 37)) {
                iqdbt_fill(&g, r, w, -2, 2);
                iqdbt_fill(&g, t, w * ks, -2, 2);
                for (size_t i = 0; i < w * ks; i += 3) t[i] = r[(i / ks) % w]; /* equal parts */
                for (int op = 0; op < IQDB__N_COL; op++) {
                    k->cols[op](r, w, t, ks, out);
                    sc->cols[op](r, w, t, ks, ref_out);
                    for (size_t c = 0; c < ks; c++) {
                        double want = 0, mag = 0;
                        for (size_t j = 0; j < w; j++) {
                            double e = (double)r[j] - t[j * ks + c], v;
                            v = op == IQDB__COL_L2SQ  ? e * e
                                : op == IQDB__COL_L1  ? fabs(e)
                                : op == IQDB__COL_HAM ? (r[j] != t[j * ks + c])
                                                      : -(double)r[j] * t[j * ks + c];
                            want += v;
                            mag += fabs(v);
                        }
                        if (memcmp(&out[c], &ref_out[c], sizeof(float)) ||
                            fabs(ref_out[c] - want) > 1e-5 * mag + 1e-30) {
                            print_error("level %s cols %s w %zu ks %zu c %zu: %.9g scalar %.9g "
                                        "double %.9g\n",
                                        iqdb_simd_name(levels[li]), names[op], w, ks, c, out[c],
                                        ref_out[c], want);
                            fail();
                        }
                    }
                }
            }
    }
    free(t);
}

/* argmin: the first smallest value's index at every level, for n = 1..300, with repeated minima
 * and +inf values. */
static void test_dist_argmin(void **state) {
    (void)state;
    float v[300];
    iqdbt_rng g = {55};
    for (size_t li = 0; li < sizeof levels / sizeof levels[0]; li++) {
        const iqdb__kernels *k = iqdb__kernels_get(levels[li]);
        if (!k) continue;
        for (size_t n = 1; n <= 300; n++)
            for (int trial = 0; trial < 4; trial++) {
                for (size_t i = 0; i < n; i++)
                    v[i] = trial == 3 ? INFINITY : (float)(iqdbt_next(&g) % (trial ? 5 : 1000));
                size_t want = 0;
                for (size_t i = 1; i < n; i++)
                    if (v[i] < v[want]) want = i;
                uint32_t got = k->argmin(v, n);
                if (got != want) {
                    print_error("level %s n %zu trial %d: argmin %u, want %zu\n",
                                iqdb_simd_name(levels[li]), n, trial, got, want);
                    fail();
                }
            }
    }
}

/* AUTO resolves to the best level; forcing an unknown level is refused. */
static void test_dist_dispatch(void **state) {
    (void)state;
    const iqdb__kernels *best = iqdb__kernels_get(IQDB_SIMD_AUTO);
    assert_non_null(best);
    assert_int_equal(best->level, iqdb__simd_best());
    assert_true(iqdb_simd_available(IQDB_SIMD_SCALAR));
    assert_true(iqdb_simd_available(IQDB_SIMD_AUTO));
    assert_false(iqdb_simd_available((iqdb_simd)99));
    assert_string_equal(iqdb_simd_name(IQDB_SIMD_AVX2), "avx2");
    assert_string_equal(iqdb_simd_name((iqdb_simd)99), "unknown");
    printf("kernels on this machine: scalar%s%s%s (best %s)\n",
           iqdb_simd_available(IQDB_SIMD_AVX2) ? " avx2" : "",
           iqdb_simd_available(IQDB_SIMD_AVX512) ? " avx512" : "",
           iqdb_simd_available(IQDB_SIMD_NEON) ? " neon" : "", iqdb_simd_name(best->level));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dist_levels_match_scalar),
        cmocka_unit_test(test_dist_shapes_identical),
        cmocka_unit_test(test_dist_panel),
        cmocka_unit_test(test_dist_zero_and_identical),
        cmocka_unit_test(test_dist_hamming_semantics),
        cmocka_unit_test(test_dist_sq8_levels),
        cmocka_unit_test(test_dist_sq8_edges),
        cmocka_unit_test(test_dist_bits_exact),
        cmocka_unit_test(test_dist_cols_exact),
        cmocka_unit_test(test_dist_argmin),
        cmocka_unit_test(test_dist_dispatch),
    };
    return cmocka_run_group_tests_name("dist", tests, NULL, NULL);
}
