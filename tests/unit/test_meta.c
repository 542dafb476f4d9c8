/*
 * test_meta.c — metadata: the public iqdb_meta object (create, set and its shorthands, remove,
 * count, at, get and the typed getters) with the limits of iqdb.h, and the internal blob layer
 * of meta.h (key dictionary, encode / decode, the structural check of hostile blobs, key lookup
 * in a blob), including allocation failure at every allocation.
 *
 * Objects under test use the counting allocator A, reference copies use B; teardown asserts
 * that nothing leaked and every free was sized correctly. Random cases print their seed; set
 * IQDBT_SEED to replay one.
 */
#define IQDB_ALLOW_LIBC_ALLOC /* this file's own scratch buffers use malloc / free */
#include "../common/testutil.h"

#include "meta/meta.h"

static iqdbt_alloc A, B;

static int setup(void **state) {
    (void)state;
    iqdbt_alloc_reset(&A);
    iqdbt_alloc_reset(&B);
    return 0;
}
static int teardown(void **state) {
    (void)state;
    assert_int_equal(atomic_load(&A.live), 0);
    assert_int_equal(atomic_load(&A.blocks), 0);
    assert_int_equal(atomic_load(&A.bad_free), 0);
    assert_int_equal(atomic_load(&B.live), 0);
    assert_int_equal(atomic_load(&B.blocks), 0);
    assert_int_equal(atomic_load(&B.bad_free), 0);
    return 0;
}

static uint64_t test_seed(uint64_t dflt) {
    const char *e = getenv("IQDBT_SEED");
    return e && *e ? (uint64_t)strtoull(e, NULL, 0) : dflt;
}

/* ---- helpers ----------------------------------------------------------------------------- */

static iqdb_meta *new_meta(iqdbt_alloc *a, int with_realloc) {
    iqdb_allocator al = iqdbt_allocator(a, with_realloc);
    iqdb_meta *m = NULL;
    assert_int_equal(iqdb_meta_create(&al, &m), IQDB_OK);
    assert_non_null(m);
    return m;
}

/* 1 when a and b are the same value: same type and payload (doubles bit for bit, strings byte
 * for byte including their length). */
static int value_same(const iqdb_value *a, const iqdb_value *b) {
    if (a->type != b->type) return 0;
    switch (a->type) {
    case IQDB_TYPE_NULL: return 1;
    case IQDB_TYPE_BOOL: return a->u.b == b->u.b;
    case IQDB_TYPE_INT: return a->u.i == b->u.i;
    case IQDB_TYPE_DOUBLE: return memcmp(&a->u.d, &b->u.d, sizeof(double)) == 0;
    case IQDB_TYPE_STRING:
        return a->u.s.len == b->u.s.len &&
               (a->u.s.len == 0 || memcmp(a->u.s.ptr, b->u.s.ptr, a->u.s.len) == 0);
    }
    return 0;
}

/* Asserts that a and b hold the same entries in the same order. */
static void assert_meta_same(const iqdb_meta *a, const iqdb_meta *b, const char *id) {
    size_t n = iqdb_meta_count(a);
    if (n != iqdb_meta_count(b)) {
        print_error("%s: count %zu, expected %zu\n", id, n, iqdb_meta_count(b));
        fail();
    }
    for (size_t i = 0; i < n; i++) {
        const char *ka, *kb;
        iqdb_value va, vb;
        assert_int_equal(iqdb_meta_at(a, i, &ka, &va), IQDB_OK);
        assert_int_equal(iqdb_meta_at(b, i, &kb, &vb), IQDB_OK);
        if (strcmp(ka, kb) != 0 || !value_same(&va, &vb)) {
            print_error("%s: entry %zu differs (key '%s', expected '%s')\n", id, i, ka, kb);
            fail();
        }
    }
}

/* A copy of m built through the public API, on allocator B. */
static iqdb_meta *snapshot(const iqdb_meta *m) {
    iqdb_meta *c = new_meta(&B, 1);
    for (size_t i = 0; i < iqdb_meta_count(m); i++) {
        const char *k;
        iqdb_value v;
        assert_int_equal(iqdb_meta_at(m, i, &k, &v), IQDB_OK);
        assert_int_equal(iqdb_meta_set(c, k, v), IQDB_OK);
    }
    return c;
}

/* Asserts that `key` holds exactly `want`. */
static void assert_holds(const iqdb_meta *m, const char *key, iqdb_value want) {
    iqdb_value v;
    int rc = iqdb_meta_get(m, key, &v);
    if (rc != IQDB_OK || !value_same(&v, &want)) {
        print_error("key '%s': rc %d type %d, expected type %d\n", key, rc, (int)v.type,
                    (int)want.type);
        fail();
    }
}

/* Unsigned byte order of two NUL-terminated keys. */
static int bytes_cmp(const char *a, const char *b) {
    const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;
    while (*x && *x == *y) x++, y++;
    return (*x > *y) - (*x < *y);
}

/* A metadata object on allocator `a` with n entries "key00".. of mixed types. */
static iqdb_meta *make_mixed(iqdbt_alloc *a, int with_realloc, size_t n) {
    iqdb_meta *m = new_meta(a, with_realloc);
    for (size_t i = 0; i < n; i++) {
        char key[32], s[64];
        snprintf(key, sizeof key, "key%02zu", i);
        switch (i % 5) {
        case 0: assert_int_equal(iqdb_meta_set_int(m, key, (int64_t)i * -1000003), IQDB_OK); break;
        case 1: assert_int_equal(iqdb_meta_set_double(m, key, (double)i / 3), IQDB_OK); break;
        case 2:
            snprintf(s, sizeof s, "string value number %zu", i);
            assert_int_equal(iqdb_meta_set_string(m, key, s), IQDB_OK);
            break;
        case 3: assert_int_equal(iqdb_meta_set_bool(m, key, (int)(i & 8)), IQDB_OK); break;
        default: assert_int_equal(iqdb_meta_set_null(m, key), IQDB_OK); break;
        }
    }
    return m;
}

/* ---- create / destroy -------------------------------------------------------------------- */

/* iqdb_meta_create: an empty object whose bytes go through the given allocator; NULL and an
 * all-zero allocator mean libc; out NULL is misuse; a half-set allocator is invalid (*out NULL,
 * nothing allocated). */
static void test_meta_create(void **state) {
    (void)state;
    iqdb_allocator al = iqdbt_allocator(&A, 1);
    iqdb_meta *m = NULL;
    assert_int_equal(iqdb_meta_create(&al, &m), IQDB_OK);
    assert_non_null(m);
    assert_int_equal(iqdb_meta_count(m), 0);
    assert_true(atomic_load(&A.live) > 0); /* the object itself is on A */
    iqdb_meta_destroy(m);
    assert_int_equal(atomic_load(&A.live), 0);

    /* NULL and all-zero allocators: libc, nothing through A */
    long long before = atomic_load(&A.count);
    iqdb_allocator zero;
    memset(&zero, 0, sizeof zero);
    assert_int_equal(iqdb_meta_create(NULL, &m), IQDB_OK);
    assert_int_equal(iqdb_meta_set_string(m, "k", "v"), IQDB_OK);
    assert_int_equal(iqdb_meta_count(m), 1);
    iqdb_meta_destroy(m);
    assert_int_equal(iqdb_meta_create(&zero, &m), IQDB_OK);
    assert_int_equal(iqdb_meta_set_int(m, "k", 1), IQDB_OK);
    iqdb_meta_destroy(m);
    assert_int_equal(atomic_load(&A.count), before);

    /* errors */
    assert_int_equal(iqdb_meta_create(&al, NULL), IQDB_MISUSE);
    assert_true(strlen(iqdb_errmsg(NULL)) > 0);
    iqdb_allocator halves[3] = {al, al, zero};
    halves[0].free_fn = NULL;                /* alloc without free */
    halves[1].alloc_fn = NULL;               /* free without alloc */
    halves[1].realloc_fn = NULL;             /* ... */
    halves[2].realloc_fn = iqdbt_realloc_fn; /* realloc alone */
    for (int i = 0; i < 3; i++) {
        m = (iqdb_meta *)&m; /* must be overwritten with NULL */
        int rc = iqdb_meta_create(&halves[i], &m);
        if (rc != IQDB_INVALID) print_error("half allocator %d: got %d\n", i, rc);
        assert_int_equal(rc, IQDB_INVALID);
        assert_null(m);
        assert_true(strlen(iqdb_errmsg(NULL)) > 0);
    }
    assert_int_equal(atomic_load(&A.count), before);
}

/* iqdb_meta_destroy: NULL is a no-op; destroying a large object with strings of every size, on
 * an allocator without realloc, frees every byte with its exact size. */
static void test_meta_destroy(void **state) {
    (void)state;
    iqdb_meta_destroy(NULL);
    iqdb_meta *m = new_meta(&A, 0);
    char *s = malloc(5000);
    memset(s, 'x', 5000);
    for (size_t i = 0; i < IQDB_MAX_META_ENTRIES; i++) {
        char key[32];
        snprintf(key, sizeof key, "k%zu", i);
        assert_int_equal(iqdb_meta_set(m, key, iqdb_strn(s, (i * 37) % 5000)), IQDB_OK);
    }
    assert_int_equal(iqdb_meta_count(m), IQDB_MAX_META_ENTRIES);
    assert_true(atomic_load(&A.live) > 1000000);
    iqdb_meta_destroy(m);
    assert_int_equal(atomic_load(&A.live), 0);
    assert_int_equal(atomic_load(&A.blocks), 0);
    assert_int_equal(atomic_load(&A.bad_free), 0);
    free(s);
}

/* ---- set / get ---------------------------------------------------------------------------- */

/* iqdb_meta_set stores a copy of a value of every type, extremes included (INT64_MIN/MAX, -0.0
 * with its sign, +-inf, the empty string); the caller's buffer may change afterwards. */
static void test_meta_set_get_types(void **state) {
    (void)state;
    iqdb_meta *m = new_meta(&A, 1);
    char buf[8] = "hello";
    struct {
        const char *key;
        iqdb_value v;
    } e[] = {
        {"n", iqdb_null()},
        {"t", iqdb_bool(1)},
        {"f", iqdb_bool(0)},
        {"imin", iqdb_int(INT64_MIN)},
        {"imax", iqdb_int(INT64_MAX)},
        {"zero", iqdb_int(0)},
        {"negz", iqdb_double(-0.0)},
        {"pinf", iqdb_double(INFINITY)},
        {"ninf", iqdb_double(-INFINITY)},
        {"tiny", iqdb_double(4.9406564584124654e-324)},
        {"s", iqdb_strn(buf, 5)},
        {"e", iqdb_strn("", 0)},
    };
    const size_t n = sizeof e / sizeof e[0];
    for (size_t i = 0; i < n; i++) assert_int_equal(iqdb_meta_set(m, e[i].key, e[i].v), IQDB_OK);
    memcpy(buf, "HELLO", 5); /* the stored copy must not see this */
    e[10].v = iqdb_strn("hello", 5);
    assert_int_equal(iqdb_meta_count(m), n);
    for (size_t i = 0; i < n; i++) assert_holds(m, e[i].key, e[i].v);
    double d = 1;
    assert_int_equal(iqdb_meta_get_double(m, "negz", &d), IQDB_OK);
    assert_true(d == 0.0 && signbit(d));
    const char *s = NULL;
    size_t len = 99;
    assert_int_equal(iqdb_meta_get_string(m, "e", &s, &len), IQDB_OK);
    assert_non_null(s);
    assert_int_equal(len, 0);
    assert_int_equal(s[0], '\0');
    iqdb_meta_destroy(m);
}

typedef struct bad_set {
    const char *id;
    int null_m;
    const char *key;
    iqdb_value v;
    int want;
} bad_set;

/* Bad input to iqdb_meta_set: NULL object or key is misuse; empty key, a 256-byte key, NaN,
 * a string over IQDB_MAX_STRING_LEN, a NULL pointer with a length, an unknown type are invalid,
 * also when they would replace an existing key. Every failure leaves the object unchanged and
 * allocates nothing. */
static void test_meta_set_bad_input(void **state) {
    (void)state;
    char k256[257];
    memset(k256, 'k', 256);
    k256[256] = '\0';
    char *big = malloc(IQDB_MAX_STRING_LEN + 1);
    memset(big, 'b', IQDB_MAX_STRING_LEN + 1);
    iqdb_value bad_type = iqdb_null(), bad_type2 = iqdb_null();
    bad_type.type = (iqdb_type)5;
    bad_type2.type = (iqdb_type)99;
    const bad_set cases[] = {
        {"1.null_m", 1, "a", iqdb_int(1), IQDB_MISUSE},
        {"2.null_key", 0, NULL, iqdb_int(1), IQDB_MISUSE},
        {"3.empty_key", 0, "", iqdb_int(1), IQDB_INVALID},
        {"4.key_256", 0, k256, iqdb_int(1), IQDB_INVALID},
        {"5.nan", 0, "x", iqdb_double(NAN), IQDB_INVALID},
        {"6.neg_nan", 0, "x", iqdb_double(-NAN), IQDB_INVALID},
        {"7.string_too_long", 0, "x", iqdb_strn(big, IQDB_MAX_STRING_LEN + 1), IQDB_INVALID},
        {"8.null_ptr_len", 0, "x", iqdb_strn(NULL, 1), IQDB_INVALID},
        {"9.type_5", 0, "x", bad_type, IQDB_INVALID},
        {"10.type_99", 0, "x", bad_type2, IQDB_INVALID},
        {"11.replace_nan", 0, "a", iqdb_double(NAN), IQDB_INVALID},
        {"12.replace_long", 0, "s", iqdb_strn(big, IQDB_MAX_STRING_LEN + 1), IQDB_INVALID},
        {"13.replace_null_ptr", 0, "s", iqdb_strn(NULL, 7), IQDB_INVALID},
        {"14.replace_type", 0, "a", bad_type2, IQDB_INVALID},
    };
    iqdb_meta *m = new_meta(&A, 1);
    assert_int_equal(iqdb_meta_set_int(m, "a", 1), IQDB_OK);
    assert_int_equal(iqdb_meta_set_string(m, "s", "text"), IQDB_OK);
    iqdb_meta *snap = snapshot(m);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        long long live = atomic_load(&A.live), count = atomic_load(&A.count);
        int rc = iqdb_meta_set(cases[i].null_m ? NULL : m, cases[i].key, cases[i].v);
        if (rc != cases[i].want)
            print_error("case %s: got %d want %d\n", cases[i].id, rc, cases[i].want);
        assert_int_equal(rc, cases[i].want);
        assert_true(strlen(iqdb_errmsg(NULL)) > 0);
        assert_meta_same(m, snap, cases[i].id);
        assert_int_equal(atomic_load(&A.live), live);
        assert_int_equal(atomic_load(&A.count), count);
    }
    iqdb_meta_destroy(snap);
    iqdb_meta_destroy(m);
    free(big);
}

/* Key length: 1 and 255 bytes are accepted and read back; 256 bytes and far longer are
 * refused. */
static void test_meta_key_length(void **state) {
    (void)state;
    iqdb_meta *m = new_meta(&A, 1);
    char key[10001];
    memset(key, 'q', sizeof key - 1);
    key[10000] = '\0';
    key[IQDB_MAX_KEY_LEN] = '\0'; /* 255 bytes */
    assert_int_equal(iqdb_meta_set_int(m, key, 255), IQDB_OK);
    assert_int_equal(iqdb_meta_set_int(m, "q", 1), IQDB_OK);
    const char *k;
    iqdb_value v;
    assert_int_equal(iqdb_meta_at(m, 1, &k, &v), IQDB_OK); /* "q" sorts first */
    assert_int_equal(strlen(k), IQDB_MAX_KEY_LEN);
    assert_string_equal(k, key);
    assert_int_equal(v.u.i, 255);
    key[IQDB_MAX_KEY_LEN] = 'q'; /* 256 bytes */
    key[IQDB_MAX_KEY_LEN + 1] = '\0';
    assert_int_equal(iqdb_meta_set_int(m, key, 256), IQDB_INVALID);
    key[IQDB_MAX_KEY_LEN + 1] = 'q'; /* 10000 bytes */
    assert_int_equal(iqdb_meta_set_int(m, key, 10000), IQDB_INVALID);
    assert_int_equal(iqdb_meta_count(m), 2);
    iqdb_meta_destroy(m);
}

/* String values: exactly IQDB_MAX_STRING_LEN bytes is accepted, one more is refused; a NULL
 * pointer with length 0 is the empty string; embedded zero bytes and every byte value round-trip
 * with their length, and the stored copy is NUL-terminated. */
static void test_meta_string_values(void **state) {
    (void)state;
    iqdb_meta *m = new_meta(&A, 0);
    char *big = malloc(IQDB_MAX_STRING_LEN + 1);
    for (size_t i = 0; i <= IQDB_MAX_STRING_LEN; i++) big[i] = (char)('a' + i % 26);
    assert_int_equal(iqdb_meta_set(m, "big", iqdb_strn(big, IQDB_MAX_STRING_LEN)), IQDB_OK);
    assert_int_equal(iqdb_meta_set(m, "bigger", iqdb_strn(big, IQDB_MAX_STRING_LEN + 1)),
                     IQDB_INVALID);
    const char *s;
    size_t len;
    assert_int_equal(iqdb_meta_get_string(m, "big", &s, &len), IQDB_OK);
    assert_int_equal(len, IQDB_MAX_STRING_LEN);
    assert_memory_equal(s, big, IQDB_MAX_STRING_LEN);
    assert_int_equal(s[len], '\0');
    assert_true(s != big); /* a copy */

    assert_int_equal(iqdb_meta_set(m, "nullptr", iqdb_strn(NULL, 0)), IQDB_OK);
    assert_int_equal(iqdb_meta_get_string(m, "nullptr", &s, &len), IQDB_OK);
    assert_non_null(s);
    assert_int_equal(len, 0);

    static const char zeros[5] = {'\0', 'a', '\0', 'b', '\0'};
    assert_int_equal(iqdb_meta_set(m, "zeros", iqdb_strn(zeros, 5)), IQDB_OK);
    assert_int_equal(iqdb_meta_get_string(m, "zeros", &s, &len), IQDB_OK);
    assert_int_equal(len, 5);
    assert_memory_equal(s, zeros, 5);
    assert_int_equal(s[5], '\0');
    iqdb_value v;
    assert_int_equal(iqdb_meta_get(m, "zeros", &v), IQDB_OK);
    assert_int_equal(v.type, IQDB_TYPE_STRING);
    assert_int_equal(v.u.s.len, 5);

    char all[256];
    for (int i = 0; i < 256; i++) all[i] = (char)(255 - i);
    assert_int_equal(iqdb_meta_set(m, "all", iqdb_strn(all, 256)), IQDB_OK);
    assert_holds(m, "all", iqdb_strn(all, 256));
    free(big);
    iqdb_meta_destroy(m);
}

/* Setting an existing key replaces its value (and type) without growing the count or leaking
 * the old string; setting a key from a value that points into the same object is safe. */
static void test_meta_replace(void **state) {
    (void)state;
    iqdb_meta *m = new_meta(&A, 1);
    assert_int_equal(iqdb_meta_set_int(m, "k", 1), IQDB_OK);
    long long live_int = atomic_load(&A.live);
    char s[1000];
    memset(s, 'z', sizeof s);
    assert_int_equal(iqdb_meta_set(m, "k", iqdb_strn(s, sizeof s)), IQDB_OK);
    assert_int_equal(iqdb_meta_count(m), 1);
    assert_true(atomic_load(&A.live) > live_int + 999);
    assert_holds(m, "k", iqdb_strn(s, sizeof s));
    assert_int_equal(iqdb_meta_set_double(m, "k", 2.5), IQDB_OK);
    assert_int_equal(atomic_load(&A.live), live_int); /* the string was freed */
    assert_holds(m, "k", iqdb_double(2.5));
    assert_int_equal(iqdb_meta_set_null(m, "k"), IQDB_OK);
    assert_holds(m, "k", iqdb_null());
    assert_int_equal(iqdb_meta_count(m), 1);

    /* self-aliasing: the value read from m is the source of a set on m */
    assert_int_equal(iqdb_meta_set_string(m, "k", "aliased string"), IQDB_OK);
    iqdb_value v;
    assert_int_equal(iqdb_meta_get(m, "k", &v), IQDB_OK);
    assert_int_equal(iqdb_meta_set(m, "k", v), IQDB_OK); /* same key: copy before free */
    assert_holds(m, "k", iqdb_str("aliased string"));
    assert_int_equal(iqdb_meta_get(m, "k", &v), IQDB_OK);
    assert_int_equal(iqdb_meta_set(m, "j", v), IQDB_OK); /* another key: insert moves entries */
    assert_holds(m, "j", iqdb_str("aliased string"));
    assert_holds(m, "k", iqdb_str("aliased string"));
    assert_int_equal(iqdb_meta_count(m), 2);
    iqdb_meta_destroy(m);
}

/* At IQDB_MAX_META_ENTRIES entries a new key is refused (object unchanged), replacing an
 * existing key still works, and after a removal a new key fits again. */
static void test_meta_entry_limit(void **state) {
    (void)state;
    iqdb_meta *m = new_meta(&A, 1);
    char key[32];
    for (unsigned i = 0; i < IQDB_MAX_META_ENTRIES; i++) {
        snprintf(key, sizeof key, "k%04u", i);
        assert_int_equal(iqdb_meta_set_int(m, key, i), IQDB_OK);
    }
    assert_int_equal(iqdb_meta_count(m), IQDB_MAX_META_ENTRIES);
    iqdb_meta *snap = snapshot(m);
    assert_int_equal(iqdb_meta_set_int(m, "new", 1), IQDB_INVALID);
    assert_int_equal(iqdb_meta_set_string(m, "a-first", "x"), IQDB_INVALID);
    assert_true(strlen(iqdb_errmsg(NULL)) > 0);
    assert_meta_same(m, snap, "limit");
    iqdb_value v;
    assert_int_equal(iqdb_meta_get(m, "new", &v), IQDB_NOTFOUND);
    /* replace at the limit */
    assert_int_equal(iqdb_meta_set_string(m, "k0500", "replaced"), IQDB_OK);
    assert_int_equal(iqdb_meta_set_null(m, "k1023"), IQDB_OK);
    assert_int_equal(iqdb_meta_count(m), IQDB_MAX_META_ENTRIES);
    assert_holds(m, "k0500", iqdb_str("replaced"));
    assert_holds(m, "k1023", iqdb_null());
    /* remove one: a new key fits, the next one does not */
    int existed = 0;
    assert_int_equal(iqdb_meta_remove(m, "k0000", &existed), IQDB_OK);
    assert_int_equal(existed, 1);
    assert_int_equal(iqdb_meta_set_int(m, "new", 7), IQDB_OK);
    assert_int_equal(iqdb_meta_set_int(m, "new2", 8), IQDB_INVALID);
    assert_int_equal(iqdb_meta_count(m), IQDB_MAX_META_ENTRIES);
    assert_holds(m, "new", iqdb_int(7));
    iqdb_meta_destroy(snap);
    iqdb_meta_destroy(m);
}

/* Entries are kept in unsigned byte order of their keys (shorter prefix first, upper case
 * before lower case, bytes >= 0x80 last), whatever the insertion order; also for 500 random
 * keys. */
static void test_meta_key_order(void **state) {
    (void)state;
    const char *inserted[] = {"b",  "a", "ab", "B", "\xc3\xa9", "\x7f", "a\x01",
                              "aa", "_", "0",  "A", "ba",       "\xff", "a\x7f"};
    const char *expect[] = {"0",  "A",     "B", "_",  "a",    "a\x01",    "aa",
                            "ab", "a\x7f", "b", "ba", "\x7f", "\xc3\xa9", "\xff"};
    const size_t n = sizeof inserted / sizeof inserted[0];
    iqdb_meta *m = new_meta(&A, 1);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(iqdb_meta_set_int(m, inserted[i], (int64_t)i), IQDB_OK);
    assert_int_equal(iqdb_meta_count(m), n);
    for (size_t i = 0; i < n; i++) {
        const char *k;
        iqdb_value v;
        assert_int_equal(iqdb_meta_at(m, i, &k, &v), IQDB_OK);
        if (strcmp(k, expect[i]) != 0) {
            print_error("position %zu: key 0x%02x..., expected 0x%02x...\n", i, (unsigned char)k[0],
                        (unsigned char)expect[i][0]);
            fail();
        }
    }
    iqdb_meta_destroy(m);

    uint64_t seed = test_seed(4242);
    printf("key order: seed %llu\n", (unsigned long long)seed);
    iqdbt_rng r = {seed};
    m = new_meta(&A, 0);
    for (int i = 0; i < 500; i++) {
        char key[9];
        size_t len = 1 + iqdbt_next(&r) % 8;
        for (size_t j = 0; j < len; j++) key[j] = (char)(1 + iqdbt_next(&r) % 255);
        key[len] = '\0';
        assert_int_equal(iqdb_meta_set_int(m, key, i), IQDB_OK);
    }
    for (size_t i = 1; i < iqdb_meta_count(m); i++) {
        const char *a, *b;
        iqdb_value v;
        assert_int_equal(iqdb_meta_at(m, i - 1, &a, &v), IQDB_OK);
        assert_int_equal(iqdb_meta_at(m, i, &b, &v), IQDB_OK);
        assert_true(bytes_cmp(a, b) < 0);
    }
    iqdb_meta_destroy(m);
}

/* The shorthands store what their constructor makes: set_bool normalises to 0/1 (and so does
 * iqdb_meta_set of a raw BOOL value); NULL object, NULL key or NULL string are misuse; NaN and
 * empty key are invalid; failures leave the object unchanged. */
static void test_meta_set_shorthands(void **state) {
    (void)state;
    iqdb_meta *m = new_meta(&A, 1);
    assert_int_equal(iqdb_meta_set_null(m, "n"), IQDB_OK);
    assert_int_equal(iqdb_meta_set_bool(m, "t", 42), IQDB_OK);
    assert_int_equal(iqdb_meta_set_bool(m, "f", 0), IQDB_OK);
    assert_int_equal(iqdb_meta_set_int(m, "i", INT64_MIN), IQDB_OK);
    assert_int_equal(iqdb_meta_set_double(m, "d", 1.25), IQDB_OK);
    assert_int_equal(iqdb_meta_set_double(m, "inf", -INFINITY), IQDB_OK);
    assert_int_equal(iqdb_meta_set_string(m, "s", "str"), IQDB_OK);
    iqdb_value raw = iqdb_null();
    raw.type = IQDB_TYPE_BOOL;
    raw.u.b = 7;
    assert_int_equal(iqdb_meta_set(m, "raw", raw), IQDB_OK);
    assert_holds(m, "n", iqdb_null());
    assert_holds(m, "t", iqdb_bool(1));
    assert_holds(m, "f", iqdb_bool(0));
    assert_holds(m, "i", iqdb_int(INT64_MIN));
    assert_holds(m, "d", iqdb_double(1.25));
    assert_holds(m, "inf", iqdb_double(-INFINITY));
    assert_holds(m, "s", iqdb_str("str"));
    iqdb_value v;
    assert_int_equal(iqdb_meta_get(m, "raw", &v), IQDB_OK);
    assert_int_equal(v.type, IQDB_TYPE_BOOL);
    assert_int_equal(v.u.b, 1);
    assert_int_equal(iqdb_meta_get(m, "t", &v), IQDB_OK);
    assert_int_equal(v.u.b, 1);

    iqdb_meta *snap = snapshot(m);
    assert_int_equal(iqdb_meta_set_null(NULL, "x"), IQDB_MISUSE);
    assert_int_equal(iqdb_meta_set_bool(NULL, "x", 1), IQDB_MISUSE);
    assert_int_equal(iqdb_meta_set_int(NULL, "x", 1), IQDB_MISUSE);
    assert_int_equal(iqdb_meta_set_double(NULL, "x", 1), IQDB_MISUSE);
    assert_int_equal(iqdb_meta_set_string(NULL, "x", "y"), IQDB_MISUSE);
    assert_int_equal(iqdb_meta_set_null(m, NULL), IQDB_MISUSE);
    assert_int_equal(iqdb_meta_set_bool(m, NULL, 1), IQDB_MISUSE);
    assert_int_equal(iqdb_meta_set_int(m, NULL, 1), IQDB_MISUSE);
    assert_int_equal(iqdb_meta_set_double(m, NULL, 1), IQDB_MISUSE);
    assert_int_equal(iqdb_meta_set_string(m, NULL, "y"), IQDB_MISUSE);
    assert_int_equal(iqdb_meta_set_string(m, "s", NULL), IQDB_MISUSE);
    assert_int_equal(iqdb_meta_set_double(m, "d", NAN), IQDB_INVALID);
    assert_int_equal(iqdb_meta_set_int(m, "", 1), IQDB_INVALID);
    assert_int_equal(iqdb_meta_set_string(m, "", "y"), IQDB_INVALID);
    assert_meta_same(m, snap, "shorthand failures");
    iqdb_meta_destroy(snap);
    iqdb_meta_destroy(m);
}

/* ---- remove / count / at ----------------------------------------------------------------- */

/* iqdb_meta_remove: removes a present key (existed 1, order kept, its string freed); an absent,
 * empty or over-long key is not an error (existed 0); existed may be NULL; NULL object or key
 * is misuse with existed 0; removing every key and re-adding works. */
static void test_meta_remove(void **state) {
    (void)state;
    iqdb_meta *m = new_meta(&A, 1);
    assert_int_equal(iqdb_meta_set_int(m, "a", 1), IQDB_OK);
    assert_int_equal(iqdb_meta_set_string(m, "b", "a string value of some length"), IQDB_OK);
    assert_int_equal(iqdb_meta_set_int(m, "c", 3), IQDB_OK);
    long long live = atomic_load(&A.live);
    int existed = -1;
    assert_int_equal(iqdb_meta_remove(m, "b", &existed), IQDB_OK);
    assert_int_equal(existed, 1);
    assert_true(atomic_load(&A.live) < live - 29); /* key and string freed */
    assert_int_equal(iqdb_meta_count(m), 2);
    const char *k;
    iqdb_value v;
    assert_int_equal(iqdb_meta_at(m, 0, &k, &v), IQDB_OK);
    assert_string_equal(k, "a");
    assert_int_equal(iqdb_meta_at(m, 1, &k, &v), IQDB_OK);
    assert_string_equal(k, "c");
    assert_int_equal(iqdb_meta_get(m, "b", &v), IQDB_NOTFOUND);
    /* absent */
    existed = -1;
    assert_int_equal(iqdb_meta_remove(m, "b", &existed), IQDB_OK);
    assert_int_equal(existed, 0);
    existed = -1;
    assert_int_equal(iqdb_meta_remove(m, "", &existed), IQDB_OK);
    assert_int_equal(existed, 0);
    char longkey[300];
    memset(longkey, 'a', 299);
    longkey[299] = '\0';
    existed = -1;
    assert_int_equal(iqdb_meta_remove(m, longkey, &existed), IQDB_OK);
    assert_int_equal(existed, 0);
    assert_int_equal(iqdb_meta_remove(m, "zz", NULL), IQDB_OK);
    assert_int_equal(iqdb_meta_count(m), 2);
    /* misuse */
    existed = -1;
    assert_int_equal(iqdb_meta_remove(NULL, "a", &existed), IQDB_MISUSE);
    assert_int_equal(existed, 0);
    existed = -1;
    assert_int_equal(iqdb_meta_remove(m, NULL, &existed), IQDB_MISUSE);
    assert_int_equal(existed, 0);
    assert_int_equal(iqdb_meta_count(m), 2);
    /* edge: remove everything, then reuse */
    assert_int_equal(iqdb_meta_remove(m, "c", NULL), IQDB_OK);
    assert_int_equal(iqdb_meta_remove(m, "a", &existed), IQDB_OK);
    assert_int_equal(existed, 1);
    assert_int_equal(iqdb_meta_count(m), 0);
    assert_int_equal(iqdb_meta_at(m, 0, &k, &v), IQDB_NOTFOUND);
    assert_int_equal(iqdb_meta_set_int(m, "b", 9), IQDB_OK);
    assert_holds(m, "b", iqdb_int(9));
    assert_int_equal(iqdb_meta_count(m), 1);
    iqdb_meta_destroy(m);
}

/* iqdb_meta_count: 0 for NULL and for a new object; follows inserts, replaces and removes. */
static void test_meta_count(void **state) {
    (void)state;
    assert_int_equal(iqdb_meta_count(NULL), 0);
    iqdb_meta *m = new_meta(&A, 1);
    assert_int_equal(iqdb_meta_count(m), 0);
    for (int i = 0; i < 100; i++) {
        char key[32];
        snprintf(key, sizeof key, "%d", i % 40);
        assert_int_equal(iqdb_meta_set_int(m, key, i), IQDB_OK);
        assert_int_equal(iqdb_meta_count(m), (size_t)(i < 40 ? i + 1 : 40));
    }
    assert_int_equal(iqdb_meta_remove(m, "7", NULL), IQDB_OK);
    assert_int_equal(iqdb_meta_count(m), 39);
    assert_int_equal(iqdb_meta_set_int(m, "invalid", 0), IQDB_OK);
    assert_int_equal(iqdb_meta_set_double(m, "nan", NAN), IQDB_INVALID);
    assert_int_equal(iqdb_meta_count(m), 40);
    iqdb_meta_destroy(m);
}

/* iqdb_meta_at: the i-th entry in key order; i >= count is NOTFOUND (also SIZE_MAX and on an
 * empty object) with *key NULL and a NULL-type value; NULL arguments are misuse. */
static void test_meta_at(void **state) {
    (void)state;
    iqdb_meta *m = new_meta(&A, 1);
    const char *k = "sentinel";
    iqdb_value v = iqdb_int(5);
    assert_int_equal(iqdb_meta_at(m, 0, &k, &v), IQDB_NOTFOUND);
    assert_null(k);
    assert_int_equal(v.type, IQDB_TYPE_NULL);
    assert_int_equal(iqdb_meta_set_string(m, "y", "why"), IQDB_OK);
    assert_int_equal(iqdb_meta_set_int(m, "x", -3), IQDB_OK);
    assert_int_equal(iqdb_meta_at(m, 0, &k, &v), IQDB_OK);
    assert_string_equal(k, "x");
    assert_true(v.type == IQDB_TYPE_INT && v.u.i == -3);
    assert_int_equal(iqdb_meta_at(m, 1, &k, &v), IQDB_OK);
    assert_string_equal(k, "y");
    assert_true(v.type == IQDB_TYPE_STRING && v.u.s.len == 3);
    assert_memory_equal(v.u.s.ptr, "why", 4); /* NUL-terminated */
    const size_t bad[] = {2, 3, SIZE_MAX};
    for (size_t i = 0; i < 3; i++) {
        k = "sentinel";
        v = iqdb_int(5);
        assert_int_equal(iqdb_meta_at(m, bad[i], &k, &v), IQDB_NOTFOUND);
        assert_null(k);
        assert_int_equal(v.type, IQDB_TYPE_NULL);
        assert_true(strlen(iqdb_errmsg(NULL)) > 0);
    }
    k = "sentinel";
    v = iqdb_int(5);
    assert_int_equal(iqdb_meta_at(NULL, 0, &k, &v), IQDB_MISUSE);
    assert_null(k);
    assert_int_equal(v.type, IQDB_TYPE_NULL);
    assert_int_equal(iqdb_meta_at(m, 0, NULL, &v), IQDB_MISUSE);
    assert_int_equal(iqdb_meta_at(m, 0, &k, NULL), IQDB_MISUSE);
    iqdb_meta_destroy(m);
}

/* iqdb_meta_get: finds a key (a string value points into the object, NUL-terminated); an absent
 * key — also a prefix or an extension of a present one, or the empty key — is NOTFOUND with a
 * NULL-type value and a message naming the key; NULL arguments are misuse. */
static void test_meta_get(void **state) {
    (void)state;
    iqdb_meta *m = new_meta(&A, 1);
    assert_int_equal(iqdb_meta_set_string(m, "ab", "value"), IQDB_OK);
    iqdb_value v = iqdb_null();
    assert_int_equal(iqdb_meta_get(m, "ab", &v), IQDB_OK);
    assert_int_equal(v.type, IQDB_TYPE_STRING);
    assert_int_equal(v.u.s.len, 5);
    assert_memory_equal(v.u.s.ptr, "value", 6);
    const char *absent[] = {"a", "abc", "", "AB", "zz-missing"};
    for (size_t i = 0; i < 5; i++) {
        v = iqdb_int(5);
        int rc = iqdb_meta_get(m, absent[i], &v);
        if (rc != IQDB_NOTFOUND) print_error("absent '%s': got %d\n", absent[i], rc);
        assert_int_equal(rc, IQDB_NOTFOUND);
        assert_int_equal(v.type, IQDB_TYPE_NULL);
    }
    assert_non_null(strstr(iqdb_errmsg(NULL), "zz-missing"));
    v = iqdb_int(5);
    assert_int_equal(iqdb_meta_get(NULL, "ab", &v), IQDB_MISUSE);
    assert_int_equal(v.type, IQDB_TYPE_NULL);
    v = iqdb_int(5);
    assert_int_equal(iqdb_meta_get(m, NULL, &v), IQDB_MISUSE);
    assert_int_equal(v.type, IQDB_TYPE_NULL);
    assert_int_equal(iqdb_meta_get(m, "ab", NULL), IQDB_MISUSE);
    iqdb_meta_destroy(m);
}

typedef enum getter { G_BOOL, G_INT, G_DOUBLE, G_STRING } getter;

typedef struct typed_case {
    const char *id;
    getter g;
    const char *key;
    int want;
    int64_t i; /* bool / int expectation */
    double d;
    const char *s;
} typed_case;

/* The typed getters: the right type gives the value; get_double also converts an INT; another
 * type is MISMATCH and an absent key NOTFOUND, both with a zeroed output; NULL object, key or
 * output is misuse; get_string's len may be NULL. */
static void test_meta_typed_getters(void **state) {
    (void)state;
    iqdb_meta *m = new_meta(&A, 1);
    assert_int_equal(iqdb_meta_set_null(m, "n"), IQDB_OK);
    assert_int_equal(iqdb_meta_set_bool(m, "b", 1), IQDB_OK);
    assert_int_equal(iqdb_meta_set_bool(m, "f", 0), IQDB_OK);
    assert_int_equal(iqdb_meta_set_int(m, "i", -42), IQDB_OK);
    assert_int_equal(iqdb_meta_set_int(m, "big", 9007199254740993), IQDB_OK);
    assert_int_equal(iqdb_meta_set_double(m, "d", 2.5), IQDB_OK);
    assert_int_equal(iqdb_meta_set_string(m, "s", "str"), IQDB_OK);
    const typed_case cases[] = {
        {"1.bool", G_BOOL, "b", IQDB_OK, 1, 0, NULL},
        {"2.bool_false", G_BOOL, "f", IQDB_OK, 0, 0, NULL},
        {"3.bool_on_int", G_BOOL, "i", IQDB_MISMATCH, 0, 0, NULL},
        {"4.bool_on_null", G_BOOL, "n", IQDB_MISMATCH, 0, 0, NULL},
        {"5.bool_on_string", G_BOOL, "s", IQDB_MISMATCH, 0, 0, NULL},
        {"6.bool_absent", G_BOOL, "zz", IQDB_NOTFOUND, 0, 0, NULL},
        {"7.int", G_INT, "i", IQDB_OK, -42, 0, NULL},
        {"8.int_big", G_INT, "big", IQDB_OK, 9007199254740993, 0, NULL},
        {"9.int_on_double", G_INT, "d", IQDB_MISMATCH, 0, 0, NULL},
        {"10.int_on_bool", G_INT, "b", IQDB_MISMATCH, 0, 0, NULL},
        {"11.int_on_string", G_INT, "s", IQDB_MISMATCH, 0, 0, NULL},
        {"12.int_absent", G_INT, "zz", IQDB_NOTFOUND, 0, 0, NULL},
        {"13.double", G_DOUBLE, "d", IQDB_OK, 0, 2.5, NULL},
        {"14.double_from_int", G_DOUBLE, "i", IQDB_OK, 0, -42.0, NULL},
        {"15.double_from_big_int", G_DOUBLE, "big", IQDB_OK, 0, 9007199254740992.0, NULL},
        {"16.double_on_bool", G_DOUBLE, "b", IQDB_MISMATCH, 0, 0, NULL},
        {"17.double_on_null", G_DOUBLE, "n", IQDB_MISMATCH, 0, 0, NULL},
        {"18.double_on_string", G_DOUBLE, "s", IQDB_MISMATCH, 0, 0, NULL},
        {"19.double_absent", G_DOUBLE, "zz", IQDB_NOTFOUND, 0, 0, NULL},
        {"20.string", G_STRING, "s", IQDB_OK, 0, 0, "str"},
        {"21.string_on_int", G_STRING, "i", IQDB_MISMATCH, 0, 0, NULL},
        {"22.string_on_null", G_STRING, "n", IQDB_MISMATCH, 0, 0, NULL},
        {"23.string_on_bool", G_STRING, "b", IQDB_MISMATCH, 0, 0, NULL},
        {"24.string_absent", G_STRING, "zz", IQDB_NOTFOUND, 0, 0, NULL},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const typed_case *t = &cases[c];
        int b = 7, rc = -1;
        int64_t i = 7;
        double d = 7;
        const char *s = "sentinel";
        size_t len = 7;
        int ok_value = 0;
        switch (t->g) {
        case G_BOOL:
            rc = iqdb_meta_get_bool(m, t->key, &b);
            ok_value = b == (int)t->i;
            break;
        case G_INT:
            rc = iqdb_meta_get_int(m, t->key, &i);
            ok_value = i == t->i;
            break;
        case G_DOUBLE:
            rc = iqdb_meta_get_double(m, t->key, &d);
            ok_value = d == t->d;
            break;
        case G_STRING:
            rc = iqdb_meta_get_string(m, t->key, &s, &len);
            ok_value = t->s ? s && len == strlen(t->s) && strcmp(s, t->s) == 0 : !s && len == 0;
            break;
        }
        if (rc != t->want || !ok_value)
            print_error("case %s: rc %d want %d, value %s\n", t->id, rc, t->want,
                        ok_value ? "ok" : "wrong");
        assert_int_equal(rc, t->want);
        assert_true(ok_value);
        if (rc) assert_true(strlen(iqdb_errmsg(NULL)) > 0);
    }
    /* len may be NULL */
    const char *s = NULL;
    assert_int_equal(iqdb_meta_get_string(m, "s", &s, NULL), IQDB_OK);
    assert_string_equal(s, "str");
    /* misuse, with outputs zeroed where given */
    int b = 7;
    int64_t i = 7;
    double d = 7;
    size_t len = 7;
    assert_int_equal(iqdb_meta_get_bool(NULL, "b", &b), IQDB_MISUSE);
    assert_int_equal(b, 0);
    assert_int_equal(iqdb_meta_get_bool(m, NULL, &b), IQDB_MISUSE);
    assert_int_equal(iqdb_meta_get_bool(m, "b", NULL), IQDB_MISUSE);
    assert_int_equal(iqdb_meta_get_int(NULL, "i", &i), IQDB_MISUSE);
    assert_int_equal(i, 0);
    assert_int_equal(iqdb_meta_get_int(m, NULL, &i), IQDB_MISUSE);
    assert_int_equal(iqdb_meta_get_int(m, "i", NULL), IQDB_MISUSE);
    assert_int_equal(iqdb_meta_get_double(NULL, "d", &d), IQDB_MISUSE);
    assert_true(d == 0);
    assert_int_equal(iqdb_meta_get_double(m, NULL, &d), IQDB_MISUSE);
    assert_int_equal(iqdb_meta_get_double(m, "d", NULL), IQDB_MISUSE);
    s = "sentinel";
    assert_int_equal(iqdb_meta_get_string(NULL, "s", &s, &len), IQDB_MISUSE);
    assert_null(s);
    assert_int_equal(len, 0);
    assert_int_equal(iqdb_meta_get_string(m, NULL, &s, &len), IQDB_MISUSE);
    assert_int_equal(iqdb_meta_get_string(m, "s", NULL, &len), IQDB_MISUSE);
    iqdb_meta_destroy(m);
}

/* ---- allocation failure ------------------------------------------------------------------ */

/* Fails allocation n = 1, 2, ... of iqdb_meta_set(m, key, v) until the call succeeds; every
 * failure must be IQDB_NOMEM with the object and the live bytes unchanged. */
static void oom_set(const char *id, int with_realloc, int persistent, size_t prefill,
                    const char *key, iqdb_value v) {
    iqdb_meta *m = new_meta(&A, with_realloc);
    for (size_t i = 0; i < prefill; i++) {
        char k[32];
        snprintf(k, sizeof k, "p%zu", i);
        assert_int_equal(iqdb_meta_set_int(m, k, (int64_t)i), IQDB_OK);
    }
    iqdb_meta *snap = snapshot(m);
    int existed = iqdb_meta_get(m, key, &(iqdb_value){IQDB_TYPE_NULL, {0}}) == IQDB_OK;
    long long live0 = atomic_load(&A.live);
    long long n;
    for (n = 1;; n++) {
        iqdbt_fail_after(&A, n, persistent);
        int rc = iqdb_meta_set(m, key, v);
        int failed = atomic_load(&A.failed);
        iqdbt_fail_off(&A);
        if (!failed) {
            assert_int_equal(rc, IQDB_OK);
            break;
        }
        if (rc != IQDB_NOMEM) print_error("%s: allocation %lld failed, got %d\n", id, n, rc);
        assert_int_equal(rc, IQDB_NOMEM);
        assert_true(strlen(iqdb_errmsg(NULL)) > 0);
        assert_int_equal(atomic_load(&A.live), live0);
        assert_meta_same(m, snap, id);
        assert_true(n < 64);
    }
    assert_true(n > 1); /* at least one allocation was failed */
    assert_holds(m, key, v);
    assert_int_equal(iqdb_meta_count(m), iqdb_meta_count(snap) + (existed ? 0 : 1));
    iqdb_meta_destroy(snap);
    iqdb_meta_destroy(m);
}

/* iqdb_meta_set under allocation failure at every allocation (new key with and without growing
 * the entry array, replacing a string), transient and persistent, with and without realloc. */
static void test_meta_oom_set(void **state) {
    (void)state;
    char id[64];
    for (int wr = 0; wr < 2; wr++)
        for (int pers = 0; pers < 2; pers++) {
            snprintf(id, sizeof id, "new_string_grow/r%d/p%d", wr, pers);
            oom_set(id, wr, pers, 8, "q", iqdb_str("a string value"));
            snprintf(id, sizeof id, "first_int/r%d/p%d", wr, pers);
            oom_set(id, wr, pers, 0, "a", iqdb_int(1));
            snprintf(id, sizeof id, "new_no_grow/r%d/p%d", wr, pers);
            oom_set(id, wr, pers, 9, "a", iqdb_double(0.5));
            snprintf(id, sizeof id, "replace_string/r%d/p%d", wr, pers);
            oom_set(id, wr, pers, 9, "p3", iqdb_strn("x\0y", 3));
            snprintf(id, sizeof id, "middle_insert/r%d/p%d", wr, pers);
            oom_set(id, wr, pers, 16, "p10a", iqdb_strn("", 0));
        }
}

/* iqdb_meta_create under allocation failure: IQDB_NOMEM, *out NULL, nothing leaked, until it
 * succeeds. */
static void test_meta_oom_create(void **state) {
    (void)state;
    iqdb_allocator al = iqdbt_allocator(&A, 1);
    long long n;
    for (n = 1;; n++) {
        iqdb_meta *m = (iqdb_meta *)&n;
        iqdbt_fail_after(&A, n, 1);
        int rc = iqdb_meta_create(&al, &m);
        int failed = atomic_load(&A.failed);
        iqdbt_fail_off(&A);
        if (!failed) {
            assert_int_equal(rc, IQDB_OK);
            assert_non_null(m);
            iqdb_meta_destroy(m);
            break;
        }
        assert_int_equal(rc, IQDB_NOMEM);
        assert_null(m);
        assert_true(strlen(iqdb_errmsg(NULL)) > 0);
        assert_int_equal(atomic_load(&A.live), 0);
        assert_true(n < 16);
    }
    assert_true(n > 1);
}

/* ---- key dictionary ---------------------------------------------------------------------- */

/* The key dictionary interns 5000 keys (and a 255-byte one) with distinct ids below its size;
 * interning again and growing keep every id; lookups respect the length; absent keys are
 * IQDB__NO_KEY; its memory figure equals the bytes it holds; destroy frees everything. */
static void test_meta_keydict_intern(void **state) {
    (void)state;
    iqdb_allocator al = iqdbt_allocator(&A, 1);
    iqdb__mem mem;
    iqdb__mem_init(&mem, &al);
    iqdb__keydict d;
    iqdb__keydict_init(&d, &mem);
    assert_int_equal(iqdb__keydict_find(&d, "a", 1), IQDB__NO_KEY);
    enum { N = 5000 };
    uint32_t *ids = malloc(N * sizeof *ids);
    unsigned char *seen = calloc(N + 1, 1);
    char key[300];
    for (unsigned i = 0; i < N; i++) {
        snprintf(key, sizeof key, "k%u", i);
        ids[i] = IQDB__NO_KEY;
        assert_int_equal(iqdb__keydict_intern(&d, key, strlen(key), &ids[i]), IQDB_OK);
        assert_true(ids[i] < d.n);
        assert_int_equal(seen[ids[i]], 0);
        seen[ids[i]] = 1;
        if (i == 100) /* early ids are stable across every later growth */
            for (unsigned j = 0; j <= i; j++) {
                snprintf(key, sizeof key, "k%u", j);
                assert_int_equal(iqdb__keydict_find(&d, key, strlen(key)), ids[j]);
            }
    }
    assert_int_equal(d.n, N);
    memset(key, 'L', 255);
    uint32_t long_id;
    assert_int_equal(iqdb__keydict_intern(&d, key, 255, &long_id), IQDB_OK);
    assert_int_equal(long_id, N);
    assert_int_equal(d.n, N + 1);
    for (unsigned i = 0; i < N; i++) {
        snprintf(key, sizeof key, "k%u", i);
        size_t len = strlen(key);
        uint32_t again;
        assert_int_equal(iqdb__keydict_intern(&d, key, len, &again), IQDB_OK);
        assert_int_equal(again, ids[i]);
        assert_int_equal(iqdb__keydict_find(&d, key, len), ids[i]);
        assert_int_equal(d.lens[ids[i]], len);
        assert_string_equal(d.names[ids[i]], key);
    }
    assert_int_equal(d.n, N + 1); /* nothing new */
    /* length-respecting lookups: "k123" with length 2 is "k1" */
    assert_int_equal(iqdb__keydict_find(&d, "k123", 2), ids[1]);
    assert_int_equal(iqdb__keydict_find(&d, "k4999x", 5), ids[4999]);
    memset(key, 'L', 256);
    assert_int_equal(iqdb__keydict_find(&d, key, 255), long_id);
    assert_int_equal(iqdb__keydict_find(&d, key, 254), IQDB__NO_KEY);
    for (unsigned i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "x%u", i);
        assert_int_equal(iqdb__keydict_find(&d, key, strlen(key)), IQDB__NO_KEY);
        snprintf(key, sizeof key, "k%u", N + i);
        assert_int_equal(iqdb__keydict_find(&d, key, strlen(key)), IQDB__NO_KEY);
    }
    assert_int_equal(iqdb__keydict_find(&d, "k", 1), IQDB__NO_KEY);
    assert_int_equal(iqdb__keydict_mem(&d), atomic_load(&mem.live));
    iqdb__keydict_destroy(&d);
    assert_int_equal(atomic_load(&mem.live), 0);
    assert_int_equal(atomic_load(&A.live), 0);
    free(ids);
    free(seen);
}

/* ---- blobs -------------------------------------------------------------------------------- */

/* A random value; string bytes are written to buf (room for 6000). */
static iqdb_value rand_value(iqdbt_rng *r, char *buf) {
    uint64_t k = iqdbt_next(r);
    switch (k % 5) {
    case 0: return iqdb_null();
    case 1: return iqdb_bool((int)(k >> 8) & 1);
    case 2: {
        static const int64_t special[] = {0, 1, -1, INT64_MIN, INT64_MAX, 63, -64, 64, -65};
        uint64_t c = (k >> 8) % 4;
        if (c == 0) return iqdb_int(special[(k >> 16) % 9]);
        if (c == 1) return iqdb_int((int64_t)((k >> 16) % 201) - 100);
        return iqdb_int((int64_t)iqdbt_next(r));
    }
    case 3: {
        static const double special[] = {
            0.0, -0.0, INFINITY, -INFINITY, 4.9406564584124654e-324, 1.7976931348623157e308,
            0.1, -2.5};
        if ((k >> 8) % 3 == 0) return iqdb_double(special[(k >> 16) % 8]);
        for (;;) {
            uint64_t u = iqdbt_next(r);
            double d;
            memcpy(&d, &u, sizeof d);
            if (!isnan(d)) return iqdb_double(d);
        }
    }
    default: {
        size_t len =
            (k >> 8) % 16 == 0 ? 200 + (size_t)((k >> 16) % 5800) : (size_t)((k >> 16) % 24);
        for (size_t i = 0; i < len; i++)
            buf[i] = (char)(iqdbt_next(r) % 4 == 0 ? 0 : iqdbt_next(r));
        return iqdb_strn(buf, len);
    }
    }
}

/* The name of key number `i` of the random pool (400 keys, some odd). */
static void pool_key(unsigned i, char *key) {
    switch (i) {
    case 0: memset(key, 'z', 255), key[255] = '\0'; break;
    case 1: strcpy(key, "\xff\xfe"); break;
    case 2: strcpy(key, "a b.c-d"); break;
    case 3: strcpy(key, "K"); break;
    default: sprintf(key, "k%u", i * 7919u % 1000u); break;
    }
}

/* Asserts that every truncation of the blob (and the blob plus one byte of garbage, and the
 * blob checked against a dictionary one key too small when it uses the last key) is refused.
 * Small blobs are copied into exact-size buffers so an over-read is caught by ASan. */
static void assert_truncations_refused(const uint8_t *blob, uint32_t len, size_t n_keys,
                                       const char *id) {
    for (uint32_t t = 0; t < len; t++) {
        int rc;
        if (len <= 2048) {
            uint8_t *c = malloc(t ? t : 1);
            memcpy(c, blob, t);
            rc = iqdb__meta_blob_check(c, t, n_keys);
            free(c);
        } else {
            rc = iqdb__meta_blob_check(blob, t, n_keys);
        }
        if (rc != IQDB_CORRUPT) {
            print_error("%s: truncation to %u of %u bytes accepted\n", id, t, len);
            fail();
        }
    }
    uint8_t *g = malloc(len + 1);
    memcpy(g, blob, len);
    g[len] = 0;
    assert_int_equal(iqdb__meta_blob_check(g, len + 1, n_keys), IQDB_CORRUPT);
    free(g);
}

/* Random metadata (seeded) through the blob layer: encode -> decode equals the original and
 * re-encodes to the same bytes; the check accepts every blob and refuses every truncation and a
 * trailing byte; iqdb__blob_find finds every key with its value and no other key id. */
static void test_meta_blob_roundtrip_random(void **state) {
    (void)state;
    uint64_t seed = test_seed(20240611);
    printf("blob round trip: seed %llu\n", (unsigned long long)seed);
    iqdbt_rng r = {seed};
    iqdb_allocator al = iqdbt_allocator(&A, 1);
    iqdb__mem mem;
    iqdb__mem_init(&mem, &al);
    iqdb__keydict d;
    iqdb__keydict_init(&d, &mem);
    char *buf = malloc(6000), key[256], id[64];
    for (int round = 0; round < 400; round++) {
        snprintf(id, sizeof id, "seed %llu round %d", (unsigned long long)seed, round);
        iqdb_meta *m = new_meta(&B, round & 1);
        size_t n = round % 100 == 7 ? IQDB_MAX_META_ENTRIES : (size_t)(iqdbt_next(&r) % 41);
        for (size_t i = 0; i < n; i++) {
            unsigned k =
                n == IQDB_MAX_META_ENTRIES ? (unsigned)i + 4000 : (unsigned)(iqdbt_next(&r) % 400);
            if (k >= 4000)
                sprintf(key, "big%u", k);
            else
                pool_key(k, key);
            assert_int_equal(iqdb_meta_set(m, key, rand_value(&r, buf)), IQDB_OK);
        }
        uint8_t *blob = (uint8_t *)buf;
        uint32_t len = 12345;
        assert_int_equal(iqdb__meta_encode(m, &d, &mem, &blob, &len), IQDB_OK);
        if (iqdb_meta_count(m) == 0) {
            assert_null(blob);
            assert_int_equal(len, 0);
            iqdb_meta_destroy(m);
            continue;
        }
        assert_non_null(blob);
        if (iqdb__meta_blob_check(blob, len, d.n) != IQDB_OK) {
            print_error("%s: encoded blob refused\n", id);
            fail();
        }
        assert_truncations_refused(blob, len, d.n, id);
        iqdb_meta *back = NULL;
        assert_int_equal(iqdb__meta_decode(blob, len, &d, &mem, &back), IQDB_OK);
        assert_non_null(back);
        assert_meta_same(back, m, id);
        uint8_t *blob2;
        uint32_t len2;
        assert_int_equal(iqdb__meta_encode(back, &d, &mem, &blob2, &len2), IQDB_OK);
        assert_int_equal(len2, len);
        assert_memory_equal(blob2, blob, len);
        iqdb__free(&mem, blob2, len2);
        /* blob_find: every key with its value, no other id */
        unsigned char *present = calloc(d.n, 1);
        for (size_t i = 0; i < iqdb_meta_count(m); i++) {
            const char *k;
            iqdb_value want, got = iqdb_null();
            assert_int_equal(iqdb_meta_at(m, i, &k, &want), IQDB_OK);
            uint32_t kid = iqdb__keydict_find(&d, k, strlen(k));
            assert_true(kid < d.n);
            present[kid] = 1;
            if (iqdb__blob_find(blob, len, kid, &got) != 1 || !value_same(&got, &want)) {
                print_error("%s: key '%s' (id %u) not found with its value\n", id, k, kid);
                fail();
            }
        }
        for (uint32_t kid = 0; kid < d.n; kid++) {
            if (present[kid]) continue;
            iqdb_value got;
            if (iqdb__blob_find(blob, len, kid, &got) != 0) {
                print_error("%s: absent key id %u found\n", id, kid);
                fail();
            }
        }
        iqdb_value got;
        assert_int_equal(iqdb__blob_find(blob, len, (uint32_t)d.n, &got), 0);
        assert_int_equal(iqdb__blob_find(blob, len, IQDB__NO_KEY - 1, &got), 0);
        free(present);
        iqdb__free(&mem, blob, len);
        iqdb_meta_destroy(back);
        iqdb_meta_destroy(m);
    }
    iqdb__keydict_destroy(&d);
    assert_int_equal(atomic_load(&mem.live), 0);
    free(buf);
}

/* Fills a stretch of stack below the caller with non-zero bytes, so that a callee reading an
 * uninitialised local sees garbage rather than a lucky zero. */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((noinline))
#endif
static void
paint_stack(void) {
    volatile unsigned char junk[16384];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = 0xa5;
}

/* No metadata: encoding NULL or an empty object gives no blob (NULL, 0) and interns nothing; the
 * check accepts (NULL, 0) and refuses NULL with a length; decoding (NULL, 0) gives no entries
 * (the stack is painted first so that the result cannot depend on what the stack held). */
static void test_meta_blob_empty(void **state) {
    (void)state;
    iqdb_allocator al = iqdbt_allocator(&A, 1);
    iqdb__mem mem;
    iqdb__mem_init(&mem, &al);
    iqdb__keydict d;
    iqdb__keydict_init(&d, &mem);
    uint8_t *blob = (uint8_t *)&d;
    uint32_t len = 5;
    assert_int_equal(iqdb__meta_encode(NULL, &d, &mem, &blob, &len), IQDB_OK);
    assert_null(blob);
    assert_int_equal(len, 0);
    iqdb_meta *m = new_meta(&A, 1);
    assert_int_equal(iqdb_meta_set_int(m, "gone", 1), IQDB_OK);
    assert_int_equal(iqdb_meta_remove(m, "gone", NULL), IQDB_OK);
    blob = (uint8_t *)&d;
    len = 5;
    assert_int_equal(iqdb__meta_encode(m, &d, &mem, &blob, &len), IQDB_OK);
    assert_null(blob);
    assert_int_equal(len, 0);
    assert_int_equal(d.n, 0);
    assert_int_equal(iqdb__meta_blob_check(NULL, 0, 0), IQDB_OK);
    assert_int_equal(iqdb__meta_blob_check(NULL, 3, 5), IQDB_CORRUPT);
    iqdb_value v;
    assert_int_equal(iqdb__blob_find(NULL, 0, 0, &v), 0);
    iqdb_meta *out = (iqdb_meta *)&d;
    paint_stack();
    assert_int_equal(iqdb__meta_decode(NULL, 0, &d, &mem, &out), IQDB_OK);
    assert_int_equal(iqdb_meta_count(out), 0); /* NULL (no metadata) or an empty object */
    iqdb_meta_destroy(out);
    iqdb_meta_destroy(m);
    iqdb__keydict_destroy(&d);
}

/* The blob layout of meta.h, byte for byte: entry count, key-id deltas in id order (not key
 * order), tags, zigzag varints (INT64_MIN takes all 10 bytes), little-endian doubles, length-
 * prefixed strings with their zero bytes, multi-byte deltas. */
static void test_meta_blob_layout(void **state) {
    (void)state;
    iqdb_allocator al = iqdbt_allocator(&A, 1);
    iqdb__mem mem;
    iqdb__mem_init(&mem, &al);
    iqdb__keydict d;
    iqdb__keydict_init(&d, &mem);
    uint32_t id;
    const char *order[] = {"z", "a", "c", "b"}; /* ids 0..3 in this order */
    for (uint32_t i = 0; i < 4; i++) {
        assert_int_equal(iqdb__keydict_intern(&d, order[i], 1, &id), IQDB_OK);
        assert_int_equal(id, i);
    }
    for (uint32_t i = 4; i < 200; i++) {
        char key[32];
        snprintf(key, sizeof key, "pad%u", i);
        assert_int_equal(iqdb__keydict_intern(&d, key, strlen(key), &id), IQDB_OK);
        assert_int_equal(id, i);
    }
    iqdb_meta *m = new_meta(&A, 1);
    assert_int_equal(iqdb_meta_set_bool(m, "z", 0), IQDB_OK);               /* id 0 */
    assert_int_equal(iqdb_meta_set_int(m, "a", -1), IQDB_OK);               /* id 1 */
    assert_int_equal(iqdb_meta_set(m, "c", iqdb_strn("h\0i", 3)), IQDB_OK); /* id 2 */
    assert_int_equal(iqdb_meta_set_double(m, "b", 1.5), IQDB_OK);           /* id 3 */
    assert_int_equal(iqdb_meta_set_int(m, "pad150", INT64_MIN), IQDB_OK);   /* id 150 */
    assert_int_equal(iqdb_meta_set_null(m, "pad199"), IQDB_OK);             /* id 199 */
    assert_int_equal(iqdb_meta_set_bool(m, "new", 1), IQDB_OK);             /* interned: id 200 */
    static const uint8_t want[] = {
        0x07,                                                       /* 7 entries */
        0x00, 0x01,                                                 /* z: id 0, false */
        0x01, 0x03, 0x01,                                           /* a: +1, int, zigzag(-1) = 1 */
        0x01, 0x05, 0x03, 'h',  0x00, 'i',                          /* c: +1, string of 3 bytes */
        0x01, 0x04, 0,    0,    0,    0,    0,    0,    0xf8, 0x3f, /* b: +1, double 1.5 LE */
        0x93, 0x01, 0x03,                                           /* pad150: +147, int */
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, /* zigzag(INT64_MIN) */
        0x31, 0x00,                                                 /* pad199: +49, null */
        0x01, 0x02,                                                 /* new: +1 (id 200), true */
    };
    uint8_t *blob;
    uint32_t len;
    assert_int_equal(iqdb__meta_encode(m, &d, &mem, &blob, &len), IQDB_OK);
    assert_int_equal(iqdb__keydict_find(&d, "new", 3), 200);
    assert_int_equal(len, sizeof want);
    assert_memory_equal(blob, want, sizeof want);
    assert_int_equal(iqdb__meta_blob_check(blob, len, d.n), IQDB_OK);
    assert_int_equal(iqdb__meta_blob_check(blob, len, 200), IQDB_CORRUPT); /* id 200 too big */
    iqdb_value v;
    assert_int_equal(iqdb__blob_find(blob, len, 150, &v), 1);
    assert_true(v.type == IQDB_TYPE_INT && v.u.i == INT64_MIN);
    assert_int_equal(iqdb__blob_find(blob, len, 2, &v), 1);
    assert_true(v.type == IQDB_TYPE_STRING && v.u.s.len == 3);
    assert_true(v.u.s.ptr == (const char *)blob + 9); /* points into the blob */
    iqdb__free(&mem, blob, len);
    iqdb_meta_destroy(m);
    iqdb__keydict_destroy(&d);
}

typedef struct blob_case {
    const char *id;
    uint8_t bytes[24];
    uint32_t len;
    size_t n_keys;
    int want;
} blob_case;

/* Hand-made blobs against the structural check and decode: each corrupt one (zero entries,
 * non-increasing key ids, key id >= dictionary size, unknown tag, missing tag, string past the
 * end or over the limit, truncated int / double, NaN double, varints longer than 10 bytes or
 * overflowing 64 bits, too many entries, trailing garbage) is IQDB_CORRUPT, next to a valid
 * sibling that is accepted. */
static void test_meta_blob_check_corrupt(void **state) {
    (void)state;
    const blob_case cases[] = {
        {"1.ok_null", {1, 0, 0}, 3, 4, IQDB_OK},
        {"2.zero_entries", {0}, 1, 4, IQDB_CORRUPT},
        {"3.zero_entries_padded", {0, 0, 0}, 3, 4, IQDB_CORRUPT},
        {"4.ok_two", {2, 0, 0, 1, 2}, 5, 4, IQDB_OK},
        {"5.key_delta_zero", {2, 1, 0, 0, 0}, 5, 4, IQDB_CORRUPT},
        {"6.ok_last_key", {1, 3, 0}, 3, 4, IQDB_OK},
        {"7.key_id_eq_dict", {1, 4, 0}, 3, 4, IQDB_CORRUPT},
        {"8.key_sum_past_dict", {2, 2, 0, 2, 0}, 5, 4, IQDB_CORRUPT},
        {"9.key_delta_huge", {2, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0}, 9, 4, IQDB_CORRUPT},
        {"10.key_delta_wraps",
         {2, 1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0},
         14,
         4,
         IQDB_CORRUPT},
        {"11.empty_dict", {1, 0, 0}, 3, 0, IQDB_CORRUPT},
        {"12.tag_6", {1, 0, 6}, 3, 4, IQDB_CORRUPT},
        {"13.tag_ff", {1, 0, 0xff}, 3, 4, IQDB_CORRUPT},
        {"14.missing_tag", {1, 0}, 2, 4, IQDB_CORRUPT},
        {"15.ok_string", {1, 0, 5, 2, 'a', 'b'}, 6, 4, IQDB_OK},
        {"16.string_past_end", {1, 0, 5, 3, 'a', 'b'}, 6, 4, IQDB_CORRUPT},
        {"17.string_len_missing", {1, 0, 5}, 3, 4, IQDB_CORRUPT},
        {"18.string_over_limit", {1, 0, 5, 0x81, 0x80, 0x80, 0x01, 'a'}, 8, 4, IQDB_CORRUPT},
        {"19.ok_int", {1, 0, 3, 0x80, 0x01}, 5, 4, IQDB_OK},
        {"20.int_truncated", {1, 0, 3, 0x80}, 4, 4, IQDB_CORRUPT},
        {"21.ok_double_inf", {1, 0, 4, 0, 0, 0, 0, 0, 0, 0xf0, 0x7f}, 11, 4, IQDB_OK},
        {"22.double_short", {1, 0, 4, 0, 0, 0, 0, 0, 0, 0xf0}, 10, 4, IQDB_CORRUPT},
        {"23.double_nan", {1, 0, 4, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f}, 11, 4, IQDB_CORRUPT},
        {"24.double_neg_nan", {1, 0, 4, 1, 0, 0, 0, 0, 0, 0xf0, 0xff}, 11, 4, IQDB_CORRUPT},
        {"25.ok_varint_10_bytes",
         {1, 0, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
         13,
         4,
         IQDB_OK},
        {"26.varint_10_bytes_overflow",
         {1, 0, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02},
         13,
         4,
         IQDB_CORRUPT},
        {"27.varint_11_bytes_int",
         {1, 0, 3, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00},
         14,
         4,
         IQDB_CORRUPT},
        {"28.varint_11_bytes_count",
         {0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0, 0},
         13,
         4,
         IQDB_CORRUPT},
        {"29.varint_11_bytes_key",
         {1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0},
         13,
         4,
         IQDB_CORRUPT},
        {"30.count_1025", {0x81, 0x08, 0, 0}, 4, 4, IQDB_CORRUPT},
        {"31.count_more_than_present", {2, 0, 0}, 3, 4, IQDB_CORRUPT},
        {"32.trailing_garbage", {1, 0, 0, 0}, 4, 4, IQDB_CORRUPT},
        {"33.trailing_garbage_string", {1, 0, 5, 1, 'a', 'b'}, 6, 4, IQDB_CORRUPT},
        {"34.empty_non_null", {0}, 0, 4, IQDB_CORRUPT},
    };
    iqdb_allocator al = iqdbt_allocator(&A, 1);
    iqdb__mem mem;
    iqdb__mem_init(&mem, &al);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const blob_case *t = &cases[c];
        uint8_t *b = malloc(t->len ? t->len : 1); /* exact size: ASan catches over-reads */
        memcpy(b, t->bytes, t->len);
        int rc = iqdb__meta_blob_check(b, t->len, t->n_keys);
        if (rc != t->want) print_error("case %s: check gave %d want %d\n", t->id, rc, t->want);
        assert_int_equal(rc, t->want);
        /* decode agrees, against a dictionary of exactly n_keys keys */
        iqdb__keydict d;
        iqdb__keydict_init(&d, &mem);
        for (size_t k = 0; k < t->n_keys; k++) {
            char key[24];
            uint32_t id;
            snprintf(key, sizeof key, "k%zu", k);
            assert_int_equal(iqdb__keydict_intern(&d, key, strlen(key), &id), IQDB_OK);
        }
        iqdb_meta *out = (iqdb_meta *)&d;
        rc = iqdb__meta_decode(b, t->len, &d, &mem, &out);
        if (rc != t->want) print_error("case %s: decode gave %d want %d\n", t->id, rc, t->want);
        assert_int_equal(rc, t->want);
        if (rc == IQDB_OK)
            assert_non_null(out);
        else
            assert_null(out);
        iqdb_meta_destroy(out);
        iqdb__keydict_destroy(&d);
        free(b);
    }
    /* the entry limit exactly: 1024 entries accepted, 1025 refused */
    for (unsigned n = IQDB_MAX_META_ENTRIES; n <= IQDB_MAX_META_ENTRIES + 1; n++) {
        uint8_t *b = malloc(2 + 2 * (size_t)n);
        b[0] = (uint8_t)(0x80 | (n & 0x7f));
        b[1] = (uint8_t)(n >> 7);
        for (unsigned i = 0; i < n; i++) {
            b[2 + 2 * i] = i ? 1 : 0; /* key delta */
            b[3 + 2 * i] = 0;         /* null */
        }
        int rc = iqdb__meta_blob_check(b, 2 + 2 * n, n);
        if (n == IQDB_MAX_META_ENTRIES)
            assert_int_equal(rc, IQDB_OK);
        else
            assert_int_equal(rc, IQDB_CORRUPT);
        free(b);
    }
}

/* iqdb__blob_find on a hand-made blob with key ids 1, 3, 7: each is found with its value (a
 * string points into the blob); ids 0, 2, 4..6, 8 and beyond are not; a NULL blob has none. */
static void test_meta_blob_find(void **state) {
    (void)state;
    static const uint8_t blob[] = {3, 1, 3, 0x0a, 2, 5, 1, 'x', 4, 0};
    assert_int_equal(iqdb__meta_blob_check(blob, sizeof blob, 8), IQDB_OK);
    iqdb_value v = iqdb_null();
    assert_int_equal(iqdb__blob_find(blob, sizeof blob, 1, &v), 1);
    assert_true(v.type == IQDB_TYPE_INT && v.u.i == 5);
    assert_int_equal(iqdb__blob_find(blob, sizeof blob, 3, &v), 1);
    assert_true(v.type == IQDB_TYPE_STRING && v.u.s.len == 1);
    assert_ptr_equal(v.u.s.ptr, (const char *)blob + 7);
    v = iqdb_int(1);
    assert_int_equal(iqdb__blob_find(blob, sizeof blob, 7, &v), 1);
    assert_int_equal(v.type, IQDB_TYPE_NULL);
    const uint32_t absent[] = {0, 2, 4, 5, 6, 8, 1000, IQDB__NO_KEY};
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++)
        assert_int_equal(iqdb__blob_find(blob, sizeof blob, absent[i], &v), 0);
    assert_int_equal(iqdb__blob_find(NULL, 0, 1, &v), 0);
}

/* iqdb__meta_encode under allocation failure at every allocation (dictionary growth, key names,
 * the blob): IQDB_NOMEM with no blob, the object unchanged, the dictionary still consistent
 * (earlier ids kept, every interned key findable) and nothing leaked once it is destroyed; a
 * fresh dictionary per attempt with persistent failure, then one shared dictionary with
 * transient failures. */
static void test_meta_oom_encode(void **state) {
    (void)state;
    iqdb_meta *m = make_mixed(&A, 1, 40);
    iqdb_meta *snap = snapshot(m);
    long long live0 = atomic_load(&A.live);
    iqdb_allocator al = iqdbt_allocator(&A, 1);
    long long n;
    for (n = 1;; n++) {
        iqdb__mem mem;
        iqdb__mem_init(&mem, &al);
        iqdb__keydict d;
        iqdb__keydict_init(&d, &mem);
        uint32_t pre[5];
        for (int i = 0; i < 5; i++) {
            char key[32];
            snprintf(key, sizeof key, "pre%d", i);
            assert_int_equal(iqdb__keydict_intern(&d, key, strlen(key), &pre[i]), IQDB_OK);
        }
        uint8_t *blob = (uint8_t *)&n;
        uint32_t len = 77;
        iqdbt_fail_after(&A, n, 1);
        int rc = iqdb__meta_encode(m, &d, &mem, &blob, &len);
        int failed = atomic_load(&A.failed);
        iqdbt_fail_off(&A);
        if (!failed) {
            assert_int_equal(rc, IQDB_OK);
            iqdb_meta *back;
            assert_int_equal(iqdb__meta_decode(blob, len, &d, &mem, &back), IQDB_OK);
            assert_meta_same(back, m, "oom encode result");
            iqdb_meta_destroy(back);
            iqdb__free(&mem, blob, len);
            iqdb__keydict_destroy(&d);
            break;
        }
        if (rc != IQDB_NOMEM) print_error("encode: allocation %lld failed, got %d\n", n, rc);
        assert_int_equal(rc, IQDB_NOMEM);
        assert_null(blob);
        assert_int_equal(len, 0);
        for (int i = 0; i < 5; i++) {
            char key[32];
            snprintf(key, sizeof key, "pre%d", i);
            assert_int_equal(iqdb__keydict_find(&d, key, strlen(key)), pre[i]);
        }
        for (uint32_t i = 0; i < d.n; i++)
            assert_int_equal(iqdb__keydict_find(&d, d.names[i], d.lens[i]), i);
        assert_meta_same(m, snap, "oom encode");
        iqdb__keydict_destroy(&d);
        assert_int_equal(atomic_load(&mem.live), 0);
        assert_int_equal(atomic_load(&A.live), live0);
        assert_true(n < 1000);
    }
    assert_true(n > 1);

    /* one dictionary across transient failures */
    iqdb__mem mem;
    iqdb__mem_init(&mem, &al);
    iqdb__keydict d;
    iqdb__keydict_init(&d, &mem);
    for (n = 1;; n++) {
        uint8_t *blob;
        uint32_t len;
        iqdbt_fail_after(&A, n, 0);
        int rc = iqdb__meta_encode(m, &d, &mem, &blob, &len);
        int failed = atomic_load(&A.failed);
        iqdbt_fail_off(&A);
        if (rc == IQDB_OK) {
            iqdb_meta *back;
            assert_int_equal(iqdb__meta_decode(blob, len, &d, &mem, &back), IQDB_OK);
            assert_meta_same(back, m, "oom encode shared");
            iqdb_meta_destroy(back);
            iqdb__free(&mem, blob, len);
            if (!failed) break;
            continue;
        }
        assert_true(failed);
        assert_int_equal(rc, IQDB_NOMEM);
        assert_null(blob);
        for (uint32_t i = 0; i < d.n; i++)
            assert_int_equal(iqdb__keydict_find(&d, d.names[i], d.lens[i]), i);
        assert_true(n < 1000);
    }
    assert_int_equal(iqdb__keydict_mem(&d), atomic_load(&mem.live));
    iqdb__keydict_destroy(&d);
    assert_int_equal(atomic_load(&A.live), live0);
    iqdb_meta_destroy(snap);
    iqdb_meta_destroy(m);
}

/* iqdb__meta_decode under allocation failure at every allocation, transient and persistent:
 * IQDB_NOMEM, *out NULL, nothing leaked; then it succeeds with the original entries. */
static void test_meta_oom_decode(void **state) {
    (void)state;
    iqdb_meta *m = make_mixed(&B, 1, 40);
    iqdb_allocator al = iqdbt_allocator(&A, 0);
    iqdb__mem mem;
    iqdb__mem_init(&mem, &al);
    iqdb__keydict d;
    iqdb__keydict_init(&d, &mem);
    uint8_t *blob;
    uint32_t len;
    assert_int_equal(iqdb__meta_encode(m, &d, &mem, &blob, &len), IQDB_OK);
    long long live0 = atomic_load(&A.live);
    for (int pers = 0; pers < 2; pers++) {
        long long n;
        for (n = 1;; n++) {
            iqdb_meta *out = (iqdb_meta *)&n;
            iqdbt_fail_after(&A, n, pers);
            int rc = iqdb__meta_decode(blob, len, &d, &mem, &out);
            int failed = atomic_load(&A.failed);
            iqdbt_fail_off(&A);
            if (!failed) {
                assert_int_equal(rc, IQDB_OK);
                assert_meta_same(out, m, "oom decode result");
                iqdb_meta_destroy(out);
                break;
            }
            if (rc != IQDB_NOMEM)
                print_error("decode (persistent %d): allocation %lld failed, got %d\n", pers, n,
                            rc);
            assert_int_equal(rc, IQDB_NOMEM);
            assert_null(out);
            assert_int_equal(atomic_load(&A.live), live0);
            assert_true(n < 1000);
        }
        assert_true(n > 40); /* at least one allocation per entry was failed */
    }
    iqdb__free(&mem, blob, len);
    iqdb__keydict_destroy(&d);
    iqdb_meta_destroy(m);
}

int main(void) {
    iqdbt_simd_gate();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_meta_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta_destroy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta_set_get_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta_set_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta_key_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta_string_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta_entry_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta_key_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta_set_shorthands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta_at, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta_typed_getters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta_oom_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta_oom_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta_keydict_intern, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta_blob_roundtrip_random, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta_blob_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta_blob_check_corrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta_blob_find, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta_oom_encode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta_oom_decode, setup, teardown),
        /* last: a crash here (a read through the NULL blob) ends the process under UBSan */
        cmocka_unit_test_setup_teardown(test_meta_blob_empty, setup, teardown),
    };
    return cmocka_run_group_tests_name("meta", tests, NULL, NULL);
}
