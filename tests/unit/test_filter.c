/*
 * test_filter.c — metadata filters: the builders and their ownership rule (AND / OR / NOT
 * consume their children on success and on failure), the depth and IN limits, the evaluation
 * semantics pinned in iqdb.h (closed world, INT / DOUBLE compared exactly, +-inf, strings by
 * bytes, BOOL, NULL, incomparable pairs), the text parser (every grammar form against the
 * equivalent built filter, error offsets, pathological nesting, a seeded fuzz loop that also
 * cross-checks the compiled evaluator a search uses), and a filtered search end to end.
 *
 * Filters and metadata use the counting allocator; teardown asserts that nothing leaked and
 * every free was sized correctly. Random cases print their seed; set IQDBT_SEED to replay one.
 */
#define IQDB_ALLOW_LIBC_ALLOC /* this file's own scratch buffers use malloc / free */
#include "../common/testutil.h"

#include <float.h>

#include "meta/filter.h"
#include "meta/meta.h"

static iqdbt_alloc A;
static iqdb_allocator AL;

static int setup(void **state) {
    (void)state;
    iqdbt_alloc_reset(&A);
    AL = iqdbt_allocator(&A, 1);
    return 0;
}
static int teardown(void **state) {
    (void)state;
    assert_int_equal(atomic_load(&A.live), 0);
    assert_int_equal(atomic_load(&A.blocks), 0);
    assert_int_equal(atomic_load(&A.bad_free), 0);
    return 0;
}

static uint64_t test_seed(uint64_t dflt) {
    const char *e = getenv("IQDBT_SEED");
    return e && *e ? (uint64_t)strtoull(e, NULL, 0) : dflt;
}

/* ---- builders as expressions ------------------------------------------------------------- */

static iqdb_filter *cmpf(const char *key, iqdb_op op, iqdb_value v) {
    iqdb_filter *f = NULL;
    int rc = iqdb_filter_cmp(&AL, key, op, v, &f);
    if (rc) print_error("cmp '%s': %s\n", key, iqdb_errmsg(NULL));
    assert_int_equal(rc, IQDB_OK);
    assert_non_null(f);
    return f;
}
static iqdb_filter *eqf(const char *key, iqdb_value v) { return cmpf(key, IQDB_OP_EQ, v); }
static iqdb_filter *inf_(const char *key, const iqdb_value *v, size_t n) {
    iqdb_filter *f = NULL;
    assert_int_equal(iqdb_filter_in(&AL, key, v, n, &f), IQDB_OK);
    assert_non_null(f);
    return f;
}
static iqdb_filter *exf(const char *key) {
    iqdb_filter *f = NULL;
    assert_int_equal(iqdb_filter_exists(&AL, key, &f), IQDB_OK);
    assert_non_null(f);
    return f;
}
static iqdb_filter *notf(iqdb_filter *c) {
    iqdb_filter *f = NULL;
    assert_int_equal(iqdb_filter_not(c, &f), IQDB_OK);
    assert_non_null(f);
    return f;
}
static iqdb_filter *combine_v(int is_or, size_t n, va_list ap) {
    iqdb_filter *kids[16];
    assert_true(n <= 16);
    for (size_t i = 0; i < n; i++) kids[i] = va_arg(ap, iqdb_filter *);
    iqdb_filter *f = NULL;
    int rc = is_or ? iqdb_filter_or(&AL, n ? kids : NULL, n, &f)
                   : iqdb_filter_and(&AL, n ? kids : NULL, n, &f);
    assert_int_equal(rc, IQDB_OK);
    assert_non_null(f);
    return f;
}
static iqdb_filter *andf(size_t n, ...) {
    va_list ap;
    va_start(ap, n);
    iqdb_filter *f = combine_v(0, n, ap);
    va_end(ap);
    return f;
}
static iqdb_filter *orf(size_t n, ...) {
    va_list ap;
    va_start(ap, n);
    iqdb_filter *f = combine_v(1, n, ap);
    va_end(ap);
    return f;
}

/* iqdb_filter_matches, asserting success and a 0/1 result. */
static int match(const iqdb_filter *f, const iqdb_meta *m) {
    int r = -1;
    assert_int_equal(iqdb_filter_matches(f, m, &r), IQDB_OK);
    assert_true(r == 0 || r == 1);
    return r;
}

/* The compiled evaluator's answer for f on m, as a search computes it: m encoded into a fresh
 * key dictionary, f compiled against that dictionary, evaluated on the blob. */
static int match_compiled(const iqdb_filter *f, const iqdb_meta *m) {
    iqdb__mem mem;
    iqdb__mem_init(&mem, &AL);
    iqdb__keydict d;
    iqdb__keydict_init(&d, &mem);
    uint8_t *blob;
    uint32_t len;
    assert_int_equal(iqdb__meta_encode(m, &d, &mem, &blob, &len), IQDB_OK);
    iqdb__cfilter cf;
    memset(&cf, 0, sizeof cf);
    assert_int_equal(iqdb__filter_compile(f, &d, &cf, &mem), IQDB_OK);
    int r = iqdb__cfilter_eval(&cf, blob, len);
    iqdb__cfilter_free(&cf, &mem);
    iqdb__free(&mem, blob, len);
    iqdb__keydict_destroy(&d);
    return r != 0;
}

/* Asserts that f gives `want` on m through both evaluators. */
static void check(const iqdb_filter *f, const iqdb_meta *m, int want, const char *id) {
    int a = match(f, m), b = match_compiled(f, m);
    if (a != want || b != want) {
        print_error("case %s: matches %d, compiled %d, want %d\n", id, a, b, want);
        fail();
    }
}

static iqdb_meta *new_meta(void) {
    iqdb_meta *m = NULL;
    assert_int_equal(iqdb_meta_create(&AL, &m), IQDB_OK);
    return m;
}
static iqdb_meta *meta1(const char *key, iqdb_value v) {
    iqdb_meta *m = new_meta();
    assert_int_equal(iqdb_meta_set(m, key, v), IQDB_OK);
    return m;
}

/* The record every semantics case is evaluated on. */
static iqdb_meta *rich_record(void) {
    iqdb_meta *m = new_meta();
    struct {
        const char *k;
        iqdb_value v;
    } e[] = {
        {"i", iqdb_int(5)},
        {"zero", iqdb_int(0)},
        {"neg3", iqdb_int(-3)},
        {"big", iqdb_int(9007199254740993)},
        {"nbig", iqdb_int(-9007199254740993)},
        {"imax", iqdb_int(INT64_MAX)},
        {"imin", iqdb_int(INT64_MIN)},
        {"two_d", iqdb_double(2.0)},
        {"d", iqdb_double(3.5)},
        {"nd", iqdb_double(-3.5)},
        {"bigd", iqdb_double(9007199254740992.0)},
        {"pinf", iqdb_double(INFINITY)},
        {"ninf", iqdb_double(-INFINITY)},
        {"negz", iqdb_double(-0.0)},
        {"tenth", iqdb_double(0.1)},
        {"s", iqdb_str("abc")},
        {"e", iqdb_strn("", 0)},
        {"s0", iqdb_strn("a\0b", 3)},
        {"hi", iqdb_str("\xff")},
        {"up", iqdb_str("Z")},
        {"t", iqdb_bool(1)},
        {"f", iqdb_bool(0)},
        {"n", iqdb_null()},
    };
    for (size_t i = 0; i < sizeof e / sizeof e[0]; i++)
        assert_int_equal(iqdb_meta_set(m, e[i].k, e[i].v), IQDB_OK);
    return m;
}

/* ---- builders ----------------------------------------------------------------------------- */

/* iqdb_filter_cmp and each shorthand build the comparison they name: on records i = 4, 5, 6 a
 * comparison with 5 gives the operator's truth pattern. */
static void test_filter_cmp_builders(void **state) {
    (void)state;
    typedef int (*shorthand)(const iqdb_allocator *, const char *, iqdb_value, iqdb_filter **);
    const struct {
        iqdb_op op;
        shorthand fn;
        int pattern[3]; /* for i = 4, 5, 6 */
    } ops[] = {
        {IQDB_OP_EQ, iqdb_filter_eq, {0, 1, 0}}, {IQDB_OP_NE, iqdb_filter_ne, {1, 0, 1}},
        {IQDB_OP_LT, iqdb_filter_lt, {1, 0, 0}}, {IQDB_OP_LE, iqdb_filter_le, {1, 1, 0}},
        {IQDB_OP_GT, iqdb_filter_gt, {0, 0, 1}}, {IQDB_OP_GE, iqdb_filter_ge, {0, 1, 1}},
    };
    iqdb_meta *recs[3];
    for (int i = 0; i < 3; i++) recs[i] = meta1("i", iqdb_int(4 + i));
    for (size_t o = 0; o < 6; o++) {
        iqdb_filter *a = NULL, *b = NULL;
        assert_int_equal(iqdb_filter_cmp(&AL, "i", ops[o].op, iqdb_int(5), &a), IQDB_OK);
        assert_int_equal(ops[o].fn(&AL, "i", iqdb_int(5), &b), IQDB_OK);
        assert_non_null(a);
        assert_non_null(b);
        for (int i = 0; i < 3; i++) {
            char id[64];
            snprintf(id, sizeof id, "op %d, i = %d", (int)ops[o].op, 4 + i);
            check(a, recs[i], ops[o].pattern[i], id);
            check(b, recs[i], ops[o].pattern[i], id);
        }
        iqdb_filter_destroy(a);
        iqdb_filter_destroy(b);
    }
    /* NULL allocator: libc, nothing through A */
    long long count = atomic_load(&A.count);
    iqdb_filter *f = NULL;
    assert_int_equal(iqdb_filter_eq(NULL, "i", iqdb_int(5), &f), IQDB_OK);
    assert_int_equal(atomic_load(&A.count), count);
    assert_int_equal(match(f, recs[1]), 1);
    iqdb_filter_destroy(f);
    iqdb_filter_destroy(NULL); /* no-op */
    for (int i = 0; i < 3; i++) iqdb_meta_destroy(recs[i]);
}

typedef struct bad_cmp {
    const char *id;
    int alloc; /* 0: counting, 1: half-set */
    const char *key;
    iqdb_op op;
    iqdb_value v;
    int want;
} bad_cmp;

/* Bad input to iqdb_filter_cmp: NULL key or out is misuse; unknown operator, NaN, bad key
 * (empty, 256 bytes), over-long string, NULL string pointer with a length, unknown type and a
 * half-set allocator are invalid. *out is NULL and nothing is allocated. Edge values (255-byte
 * key, a string of exactly the limit, NULL pointer with length 0, -inf) are accepted. */
static void test_filter_cmp_bad_input(void **state) {
    (void)state;
    char k256[257];
    memset(k256, 'k', 256);
    k256[256] = '\0';
    char *big = malloc(IQDB_MAX_STRING_LEN + 1);
    memset(big, 'b', IQDB_MAX_STRING_LEN + 1);
    iqdb_value bad_type = iqdb_null();
    bad_type.type = (iqdb_type)99;
    const bad_cmp cases[] = {
        {"1.null_key", 0, NULL, IQDB_OP_EQ, iqdb_int(1), IQDB_MISUSE},
        {"2.op_0", 0, "k", (iqdb_op)0, iqdb_int(1), IQDB_INVALID},
        {"3.op_7", 0, "k", (iqdb_op)7, iqdb_int(1), IQDB_INVALID},
        {"4.nan", 0, "k", IQDB_OP_LT, iqdb_double(NAN), IQDB_INVALID},
        {"5.empty_key", 0, "", IQDB_OP_EQ, iqdb_int(1), IQDB_INVALID},
        {"6.key_256", 0, k256, IQDB_OP_EQ, iqdb_int(1), IQDB_INVALID},
        {"7.string_too_long", 0, "k", IQDB_OP_EQ, iqdb_strn(big, IQDB_MAX_STRING_LEN + 1),
         IQDB_INVALID},
        {"8.null_ptr_len", 0, "k", IQDB_OP_EQ, iqdb_strn(NULL, 3), IQDB_INVALID},
        {"9.type_99", 0, "k", IQDB_OP_EQ, bad_type, IQDB_INVALID},
        {"10.half_allocator", 1, "k", IQDB_OP_EQ, iqdb_int(1), IQDB_INVALID},
    };
    iqdb_allocator half = AL;
    half.free_fn = NULL;
    long long count = atomic_load(&A.count);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        iqdb_filter *f = (iqdb_filter *)&half;
        int rc = iqdb_filter_cmp(cases[i].alloc ? &half : &AL, cases[i].key, cases[i].op,
                                 cases[i].v, &f);
        if (rc != cases[i].want)
            print_error("case %s: got %d want %d\n", cases[i].id, rc, cases[i].want);
        assert_int_equal(rc, cases[i].want);
        assert_null(f);
        assert_true(strlen(iqdb_errmsg(NULL)) > 0);
        /* the shorthands agree */
        if (cases[i].op == IQDB_OP_EQ) {
            f = (iqdb_filter *)&half;
            assert_int_equal(
                iqdb_filter_eq(cases[i].alloc ? &half : &AL, cases[i].key, cases[i].v, &f),
                cases[i].want);
            assert_null(f);
        }
    }
    assert_int_equal(iqdb_filter_cmp(&AL, "k", IQDB_OP_EQ, iqdb_int(1), NULL), IQDB_MISUSE);
    assert_int_equal(iqdb_filter_ge(&AL, "k", iqdb_int(1), NULL), IQDB_MISUSE);
    assert_int_equal(atomic_load(&A.count), count);

    /* edges that are accepted */
    char k255[256];
    memset(k255, 'k', 255);
    k255[255] = '\0';
    iqdb_filter *f;
    assert_int_equal(iqdb_filter_eq(&AL, k255, iqdb_int(1), &f), IQDB_OK);
    iqdb_meta *m = meta1(k255, iqdb_int(1));
    check(f, m, 1, "key_255");
    iqdb_filter_destroy(f);
    iqdb_meta_destroy(m);
    assert_int_equal(iqdb_filter_eq(&AL, "k", iqdb_strn(big, IQDB_MAX_STRING_LEN), &f), IQDB_OK);
    m = meta1("k", iqdb_strn(big, IQDB_MAX_STRING_LEN));
    check(f, m, 1, "string_at_limit");
    iqdb_filter_destroy(f);
    iqdb_meta_destroy(m);
    assert_int_equal(iqdb_filter_eq(&AL, "k", iqdb_strn(NULL, 0), &f), IQDB_OK);
    m = meta1("k", iqdb_str(""));
    check(f, m, 1, "null_ptr_len_0_is_empty");
    iqdb_filter_destroy(f);
    iqdb_meta_destroy(m);
    assert_int_equal(iqdb_filter_lt(&AL, "k", iqdb_double(-INFINITY), &f), IQDB_OK);
    iqdb_filter_destroy(f);
    free(big);
}

/* A filter keeps copies: changing the caller's key and string buffers after building does not
 * change what it matches (comparison and IN). */
static void test_filter_copies_inputs(void **state) {
    (void)state;
    char key[8] = "color", val[8] = "red", v2[8] = "blue";
    iqdb_filter *f = eqf(key, iqdb_str(val));
    iqdb_value vals[2] = {iqdb_str(val), iqdb_str(v2)};
    iqdb_filter *g = inf_(key, vals, 2);
    memcpy(key, "xxxxx", 5);
    memcpy(val, "xxx", 3);
    memcpy(v2, "xxxx", 4);
    iqdb_meta *red = meta1("color", iqdb_str("red")), *blue = meta1("color", iqdb_str("blue")),
              *x = meta1("xxxxx", iqdb_str("xxx"));
    check(f, red, 1, "eq red");
    check(f, x, 0, "eq mutated");
    check(g, blue, 1, "in blue");
    check(g, x, 0, "in mutated");
    iqdb_filter_destroy(f);
    iqdb_filter_destroy(g);
    iqdb_meta_destroy(red);
    iqdb_meta_destroy(blue);
    iqdb_meta_destroy(x);
}

/* iqdb_filter_in: true when the key equals one of the values; n = 0 (values may be NULL) is
 * always false; NULL values with n > 0, a NaN or over-long value are invalid; NULL key or out is
 * misuse; failures allocate nothing. */
static void test_filter_in_builder(void **state) {
    (void)state;
    iqdb_value vals[3] = {iqdb_int(1), iqdb_str("two"), iqdb_double(3.5)};
    iqdb_filter *f = inf_("k", vals, 3);
    iqdb_meta *one = meta1("k", iqdb_int(1)), *two = meta1("k", iqdb_str("two")),
              *four = meta1("k", iqdb_int(4));
    check(f, one, 1, "in 1");
    check(f, two, 1, "in two");
    check(f, four, 0, "in 4");
    iqdb_filter_destroy(f);
    f = inf_("k", NULL, 0);
    check(f, one, 0, "in ()");
    check(f, NULL, 0, "in () no meta");
    iqdb_filter_destroy(f);
    long long count = atomic_load(&A.count);
    iqdb_value bad[2] = {iqdb_int(1), iqdb_double(NAN)};
    iqdb_value bad2[2] = {iqdb_strn(NULL, 4), iqdb_int(1)};
    f = (iqdb_filter *)vals;
    assert_int_equal(iqdb_filter_in(&AL, "k", NULL, 2, &f), IQDB_INVALID);
    assert_null(f);
    f = (iqdb_filter *)vals;
    assert_int_equal(iqdb_filter_in(&AL, "k", bad, 2, &f), IQDB_INVALID);
    assert_null(f);
    assert_int_equal(iqdb_filter_in(&AL, "k", bad2, 2, &f), IQDB_INVALID);
    assert_int_equal(iqdb_filter_in(&AL, "", vals, 3, &f), IQDB_INVALID);
    assert_int_equal(iqdb_filter_in(&AL, NULL, vals, 3, &f), IQDB_MISUSE);
    assert_null(f);
    assert_int_equal(iqdb_filter_in(&AL, "k", vals, 3, NULL), IQDB_MISUSE);
    assert_true(strlen(iqdb_errmsg(NULL)) > 0);
    assert_int_equal(atomic_load(&A.count), count);
    iqdb_meta_destroy(one);
    iqdb_meta_destroy(two);
    iqdb_meta_destroy(four);
}

/* An IN list of IQDB_MAX_FILTER_IN values is accepted and finds its last value; one more value
 * is refused with IQDB_INVALID before anything is allocated. */
static void test_filter_in_limit(void **state) {
    (void)state;
    iqdb_value *vals = malloc((IQDB_MAX_FILTER_IN + 1) * sizeof *vals);
    char(*strs)[8] = malloc((IQDB_MAX_FILTER_IN + 1) * sizeof *strs);
    for (unsigned i = 0; i <= IQDB_MAX_FILTER_IN; i++) {
        snprintf(strs[i], sizeof strs[i], "v%u", i);
        vals[i] = iqdb_str(strs[i]);
    }
    iqdb_filter *f = inf_("s", vals, IQDB_MAX_FILTER_IN);
    iqdb_meta *last = meta1("s", iqdb_str("v1023")), *over = meta1("s", iqdb_str("v1024"));
    check(f, last, 1, "last of 1024");
    check(f, over, 0, "1025th value");
    iqdb_filter_destroy(f);
    long long count = atomic_load(&A.count);
    f = (iqdb_filter *)vals;
    assert_int_equal(iqdb_filter_in(&AL, "s", vals, IQDB_MAX_FILTER_IN + 1, &f), IQDB_INVALID);
    assert_null(f);
    assert_true(strlen(iqdb_errmsg(NULL)) > 0);
    assert_int_equal(atomic_load(&A.count), count);
    iqdb_meta_destroy(last);
    iqdb_meta_destroy(over);
    free(vals);
    free(strs);
}

/* iqdb_filter_exists: true for a present key of any value (null included); NULL key or out is
 * misuse; empty key or a half-set allocator is invalid. */
static void test_filter_exists_builder(void **state) {
    (void)state;
    iqdb_filter *f = exf("k");
    iqdb_meta *null_v = meta1("k", iqdb_null()), *other = meta1("kk", iqdb_int(1));
    check(f, null_v, 1, "exists null value");
    check(f, other, 0, "exists other key");
    check(f, NULL, 0, "exists no meta");
    iqdb_filter_destroy(f);
    f = (iqdb_filter *)&f;
    assert_int_equal(iqdb_filter_exists(&AL, NULL, &f), IQDB_MISUSE);
    assert_null(f);
    assert_int_equal(iqdb_filter_exists(&AL, "k", NULL), IQDB_MISUSE);
    f = (iqdb_filter *)&f;
    assert_int_equal(iqdb_filter_exists(&AL, "", &f), IQDB_INVALID);
    assert_null(f);
    iqdb_allocator half = AL;
    half.alloc_fn = NULL;
    half.realloc_fn = NULL;
    assert_int_equal(iqdb_filter_exists(&half, "k", &f), IQDB_INVALID);
    assert_null(f);
    iqdb_meta_destroy(null_v);
    iqdb_meta_destroy(other);
}

/* AND / OR / NOT take ownership on success: the children are part of the result and one
 * destroy of the root frees the whole tree; n = 0 with NULL children is fine. */
static void test_filter_combinator_ownership(void **state) {
    (void)state;
    iqdb_filter *t = notf(andf(2, orf(2, eqf("a", iqdb_int(1)), eqf("b", iqdb_int(2))), exf("c")));
    iqdb_meta *m = new_meta();
    assert_int_equal(iqdb_meta_set_int(m, "a", 1), IQDB_OK);
    check(t, m, 1, "not(and(or, exists c)) without c");
    assert_int_equal(iqdb_meta_set_null(m, "c"), IQDB_OK);
    check(t, m, 0, "... with c");
    iqdb_meta_destroy(m);
    long long live = atomic_load(&A.live);
    assert_true(live > 0);
    iqdb_filter_destroy(t);
    assert_int_equal(atomic_load(&A.live), 0);
    iqdb_filter *e = NULL;
    assert_int_equal(iqdb_filter_and(&AL, NULL, 0, &e), IQDB_OK);
    iqdb_filter_destroy(e);
    iqdb_filter *kids[1] = {NULL};
    assert_int_equal(iqdb_filter_or(&AL, kids, 0, &e), IQDB_OK); /* n = 0: kids not read */
    iqdb_filter_destroy(e);
}

/* A NULL child (a failed inner builder) makes AND / OR / NOT fail with IQDB_INVALID after
 * destroying the other children: nothing leaks, *out is NULL. */
static void test_filter_combinator_null_child(void **state) {
    (void)state;
    for (int is_or = 0; is_or < 2; is_or++)
        for (int pos = 0; pos < 3; pos++) {
            iqdb_filter *kids[3] = {eqf("a", iqdb_int(1)), exf("b"), eqf("c", iqdb_str("x"))};
            iqdb_filter_destroy(kids[pos]);
            kids[pos] = NULL;
            iqdb_filter *out = (iqdb_filter *)kids;
            int rc =
                is_or ? iqdb_filter_or(&AL, kids, 3, &out) : iqdb_filter_and(&AL, kids, 3, &out);
            if (rc != IQDB_INVALID) print_error("or %d, NULL at %d: got %d\n", is_or, pos, rc);
            assert_int_equal(rc, IQDB_INVALID);
            assert_null(out);
            assert_true(strlen(iqdb_errmsg(NULL)) > 0);
            assert_int_equal(atomic_load(&A.live), 0);
        }
    /* the nesting idiom: a failed inner call hands NULL to the outer one */
    iqdb_filter *bad = NULL;
    assert_int_equal(iqdb_filter_eq(&AL, "a", iqdb_double(NAN), &bad), IQDB_INVALID);
    iqdb_filter *kids[2] = {exf("a"), bad}, *out = (iqdb_filter *)kids;
    assert_int_equal(iqdb_filter_and(&AL, kids, 2, &out), IQDB_INVALID);
    assert_null(out);
    out = (iqdb_filter *)kids;
    assert_int_equal(iqdb_filter_not(NULL, &out), IQDB_INVALID);
    assert_null(out);
    assert_int_equal(atomic_load(&A.live), 0);
}

/* Misuse of the combinators still consumes the children: out NULL (AND, OR, NOT), and a
 * half-set allocator (invalid); children NULL with n > 0 is misuse. */
static void test_filter_combinator_misuse(void **state) {
    (void)state;
    iqdb_filter *kids[2] = {exf("a"), exf("b")};
    assert_int_equal(iqdb_filter_and(&AL, kids, 2, NULL), IQDB_MISUSE);
    assert_int_equal(atomic_load(&A.live), 0);
    kids[0] = exf("a");
    kids[1] = exf("b");
    assert_int_equal(iqdb_filter_or(&AL, kids, 2, NULL), IQDB_MISUSE);
    assert_int_equal(atomic_load(&A.live), 0);
    assert_int_equal(iqdb_filter_not(exf("a"), NULL), IQDB_MISUSE);
    assert_int_equal(atomic_load(&A.live), 0);
    assert_int_equal(iqdb_filter_not(NULL, NULL), IQDB_MISUSE);
    iqdb_filter *out = (iqdb_filter *)kids;
    assert_int_equal(iqdb_filter_and(&AL, NULL, 2, &out), IQDB_MISUSE);
    assert_null(out);
    out = (iqdb_filter *)kids;
    assert_int_equal(iqdb_filter_or(&AL, NULL, 1, &out), IQDB_MISUSE);
    assert_null(out);
    iqdb_allocator half = AL;
    half.free_fn = NULL;
    kids[0] = exf("a");
    kids[1] = exf("b");
    out = (iqdb_filter *)kids;
    assert_int_equal(iqdb_filter_and(&half, kids, 2, &out), IQDB_INVALID);
    assert_null(out);
    assert_int_equal(atomic_load(&A.live), 0);
    kids[0] = exf("a");
    kids[1] = exf("b");
    assert_int_equal(iqdb_filter_or(&half, kids, 2, &out), IQDB_INVALID);
    assert_int_equal(atomic_load(&A.live), 0);
    assert_true(strlen(iqdb_errmsg(NULL)) > 0);
}

/* Nesting: 64 levels of NOT / AND / OR are accepted and evaluate correctly; a 65th level is
 * refused with IQDB_INVALID and the whole subtree is destroyed. Width is not depth. */
static void test_filter_depth_limit(void **state) {
    (void)state;
    iqdb_meta *yes = meta1("x", iqdb_int(1)), *no = meta1("x", iqdb_int(2));
    const long long base = atomic_load(&A.live); /* the two records */
    iqdb_filter *f = eqf("x", iqdb_int(1));
    for (unsigned i = 0; i < IQDB_MAX_FILTER_DEPTH; i++) f = notf(f);
    check(f, yes, 1, "64 NOTs (even) on x = 1");
    check(f, no, 0, "64 NOTs (even) on x = 2");
    iqdb_filter *g = (iqdb_filter *)&g;
    assert_int_equal(iqdb_filter_not(f, &g), IQDB_INVALID);
    assert_null(g);
    assert_true(strlen(iqdb_errmsg(NULL)) > 0);
    assert_int_equal(atomic_load(&A.live), base);

    for (int is_or = 0; is_or < 2; is_or++) {
        f = eqf("x", iqdb_int(1));
        for (unsigned i = 0; i < IQDB_MAX_FILTER_DEPTH; i++)
            f = is_or ? orf(2, eqf("x", iqdb_int(9)), f) : andf(2, f, exf("x"));
        check(f, yes, 1, "64 nested AND/OR");
        check(f, no, 0, "64 nested AND/OR, x = 2");
        iqdb_filter *kids[2] = {exf("x"), f};
        g = (iqdb_filter *)&g;
        int rc = is_or ? iqdb_filter_or(&AL, kids, 2, &g) : iqdb_filter_and(&AL, kids, 2, &g);
        assert_int_equal(rc, IQDB_INVALID);
        assert_null(g);
        assert_int_equal(atomic_load(&A.live), base);
    }
    /* depth is the deepest child: a depth-63 child next to a leaf gives 64 */
    f = eqf("x", iqdb_int(1));
    for (unsigned i = 0; i + 1 < IQDB_MAX_FILTER_DEPTH; i++) f = andf(1, f);
    f = andf(3, exf("x"), f, eqf("x", iqdb_int(1)));
    check(f, yes, 1, "depth 64 with siblings");
    iqdb_filter_destroy(f);
    /* wide and shallow */
    enum { W = 5000 };
    iqdb_filter **kids = malloc(W * sizeof *kids);
    for (int i = 0; i < W; i++) kids[i] = eqf("x", iqdb_int(i + 1));
    assert_int_equal(iqdb_filter_or(&AL, kids, W, &f), IQDB_OK);
    check(f, no, 1, "wide OR");
    iqdb_filter_destroy(f);
    free(kids);
    iqdb_meta_destroy(yes);
    iqdb_meta_destroy(no);
}

/* Mixed allocators: a combinator allocates with its own allocator (NOT with its child's), and
 * destroying the tree returns every block to the allocator it came from. */
static void test_filter_mixed_allocators(void **state) {
    (void)state;
    iqdb_filter *libc_leaf = NULL, *counted = eqf("a", iqdb_str("counted"));
    assert_int_equal(iqdb_filter_eq(NULL, "b", iqdb_str("libc"), &libc_leaf), IQDB_OK);
    long long live = atomic_load(&A.live);
    iqdb_filter *n = notf(libc_leaf); /* on libc: A unchanged */
    assert_int_equal(atomic_load(&A.live), live);
    iqdb_filter *kids[2] = {counted, n}, *root = NULL;
    assert_int_equal(iqdb_filter_or(NULL, kids, 2, &root), IQDB_OK); /* root on libc */
    assert_int_equal(atomic_load(&A.live), live);
    iqdb_meta *m = meta1("a", iqdb_str("counted"));
    check(root, m, 1, "mixed allocators");
    iqdb_meta_destroy(m);
    iqdb_filter_destroy(root);
    assert_int_equal(atomic_load(&A.live), 0);
}

/* Allocation failure at every allocation of each builder (comparison with a string, IN with
 * strings, EXISTS, AND / OR / NOT with children), transient and persistent: IQDB_NOMEM, *out
 * NULL, the children consumed, nothing leaked; finally the call succeeds. */
static void test_filter_oom_builders(void **state) {
    (void)state;
    iqdb_value vals[3] = {iqdb_str("one"), iqdb_int(2), iqdb_str("three")};
    for (int kind = 0; kind < 6; kind++)
        for (int pers = 0; pers < 2; pers++) {
            long long n;
            for (n = 1;; n++) {
                iqdb_filter *kids[2] = {NULL, NULL}, *out = (iqdb_filter *)vals;
                if (kind >= 3) {
                    kids[0] = eqf("a", iqdb_str("kid"));
                    kids[1] = inf_("b", vals, 3);
                }
                iqdbt_fail_after(&A, n, pers);
                int rc = IQDB_ERROR;
                switch (kind) {
                case 0:
                    rc = iqdb_filter_cmp(&AL, "key", IQDB_OP_LE, iqdb_str("value"), &out);
                    break;
                case 1: rc = iqdb_filter_in(&AL, "key", vals, 3, &out); break;
                case 2: rc = iqdb_filter_exists(&AL, "key", &out); break;
                case 3: rc = iqdb_filter_and(&AL, kids, 2, &out); break;
                case 4: rc = iqdb_filter_or(&AL, kids, 2, &out); break;
                default:
                    iqdb_filter_destroy(kids[1]);
                    rc = iqdb_filter_not(kids[0], &out);
                    break;
                }
                int failed = atomic_load(&A.failed);
                iqdbt_fail_off(&A);
                if (!failed) {
                    assert_int_equal(rc, IQDB_OK);
                    assert_non_null(out);
                    iqdb_filter_destroy(out);
                    break;
                }
                if (rc != IQDB_NOMEM)
                    print_error("builder %d (persistent %d): allocation %lld failed, got %d\n",
                                kind, pers, n, rc);
                assert_int_equal(rc, IQDB_NOMEM);
                assert_null(out);
                assert_int_equal(atomic_load(&A.live), 0);
                assert_true(n < 100);
            }
            assert_true(n > 1);
        }
}

/* ---- semantics ---------------------------------------------------------------------------- */

typedef struct sem_case {
    const char *id;
    const char *key;
    iqdb_op op;
    iqdb_value v;
    int want;
} sem_case;

/* The comparison rules of iqdb.h on one record, through iqdb_filter_matches and the compiled
 * evaluator: INT/INT, INT/DOUBLE both ways (exact beyond 2^53 and at +-2^63, negative
 * fractions, -0.0), +-inf, strings by unsigned bytes (prefix first, embedded NULs), BOOL
 * eq/ne/order, NULL equal only to NULL and unordered, absent keys false for every operator. */
static void test_filter_semantics_table(void **state) {
    (void)state;
    const iqdb_op EQ = IQDB_OP_EQ, NE = IQDB_OP_NE, LT = IQDB_OP_LT, LE = IQDB_OP_LE,
                  GT = IQDB_OP_GT, GE = IQDB_OP_GE;
    iqdb_value raw5 = iqdb_null();
    raw5.type = IQDB_TYPE_BOOL;
    raw5.u.b = 5;
    const sem_case cases[] = {
        /* INT / INT */
        {"ii.eq", "i", EQ, iqdb_int(5), 1},
        {"ii.eq_f", "i", EQ, iqdb_int(6), 0},
        {"ii.ne", "i", NE, iqdb_int(6), 1},
        {"ii.ne_f", "i", NE, iqdb_int(5), 0},
        {"ii.lt", "i", LT, iqdb_int(6), 1},
        {"ii.lt_f", "i", LT, iqdb_int(5), 0},
        {"ii.le", "i", LE, iqdb_int(5), 1},
        {"ii.le_f", "i", LE, iqdb_int(4), 0},
        {"ii.gt", "i", GT, iqdb_int(4), 1},
        {"ii.gt_f", "i", GT, iqdb_int(5), 0},
        {"ii.ge", "i", GE, iqdb_int(5), 1},
        {"ii.ge_f", "i", GE, iqdb_int(6), 0},
        {"ii.imin_lt_imax", "imin", LT, iqdb_int(INT64_MAX), 1},
        {"ii.imax_gt_imin", "imax", GT, iqdb_int(INT64_MIN), 1},
        /* INT / DOUBLE, both directions */
        {"id.eq", "i", EQ, iqdb_double(5.0), 1},
        {"id.ne_f", "i", NE, iqdb_double(5.0), 0},
        {"id.lt", "i", LT, iqdb_double(5.5), 1},
        {"id.gt", "i", GT, iqdb_double(4.9), 1},
        {"id.le_f", "i", LE, iqdb_double(4.9), 0},
        {"di.eq", "two_d", EQ, iqdb_int(2), 1},
        {"di.gt", "d", GT, iqdb_int(3), 1},
        {"di.lt", "d", LT, iqdb_int(4), 1},
        {"di.ne", "d", NE, iqdb_int(3), 1},
        {"di.eq_f", "d", EQ, iqdb_int(3), 0},
        {"id.neg3_gt_m3.5", "neg3", GT, iqdb_double(-3.5), 1},
        {"id.neg3_lt_m2.5", "neg3", LT, iqdb_double(-2.5), 1},
        {"di.m3.5_lt_m3", "nd", LT, iqdb_int(-3), 1},
        {"di.m3.5_gt_m4", "nd", GT, iqdb_int(-4), 1},
        {"di.m3.5_ge_m3_f", "nd", GE, iqdb_int(-3), 0},
        {"id.zero_eq_negz", "zero", EQ, iqdb_double(-0.0), 1},
        {"di.negz_eq_zero", "negz", EQ, iqdb_int(0), 1},
        {"dd.negz_eq_posz", "negz", EQ, iqdb_double(0.0), 1},
        {"di.tenth_gt_0", "tenth", GT, iqdb_int(0), 1},
        {"di.tenth_lt_1", "tenth", LT, iqdb_int(1), 1},
        /* beyond 2^53 */
        {"big.gt_2p53", "big", GT, iqdb_double(9007199254740992.0), 1},
        {"big.eq_2p53_f", "big", EQ, iqdb_double(9007199254740992.0), 0},
        {"big.ne_2p53", "big", NE, iqdb_double(9007199254740992.0), 1},
        {"big.ge_2p53", "big", GE, iqdb_double(9007199254740992.0), 1},
        {"big.lt_2p53_f", "big", LT, iqdb_double(9007199254740992.0), 0},
        {"big.le_2p53_f", "big", LE, iqdb_double(9007199254740992.0), 0},
        {"big.lt_2p53+2", "big", LT, iqdb_double(9007199254740994.0), 1},
        {"bigd.lt_int", "bigd", LT, iqdb_int(9007199254740993), 1},
        {"bigd.eq_int_f", "bigd", EQ, iqdb_int(9007199254740993), 0},
        {"bigd.ne_int", "bigd", NE, iqdb_int(9007199254740993), 1},
        {"bigd.eq_exact", "bigd", EQ, iqdb_int(9007199254740992), 1},
        {"bigd.gt_below", "bigd", GT, iqdb_int(9007199254740991), 1},
        {"nbig.lt", "nbig", LT, iqdb_double(-9007199254740992.0), 1},
        {"nbig.gt_f", "nbig", GT, iqdb_double(-9007199254740992.0), 0},
        /* at +-2^63 */
        {"imax.lt_2p63", "imax", LT, iqdb_double(9223372036854775808.0), 1},
        {"imax.eq_2p63_f", "imax", EQ, iqdb_double(9223372036854775808.0), 0},
        {"imax.gt_below", "imax", GT, iqdb_double(9223372036854774784.0), 1},
        {"imin.eq_m2p63", "imin", EQ, iqdb_double(-9223372036854775808.0), 1},
        {"imin.le_m2p63", "imin", LE, iqdb_double(-9223372036854775808.0), 1},
        {"imin.gt_below", "imin", GT, iqdb_double(-9223372036854777856.0), 1},
        {"imin.lt_below_f", "imin", LT, iqdb_double(-9223372036854777856.0), 0},
        /* infinities */
        {"inf.pinf_gt_imax", "pinf", GT, iqdb_int(INT64_MAX), 1},
        {"inf.pinf_eq", "pinf", EQ, iqdb_double(INFINITY), 1},
        {"inf.pinf_ge_max", "pinf", GE, iqdb_double(DBL_MAX), 1},
        {"inf.pinf_lt_f", "pinf", LT, iqdb_double(INFINITY), 0},
        {"inf.pinf_ne_ninf", "pinf", NE, iqdb_double(-INFINITY), 1},
        {"inf.ninf_lt_imin", "ninf", LT, iqdb_int(INT64_MIN), 1},
        {"inf.ninf_eq", "ninf", EQ, iqdb_double(-INFINITY), 1},
        {"inf.ninf_le_lowest", "ninf", LE, iqdb_double(-DBL_MAX), 1},
        {"inf.i_lt_pinf", "i", LT, iqdb_double(INFINITY), 1},
        {"inf.i_gt_ninf", "i", GT, iqdb_double(-INFINITY), 1},
        {"inf.imax_lt_pinf", "imax", LT, iqdb_double(INFINITY), 1},
        {"inf.imin_gt_ninf", "imin", GT, iqdb_double(-INFINITY), 1},
        {"inf.imax_eq_pinf_f", "imax", EQ, iqdb_double(INFINITY), 0},
        /* strings */
        {"s.eq", "s", EQ, iqdb_str("abc"), 1},
        {"s.lt", "s", LT, iqdb_str("abd"), 1},
        {"s.gt_prefix", "s", GT, iqdb_str("ab"), 1},
        {"s.lt_longer", "s", LT, iqdb_str("abcd"), 1},
        {"s.eq_prefix_f", "s", EQ, iqdb_str("ab"), 0},
        {"s.ne_upper", "s", NE, iqdb_str("ABC"), 1},
        {"s.gt_upper", "s", GT, iqdb_str("ABC"), 1},
        {"s.le", "s", LE, iqdb_str("abc"), 1},
        {"s.ge_f", "s", GE, iqdb_str("abd"), 0},
        {"e.eq", "e", EQ, iqdb_str(""), 1},
        {"e.lt", "e", LT, iqdb_str("a"), 1},
        {"e.lt_nul", "e", LT, iqdb_strn("\0", 1), 1},
        {"s0.eq", "s0", EQ, iqdb_strn("a\0b", 3), 1},
        {"s0.eq_cut_f", "s0", EQ, iqdb_str("a"), 0},
        {"s0.gt_a", "s0", GT, iqdb_str("a"), 1},
        {"s0.lt_a01", "s0", LT, iqdb_strn("a\x01", 2), 1},
        {"s0.gt_a0a", "s0", GT, iqdb_strn("a\0a", 3), 1},
        {"s0.ne_a0c", "s0", NE, iqdb_strn("a\0c", 3), 1},
        {"s0.lt_a0b0", "s0", LT, iqdb_strn("a\0b\0", 4), 1},
        {"hi.gt_a", "hi", GT, iqdb_str("a"), 1},
        {"up.lt_a", "up", LT, iqdb_str("a"), 1},
        /* bool */
        {"t.eq", "t", EQ, iqdb_bool(1), 1},
        {"t.eq_raw5", "t", EQ, raw5, 1},
        {"t.ne_false", "t", NE, iqdb_bool(0), 1},
        {"t.ne_true_f", "t", NE, iqdb_bool(1), 0},
        {"f.eq_true_f", "f", EQ, iqdb_bool(1), 0},
        {"f.lt_true", "f", LT, iqdb_bool(1), 1},
        {"t.gt_false", "t", GT, iqdb_bool(0), 1},
        {"t.ge_true", "t", GE, iqdb_bool(1), 1},
        {"f.le_false", "f", LE, iqdb_bool(0), 1},
        {"t.lt_true_f", "t", LT, iqdb_bool(1), 0},
        {"f.gt_true_f", "f", GT, iqdb_bool(1), 0},
        /* null */
        {"n.eq", "n", EQ, iqdb_null(), 1},
        {"n.ne_f", "n", NE, iqdb_null(), 0},
        {"n.lt_f", "n", LT, iqdb_null(), 0},
        {"n.le_f", "n", LE, iqdb_null(), 0},
        {"n.gt_f", "n", GT, iqdb_null(), 0},
        {"n.ge_f", "n", GE, iqdb_null(), 0},
        /* absent key: every operator false */
        {"absent.eq", "zz", EQ, iqdb_int(1), 0},
        {"absent.ne", "zz", NE, iqdb_int(1), 0},
        {"absent.lt", "zz", LT, iqdb_int(1), 0},
        {"absent.le", "zz", LE, iqdb_int(1), 0},
        {"absent.gt", "zz", GT, iqdb_int(1), 0},
        {"absent.ge", "zz", GE, iqdb_int(1), 0},
        {"absent.eq_null", "zz", EQ, iqdb_null(), 0},
        {"absent.ne_null", "zz", NE, iqdb_null(), 0},
        {"absent.ne_str", "zz", NE, iqdb_str(""), 0},
    };
    iqdb_meta *m = rich_record();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const sem_case *c = &cases[i];
        iqdb_filter *f = cmpf(c->key, c->op, c->v);
        check(f, m, c->want, c->id);
        iqdb_filter_destroy(f);
    }
    iqdb_meta_destroy(m);
}

/* A comparison between incomparable types (anything but INT/DOUBLE with each other, or equal
 * types) is false for every operator including ne, in both directions, and IN never matches
 * across types. */
static void test_filter_cross_type_false(void **state) {
    (void)state;
    const iqdb_value values[] = {iqdb_null(),      iqdb_bool(0),          iqdb_bool(1),
                                 iqdb_int(0),      iqdb_int(1),           iqdb_double(0.0),
                                 iqdb_double(1.0), iqdb_str(""),          iqdb_str("1"),
                                 iqdb_str("true"), iqdb_double(-INFINITY)};
    const size_t nv = sizeof values / sizeof values[0];
    size_t checked = 0;
    for (size_t a = 0; a < nv; a++) {
        iqdb_meta *m = meta1("v", values[a]);
        for (size_t b = 0; b < nv; b++) {
            iqdb_type ta = values[a].type, tb = values[b].type;
            int numeric = (ta == IQDB_TYPE_INT || ta == IQDB_TYPE_DOUBLE) &&
                          (tb == IQDB_TYPE_INT || tb == IQDB_TYPE_DOUBLE);
            if (ta == tb || numeric) continue;
            for (int op = IQDB_OP_EQ; op <= IQDB_OP_GE; op++) {
                char id[96];
                snprintf(id, sizeof id, "stored %zu (type %d) op %d literal %zu (type %d)", a,
                         (int)ta, op, b, (int)tb);
                iqdb_filter *f = cmpf("v", (iqdb_op)op, values[b]);
                check(f, m, 0, id);
                iqdb_filter_destroy(f);
                checked++;
            }
            iqdb_filter *f = inf_("v", &values[b], 1);
            check(f, m, 0, "in across types");
            iqdb_filter_destroy(f);
        }
        iqdb_meta_destroy(m);
    }
    assert_true(checked > 400);
}

/* Closed world: a comparison on an absent key is false (ne too) while its NOT is true; a record
 * without metadata (NULL) or with empty metadata fails every comparison, IN and EXISTS; a key
 * holding null compared with a non-null literal is false either way. */
static void test_filter_closed_world(void **state) {
    (void)state;
    iqdb_meta *m = rich_record(), *empty = new_meta();
    const iqdb_value lits[] = {iqdb_null(), iqdb_bool(1), iqdb_int(0), iqdb_double(1.5),
                               iqdb_str("x")};
    for (size_t l = 0; l < 5; l++)
        for (int op = IQDB_OP_EQ; op <= IQDB_OP_GE; op++) {
            char id[64];
            snprintf(id, sizeof id, "op %d literal type %d", op, (int)lits[l].type);
            iqdb_filter *f = cmpf("zz", (iqdb_op)op, lits[l]);
            iqdb_filter *g = cmpf("i", (iqdb_op)op, lits[l]);
            check(f, m, 0, id);     /* absent key */
            check(g, NULL, 0, id);  /* no metadata */
            check(g, empty, 0, id); /* empty metadata */
            iqdb_filter *nf = notf(f), *ng = notf(g);
            check(nf, m, 1, id);
            check(ng, NULL, 1, id);
            check(ng, empty, 1, id);
            iqdb_filter_destroy(nf);
            iqdb_filter_destroy(ng);
        }
    iqdb_filter *f = notf(eqf("zz", iqdb_int(1)));
    check(f, m, 1, "NOT eq on absent key");
    iqdb_filter_destroy(f);
    f = cmpf("zz", IQDB_OP_NE, iqdb_int(1));
    check(f, m, 0, "ne on absent key");
    iqdb_filter_destroy(f);
    f = cmpf("n", IQDB_OP_NE, iqdb_int(1));
    check(f, m, 0, "null ne 1");
    iqdb_filter_destroy(f);
    f = notf(eqf("n", iqdb_int(1)));
    check(f, m, 1, "NOT null eq 1");
    iqdb_filter_destroy(f);
    iqdb_value v = iqdb_int(5);
    f = inf_("i", &v, 1);
    check(f, m, 1, "in present");
    check(f, NULL, 0, "in no meta");
    check(f, empty, 0, "in empty meta");
    iqdb_filter_destroy(f);
    f = exf("i");
    check(f, NULL, 0, "exists no meta");
    check(f, empty, 0, "exists empty meta");
    iqdb_filter_destroy(f);
    iqdb_meta_destroy(m);
    iqdb_meta_destroy(empty);
}

/* IN and EXISTS: IN compares with eq rules (numeric across INT/DOUBLE, exact beyond 2^53, NULL
 * only with NULL, strings with their NULs, no cross-type); EXISTS is true for a null value. */
static void test_filter_in_exists_semantics(void **state) {
    (void)state;
    iqdb_meta *m = rich_record();
    struct {
        const char *id, *key;
        iqdb_value v[3];
        size_t n;
        int want;
    } cases[] = {
        {"1.int_in_doubles", "i", {iqdb_int(1), iqdb_double(5.0)}, 2, 1},
        {"2.int_not_in", "i", {iqdb_int(1), iqdb_int(2)}, 2, 0},
        {"3.empty_list", "i", {iqdb_int(0)}, 0, 0},
        {"4.null_in_null", "n", {iqdb_int(0), iqdb_null()}, 2, 1},
        {"5.null_not_falsy", "n", {iqdb_int(0), iqdb_bool(0), iqdb_str("")}, 3, 0},
        {"6.string", "s", {iqdb_str("x"), iqdb_str("abc")}, 2, 1},
        {"7.string_nul", "s0", {iqdb_strn("a\0b", 3)}, 1, 1},
        {"8.string_nul_cut", "s0", {iqdb_str("a"), iqdb_strn("a\0", 2)}, 2, 0},
        {"9.bool", "t", {iqdb_bool(0), iqdb_bool(1)}, 2, 1},
        {"10.bool_vs_int", "t", {iqdb_int(1)}, 1, 0},
        {"11.big_exact", "big", {iqdb_double(9007199254740992.0)}, 1, 0},
        {"12.big_int", "big", {iqdb_int(9007199254740993)}, 1, 1},
        {"13.absent", "zz", {iqdb_null(), iqdb_int(1)}, 2, 0},
        {"14.pinf", "pinf", {iqdb_double(INFINITY)}, 1, 1},
        {"15.negz", "negz", {iqdb_int(0)}, 1, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        iqdb_filter *f = inf_(cases[i].key, cases[i].v, cases[i].n);
        check(f, m, cases[i].want, cases[i].id);
        iqdb_filter *nf = notf(f);
        check(nf, m, !cases[i].want, cases[i].id);
        iqdb_filter_destroy(nf);
    }
    const char *present[] = {"n", "s", "e", "f", "negz"};
    for (size_t i = 0; i < 5; i++) {
        iqdb_filter *f = exf(present[i]);
        check(f, m, 1, present[i]);
        iqdb_filter_destroy(f);
    }
    iqdb_filter *f = exf("zz");
    check(f, m, 0, "exists absent");
    iqdb_filter_destroy(f);
    iqdb_meta_destroy(m);
}

/* AND of zero children is true and OR of zero children is false, on any record (none, empty,
 * full), and they compose as constants. */
static void test_filter_empty_and_or(void **state) {
    (void)state;
    iqdb_meta *m = rich_record(), *empty = new_meta();
    iqdb_meta *recs[3] = {NULL, empty, m};
    iqdb_filter *t = andf(0), *fl = orf(0);
    iqdb_filter *nt = notf(andf(0)), *and_f = andf(2, andf(0), orf(0)),
                *or_t = orf(2, orf(0), andf(0)),
                *and_t_eq = andf(2, andf(0), eqf("i", iqdb_int(5)));
    for (int r = 0; r < 3; r++) {
        check(t, recs[r], 1, "AND()");
        check(fl, recs[r], 0, "OR()");
        check(nt, recs[r], 0, "NOT AND()");
        check(and_f, recs[r], 0, "AND(AND(), OR())");
        check(or_t, recs[r], 1, "OR(OR(), AND())");
        check(and_t_eq, recs[r], r == 2, "AND(AND(), i = 5)");
    }
    iqdb_filter_destroy(t);
    iqdb_filter_destroy(fl);
    iqdb_filter_destroy(nt);
    iqdb_filter_destroy(and_f);
    iqdb_filter_destroy(or_t);
    iqdb_filter_destroy(and_t_eq);
    iqdb_meta_destroy(m);
    iqdb_meta_destroy(empty);
}

/* iqdb_filter_matches: NULL filter or NULL result is misuse (result 0). */
static void test_filter_matches_misuse(void **state) {
    (void)state;
    iqdb_meta *m = meta1("a", iqdb_int(1));
    iqdb_filter *f = eqf("a", iqdb_int(1));
    int r = 7;
    assert_int_equal(iqdb_filter_matches(NULL, m, &r), IQDB_MISUSE);
    assert_int_equal(r, 0);
    assert_true(strlen(iqdb_errmsg(NULL)) > 0);
    assert_int_equal(iqdb_filter_matches(f, m, NULL), IQDB_MISUSE);
    r = 7;
    assert_int_equal(iqdb_filter_matches(f, m, &r), IQDB_OK);
    assert_int_equal(r, 1);
    iqdb_filter_destroy(f);
    iqdb_meta_destroy(m);
}

/* ---- the parser --------------------------------------------------------------------------- */

/* The records parsed filters are evaluated on: every key the grammar cases use, with values
 * that tell the forms apart (world[0] is a record without metadata). */
enum { N_WORLD = 18 };
static iqdb_meta *world[N_WORLD];

static void world_build(void) {
    static const struct {
        int rec;
        const char *key;
        int type; /* 0 null, 1 bool, 2 int, 3 double, 4 string */
        int64_t i;
        double d;
        const char *s;
        size_t len;
    } e[] = {
        {2, "x", 2, 1, 0, NULL, 0},         {2, "s", 4, 0, 0, "abc", 3},
        {2, "b", 1, 1, 0, NULL, 0},         {2, "d", 3, 0, 1.5, NULL, 0},
        {2, "n", 0, 0, 0, NULL, 0},         {2, "weird key", 2, 1, 0, NULL, 0},
        {2, "a.b-c", 2, 1, 0, NULL, 0},     {2, "and", 2, 1, 0, NULL, 0},
        {3, "x", 2, 2, 0, NULL, 0},         {3, "s", 4, 0, 0, "a", 1},
        {3, "b", 1, 0, 0, NULL, 0},         {3, "d", 3, 0, 1500.0, NULL, 0},
        {3, "y", 2, 1, 0, NULL, 0},         {3, "it's \"q\"", 2, 1, 0, NULL, 0},
        {4, "x", 2, -5, 0, NULL, 0},        {4, "s", 4, 0, 0, "it's", 4},
        {4, "d", 3, 0, 0.5, NULL, 0},       {4, "n", 2, 1, 0, NULL, 0},
        {5, "x", 2, 3, 0, NULL, 0},         {5, "s", 4, 0, 0, "say \"hi\"", 8},
        {5, "d", 3, 0, -2.5, NULL, 0},      {5, "b", 0, 0, 0, NULL, 0},
        {6, "x", 2, INT64_MAX, 0, NULL, 0}, {6, "s", 4, 0, 0, "", 0},
        {7, "x", 2, INT64_MIN, 0, NULL, 0}, {7, "s", 4, 0, 0, "b", 1},
        {7, "weird key", 2, 2, 0, NULL, 0}, {8, "x", 3, 0, 9223372036854775808.0, NULL, 0},
        {8, "s", 4, 0, 0, "a\0b", 3},       {9, "x", 3, 0, 1.0, NULL, 0},
        {9, "s", 4, 0, 0, "b", 1},          {9, "b", 1, 1, 0, NULL, 0},
        {10, "x", 4, 0, 0, "1", 1},         {10, "b", 0, 0, 0, NULL, 0},
        {10, "s", 2, 5, 0, NULL, 0},        {11, "x", 1, 1, 0, NULL, 0},
        {11, "d", 3, 0, 100.0, NULL, 0},    {11, "s", 4, 0, 0, "a\"b", 3},
        {12, "x", 2, 12, 0, NULL, 0},       {12, "s", 4, 0, 0, "A", 1},
        {12, "a.b-c", 2, 2, 0, NULL, 0},    {13, "x", 3, 0, 1e69, NULL, 0},
        {13, "d", 3, 0, 1500.0, NULL, 0},   {14, "d", 3, 0, INFINITY, NULL, 0},
        {14, "x", 2, 0, 0, NULL, 0},        {14, "n", 0, 0, 0, NULL, 0},
        {15, "x", 2, 1, 0, NULL, 0},        {15, "s", 4, 0, 0, "abc", 3},
        {15, "b", 1, 0, 0, NULL, 0},        {15, "y", 2, 2, 0, NULL, 0},
        {16, "x", 3, 0, -2.5, NULL, 0},     {16, "s", 4, 0, 0, "it's", 4},
        {16, "n", 4, 0, 0, "null", 4},      {17, "x", 2, 100, 0, NULL, 0},
        {17, "s", 4, 0, 0, "a'b", 3},       {17, "y", 0, 0, 0, NULL, 0},
    };
    world[0] = NULL;
    for (int r = 1; r < N_WORLD; r++) world[r] = new_meta();
    for (size_t i = 0; i < sizeof e / sizeof e[0]; i++) {
        iqdb_value v = iqdb_null();
        switch (e[i].type) {
        case 1: v = iqdb_bool((int)e[i].i); break;
        case 2: v = iqdb_int(e[i].i); break;
        case 3: v = iqdb_double(e[i].d); break;
        case 4: v = iqdb_strn(e[i].s, e[i].len); break;
        default: break;
        }
        assert_int_equal(iqdb_meta_set(world[e[i].rec], e[i].key, v), IQDB_OK);
    }
}
static void world_free(void) {
    for (int r = 0; r < N_WORLD; r++) {
        iqdb_meta_destroy(world[r]);
        world[r] = NULL;
    }
}

/* Parses text[0..len) from an exact-size heap copy (no NUL after it, so ASan sees any read past
 * len), asserting success. */
static iqdb_filter *parse_ok(const char *text, size_t len, const char *id) {
    char *buf = malloc(len ? len : 1);
    memcpy(buf, text, len);
    iqdb_filter *f = NULL;
    size_t off = 0;
    int rc = iqdb_filter_parse(&AL, buf, len, &f, &off);
    free(buf);
    if (rc != IQDB_OK)
        print_error("case %s: parse gave %d at offset %zu: %s\n", id, rc, off, iqdb_errmsg(NULL));
    assert_int_equal(rc, IQDB_OK);
    assert_non_null(f);
    return f;
}

/* Parses an expected syntax error: IQDB_INVALID at `offset`, *out NULL, a message, no leak. */
static void parse_fails(const char *text, size_t len, size_t offset, const char *id) {
    char *buf = malloc(len ? len : 1);
    memcpy(buf, text, len);
    long long live = atomic_load(&A.live);
    iqdb_filter *f = (iqdb_filter *)buf;
    size_t off = 12345;
    int rc = iqdb_filter_parse(&AL, buf, len, &f, &off);
    int out_null = f == NULL; /* decided before buf (the sentinel) is freed */
    free(buf);
    if (rc == IQDB_OK) iqdb_filter_destroy(f);
    if (rc != IQDB_INVALID || off != offset)
        print_error("case %s: rc %d offset %zu, want %d at %zu (%s)\n", id, rc, off, IQDB_INVALID,
                    offset, iqdb_errmsg(NULL));
    assert_int_equal(rc, IQDB_INVALID);
    assert_int_equal(off, offset);
    assert_true(out_null);
    assert_true(strlen(iqdb_errmsg(NULL)) > 0);
    if (atomic_load(&A.live) != live) {
        print_error("case %s: the failed parse leaked %lld bytes\n", id,
                    atomic_load(&A.live) - live);
        fail();
    }
}

#define EQUIV(name, expr) \
    static iqdb_filter *name(void) { return expr; }
EQUIV(e_x_eq_1, eqf("x", iqdb_int(1)))
EQUIV(e_x_ne_1, cmpf("x", IQDB_OP_NE, iqdb_int(1)))
EQUIV(e_x_lt_2, cmpf("x", IQDB_OP_LT, iqdb_int(2)))
EQUIV(e_x_le_2, cmpf("x", IQDB_OP_LE, iqdb_int(2)))
EQUIV(e_x_gt_2, cmpf("x", IQDB_OP_GT, iqdb_int(2)))
EQUIV(e_x_ge_2, cmpf("x", IQDB_OP_GE, iqdb_int(2)))
EQUIV(e_s_abc, eqf("s", iqdb_str("abc")))
EQUIV(e_s_its, eqf("s", iqdb_str("it's")))
EQUIV(e_s_say_hi, eqf("s", iqdb_str("say \"hi\"")))
EQUIV(e_s_a_dq_b, eqf("s", iqdb_str("a\"b")))
EQUIV(e_s_a_sq_b, eqf("s", iqdb_str("a'b")))
EQUIV(e_s_empty, eqf("s", iqdb_str("")))
EQUIV(e_s_nul, eqf("s", iqdb_strn("a\0b", 3)))
EQUIV(e_s_lt_b, cmpf("s", IQDB_OP_LT, iqdb_str("b")))
EQUIV(e_s_ne_abc, cmpf("s", IQDB_OP_NE, iqdb_str("abc")))
EQUIV(e_weird, eqf("weird key", iqdb_int(1)))
EQUIV(e_and_key, eqf("and", iqdb_int(1)))
EQUIV(e_dots, eqf("a.b-c", iqdb_int(1)))
EQUIV(e_quote_key, eqf("it's \"q\"", iqdb_int(1)))
EQUIV(e_exists_weird, exf("weird key"))
EQUIV(e_exists_y, exf("y"))
EQUIV(e_exists_n, exf("n"))
EQUIV(e_true, andf(0))
EQUIV(e_false, orf(0))
EQUIV(e_true_and_x, andf(2, andf(0), eqf("x", iqdb_int(1))))
EQUIV(e_not_false, notf(orf(0)))
EQUIV(e_n_null, eqf("n", iqdb_null()))
EQUIV(e_b_ne_null, cmpf("b", IQDB_OP_NE, iqdb_null()))
EQUIV(e_b_true, eqf("b", iqdb_bool(1)))
EQUIV(e_b_false, eqf("b", iqdb_bool(0)))
EQUIV(e_b_ne_true, cmpf("b", IQDB_OP_NE, iqdb_bool(1)))
EQUIV(e_x_m5, eqf("x", iqdb_int(-5)))
EQUIV(e_x_3, eqf("x", iqdb_int(3)))
EQUIV(e_d_1500, eqf("d", iqdb_double(1500.0)))
EQUIV(e_d_1_5, eqf("d", iqdb_double(1.5)))
EQUIV(e_d_ge_100, cmpf("d", IQDB_OP_GE, iqdb_double(100.0)))
EQUIV(e_d_half, eqf("d", iqdb_double(0.5)))
EQUIV(e_x_2d, eqf("x", iqdb_double(2.0)))
EQUIV(e_d_m2_5, eqf("d", iqdb_double(-2.5)))
EQUIV(e_d_ge_m2_5, cmpf("d", IQDB_OP_GE, iqdb_double(-2.5)))
EQUIV(e_x_1d, eqf("x", iqdb_double(1.0)))
EQUIV(e_x_imax, eqf("x", iqdb_int(INT64_MAX)))
EQUIV(e_x_imin, eqf("x", iqdb_int(INT64_MIN)))
EQUIV(e_x_2p63, eqf("x", iqdb_double(9223372036854775808.0)))
EQUIV(e_x_ge_2p63, cmpf("x", IQDB_OP_GE, iqdb_double(9223372036854775808.0)))
EQUIV(e_mixed_case, orf(2, andf(2, eqf("x", iqdb_int(1)), eqf("s", iqdb_str("abc"))),
                        notf(eqf("b", iqdb_bool(1)))))
EQUIV(e_prec,
      orf(2, eqf("x", iqdb_int(1)), andf(2, eqf("x", iqdb_int(2)), eqf("s", iqdb_str("a")))))
EQUIV(e_parens,
      andf(2, orf(2, eqf("x", iqdb_int(1)), eqf("x", iqdb_int(2))), eqf("s", iqdb_str("a"))))
EQUIV(e_not_tight, andf(2, notf(eqf("x", iqdb_int(1))), eqf("s", iqdb_str("b"))))
EQUIV(e_not_parens, notf(andf(2, eqf("x", iqdb_int(1)), eqf("s", iqdb_str("abc")))))
EQUIV(e_x1_and_sabc, andf(2, eqf("x", iqdb_int(1)), eqf("s", iqdb_str("abc"))))
EQUIV(e_chain_or, orf(4, eqf("x", iqdb_int(1)), eqf("x", iqdb_int(2)), eqf("x", iqdb_int(3)),
                      eqf("x", iqdb_int(12))))
EQUIV(e_not_not, notf(notf(eqf("x", iqdb_int(1)))))
EQUIV(e_and_or_chain, orf(3, andf(3, eqf("x", iqdb_int(1)), eqf("b", iqdb_bool(1)), exf("n")),
                          eqf("s", iqdb_str("b")), andf(2, exf("y"), notf(exf("b")))))

static iqdb_filter *e_x_in_123(void) {
    iqdb_value v[3] = {iqdb_int(1), iqdb_int(2), iqdb_int(3)};
    return inf_("x", v, 3);
}
static iqdb_filter *e_x_in_empty(void) { return inf_("x", NULL, 0); }
static iqdb_filter *e_s_in_mixed(void) {
    iqdb_value v[5] = {iqdb_str("a"), iqdb_str("b"), iqdb_int(5), iqdb_null(), iqdb_bool(1)};
    return inf_("s", v, 5);
}
static iqdb_filter *e_x_not_in_12(void) {
    iqdb_value v[2] = {iqdb_int(1), iqdb_int(2)};
    return notf(inf_("x", v, 2));
}
static iqdb_filter *e_x_in_2(void) {
    iqdb_value v = iqdb_int(2);
    return inf_("x", &v, 1);
}
static iqdb_filter *e_s_in_quotes(void) {
    iqdb_value v[2] = {iqdb_str("it's"), iqdb_str("say \"hi\"")};
    return inf_("s", v, 2);
}
static iqdb_filter *e_x_in_numbers(void) {
    iqdb_value v[4] = {iqdb_int(-5), iqdb_double(1.0), iqdb_double(1e69), iqdb_int(INT64_MAX)};
    return inf_("x", v, 4);
}

typedef struct equiv_case {
    const char *id;
    const char *text;
    size_t len; /* 0: strlen(text) */
    iqdb_filter *(*build)(void);
    int constant; /* -1: the world must see both results; else every record gives this */
} equiv_case;

/* Every grammar form of the iqdb_filter_parse comment parses and evaluates, on every record of
 * the world, exactly as the equivalent built filter: each operator spelling, both quote styles
 * with doubled quotes, embedded NUL, backquoted keys (also keywords and quotes), dotted keys,
 * [NOT] IN, EXISTS, TRUE / FALSE, NULL, number forms, keywords in any case, precedence (NOT >
 * AND > OR), parentheses and any whitespace. */
static void test_filter_parse_equivalence(void **state) {
    (void)state;
    const equiv_case cases[] = {
        {"1.eq", "x = 1", 0, e_x_eq_1, -1},
        {"2.eqeq", "x == 1", 0, e_x_eq_1, -1},
        {"3.ne", "x != 1", 0, e_x_ne_1, -1},
        {"4.ne_sql", "x <> 1", 0, e_x_ne_1, -1},
        {"5.lt", "x < 2", 0, e_x_lt_2, -1},
        {"6.le", "x <= 2", 0, e_x_le_2, -1},
        {"7.gt", "x > 2", 0, e_x_gt_2, -1},
        {"8.ge", "x >= 2", 0, e_x_ge_2, -1},
        {"9.no_spaces", "x>=2", 0, e_x_ge_2, -1},
        {"10.str_single", "s = 'abc'", 0, e_s_abc, -1},
        {"11.str_double", "s = \"abc\"", 0, e_s_abc, -1},
        {"12.str_doubled_single", "s = 'it''s'", 0, e_s_its, -1},
        {"13.str_doubled_double", "s = \"say \"\"hi\"\"\"", 0, e_s_say_hi, -1},
        {"14.str_dq_in_single", "s = 'a\"b'", 0, e_s_a_dq_b, -1},
        {"15.str_sq_in_double", "s = \"a'b\"", 0, e_s_a_sq_b, -1},
        {"16.str_empty", "s = ''", 0, e_s_empty, -1},
        {"17.str_empty_double", "s = \"\"", 0, e_s_empty, -1},
        {"18.str_nul", "s = 'a\0b'", 9, e_s_nul, -1},
        {"19.str_lt", "s < 'b'", 0, e_s_lt_b, -1},
        {"20.str_ne_sql", "s <> 'abc'", 0, e_s_ne_abc, -1},
        {"21.backquoted", "`weird key` = 1", 0, e_weird, -1},
        {"22.backquoted_keyword", "`and` = 1", 0, e_and_key, -1},
        {"23.backquoted_plain", "`x` = 1", 0, e_x_eq_1, -1},
        {"24.backquoted_quotes", "`it's \"q\"` == 1", 0, e_quote_key, -1},
        {"25.dots_dashes", "a.b-c = 1", 0, e_dots, -1},
        {"26.in", "x IN (1, 2, 3)", 0, e_x_in_123, -1},
        {"27.in_empty", "x IN ()", 0, e_x_in_empty, 0},
        {"28.in_mixed", "s IN ('a', \"b\", 5, NULL, TRUE)", 0, e_s_in_mixed, -1},
        {"29.not_in", "x NOT IN (1, 2)", 0, e_x_not_in_12, -1},
        {"30.in_lower", "x in (2)", 0, e_x_in_2, -1},
        {"31.in_quotes", "s IN ('it''s', \"say \"\"hi\"\"\")", 0, e_s_in_quotes, -1},
        {"32.in_numbers", "x IN (-5, 1.0, 1e69, 9223372036854775807)", 0, e_x_in_numbers, -1},
        {"33.exists", "EXISTS(y)", 0, e_exists_y, -1},
        {"34.exists_spaced_lower", "exists ( n )", 0, e_exists_n, -1},
        {"35.exists_backquoted", "EXISTS(`weird key`)", 0, e_exists_weird, -1},
        {"36.true", "TRUE", 0, e_true, 1},
        {"37.false", "FALSE", 0, e_false, 0},
        {"38.true_and", "true AND x = 1", 0, e_true_and_x, -1},
        {"39.not_false", "NOT FALSE", 0, e_not_false, 1},
        {"40.null_eq", "n = NULL", 0, e_n_null, -1},
        {"41.null_ne", "b != null", 0, e_b_ne_null, 0},
        {"42.bool_true", "b = TRUE", 0, e_b_true, -1},
        {"43.bool_false", "b = false", 0, e_b_false, -1},
        {"44.bool_ne", "b <> True", 0, e_b_ne_true, -1},
        {"45.neg_int", "x = -5", 0, e_x_m5, -1},
        {"46.plus_int", "x = +3", 0, e_x_3, -1},
        {"47.exponent", "d = 1.5e3", 0, e_d_1500, -1},
        {"48.exponent_neg_upper", "d = 15E-1", 0, e_d_1_5, -1},
        {"49.exponent_plus", "d >= 1E+2", 0, e_d_ge_100, -1},
        {"50.leading_dot", "d = .5", 0, e_d_half, -1},
        {"51.trailing_dot", "x = 2.", 0, e_x_2d, -1},
        {"52.neg_double", "d = -2.5", 0, e_d_m2_5, -1},
        {"53.ge_neg_double", "d>=-2.5", 0, e_d_ge_m2_5, -1},
        {"54.double_eq_int", "x = 1.0", 0, e_x_1d, -1},
        {"55.int64_max", "x = 9223372036854775807", 0, e_x_imax, -1},
        {"56.int64_min", "x = -9223372036854775808", 0, e_x_imin, -1},
        {"57.int64_overflow", "x = 9223372036854775808", 0, e_x_2p63, -1},
        {"58.int64_overflow_ge", "x >= 9223372036854775808", 0, e_x_ge_2p63, -1},
        {"59.keywords_mixed_case", "x = 1 aNd s = 'abc' Or NOT b = tRuE", 0, e_mixed_case, -1},
        {"60.not_in_mixed_case", "x nOt In (1, 2)", 0, e_x_not_in_12, -1},
        {"61.exists_mixed_case", "ExIsTs(y)", 0, e_exists_y, -1},
        {"62.null_mixed_case", "n = NuLl", 0, e_n_null, -1},
        {"63.true_mixed_case", "tRUE", 0, e_true, 1},
        {"64.precedence", "x = 1 OR x = 2 AND s = 'a'", 0, e_prec, -1},
        {"65.parens", "(x = 1 OR x = 2) AND s = 'a'", 0, e_parens, -1},
        {"66.not_binds_tight", "NOT x = 1 AND s = 'b'", 0, e_not_tight, -1},
        {"67.not_parens", "NOT (x = 1 AND s = 'abc')", 0, e_not_parens, -1},
        {"68.nested_parens", "((((x = 1))))", 0, e_x_eq_1, -1},
        {"69.whitespace", "\tx\n=\r1 \n AND\ts='abc'  ", 0, e_x1_and_sabc, -1},
        {"70.glued_parens", "(x=1)AND(s='abc')", 0, e_x1_and_sabc, -1},
        {"71.chain_or", "x = 1 OR x = 2 OR x = 3 OR x = 12", 0, e_chain_or, -1},
        {"72.not_not", "NOT NOT x = 1", 0, e_not_not, -1},
        {"73.and_or_chain",
         "x = 1 AND b = true AND EXISTS(n) OR s = 'b' OR EXISTS(y) AND NOT EXISTS(b)", 0,
         e_and_or_chain, -1},
    };
    world_build();
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const equiv_case *t = &cases[c];
        size_t len = t->len ? t->len : strlen(t->text);
        iqdb_filter *p = parse_ok(t->text, len, t->id), *b = t->build();
        int seen[2] = {0, 0};
        for (int r = 0; r < N_WORLD; r++) {
            int rp = match(p, world[r]), rb = match(b, world[r]);
            if (rp != rb) {
                print_error("case %s: record %d: parsed %d, built %d\n", t->id, r, rp, rb);
                fail();
            }
            seen[rp] = 1;
        }
        if (t->constant < 0 && !(seen[0] && seen[1])) {
            print_error("case %s: the world does not tell this filter apart\n", t->id);
            fail();
        }
        if (t->constant >= 0 && seen[!t->constant]) {
            print_error("case %s: expected %d on every record\n", t->id, t->constant);
            fail();
        }
        iqdb_filter_destroy(p);
        iqdb_filter_destroy(b);
    }
    world_free();
}

/* The text need not be NUL-terminated and only len bytes are read: "x = 12" with len 5 is
 * x = 1, trailing garbage past len is ignored, and an exact-size buffer parses cleanly. */
static void test_filter_parse_not_nul_terminated(void **state) {
    (void)state;
    iqdb_meta *one = meta1("x", iqdb_int(1)), *twelve = meta1("x", iqdb_int(12));
    const char *texts[] = {"x = 12", "x = 1 GARBAGE(", "x = 1)", "x = 1'"};
    for (size_t i = 0; i < 4; i++) {
        iqdb_filter *f = parse_ok(texts[i], 5, texts[i]);
        check(f, one, 1, texts[i]);
        check(f, twelve, 0, texts[i]);
        iqdb_filter_destroy(f);
    }
    iqdb_filter *f = parse_ok("x = 12", 6, "x = 12 whole");
    check(f, twelve, 1, "x = 12 whole");
    iqdb_filter_destroy(f);
    char exact[4] = {'T', 'R', 'U', 'E'}; /* no terminator anywhere */
    f = NULL;
    assert_int_equal(iqdb_filter_parse(&AL, exact, 4, &f, NULL), IQDB_OK);
    check(f, NULL, 1, "TRUE from a 4-byte array");
    iqdb_filter_destroy(f);
    iqdb_meta_destroy(one);
    iqdb_meta_destroy(twelve);
}

/* Number literals: integers that fit int64 are INT, out-of-range integers and numbers with '.'
 * or an exponent are DOUBLE (checked on the built leaf and by evaluation). */
static void test_filter_parse_numbers(void **state) {
    (void)state;
    const struct {
        const char *text;
        iqdb_type type;
        int64_t i;
        double d;
    } cases[] = {
        {"x = 9223372036854775807", IQDB_TYPE_INT, INT64_MAX, 0},
        {"x = -9223372036854775808", IQDB_TYPE_INT, INT64_MIN, 0},
        {"x = +7", IQDB_TYPE_INT, 7, 0},
        {"x = -0", IQDB_TYPE_INT, 0, 0},
        {"x = 9223372036854775808", IQDB_TYPE_DOUBLE, 0, 9223372036854775808.0},
        {"x = -9223372036854775809", IQDB_TYPE_DOUBLE, 0, -9223372036854775808.0},
        {"x = 99999999999999999999", IQDB_TYPE_DOUBLE, 0, 1e20},
        {"x = 1.5e3", IQDB_TYPE_DOUBLE, 0, 1500.0},
        {"x = 1e3", IQDB_TYPE_DOUBLE, 0, 1000.0},
        {"x = 2.", IQDB_TYPE_DOUBLE, 0, 2.0},
        {"x = .25", IQDB_TYPE_DOUBLE, 0, 0.25},
        {"x = -1E-2", IQDB_TYPE_DOUBLE, 0, -0.01},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        iqdb_filter *f = parse_ok(cases[c].text, strlen(cases[c].text), cases[c].text);
        assert_int_equal(f->kind, IQDB__F_CMP);
        int ok = f->v.type == cases[c].type &&
                 (cases[c].type == IQDB_TYPE_INT ? f->v.u.i == cases[c].i : f->v.u.d == cases[c].d);
        if (!ok) print_error("case '%s': type %d\n", cases[c].text, (int)f->v.type);
        assert_true(ok);
        /* by evaluation: an overflowing integer must not act as a saturated int64 */
        iqdb_meta *m = meta1("x", cases[c].type == IQDB_TYPE_INT ? iqdb_int(cases[c].i)
                                                                 : iqdb_double(cases[c].d));
        check(f, m, 1, cases[c].text);
        iqdb_meta_destroy(m);
        if (cases[c].type == IQDB_TYPE_DOUBLE && cases[c].d >= 9.2e18) {
            m = meta1("x", iqdb_int(INT64_MAX));
            check(f, m, 0, "INT64_MAX is not 2^63");
            iqdb_meta_destroy(m);
        }
        iqdb_filter_destroy(f);
    }
}

/* A long integer literal (70 digits) is out of int64 range and so a DOUBLE (the grammar puts no
 * length limit on numbers). */
static void test_filter_parse_long_number(void **state) {
    (void)state;
    char text[96] = "x = 1";
    memset(text + 5, '0', 69); /* 1e69 written out */
    text[74] = '\0';
    iqdb_filter *f = NULL;
    size_t off = 0;
    int rc = iqdb_filter_parse(&AL, text, strlen(text), &f, &off);
    if (rc) print_error("70-digit integer: rc %d at %zu: %s\n", rc, off, iqdb_errmsg(NULL));
    assert_int_equal(rc, IQDB_OK);
    iqdb_meta *m = meta1("x", iqdb_double(1e69));
    check(f, m, 1, "70-digit integer");
    assert_int_equal(f->v.type, IQDB_TYPE_DOUBLE);
    iqdb_filter_destroy(f);
    iqdb_meta_destroy(m);
}

typedef struct err_case {
    const char *id;
    const char *text;
    size_t len; /* 0: strlen(text) */
    size_t offset;
} err_case;

/* Malformed texts return IQDB_INVALID with the byte offset where parsing failed (the start of
 * the offending token, or len at the end of text), a message, *out NULL and no leak. */
static void test_filter_parse_errors(void **state) {
    (void)state;
    const err_case cases[] = {
        {"1.empty", "", 0, 0},
        {"2.key_only", "x", 0, 1},
        {"3.no_literal", "x = ", 0, 4},
        {"4.literal_is_key", "x = y", 0, 4},
        {"5.op_op", "x = = 1", 0, 4},
        {"6.eqeq_eqeq", "x == == 1", 0, 5},
        {"7.op_after_op", "x < > 1", 0, 4},
        {"8.bang_alone", "x ! 1", 0, 2},
        {"9.unterminated_single", "x = 'abc", 0, 4},
        {"10.unterminated_double", "s = \"abc", 0, 4},
        {"11.unterminated_after_doubled", "s = 'it''", 0, 4},
        {"12.unterminated_backquote", "`abc = 1", 0, 0},
        {"13.empty_backquote", "`` = 1", 0, 0},
        {"14.trailing_and", "x = 1 AND", 0, 9},
        {"15.trailing_or", "x = 1 OR ", 0, 9},
        {"16.or_or", "x = 1 OR OR y = 1", 0, 9},
        {"17.missing_close", "(x = 1", 0, 6},
        {"18.extra_close", "x = 1)", 0, 5},
        {"19.junk_after", "x = 1 y = 2", 0, 6},
        {"20.string_after", "x = 'a' 'b'", 0, 8},
        {"21.malformed_number", "x = 1.2.3", 0, 4},
        {"22.number_letters", "x = 12abc", 0, 4},
        {"23.minus_alone", "x = -", 0, 4},
        {"24.exponent_missing", "x = 1e", 0, 5},
        {"25.exponent_sign_only", "x = 1e+", 0, 5},
        {"26.bad_char", "x = #", 0, 4},
        {"27.bad_char_after_int", "x = 1 $", 0, 6},
        {"28.in_no_paren", "x IN 1", 0, 5},
        {"29.in_unclosed", "x IN (1, 2", 0, 10},
        {"30.in_trailing_comma", "x IN (1,)", 0, 8},
        {"31.in_missing_comma", "x IN (1 2)", 0, 8},
        {"32.in_key_value", "x IN (y)", 0, 6},
        {"33.not_without_in", "x NOT 1", 0, 6},
        {"34.not_in_no_paren", "x NOT IN 1", 0, 9},
        {"35.not_alone", "NOT", 0, 3},
        {"36.exists_no_paren", "EXISTS x", 0, 7},
        {"37.exists_unclosed", "EXISTS(x", 0, 8},
        {"38.exists_empty", "EXISTS()", 0, 7},
        {"39.exists_literal", "EXISTS('x')", 0, 7},
        {"40.empty_parens", "()", 0, 1},
        {"41.op_first", "= 1", 0, 0},
        {"42.literal_first", "1 = x", 0, 0},
        {"43.string_first", "'x' = 1", 0, 0},
        {"44.true_then_key", "TRUE x = 1", 0, 5},
        {"45.key_nul", "`a\0b` = 1", 9, 0},
        {"46.len_cuts_string", "s = 'abc'", 7, 4},
        {"47.len_cuts_operator", "x <= 1", 3, 3},
        {"48.len_cuts_in", "x IN (1, 2)", 10, 10},
        {"49.and_and", "x = 1 AND AND y = 1", 0, 10},
        {"50.nul_byte_outside_string", "x = 1\0", 6, 5},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const err_case *t = &cases[c];
        parse_fails(t->text, t->len ? t->len : strlen(t->text), t->offset, t->id);
    }
    /* a 256-byte backquoted key at offset 4 */
    char text[300] = "x = 1 OR `";
    memset(text + 10, 'k', 256);
    strcpy(text + 266, "` = 1");
    parse_fails(text, strlen(text), 9, "key_256");
}

/* A syntax error right after a string literal (a bad character, an unterminated string, a lone
 * '!'), in a comparison or in an IN list, frees the literal's bytes: nothing leaks. */
static void test_filter_parse_error_after_string_frees(void **state) {
    (void)state;
    const err_case cases[] = {
        {"1.bad_char", "x = 'a' $", 0, 8},
        {"2.unterminated", "s = 'a' 'b", 0, 8},
        {"3.lone_bang", "x = 'a' !", 0, 8},
        {"4.in_bad_char", "x IN ('a' $)", 0, 10},
        {"5.in_second_bad", "x IN ('a', \"b\" #)", 0, 15},
        {"6.double_quoted", "s = \"q\" `k", 0, 8},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        parse_fails(cases[c].text, strlen(cases[c].text), cases[c].offset, cases[c].id);
}

/* A keyword is never a bare key (each refused where it stops making sense); backquoted, every
 * keyword is an ordinary key. */
static void test_filter_parse_keyword_as_key(void **state) {
    (void)state;
    const err_case cases[] = {
        {"1.and", "and = 1", 0, 0},
        {"2.or", "OR = 1", 0, 0},
        {"3.in", "In = 1", 0, 0},
        {"4.null", "null = 1", 0, 0},
        {"5.not", "NOT = 1", 0, 4},
        {"6.exists", "exists = 1", 0, 7},
        {"7.true", "TRUE = 1", 0, 5},
        {"8.false", "false = 1", 0, 6},
        {"9.later", "x = 1 AND in = 2", 0, 10},
        {"10.in_exists", "EXISTS(and)", 0, 7},
        {"11.in_list", "x IN (or)", 0, 6},
        {"12.not_in_key", "NOT IN (1)", 0, 4},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        parse_fails(cases[c].text, strlen(cases[c].text), cases[c].offset, cases[c].id);
    const char *kws[] = {"AND", "or", "Not", "IN", "exists", "TRUE", "false", "NULL"};
    for (size_t i = 0; i < 8; i++) {
        char text[32];
        snprintf(text, sizeof text, "`%s` = 1", kws[i]);
        iqdb_filter *f = parse_ok(text, strlen(text), text);
        iqdb_meta *m = meta1(kws[i], iqdb_int(1)), *other = meta1(kws[i], iqdb_int(2));
        check(f, m, 1, text);
        check(f, other, 0, text);
        iqdb_filter_destroy(f);
        iqdb_meta_destroy(m);
        iqdb_meta_destroy(other);
    }
}

/* The builders' limits hold for parsed text: 64 nested NOT / AND levels parse, 65 are refused
 * (IQDB_INVALID, an offset inside the text, nothing leaked); an IN list of 1024 literals parses
 * and one of 1025 fails at the 1025th; a 255-byte key and a string literal of exactly
 * IQDB_MAX_STRING_LEN bytes are accepted, one byte more is refused. */
static void test_filter_parse_limits(void **state) {
    (void)state;
    iqdb_meta *yes = meta1("x", iqdb_int(1)), *no = meta1("x", iqdb_int(2));
    const long long base = atomic_load(&A.live); /* the two records */
    size_t cap = 1 << 16;
    char *text = malloc(cap);
    for (unsigned depth = IQDB_MAX_FILTER_DEPTH; depth <= IQDB_MAX_FILTER_DEPTH + 1; depth++)
        for (int form = 0; form < 2; form++) {
            size_t len = 0;
            if (form == 0) { /* NOT NOT ... x = 1 */
                for (unsigned i = 0; i < depth; i++) len += (size_t)sprintf(text + len, "NOT ");
                len += (size_t)sprintf(text + len, "x = 1");
            } else { /* (x = 1 AND (x = 1 AND ... x = 1)) */
                for (unsigned i = 0; i < depth; i++)
                    len += (size_t)sprintf(text + len, "(x = 1 AND ");
                len += (size_t)sprintf(text + len, "x = 1");
                for (unsigned i = 0; i < depth; i++) text[len++] = ')';
            }
            iqdb_filter *f = (iqdb_filter *)text;
            size_t off = SIZE_MAX;
            int rc = iqdb_filter_parse(&AL, text, len, &f, &off);
            if (depth == IQDB_MAX_FILTER_DEPTH) {
                assert_int_equal(rc, IQDB_OK);
                check(f, yes, 1, "depth 64");
                check(f, no, 0, "depth 64, x = 2");
                iqdb_filter_destroy(f);
            } else {
                if (rc != IQDB_INVALID) print_error("depth 65 form %d: rc %d\n", form, rc);
                assert_int_equal(rc, IQDB_INVALID);
                assert_null(f);
                assert_true(off <= len);
                assert_true(strlen(iqdb_errmsg(NULL)) > 0);
                assert_int_equal(atomic_load(&A.live), base);
            }
        }
    /* IN lists */
    for (unsigned n = IQDB_MAX_FILTER_IN; n <= IQDB_MAX_FILTER_IN + 1; n++) {
        size_t len = (size_t)sprintf(text, "x IN ("), last = 0;
        for (unsigned i = 0; i < n; i++) {
            last = len;
            len += (size_t)sprintf(text + len, i ? ", %u" : "%u", i);
            if (i) last += 2;
        }
        text[len++] = ')';
        if (n == IQDB_MAX_FILTER_IN) {
            iqdb_filter *f = parse_ok(text, len, "IN 1024");
            iqdb_meta *m = meta1("x", iqdb_int(1023)), *m2 = meta1("x", iqdb_int(1024));
            check(f, m, 1, "IN 1024: last value");
            check(f, m2, 0, "IN 1024: not listed");
            iqdb_filter_destroy(f);
            iqdb_meta_destroy(m);
            iqdb_meta_destroy(m2);
        } else {
            parse_fails(text, len, last, "IN 1025");
        }
    }
    /* keys */
    size_t len = (size_t)sprintf(text, "`");
    memset(text + len, 'k', 255);
    len += 255;
    len += (size_t)sprintf(text + len, "` = 1");
    iqdb_filter *f = parse_ok(text, len, "key 255");
    char key[256];
    memset(key, 'k', 255);
    key[255] = '\0';
    iqdb_meta *m = meta1(key, iqdb_int(1));
    check(f, m, 1, "key 255");
    iqdb_filter_destroy(f);
    iqdb_meta_destroy(m);
    /* string literal at the limit */
    free(text);
    text = malloc(IQDB_MAX_STRING_LEN + 16);
    for (int extra = 0; extra < 2; extra++) {
        size_t n = IQDB_MAX_STRING_LEN + (size_t)extra;
        memcpy(text, "s = '", 5);
        memset(text + 5, 'q', n);
        text[5 + n] = '\'';
        if (!extra) {
            f = parse_ok(text, n + 6, "string at the limit");
            assert_int_equal(f->v.u.s.len, IQDB_MAX_STRING_LEN);
            iqdb_filter_destroy(f);
        } else {
            parse_fails(text, n + 6, 4, "string over the limit");
        }
    }
    free(text);
    iqdb_meta_destroy(yes);
    iqdb_meta_destroy(no);
}

/* Pathological nesting fails cleanly (IQDB_INVALID, no stack overflow, nothing leaked): 100000
 * '(' characters, 100000 "NOT " prefixes, 50000 "NOT (" pairs; a flat chain of 100001 AND (or OR)
 * operands is only one level deep and parses. */
static void test_filter_parse_deep_nesting(void **state) {
    (void)state;
    enum { N = 100000 };
    char *text = malloc(12 * (size_t)N + 64);
    for (int form = 0; form < 3; form++) {
        size_t len = 0;
        if (form == 0) {
            memset(text, '(', N);
            len = N;
        } else if (form == 1) {
            for (int i = 0; i < N; i++) memcpy(text + len, "NOT ", 4), len += 4;
            memcpy(text + len, "x = 1", 5), len += 5;
        } else {
            for (int i = 0; i < N / 2; i++) memcpy(text + len, "NOT (", 5), len += 5;
            memcpy(text + len, "x = 1", 5), len += 5;
            memset(text + len, ')', N / 2), len += N / 2;
        }
        iqdb_filter *f = (iqdb_filter *)text;
        size_t off = SIZE_MAX;
        int rc = iqdb_filter_parse(&AL, text, len, &f, &off);
        if (rc != IQDB_INVALID) print_error("form %d: rc %d\n", form, rc);
        assert_int_equal(rc, IQDB_INVALID);
        assert_null(f);
        assert_true(off <= len);
        assert_true(strlen(iqdb_errmsg(NULL)) > 0);
        assert_int_equal(atomic_load(&A.live), 0);
    }
    iqdb_meta *yes = meta1("x", iqdb_int(1)), *no = meta1("x", iqdb_int(2));
    for (int is_or = 0; is_or < 2; is_or++) {
        size_t len = 0;
        for (int i = 0; i < N; i++) {
            memcpy(text + len, is_or ? "x = 9 OR " : "x = 1 AND ", is_or ? 9 : 10);
            len += is_or ? 9 : 10;
        }
        memcpy(text + len, "x = 1", 5), len += 5;
        iqdb_filter *f = parse_ok(text, len, is_or ? "flat OR" : "flat AND");
        check(f, yes, 1, "flat chain");
        check(f, no, 0, "flat chain, x = 2");
        iqdb_filter_destroy(f);
    }
    iqdb_meta_destroy(yes);
    iqdb_meta_destroy(no);
    free(text);
}

/* iqdb_filter_parse misuse: NULL text or out (*out NULL, offset 0); a half-set allocator is
 * invalid; err_offset may be NULL; the NULL allocator uses libc. */
static void test_filter_parse_misuse(void **state) {
    (void)state;
    iqdb_filter *f = (iqdb_filter *)&f;
    size_t off = 99;
    assert_int_equal(iqdb_filter_parse(&AL, NULL, 5, &f, &off), IQDB_MISUSE);
    assert_null(f);
    assert_int_equal(off, 0);
    assert_true(strlen(iqdb_errmsg(NULL)) > 0);
    assert_int_equal(iqdb_filter_parse(&AL, "x = 1", 5, NULL, &off), IQDB_MISUSE);
    iqdb_allocator half = AL;
    half.free_fn = NULL;
    f = (iqdb_filter *)&f;
    assert_int_equal(iqdb_filter_parse(&half, "x = 1", 5, &f, NULL), IQDB_INVALID);
    assert_null(f);
    assert_int_equal(iqdb_filter_parse(&AL, "x = ", 4, &f, NULL), IQDB_INVALID);
    assert_null(f);
    long long count = atomic_load(&A.count);
    const char *text = "x IN ('a', 'b') AND NOT y = 'c'";
    assert_int_equal(iqdb_filter_parse(NULL, text, strlen(text), &f, NULL), IQDB_OK);
    assert_int_equal(atomic_load(&A.count), count);
    iqdb_meta *m = meta1("x", iqdb_str("b"));
    check(f, m, 1, "libc-parsed filter");
    iqdb_filter_destroy(f);
    iqdb_meta_destroy(m);
    assert_int_equal(atomic_load(&A.live), 0);
}

/* iqdb_filter_parse under allocation failure at every allocation, transient and persistent:
 * IQDB_NOMEM, *out NULL, nothing leaked; once it succeeds the filter equals a clean parse on
 * every record. */
static void test_filter_parse_oom(void **state) {
    (void)state;
    const char *text = "x = 'abc' AND (s IN ('it''s', \"b\", 3, NULL) OR NOT EXISTS(n)) AND TRUE "
                       "AND y NOT IN (1, 'z') OR `weird key` >= 1.5";
    world_build();
    iqdb_filter *ref = parse_ok(text, strlen(text), "reference");
    long long live0 = atomic_load(&A.live);
    for (int pers = 0; pers < 2; pers++) {
        long long n;
        for (n = 1;; n++) {
            iqdb_filter *f = (iqdb_filter *)&n;
            size_t off;
            iqdbt_fail_after(&A, n, pers);
            int rc = iqdb_filter_parse(&AL, text, strlen(text), &f, &off);
            int failed = atomic_load(&A.failed);
            iqdbt_fail_off(&A);
            if (!failed) {
                assert_int_equal(rc, IQDB_OK);
                for (int r = 0; r < N_WORLD; r++)
                    assert_int_equal(match(f, world[r]), match(ref, world[r]));
                iqdb_filter_destroy(f);
                break;
            }
            if (rc != IQDB_NOMEM)
                print_error("parse (persistent %d): allocation %lld failed, got %d\n", pers, n, rc);
            assert_int_equal(rc, IQDB_NOMEM);
            assert_null(f);
            assert_int_equal(atomic_load(&A.live), live0);
            assert_true(n < 1000);
        }
        assert_true(n > 20);
    }
    iqdb_filter_destroy(ref);
    world_free();
}

/* ---- fuzz --------------------------------------------------------------------------------- */

typedef struct ftok {
    const char *s;
    size_t n;
} ftok;
#define T(str) \
    { str, sizeof(str) - 1 }
static const ftok KEYS[] = {T("x"), T("s"),           T("n"),     T("b"),     T("d"),
                            T("y"), T("`weird key`"), T("`and`"), T("a.b-c"), T("zz")};
static const ftok LITS[] = {T("0"),
                            T("1"),
                            T("-5"),
                            T("2.5"),
                            T("1e3"),
                            T("'abc'"),
                            T("'it''s'"),
                            T("\"b\""),
                            T("''"),
                            T("NULL"),
                            T("TRUE"),
                            T("false"),
                            T("9223372036854775808"),
                            T("'a\0b'"),
                            T("-9223372036854775808"),
                            T(".5"),
                            T("'a'")};
static const ftok OPS[] = {T("="), T("=="), T("!="), T("<>"), T("<"), T("<="), T(">"), T(">=")};
static const ftok SOUP[] = {
    T("x"),      T("s"),       T("`k`"),   T("``"),    T("`"),   T("AND"),
    T("and"),    T("OR"),      T("or"),    T("NOT"),   T("IN"),  T("in"),
    T("EXISTS"), T("TRUE"),    T("FALSE"), T("NULL"),  T("("),   T("("),
    T(")"),      T(")"),       T(","),     T("="),     T("=="),  T("!="),
    T("<>"),     T("<"),       T("<="),    T(">"),     T(">="),  T("!"),
    T("0"),      T("1"),       T("-5"),    T("+3"),    T("2.5"), T(".5"),
    T("1e3"),    T("1E-2"),    T("1e"),    T("12abc"), T("-"),   T("."),
    T("'abc'"),  T("'it''s'"), T("\"q\""), T("''"),    T("'"),   T("\""),
    T("'a"),     T("#"),       T("$"),     T("\t"),    T("\n"),  T("9223372036854775808"),
    T("'a\0b'")};
#undef T

typedef struct tokbuf {
    ftok t[96];
    size_t n;
} tokbuf;

static void tb_push(tokbuf *b, ftok t) {
    if (b->n < 96) b->t[b->n++] = t;
}
static ftok pick(iqdbt_rng *r, const ftok *set, size_t n) { return set[iqdbt_next(r) % n]; }

/* A random filter from the grammar, as tokens. */
static void gen_expr(iqdbt_rng *r, tokbuf *b, int depth) {
    static const ftok LP = {"(", 1}, RP = {")", 1}, COMMA = {",", 1}, NOT = {"NOT", 3},
                      IN = {"IN", 2}, EXISTS = {"exists", 6}, AND = {"AND", 3}, OR = {"or", 2},
                      TRUE_ = {"TRUE", 4}, FALSE_ = {"FALSE", 5};
    uint64_t c = iqdbt_next(r) % (depth >= 4 ? 4 : 8);
    switch (c) {
    case 0:
        tb_push(b, pick(r, KEYS, sizeof KEYS / sizeof KEYS[0]));
        tb_push(b, pick(r, OPS, sizeof OPS / sizeof OPS[0]));
        tb_push(b, pick(r, LITS, sizeof LITS / sizeof LITS[0]));
        break;
    case 1: {
        tb_push(b, pick(r, KEYS, sizeof KEYS / sizeof KEYS[0]));
        if (iqdbt_next(r) % 3 == 0) tb_push(b, NOT);
        tb_push(b, IN);
        tb_push(b, LP);
        size_t n = iqdbt_next(r) % 4;
        for (size_t i = 0; i < n; i++) {
            if (i) tb_push(b, COMMA);
            tb_push(b, pick(r, LITS, sizeof LITS / sizeof LITS[0]));
        }
        tb_push(b, RP);
        break;
    }
    case 2:
        tb_push(b, EXISTS);
        tb_push(b, LP);
        tb_push(b, pick(r, KEYS, sizeof KEYS / sizeof KEYS[0]));
        tb_push(b, RP);
        break;
    case 3: tb_push(b, iqdbt_next(r) & 1 ? TRUE_ : FALSE_); break;
    case 4:
        tb_push(b, NOT);
        gen_expr(r, b, depth + 1);
        break;
    case 5:
        tb_push(b, LP);
        gen_expr(r, b, depth + 1);
        tb_push(b, RP);
        break;
    default:
        gen_expr(r, b, depth + 1);
        tb_push(b, c == 6 ? AND : OR);
        gen_expr(r, b, depth + 1);
        break;
    }
}

/* ~20000 seeded inputs — grammar-generated filters, the same with a few tokens deleted,
 * duplicated or replaced, random token soup, occasionally a random byte — never crash: each
 * either parses, and then evaluates on every world record with the same answer from
 * iqdb_filter_matches and the compiled evaluator, or fails with IQDB_INVALID, an offset within
 * the text, a message and *out NULL. No input leaks. */
static void test_filter_parse_fuzz(void **state) {
    (void)state;
    uint64_t seed = test_seed(99);
    printf("fuzz: seed %llu\n", (unsigned long long)seed);
    iqdbt_rng r = {seed};
    world_build();
    iqdb__mem cmem;
    iqdb__mem_init(&cmem, &AL);
    iqdb__keydict d;
    iqdb__keydict_init(&d, &cmem);
    uint8_t *blobs[N_WORLD];
    uint32_t lens[N_WORLD];
    for (int i = 0; i < N_WORLD; i++)
        assert_int_equal(iqdb__meta_encode(world[i], &d, &cmem, &blobs[i], &lens[i]), IQDB_OK);
    iqdb__cfilter cf;
    memset(&cf, 0, sizeof cf);
    char text[4096], first_leak[256] = "";
    size_t parsed = 0, failed = 0, leaky = 0;
    enum { ITER = 20000 };
    for (int it = 0; it < ITER; it++) {
        tokbuf b;
        b.n = 0;
        uint64_t mode = iqdbt_next(&r) % 4;
        if (mode < 3) {
            gen_expr(&r, &b, 0);
            if (mode == 1 || mode == 2) { /* mutate a few tokens */
                int k = 1 + (int)(iqdbt_next(&r) % 3);
                for (int j = 0; j < k && b.n; j++) {
                    size_t at = iqdbt_next(&r) % b.n;
                    uint64_t how = iqdbt_next(&r) % 3;
                    if (how == 0) {
                        memmove(&b.t[at], &b.t[at + 1], (b.n - at - 1) * sizeof b.t[0]);
                        b.n--;
                    } else if (how == 1 && b.n < 96) {
                        memmove(&b.t[at + 1], &b.t[at], (b.n - at) * sizeof b.t[0]);
                        b.n++;
                    } else {
                        b.t[at] = pick(&r, SOUP, sizeof SOUP / sizeof SOUP[0]);
                    }
                }
            }
        } else {
            size_t n = 1 + iqdbt_next(&r) % 14;
            for (size_t j = 0; j < n; j++)
                tb_push(&b, pick(&r, SOUP, sizeof SOUP / sizeof SOUP[0]));
        }
        size_t len = 0;
        for (size_t j = 0; j < b.n; j++) {
            memcpy(text + len, b.t[j].s, b.t[j].n);
            len += b.t[j].n;
            if (iqdbt_next(&r) % 10 < 8) text[len++] = ' ';
        }
        if (len && iqdbt_next(&r) % 25 == 0) text[iqdbt_next(&r) % len] = (char)iqdbt_next(&r);
        char *buf = malloc(len ? len : 1);
        memcpy(buf, text, len);
        long long live0 = atomic_load(&A.live) - (long long)atomic_load(&cmem.live);
        iqdb_filter *f = (iqdb_filter *)buf;
        size_t off = SIZE_MAX;
        int rc = iqdb_filter_parse(&AL, buf, len, &f, &off);
        if (rc == IQDB_OK) {
            parsed++;
            assert_non_null(f);
            assert_int_equal(iqdb__filter_compile(f, &d, &cf, &cmem), IQDB_OK);
            for (int i = 0; i < N_WORLD; i++) {
                int res = 7;
                assert_int_equal(iqdb_filter_matches(f, world[i], &res), IQDB_OK);
                int c = iqdb__cfilter_eval(&cf, blobs[i], lens[i]) != 0;
                if ((res != 0 && res != 1) || res != c) {
                    print_error("input %d '%.*s' record %d: matches %d, compiled %d\n", it,
                                (int)len, buf, i, res, c);
                    fail();
                }
            }
            iqdb_filter_destroy(f);
        } else {
            failed++;
            if (rc != IQDB_INVALID || f != NULL || off > len || !*iqdb_errmsg(NULL)) {
                print_error("input %d '%.*s': rc %d, offset %zu of %zu\n", it, (int)len, buf, rc,
                            off, len);
                fail();
            }
        }
        if (atomic_load(&A.live) - (long long)atomic_load(&cmem.live) != live0) {
            if (!leaky++) snprintf(first_leak, sizeof first_leak, "%.*s", (int)len, buf);
        }
        free(buf);
    }
    printf("fuzz: %zu parsed, %zu refused\n", parsed, failed);
    iqdb__cfilter_free(&cf, &cmem);
    for (int i = 0; i < N_WORLD; i++) iqdb__free(&cmem, blobs[i], lens[i]);
    iqdb__keydict_destroy(&d);
    world_free();
    assert_true(parsed > ITER / 10); /* the generator reaches the valid grammar ... */
    assert_true(failed > ITER / 5);  /* ... and its neighbourhood */
    if (leaky) print_error("%zu refused inputs leaked memory; first: '%s'\n", leaky, first_leak);
    assert_int_equal(leaky, 0);
}

/* ---- end to end --------------------------------------------------------------------------- */

/* A filtered iqdb_search over an in-memory database returns exactly the records
 * iqdb_filter_matches accepts (k above the count), a subset of them for a small k, and reports
 * the match count; metadata read back with iqdb_get gives the same answers. */
static void test_filter_search_end_to_end(void **state) {
    (void)state;
    enum { N = 300, DIM = 4 };
    iqdb_options o;
    iqdb_options_init(&o, DIM, IQDB_METRIC_L2);
    o.allocator = AL;
    iqdb *db = NULL;
    assert_int_equal(iqdb_open(NULL, &o, &db), IQDB_OK);
    iqdb_meta *metas[N];
    iqdbt_rng r = {31};
    static const char *const strs[] = {"apple", "banana", "cherry", "", "a\0b"};
    for (int i = 0; i < N; i++) {
        metas[i] = NULL;
        if (i % 7) {
            metas[i] = new_meta();
            if (i % 3 == 0)
                assert_int_equal(iqdb_meta_set_double(metas[i], "a", i % 5 + 0.5), IQDB_OK);
            else
                assert_int_equal(iqdb_meta_set_int(metas[i], "a", i % 5), IQDB_OK);
            assert_int_equal(iqdb_meta_set_bool(metas[i], "b", i % 2), IQDB_OK);
            const char *s = strs[i % 5];
            assert_int_equal(iqdb_meta_set(metas[i], "s", iqdb_strn(s, i % 5 == 4 ? 3 : strlen(s))),
                             IQDB_OK);
            switch (i % 4) {
            case 0: assert_int_equal(iqdb_meta_set_null(metas[i], "c"), IQDB_OK); break;
            case 1: assert_int_equal(iqdb_meta_set_string(metas[i], "c", "x"), IQDB_OK); break;
            case 2: assert_int_equal(iqdb_meta_set_int(metas[i], "c", 1), IQDB_OK); break;
            default: break;
            }
        }
        float v[DIM];
        iqdbt_fill(&r, v, DIM, -1, 1);
        assert_int_equal(iqdb_upsert(db, (iqdb_id)i * 3 + 1, v, metas[i]), IQDB_OK);
    }
    const char *texts[] = {"a = 1",         "a != 1",
                           "NOT a = 1",     "a < 2.5",
                           "a >= 3",        "s >= 'banana'",
                           "s = 'a\0b'",    "s = 'cherry' OR b = true",
                           "EXISTS(c)",     "c = NULL",
                           "c IN (1, 'x')", "NOT (a > 0 AND b = false)",
                           "TRUE",          "FALSE",
                           "zzz = 1",       "NOT zzz = 1",
                           "a IN ()",       "a NOT IN (1, 2.5)"};
    const size_t text_lens[] = {0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    float q[DIM] = {0.1f, -0.2f, 0.3f, 0};
    iqdb_hit hits[N];
    for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) {
        size_t tl = text_lens[t] ? text_lens[t] : strlen(texts[t]);
        iqdb_filter *f = parse_ok(texts[t], tl, texts[t]);
        unsigned char want[N];
        size_t n_want = 0;
        for (int i = 0; i < N; i++) n_want += want[i] = (unsigned char)match(f, metas[i]);
        iqdb_search_params p;
        iqdb_search_params_init(&p);
        p.filter = f;
        iqdb_search_info info = {.struct_size = sizeof info};
        size_t n = 0;
        assert_int_equal(iqdb_search(db, q, N, &p, hits, &n, &info), IQDB_OK);
        if (n != n_want)
            print_error("filter '%s': %zu hits, %zu matching records\n", texts[t], n, n_want);
        assert_int_equal(n, n_want);
        assert_int_equal(info.n_matched, n_want);
        assert_int_equal(info.complete, 1);
        unsigned char seen[N] = {0};
        for (size_t h = 0; h < n; h++) {
            assert_true(hits[h].id % 3 == 1);
            size_t i = (size_t)(hits[h].id / 3);
            assert_true(i < N);
            if (!want[i]) print_error("filter '%s': record %zu is not a match\n", texts[t], i);
            assert_true(want[i]);
            assert_false(seen[i]);
            seen[i] = 1;
        }
        /* a small k: a subset of the matches */
        assert_int_equal(iqdb_search(db, q, 5, &p, hits, &n, NULL), IQDB_OK);
        assert_int_equal(n, n_want < 5 ? n_want : 5);
        for (size_t h = 0; h < n; h++) assert_true(want[hits[h].id / 3]);
        /* metadata read back evaluates the same */
        for (int i = 0; i < N; i += 37) {
            iqdb_meta *got = NULL;
            assert_int_equal(iqdb_get(db, (iqdb_id)i * 3 + 1, NULL, &got), IQDB_OK);
            assert_int_equal(match(f, got), want[i]);
            iqdb_meta_destroy(got);
        }
        iqdb_filter_destroy(f);
    }
    for (int i = 0; i < N; i++) iqdb_meta_destroy(metas[i]);
    assert_int_equal(iqdb_close(db), IQDB_OK);
}

int main(void) {
    iqdbt_simd_gate();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_filter_cmp_builders, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_cmp_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_copies_inputs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_in_builder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_in_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_exists_builder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_combinator_ownership, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_combinator_null_child, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_combinator_misuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_depth_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_mixed_allocators, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_oom_builders, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_semantics_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_cross_type_false, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_closed_world, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_in_exists_semantics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_empty_and_or, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_matches_misuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_parse_equivalence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_parse_not_nul_terminated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_parse_numbers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_parse_long_number, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_parse_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_parse_error_after_string_frees, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_filter_parse_keyword_as_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_parse_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_parse_deep_nesting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_parse_misuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_parse_oom, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_parse_fuzz, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_search_end_to_end, setup, teardown),
    };
    return cmocka_run_group_tests_name("filter", tests, NULL, NULL);
}
