/*
 * dist_impl.h — the kernel template, included once by each dist_<isa>.c after it defines:
 *
 *   V                 the vector type, W floats
 *   W                 lanes
 *   V_ZERO()          all-zero vector
 *   V_LOAD(p)         load W floats (unaligned)
 *   V_LOADT(p, r)     load r (1 <= r < W) floats, the other lanes zero, reading nothing past p+r
 *   V_ADD(a, b)
 *   V_HSUM(v)         horizontal sum, in a fixed order
 *   STEP_L2SQ(acc, q, x), STEP_DOT, STEP_L1, STEP_HAM   acc + op(q, x), lane-wise
 *   QB, RB            tile shape: queries x rows handled per micro-tile
 *   ISA               name suffix (scalar, avx2, ...)
 *
 * Per pair the arithmetic is always: blocks of W floats, block b into accumulator b % 4, the last
 * partial block zero-padded (op(0, 0) adds exactly zero for every op), then
 * V_HSUM((acc0 + acc1) + (acc2 + acc3)). pair, rows and tile all follow it, so they agree bit
 * for bit. Four accumulators break the dependency chain of one FMA per block: measured +2.7x on
 * dim 784 L2 over one accumulator (pair kernel, data in L1, AVX2).
 */
/* The micro-tile's small constant loops must be unrolled so its QB*RB accumulators live in
 * registers: at -O2, GCC 12 keeps them on the stack otherwise (41 vector instructions and a 5 KB
 * frame for the AVX-512 L2 micro-tile before this pragma). The scalar file opts out: its
 * "vectors" are structs of 8 floats, and unrolling them defeated GCC's -O3 vectorizer (scalar
 * tile 8.9 -> 1.5 M distances/s at dim 784). */
#if defined(IQDB_NO_TILE_UNROLL)
#define IQDB_UNROLL
#elif defined(__clang__)
#define IQDB_UNROLL _Pragma("clang loop unroll(full)")
#elif defined(__GNUC__)
#define IQDB_UNROLL _Pragma("GCC unroll 16")
#else
#define IQDB_UNROLL
#endif

#define IQDB_CAT2(a, b) a##b
#define IQDB_CAT(a, b) IQDB_CAT2(a, b)
#define IQDB_NAME(op, shape) IQDB_CAT(IQDB_CAT(iqdb__, op), IQDB_CAT(shape, IQDB_CAT(_f32_, ISA)))

/* The first (up to) four cache lines of the next row, fetched while this row is computed: a
 * streaming scan then starts each row without waiting for its first lines. Rows of dim 784
 * (188 MB, one thread, Zen 4, medians of 41 interleaved passes): the AVX-512 rows kernel read
 * at 0.954 of a plain sum loop's speed with no prefetch, 0.965 with two lines, 0.982 with four. */
#define IQDB_PREFETCH_ROW_START(row, d)                                               \
    do {                                                                              \
        for (size_t o_ = 0; o_ < (d) && o_ < 64; o_ += 16) IQDB_PREFETCH((row) + o_); \
    } while (0)

/* The rows shape: one query against many rows. An ISA file may define IQDB_ROWS_IMPL itself to
 * use other instructions for this memory-bound shape, as long as the arithmetic is the same. */
#ifndef IQDB_ROWS_IMPL
#define IQDB_ROWS_IMPL(op)                                                                \
    void IQDB_NAME(op, _rows)(const float *q, const float *const *xs, size_t n, size_t d, \
                              float *out) {                                               \
        for (size_t i = 0; i < n; i++) {                                                  \
            if (i + 1 < n) IQDB_PREFETCH_ROW_START(xs[i + 1], d);                         \
            out[i] = IQDB_NAME(op, _pair)(q, xs[i], d);                                   \
        }                                                                                 \
    }
#endif

#define IQDB_DEFINE_OP(op, STEP)                                                                  \
    static inline V IQDB_CAT(op##_block_, ISA)(V acc, const float *a, const float *b, size_t blk, \
                                               size_t nfull, size_t r) {                          \
        if (blk < nfull) return STEP(acc, V_LOAD(a + blk * W), V_LOAD(b + blk * W));              \
        return STEP(acc, V_LOADT(a + blk * W, r), V_LOADT(b + blk * W, r));                       \
    }                                                                                             \
    float IQDB_NAME(op, _pair)(const float *a, const float *b, size_t d) {                        \
        V acc0 = V_ZERO(), acc1 = V_ZERO(), acc2 = V_ZERO(), acc3 = V_ZERO();                     \
        size_t nfull = d / W, r = d % W, nb = nfull + (r != 0), blk = 0;                          \
        for (; blk + 4 <= nfull; blk += 4) {                                                      \
            acc0 = STEP(acc0, V_LOAD(a + blk * W), V_LOAD(b + blk * W));                          \
            acc1 = STEP(acc1, V_LOAD(a + (blk + 1) * W), V_LOAD(b + (blk + 1) * W));              \
            acc2 = STEP(acc2, V_LOAD(a + (blk + 2) * W), V_LOAD(b + (blk + 2) * W));              \
            acc3 = STEP(acc3, V_LOAD(a + (blk + 3) * W), V_LOAD(b + (blk + 3) * W));              \
        }                                                                                         \
        if (blk < nb) acc0 = IQDB_CAT(op##_block_, ISA)(acc0, a, b, blk++, nfull, r);             \
        if (blk < nb) acc1 = IQDB_CAT(op##_block_, ISA)(acc1, a, b, blk++, nfull, r);             \
        if (blk < nb) acc2 = IQDB_CAT(op##_block_, ISA)(acc2, a, b, blk++, nfull, r);             \
        if (blk < nb) acc3 = IQDB_CAT(op##_block_, ISA)(acc3, a, b, blk++, nfull, r);             \
        return V_HSUM(V_ADD(V_ADD(acc0, acc1), V_ADD(acc2, acc3)));                               \
    }                                                                                             \
    IQDB_ROWS_IMPL(op)                                                                            \
    /* One micro-tile: QB queries x RB rows, four passes (one per accumulator) so that each       \
     * pass needs only QB*RB live accumulators. */                                                \
    static void IQDB_CAT(op##_micro_, ISA)(const float *const *qs, const float *const *xs,        \
                                           size_t d, float *out, size_t ostride) {                \
        size_t nfull = d / W, r = d % W, nb = nfull + (r != 0);                                   \
        V part[4][QB][RB];                                                                        \
        IQDB_UNROLL for (size_t pa = 0; pa < 4; pa++) {                                           \
            V acc[QB][RB];                                                                        \
            IQDB_UNROLL for (int i = 0; i < QB; i++) IQDB_UNROLL for (int j = 0; j < RB; j++)     \
                acc[i][j] = V_ZERO();                                                             \
            size_t blk = pa;                                                                      \
            for (; blk < nfull; blk += 4) {                                                       \
                V x[RB];                                                                          \
                IQDB_UNROLL for (int j = 0; j < RB; j++) x[j] = V_LOAD(xs[j] + blk * W);          \
                IQDB_UNROLL for (int i = 0; i < QB; i++) {                                        \
                    V qv = V_LOAD(qs[i] + blk * W);                                               \
                    IQDB_UNROLL for (int j = 0; j < RB; j++) acc[i][j] =                          \
                        STEP(acc[i][j], qv, x[j]);                                                \
                }                                                                                 \
            }                                                                                     \
            if (blk < nb) { /* the zero-padded last block belongs to this accumulator */          \
                V x[RB];                                                                          \
                IQDB_UNROLL for (int j = 0; j < RB; j++) x[j] = V_LOADT(xs[j] + blk * W, r);      \
                IQDB_UNROLL for (int i = 0; i < QB; i++) {                                        \
                    V qv = V_LOADT(qs[i] + blk * W, r);                                           \
                    IQDB_UNROLL for (int j = 0; j < RB; j++) acc[i][j] =                          \
                        STEP(acc[i][j], qv, x[j]);                                                \
                }                                                                                 \
            }                                                                                     \
            IQDB_UNROLL for (int i = 0; i < QB; i++) IQDB_UNROLL for (int j = 0; j < RB; j++)     \
                part[pa][i][j] = acc[i][j];                                                       \
        }                                                                                         \
        IQDB_UNROLL for (int i = 0; i < QB; i++) IQDB_UNROLL for (int j = 0; j < RB; j++)         \
            out[(size_t)i * ostride + (size_t)j] = V_HSUM(                                        \
                V_ADD(V_ADD(part[0][i][j], part[1][i][j]), V_ADD(part[2][i][j], part[3][i][j]))); \
    }                                                                                             \
    void IQDB_NAME(op, _tile)(const float *const *qs, size_t nq, const float *const *xs,          \
                              size_t nx, size_t d, float *out) {                                  \
        size_t i0 = 0;                                                                            \
        for (; i0 + QB <= nq; i0 += QB) {                                                         \
            size_t j0 = 0;                                                                        \
            for (; j0 + RB <= nx; j0 += RB)                                                       \
                IQDB_CAT(op##_micro_, ISA)(qs + i0, xs + j0, d, out + i0 * nx + j0, nx);          \
            for (; j0 < nx; j0++)                                                                 \
                for (size_t i = i0; i < i0 + QB; i++)                                             \
                    out[i * nx + j0] = IQDB_NAME(op, _pair)(qs[i], xs[j0], d);                    \
        }                                                                                         \
        for (; i0 < nq; i0++) IQDB_NAME(op, _rows)(qs[i0], xs, nx, d, out + i0 * nx);             \
    }

IQDB_DEFINE_OP(l2sq, STEP_L2SQ)
IQDB_DEFINE_OP(dot, STEP_DOT)
IQDB_DEFINE_OP(l1, STEP_L1)
IQDB_DEFINE_OP(ham, STEP_HAM)

/* The gather shape: one query against rows at scattered addresses (IVF lists, re-ranking). Rows
 * are taken four at a time and streamed together: one row at a time, a scan of random 3 KB rows
 * read 6.5 GB/s here; four interleaved, 13-20 GB/s (a standalone loop over 60,000 shuffled rows
 * of 784 floats, AVX2, best of 7 runs on the shared 2-core machine). The per-pair arithmetic is
 * pair's — block b into accumulator b % 4, the same reduction — so gather equals pair bit for
 * bit. GATHER_PASSES (1 or 2) splits each row's four accumulators over passes when the ISA has
 * too few registers to keep 16 live (AVX2: 2 passes of 4 rows x 2 accumulators). */
#ifndef GATHER_PASSES
#define GATHER_PASSES 1
#endif
#define IQDB_GATHER_ACC (4 / GATHER_PASSES)

#define IQDB_DEFINE_GATHER(op, STEP)                                                           \
    static void IQDB_CAT(op##_gather4_, ISA)(const float *q, const float *const *xs, size_t d, \
                                             float *out) {                                     \
        size_t nfull = d / W, r = d % W, nb = nfull + (r != 0);                                \
        V part[4][4];                                                                          \
        IQDB_UNROLL for (int pa = 0; pa < GATHER_PASSES; pa++) {                               \
            V acc[4][IQDB_GATHER_ACC];                                                         \
            IQDB_UNROLL for (int j = 0; j < 4; j++)                                            \
                IQDB_UNROLL for (int a = 0; a < IQDB_GATHER_ACC; a++) acc[j][a] = V_ZERO();    \
            size_t blk = 0;                                                                    \
            for (; blk + 4 <= nfull; blk += 4) {                                               \
                IQDB_UNROLL for (int a = 0; a < IQDB_GATHER_ACC; a++) {                        \
                    size_t bb = blk + (size_t)(pa * IQDB_GATHER_ACC + a);                      \
                    V qv = V_LOAD(q + bb * W);                                                 \
                    IQDB_UNROLL for (int j = 0; j < 4; j++) acc[j][a] =                        \
                        STEP(acc[j][a], qv, V_LOAD(xs[j] + bb * W));                           \
                }                                                                              \
            }                                                                                  \
            for (; blk < nb; blk++) { /* the last < 4 blocks: block b to accumulator b % 4 */  \
                int a = (int)(blk % 4) - pa * IQDB_GATHER_ACC;                                 \
                if (a < 0 || a >= IQDB_GATHER_ACC) continue;                                   \
                int full = blk < nfull;                                                        \
                V qv = full ? V_LOAD(q + blk * W) : V_LOADT(q + blk * W, r);                   \
                for (int j = 0; j < 4; j++)                                                    \
                    acc[j][a] =                                                                \
                        STEP(acc[j][a], qv,                                                    \
                             full ? V_LOAD(xs[j] + blk * W) : V_LOADT(xs[j] + blk * W, r));    \
            }                                                                                  \
            IQDB_UNROLL for (int j = 0; j < 4; j++)                                            \
                IQDB_UNROLL for (int a = 0; a < IQDB_GATHER_ACC; a++)                          \
                    part[j][pa * IQDB_GATHER_ACC + a] = acc[j][a];                             \
        }                                                                                      \
        IQDB_UNROLL for (int j = 0; j < 4; j++) out[j] =                                       \
            V_HSUM(V_ADD(V_ADD(part[j][0], part[j][1]), V_ADD(part[j][2], part[j][3])));       \
    }                                                                                          \
    void IQDB_NAME(op, _gather)(const float *q, const float *const *xs, size_t n, size_t d,    \
                                float *out) {                                                  \
        size_t i = 0;                                                                          \
        for (; i + 4 <= n; i += 4) IQDB_CAT(op##_gather4_, ISA)(q, xs + i, d, out + i);        \
        for (; i < n; i++) out[i] = IQDB_NAME(op, _pair)(q, xs[i], d);                         \
    }

IQDB_DEFINE_GATHER(l2sq, STEP_L2SQ)
IQDB_DEFINE_GATHER(dot, STEP_DOT)
IQDB_DEFINE_GATHER(l1, STEP_L1)
IQDB_DEFINE_GATHER(ham, STEP_HAM)

/* The table of one level; the quantized-code entries come from dist_quant_impl.h and the panel
 * from dist_panel_impl.h, which every ISA file includes after this one. */
#define IQDB_KERNEL_TABLE(level_, name_)                                             \
    const iqdb__kernels name_ = {level_,                                             \
                                 W,                                                  \
                                 {IQDB_NAME(l2sq, _pair), IQDB_NAME(dot, _pair),     \
                                  IQDB_NAME(l1, _pair), IQDB_NAME(ham, _pair)},      \
                                 {IQDB_NAME(l2sq, _rows), IQDB_NAME(dot, _rows),     \
                                  IQDB_NAME(l1, _rows), IQDB_NAME(ham, _rows)},      \
                                 {IQDB_NAME(l2sq, _tile), IQDB_NAME(dot, _tile),     \
                                  IQDB_NAME(l1, _tile), IQDB_NAME(ham, _tile)},      \
                                 {IQDB_NAME(l2sq, _gather), IQDB_NAME(dot, _gather), \
                                  IQDB_NAME(l1, _gather), IQDB_NAME(ham, _gather)},  \
                                 IQDB_QUANT_TABLE_ENTRIES,                           \
                                 IQDB_NAME(dot, _panel)};
