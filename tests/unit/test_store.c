/*
 * test_store.c — the row store and its id map (internal modules).
 *
 * The id map against a model under random inserts and removals (backward-shift deletion must
 * keep every remaining key findable); the store's slot reuse, chunk growth across boundaries,
 * vector preservation, and failure atomicity of reserve under allocation failure.
 */
#include "../common/testutil.h"
#include "store/idmap.h"
#include "store/store.h"

static iqdbt_alloc A;

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

static void mem_for_test(iqdb__mem *m) {
    iqdb_allocator al = iqdbt_allocator(&A, 1);
    iqdb__mem_init(m, &al);
}

/* Random puts/removes against a model array; keys drawn from patterns that collide. */
static void test_store_idmap_model(void **state) {
    (void)state;
    iqdb__mem mem;
    mem_for_test(&mem);
    iqdb__idmap map;
    iqdb__idmap_init(&map, &mem);
    enum { N = 4000 };
    static uint64_t keys[N];
    static uint32_t model[N]; /* IQDB__NO_SLOT = absent */
    iqdbt_rng r = {123};
    for (size_t i = 0; i < N; i++) {
        switch (i % 4) {
        case 0: keys[i] = i; break;                 /* sequential */
        case 1: keys[i] = (uint64_t)i << 40; break; /* high bits only */
        case 2: keys[i] = UINT64_MAX - i; break;    /* near the top */
        default: keys[i] = iqdbt_next(&r); break;   /* random */
        }
        model[i] = IQDB__NO_SLOT;
    }
    printf("seed 123\n");
    for (int step = 0; step < 200000; step++) {
        size_t i = iqdbt_next(&r) % N;
        if (iqdbt_next(&r) % 3) {
            uint32_t slot = (uint32_t)(iqdbt_next(&r) % 1000000);
            assert_int_equal(iqdb__idmap_reserve(&map, 1), IQDB_OK);
            iqdb__idmap_put(&map, keys[i], slot);
            model[i] = slot;
        } else {
            uint32_t got = iqdb__idmap_remove(&map, keys[i]);
            assert_int_equal(got, model[i]);
            model[i] = IQDB__NO_SLOT;
        }
        if (step % 10000 == 0) {
            size_t live = 0;
            for (size_t j = 0; j < N; j++) {
                assert_int_equal(iqdb__idmap_find(&map, keys[j]), model[j]);
                live += model[j] != IQDB__NO_SLOT;
            }
            assert_int_equal(map.count, live);
            assert_true(map.count * 2 <= map.cap);
        }
    }
    iqdb__idmap_destroy(&map);
}

/* A failed reserve leaves the map exactly as it was. */
static void test_store_idmap_reserve_failure(void **state) {
    (void)state;
    iqdb__mem mem;
    mem_for_test(&mem);
    iqdb__idmap map;
    iqdb__idmap_init(&map, &mem);
    assert_int_equal(iqdb__idmap_find(&map, 5), IQDB__NO_SLOT); /* empty map */
    assert_int_equal(iqdb__idmap_remove(&map, 5), IQDB__NO_SLOT);
    for (uint64_t k = 0; k < 8; k++) {
        assert_int_equal(iqdb__idmap_reserve(&map, 1), IQDB_OK);
        iqdb__idmap_put(&map, k * 977, (uint32_t)k);
    }
    size_t cap = map.cap;
    iqdbt_fail_after(&A, 1, 0);
    assert_int_equal(iqdb__idmap_reserve(&map, 1000), IQDB_NOMEM);
    iqdbt_fail_off(&A);
    assert_int_equal(map.cap, cap);
    for (uint64_t k = 0; k < 8; k++) assert_int_equal(iqdb__idmap_find(&map, k * 977), k);
    iqdb__idmap_destroy(&map);
}

static void fill_vec(float *v, uint32_t dim, uint64_t id) {
    for (uint32_t j = 0; j < dim; j++) v[j] = (float)((id * 31 + j) % 97);
}

/* Slots are reused after removal, chunks grow across their boundaries, vectors survive. */
static void test_store_slots_and_chunks(void **state) {
    (void)state;
    iqdb__mem mem;
    mem_for_test(&mem);
    iqdb__store st;
    iqdb__store_init(&st, &mem, 784);
    assert_int_equal(st.stride % 16, 0);
    uint32_t rows = iqdb__store_rows_per_chunk(&st);
    assert_true(rows >= 64);
    const size_t n = (size_t)rows * 3 + 5; /* crosses three chunk boundaries */
    float v[784];
    uint32_t *slots = malloc(n * sizeof *slots);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(iqdb__store_reserve(&st, 1), IQDB_OK);
        fill_vec(v, 784, i);
        slots[i] = iqdb__store_add(&st, i, v, 1.0f, NULL, 0);
        assert_int_equal(slots[i], i);
    }
    assert_int_equal(st.n_chunks, 4);
    for (size_t i = 0; i < n; i++) {
        fill_vec(v, 784, i);
        const float *p = iqdb__store_vec(&st, slots[i]);
        assert_memory_equal(p, v, sizeof v);
        assert_true(((uintptr_t)p % 64) == 0); /* every row 64-byte aligned */
        for (uint32_t j = 784; j < st.stride; j++) assert_true(p[j] == 0.0f);
    }
    /* remove three, add three: the freed slots come back (last freed first) */
    iqdb__store_remove(&st, 10);
    iqdb__store_remove(&st, 200);
    iqdb__store_remove(&st, 7);
    assert_int_equal(st.count, n - 3);
    assert_int_equal(iqdb__store_reserve(&st, 3), IQDB_OK);
    size_t before = st.n_slots;
    assert_int_equal(iqdb__store_add(&st, 9001, v, 0, NULL, 0), 7);
    assert_int_equal(iqdb__store_add(&st, 9002, v, 0, NULL, 0), 200);
    assert_int_equal(iqdb__store_add(&st, 9003, v, 0, NULL, 0), 10);
    assert_int_equal(st.n_slots, before);
    /* sequence numbers keep increasing through reuse */
    assert_true(st.seqs[10] > st.seqs[200] && st.seqs[200] > st.seqs[7]);
    assert_true(st.seqs[7] > st.seqs[n - 1]);
    free(slots);
    iqdb__store_destroy(&st);
}

/* reserve under allocation failure: fails with NOMEM and leaves every row intact; metadata
 * blobs are owned and freed by the store. */
static void test_store_reserve_failure(void **state) {
    (void)state;
    iqdb__mem mem;
    mem_for_test(&mem);
    iqdb__store st;
    iqdb__store_init(&st, &mem, 8);
    float v[8];
    for (uint64_t i = 0; i < 100; i++) {
        assert_int_equal(iqdb__store_reserve(&st, 1), IQDB_OK);
        fill_vec(v, 8, i);
        uint8_t *blob = iqdb__alloc(&mem, 5);
        memset(blob, (int)i, 5);
        iqdb__store_add(&st, i, v, 0, blob, 5);
    }
    for (long long n = 1; n < 40; n++) {
        iqdbt_fail_after(&A, n, 1);
        int rc = iqdb__store_reserve(&st, 100000);
        iqdbt_fail_off(&A);
        if (rc == IQDB_OK) break;
        assert_int_equal(rc, IQDB_NOMEM);
        assert_int_equal(st.count, 100);
        for (uint64_t i = 0; i < 100; i++) {
            fill_vec(v, 8, i);
            assert_memory_equal(iqdb__store_vec(&st, (uint32_t)i), v, sizeof v);
            assert_int_equal(st.ids[i], i);
            assert_int_equal(st.meta[i][4], (uint8_t)i);
        }
    }
    assert_int_equal(iqdb__store_mem_meta(&st), 500);
    iqdb__store_destroy(&st);
}

/* The slot limit is enforced before anything is allocated. */
static void test_store_full(void **state) {
    (void)state;
    iqdb__mem mem;
    mem_for_test(&mem);
    iqdb__store st;
    iqdb__store_init(&st, &mem, 4);
    assert_int_equal(iqdb__store_reserve(&st, (size_t)IQDB__MAX_SLOTS + 1), IQDB_FULL);
    assert_int_equal(atomic_load(&A.live), 0);
    iqdb__store_destroy(&st);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_store_idmap_model, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_idmap_reserve_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_slots_and_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_reserve_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_full, setup, teardown),
    };
    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
