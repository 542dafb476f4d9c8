/*
 * test_durable.c — the public durability API, each entry point with happy, error and edge
 * cases: iqdb_open with a path (create, reopen, content equal; BUSY for a second writer in this
 * process and in another; MISMATCH; the index kind and parameters taken from the file; a newer
 * format version and foreign files refused; read-only handles), iqdb_checkpoint (happy, in
 * memory, read-only, after a failed fsync, automatic), iqdb_close (checkpoints), the
 * compression and sync options, the durability fields of iqdb_stats, iqdb_compression_available,
 * the WAL damage rule of docs/FORMAT.md (recovery rule 4), in both of its directions, an HNSW
 * database (the graph loaded from the snapshot, never rebuilt; WAL replay into it), and IVF /
 * quantized databases (reopen loads the trained index, WAL replay assigns to lists, iqdb_optimize
 * persists, hostile IVF sections and quantizer parameters are corrupt).
 *
 * Real files in a fresh temporary directory per test; the simulated file system
 * (tests/common/simfs) where a failed fsync or an exact crash image is needed. Every handle uses
 * the counting allocator, and teardown asserts that nothing leaked.
 */
#include "../common/testutil.h"
/* after testutil.h, which allows libc allocation next to the internal headers */
#include <sys/stat.h>
#if IQDBT_HAVE_FORK
#include <sys/wait.h>
#include <unistd.h>
#endif

#include "../common/simfs.h"
#include "handle.h"
#include "persist/crc32c.h"
#include "persist/format.h"

enum { DIM = 6 };

static iqdbt_alloc A;
static char dir[256], path[300], wal_path[310];

static int setup(void **state) {
    (void)state;
    iqdbt_alloc_reset(&A);
    assert_int_equal(iqdbt_mkdtemp(dir, sizeof dir, "iqdb-test-durable"), 0);
    snprintf(path, sizeof path, "%s/db", dir);
    snprintf(wal_path, sizeof wal_path, "%s/db.wal", dir);
    return 0;
}
static int teardown(void **state) {
    (void)state;
    iqdb__io_set_default(NULL);
    assert_int_equal(iqdbt_rmtree(dir), 0);
    assert_int_equal(atomic_load(&A.live), 0);
    assert_int_equal(atomic_load(&A.blocks), 0);
    assert_int_equal(atomic_load(&A.bad_free), 0);
    return 0;
}

static iqdb_options opts(uint32_t dim, iqdb_metric metric) {
    iqdb_options o;
    iqdb_options_init(&o, dim, metric);
    o.allocator = iqdbt_allocator(&A, 1);
    o.threads = 1;
    return o;
}

static iqdb *open_ok(const char *p, const iqdb_options *o) {
    iqdb *db = NULL;
    int rc = iqdb_open(p, o, &db);
    if (rc) print_error("open %s: %d %s\n", p ? p : "(memory)", rc, iqdb_errmsg(NULL));
    assert_int_equal(rc, IQDB_OK);
    assert_non_null(db);
    return db;
}

static int open_rc(const char *p, const iqdb_options *o) {
    iqdb *db = (iqdb *)1;
    int rc = iqdb_open(p, o, &db);
    if (rc == IQDB_OK) {
        iqdb_close(db);
    } else {
        assert_null(db); /* *out is NULL on every failure */
    }
    return rc;
}

static iqdb_stats stats_of(iqdb *db) {
    iqdb_stats s;
    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    assert_int_equal(iqdb_stats_get(db, &s), IQDB_OK);
    return s;
}

/* ---- records: a deterministic content model ------------------------------------------------ */

static void vec_of(float *v, uint64_t id, int version) {
    for (int d = 0; d < DIM; d++) v[d] = (float)id * 0.5f - (float)d + (float)version * 0.125f;
}

static iqdb_meta *meta_of(uint64_t id, int version) {
    if (id % 3 == 0) return NULL;
    iqdb_meta *m;
    assert_int_equal(iqdb_meta_create(NULL, &m), IQDB_OK);
    iqdb_meta_set_int(m, "id", (int64_t)id);
    iqdb_meta_set_int(m, "version", version);
    iqdb_meta_set_string(m, id % 2 ? "odd" : "even", "yes");
    iqdb_meta_set(m, "bytes", iqdb_strn("a\0z", 3));
    return m;
}

static void put(iqdb *db, uint64_t id, int version) {
    float v[DIM];
    vec_of(v, id, version);
    iqdb_meta *m = meta_of(id, version);
    assert_int_equal(iqdb_upsert(db, id, v, m), IQDB_OK);
    iqdb_meta_destroy(m);
}

/* versions[id] = 0: absent. Checks count, every vector bit for bit and every metadata value. */
static void expect_content(iqdb *db, const int *versions, int n_ids) {
    uint64_t count = 0, n;
    for (int id = 0; id < n_ids; id++) {
        float got[DIM], want[DIM];
        iqdb_meta *m = NULL;
        int rc = iqdb_get(db, (uint64_t)id, got, &m);
        if (!versions[id]) {
            if (rc != IQDB_NOTFOUND) print_error("id %d should be absent\n", id);
            assert_int_equal(rc, IQDB_NOTFOUND);
            continue;
        }
        count++;
        if (rc != IQDB_OK) print_error("id %d should be present (version %d)\n", id, versions[id]);
        assert_int_equal(rc, IQDB_OK);
        vec_of(want, (uint64_t)id, versions[id]);
        assert_memory_equal(got, want, sizeof got);
        iqdb_meta *w = meta_of((uint64_t)id, versions[id]);
        assert_int_equal(iqdb_meta_count(m), iqdb_meta_count(w));
        for (size_t i = 0; w && i < iqdb_meta_count(w); i++) {
            const char *k1, *k2;
            iqdb_value v1, v2;
            iqdb_meta_at(m, i, &k1, &v1);
            iqdb_meta_at(w, i, &k2, &v2);
            assert_string_equal(k1, k2);
            assert_int_equal(v1.type, v2.type);
            if (v1.type == IQDB_TYPE_STRING) {
                assert_int_equal(v1.u.s.len, v2.u.s.len);
                assert_memory_equal(v1.u.s.ptr, v2.u.s.ptr, v1.u.s.len);
            } else {
                assert_int_equal(v1.u.i, v2.u.i);
            }
        }
        iqdb_meta_destroy(w);
        iqdb_meta_destroy(m);
    }
    assert_int_equal(iqdb_count(db, &n), IQDB_OK);
    assert_int_equal(n, count);
}

/* ---- files -------------------------------------------------------------------------------- */

static uint8_t *read_file(const char *p, size_t *len) {
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void write_file(const char *p, const void *data, size_t len) {
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static long file_size(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

/* Recomputes the CRCs of an uncompressed snapshot's params section, table and header. */
static void recrc_snapshot(uint8_t *s) {
    uint8_t *e = s + IQDB__SNAP_HDR; /* section 1: one block of IQDB__PARAMS_LEN raw bytes */
    size_t off = (size_t)iqdb__get64(e + 8);
    iqdb__put32(e + 32, iqdb__crc32c(0, s + off, IQDB__BLOCK_HDR + IQDB__PARAMS_LEN));
    iqdb__put32(e + 36, iqdb__crc32c(0, s + off + IQDB__BLOCK_HDR, IQDB__PARAMS_LEN));
    iqdb__put32(s + 52,
                iqdb__crc32c(0, s + IQDB__SNAP_HDR, IQDB__SNAP_SECTIONS * IQDB__SNAP_ENTRY));
    iqdb__put32(s + 60, iqdb__crc32c(0, s, 60));
}

static uint8_t *params_of(uint8_t *s) {
    return s + iqdb__get64(s + IQDB__SNAP_HDR + 8) + IQDB__BLOCK_HDR;
}

/* A small database at `path`, closed (so checkpointed): ids 0..9, id 4 deleted. */
static void make_db(iqdb_options *o, int *versions) {
    iqdb *db = open_ok(path, o);
    for (int id = 0; id < 10; id++) {
        put(db, (uint64_t)id, 1);
        versions[id] = 1;
    }
    assert_int_equal(iqdb_delete(db, 4, NULL), IQDB_OK);
    versions[4] = 0;
    assert_int_equal(iqdb_close(db), IQDB_OK);
}

/* ============================================================================================ */
/* iqdb_open with a path                                                                        */
/* ============================================================================================ */

static void test_durable_create_and_reopen(void **state) {
    (void)state;
    iqdb_options o = opts(DIM, IQDB_METRIC_COSINE);
    iqdb *db = open_ok(path, &o);
    /* created: an empty snapshot and a WAL holding only its header */
    assert_true(file_size(path) > 0);
    assert_int_equal(file_size(wal_path), IQDB__WAL_HDR);
    int versions[32] = {0};
    for (int id = 0; id < 20; id++) {
        put(db, (uint64_t)id, 1);
        versions[id] = 1;
    }
    for (int id = 0; id < 20; id += 3) {
        put(db, (uint64_t)id, 2); /* replaced */
        versions[id] = 2;
    }
    int existed = 0;
    assert_int_equal(iqdb_delete(db, 5, &existed), IQDB_OK);
    assert_int_equal(existed, 1);
    versions[5] = 0;
    uint64_t ids[3] = {25, 26, 25};
    float vs[3 * DIM];
    vec_of(vs, 25, 9);
    vec_of(vs + DIM, 26, 1);
    vec_of(vs + 2 * DIM, 25, 3); /* the later duplicate wins */
    iqdb_meta *ms[3] = {meta_of(25, 9), meta_of(26, 1), meta_of(25, 3)};
    assert_int_equal(iqdb_upsert_batch(db, 3, ids, vs, (const iqdb_meta *const *)ms), IQDB_OK);
    for (int i = 0; i < 3; i++) iqdb_meta_destroy(ms[i]);
    versions[25] = 3;
    versions[26] = 1;
    expect_content(db, versions, 32);
    assert_int_equal(iqdb_close(db), IQDB_OK);

    db = open_ok(path, &o);
    expect_content(db, versions, 32);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    /* the same search answers as before the reopen: exact, and ties kept in insertion order */
    float q[DIM] = {1, 0, 0, 0, 0, 0};
    iqdb_hit hits[32];
    size_t n;
    assert_int_equal(iqdb_search(db, q, 32, NULL, hits, &n, NULL), IQDB_OK);
    assert_int_equal(n, 21);
    assert_int_equal(iqdb_close(db), IQDB_OK);
}

/* Reopening an empty database (no write ever) and a database after a process crash (no close:
 * the WAL is replayed). */
static void test_durable_reopen_edges(void **state) {
    (void)state;
    iqdb_options o = opts(DIM, IQDB_METRIC_L2);
    iqdb *db = open_ok(path, &o);
    assert_int_equal(iqdb_close(db), IQDB_OK);
    db = open_ok(path, &o);
    uint64_t n = 99;
    assert_int_equal(iqdb_count(db, &n), IQDB_OK);
    assert_int_equal(n, 0);
    assert_int_equal(stats_of(db).generation, 1); /* nothing written: no new snapshot */
    assert_int_equal(iqdb_close(db), IQDB_OK);

#if IQDBT_HAVE_FORK
    /* a child process writes and dies without closing: the WAL has the records */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        iqdb_options co = opts(DIM, IQDB_METRIC_L2);
        co.allocator.alloc_fn = NULL; /* libc in the child: it never frees */
        co.allocator.realloc_fn = NULL;
        co.allocator.free_fn = NULL;
        iqdb *c;
        if (iqdb_open(path, &co, &c) != IQDB_OK) _exit(1);
        for (uint64_t id = 0; id < 5; id++) {
            float v[DIM];
            vec_of(v, id, 7);
            iqdb_meta *m = meta_of(id, 7);
            if (iqdb_upsert(c, id, v, m) != IQDB_OK) _exit(2);
            iqdb_meta_destroy(m);
        }
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_true(file_size(wal_path) > IQDB__WAL_HDR);
    db = open_ok(path, &o);
    int versions[8] = {7, 7, 7, 7, 7, 0, 0, 0};
    expect_content(db, versions, 8);
    iqdb_stats s = stats_of(db);
    assert_int_equal(s.last_lsn, 5);
    assert_int_equal(s.checkpoint_lsn, 0);
    assert_int_equal(iqdb_close(db), IQDB_OK);
#else
    print_message("note: the crashed-writer half needs fork(); skipped on this platform\n");
#endif
}

static void test_durable_open_errors(void **state) {
    (void)state;
    iqdb_options o = opts(DIM, IQDB_METRIC_L2);
    char p[400];
    /* the directory must exist */
    snprintf(p, sizeof p, "%s/no/such/dir/db", dir);
    assert_int_equal(open_rc(p, &o), IQDB_IOERR_OPEN);
    /* read-only needs an existing database */
    o.read_only = 1;
    assert_int_equal(open_rc(path, &o), IQDB_NOTFOUND);
    assert_int_equal(file_size(path), -1); /* nothing was created */
    assert_int_equal(file_size(wal_path), -1);
    o.read_only = 0;
    /* a WAL with records but no snapshot: refuse to start empty */
    int versions[10];
    make_db(&o, versions);
    iqdb *db = open_ok(path, &o);
    put(db, 1, 5);
    iqdb_stats s = stats_of(db);
    assert_true(s.wal_bytes > IQDB__WAL_HDR);
    /* copy the WAL while it holds the record (close would checkpoint it away) */
    size_t wl;
    uint8_t *w = read_file(wal_path, &wl);
    assert_int_equal(iqdb_close(db), IQDB_OK);
    assert_int_equal(remove(path), 0);
    write_file(wal_path, w, wl);
    free(w);
    assert_int_equal(open_rc(path, &o), IQDB_CORRUPT_SNAPSHOT);
    assert_int_equal(file_size(path), -1); /* and did not create one */
}

/* A second writer gets IQDB_BUSY: another handle in this process, and another process. */
static void test_durable_busy(void **state) {
    (void)state;
    iqdb_options o = opts(DIM, IQDB_METRIC_L2);
    iqdb *db = open_ok(path, &o);
    put(db, 1, 1);
    assert_int_equal(open_rc(path, &o), IQDB_BUSY);
    assert_string_not_equal(iqdb_errmsg(NULL), "");
    /* a read-only handle takes no lock and sees the writer's logged record */
    iqdb_options ro = o;
    ro.read_only = 1;
    iqdb *r = open_ok(path, &ro);
    int versions[3] = {0, 1, 0};
    expect_content(r, versions, 3);
    assert_int_equal(iqdb_close(r), IQDB_OK);
#if IQDBT_HAVE_FORK
    /* another process */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        iqdb_options co;
        iqdb_options_init(&co, DIM, IQDB_METRIC_L2);
        iqdb *c = NULL;
        int rc = iqdb_open(path, &co, &c);
        _exit(rc == IQDB_BUSY && c == NULL ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
#else
    print_message("note: the other-process half needs fork(); skipped on this platform\n");
#endif
    /* the writer is unharmed; once it closes, the lock is free */
    put(db, 2, 1);
    assert_int_equal(iqdb_close(db), IQDB_OK);
    db = open_ok(path, &o);
    int v2[3] = {0, 1, 1};
    expect_content(db, v2, 3);
    assert_int_equal(iqdb_close(db), IQDB_OK);
}

static void test_durable_mismatch(void **state) {
    (void)state;
    iqdb_options o = opts(DIM, IQDB_METRIC_COSINE);
    int versions[10];
    make_db(&o, versions);
    size_t before_len;
    uint8_t *before = read_file(path, &before_len);
    iqdb_options other = opts(DIM + 1, IQDB_METRIC_COSINE);
    assert_int_equal(open_rc(path, &other), IQDB_MISMATCH);
    other = opts(DIM - 1, IQDB_METRIC_COSINE);
    assert_int_equal(open_rc(path, &other), IQDB_MISMATCH);
    other = opts(DIM, IQDB_METRIC_L2);
    assert_int_equal(open_rc(path, &other), IQDB_MISMATCH);
    other = opts(DIM, IQDB_METRIC_DEFAULT); /* DEFAULT means L2, not "whatever is stored" */
    assert_int_equal(open_rc(path, &other), IQDB_MISMATCH);
    assert_non_null(strstr(iqdb_errmsg(NULL), "dim"));
    /* the failed opens changed nothing */
    size_t after_len;
    uint8_t *after = read_file(path, &after_len);
    assert_int_equal(before_len, after_len);
    assert_memory_equal(before, after, before_len);
    free(before);
    free(after);
    iqdb *db = open_ok(path, &o);
    expect_content(db, versions, 10);
    assert_int_equal(iqdb_close(db), IQDB_OK);
}

/* The index kind and its parameters come from the file, not from the options. */
static void test_durable_index_from_file(void **state) {
    (void)state;
    iqdb_options o = opts(DIM, IQDB_METRIC_L2);
    o.hnsw.m = 32;
    o.hnsw.ef_construction = 300;
    o.hnsw.ef_search = 50;
    o.hnsw.filter_widen = 8;
    o.hnsw.seed = 77;
    o.ivf.n_lists = 16;
    o.ivf.n_probes = 4;
    o.ivf.train_sample = 1000;
    int versions[10];
    make_db(&o, versions);
    iqdb_options other = opts(DIM, IQDB_METRIC_L2);
    other.hnsw.m = 8;
    other.hnsw.seed = 1;
    other.ivf.n_lists = 2;
    other.ivf.n_probes = 1;
    iqdb *db = open_ok(path, &other);
    assert_int_equal(db->opts.index, IQDB_INDEX_FLAT);
    assert_int_equal(db->opts.hnsw.m, 32);
    assert_int_equal(db->opts.hnsw.ef_construction, 300);
    assert_int_equal(db->opts.hnsw.ef_search, 50);
    assert_int_equal(db->opts.hnsw.filter_widen, 8);
    assert_int_equal(db->opts.hnsw.seed, 77);
    assert_int_equal(db->opts.ivf.n_lists, 16);
    assert_int_equal(db->opts.ivf.n_probes, 4);
    assert_int_equal(db->opts.ivf.train_sample, 1000);
    assert_int_equal(stats_of(db).index, IQDB_INDEX_FLAT);
    expect_content(db, versions, 10);
    put(db, 11, 1); /* the next checkpoint keeps the file's parameters */
    assert_int_equal(iqdb_close(db), IQDB_OK);
    size_t len;
    uint8_t *s = read_file(path, &len);
    assert_int_equal(iqdb__get32(params_of(s) + 4), 32);
    assert_int_equal(iqdb__get64(params_of(s) + 20), 77);

    /* a file that names the IVF index opens as IVF whatever the options say, and the flat
     * index's (empty) section is no IVF section */
    uint8_t *h = malloc(len);
    memcpy(h, s, len);
    iqdb__put32(h + 24, IQDB_INDEX_IVF);
    iqdb__put32(params_of(h), IQDB_INDEX_IVF);
    recrc_snapshot(h);
    write_file(path, h, len);
    assert_int_equal(open_rc(path, &o), IQDB_CORRUPT_SNAPSHOT);
    /* one that names HNSW opens as HNSW, and the flat index's section is no HNSW graph */
    memcpy(h, s, len);
    iqdb__put32(h + 24, IQDB_INDEX_HNSW);
    iqdb__put32(params_of(h), IQDB_INDEX_HNSW);
    recrc_snapshot(h);
    write_file(path, h, len);
    assert_int_equal(open_rc(path, &o), IQDB_CORRUPT_SNAPSHOT);
    /* parameters out of range in the file: corrupt (validated by the rules of iqdb_open) */
    memcpy(h, s, len);
    iqdb__put32(params_of(h) + 4, 1); /* hnsw.m = 1 */
    recrc_snapshot(h);
    write_file(path, h, len);
    assert_int_equal(open_rc(path, &o), IQDB_CORRUPT_SNAPSHOT);
    /* the header and the parameters section disagree on the kind */
    memcpy(h, s, len);
    iqdb__put32(params_of(h), IQDB_INDEX_HNSW);
    recrc_snapshot(h);
    write_file(path, h, len);
    assert_int_equal(open_rc(path, &o), IQDB_CORRUPT_SNAPSHOT);
    /* the control: recrc_snapshot itself produces a file that opens */
    memcpy(h, s, len);
    recrc_snapshot(h);
    write_file(path, h, len);
    db = open_ok(path, &o);
    assert_int_equal(iqdb_close(db), IQDB_OK);
    free(h);
    free(s);
}

/* ---- an HNSW database --------------------------------------------------------------------- */

enum { HD = 16, HQ = 24 };

static void graph_bytes(iqdb *db, iqdbt_membuf *b) {
    memset(b, 0, sizeof *b);
    iqdb__sink sink = {iqdbt_mem_write, b};
    assert_int_equal(iqdb__index_serialize(db->index, &db->env, &sink), IQDB_OK);
}

static void expect_same_graph(iqdb *db, const iqdbt_membuf *want, const char *when) {
    iqdbt_membuf got;
    graph_bytes(db, &got);
    if (got.n != want->n || memcmp(got.p, want->p, got.n))
        print_error("%s: the graph differs (%zu bytes, expected %zu)\n", when, got.n, want->n);
    assert_int_equal(got.n, want->n);
    assert_memory_equal(got.p, want->p, got.n);
    free(got.p);
}

/* HQ searches at a small ef, where the answers depend on the graph itself. */
static void hnsw_answers(iqdb *db, iqdb_hit *hits, size_t *n) {
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    p.ef = 10;
    iqdbt_rng r = {4242};
    for (int q = 0; q < HQ; q++) {
        float v[HD];
        iqdbt_fill(&r, v, HD, -1, 1);
        iqdb_search_info info = {.struct_size = sizeof info};
        assert_int_equal(iqdb_search(db, v, 10, &p, hits + q * 10, &n[q], &info), IQDB_OK);
        assert_int_equal(info.strategy, IQDB_STRATEGY_HNSW);
    }
}

static void hnsw_put(iqdb *db, iqdbt_rng *r, uint64_t id) {
    float v[HD];
    iqdbt_fill(r, v, HD, -1, 1);
    assert_int_equal(iqdb_upsert(db, id, v, NULL), IQDB_OK);
}

static void copy_files(const char *suffix_from, const char *suffix_to) {
    char from[400], to[400];
    snprintf(from, sizeof from, "%s%s", path, suffix_from);
    snprintf(to, sizeof to, "%s%s", path, suffix_to);
    assert_int_equal(iqdbt_cp(from, to), 0);
    snprintf(from, sizeof from, "%s%s", wal_path, suffix_from);
    snprintf(to, sizeof to, "%s%s", wal_path, suffix_to);
    assert_int_equal(iqdbt_cp(from, to), 0);
}

/* The graph is stored in the snapshot and loaded, never rebuilt: after churn that no rebuild
 * would reproduce, the reopened graph is byte for byte the closed one, with the same answers;
 * the index kind and parameters come from the file whatever the options say. WAL records
 * replay into the loaded graph (a process that stopped without closing): the result is the
 * graph the process had. An optimized graph reaches the file at close. */
static void test_durable_hnsw(void **state) {
    (void)state;
    iqdb_options o = opts(HD, IQDB_METRIC_L2);
    o.index = IQDB_INDEX_HNSW;
    o.hnsw.m = 8;
    o.hnsw.ef_construction = 40;
    o.hnsw.seed = 5;
    iqdb *db = open_ok(path, &o);
    iqdbt_rng r = {77};
    for (uint64_t id = 0; id < 1200; id++) hnsw_put(db, &r, id);
    enum { NB = 300 };
    static float vs[NB * HD];
    uint64_t ids[NB];
    iqdbt_fill(&r, vs, NB * HD, -1, 1);
    for (int i = 0; i < NB; i++) ids[i] = 2000 + (uint64_t)i;
    assert_int_equal(iqdb_upsert_batch(db, NB, ids, vs, NULL), IQDB_OK);
    for (uint64_t id = 0; id < 600; id += 3) assert_int_equal(iqdb_delete(db, id, NULL), IQDB_OK);
    for (uint64_t id = 5000; id < 5200; id++) hnsw_put(db, &r, id);
    static iqdb_hit h1[HQ * 10], h2[HQ * 10];
    size_t n1[HQ], n2[HQ];
    iqdbt_membuf g1;
    graph_bytes(db, &g1);
    hnsw_answers(db, h1, n1);
    assert_int_equal(iqdb_close(db), IQDB_OK);

    iqdb_options other = opts(HD, IQDB_METRIC_L2); /* flat, default parameters: the file decides */
    db = open_ok(path, &other);
    assert_int_equal(stats_of(db).index, IQDB_INDEX_HNSW);
    assert_int_equal(db->opts.hnsw.m, 8);
    assert_int_equal(db->opts.hnsw.ef_construction, 40);
    assert_int_equal(db->opts.hnsw.seed, 5);
    expect_same_graph(db, &g1, "reopen");
    hnsw_answers(db, h2, n2);
    assert_memory_equal(n1, n2, sizeof n1);
    assert_memory_equal(h1, h2, sizeof h1);
    assert_int_equal(iqdb_check(db), IQDB_OK);

    /* more writes, then the files as a process that stops here leaves them */
    for (uint64_t id = 6000; id < 6150; id++) hnsw_put(db, &r, id);
    for (uint64_t id = 1; id < 900; id += 7) assert_int_equal(iqdb_delete(db, id, NULL), IQDB_OK);
    for (uint64_t id = 2000; id < 2040; id++) hnsw_put(db, &r, id); /* replaced */
    iqdbt_membuf g3;
    graph_bytes(db, &g3);
    hnsw_answers(db, h1, n1);
    copy_files("", ".crash");
    assert_int_equal(iqdb_close(db), IQDB_OK);
    copy_files(".crash", "");
    db = open_ok(path, &other);
    iqdb_stats st = stats_of(db);
    assert_true(st.last_lsn > st.checkpoint_lsn); /* replayed, not checkpointed */
    expect_same_graph(db, &g3, "WAL replay");
    hnsw_answers(db, h2, n2);
    assert_memory_equal(n1, n2, sizeof n1);
    assert_memory_equal(h1, h2, sizeof h1);
    assert_int_equal(iqdb_check(db), IQDB_OK);

    /* optimize changes no record, so it logs nothing; close still writes the new graph */
    assert_int_equal(iqdb_checkpoint(db), IQDB_OK);
    assert_int_equal(iqdb_optimize(db), IQDB_OK);
    iqdbt_membuf g5;
    graph_bytes(db, &g5);
    assert_true(g5.n != g3.n || memcmp(g5.p, g3.p, g5.n));
    assert_int_equal(iqdb_close(db), IQDB_OK);
    db = open_ok(path, &other);
    expect_same_graph(db, &g5, "reopen after optimize");
    assert_int_equal(iqdb_check(db), IQDB_OK);
    assert_int_equal(iqdb_close(db), IQDB_OK);
    /* a read-only handle cannot optimize */
    iqdb_options ro = other;
    ro.read_only = 1;
    db = open_ok(path, &ro);
    assert_int_equal(iqdb_optimize(db), IQDB_READONLY);
    assert_int_equal(iqdb_close(db), IQDB_OK);
    free(g1.p);
    free(g3.p);
    free(g5.p);
}

static void test_durable_format_version(void **state) {
    (void)state;
    iqdb_options o = opts(DIM, IQDB_METRIC_L2);
    int versions[10];
    make_db(&o, versions);
    size_t len;
    uint8_t *s = read_file(path, &len), *b = malloc(len);
    const struct {
        uint32_t version;
        int rc;
    } cases[] = {{IQDB__FORMAT_VERSION + 1, IQDB_FORMAT},
                 {UINT32_MAX, IQDB_FORMAT},
                 {0, IQDB_CORRUPT_SNAPSHOT},
                 {IQDB__FORMAT_VERSION, IQDB_OK},
                 {1, IQDB_OK}}; /* version 1 (no keys) is still read, and rewritten as the current
                                   one (last: the rewrite moves the WAL to the next generation) */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(b, s, len);
        iqdb__put32(b + 8, cases[i].version);
        iqdb__put32(b + 60, iqdb__crc32c(0, b, 60));
        write_file(path, b, len);
        int rc = open_rc(path, &o);
        if (rc != cases[i].rc) print_error("case %zu: version %u\n", i, cases[i].version);
        assert_int_equal(rc, cases[i].rc);
        if (rc == IQDB_FORMAT) assert_non_null(strstr(iqdb_errmsg(NULL), "newer"));
    }
    /* a WAL of a newer version is refused too */
    write_file(path, s, len);
    size_t wl;
    uint8_t *w = read_file(wal_path, &wl);
    assert_int_equal(wl, IQDB__WAL_HDR);
    iqdb__put32(w + 8, IQDB__FORMAT_VERSION + 1);
    iqdb__put32(w + 36, iqdb__crc32c(0, w, 36));
    write_file(wal_path, w, wl);
    assert_int_equal(open_rc(path, &o), IQDB_FORMAT);
    free(w);
    free(b);
    free(s);
}

/* Files that are not iqdb snapshots: refused with IQDB_FORMAT and left as they were. */
static void test_durable_foreign_file(void **state) {
    (void)state;
    iqdb_options o = opts(DIM, IQDB_METRIC_L2);
    const struct {
        const char *bytes;
        size_t len;
        int rc;
    } cases[] = {
        {"", 0, IQDB_FORMAT},
        {"IQDBSNA", 7, IQDB_FORMAT},
        {"SQLite format 3\0 and the rest of a page", 40, IQDB_FORMAT},
        {"IQDBWAL\0 a WAL where the snapshot should be.....", 48, IQDB_FORMAT},
        {"IQDBSNAP but the header is cut short", 36, IQDB_CORRUPT_SNAPSHOT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_file(path, cases[i].bytes, cases[i].len);
        remove(wal_path);
        int rc = open_rc(path, &o);
        if (rc != cases[i].rc) print_error("case %zu\n", i);
        assert_int_equal(rc, cases[i].rc);
        size_t len;
        uint8_t *b = read_file(path, &len);
        assert_int_equal(len, cases[i].len); /* never overwritten */
        if (len) assert_memory_equal(b, cases[i].bytes, len);
        free(b);
        o.read_only = 1; /* also read-only */
        assert_int_equal(open_rc(path, &o), cases[i].rc);
        o.read_only = 0;
    }
}

/* ============================================================================================ */
/* Read-only handles                                                                            */
/* ============================================================================================ */

static void test_durable_read_only(void **state) {
    (void)state;
    iqdb_options o = opts(DIM, IQDB_METRIC_L2);
    int versions[12] = {0};
    make_db(&o, versions);
    /* leave a record in the WAL, and a torn tail after it */
    iqdb *db = open_ok(path, &o);
    put(db, 10, 4);
    versions[10] = 4;
    size_t wl;
    uint8_t *w = read_file(wal_path, &wl);
    size_t sl;
    uint8_t *s = read_file(path, &sl);
    assert_int_equal(iqdb_close(db), IQDB_OK);
    write_file(path, s, sl);
    uint8_t *torn = malloc(wl + 20);
    memcpy(torn, w, wl);
    memset(torn + wl, 0x5a, 20);
    write_file(wal_path, torn, wl + 20);

    iqdb_options ro = o;
    ro.read_only = 1;
    db = open_ok(path, &ro);
    expect_content(db, versions, 12); /* the WAL record replayed in memory */
    float v[DIM] = {0};
    int existed = 7;
    assert_int_equal(iqdb_upsert(db, 1, v, NULL), IQDB_READONLY);
    uint64_t id = 1;
    assert_int_equal(iqdb_upsert_batch(db, 1, &id, v, NULL), IQDB_READONLY);
    assert_int_equal(iqdb_delete(db, 1, &existed), IQDB_READONLY);
    assert_int_equal(existed, 0);
    assert_int_equal(iqdb_checkpoint(db), IQDB_READONLY);
    /* reads work */
    iqdb_hit hits[12];
    size_t n;
    assert_int_equal(iqdb_search(db, v, 12, NULL, hits, &n, NULL), IQDB_OK);
    assert_int_equal(n, 10);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    iqdb_stats st = stats_of(db);
    assert_int_equal(st.durable, 1);
    assert_int_equal(st.read_only, 1);
    assert_int_equal(st.last_lsn, st.checkpoint_lsn + 1);
    expect_content(db, versions, 12); /* the refused writes changed nothing */
    assert_int_equal(iqdb_close(db), IQDB_OK);
    /* nothing was changed on disk: no checkpoint at close, the torn tail not cut */
    size_t l2;
    uint8_t *w2 = read_file(wal_path, &l2);
    assert_int_equal(l2, wl + 20);
    assert_memory_equal(w2, torn, l2);
    free(w2);
    uint8_t *s2 = read_file(path, &l2);
    assert_int_equal(l2, sl);
    assert_memory_equal(s2, s, sl);
    free(s2);
    /* a read-only open without a WAL file: the snapshot alone */
    remove(wal_path);
    db = open_ok(path, &ro);
    versions[10] = 0;
    expect_content(db, versions, 12);
    assert_int_equal(iqdb_close(db), IQDB_OK);
    assert_int_equal(file_size(wal_path), -1);
    free(torn);
    free(w);
    free(s);
}

/* ============================================================================================ */
/* iqdb_checkpoint and iqdb_close                                                               */
/* ============================================================================================ */

static void test_durable_checkpoint(void **state) {
    (void)state;
    iqdb_options o = opts(DIM, IQDB_METRIC_L2);
    iqdb *db = open_ok(path, &o);
    int versions[8] = {0};
    for (int id = 0; id < 6; id++) {
        put(db, (uint64_t)id, 2);
        versions[id] = 2;
    }
    iqdb_stats s = stats_of(db);
    assert_int_equal(s.last_lsn, 6);
    assert_true(s.wal_bytes > IQDB__WAL_HDR);
    assert_int_equal(iqdb_checkpoint(db), IQDB_OK);
    s = stats_of(db);
    assert_int_equal(s.generation, 2);
    assert_int_equal(s.checkpoint_lsn, 6);
    assert_int_equal(s.checkpoints, 1);
    assert_int_equal(s.wal_bytes, IQDB__WAL_HDR);
    assert_int_equal(file_size(wal_path), IQDB__WAL_HDR);
    char tmp[320];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_int_equal(file_size(tmp), -1); /* renamed into place */
    /* edge: nothing new since the last checkpoint: no new snapshot */
    assert_int_equal(iqdb_checkpoint(db), IQDB_OK);
    assert_int_equal(stats_of(db).generation, 2);
    assert_int_equal(stats_of(db).checkpoints, 1);
    /* the snapshot alone holds the state: a reopen with the WAL removed sees everything */
    put(db, 6, 1);
    assert_int_equal(iqdb_checkpoint(db), IQDB_OK);
    versions[6] = 1;
    assert_int_equal(iqdb_close(db), IQDB_OK);
    remove(wal_path);
    db = open_ok(path, &o);
    expect_content(db, versions, 8);
    assert_int_equal(stats_of(db).generation, 3);
    assert_int_equal(iqdb_close(db), IQDB_OK);
    /* errors and edges: NULL, an in-memory handle (nothing to do) */
    assert_int_equal(iqdb_checkpoint(NULL), IQDB_MISUSE);
    db = open_ok(NULL, &o);
    put(db, 1, 1);
    assert_int_equal(iqdb_checkpoint(db), IQDB_OK);
    assert_int_equal(iqdb_close(db), IQDB_OK);
}

/* The WAL passing checkpoint_bytes triggers a checkpoint by itself. */
static void test_durable_checkpoint_automatic(void **state) {
    (void)state;
    iqdb_options o = opts(DIM, IQDB_METRIC_L2);
    o.checkpoint_bytes = 400; /* a few records */
    iqdb *db = open_ok(path, &o);
    int versions[40] = {0};
    for (int id = 0; id < 40; id++) {
        put(db, (uint64_t)id, 1);
        versions[id] = 1;
        assert_true(stats_of(db).wal_bytes <= 400 + 200); /* never far past the limit */
    }
    iqdb_stats s = stats_of(db);
    assert_true(s.checkpoints >= 5);
    assert_int_equal(s.generation, 1 + s.checkpoints);
    assert_int_equal(iqdb_close(db), IQDB_OK);
    db = open_ok(path, &o);
    expect_content(db, versions, 40);
    assert_int_equal(iqdb_close(db), IQDB_OK);
    /* edge: UINT64_MAX never checkpoints by itself */
    o.checkpoint_bytes = UINT64_MAX;
    db = open_ok(path, &o);
    for (int id = 0; id < 40; id++) put(db, (uint64_t)id, 2);
    assert_int_equal(stats_of(db).checkpoints, 0);
    assert_int_equal(iqdb_close(db), IQDB_OK);
}

static void test_durable_close_checkpoints(void **state) {
    (void)state;
    iqdb_options o = opts(DIM, IQDB_METRIC_L2);
    int versions[10];
    make_db(&o, versions); /* closed after 11 writes */
    assert_int_equal(file_size(wal_path), IQDB__WAL_HDR);
    size_t len;
    uint8_t *s = read_file(path, &len);
    assert_int_equal(iqdb__get64(s + 32), 2);  /* generation: one checkpoint, by close */
    assert_int_equal(iqdb__get64(s + 40), 11); /* LSN */
    iqdb *db = open_ok(path, &o);
    iqdb_stats st = stats_of(db);
    assert_int_equal(st.generation, 2);
    assert_int_equal(st.checkpoint_lsn, 11);
    assert_int_equal(st.last_lsn, 11);
    expect_content(db, versions, 10);
    /* edge: closing with nothing new writes nothing */
    assert_int_equal(iqdb_close(db), IQDB_OK);
    size_t len2;
    uint8_t *s2 = read_file(path, &len2);
    assert_int_equal(len2, len);
    assert_memory_equal(s2, s, len);
    free(s);
    free(s2);
    assert_int_equal(iqdb_close(NULL), IQDB_OK);
}

/* A failed fsync: the write reports it, the handle turns fatal (writes and checkpoints refused,
 * reads served), close reports IQDB_FATAL, and a reopen recovers. */
static void test_durable_fatal_fsync(void **state) {
    (void)state;
    simfs *fs = simfs_new();
    iqdb__io_set_default(simfs_io(fs));
    iqdb_options o = opts(DIM, IQDB_METRIC_L2);
    iqdb *db = open_ok("/sim/db", &o);
    put(db, 1, 1);
    simfs_fail(fs, SIMFS_OP_SYNC, 1, 0, 0); /* the next fsync only: never retried */
    float v[DIM];
    vec_of(v, 2, 1);
    assert_int_equal(iqdb_upsert(db, 2, v, NULL), IQDB_IOERR_FSYNC);
    assert_true(simfs_failed(fs));
    iqdb_stats s = stats_of(db);
    assert_int_equal(s.fatal, 1);
    assert_true(s.durable_lsn < s.last_lsn);
    assert_int_equal(iqdb_upsert(db, 3, v, NULL), IQDB_FATAL);
    int existed = 9;
    assert_int_equal(iqdb_delete(db, 1, &existed), IQDB_FATAL);
    assert_int_equal(existed, 0);
    assert_int_equal(iqdb_delete(db, 12345, NULL), IQDB_FATAL); /* also for an absent id */
    assert_int_equal(iqdb_checkpoint(db), IQDB_FATAL);
    assert_non_null(strstr(iqdb_errmsg(db), "fsync"));
    /* reads: the acknowledged write, and the one whose fsync failed (visible, not durable) */
    float got[DIM];
    assert_int_equal(iqdb_get(db, 1, got, NULL), IQDB_OK);
    assert_int_equal(iqdb_get(db, 2, got, NULL), IQDB_OK);
    assert_int_equal(iqdb_get(db, 3, got, NULL), IQDB_NOTFOUND);
    uint64_t n;
    assert_int_equal(iqdb_count(db, &n), IQDB_OK);
    assert_int_equal(n, 2);
    assert_int_equal(simfs_sync_retries(fs), 0);
    assert_int_equal(iqdb_close(db), IQDB_FATAL);
    assert_int_equal(simfs_sync_retries(fs), 0);
    /* reopen: recovers what is on disk */
    db = open_ok("/sim/db", &o);
    float want[DIM];
    vec_of(want, 1, 1);
    assert_int_equal(iqdb_get(db, 1, got, NULL), IQDB_OK);
    assert_memory_equal(got, want, sizeof got);
    assert_int_equal(iqdb_get(db, 3, got, NULL), IQDB_NOTFOUND);
    assert_int_equal(stats_of(db).fatal, 0);
    put(db, 3, 1); /* writable again */
    assert_int_equal(iqdb_check(db), IQDB_OK);
    assert_int_equal(iqdb_close(db), IQDB_OK);
    iqdb__io_set_default(NULL);
    simfs_free(fs);
}

/* ============================================================================================ */
/* Options                                                                                      */
/* ============================================================================================ */

static void test_durable_compression_options(void **state) {
    (void)state;
    const struct {
        iqdb_compression c;
        int32_t level;
        int rc; /* IQDB_OK means: OK when compiled in, else IQDB_UNSUPPORTED */
    } cases[] = {
        {IQDB_COMPRESS_DEFAULT, 0, IQDB_OK},    {IQDB_COMPRESS_NONE, 0, IQDB_OK},
        {IQDB_COMPRESS_NONE, 1, IQDB_INVALID},  {IQDB_COMPRESS_ZSTD, 0, IQDB_OK},
        {IQDB_COMPRESS_ZSTD, 1, IQDB_OK},       {IQDB_COMPRESS_ZSTD, 22, IQDB_OK},
        {IQDB_COMPRESS_ZSTD, 23, IQDB_INVALID}, {IQDB_COMPRESS_ZSTD, -1, IQDB_INVALID},
        {IQDB_COMPRESS_LZ4, 0, IQDB_OK},        {IQDB_COMPRESS_LZ4, 12, IQDB_OK},
        {IQDB_COMPRESS_LZ4, 13, IQDB_INVALID},  {IQDB_COMPRESS_LZ4, INT32_MIN, IQDB_INVALID},
        {(iqdb_compression)4, 0, IQDB_INVALID}, {(iqdb_compression)-1, 0, IQDB_INVALID},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        iqdb_options o = opts(DIM, IQDB_METRIC_L2);
        o.compression = cases[i].c;
        o.compression_level = cases[i].level;
        int want = cases[i].rc;
        if (want == IQDB_OK && !iqdb_compression_available(cases[i].c)) want = IQDB_UNSUPPORTED;
        int rc = open_rc(path, &o);
        if (rc != want) print_error("case %zu: %d, want %d\n", i, rc, want);
        assert_int_equal(rc, want);
        if (rc != IQDB_OK) assert_string_not_equal(iqdb_errmsg(NULL), "");
        /* in memory the options are validated the same way */
        assert_int_equal(open_rc(NULL, &o), want);
        remove(path);
        remove(wal_path);
    }
    /* the codec is the file's business when reading: a zstd database reopens under NONE and
     * the next checkpoint writes an uncompressed snapshot */
    if (!iqdb_compression_available(IQDB_COMPRESS_ZSTD)) return;
    iqdb_options o = opts(DIM, IQDB_METRIC_L2);
    o.compression = IQDB_COMPRESS_ZSTD;
    int versions[10];
    make_db(&o, versions);
    size_t len;
    uint8_t *s = read_file(path, &len);
    assert_int_equal(iqdb__get32(s + 28), IQDB__CODEC_ZSTD);
    free(s);
    o.compression = IQDB_COMPRESS_NONE;
    iqdb *db = open_ok(path, &o);
    expect_content(db, versions, 10);
    put(db, 0, 3);
    versions[0] = 3;
    assert_int_equal(iqdb_close(db), IQDB_OK);
    s = read_file(path, &len);
    assert_int_equal(iqdb__get32(s + 28), IQDB__CODEC_NONE);
    free(s);
    o.compression = IQDB_COMPRESS_LZ4;
    if (!iqdb_compression_available(IQDB_COMPRESS_LZ4)) return;
    db = open_ok(path, &o);
    expect_content(db, versions, 10);
    assert_int_equal(iqdb_close(db), IQDB_OK);
}

static void test_durable_sync_options(void **state) {
    (void)state;
    const struct {
        iqdb_sync sync;
        uint32_t period;
        uint32_t reserved;
        int rc;
        iqdb_sync reported;
    } cases[] = {
        {IQDB_SYNC_DEFAULT, 0, 0, IQDB_OK, IQDB_SYNC_ALWAYS},
        {IQDB_SYNC_ALWAYS, 0, 0, IQDB_OK, IQDB_SYNC_ALWAYS},
        {IQDB_SYNC_PERIODIC, 0, 0, IQDB_OK, IQDB_SYNC_PERIODIC}, /* 0: the default period */
        {IQDB_SYNC_PERIODIC, 1, 0, IQDB_OK, IQDB_SYNC_PERIODIC},
        {IQDB_SYNC_PERIODIC, 3600000, 0, IQDB_OK, IQDB_SYNC_PERIODIC},
        {IQDB_SYNC_PERIODIC, 3600001, 0, IQDB_INVALID, 0},
        {IQDB_SYNC_ALWAYS, UINT32_MAX, 0, IQDB_INVALID, 0}, /* validated whatever the policy */
        {IQDB_SYNC_NEVER, 0, 0, IQDB_OK, IQDB_SYNC_NEVER},
        {(iqdb_sync)4, 0, 0, IQDB_INVALID, 0},
        {(iqdb_sync)-1, 0, 0, IQDB_INVALID, 0},
        {IQDB_SYNC_ALWAYS, 0, 1, IQDB_INVALID, 0}, /* durability_reserved */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        iqdb_options o = opts(DIM, IQDB_METRIC_L2);
        o.sync = cases[i].sync;
        o.sync_period_ms = cases[i].period;
        o.durability_reserved = cases[i].reserved;
        iqdb *db = NULL;
        int rc = iqdb_open(path, &o, &db);
        if (rc != cases[i].rc) print_error("case %zu: %d (%s)\n", i, rc, iqdb_errmsg(NULL));
        assert_int_equal(rc, cases[i].rc);
        if (rc == IQDB_OK) {
            assert_int_equal(stats_of(db).sync, cases[i].reported);
            put(db, 1, 1);
            assert_int_equal(iqdb_close(db), IQDB_OK);
        } else {
            assert_null(db);
            assert_int_equal(open_rc(NULL, &o), cases[i].rc);
        }
    }
}

/* ============================================================================================ */
/* iqdb_stats and iqdb_compression_available                                                    */
/* ============================================================================================ */

static void test_durable_stats(void **state) {
    (void)state;
    iqdb_options o = opts(DIM, IQDB_METRIC_L2);
    /* in memory: every durability field is 0 */
    iqdb *db = open_ok(NULL, &o);
    put(db, 1, 1);
    iqdb_stats s = stats_of(db);
    assert_int_equal(s.durable, 0);
    assert_int_equal(s.read_only + s.fatal + (int)s.sync, 0);
    assert_int_equal(s.last_lsn + s.durable_lsn + s.checkpoint_lsn + s.generation, 0);
    assert_int_equal(s.wal_bytes + s.wal_syncs + s.checkpoints, 0);
    assert_int_equal(iqdb_close(db), IQDB_OK);

    /* ALWAYS: each write is durable when it returns */
    db = open_ok(path, &o);
    s = stats_of(db);
    assert_int_equal(s.durable, 1);
    assert_int_equal(s.read_only, 0);
    assert_int_equal(s.fatal, 0);
    assert_int_equal(s.sync, IQDB_SYNC_ALWAYS);
    assert_int_equal(s.generation, 1);
    assert_int_equal(s.last_lsn, 0);
    assert_int_equal(s.durable_lsn, 0);
    assert_int_equal(s.checkpoint_lsn, 0);
    assert_int_equal(s.wal_bytes, IQDB__WAL_HDR);
    assert_int_equal(s.wal_syncs, 0);
    assert_int_equal(s.checkpoints, 0);
    put(db, 1, 1);
    put(db, 2, 1);
    s = stats_of(db);
    assert_int_equal(s.last_lsn, 2);
    assert_int_equal(s.durable_lsn, 2);
    assert_int_equal(s.wal_syncs, 2); /* one writer: one fsync per write */
    assert_int_equal(s.wal_bytes, (uint64_t)file_size(wal_path));
    assert_int_equal(iqdb_delete(db, 99, NULL), IQDB_OK); /* absent: nothing logged */
    assert_int_equal(stats_of(db).last_lsn, 2);
    assert_int_equal(iqdb_delete(db, 1, NULL), IQDB_OK);
    assert_int_equal(stats_of(db).last_lsn, 3);
    /* a caller compiled against an older, smaller iqdb_stats: fields past its size untouched */
    iqdb_stats old;
    memset(&old, 0xab, sizeof old);
    old.struct_size = offsetof(iqdb_stats, durable);
    assert_int_equal(iqdb_stats_get(db, &old), IQDB_OK);
    assert_int_equal(old.count, 1);
    assert_int_equal(old.durable, (int)0xabababab);
    assert_int_equal(old.checkpoints, 0xababababababababull);
    assert_int_equal(iqdb_close(db), IQDB_OK);

    /* NEVER: logged, never fsynced */
    o.sync = IQDB_SYNC_NEVER;
    db = open_ok(path, &o);
    s = stats_of(db);
    assert_int_equal(s.generation, 2); /* close checkpointed */
    assert_int_equal(s.checkpoint_lsn, 3);
    put(db, 5, 1);
    s = stats_of(db);
    assert_int_equal(s.sync, IQDB_SYNC_NEVER);
    assert_int_equal(s.last_lsn, 4);
    assert_int_equal(s.durable_lsn, 3);
    assert_int_equal(s.wal_syncs, 0);
    assert_int_equal(iqdb_checkpoint(db), IQDB_OK); /* a checkpoint makes it durable */
    s = stats_of(db);
    assert_int_equal(s.durable_lsn, 4);
    assert_int_equal(s.checkpoints, 1);
    assert_int_equal(iqdb_close(db), IQDB_OK);
    /* errors */
    assert_int_equal(iqdb_stats_get(NULL, &s), IQDB_MISUSE);
}

static void test_durable_compression_available(void **state) {
    (void)state;
    assert_int_equal(iqdb_compression_available(IQDB_COMPRESS_DEFAULT), 1);
    assert_int_equal(iqdb_compression_available(IQDB_COMPRESS_NONE), 1);
    assert_int_equal(iqdb_compression_available((iqdb_compression)4), 0);
    assert_int_equal(iqdb_compression_available((iqdb_compression)-1), 0);
    /* it tells the truth: a codec it reports can write and read a snapshot, one it does not
     * report is refused with IQDB_UNSUPPORTED */
    const iqdb_compression codecs[] = {IQDB_COMPRESS_ZSTD, IQDB_COMPRESS_LZ4};
    for (size_t i = 0; i < 2; i++) {
        int avail = iqdb_compression_available(codecs[i]);
        assert_true(avail == 0 || avail == 1);
        iqdb_options o = opts(DIM, IQDB_METRIC_L2);
        o.compression = codecs[i];
        iqdb *db = NULL;
        int rc = iqdb_open(path, &o, &db);
        assert_int_equal(rc, avail ? IQDB_OK : IQDB_UNSUPPORTED);
        printf("compression %d: %s\n", (int)codecs[i], avail ? "available" : "not compiled in");
        if (!avail) continue;
        put(db, 1, 1);
        assert_int_equal(iqdb_close(db), IQDB_OK);
        size_t len;
        uint8_t *s = read_file(path, &len);
        assert_int_equal(iqdb__get32(s + 28), i == 0 ? IQDB__CODEC_ZSTD : IQDB__CODEC_LZ4);
        free(s);
        db = open_ok(path, &o);
        int versions[2] = {0, 1};
        expect_content(db, versions, 2);
        assert_int_equal(iqdb_close(db), IQDB_OK);
        remove(path);
        remove(wal_path);
    }
}

/* ============================================================================================ */
/* The WAL damage rule (docs/FORMAT.md, recovery rule 4)                                        */
/* ============================================================================================ */

/* Record offsets of a WAL image. */
static int records_of(const uint8_t *w, size_t len, size_t *off, int max) {
    int n = 0;
    for (size_t p = IQDB__WAL_HDR; p + IQDB__REC_HDR <= len && n < max;) {
        off[n++] = p;
        p += IQDB__REC_HDR + ((iqdb__get32(w + p + 32) + 7u) & ~7u);
    }
    return n;
}

/* Opens a snapshot + WAL image pair on a fresh simulated disk; returns the status, the handle
 * in *out (OK only), and the WAL as the open left it. */
static int open_image(const uint8_t *snap, size_t sl, const uint8_t *wal, size_t wl, iqdb **out,
                      simfs **fs_out) {
    simfs *fs = simfs_new();
    simfs_put(fs, "/sim/db", snap, sl);
    simfs_put(fs, "/sim/db.wal", wal, wl);
    iqdb__io_set_default(simfs_io(fs));
    iqdb_options o = opts(DIM, IQDB_METRIC_L2);
    *out = NULL;
    *fs_out = fs;
    return iqdb_open("/sim/db", &o, out);
}

/* Writes ids 1..3: id 1 under ALWAYS (acknowledged, durable), then ids 2 and 3 as one group
 * commit leaves them — appended, the fsync not yet done — which a PERIODIC handle with a long
 * period reproduces deterministically: record 2 and record 3 both carry "synced LSN 1". Then
 * (all_always) the same with ids 2 and 3 under ALWAYS too: record 3 carries "synced LSN 2". The
 * images are the files a crashed process leaves. */
static void build_images(int all_always, uint8_t **snap, size_t *sl, uint8_t **wal, size_t *wl) {
    simfs *fs = simfs_new();
    iqdb__io_set_default(simfs_io(fs));
    iqdb_options o = opts(DIM, IQDB_METRIC_L2);
    iqdb *db = open_ok("/sim/db", &o);
    put(db, 1, 1);
    if (all_always) {
        put(db, 2, 1);
        put(db, 3, 1);
        assert_int_equal(stats_of(db).durable_lsn, 3);
    }
    simfs *crash = simfs_clone(fs);
    assert_int_equal(iqdb_close(db), IQDB_OK);
    simfs_free(fs);
    if (!all_always) {
        iqdb__io_set_default(simfs_io(crash));
        o.sync = IQDB_SYNC_PERIODIC;
        o.sync_period_ms = 3600000;
        db = open_ok("/sim/db", &o); /* replays record 1 */
        put(db, 2, 1);
        put(db, 3, 1);
        assert_int_equal(stats_of(db).last_lsn, 3); /* 2 and 3: written, not yet fsynced */
        simfs *again = simfs_clone(crash);
        assert_int_equal(iqdb_close(db), IQDB_OK);
        simfs_free(crash);
        crash = again;
    }
    assert_true(simfs_get(crash, "/sim/db", snap, sl));
    assert_true(simfs_get(crash, "/sim/db.wal", wal, wl));
    simfs_free(crash);
    iqdb__io_set_default(NULL);
    size_t off[4];
    assert_int_equal(records_of(*wal, *wl, off, 4), 3);
    /* the synced-LSN field of record 3 says what the writer knew */
    assert_int_equal(iqdb__get64(*wal + off[2] + 24), all_always ? 2 : 1);
}

static void expect_ids(iqdb *db, int n_present) {
    for (uint64_t id = 1; id <= 3; id++) {
        float got[DIM];
        int rc = iqdb_get(db, id, got, NULL);
        assert_int_equal(rc, (int)id <= n_present ? IQDB_OK : IQDB_NOTFOUND);
    }
}

/* Damage to a record that a later record proves was synced (acknowledged under ALWAYS) is
 * corruption: the open fails and nothing is cut. */
static void test_durable_wal_damaged_synced_record(void **state) {
    (void)state;
    uint8_t *snap, *wal;
    size_t sl, wl, off[4];
    build_images(1, &snap, &sl, &wal, &wl);
    records_of(wal, wl, off, 4);
    for (int rec = 0; rec < 2; rec++) {     /* records 1 and 2: each has a successor */
        for (int how = 0; how < 3; how++) { /* payload flip, header flip, lost (zeros) */
            uint8_t *b = malloc(wl);
            memcpy(b, wal, wl);
            size_t len = off[rec + 1] - off[rec];
            if (how == 0) b[off[rec] + IQDB__REC_HDR + 9] ^= 0x10;
            if (how == 1) b[off[rec] + 12] ^= 0x01; /* the LSN */
            if (how == 2) memset(b + off[rec], 0, len);
            iqdb *db;
            simfs *fs;
            int rc = open_image(snap, sl, b, wl, &db, &fs);
            if (rc != IQDB_CORRUPT_WAL) print_error("record %d, damage %d: %d\n", rec + 1, how, rc);
            assert_int_equal(rc, IQDB_CORRUPT_WAL);
            assert_non_null(strstr(iqdb_errmsg(NULL), "synced"));
            uint8_t *after;
            size_t al;
            assert_true(simfs_get(fs, "/sim/db.wal", &after, &al));
            assert_int_equal(al, wl); /* never skipped, never cut */
            assert_memory_equal(after, b, wl);
            free(after);
            iqdb__io_set_default(NULL);
            simfs_free(fs);
            free(b);
        }
    }
    /* the limit of the rule: the last record has no successor to vouch for it, so damage to it
     * cannot be told from a torn write, and it is cut (docs/FORMAT.md says so) */
    wal[off[2] + IQDB__REC_HDR + 9] ^= 0x10;
    iqdb *db;
    simfs *fs;
    assert_int_equal(open_image(snap, sl, wal, wl, &db, &fs), IQDB_OK);
    expect_ids(db, 2);
    assert_int_equal(iqdb_close(db), IQDB_OK);
    iqdb__io_set_default(NULL);
    simfs_free(fs);
    free(snap);
    free(wal);
}

/* Group commit: records 2 and 3 were appended, then the power failed before their fsync; the
 * disk kept record 3 and lost (or garbled) record 2. Neither was acknowledged, record 3 does not
 * claim record 2 was synced, so this is a torn tail: the open succeeds with record 1 and cuts
 * the file at record 2, on disk. */
static void test_durable_wal_lost_unsynced_records(void **state) {
    (void)state;
    uint8_t *snap, *wal;
    size_t sl, wl, off[4];
    build_images(0, &snap, &sl, &wal, &wl);
    records_of(wal, wl, off, 4);
    for (int how = 0; how < 3; how++) { /* record 2: payload flip, header flip, lost (zeros) */
        uint8_t *b = malloc(wl);
        memcpy(b, wal, wl);
        if (how == 0) b[off[1] + IQDB__REC_HDR + 9] ^= 0x10;
        if (how == 1) b[off[1] + 12] ^= 0x01;
        if (how == 2) memset(b + off[1], 0, off[2] - off[1]);
        iqdb *db;
        simfs *fs;
        int rc = open_image(snap, sl, b, wl, &db, &fs);
        if (rc != IQDB_OK) print_error("damage %d: %d (%s)\n", how, rc, iqdb_errmsg(NULL));
        assert_int_equal(rc, IQDB_OK);
        expect_ids(db, 1); /* record 3 is gone with record 2: the state stays a prefix */
        uint8_t *after;
        size_t al;
        assert_true(simfs_get(fs, "/sim/db.wal", &after, &al));
        assert_int_equal(al, off[1]); /* cut on disk before the open returned */
        free(after);
        assert_int_equal(iqdb_check(db), IQDB_OK);
        assert_int_equal(iqdb_close(db), IQDB_OK);
        iqdb__io_set_default(NULL);
        simfs_free(fs);
        free(b);
    }
    /* the control: undamaged, all three records replay */
    iqdb *db;
    simfs *fs;
    assert_int_equal(open_image(snap, sl, wal, wl, &db, &fs), IQDB_OK);
    expect_ids(db, 3);
    assert_int_equal(iqdb_close(db), IQDB_OK);
    iqdb__io_set_default(NULL);
    simfs_free(fs);
    /* but damage to record 1, which record 2 proves synced, is corruption here too */
    wal[off[0] + IQDB__REC_HDR + 9] ^= 0x10;
    assert_int_equal(open_image(snap, sl, wal, wl, &db, &fs), IQDB_CORRUPT_WAL);
    iqdb__io_set_default(NULL);
    simfs_free(fs);
    free(snap);
    free(wal);
}

/* ============================================================================================ */
/* IVF and quantized indexes                                                                    */
/* ============================================================================================ */

enum { IDIM = 16, IROWS = 3000, IQ = 25, IK = 10 };

/* Rows around 12 centres, so the lists mean something; deterministic. */
static void ivf_rows(float *v, size_t n, uint32_t seed) {
    uint32_t x = seed * 2654435761u + 1u;
    for (size_t i = 0; i < n; i++)
        for (int d = 0; d < IDIM; d++) {
            x = x * 1664525u + 1013904223u;
            float noise = (float)(x >> 8) / 16777216.0f - 0.5f;
            v[i * IDIM + d] = (float)((i % 12) * (d % 5 == (int)(i % 5) ? 3 : 1)) + noise;
        }
}

/* Every query's hits (ids and distances) into out (IQ * IK, padded with id UINT64_MAX). */
static void ivf_results(iqdb *db, iqdb_hit *out) {
    float q[IQ * IDIM];
    ivf_rows(q, IQ, 99);
    for (int i = 0; i < IQ; i++) {
        size_t n = 0;
        iqdb_search_info info = {.struct_size = sizeof info};
        assert_int_equal(iqdb_search(db, q + i * IDIM, IK, NULL, out + i * IK, &n, &info), IQDB_OK);
        assert_int_equal(n, IK);
        assert_true(info.strategy == IQDB_STRATEGY_IVF || info.strategy == IQDB_STRATEGY_CODES);
    }
}

static void expect_same_results(const iqdb_hit *a, const iqdb_hit *b, const char *what) {
    for (int i = 0; i < IQ * IK; i++)
        if (a[i].id != b[i].id || memcmp(&a[i].distance, &b[i].distance, sizeof(float)) != 0) {
            print_error("%s: query %d hit %d: id %llu %.9g, before %llu %.9g\n", what, i / IK,
                        i % IK, (unsigned long long)b[i].id, (double)b[i].distance,
                        (unsigned long long)a[i].id, (double)a[i].distance);
            fail();
        }
}

static void copy_file(const char *from, const char *to) {
    size_t n;
    uint8_t *b = read_file(from, &n);
    write_file(to, b, n);
    free(b);
}

/* Write, close, reopen with other options: the index kind, its parameters and the quantizer
 * come from the file; the trained structures are loaded (trained_rows and the list count are
 * unchanged, nothing is trained), results are identical bit for bit, and iqdb_check passes.
 * Then WAL replay: writes after the snapshot, a crash image taken with every record synced,
 * and the image must equal the live handle (the replayed rows assigned to lists). */
static void test_durable_ivf_reopen(void **state) {
    (void)state;
    static const struct {
        iqdb_index_kind index;
        iqdb_quant quant;
        iqdb_metric metric;
        int optimize;
    } cases[] = {
        {IQDB_INDEX_IVF, IQDB_QUANT_NONE, IQDB_METRIC_L2, 0},
        {IQDB_INDEX_IVF, IQDB_QUANT_SQ8, IQDB_METRIC_COSINE, 1},
        {IQDB_INDEX_IVF, IQDB_QUANT_PQ, IQDB_METRIC_L2, 0},
        {IQDB_INDEX_IVF, IQDB_QUANT_BINARY, IQDB_METRIC_DOT, 1},
        {IQDB_INDEX_FLAT, IQDB_QUANT_SQ8, IQDB_METRIC_L2, 0},
    };
    float *rows = malloc(sizeof(float) * IROWS * IDIM);
    iqdb_id *ids = malloc(sizeof(iqdb_id) * IROWS);
    iqdb_hit *before = malloc(sizeof(iqdb_hit) * IQ * IK);
    iqdb_hit *after = malloc(sizeof(iqdb_hit) * IQ * IK);
    ivf_rows(rows, IROWS, 1);
    for (size_t i = 0; i < IROWS; i++) ids[i] = 1000 + i;
    char image[320];
    snprintf(image, sizeof image, "%s/image", dir);
    char image_wal[330];
    snprintf(image_wal, sizeof image_wal, "%s/image.wal", dir);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        print_message("case %zu: index %d quant %d metric %d\n", c, (int)cases[c].index,
                      (int)cases[c].quant, (int)cases[c].metric);
        remove(path);
        remove(wal_path);
        iqdb_options o = opts(IDIM, cases[c].metric);
        o.index = cases[c].index;
        o.ivf.n_lists = cases[c].index == IQDB_INDEX_IVF ? 8 : 0;
        o.ivf.n_probes = 2;
        o.quant.kind = cases[c].quant;
        o.quant.pq_m = cases[c].quant == IQDB_QUANT_PQ ? 4 : 0;
        o.quant.oversample = cases[c].quant != IQDB_QUANT_NONE ? 3 : 0;
        iqdb *db = open_ok(path, &o);
        assert_int_equal(iqdb_upsert_batch(db, IROWS, ids, rows, NULL), IQDB_OK);
        if (cases[c].optimize) assert_int_equal(iqdb_optimize(db), IQDB_OK);
        assert_int_equal(iqdb_delete(db, 1000 + 7, NULL), IQDB_OK);
        iqdb_stats s0 = stats_of(db);
        assert_int_equal(s0.trained, 1);
        assert_true(s0.trained_rows > 0);
        ivf_results(db, before);
        assert_int_equal(iqdb_close(db), IQDB_OK);

        /* reopen with the defaults: everything comes from the file */
        iqdb_options plain = opts(IDIM, cases[c].metric);
        db = open_ok(path, &plain);
        iqdb_stats s1 = stats_of(db);
        assert_int_equal(s1.index, cases[c].index);
        assert_int_equal(s1.quant, cases[c].quant);
        assert_int_equal(s1.trained, 1);
        assert_int_equal(s1.trained_rows, s0.trained_rows); /* loaded, not trained again */
        assert_int_equal(s1.ivf_lists, s0.ivf_lists);
        assert_int_equal(s1.code_bytes, s0.code_bytes);
        assert_true(s1.mem_codes >= s1.count * s1.code_bytes); /* capacities may differ */
        assert_int_equal(db->opts.ivf.n_probes, 2);
        assert_int_equal(db->opts.quant.oversample, o.quant.oversample);
        assert_int_equal(db->opts.quant.pq_m, o.quant.pq_m);
        ivf_results(db, after);
        expect_same_results(before, after, "after reopen");
        assert_int_equal(iqdb_check(db), IQDB_OK);

        /* writes after the snapshot live in the WAL only; a crash image must replay them into
         * the lists (synced: ALWAYS is the default) */
        float extra[40 * IDIM];
        iqdb_id eids[40];
        ivf_rows(extra, 40, 7);
        for (int i = 0; i < 40; i++) eids[i] = 50000 + (iqdb_id)i;
        assert_int_equal(iqdb_upsert_batch(db, 40, eids, extra, NULL), IQDB_OK);
        assert_int_equal(iqdb_delete(db, 1000 + 8, NULL), IQDB_OK);
        ivf_results(db, before);
        iqdb_stats s2 = stats_of(db);
        copy_file(path, image);
        copy_file(wal_path, image_wal);
        iqdb *img = open_ok(image, &plain);
        iqdb_stats s3 = stats_of(img);
        assert_int_equal(s3.count, s2.count);
        assert_int_equal(s3.trained_rows, s2.trained_rows);
        assert_int_equal(s3.ivf_lists, s2.ivf_lists);
        ivf_results(img, after);
        expect_same_results(before, after, "after WAL replay");
        assert_int_equal(iqdb_check(img), IQDB_OK);
        assert_int_equal(iqdb_close(img), IQDB_OK);
        assert_int_equal(iqdb_close(db), IQDB_OK);
        remove(image);
        remove(image_wal);
    }
    free(rows);
    free(ids);
    free(before);
    free(after);
}

/* iqdb_optimize on a durable handle checkpoints its result: a crash image taken right after it
 * (no write since) loads the retrained index. */
static void test_durable_ivf_optimize_persists(void **state) {
    (void)state;
    iqdb_options o = opts(IDIM, IQDB_METRIC_L2);
    o.index = IQDB_INDEX_IVF;
    float *rows = malloc(sizeof(float) * 1500 * IDIM);
    iqdb_id *ids = malloc(sizeof(iqdb_id) * 1500);
    ivf_rows(rows, 1500, 3);
    for (size_t i = 0; i < 1500; i++) ids[i] = i;
    iqdb *db = open_ok(path, &o);
    assert_int_equal(iqdb_upsert_batch(db, 1000, ids, rows, NULL), IQDB_OK);
    assert_int_equal(stats_of(db).trained, 0); /* below the automatic threshold */
    assert_int_equal(iqdb_checkpoint(db), IQDB_OK);
    assert_int_equal(iqdb_optimize(db), IQDB_OK); /* trains 1,000 rows and checkpoints */
    iqdb_stats s = stats_of(db);
    assert_int_equal(s.trained, 1);
    assert_int_equal(s.trained_rows, 1000);
    char image[320], image_wal[330];
    snprintf(image, sizeof image, "%s/image", dir);
    snprintf(image_wal, sizeof image_wal, "%s/image.wal", dir);
    copy_file(path, image);
    copy_file(wal_path, image_wal);
    iqdb *img = open_ok(image, &o);
    iqdb_stats si = stats_of(img);
    assert_int_equal(si.trained, 1);
    assert_int_equal(si.trained_rows, 1000);
    assert_int_equal(si.ivf_lists, s.ivf_lists);
    assert_int_equal(iqdb_close(img), IQDB_OK);
    /* a read-only handle cannot optimize */
    assert_int_equal(iqdb_close(db), IQDB_OK);
    iqdb_options ro = o;
    ro.read_only = 1;
    db = open_ok(path, &ro);
    assert_int_equal(iqdb_optimize(db), IQDB_READONLY);
    assert_int_equal(iqdb_close(db), IQDB_OK);
    /* codes-only databases are in memory only */
    iqdb_options co = opts(IDIM, IQDB_METRIC_L2);
    co.quant.kind = IQDB_QUANT_SQ8;
    co.quant.flags = IQDB_QUANT_CODES_ONLY;
    assert_int_equal(open_rc(image, &co), IQDB_UNSUPPORTED);
    free(rows);
    free(ids);
}

/* Recomputes the CRCs of an uncompressed snapshot's section `k` (0-based; one block), then the
 * table's and the header's. */
static void recrc_section(uint8_t *s, int k) {
    uint8_t *e = s + IQDB__SNAP_HDR + (size_t)k * IQDB__SNAP_ENTRY;
    size_t off = (size_t)iqdb__get64(e + 8), stored = (size_t)iqdb__get64(e + 16),
           raw = (size_t)iqdb__get64(e + 24);
    assert_int_equal(stored, raw + IQDB__BLOCK_HDR); /* one uncompressed block */
    iqdb__put32(e + 32, iqdb__crc32c(0, s + off, stored));
    iqdb__put32(e + 36, iqdb__crc32c(0, s + off + IQDB__BLOCK_HDR, raw));
    iqdb__put32(s + 52,
                iqdb__crc32c(0, s + IQDB__SNAP_HDR, IQDB__SNAP_SECTIONS * IQDB__SNAP_ENTRY));
    iqdb__put32(s + 60, iqdb__crc32c(0, s, 60));
}

/* Hostile IVF sections and quantizer parameters with valid checksums: every one is
 * IQDB_CORRUPT_SNAPSHOT (never a crash, never a silent index), and the control opens. The IVF
 * module's own test (test_ivf) covers every field of the section; this one goes through the
 * file. */
static void test_durable_ivf_hostile(void **state) {
    (void)state;
    iqdb_options o = opts(IDIM, IQDB_METRIC_L2);
    o.index = IQDB_INDEX_IVF;
    o.ivf.n_lists = 8;
    o.quant.kind = IQDB_QUANT_SQ8;
    float *rows = malloc(sizeof(float) * IROWS * IDIM);
    iqdb_id *ids = malloc(sizeof(iqdb_id) * IROWS);
    ivf_rows(rows, IROWS, 5);
    for (size_t i = 0; i < IROWS; i++) ids[i] = i;
    iqdb *db = open_ok(path, &o);
    assert_int_equal(iqdb_upsert_batch(db, IROWS, ids, rows, NULL), IQDB_OK);
    assert_int_equal(iqdb_close(db), IQDB_OK);
    size_t len;
    uint8_t *s = read_file(path, &len);
    uint8_t *h = malloc(len);
    uint8_t *ivf = s + iqdb__get64(s + IQDB__SNAP_HDR + 3 * IQDB__SNAP_ENTRY + 8) + IQDB__BLOCK_HDR;
    size_t ivf_off = (size_t)(ivf - s);
    size_t first = 64 + 8 * IDIM * 4 + 2 * IDIM * 4; /* header, centroids, SQ8 lo and step */
    uint32_t first_n = iqdb__get32(ivf + first);
    assert_true(first_n > 0);
    static const struct {
        int section; /* 0 params, 3 index */
        size_t at;   /* in the section's content; SIZE_MAX - k: the first list + k */
        uint32_t v;
        const char *what;
    } cases[] = {
        {0, 40, IQDB_QUANT_PQ, "params: another quantizer than the section's"},
        {0, 40, 9, "params: unknown quantizer"},
        {0, 40, IQDB_QUANT_NONE, "params: no quantizer, the section has one"},
        {0, 52, IQDB_QUANT_CODES_ONLY, "params: codes only"},
        {0, 44, 17, "params: pq_m > dim"},
        {3, 24, 9, "n_lists"},
        {3, 24, 0, "zero lists"},
        {3, 28, IDIM + 1, "code size"},
        {3, 40, IROWS + 1, "entry count"},
        {3, SIZE_MAX, 0, "first list length"},
        {3, SIZE_MAX - 1, IROWS + 5, "slot out of range"},
        {3, 64, 0x7f800000u, "infinite centroid"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        memcpy(h, s, len);
        uint8_t *base = cases[c].section == 0 ? params_of(h) : h + ivf_off;
        size_t at =
            cases[c].at >= SIZE_MAX - 1 ? first + (SIZE_MAX - cases[c].at) * 4 : cases[c].at;
        uint32_t v = cases[c].at == SIZE_MAX ? first_n + 1 : cases[c].v;
        iqdb__put32(base + at, v);
        recrc_section(h, cases[c].section);
        write_file(path, h, len);
        int rc = open_rc(path, &o);
        if (rc != IQDB_CORRUPT_SNAPSHOT)
            print_error("case %zu (%s): %d %s\n", c, cases[c].what, rc, iqdb_errmsg(NULL));
        assert_int_equal(rc, IQDB_CORRUPT_SNAPSHOT);
    }
    /* the control: recomputed checksums alone change nothing */
    memcpy(h, s, len);
    recrc_section(h, 3);
    write_file(path, h, len);
    db = open_ok(path, &o);
    assert_int_equal(stats_of(db).count, IROWS);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    assert_int_equal(iqdb_close(db), IQDB_OK);
    free(h);
    free(s);
    free(rows);
    free(ids);
}

/* A big batch is one big WAL record. Its buffer must not stay allocated for the handle's life
 * (it once did: a 60,000 x 784 batch kept 188 MB of scratch), neither after the write nor after
 * a recovery that replayed it. Scratch is everything the stats cannot name, the WAL buffer
 * included. */
static void test_durable_big_batch_buffer_freed(void **state) {
    (void)state;
    enum { BD = 256, BN = 3000 }; /* a ~3 MB record */
    iqdb_options o = opts(BD, IQDB_METRIC_L2);
    o.checkpoint_bytes = UINT64_MAX; /* no checkpoint before the copy below */
    float *rows = malloc(sizeof(float) * BD * BN);
    iqdb_id *ids = malloc(sizeof *ids * BN);
    assert_non_null(rows);
    assert_non_null(ids);
    for (int i = 0; i < BN; i++) {
        ids[i] = (iqdb_id)i;
        for (int d = 0; d < BD; d++) rows[(size_t)i * BD + d] = (float)(i % 97) - (float)d * 0.25f;
    }
    iqdb *db = open_ok(path, &o);
    uint64_t before = stats_of(db).mem_scratch;
    assert_int_equal(iqdb_upsert_batch(db, BN, ids, rows, NULL), IQDB_OK);
    iqdb_stats s = stats_of(db);
    assert_int_equal(s.count, BN);
    assert_true(s.mem_scratch < before + ((uint64_t)1 << 20));
    copy_files("", ".crash"); /* the files as a process that stopped here left them */
    iqdb_close(db);
    copy_files(".crash", "");

    db = open_ok(path, &o); /* replays the batch's record */
    s = stats_of(db);
    assert_int_equal(s.count, BN);
    assert_true(s.mem_scratch < before + ((uint64_t)1 << 20));
    float got[BD];
    assert_int_equal(iqdb_get(db, BN - 1, got, NULL), IQDB_OK);
    assert_memory_equal(got, rows + (size_t)(BN - 1) * BD, sizeof got);
    iqdb_close(db);
    free(rows);
    free(ids);
}

int main(void) {
    iqdbt_simd_gate();
#define T(name) cmocka_unit_test_setup_teardown(test_durable_##name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(create_and_reopen),
        T(reopen_edges),
        T(open_errors),
        T(busy),
        T(mismatch),
        T(index_from_file),
        T(hnsw),
        T(format_version),
        T(foreign_file),
        T(read_only),
        T(checkpoint),
        T(checkpoint_automatic),
        T(close_checkpoints),
        T(fatal_fsync),
        T(compression_options),
        T(sync_options),
        T(stats),
        T(compression_available),
        T(wal_damaged_synced_record),
        T(wal_lost_unsynced_records),
        T(ivf_reopen),
        T(ivf_optimize_persists),
        T(ivf_hostile),
        T(big_batch_buffer_freed),
    };
#undef T
    return cmocka_run_group_tests_name("durable", tests, NULL, NULL);
}
