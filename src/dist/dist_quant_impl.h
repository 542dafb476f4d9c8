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

/* The entries of iqdb__kernels that this template provides, in declaration order. */
#define IQDB_QUANT_TABLE_ENTRIES                                                  \
    {IQDB_QNAME(l2sq, _pair), IQDB_QNAME(dot, _pair), IQDB_QNAME(l1, _pair)},     \
        {IQDB_QNAME(l2sq, _rows), IQDB_QNAME(dot, _rows), IQDB_QNAME(l1, _rows)}, \
        IQDB_BNAME(_pair), IQDB_BNAME(_rows)
