/*
 * test_vecfile.c — IQDB_VECTORS_IN_FILE: the vectors in a mapped file beside the database
 * instead of on the heap (os/vmap.h, store/store.h).
 *
 * The oracle is a twin: the same writes go to a database opened without the flag and to one
 * opened with it, over every index kind and quantizer that keeps vectors (flat; SQ8 and BINARY
 * codes with re-ranking; IVF; HNSW with and without SQ8), across batches, single upserts,
 * replacements, deletes, optimize, checkpoints and reopens. Every search (plain, filtered,
 * exact, oversampled), every get and iqdb_check must agree bit for bit, and the two snapshot
 * files must be byte-identical (the flag belongs to the handle, not to the format) — a reopen
 * also swaps the flag between the twins. The heap really shrinks: stats.mem_vectors falls to
 * (almost) nothing and stats.mapped_vectors holds the rows.
 *
 * Errors: the flag in memory (INVALID), read-only (UNSUPPORTED), unknown flag bits (INVALID);
 * a failing map (test hook) in a batch, a single upsert and at open: a clear IQDB_IOERR_MMAP,
 * nothing half-applied, nothing leaked, and the stored data intact on the next open. No file is
 * left behind after close.
 */
#include "../common/testutil.h"
/* after testutil.h, which allows libc allocation next to the internal headers */
#include <math.h>
#include <sys/stat.h>

#include "handle.h"
#include "os/vmap.h"

enum { DIM = 300, N0 = 2600 }; /* 1216-byte rows: 512 per heap chunk, 8192 per mapped one */

static iqdbt_alloc A;
static char dir[256], path_a[300], path_b[300], path_c[300];

static int setup(void **state) {
    (void)state;
    iqdbt_alloc_reset(&A);
    assert_int_equal(iqdbt_mkdtemp(dir, sizeof dir, "iqdb-test-vecfile"), 0);
    snprintf(path_a, sizeof path_a, "%s/heap", dir);
    snprintf(path_b, sizeof path_b, "%s/file", dir);
    snprintf(path_c, sizeof path_c, "%s/crash", dir);
    return 0;
}
static int teardown(void **state) {
    (void)state;
    iqdb__vmap_fail_at(0);
    iqdb__vmap_no_fallocate(0);
    assert_int_equal(iqdbt_rmtree(dir), 0);
    assert_int_equal(atomic_load(&A.live), 0);
    assert_int_equal(atomic_load(&A.blocks), 0);
    assert_int_equal(atomic_load(&A.bad_free), 0);
    return 0;
}

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

typedef struct cfg {
    const char *name;
    iqdb_metric metric;
    iqdb_index_kind index;
    iqdb_quant quant;
} cfg;

static iqdb_options opts(const cfg *c, int in_file) {
    iqdb_options o;
    iqdb_options_init(&o, DIM, c->metric);
    o.allocator = iqdbt_allocator(&A, 1);
    o.threads = 1; /* deterministic HNSW builds: the twins must build the same graph */
    o.index = c->index;
    o.quant.kind = c->quant;
    o.hnsw.m = 8;
    o.hnsw.ef_construction = 40;
    o.ivf.n_lists = 16;
    o.ivf.n_probes = 4;
    o.flags = in_file ? IQDB_VECTORS_IN_FILE : 0;
    return o;
}

/* Clustered data (so the IVF lists and the quantizer have something to find). */
static uint64_t rng = 1;
static float urand(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) & 0xffffff) / 16777216.0f;
}
static void vec(float *v, int cluster) {
    for (int j = 0; j < DIM; j++) v[j] = (float)((cluster * 7 + j) % 13) * 0.3f + urand();
}

static iqdb_meta *meta_for(uint64_t id) {
    iqdb_meta *m;
    assert_int_equal(iqdb_meta_create(NULL, &m), IQDB_OK);
    assert_int_equal(iqdb_meta_set_int(m, "bucket", (int64_t)(id % 5)), IQDB_OK);
    return m;
}

/* Both twins get the same write; both must answer the same code. */
static void upsert_both(iqdb *a, iqdb *b, uint64_t id, const float *v) {
    iqdb_meta *m = meta_for(id);
    int ra = iqdb_upsert(a, id, v, m), rb = iqdb_upsert(b, id, v, m);
    iqdb_meta_destroy(m);
    assert_int_equal(ra, IQDB_OK);
    assert_int_equal(rb, IQDB_OK);
}

static void batch_both(iqdb *a, iqdb *b, uint64_t first, size_t n) {
    float *v = malloc(n * DIM * sizeof(float));
    iqdb_id *ids = malloc(n * sizeof *ids);
    iqdb_meta **ms = malloc(n * sizeof *ms);
    assert_non_null(v);
    assert_non_null(ids);
    assert_non_null(ms);
    for (size_t i = 0; i < n; i++) {
        ids[i] = first + i;
        vec(v + i * DIM, (int)((first + i) % 9));
        ms[i] = meta_for(first + i);
    }
    assert_int_equal(iqdb_upsert_batch(a, n, ids, v, (const iqdb_meta *const *)ms), IQDB_OK);
    assert_int_equal(iqdb_upsert_batch(b, n, ids, v, (const iqdb_meta *const *)ms), IQDB_OK);
    for (size_t i = 0; i < n; i++) iqdb_meta_destroy(ms[i]);
    free(ms);
    free(ids);
    free(v);
}

/* Every kind of search and every get agree bit for bit; both handles check clean. */
static void compare(iqdb *a, iqdb *b, const char *what) {
    uint64_t na, nb;
    assert_int_equal(iqdb_count(a, &na), IQDB_OK);
    assert_int_equal(iqdb_count(b, &nb), IQDB_OK);
    assert_true(na == nb);
    iqdb_filter *f;
    const char *ft = "bucket IN (1, 3)";
    assert_int_equal(iqdb_filter_parse(NULL, ft, strlen(ft), &f, NULL), IQDB_OK);
    float q[DIM];
    for (int t = 0; t < 12; t++) {
        vec(q, t % 9);
        iqdb_search_params p;
        iqdb_search_params_init(&p);
        if (t % 4 == 1) p.filter = f;
        if (t % 4 == 2) p.exact = 1;
        if (t % 4 == 3) p.oversample = 8;
        iqdb_hit ha[20], hb[20];
        size_t ka, kb;
        assert_int_equal(iqdb_search(a, q, 20, &p, ha, &ka, NULL), IQDB_OK);
        assert_int_equal(iqdb_search(b, q, 20, &p, hb, &kb, NULL), IQDB_OK);
        if (ka != kb) fail_msg("%s: query %d: %zu vs %zu hits", what, t, ka, kb);
        for (size_t i = 0; i < ka; i++)
            if (ha[i].id != hb[i].id || memcmp(&ha[i].distance, &hb[i].distance, 4) != 0)
                fail_msg("%s: query %d hit %zu: id %llu d %.9g vs id %llu d %.9g", what, t, i,
                         (unsigned long long)ha[i].id, ha[i].distance, (unsigned long long)hb[i].id,
                         hb[i].distance);
    }
    iqdb_filter_destroy(f);
    float va[DIM], vb[DIM];
    for (uint64_t id = 0; id < N0 + 400; id += 37) {
        int ra = iqdb_get(a, id, va, NULL), rb = iqdb_get(b, id, vb, NULL);
        assert_int_equal(ra, rb);
        if (ra == IQDB_OK && memcmp(va, vb, sizeof va) != 0)
            fail_msg("%s: get %llu", what, (unsigned long long)id);
    }
    assert_int_equal(iqdb_check(a), IQDB_OK);
    assert_int_equal(iqdb_check(b), IQDB_OK);
}

static void assert_same_file(const char *x, const char *y) {
    FILE *fx = fopen(x, "rb"), *fy = fopen(y, "rb");
    assert_non_null(fx);
    assert_non_null(fy);
    long n = 0;
    for (;;) {
        int cx = fgetc(fx), cy = fgetc(fy);
        if (cx != cy) fail_msg("%s and %s differ at byte %ld", x, y, n);
        if (cx == EOF) break;
        n++;
    }
    fclose(fx);
    fclose(fy);
}

/* The heap holds no vectors with the flag; the file holds them all. */
static void check_memory(iqdb *a, iqdb *b) {
    iqdb_stats sa, sb;
    sa.struct_size = sizeof sa;
    sb.struct_size = sizeof sb;
    assert_int_equal(iqdb_stats_get(a, &sa), IQDB_OK);
    assert_int_equal(iqdb_stats_get(b, &sb), IQDB_OK);
    assert_true(sa.mapped_vectors == 0);
    assert_true(sa.mem_vectors >= sa.count * DIM * sizeof(float));
    assert_true(sb.mapped_vectors >= sb.count * DIM * sizeof(float));
    assert_true(sb.mem_vectors < 4096); /* at most a staging row */
    assert_true(sb.mem_total + sb.mem_vectors <= sa.mem_total);
    assert_true(sb.mem_codes == sa.mem_codes);
}

static void run_twins(const cfg *c) {
    rng = 7;
    char name[320];
    iqdb_options oa = opts(c, 0), ob = opts(c, 1);
    iqdb *a, *b;
    assert_int_equal(iqdb_open(path_a, &oa, &a), IQDB_OK);
    assert_int_equal(iqdb_open(path_b, &ob, &b), IQDB_OK);
    snprintf(name, sizeof name, "%s.vec", path_b);
#if !defined(_WIN32)
    assert_false(exists(name)); /* POSIX: unlinked at once (Windows: delete-on-close) */
#endif
    batch_both(a, b, 0, N0); /* trains the IVF lists / quantizer inside the batch */
    compare(a, b, c->name);
    check_memory(a, b);
    float v[DIM];
    for (uint64_t id = 0; id < 300; id += 3) { /* replacements and new rows, one at a time */
        vec(v, (int)(id % 4));
        upsert_both(a, b, id * 11 % (N0 + 200), v);
    }
    for (uint64_t id = 5; id < N0; id += 17) {
        int ea, eb;
        assert_int_equal(iqdb_delete(a, id, &ea), IQDB_OK);
        assert_int_equal(iqdb_delete(b, id, &eb), IQDB_OK);
        assert_int_equal(ea, eb);
    }
    compare(a, b, c->name);
    assert_int_equal(iqdb_checkpoint(a), IQDB_OK);
    assert_int_equal(iqdb_checkpoint(b), IQDB_OK);
    assert_same_file(path_a, path_b);
    batch_both(a, b, N0, 300); /* reuses the deleted slots, then grows */
    assert_int_equal(iqdb_optimize(a), IQDB_OK);
    assert_int_equal(iqdb_optimize(b), IQDB_OK);
    compare(a, b, c->name);
    for (uint64_t id = 1; id < 200; id += 7) { /* after the optimize; the close checkpoints them */
        vec(v, (int)(id % 5));
        upsert_both(a, b, id, v);
    }
    /* b's files as a process that stopped here would leave them: the reopen replays the WAL
     * records above into a store whose chunks are mapped */
    char from[320], to[320];
    assert_int_equal(iqdbt_cp(path_b, path_c), 0);
    snprintf(from, sizeof from, "%s.wal", path_b);
    snprintf(to, sizeof to, "%s.wal", path_c);
    assert_int_equal(iqdbt_cp(from, to), 0);
    iqdb *cr;
    assert_int_equal(iqdb_open(path_c, &ob, &cr), IQDB_OK);
    compare(a, cr, c->name);
    assert_int_equal(iqdb_close(cr), IQDB_OK);
    assert_int_equal(iqdb_close(a), IQDB_OK);
    assert_int_equal(iqdb_close(b), IQDB_OK);
    assert_false(exists(name));
    assert_same_file(path_a, path_b);
    /* Reopen with the flag swapped: the files are the same format either way. */
    oa.flags = IQDB_VECTORS_IN_FILE;
    ob.flags = 0;
    assert_int_equal(iqdb_open(path_a, &oa, &a), IQDB_OK);
    assert_int_equal(iqdb_open(path_b, &ob, &b), IQDB_OK);
    compare(b, a, c->name);
    check_memory(b, a);
    assert_int_equal(iqdb_close(a), IQDB_OK);
    assert_int_equal(iqdb_close(b), IQDB_OK);
}

static void test_vecfile_flat(void **state) {
    (void)state;
    const cfg c = {"flat L2", IQDB_METRIC_L2, IQDB_INDEX_FLAT, IQDB_QUANT_NONE};
    run_twins(&c);
}
static void test_vecfile_flat_sq8(void **state) {
    (void)state;
    const cfg c = {"flat SQ8 L2", IQDB_METRIC_L2, IQDB_INDEX_FLAT, IQDB_QUANT_SQ8};
    run_twins(&c);
}
/* Growth on a file system without fallocate: the blocks are written as zeros instead. */
static void test_vecfile_no_fallocate(void **state) {
    (void)state;
    iqdb__vmap_no_fallocate(1);
    const cfg c = {"flat SQ8 L2, zeros written", IQDB_METRIC_L2, IQDB_INDEX_FLAT, IQDB_QUANT_SQ8};
    run_twins(&c);
    iqdb__vmap_no_fallocate(0);
}
static void test_vecfile_flat_binary_cosine(void **state) {
    (void)state;
    const cfg c = {"flat BINARY cosine", IQDB_METRIC_COSINE, IQDB_INDEX_FLAT, IQDB_QUANT_BINARY};
    run_twins(&c);
}
static void test_vecfile_ivf_sq8_dot(void **state) {
    (void)state;
    const cfg c = {"IVF SQ8 dot", IQDB_METRIC_DOT, IQDB_INDEX_IVF, IQDB_QUANT_SQ8};
    run_twins(&c);
}
static void test_vecfile_ivf_pq(void **state) {
    (void)state;
    const cfg c = {"IVF PQ L2", IQDB_METRIC_L2, IQDB_INDEX_IVF, IQDB_QUANT_PQ};
    run_twins(&c);
}
static void test_vecfile_hnsw(void **state) {
    (void)state;
    const cfg c = {"HNSW L1", IQDB_METRIC_L1, IQDB_INDEX_HNSW, IQDB_QUANT_NONE};
    run_twins(&c);
}
static void test_vecfile_hnsw_sq8(void **state) {
    (void)state;
    const cfg c = {"HNSW SQ8 L2", IQDB_METRIC_L2, IQDB_INDEX_HNSW, IQDB_QUANT_SQ8};
    run_twins(&c);
}

static void test_vecfile_bad_options(void **state) {
    (void)state;
    const cfg c = {"flat", IQDB_METRIC_L2, IQDB_INDEX_FLAT, IQDB_QUANT_NONE};
    iqdb_options o = opts(&c, 1);
    iqdb *db = (iqdb *)&o;                                    /* must be reset to NULL */
    assert_int_equal(iqdb_open(NULL, &o, &db), IQDB_INVALID); /* needs a path */
    assert_null(db);
    assert_non_null(strstr(iqdb_errmsg(NULL), "needs a path"));
    o.flags = 2u;
    assert_int_equal(iqdb_open(path_b, &o, &db), IQDB_INVALID);
    assert_non_null(strstr(iqdb_errmsg(NULL), "unknown bits"));
    /* read-only: the database exists, the flag is refused before anything is read */
    o = opts(&c, 0);
    assert_int_equal(iqdb_open(path_b, &o, &db), IQDB_OK);
    assert_int_equal(iqdb_close(db), IQDB_OK);
    o = opts(&c, 1);
    o.read_only = 1;
    assert_int_equal(iqdb_open(path_b, &o, &db), IQDB_UNSUPPORTED);
    assert_null(db);
    /* codes-only keeps no vectors and is in memory only */
    o = opts(&c, 1);
    o.quant.kind = IQDB_QUANT_SQ8;
    o.quant.flags = IQDB_QUANT_CODES_ONLY;
    assert_int_equal(iqdb_open(path_b, &o, &db), IQDB_UNSUPPORTED);
    assert_int_equal(atomic_load(&A.live), 0);
}

/* A map that fails: the write that needed it returns IQDB_IOERR_MMAP and changes nothing; the
 * handle keeps working; an open that fails leaves nothing open; the data is intact after. */
static void test_vecfile_map_failure(void **state) {
    (void)state;
    const cfg c = {"flat SQ8", IQDB_METRIC_L2, IQDB_INDEX_FLAT, IQDB_QUANT_SQ8};
    iqdb_options oa = opts(&c, 0), ob = opts(&c, 1);
    iqdb *a, *b;
    assert_int_equal(iqdb_open(path_a, &oa, &a), IQDB_OK);
    assert_int_equal(iqdb_open(path_b, &ob, &b), IQDB_OK);
    const size_t rpc = iqdb__store_rows_per_chunk(&b->store); /* rows per mapped chunk */
    assert_true(rpc >= 1024);
    rng = 3;
    batch_both(a, b, 0, rpc - 100); /* one chunk, trained */
    /* a batch that crosses into the second chunk: its one map fails */
    enum { NB = 300 };
    float *v = malloc(NB * DIM * sizeof(float));
    iqdb_id ids[NB];
    assert_non_null(v);
    for (size_t i = 0; i < NB; i++) {
        ids[i] = 100000 + i;
        vec(v + i * DIM, (int)(i % 9));
    }
    iqdb__vmap_fail_at(1);
    assert_int_equal(iqdb_upsert_batch(b, NB, ids, v, NULL), IQDB_IOERR_MMAP);
    assert_non_null(strstr(iqdb_errmsg(b), "mmap"));
    iqdb__vmap_fail_at(0);
    compare(a, b, "after a failed batch");
    /* single upserts fill the first chunk; the next one needs a map, which fails */
    float one[DIM];
    vec(one, 2);
    for (uint64_t id = rpc - 100; id < rpc; id++) upsert_both(a, b, id, one);
    iqdb__vmap_fail_at(1);
    int rc = iqdb_upsert(b, 5000000, one, NULL);
    iqdb__vmap_fail_at(0);
    if (rc != IQDB_IOERR_MMAP) fail_msg("single upsert into a new chunk: %d", rc);
    uint64_t n;
    assert_int_equal(iqdb_count(b, &n), IQDB_OK);
    assert_true(n == rpc);
    compare(a, b, "after a failed upsert");
    /* and then both succeed */
    assert_int_equal(iqdb_upsert_batch(a, NB, ids, v, NULL), IQDB_OK);
    assert_int_equal(iqdb_upsert_batch(b, NB, ids, v, NULL), IQDB_OK);
    compare(a, b, "after the retried batch");
    assert_int_equal(iqdb_close(b), IQDB_OK);
    /* an open whose snapshot load cannot map its second chunk */
    iqdb__vmap_fail_at(2);
    iqdb *z = (iqdb *)&ob;
    assert_int_equal(iqdb_open(path_b, &ob, &z), IQDB_IOERR_MMAP);
    assert_null(z);
    iqdb__vmap_fail_at(0);
    assert_int_equal(iqdb_open(path_b, &ob, &b), IQDB_OK);
    compare(a, b, "reopened after a failed open");
    assert_int_equal(iqdb_close(a), IQDB_OK);
    assert_int_equal(iqdb_close(b), IQDB_OK);
    free(v);
}

int main(void) {
    iqdbt_simd_gate();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_vecfile_flat, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vecfile_flat_sq8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vecfile_no_fallocate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vecfile_flat_binary_cosine, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vecfile_ivf_sq8_dot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vecfile_ivf_pq, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vecfile_hnsw, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vecfile_hnsw_sq8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vecfile_bad_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vecfile_map_failure, setup, teardown),
    };
    return cmocka_run_group_tests_name("vecfile", tests, NULL, NULL);
}
