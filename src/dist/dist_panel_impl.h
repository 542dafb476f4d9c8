/*
 * dist_panel_impl.h — the panel shape, included by each dist_<isa>.c after dist_quant_impl.h.
 * Needs, besides what dist_impl.h needs: V_SET1(f) (all lanes f), V_STORE(p, v) (unaligned),
 * PANEL_R (rows per micro-tile) and PANEL_V (1..6: most query vectors per micro-tile).
 *
 * panel(qt, np, xs, nx, d, out): dot products of nx rows against np queries held transposed
 * (qt[c * np + i] is component c of query i; np a multiple of 16, at most IQDB_PANEL_MAX):
 *   out[j * np + i] = sum_c qt[c * np + i] * xs[j][c]
 * A micro-tile broadcasts one component of each of PANEL_R rows and multiplies it into PANEL_V
 * vectors of queries: PANEL_R x PANEL_V accumulators, no horizontal sums, every row read once
 * per panel and the transposed queries (the reused operand) from L2 — the sgemm layout. The
 * summation order is not pair's: the batch search uses these values only to reject rows
 * (src/index/flat.c), so they need not agree bit for bit with anything, only within the rounding
 * bound a plain sum has.
 */
#define IQDB_DEFINE_PANEL_MICRO(nv)                                                                \
    static void IQDB_CAT(IQDB_CAT(dot_panel, nv), ISA)(                                            \
        const float *qt, size_t np, const float *const *xs, size_t d, float *out) {                \
        V acc[PANEL_R][nv];                                                                        \
        IQDB_UNROLL for (int r = 0; r < PANEL_R; r++) IQDB_UNROLL for (int v = 0; v < nv; v++)     \
            acc[r][v] = V_ZERO();                                                                  \
        for (size_t c = 0; c < d; c++) {                                                           \
            const float *qc = qt + c * np;                                                         \
            V q[nv];                                                                               \
            IQDB_UNROLL for (int v = 0; v < nv; v++) q[v] = V_LOAD(qc + v * W);                    \
            IQDB_UNROLL for (int r = 0; r < PANEL_R; r++) {                                        \
                V b = V_SET1(xs[r][c]);                                                            \
                IQDB_UNROLL for (int v = 0; v < nv; v++) acc[r][v] = STEP_DOT(acc[r][v], q[v], b); \
            }                                                                                      \
        }                                                                                          \
        IQDB_UNROLL for (int r = 0; r < PANEL_R; r++) IQDB_UNROLL for (int v = 0; v < nv; v++)     \
            V_STORE(out + (size_t)r * np + (size_t)v * W, acc[r][v]);                              \
    }

IQDB_DEFINE_PANEL_MICRO(1)
#if PANEL_V >= 2
IQDB_DEFINE_PANEL_MICRO(2)
#endif
#if PANEL_V >= 3
IQDB_DEFINE_PANEL_MICRO(3)
#endif
#if PANEL_V >= 4
IQDB_DEFINE_PANEL_MICRO(4)
#endif
#if PANEL_V >= 5
IQDB_DEFINE_PANEL_MICRO(5)
#endif
#if PANEL_V >= 6
IQDB_DEFINE_PANEL_MICRO(6)
#endif

/* PANEL_R rows (rs) against every query vector of the panel. */
static void IQDB_CAT(dot_panel_rows_, ISA)(const float *qt, size_t np, const float *const *rs,
                                           size_t d, float *out) {
    const size_t nvt = np / W;
    for (size_t v0 = 0; v0 < nvt; v0 += PANEL_V) {
        size_t nv = nvt - v0 < PANEL_V ? nvt - v0 : PANEL_V;
        const float *q = qt + v0 * W;
        float *o = out + v0 * W;
        switch (nv) {
#if PANEL_V >= 6
        case 6: IQDB_CAT(dot_panel6, ISA)(q, np, rs, d, o); break;
#endif
#if PANEL_V >= 5
        case 5: IQDB_CAT(dot_panel5, ISA)(q, np, rs, d, o); break;
#endif
#if PANEL_V >= 4
        case 4: IQDB_CAT(dot_panel4, ISA)(q, np, rs, d, o); break;
#endif
#if PANEL_V >= 3
        case 3: IQDB_CAT(dot_panel3, ISA)(q, np, rs, d, o); break;
#endif
#if PANEL_V >= 2
        case 2: IQDB_CAT(dot_panel2, ISA)(q, np, rs, d, o); break;
#endif
        default: IQDB_CAT(dot_panel1, ISA)(q, np, rs, d, o); break;
        }
    }
}

void IQDB_NAME(dot, _panel)(const float *qt, size_t np, const float *const *xs, size_t nx, size_t d,
                            float *out) {
    size_t j = 0;
    for (; j + PANEL_R <= nx; j += PANEL_R)
        IQDB_CAT(dot_panel_rows_, ISA)(qt, np, xs + j, d, out + j * np);
    if (j < nx) { /* the last rows: repeat the final row to fill a micro-tile, keep the real ones */
        const float *rs[PANEL_R];
        float tmp[PANEL_R * IQDB_PANEL_MAX];
        for (size_t r = 0; r < PANEL_R; r++) rs[r] = xs[j + r < nx ? j + r : nx - 1];
        IQDB_CAT(dot_panel_rows_, ISA)(qt, np, rs, d, tmp);
        for (size_t r = 0; j + r < nx; r++)
            for (size_t i = 0; i < np; i++) out[(j + r) * np + i] = tmp[r * np + i];
    }
}
