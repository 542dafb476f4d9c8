/*
 * test_keys.c — records named by byte keys beside u64 ids: the keyed twins of upsert,
 * upsert_batch, get and delete; search hits that carry key handles (plain, filtered, batched);
 * iqdb_hit_key and its lifetime rule; keys with zero bytes and bytes that are not UTF-8; the
 * length limits; a model-checked churn test; iqdb_check catching a broken key map; stats; and
 * durable round trips (checkpoint, WAL replay). Runs once per SIMD level with the counting
 * allocator (teardown: nothing leaked, every free sized right).
 */
#include "../common/testutil.h"

#include "handle.h"
#include "store/keys.h"

static iqdbt_alloc A;

enum { DIM = 4 };

static iqdb *open_mem(iqdb_metric metric) {
    iqdb_options o;
    iqdb_options_init(&o, DIM, metric);
    o.allocator = iqdbt_allocator(&A, 1);
    o.threads = 2;
    iqdb *db = NULL;
    assert_int_equal(iqdb_open(NULL, &o, &db), IQDB_OK);
    return db;
}

static int setup(void **state) {
    (void)state;
    iqdbt_alloc_reset(&A);
    return 0;
}
static int teardown(void **state) {
    (void)state;
    assert_int_equal(atomic_load(&A.live), 0);
    assert_int_equal(atomic_load(&A.bad_free), 0);
    return 0;
}

static void vec_of(float *v, float x) {
    for (int j = 0; j < DIM; j++) v[j] = x + (float)j * 0.25f;
}

static uint64_t count_of(iqdb *db) {
    uint64_t n = 0;
    assert_int_equal(iqdb_count(db, &n), IQDB_OK);
    return n;
}

/* The vector stored under key, or fails. */
static void expect_key(iqdb *db, const void *key, size_t len, float x) {
    float want[DIM], got[DIM];
    vec_of(want, x);
    int rc = iqdb_get_key(db, key, len, got, NULL);
    if (rc != IQDB_OK) print_error("key of %zu bytes: %s\n", len, iqdb_errmsg(db));
    assert_int_equal(rc, IQDB_OK);
    assert_memory_equal(want, got, sizeof want);
}

/* The u64 1 and the one-byte key 0x01 (and the 8-byte little-endian 1) are three records. */
static void test_keys_mixed_kinds(void **state) {
    (void)state;
    iqdb *db = open_mem(IQDB_METRIC_L2);
    float v[DIM];
    const uint8_t one = 1, one_le[8] = {1, 0, 0, 0, 0, 0, 0, 0};
    vec_of(v, 1);
    assert_int_equal(iqdb_upsert(db, 1, v, NULL), IQDB_OK);
    vec_of(v, 2);
    assert_int_equal(iqdb_upsert_key(db, &one, 1, v, NULL), IQDB_OK);
    vec_of(v, 3);
    assert_int_equal(iqdb_upsert_key(db, one_le, 8, v, NULL), IQDB_OK);
    assert_int_equal(count_of(db), 3);
    float got[DIM];
    assert_int_equal(iqdb_get(db, 1, got, NULL), IQDB_OK);
    assert_float_equal(got[0], 1, 0);
    expect_key(db, &one, 1, 2);
    expect_key(db, one_le, 8, 3);
    /* deleting one kind leaves the other */
    int existed = 0;
    assert_int_equal(iqdb_delete_key(db, &one, 1, &existed), IQDB_OK);
    assert_int_equal(existed, 1);
    assert_int_equal(iqdb_get(db, 1, got, NULL), IQDB_OK);
    assert_int_equal(iqdb_get_key(db, &one, 1, got, NULL), IQDB_NOTFOUND);
    assert_int_equal(iqdb_delete(db, 1, &existed), IQDB_OK);
    assert_int_equal(existed, 1);
    expect_key(db, one_le, 8, 3);
    assert_int_equal(count_of(db), 1);
    iqdb_stats s = {.struct_size = sizeof s};
    assert_int_equal(iqdb_stats_get(db, &s), IQDB_OK);
    assert_int_equal(s.keyed, 1);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    iqdb_close(db);
}

/* Upsert, replace (vector and metadata), get, delete by key; absent keys. */
static void test_keys_crud(void **state) {
    (void)state;
    iqdb *db = open_mem(IQDB_METRIC_COSINE);
    const char *doc = "docs/readme.md";
    float v[DIM];
    iqdb_meta *m;
    assert_int_equal(iqdb_meta_create(NULL, &m), IQDB_OK);
    iqdb_meta_set_string(m, "kind", "doc");
    vec_of(v, 1);
    assert_int_equal(iqdb_upsert_key(db, doc, strlen(doc), v, m), IQDB_OK);
    iqdb_meta_destroy(m);
    iqdb_meta *got = NULL;
    float out[DIM];
    assert_int_equal(iqdb_get_key(db, doc, strlen(doc), out, &got), IQDB_OK);
    const char *kind;
    size_t kl;
    assert_int_equal(iqdb_meta_get_string(got, "kind", &kind, &kl), IQDB_OK);
    assert_int_equal(kl, 3);
    iqdb_meta_destroy(got);
    /* replace: new vector, no metadata */
    vec_of(v, 5);
    assert_int_equal(iqdb_upsert_key(db, doc, strlen(doc), v, NULL), IQDB_OK);
    assert_int_equal(count_of(db), 1);
    expect_key(db, doc, strlen(doc), 5);
    assert_int_equal(iqdb_get_key(db, doc, strlen(doc), NULL, &got), IQDB_OK);
    assert_null(got);
    /* a prefix and an extension of the key are other keys */
    assert_int_equal(iqdb_get_key(db, doc, strlen(doc) - 1, NULL, NULL), IQDB_NOTFOUND);
    assert_int_equal(iqdb_get_key(db, "docs/readme.md!", 15, NULL, NULL), IQDB_NOTFOUND);
    int existed = 7;
    assert_int_equal(iqdb_delete_key(db, "nope", 4, &existed), IQDB_OK);
    assert_int_equal(existed, 0);
    assert_int_equal(iqdb_delete_key(db, doc, strlen(doc), &existed), IQDB_OK);
    assert_int_equal(existed, 1);
    assert_int_equal(iqdb_delete_key(db, doc, strlen(doc), &existed), IQDB_OK);
    assert_int_equal(existed, 0);
    assert_int_equal(count_of(db), 0);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    iqdb_close(db);
}

/* Zero bytes and bytes that are not UTF-8 are key bytes like any other. */
static void test_keys_binary_bytes(void **state) {
    (void)state;
    iqdb *db = open_mem(IQDB_METRIC_L2);
    const struct {
        const char *bytes;
        size_t len;
    } keys[] = {
        {"a", 1},        {"a\0", 2},          {"a\0b", 3},         {"a\0c", 3},
        {"\0", 1},       {"\0\0", 2},         {"\xff", 1},         {"\xfe\xff", 2},
        {"\xc3\x28", 2}, {"\xed\xa0\x80", 3}, {"\x80\x80\x80", 3}, {"a\0b\0", 4},
        {"A", 1},
    };
    size_t n = sizeof keys / sizeof keys[0];
    float v[DIM];
    for (size_t i = 0; i < n; i++) {
        vec_of(v, (float)i);
        assert_int_equal(iqdb_upsert_key(db, keys[i].bytes, keys[i].len, v, NULL), IQDB_OK);
    }
    assert_int_equal(count_of(db), n);
    for (size_t i = 0; i < n; i++) expect_key(db, keys[i].bytes, keys[i].len, (float)i);
    /* every hit gives its key back byte for byte */
    float q[DIM];
    vec_of(q, 0);
    iqdb_hit hits[16];
    size_t nh;
    assert_int_equal(iqdb_search(db, q, 16, NULL, hits, &nh, NULL), IQDB_OK);
    assert_int_equal(nh, n);
    for (size_t i = 0; i < nh; i++) {
        assert_true(iqdb_hit_has_key(&hits[i]));
        uint8_t buf[8];
        size_t len;
        assert_int_equal(iqdb_hit_key(db, &hits[i], buf, sizeof buf, &len), IQDB_OK);
        /* record i is at distance sqrt(DIM * i^2) = 2 i from the query */
        size_t want = (size_t)(hits[i].distance / 2 + 0.5f);
        assert_int_equal(len, keys[want].len);
        assert_memory_equal(buf, keys[want].bytes, len);
    }
    assert_int_equal(iqdb_check(db), IQDB_OK);
    iqdb_close(db);
}

/* 1 .. IQDB_MAX_ID_KEY_LEN bytes are keys; 0 and one past the maximum are IQDB_INVALID. */
static void test_keys_length_limits(void **state) {
    (void)state;
    iqdb *db = open_mem(IQDB_METRIC_L2);
    uint8_t *big = malloc(IQDB_MAX_ID_KEY_LEN + 1);
    for (size_t i = 0; i <= IQDB_MAX_ID_KEY_LEN; i++) big[i] = (uint8_t)(i * 31 + 7);
    float v[DIM];
    vec_of(v, 1);
    assert_int_equal(iqdb_upsert_key(db, big, IQDB_MAX_ID_KEY_LEN, v, NULL), IQDB_OK);
    assert_int_equal(iqdb_upsert_key(db, big, IQDB_MAX_ID_KEY_LEN + 1, v, NULL), IQDB_INVALID);
    assert_non_null(strstr(iqdb_errmsg(db), "outside 1..4096"));
    assert_int_equal(iqdb_upsert_key(db, big, 0, v, NULL), IQDB_INVALID);
    assert_int_equal(iqdb_get_key(db, big, IQDB_MAX_ID_KEY_LEN + 1, NULL, NULL), IQDB_INVALID);
    assert_int_equal(iqdb_get_key(db, big, 0, NULL, NULL), IQDB_INVALID);
    assert_int_equal(iqdb_delete_key(db, big, IQDB_MAX_ID_KEY_LEN + 1, NULL), IQDB_INVALID);
    assert_int_equal(iqdb_delete_key(db, big, 0, NULL), IQDB_INVALID);
    assert_int_equal(count_of(db), 1);
    expect_key(db, big, IQDB_MAX_ID_KEY_LEN, 1);
    /* the whole key comes back through a hit, and a short buffer says how much is needed */
    iqdb_hit h;
    size_t nh, len = 0;
    assert_int_equal(iqdb_search(db, v, 1, NULL, &h, &nh, NULL), IQDB_OK);
    uint8_t *buf = malloc(IQDB_MAX_ID_KEY_LEN);
    assert_int_equal(iqdb_hit_key(db, &h, buf, 10, &len), IQDB_INVALID);
    assert_int_equal(len, IQDB_MAX_ID_KEY_LEN);
    assert_int_equal(iqdb_hit_key(db, &h, NULL, 0, &len), IQDB_INVALID);
    assert_int_equal(len, IQDB_MAX_ID_KEY_LEN);
    assert_int_equal(iqdb_hit_key(db, &h, buf, IQDB_MAX_ID_KEY_LEN, &len), IQDB_OK);
    assert_memory_equal(buf, big, IQDB_MAX_ID_KEY_LEN);
    free(buf);
    free(big);
    iqdb_close(db);
}

/* The bad-input table of the keyed calls: documented codes, the database unchanged. */
static void test_keys_bad_input(void **state) {
    (void)state;
    iqdb *db = open_mem(IQDB_METRIC_L2);
    float ok[DIM], nan[DIM];
    vec_of(ok, 1);
    vec_of(nan, 1);
    nan[2] = NAN;
    assert_int_equal(iqdb_upsert_key(db, "k", 1, ok, NULL), IQDB_OK);
    const void *kp[2] = {"x", NULL};
    size_t kl[2] = {1, 1}, kl0[2] = {1, 0};
    float two[2 * DIM];
    vec_of(two, 3);
    vec_of(two + DIM, 4);
    size_t len = 9;
    iqdb_hit u64hit = {5, 0.0f, 0}, gone = {12345, 0.0f, 1}, oob = {1, 0.0f, UINT32_MAX};
    const struct {
        const char *what;
        int rc, want;
    } cases[] = {
        {"upsert_key NULL db", iqdb_upsert_key(NULL, "k", 1, ok, NULL), IQDB_MISUSE},
        {"upsert_key NULL vec", iqdb_upsert_key(db, "k", 1, NULL, NULL), IQDB_MISUSE},
        {"upsert_key NULL key", iqdb_upsert_key(db, NULL, 1, ok, NULL), IQDB_MISUSE},
        {"upsert_key NULL key len 0", iqdb_upsert_key(db, NULL, 0, ok, NULL), IQDB_INVALID},
        {"upsert_key NaN", iqdb_upsert_key(db, "k", 1, nan, NULL), IQDB_INVALID},
        {"batch_key NULL keys", iqdb_upsert_batch_key(db, 2, NULL, kl, two, NULL), IQDB_MISUSE},
        {"batch_key NULL lens", iqdb_upsert_batch_key(db, 2, kp, NULL, two, NULL), IQDB_MISUSE},
        {"batch_key NULL vecs", iqdb_upsert_batch_key(db, 2, kp, kl, NULL, NULL), IQDB_MISUSE},
        {"batch_key NULL key 1", iqdb_upsert_batch_key(db, 2, kp, kl, two, NULL), IQDB_MISUSE},
        {"batch_key empty key 1", iqdb_upsert_batch_key(db, 2, kp, kl0, two, NULL), IQDB_INVALID},
        {"batch_key n 0", iqdb_upsert_batch_key(db, 0, NULL, NULL, NULL, NULL), IQDB_OK},
        {"get_key NULL db", iqdb_get_key(NULL, "k", 1, NULL, NULL), IQDB_MISUSE},
        {"get_key NULL key", iqdb_get_key(db, NULL, 1, NULL, NULL), IQDB_MISUSE},
        {"get_key absent", iqdb_get_key(db, "kk", 2, NULL, NULL), IQDB_NOTFOUND},
        {"delete_key NULL db", iqdb_delete_key(NULL, "k", 1, NULL), IQDB_MISUSE},
        {"delete_key NULL key", iqdb_delete_key(db, NULL, 3, NULL), IQDB_MISUSE},
        {"hit_key NULL db", iqdb_hit_key(NULL, &gone, NULL, 0, &len), IQDB_MISUSE},
        {"hit_key NULL hit", iqdb_hit_key(db, NULL, NULL, 0, &len), IQDB_MISUSE},
        {"hit_key NULL len", iqdb_hit_key(db, &gone, NULL, 0, NULL), IQDB_MISUSE},
        {"hit_key NULL buf cap 4", iqdb_hit_key(db, &gone, NULL, 4, &len), IQDB_MISUSE},
        {"hit_key u64 hit", iqdb_hit_key(db, &u64hit, NULL, 0, &len), IQDB_INVALID},
        {"hit_key stale handle", iqdb_hit_key(db, &gone, NULL, 0, &len), IQDB_NOTFOUND},
        {"hit_key slot out of range", iqdb_hit_key(db, &oob, NULL, 0, &len), IQDB_NOTFOUND},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cases[i].rc != cases[i].want)
            print_error("case %zu (%s): %d, want %d\n", i, cases[i].what, cases[i].rc,
                        cases[i].want);
        assert_int_equal(cases[i].rc, cases[i].want);
    }
    assert_int_equal(len, 0);
    assert_int_equal(count_of(db), 1);
    expect_key(db, "k", 1, 1);
    assert_int_equal(iqdb_get_key(db, "x", 1, NULL, NULL), IQDB_NOTFOUND);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    iqdb_close(db);
}

/* Batches: all or nothing, later duplicates win, mixed with u64 records. */
static void test_keys_batch(void **state) {
    (void)state;
    iqdb *db = open_mem(IQDB_METRIC_L2);
    const void *keys[4] = {"a", "b\0", "a", "c"};
    size_t lens[4] = {1, 2, 1, 1};
    float v[4 * DIM];
    for (int i = 0; i < 4; i++) vec_of(v + i * DIM, (float)(10 + i));
    iqdb_meta *m;
    iqdb_meta_create(NULL, &m);
    iqdb_meta_set_int(m, "n", 3);
    const iqdb_meta *metas[4] = {NULL, NULL, m, NULL};
    assert_int_equal(iqdb_upsert(db, 7, v, NULL), IQDB_OK);
    assert_int_equal(iqdb_upsert_batch_key(db, 4, keys, lens, v, metas), IQDB_OK);
    iqdb_meta_destroy(m);
    assert_int_equal(count_of(db), 4);
    expect_key(db, "a", 1, 12); /* the later duplicate */
    expect_key(db, "b\0", 2, 11);
    expect_key(db, "c", 1, 13);
    iqdb_meta *got = NULL;
    assert_int_equal(iqdb_get_key(db, "a", 1, NULL, &got), IQDB_OK);
    int64_t x;
    assert_int_equal(iqdb_meta_get_int(got, "n", &x), IQDB_OK);
    iqdb_meta_destroy(got);
    /* a NaN in the last record: nothing of the batch applies */
    v[3 * DIM + 1] = NAN;
    const void *k2[4] = {"a", "new", "b\0", "zz"};
    assert_int_equal(iqdb_upsert_batch_key(db, 4, k2, lens, v, NULL), IQDB_INVALID);
    assert_int_equal(count_of(db), 4);
    expect_key(db, "a", 1, 12);
    assert_int_equal(iqdb_get_key(db, "new", 3, NULL, NULL), IQDB_NOTFOUND);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    iqdb_close(db);
}

/* Search hits report their kind and key, plain, filtered and batched; a key handle resolves
 * only while its version lives. */
static void test_keys_search_hits(void **state) {
    (void)state;
    iqdb *db = open_mem(IQDB_METRIC_L2);
    float v[DIM];
    char key[16];
    /* records at x = 0..19: even x named by u64 x, odd x by the key "r<x>"; tag = x % 3 */
    for (int x = 0; x < 20; x++) {
        vec_of(v, (float)x);
        iqdb_meta *m;
        iqdb_meta_create(NULL, &m);
        iqdb_meta_set_int(m, "tag", x % 3);
        if (x % 2 == 0) {
            assert_int_equal(iqdb_upsert(db, (iqdb_id)x, v, m), IQDB_OK);
        } else {
            int kl = snprintf(key, sizeof key, "r%d", x);
            assert_int_equal(iqdb_upsert_key(db, key, (size_t)kl, v, m), IQDB_OK);
        }
        iqdb_meta_destroy(m);
    }
    iqdb_filter *f;
    assert_int_equal(iqdb_filter_parse(NULL, "tag = 1", 7, &f, NULL), IQDB_OK);
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    float qs[3 * DIM];
    for (int i = 0; i < 3; i++) vec_of(qs + i * DIM, (float)(i * 7));
    for (int mode = 0; mode < 4; mode++) { /* plain, filtered, batch, batch filtered */
        p.filter = mode % 2 ? f : NULL;
        iqdb_hit hits[3][6];
        size_t nh[3];
        if (mode < 2) {
            for (int i = 0; i < 3; i++)
                assert_int_equal(iqdb_search(db, qs + i * DIM, 6, &p, hits[i], &nh[i], NULL),
                                 IQDB_OK);
        } else {
            assert_int_equal(iqdb_search_batch(db, qs, 3, 6, &p, &hits[0][0], nh), IQDB_OK);
        }
        for (int i = 0; i < 3; i++) {
            assert_int_equal(nh[i], 6);
            for (size_t j = 0; j < nh[i]; j++) {
                /* which record: the distance is 2 |x - q| (DIM = 4, all components shifted) */
                int x = 0;
                const iqdb_hit *h = &hits[i][j];
                if (iqdb_hit_has_key(h)) {
                    char buf[IQDB_MAX_ID_KEY_LEN];
                    size_t len;
                    assert_int_equal(iqdb_hit_key(db, h, buf, sizeof buf, &len), IQDB_OK);
                    assert_true(len >= 2 && buf[0] == 'r');
                    buf[len] = 0;
                    x = atoi(buf + 1);
                    assert_true(x % 2 == 1);
                } else {
                    x = (int)h->id;
                    assert_true(x % 2 == 0);
                    size_t len = 5;
                    assert_int_equal(iqdb_hit_key(db, h, NULL, 0, &len), IQDB_INVALID);
                    assert_int_equal(len, 0);
                }
                float want = 2.0f * fabsf((float)x - (float)(i * 7));
                assert_float_equal(h->distance, want, 1e-4);
                if (mode % 2) assert_int_equal(x % 3, 1);
            }
        }
    }
    iqdb_filter_destroy(f);
    /* lifetime: a handle dies with its version (delete or replace), and a reused slot does not
     * revive it under another key */
    vec_of(v, 3);
    iqdb_hit h;
    size_t nh, len;
    char buf[16];
    assert_int_equal(iqdb_search(db, v, 1, NULL, &h, &nh, NULL), IQDB_OK);
    assert_true(iqdb_hit_has_key(&h));
    assert_int_equal(iqdb_hit_key(db, &h, buf, sizeof buf, &len), IQDB_OK);
    assert_memory_equal(buf, "r3", 2);
    assert_int_equal(iqdb_upsert_key(db, "r3", 2, v, NULL), IQDB_OK); /* replaced */
    assert_int_equal(iqdb_hit_key(db, &h, buf, sizeof buf, &len), IQDB_NOTFOUND);
    assert_int_equal(len, 0);
    assert_int_equal(iqdb_search(db, v, 1, NULL, &h, &nh, NULL), IQDB_OK);
    assert_int_equal(iqdb_hit_key(db, &h, buf, sizeof buf, &len), IQDB_OK);
    assert_int_equal(iqdb_delete_key(db, "r3", 2, NULL), IQDB_OK); /* deleted */
    assert_int_equal(iqdb_hit_key(db, &h, buf, sizeof buf, &len), IQDB_NOTFOUND);
    assert_int_equal(iqdb_upsert_key(db, "other", 5, v, NULL), IQDB_OK); /* takes the slot */
    assert_int_equal(iqdb_hit_key(db, &h, buf, sizeof buf, &len), IQDB_NOTFOUND);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    iqdb_close(db);
}

/* Random upserts, replaces and deletes of many keys (and u64 ids) against a model: the map
 * grows, shifts entries back on delete, and never confuses two keys. Seeded; prints the seed. */
enum { NK = 3000 };
/* Key i: its two low bytes (so distinct i give distinct keys; many hold a zero byte), then
 * i % 7 filler bytes, so lengths vary from 2 to 8. */
static size_t churn_key(int i, uint8_t *key) {
    size_t kl = (size_t)(i % 7) + 2;
    key[0] = (uint8_t)i;
    key[1] = (uint8_t)(i >> 8);
    for (size_t b = 2; b < kl; b++) key[b] = (uint8_t)(b * 0x55);
    return kl;
}
static void test_keys_churn_model(void **state) {
    (void)state;
    uint64_t seed = 0x6b657973u;
    printf("seed %llu\n", (unsigned long long)seed);
    iqdbt_rng r = {seed};
    iqdb *db = open_mem(IQDB_METRIC_L2);
    static int model[NK];   /* key i: 0 absent, else the version */
    static int model_u[NK]; /* u64 ids 0..NK-1 */
    memset(model, 0, sizeof model);
    memset(model_u, 0, sizeof model_u);
    uint8_t key[8];
    float v[DIM];
    for (int step = 0; step < 20000; step++) {
        int i = (int)(iqdbt_next(&r) % NK), op = (int)(iqdbt_next(&r) % 10);
        size_t kl = churn_key(i, key);
        if (op < 5) {
            vec_of(v, (float)step);
            assert_int_equal(iqdb_upsert_key(db, key, kl, v, NULL), IQDB_OK);
            model[i] = step + 1;
        } else if (op < 8) {
            int existed;
            assert_int_equal(iqdb_delete_key(db, key, kl, &existed), IQDB_OK);
            assert_int_equal(existed, model[i] != 0);
            model[i] = 0;
        } else if (op < 9) {
            vec_of(v, (float)-step);
            assert_int_equal(iqdb_upsert(db, (iqdb_id)i, v, NULL), IQDB_OK);
            model_u[i] = step + 1;
        } else {
            assert_int_equal(iqdb_delete(db, (iqdb_id)i, NULL), IQDB_OK);
            model_u[i] = 0;
        }
    }
    uint64_t want = 0;
    for (int i = 0; i < NK; i++) {
        size_t kl = churn_key(i, key);
        float got[DIM];
        int rc = iqdb_get_key(db, key, kl, got, NULL);
        if (model[i]) {
            assert_int_equal(rc, IQDB_OK);
            assert_float_equal(got[0], (float)(model[i] - 1), 0);
            want++;
        } else {
            assert_int_equal(rc, IQDB_NOTFOUND);
        }
        want += model_u[i] != 0;
    }
    assert_int_equal(count_of(db), want);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    iqdb_close(db);
}

/* Zero cost: a database of u64 ids allocates nothing for keys; the first key does. iqdb_check
 * notices a key map that does not lead to its slot. */
static void test_keys_stats_and_check(void **state) {
    (void)state;
    iqdb *db = open_mem(IQDB_METRIC_L2);
    float v[DIM];
    for (iqdb_id id = 0; id < 1000; id++) {
        vec_of(v, (float)id);
        assert_int_equal(iqdb_upsert(db, id, v, NULL), IQDB_OK);
    }
    iqdb_stats s = {.struct_size = sizeof s};
    assert_int_equal(iqdb_stats_get(db, &s), IQDB_OK);
    assert_int_equal(s.mem_keys, 0);
    assert_int_equal(s.keyed, 0);
    assert_null(db->store.keys);
    uint64_t rows_before = s.mem_rows;
    assert_int_equal(iqdb_upsert_key(db, "first", 5, v, NULL), IQDB_OK);
    assert_int_equal(iqdb_stats_get(db, &s), IQDB_OK);
    assert_int_equal(s.keyed, 1);
    assert_true(s.mem_keys >= s.slots * sizeof(void *) + 9); /* column + one key block */
    assert_int_equal(s.mem_rows, rows_before);
    /* break the map: the key's hash no longer matches */
    uint32_t slot = iqdb__store_key_find(&db->store, "first", 5);
    assert_int_not_equal(slot, IQDB__NO_SLOT);
    db->store.ids[slot] ^= 1;
    assert_int_equal(iqdb_check(db), IQDB_CORRUPT);
    assert_non_null(strstr(iqdb_errmsg(db), "key map"));
    db->store.ids[slot] ^= 1;
    assert_int_equal(iqdb_check(db), IQDB_OK);
    iqdb_close(db);
}

/* ---- durable ------------------------------------------------------------------------------ */

static char dir[128], path[160];

static iqdb *open_file(void) {
    iqdb_options o;
    iqdb_options_init(&o, DIM, IQDB_METRIC_L2);
    o.allocator = iqdbt_allocator(&A, 1);
    iqdb *db = NULL;
    int rc = iqdb_open(path, &o, &db);
    if (rc) print_error("open: %s\n", iqdb_errmsg(NULL));
    assert_int_equal(rc, IQDB_OK);
    return db;
}

static void put_mixed(iqdb *db, int base) {
    float v[DIM];
    const void *keys[3] = {"\0x", "\xff\xfe", "doc/1"};
    size_t lens[3] = {2, 2, 5};
    float vs[3 * DIM];
    for (int i = 0; i < 3; i++) vec_of(vs + i * DIM, (float)(base + i));
    assert_int_equal(iqdb_upsert_batch_key(db, 3, keys, lens, vs, NULL), IQDB_OK);
    vec_of(v, (float)(base + 10));
    iqdb_meta *m;
    iqdb_meta_create(NULL, &m);
    iqdb_meta_set_string(m, "src", "keyed");
    assert_int_equal(iqdb_upsert_key(db, "\x01", 1, v, m), IQDB_OK);
    iqdb_meta_destroy(m);
    vec_of(v, (float)(base + 20));
    assert_int_equal(iqdb_upsert(db, 1, v, NULL), IQDB_OK);
}

static void expect_mixed(iqdb *db, int base) {
    assert_int_equal(count_of(db), 4); /* "\xff\xfe" deleted */
    expect_key(db, "\0x", 2, (float)base);
    expect_key(db, "doc/1", 5, (float)(base + 2));
    expect_key(db, "\x01", 1, (float)(base + 10));
    assert_int_equal(iqdb_get_key(db, "\xff\xfe", 2, NULL, NULL), IQDB_NOTFOUND);
    float got[DIM];
    assert_int_equal(iqdb_get(db, 1, got, NULL), IQDB_OK);
    assert_float_equal(got[0], (float)(base + 20), 0);
    iqdb_meta *m = NULL;
    assert_int_equal(iqdb_get_key(db, "\x01", 1, NULL, &m), IQDB_OK);
    assert_non_null(m);
    iqdb_meta_destroy(m);
    iqdb_stats s = {.struct_size = sizeof s};
    assert_int_equal(iqdb_stats_get(db, &s), IQDB_OK);
    assert_int_equal(s.keyed, 3);
    /* hits resolve to keys after a reopen too */
    float q[DIM];
    vec_of(q, (float)(base + 10));
    iqdb_hit h;
    size_t nh, len;
    uint8_t buf[8];
    assert_int_equal(iqdb_search(db, q, 1, NULL, &h, &nh, NULL), IQDB_OK);
    assert_int_equal(iqdb_hit_key(db, &h, buf, sizeof buf, &len), IQDB_OK);
    assert_int_equal(len, 1);
    assert_int_equal(buf[0], 1);
    assert_int_equal(iqdb_check(db), IQDB_OK);
}

static void copy_files(const char *from, const char *to) {
    char f[200], t[200];
    assert_int_equal(iqdbt_cp(from, to), 0);
    snprintf(f, sizeof f, "%s.wal", from);
    snprintf(t, sizeof t, "%s.wal", to);
    assert_int_equal(iqdbt_cp(f, t), 0);
}

/* Keyed records survive a checkpoint (snapshot rows) and a crash (WAL replay). */
static void test_keys_durable_round_trip(void **state) {
    (void)state;
    assert_int_equal(iqdbt_mkdtemp(dir, sizeof dir, "iqdb-keys"), 0);
    snprintf(path, sizeof path, "%s/db", dir);
    char crash[160];
    snprintf(crash, sizeof crash, "%s/crash", dir);
    /* 1. through the WAL: copy the files of an open handle (no checkpoint) and open the copy */
    iqdb *db = open_file();
    put_mixed(db, 100);
    assert_int_equal(iqdb_delete_key(db, "\xff\xfe", 2, NULL), IQDB_OK);
    expect_mixed(db, 100);
    copy_files(path, crash);
    assert_int_equal(iqdb_close(db), IQDB_OK);
    char keep[160];
    snprintf(keep, sizeof keep, "%s", path);
    snprintf(path, sizeof path, "%s", crash);
    db = open_file();
    iqdb_stats s = {.struct_size = sizeof s};
    iqdb_stats_get(db, &s);
    assert_int_equal(s.checkpoint_lsn, 0); /* everything came from the WAL */
    expect_mixed(db, 100);
    assert_int_equal(iqdb_close(db), IQDB_OK);
    /* 2. through the snapshot (close checkpointed), then more writes in the WAL on top */
    snprintf(path, sizeof path, "%s", keep);
    db = open_file();
    iqdb_stats_get(db, &s);
    assert_true(s.checkpoint_lsn > 0 && s.last_lsn == s.checkpoint_lsn);
    expect_mixed(db, 100);
    put_mixed(db, 200);
    assert_int_equal(iqdb_delete_key(db, "\xff\xfe", 2, NULL), IQDB_OK);
    copy_files(path, crash);
    assert_int_equal(iqdb_close(db), IQDB_OK);
    db = open_file();
    expect_mixed(db, 200);
    assert_int_equal(iqdb_close(db), IQDB_OK);
    snprintf(path, sizeof path, "%s", crash);
    db = open_file();
    expect_mixed(db, 200);
    assert_int_equal(iqdb_close(db), IQDB_OK);
    assert_int_equal(iqdbt_rmtree(dir), 0);
}

int main(void) {
    iqdbt_simd_gate();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_keys_mixed_kinds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_crud, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_binary_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_length_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_search_hits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_churn_model, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_stats_and_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_durable_round_trip, setup, teardown),
    };
    return cmocka_run_group_tests_name("keys", tests, NULL, NULL);
}
