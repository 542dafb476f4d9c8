/*
 * dist_quant_impl.h — the kernel template for quantized codes, included by each dist_<isa>.c
 * after dist_impl.h (it reuses V, W, V_ZERO, V_LOAD, V_LOADT, V_ADD, V_HSUM, ISA). Each ISA file
 * also defines, before including it:
 *
 *   V_LOADB(p)            load W bytes, widened to W floats (0..255)
 *   V_LOADBT(p, r)        the same for r (1 <= r < W) bytes, the other lanes zero, reading
 *                         nothing past p + r
 *   QSTEP_L2(acc, a, s, c)   acc + (a - s*c)^2, lane-wise
 *   QSTEP_DOT(acc, a, s, c)  acc + a*c (s unused)
 *   QSTEP_L1(acc, a, s, c)   acc + |a - s*c|
 *   IQDB_POPCNT_XOR(a, b, words)  popcount(a ^ b) over `words` 64-bit words, as uint32_t
 *   V_SET1(f), V_STORE(p, v)      broadcast; store W floats (unaligned)
 *   CSTEP_L2 / _L1 / _HAM / _NDOT(acc, r, x)   the column steps of dist.h, unfused
 *   ARGMIN_BLOCK(v, n, i, best, at)   see iqdb__argmin below (may do nothing)
 *
 * SQ8 codes (src/index/quant.c): a vector x is stored as bytes c with x_i ~ lo_i + s_i c_i. The
 * query side is prepared once per query, so each kernel streams one code and two (or one)
 * float arrays that stay in L1:
 *   sq8 L2SQ(a, s, c)  = sum (a_i - s_i c_i)^2   with a = q - lo   (= |q - decode(c)|^2)
 *   sq8 DOT(a, -, c)   = sum a_i c_i             with a = q * s    (the caller adds q . lo)
 *   sq8 L1(a, s, c)    = sum |a_i - s_i c_i|     with a = q - lo
 * The arithmetic follows dist_impl.h: blocks of W lanes, block b into accumulator b % 4, the last
 * block zero-padded (every step adds exactly zero for zero lanes), then a fixed reduction. The
 * rows shape is a loop over the pair kernel, so both agree bit for bit within a level.
 *
 * Binary codes: one bit per dimension, packed into 64-bit words; the distance between two codes
 * is the popcount of their XOR. Integer sums are exact, so every level agrees with the scalar
 * reference exactly.
 */

#define IQDB_QNAME(op, shape) IQDB_CAT(IQDB_CAT(iqdb__sq8_, op), IQDB_CAT(shape, IQDB_CAT(_, ISA)))

#define IQDB_SQ8_BLOCK(STEP, USE_S, acc, blk)                                                      \
    do {                                                                                           \
        if ((blk) < nfull)                                                                         \
            acc = STEP(acc, V_LOAD(a + (blk)*W), (USE_S) ? V_LOAD(s + (blk)*W) : V_ZERO(),         \
                       V_LOADB(c + (blk)*W));                                                      \
        else                                                                                       \
            acc = STEP(acc, V_LOADT(a + (blk)*W, r), (USE_S) ? V_LOADT(s + (blk)*W, r) : V_ZERO(), \
                       V_LOADBT(c + (blk)*W, r));                                                  \
    } while (0)

#define IQDB_DEFINE_SQ8(op, STEP, USE_S)                                                       \
    float IQDB_QNAME(op, _pair)(const float *a, const float *s, const uint8_t *c, size_t d) {  \
        V acc0 = V_ZERO(), acc1 = V_ZERO(), acc2 = V_ZERO(), acc3 = V_ZERO();                  \
        size_t nfull = d / W, r = d % W, nb = nfull + (r != 0), blk = 0;                       \
        for (; blk + 4 <= nfull; blk += 4) {                                                   \
            IQDB_SQ8_BLOCK(STEP, USE_S, acc0, blk);                                            \
            IQDB_SQ8_BLOCK(STEP, USE_S, acc1, blk + 1);                                        \
            IQDB_SQ8_BLOCK(STEP, USE_S, acc2, blk + 2);                                        \
            IQDB_SQ8_BLOCK(STEP, USE_S, acc3, blk + 3);                                        \
        }                                                                                      \
        if (blk < nb) {                                                                        \
            IQDB_SQ8_BLOCK(STEP, USE_S, acc0, blk);                                            \
            blk++;                                                                             \
        }                                                                                      \
        if (blk < nb) {                                                                        \
            IQDB_SQ8_BLOCK(STEP, USE_S, acc1, blk);                                            \
            blk++;                                                                             \
        }                                                                                      \
        if (blk < nb) {                                                                        \
            IQDB_SQ8_BLOCK(STEP, USE_S, acc2, blk);                                            \
            blk++;                                                                             \
        }                                                                                      \
        if (blk < nb) {                                                                        \
            IQDB_SQ8_BLOCK(STEP, USE_S, acc3, blk);                                            \
            blk++;                                                                             \
        }                                                                                      \
        return V_HSUM(V_ADD(V_ADD(acc0, acc1), V_ADD(acc2, acc3)));                            \
    }                                                                                          \
    void IQDB_QNAME(op, _rows)(const float *a, const float *s, const uint8_t *codes, size_t n, \
                               size_t stride, size_t d, float *out) {                          \
        for (size_t i = 0; i < n; i++) {                                                       \
            if (i + 2 < n) IQDB_PREFETCH(codes + (i + 2) * stride);                            \
            out[i] = IQDB_QNAME(op, _pair)(a, s, codes + i * stride, d);                       \
        }                                                                                      \
    }

IQDB_DEFINE_SQ8(l2sq, QSTEP_L2, 1)
IQDB_DEFINE_SQ8(dot, QSTEP_DOT, 0)
IQDB_DEFINE_SQ8(l1, QSTEP_L1, 1)

#define IQDB_BNAME(shape) IQDB_CAT(iqdb__bits_ham, IQDB_CAT(shape, IQDB_CAT(_, ISA)))

uint32_t IQDB_BNAME(_pair)(const uint64_t *a, const uint64_t *b, size_t words) {
    return IQDB_POPCNT_XOR(a, b, words);
}

void IQDB_BNAME(_rows)(const uint64_t *q, const uint64_t *codes, size_t n, size_t words,
                       uint32_t *out) {
    for (size_t i = 0; i < n; i++) out[i] = IQDB_POPCNT_XOR(q, codes + i * words, words);
}

/* ---- columns (see dist.h): CSTEP_* are lane-wise, never fused; the tail (ks % W centroids)
 * runs the same operations in scalar C (ISO C mode: no contraction). ---- */
#define IQDB_CNAME(op) IQDB_CAT(IQDB_CAT(iqdb__cols_, op), IQDB_CAT(_, ISA))
#define IQDB_DEFINE_COLS(op, CSTEP, SCALAR)                                                        \
    void IQDB_CNAME(op)(const float *r, size_t w, const float *t, size_t ks, float *out) {         \
        size_t c = 0;                                                                              \
        for (; c + 4 * W <= ks; c += 4 * W) { /* four independent chains hide the latency */       \
            V a0 = V_ZERO(), a1 = V_ZERO(), a2 = V_ZERO(), a3 = V_ZERO();                          \
            for (size_t j = 0; j < w; j++) {                                                       \
                const float *row = t + j * ks + c;                                                 \
                V rv = V_SET1(r[j]);                                                               \
                a0 = CSTEP(a0, rv, V_LOAD(row));                                                   \
                a1 = CSTEP(a1, rv, V_LOAD(row + W));                                               \
                a2 = CSTEP(a2, rv, V_LOAD(row + 2 * W));                                           \
                a3 = CSTEP(a3, rv, V_LOAD(row + 3 * W));                                           \
            }                                                                                      \
            V_STORE(out + c, a0);                                                                  \
            V_STORE(out + c + W, a1);                                                              \
            V_STORE(out + c + 2 * W, a2);                                                          \
            V_STORE(out + c + 3 * W, a3);                                                          \
        }                                                                                          \
        for (; c + W <= ks; c += W) {                                                              \
            V acc = V_ZERO();                                                                      \
            for (size_t j = 0; j < w; j++) acc = CSTEP(acc, V_SET1(r[j]), V_LOAD(t + j * ks + c)); \
            V_STORE(out + c, acc);                                                                 \
        }                                                                                          \
        for (; c < ks; c++) {                                                                      \
            float acc = 0.0f;                                                                      \
            for (size_t j = 0; j < w; j++) {                                                       \
                float x = t[j * ks + c];                                                           \
                SCALAR;                                                                            \
            }                                                                                      \
            out[c] = acc;                                                                          \
        }                                                                                          \
    }

IQDB_DEFINE_COLS(l2sq, CSTEP_L2, float e = r[j] - x; float e2 = e * e; acc = acc + e2)
IQDB_DEFINE_COLS(l1, CSTEP_L1, float e = r[j] - x; acc = acc + (e < 0.0f ? -e : e))
IQDB_DEFINE_COLS(ham, CSTEP_HAM, acc = acc + (r[j] != x ? 1.0f : 0.0f))
IQDB_DEFINE_COLS(ndot, CSTEP_NDOT, float p = r[j] * x; acc = acc - p)

/* argmin(v, n): the index of the first smallest of n floats (n >= 1, none NaN). ARGMIN_BLOCK
 * (from the ISA file) scans whole vectors keeping, per lane, the first minimum and its index,
 * then reduces the lanes by (value, index) into best / at and leaves i at the first element it
 * did not see; the rest is scanned in order. */
uint32_t IQDB_CAT(iqdb__argmin_, ISA)(const float *v, size_t n) {
    size_t i = 1;
    float best = v[0];
    uint32_t at = 0;
    ARGMIN_BLOCK(v, n, i, best, at);
    for (; i < n; i++)
        if (v[i] < best) {
            best = v[i];
            at = (uint32_t)i;
        }
    return at;
}

/* The entries of iqdb__kernels that this template provides, in declaration order. */
#define IQDB_QUANT_TABLE_ENTRIES                                                  \
    {IQDB_QNAME(l2sq, _pair), IQDB_QNAME(dot, _pair), IQDB_QNAME(l1, _pair)},     \
        {IQDB_QNAME(l2sq, _rows), IQDB_QNAME(dot, _rows), IQDB_QNAME(l1, _rows)}, \
        IQDB_BNAME(_pair), IQDB_BNAME(_rows),                                     \
        {IQDB_CNAME(l2sq), IQDB_CNAME(l1), IQDB_CNAME(ham), IQDB_CNAME(ndot)},    \
        IQDB_CAT(iqdb__argmin_, ISA)
