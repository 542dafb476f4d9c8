/*
 * test_cli.c — end-to-end tests of the `iqdb` command-line tool: the built binary (argv[1]) is
 * run as a child process on small files this test writes, and what it prints or stores is
 * checked against the library, opened here on the same files.
 *
 *  - import of every format (fvecs, bvecs, npy, CSV with and without ids, JSONL with metadata,
 *    IDX plain and gzip-compressed, ivecs ids, Fashion-MNIST-style labels), the records read
 *    back through the library bit for bit;
 *  - malformed inputs (truncated, wrong dimension, NaN, bad JSON of many kinds, damaged gzip):
 *    each exit code 3 with a message naming the problem, and the database unchanged;
 *  - a failing later batch rolled back (fault hook IQDB_CLI_TEST_FAIL_BATCH);
 *  - search output (text and --json, filtered, --exact) equal to iqdb_search's own results;
 *  - get / delete / count / info / check / export round trips;
 *  - the shell driven through stdin; exit codes 2, 3, 4, 5, 6.
 *  - bench: exact recall 1.0, ties with a --gt file counted as hits, CSV / JSON / SVG written.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "iqdb.h"

static const char *g_bin;
static char g_dir[256];
static char g_out[1 << 20], g_err[1 << 16];

/* ---- helpers ------------------------------------------------------------------------------------
 */

static void pathf(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", g_dir, name); }

static void write_file(const char *name, const void *data, size_t len) {
    char p[512];
    pathf(p, sizeof p, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void write_text(const char *name, const char *text) { write_file(name, text, strlen(text)); }

static size_t read_file(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = 0;
    return n;
}

/* Runs the tool in g_dir with the given arguments (NULL-terminated) and stdin text (NULL:
 * /dev/null); stdout lands in g_out, stderr in g_err. Returns the exit code. */
static int run_in(const char *stdin_text, const char *env, ...) {
    char *argv[64];
    int argc = 0;
    argv[argc++] = (char *)g_bin;
    va_list ap;
    va_start(ap, env);
    const char *a;
    while ((a = va_arg(ap, const char *)) && argc < 63) argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    char in[512], out[512], err[512];
    pathf(in, sizeof in, ".stdin");
    pathf(out, sizeof out, ".stdout");
    pathf(err, sizeof err, ".stderr");
    if (stdin_text) write_text(".stdin", stdin_text);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (chdir(g_dir)) _exit(120);
        if (!freopen(stdin_text ? in : "/dev/null", "r", stdin)) _exit(121);
        if (!freopen(out, "w", stdout) || !freopen(err, "w", stderr)) _exit(122);
        if (env) {
            char name[64];
            const char *eq = strchr(env, '=');
            snprintf(name, sizeof name, "%.*s", (int)(eq - env), env);
            setenv(name, eq + 1, 1);
        }
        execv(g_bin, argv);
        _exit(123);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    read_file(out, g_out, sizeof g_out);
    read_file(err, g_err, sizeof g_err);
    return WEXITSTATUS(st);
}
#define RUN(...) run_in(NULL, NULL, __VA_ARGS__, (const char *)NULL)
#define RUN_IN(text, ...) run_in(text, NULL, __VA_ARGS__, (const char *)NULL)
#define RUN_ENV(env, ...) run_in(NULL, env, __VA_ARGS__, (const char *)NULL)

#define EXPECT(code, ...)                                                                      \
    do {                                                                                       \
        int rc_ = RUN(__VA_ARGS__);                                                            \
        if (rc_ != (code))                                                                     \
            fprintf(stderr, "exit %d (want %d)\nstdout: %s\nstderr: %s\n", rc_, (code), g_out, \
                    g_err);                                                                    \
        assert_int_equal(rc_, (code));                                                         \
    } while (0)

static iqdb *open_db(const char *name, uint32_t dim, iqdb_metric metric) {
    char p[512];
    pathf(p, sizeof p, name);
    iqdb_options o;
    iqdb_options_init(&o, dim, metric);
    o.read_only = 1;
    iqdb *db = NULL;
    int rc = iqdb_open(p, &o, &db);
    if (rc) fprintf(stderr, "open %s: %s\n", p, iqdb_errmsg(NULL));
    assert_int_equal(rc, IQDB_OK);
    return db;
}

static uint64_t count_of_m(const char *name, uint32_t dim, iqdb_metric metric) {
    iqdb *db = open_db(name, dim, metric);
    uint64_t n;
    assert_int_equal(iqdb_count(db, &n), IQDB_OK);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    iqdb_close(db);
    return n;
}

static uint64_t count_of(const char *name, uint32_t dim) {
    return count_of_m(name, dim, IQDB_METRIC_L2);
}

static void remove_db(const char *name) {
    char p[512];
    pathf(p, sizeof p, name);
    unlink(p);
    strcat(p, ".wal");
    unlink(p);
}

static void fresh_db(const char *name, const char *dim) {
    remove_db(name);
    EXPECT(0, "create", name, "--dim", dim, "--sync", "never");
}

static uint32_t rng = 12345;
static float frand(void) {
    rng = rng * 1103515245u + 12345u;
    return (float)((rng >> 8) & 0xffff) / 4096.0f - 8.0f;
}

static void put32(unsigned char *b, uint32_t v) {
    b[0] = (unsigned char)v, b[1] = (unsigned char)(v >> 8), b[2] = (unsigned char)(v >> 16),
    b[3] = (unsigned char)(v >> 24);
}

/* An .fvecs image of n x dim values from v (dim word per record). */
static size_t make_fvecs(unsigned char *buf, const float *v, size_t n, size_t dim) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        put32(buf + o, (uint32_t)dim), o += 4;
        for (size_t j = 0; j < dim; j++) {
            uint32_t u;
            memcpy(&u, &v[i * dim + j], 4);
            put32(buf + o, u), o += 4;
        }
    }
    return o;
}

/* Every record id in [0, n) holds v[i] (bit for bit). */
static void expect_records(const char *name, const float *v, size_t n, size_t dim, iqdb_id first) {
    iqdb *db = open_db(name, (uint32_t)dim, IQDB_METRIC_L2);
    uint64_t cnt;
    iqdb_count(db, &cnt);
    assert_int_equal(cnt, n);
    float got[64];
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(iqdb_get(db, first + i, got, NULL), IQDB_OK);
        assert_memory_equal(got, v + i * dim, dim * sizeof(float));
    }
    iqdb_close(db);
}

/* ---- import of each format ------------------------------------------------------------------ */

static void test_cli_import_binary_formats(void **state) {
    (void)state;
    enum { N = 50, D = 6 };
    float v[N * D];
    for (size_t i = 0; i < N * D; i++) v[i] = frand();
    unsigned char buf[N * (D + 1) * 4 + 256];

    size_t len = make_fvecs(buf, v, N, D);
    write_file("a.fvecs", buf, len);
    fresh_db("f.db", "6");
    EXPECT(0, "import", "f.db", "a.fvecs", "--start-id", "100", "--chunk", "7");
    expect_records("f.db", v, N, D, 100);

    /* ivecs ids beside an fvecs file */
    unsigned char ib[N * 8];
    for (uint32_t i = 0; i < N; i++) put32(ib + 8 * i, 1), put32(ib + 8 * i + 4, 1000 + 3 * i);
    write_file("ids.ivecs", ib, sizeof ib);
    fresh_db("f.db", "6");
    EXPECT(0, "import", "f.db", "a.fvecs", "--ids", "ids.ivecs");
    {
        iqdb *db = open_db("f.db", D, IQDB_METRIC_L2);
        float got[D];
        assert_int_equal(iqdb_get(db, 1000 + 3 * 7, got, NULL), IQDB_OK);
        assert_memory_equal(got, v + 7 * D, sizeof got);
        assert_int_equal(iqdb_get(db, 1001, got, NULL), IQDB_NOTFOUND);
        iqdb_close(db);
    }

    /* bvecs: bytes become floats 0..255 */
    float bv[N * D];
    size_t o = 0;
    for (size_t i = 0; i < N; i++) {
        put32(buf + o, D), o += 4;
        for (size_t j = 0; j < D; j++)
            buf[o++] = (unsigned char)(i * 7 + j * 31),
            bv[i * D + j] = (float)(unsigned char)(i * 7 + j * 31);
    }
    write_file("a.bvecs", buf, o);
    fresh_db("f.db", "6");
    EXPECT(0, "import", "f.db", "a.bvecs");
    expect_records("f.db", bv, N, D, 0);

    /* npy, version 1.0, '<f4', (N, D) */
    const char *hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (50, 6), }";
    size_t hl = strlen(hdr), total = 10 + hl + 1, pad = (64 - total % 64) % 64;
    o = 0;
    memcpy(buf, "\x93NUMPY\x01\x00", 8), o = 8;
    buf[o++] = (unsigned char)((hl + pad + 1) & 0xff),
    buf[o++] = (unsigned char)((hl + pad + 1) >> 8);
    memcpy(buf + o, hdr, hl), o += hl;
    memset(buf + o, ' ', pad), o += pad;
    buf[o++] = '\n';
    size_t data_at = o;
    for (size_t i = 0; i < N * D; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        put32(buf + o, u), o += 4;
    }
    write_file("a.npy", buf, o);
    fresh_db("f.db", "6");
    EXPECT(0, "import", "f.db", "a.npy");
    expect_records("f.db", v, N, D, 0);

    /* malformed npy: truncated data, float64, trailing bytes */
    write_file("t.npy", buf, o - 3);
    EXPECT(3, "import", "f.db", "t.npy");
    assert_non_null(strstr(g_err, "truncated"));
    buf[data_at - 1] = '\n';
    write_file("x.npy", buf, o + 4);
    EXPECT(3, "import", "f.db", "x.npy");
    assert_non_null(strstr(g_err, "after the last row"));
    char *d = memchr(buf, '<', o);
    d[2] = '8';
    write_file("d.npy", buf, o);
    EXPECT(3, "import", "f.db", "d.npy");
    assert_non_null(strstr(g_err, "float32"));
    assert_int_equal(count_of("f.db", D), N);
}

static void test_cli_import_text_formats(void **state) {
    (void)state;
    fresh_db("t.db", "3");
    write_text("a.csv", "id,x,y,z\n7, 1.5, -2, 3e-3\n\n9,0,0,0.25\n");
    EXPECT(0, "import", "t.db", "a.csv");
    {
        iqdb *db = open_db("t.db", 3, IQDB_METRIC_L2);
        float got[3];
        assert_int_equal(iqdb_get(db, 7, got, NULL), IQDB_OK);
        assert_true(got[0] == 1.5f && got[1] == -2.0f && got[2] == 3e-3f);
        assert_int_equal(iqdb_get(db, 9, got, NULL), IQDB_OK);
        assert_true(got[2] == 0.25f);
        iqdb_close(db);
    }
    write_text("b.csv", "1,2,3\n4,5,6\n");
    fresh_db("t.db", "3");
    EXPECT(0, "import", "t.db", "b.csv", "--start-id", "5");
    {
        const float want[6] = {1, 2, 3, 4, 5, 6};
        expect_records("t.db", want, 2, 3, 5);
    }

    fresh_db("t.db", "3");
    write_text("a.jsonl",
               "{\"id\": 1, \"vector\": [1, 0, 0], \"metadata\": {\"kind\": \"doc\", \"year\": "
               "2021, \"score\": 0.5, \"ok\": true, \"none\": null, \"big\": 1e400, \"u\": "
               "\"caf\\u00e9 \\ud83d\\ude00\"}}\n"
               "  \n"
               "{\"vector\": [0, 1, 0], \"id\": 18446744073709551615}\n"
               "{\"id\": 3, \"vector\": [0, 0, 1], \"metadata\": {}}\n");
    EXPECT(0, "import", "t.db", "a.jsonl");
    {
        iqdb *db = open_db("t.db", 3, IQDB_METRIC_L2);
        iqdb_meta *m = NULL;
        assert_int_equal(iqdb_get(db, 1, NULL, &m), IQDB_OK);
        const char *s;
        size_t sl;
        int64_t y;
        double sc, big;
        int b;
        iqdb_value nv;
        assert_int_equal(iqdb_meta_get_string(m, "kind", &s, &sl), IQDB_OK);
        assert_string_equal(s, "doc");
        assert_int_equal(iqdb_meta_get_int(m, "year", &y), IQDB_OK);
        assert_int_equal(y, 2021);
        assert_int_equal(iqdb_meta_get_double(m, "score", &sc), IQDB_OK);
        assert_true(sc == 0.5);
        assert_int_equal(iqdb_meta_get_bool(m, "ok", &b), IQDB_OK);
        assert_int_equal(b, 1);
        assert_int_equal(iqdb_meta_get(m, "none", &nv), IQDB_OK);
        assert_int_equal(nv.type, IQDB_TYPE_NULL);
        assert_int_equal(iqdb_meta_get_double(m, "big", &big), IQDB_OK);
        assert_true(big > 1e308);
        assert_int_equal(iqdb_meta_get_string(m, "u", &s, &sl), IQDB_OK);
        assert_string_equal(s, "caf\xc3\xa9 \xf0\x9f\x98\x80");
        iqdb_meta_destroy(m);
        assert_int_equal(iqdb_get(db, UINT64_MAX, NULL, &m), IQDB_OK);
        assert_null(m);
        assert_int_equal(iqdb_get(db, 3, NULL, &m), IQDB_OK);
        assert_null(m);
        iqdb_close(db);
    }
    /* export to JSONL and import into a fresh database: the same records and metadata */
    EXPECT(0, "export", "t.db", "out.jsonl");
    fresh_db("t2.db", "3");
    EXPECT(0, "import", "t2.db", "out.jsonl");
    EXPECT(0, "export", "t2.db", "out2.jsonl");
    char a[4096], b[4096], p[512];
    pathf(p, sizeof p, "out.jsonl");
    read_file(p, a, sizeof a);
    pathf(p, sizeof p, "out2.jsonl");
    read_file(p, b, sizeof b);
    assert_string_equal(a, b);
    assert_non_null(strstr(a, "\"big\":1e999"));
    assert_non_null(strstr(a, "{\"id\":18446744073709551615,\"vector\":[0,1,0]}"));
}

static void test_cli_import_idx(void **state) {
    (void)state;
    /* 5 images of 2 x 3 pixels, and labels */
    unsigned char img[16 + 30], lab[8 + 5];
    memcpy(img, "\0\0\x08\x03\0\0\0\x05\0\0\0\x02\0\0\0\x03", 16);
    for (int i = 0; i < 30; i++) img[16 + i] = (unsigned char)(i * 8);
    memcpy(lab, "\0\0\x08\x01\0\0\0\x05", 8);
    for (int i = 0; i < 5; i++) lab[8 + i] = (unsigned char)(9 - i);
    write_file("img-idx3-ubyte", img, sizeof img);
    write_file("lab-idx1-ubyte", lab, sizeof lab);
    assert_int_equal(
        system("cd \"$IQDBT_DIR\" && gzip -kf img-idx3-ubyte && gzip -kf lab-idx1-ubyte"), 0);
    float want[30];
    for (int i = 0; i < 30; i++) want[i] = (float)(i * 8);
    for (int gz = 0; gz < 2; gz++) {
        fresh_db("i.db", "6");
        EXPECT(0, "import", "i.db", gz ? "img-idx3-ubyte.gz" : "img-idx3-ubyte", "--labels",
               gz ? "lab-idx1-ubyte.gz" : "lab-idx1-ubyte", "--label-key", "class");
        expect_records("i.db", want, 5, 6, 0);
        iqdb *db = open_db("i.db", 6, IQDB_METRIC_L2);
        iqdb_meta *m;
        int64_t c;
        assert_int_equal(iqdb_get(db, 2, NULL, &m), IQDB_OK);
        assert_int_equal(iqdb_meta_get_int(m, "class", &c), IQDB_OK);
        assert_int_equal(c, 7);
        iqdb_meta_destroy(m);
        iqdb_close(db);
    }
    /* truncated image data, a damaged gzip stream, too few labels */
    write_file("short-idx3-ubyte", img, sizeof img - 1);
    EXPECT(3, "import", "i.db", "short-idx3-ubyte");
    assert_non_null(strstr(g_err, "truncated"));
    char p[512];
    pathf(p, sizeof p, "img-idx3-ubyte.gz");
    char gzb[512];
    FILE *f = fopen(p, "rb");
    size_t gl = fread(gzb, 1, sizeof gzb, f);
    fclose(f);
    write_file("cut-idx3-ubyte.gz", gzb, gl - 6);
    EXPECT(3, "import", "i.db", "cut-idx3-ubyte.gz");
    write_file("lab4-idx1-ubyte", "\0\0\x08\x01\0\0\0\x04\1\2\3\4", 12);
    EXPECT(3, "import", "i.db", "img-idx3-ubyte", "--labels", "lab4-idx1-ubyte");
    assert_non_null(strstr(g_err, "4 labels for 5 vectors"));
    assert_int_equal(count_of("i.db", 6), 5);
}

/* ---- malformed input: a clear error, nothing imported ---------------------------------------- */

static void test_cli_malformed(void **state) {
    (void)state;
    fresh_db("m.db", "3");
    write_text("ok.csv", "1,2,3\n4,5,6\n");
    EXPECT(0, "import", "m.db", "ok.csv", "--start-id", "500");
    struct {
        const char *name, *text, *needle;
    } cases[] = {
        {"dim.csv", "1,2,3\n4,5\n", "2 fields"},
        {"dim2.csv", "1,2\n3,4\n", "the database's is 3"},
        {"nan.csv", "1,2,3\n4,nan,6\n", "not a finite number"},
        {"inf.csv", "1,2,3\n4,1e39,6\n", "not a finite number"},
        {"word.csv", "1,2,3\n4,x,6\n", "'x'"},
        {"dim.jsonl", "{\"vector\": [1,2,3]}\n{\"vector\": [1,2]}\n", "dimension 2"},
        {"comma.jsonl", "{\"vector\": [1,2,3],}\n", "line 1: byte 20"},
        {"quote.jsonl", "{'vector': [1,2,3]}\n", "expected a string"},
        {"dup.jsonl", "{\"vector\": [1,2,3], \"vector\": [1,2,3]}\n", "duplicate key"},
        {"dupmeta.jsonl", "{\"vector\": [1,2,3], \"metadata\": {\"a\": 1, \"a\": 2}}\n",
         "duplicate metadata key"},
        {"unknown.jsonl", "{\"vector\": [1,2,3], \"meta\": {}}\n", "unknown key"},
        {"nested.jsonl", "{\"vector\": [1,2,3], \"metadata\": {\"a\": [1]}}\n", "no nesting"},
        {"zero.jsonl", "{\"vector\": [01,2,3]}\n", "leading zero"},
        {"nanj.jsonl", "{\"vector\": [NaN,2,3]}\n", "expected a number"},
        {"huge.jsonl", "{\"vector\": [1e39,2,3]}\n", "not a finite float"},
        {"utf8.jsonl", "{\"vector\": [1,2,3], \"metadata\": {\"a\": \"\xff\"}}\n", "UTF-8"},
        {"ctrl.jsonl", "{\"vector\": [1,2,3], \"metadata\": {\"a\": \"x\ty\"}}\n", "control"},
        {"surr.jsonl", "{\"vector\": [1,2,3], \"metadata\": {\"a\": \"\\ud800\"}}\n", "surrogate"},
        {"trail.jsonl", "{\"vector\": [1,2,3]} x\n", "after the record"},
        {"novec.jsonl", "{\"id\": 4}\n", "no \"vector\""},
        {"negid.jsonl", "{\"id\": -4, \"vector\": [1,2,3]}\n", "non-negative"},
        {"bigid.jsonl", "{\"id\": 18446744073709551616, \"vector\": [1,2,3]}\n", "2^64"},
        {"mixid.jsonl", "{\"id\": 1, \"vector\": [1,2,3]}\n{\"vector\": [1,2,3]}\n",
         "missing \"id\""},
        {"cut.jsonl", "{\"vector\": [1,2,3]}\n{\"vector\": [1,2,", "line 2"},
        {"longkey.jsonl", "{\"vector\": [1,2,3], \"metadata\": {\"\": 1}}\n", "1 to 255 bytes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_text(cases[i].name, cases[i].text);
        int rc = RUN("import", "m.db", cases[i].name, "--chunk", "1");
        if (rc != 3 || !strstr(g_err, cases[i].needle) || !strstr(g_err, cases[i].name))
            fprintf(stderr, "case %s: exit %d, stderr: %s", cases[i].name, rc, g_err);
        assert_int_equal(rc, 3);
        assert_non_null(strstr(g_err, cases[i].needle));
        assert_int_equal(count_of("m.db", 3), 2);
    }
    /* binary: truncated record, wrong dimension, NaN, zero dimension */
    float v[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    unsigned char buf[256];
    size_t len = make_fvecs(buf, v, 3, 3);
    write_file("cut.fvecs", buf, len - 2);
    EXPECT(3, "import", "m.db", "cut.fvecs", "--chunk", "1");
    assert_non_null(strstr(g_err, "record 2"));
    assert_non_null(strstr(g_err, "truncated"));
    len = make_fvecs(buf, v, 2, 4);
    write_file("d4.fvecs", buf, len);
    EXPECT(3, "import", "m.db", "d4.fvecs");
    assert_non_null(strstr(g_err, "IQDB_DIM"));
    v[7] = 0.0f / 0.0f;
    len = make_fvecs(buf, v, 3, 3);
    write_file("nan.fvecs", buf, len);
    EXPECT(3, "import", "m.db", "nan.fvecs", "--chunk", "1");
    assert_non_null(strstr(g_err, "record 2"));
    assert_non_null(strstr(g_err, "NaN"));
    put32(buf, 0);
    write_file("zero.fvecs", buf, 4);
    EXPECT(3, "import", "m.db", "zero.fvecs");
    EXPECT(3, "import", "m.db", "missing.fvecs");
    assert_non_null(strstr(g_err, "No such file"));
    EXPECT(3, "import", "m.db", "a.unknown-ext");
    assert_non_null(strstr(g_err, "--format"));
    assert_int_equal(count_of("m.db", 3), 2);
}

/* A later batch failing: the earlier batches are rolled back (new ids deleted, replaced
 * records restored with their metadata). */
static void test_cli_import_rollback(void **state) {
    (void)state;
    fresh_db("r.db", "2");
    write_text("base.jsonl", "{\"id\": 1, \"vector\": [1, 1], \"metadata\": {\"v\": \"old\"}}\n"
                             "{\"id\": 2, \"vector\": [2, 2]}\n");
    EXPECT(0, "import", "r.db", "base.jsonl");
    write_text("new.jsonl", "{\"id\": 1, \"vector\": [9, 9], \"metadata\": {\"v\": \"new\"}}\n"
                            "{\"id\": 10, \"vector\": [0, 1]}\n"
                            "{\"id\": 11, \"vector\": [0, 2]}\n"
                            "{\"id\": 12, \"vector\": [0, 3]}\n"
                            "{\"id\": 13, \"vector\": [0, 4]}\n");
    int rc = RUN_ENV("IQDB_CLI_TEST_FAIL_BATCH=3", "import", "r.db", "new.jsonl", "--chunk", "2");
    assert_int_equal(rc, 1);
    assert_non_null(strstr(g_err, "IQDB_IOERR_WRITE"));
    assert_non_null(strstr(g_err, "records 4..4"));
    assert_non_null(strstr(g_err, "rolled back the 4 records"));
    iqdb *db = open_db("r.db", 2, IQDB_METRIC_L2);
    uint64_t n;
    iqdb_count(db, &n);
    assert_int_equal(n, 2);
    float got[2];
    iqdb_meta *m;
    assert_int_equal(iqdb_get(db, 1, got, &m), IQDB_OK);
    assert_true(got[0] == 1 && got[1] == 1);
    const char *s;
    assert_int_equal(iqdb_meta_get_string(m, "v", &s, NULL), IQDB_OK);
    assert_string_equal(s, "old");
    iqdb_meta_destroy(m);
    assert_int_equal(iqdb_get(db, 10, NULL, NULL), IQDB_NOTFOUND);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    iqdb_close(db);
    /* without the fault the same file imports */
    EXPECT(0, "import", "r.db", "new.jsonl", "--chunk", "2");
    assert_int_equal(count_of("r.db", 2), 6);
}

/* ---- search against the library ----------------------------------------------------------------
 */

enum { SN = 300, SD = 8, SQ = 12, SK = 7 };
static float s_base[SN * SD], s_q[SQ * SD];

static void make_search_db(void) {
    fresh_db("s.db", "8");
    char *text = malloc(SN * 256), *p = text;
    for (int i = 0; i < SN; i++) {
        p += sprintf(p, "{\"id\": %d, \"vector\": [", 1000 + i);
        for (int j = 0; j < SD; j++) {
            s_base[i * SD + j] = frand();
            if (i % 10 == 3) s_base[i * SD + j] = s_base[(i - 1) * SD + j]; /* exact duplicates */
            p += sprintf(p, "%s%.9g", j ? ", " : "", (double)s_base[i * SD + j]);
        }
        p += sprintf(p, "], \"metadata\": {\"group\": %d, \"name\": \"r%d\"}}\n", i % 4, i);
    }
    write_text("s.jsonl", text);
    free(text);
    EXPECT(0, "import", "s.db", "s.jsonl");
    unsigned char buf[SQ * (SD + 1) * 4];
    for (int i = 0; i < SQ * SD; i++) s_q[i] = frand();
    write_file("q.fvecs", buf, make_fvecs(buf, s_q, SQ, SD));
}

/* Parses "query rank id distance" lines and compares them with iqdb_search. */
static void compare_text(iqdb *db, const char *filter, int exact) {
    iqdb_filter *f = NULL;
    if (filter) assert_int_equal(iqdb_filter_parse(NULL, filter, strlen(filter), &f, NULL), 0);
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    p.filter = f;
    p.exact = exact;
    const char *line = g_out;
    size_t lines = 0;
    for (size_t q = 0; q < SQ; q++) {
        iqdb_hit h[SK];
        size_t n;
        assert_int_equal(iqdb_search(db, s_q + q * SD, SK, &p, h, &n, NULL), IQDB_OK);
        for (size_t i = 0; i < n; i++) {
            unsigned long qq, rank;
            unsigned long long id;
            float dist;
            assert_int_equal(sscanf(line, "%lu\t%lu\t%llu\t%f", &qq, &rank, &id, &dist), 4);
            assert_int_equal(qq, q);
            assert_int_equal(rank, i + 1);
            assert_int_equal(id, h[i].id);
            assert_memory_equal(&dist, &h[i].distance, sizeof dist);
            line = strchr(line, '\n') + 1;
            lines++;
        }
    }
    assert_int_equal(*line, 0);
    assert_true(lines > 0);
    iqdb_filter_destroy(f);
}

static void test_cli_search_matches_library(void **state) {
    (void)state;
    make_search_db();
    iqdb *db = open_db("s.db", SD, IQDB_METRIC_L2);
    EXPECT(0, "search", "s.db", "--queries", "q.fvecs", "-k", "7");
    compare_text(db, NULL, 0);
    EXPECT(0, "search", "s.db", "--queries", "q.fvecs", "-k", "7", "--filter",
           "group IN (1, 3) AND name != 'r7'");
    compare_text(db, "group IN (1, 3) AND name != 'r7'", 0);
    EXPECT(0, "search", "s.db", "--queries", "q.fvecs", "-k", "7", "--exact", "--ef", "5");
    compare_text(db, NULL, 1);

    /* one vector on the command line, --json with metadata */
    char vec[256], *p = vec;
    for (int j = 0; j < SD; j++) p += sprintf(p, "%s%.9g", j ? "," : "", (double)s_q[j]);
    EXPECT(0, "--json", "search", "s.db", "--vector", vec, "-k", "3", "--meta");
    iqdb_hit h[3];
    size_t n;
    assert_int_equal(iqdb_search(db, s_q, 3, NULL, h, &n, NULL), IQDB_OK);
    char want[128];
    snprintf(want, sizeof want, "{\"query\":0,\"hits\":[{\"id\":%llu,\"distance\":%.9g,",
             (unsigned long long)h[0].id, (double)h[0].distance);
    assert_memory_equal(g_out, want, strlen(want));
    assert_non_null(strstr(g_out, "\"complete\":true"));
    snprintf(want, sizeof want, "\"name\":\"r%llu\"", (unsigned long long)h[2].id - 1000);
    assert_non_null(strstr(g_out, want));

    /* bad queries: wrong dimension on the command line, a filter syntax error */
    EXPECT(2, "search", "s.db", "--vector", "1,2,3");
    assert_non_null(strstr(g_err, "dimension is 8"));
    EXPECT(1, "search", "s.db", "--vector", vec, "--filter", "group = = 1");
    assert_non_null(strstr(g_err, "IQDB_INVALID"));
    assert_non_null(strstr(g_err, "at byte"));
    iqdb_close(db);
}

/* ---- get, delete, count, info, check, export ----------------------------------------------------
 */

static void test_cli_records_and_exit_codes(void **state) {
    (void)state;
    fresh_db("g.db", "2");
    write_text("g.jsonl", "{\"id\": 5, \"vector\": [0.5, -1], \"metadata\": {\"k\": \"v\"}}\n"
                          "{\"id\": 6, \"vector\": [3, 4]}\n");
    EXPECT(0, "import", "g.db", "g.jsonl");
    EXPECT(0, "get", "g.db", "5");
    assert_string_equal(g_out, "5\t0.5,-1\t{\"k\":\"v\"}\n");
    EXPECT(0, "--json", "get", "g.db", "6");
    assert_string_equal(g_out, "{\"id\":6,\"vector\":[3,4],\"metadata\":{}}\n");
    EXPECT(4, "get", "g.db", "7");
    assert_non_null(strstr(g_err, "IQDB_NOTFOUND"));
    EXPECT(0, "count", "g.db");
    assert_string_equal(g_out, "2\n");
    EXPECT(0, "delete", "g.db", "5", "99");
    assert_non_null(strstr(g_out, "deleted 1 of 2"));
    EXPECT(0, "--json", "info", "g.db");
    assert_non_null(strstr(g_out, "\"count\":1,\"dim\":2"));
    EXPECT(0, "check", "g.db");
    EXPECT(0, "checkpoint", "g.db");
    EXPECT(0, "export", "g.db", "g.fvecs");
    {
        char p[512], b[64];
        pathf(p, sizeof p, "g.fvecs");
        assert_int_equal(read_file(p, b, sizeof b), 12);
        float want[2] = {3, 4};
        assert_int_equal(b[0], 2);
        assert_memory_equal(b + 4, want, 8);
    }
    /* usage errors */
    EXPECT(2, "frobnicate", "g.db");
    EXPECT(2, "get", "g.db", "x1");
    EXPECT(2, "create", "n.db");
    EXPECT(2, "create", "n.db", "--dim", "4", "--metric", "sine");
    EXPECT(2, "search", "g.db");
    EXPECT(0, "help");
    /* create: existing file, bad option values from the library */
    EXPECT(1, "create", "g.db", "--dim", "2");
    EXPECT(1, "create", "n.db", "--dim", "4", "--sync-period", "0", "--sync", "periodic", "--level",
           "99", "--compression", "zstd");
    assert_non_null(strstr(g_err, "IQDB_"));
    /* missing database */
    EXPECT(4, "count", "nothing.db");
    assert_non_null(strstr(g_err, "no such database"));
    /* a foreign file */
    write_text("foreign.db", "this is not a database, but it is long enough to have a header....");
    EXPECT(1, "count", "foreign.db");
    assert_non_null(strstr(g_err, "IQDB_FORMAT"));
    /* busy: this process holds the database open for writing */
    {
        char p[512];
        pathf(p, sizeof p, "g.db");
        iqdb_options o;
        iqdb_options_init(&o, 2, IQDB_METRIC_L2);
        iqdb *db;
        assert_int_equal(iqdb_open(p, &o, &db), IQDB_OK);
        EXPECT(6, "delete", "g.db", "6");
        assert_non_null(strstr(g_err, "IQDB_BUSY"));
        EXPECT(0, "count", "g.db"); /* read-only opens take no lock */
        iqdb_close(db);
    }
    /* corruption: flip a byte in the middle of the snapshot */
    {
        char p[512];
        pathf(p, sizeof p, "g.db");
        FILE *f = fopen(p, "r+b");
        fseek(f, 0, SEEK_END);
        long sz = ftell(f);
        fseek(f, sz - 6, SEEK_SET);
        int c = fgetc(f);
        fseek(f, sz - 6, SEEK_SET);
        fputc(c ^ 0x40, f);
        fclose(f);
        EXPECT(5, "check", "g.db");
        assert_non_null(strstr(g_err, "IQDB_CORRUPT"));
    }
}

/* The codec chosen at create survives later writing commands (their checkpoints keep it). */
static void test_cli_compression_kept(void **state) {
    (void)state;
    if (!iqdb_compression_available(IQDB_COMPRESS_ZSTD)) skip();
    remove_db("z.db");
    EXPECT(0, "create", "z.db", "--dim", "3", "--compression", "zstd", "--level", "5");
    write_text("z.csv", "1,2,3\n4,5,6\n");
    EXPECT(0, "--sync", "never", "import", "z.db", "z.csv");
    EXPECT(0, "checkpoint", "z.db");
    char p[512];
    unsigned char h[64];
    pathf(p, sizeof p, "z.db");
    FILE *f = fopen(p, "rb");
    assert_int_equal(fread(h, 1, 64, f), 64);
    fclose(f);
    assert_int_equal(h[28], 1); /* zstd (docs/FORMAT.md, header byte 28) */
    assert_int_equal(count_of("z.db", 3), 2);
    EXPECT(2, "--sync", "sometimes", "count", "z.db");
}

/* An HNSW database through the tool: on a library without HNSW, create reports
 * IQDB_UNSUPPORTED clearly; with it, search equals the library's, bench sweeps ef (recall
 * reaches 1 at a large ef on this small set), compact and check pass. */
static void test_cli_hnsw(void **state) {
    (void)state;
    remove_db("h.db");
    int rc = RUN("create", "h.db", "--dim", "8", "--index", "hnsw", "--m", "8", "--ef-construction",
                 "40", "--seed", "7");
    if (rc != 0) {
        assert_int_equal(rc, 1);
        assert_non_null(strstr(g_err, "IQDB_UNSUPPORTED"));
        assert_non_null(strstr(g_err, "hnsw"));
        skip();
    }
    make_search_db(); /* fills s_base / s_q and s.jsonl (and s.db, unused here) */
    EXPECT(0, "import", "h.db", "s.jsonl", "--chunk", "100");
    iqdb *db = open_db("h.db", SD, IQDB_METRIC_L2);
    EXPECT(0, "search", "h.db", "--queries", "q.fvecs", "-k", "7", "--ef", "16");
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    p.ef = 16;
    const char *line = g_out;
    for (size_t q = 0; q < SQ; q++) {
        iqdb_hit h[SK];
        size_t n;
        assert_int_equal(iqdb_search(db, s_q + q * SD, SK, &p, h, &n, NULL), IQDB_OK);
        for (size_t i = 0; i < n; i++) {
            unsigned long long id;
            float dist;
            assert_int_equal(sscanf(line, "%*u\t%*u\t%llu\t%f", &id, &dist), 2);
            assert_int_equal(id, h[i].id);
            assert_memory_equal(&dist, &h[i].distance, sizeof dist);
            line = strchr(line, '\n') + 1;
        }
    }
    iqdb_close(db);
    EXPECT(0, "--json", "bench", "h.db", "--queries", "q.fvecs", "-k", "5", "--ef", "5,300");
    assert_non_null(strstr(g_out, "\"mode\":\"hnsw\",\"knob\":\"ef\",\"value\":5,"));
    assert_non_null(strstr(g_out, "\"value\":300,\"recall\":1.000000"));
    EXPECT(0, "compact", "h.db");
    EXPECT(0, "check", "h.db");
    EXPECT(0, "--json", "info", "h.db");
    assert_non_null(strstr(g_out, "\"index\":\"hnsw\""));
}

/* ---- the shell ----------------------------------------------------------------------------------
 */

static void test_cli_shell(void **state) {
    (void)state;
    remove_db("sh.db");
    write_text("sh.csv", "id,a,b\n1,1,0\n2,0,1\n3,1,1\n");
    int rc = RUN_IN("# a comment\n"
                    "create --dim 2 --metric cosine\n"
                    "import sh.csv\n"
                    "count\n"
                    "search --vector '1, 0.1' -k 2\n"
                    "get 3\n"
                    "delete 1\n"
                    "count\n"
                    "get 1\n"
                    "search --vector \"1 0\" -k 5 --filter \"a = 1\"\n"
                    "quit\n"
                    "count\n",
                    "shell", "sh.db");
    if (rc != 4) fprintf(stderr, "stdout: %s\nstderr: %s\n", g_out, g_err);
    assert_int_equal(rc, 4); /* the last failure: get 1 (not found) */
    const char *want_prefix = "created sh.db: dim 2, metric cosine, index flat\n"
                              "imported 3 records from sh.csv";
    assert_memory_equal(g_out, want_prefix, strlen(want_prefix));
    assert_non_null(strstr(g_out, "records now\n3\n0\t1\t1\t"));
    assert_non_null(strstr(g_out, "0\t2\t3\t"));
    assert_non_null(strstr(g_out, "3\t1,1\t{}\n"));
    assert_non_null(strstr(g_out, "deleted 1 of 1 ids (0 absent)\n2\n"));
    assert_null(strstr(g_out, "\n2\n2\n")); /* nothing ran after quit */
    assert_non_null(strstr(g_err, "no record with id 1"));
    assert_int_equal(count_of_m("sh.db", 2, IQDB_METRIC_COSINE), 2);

    /* --bail stops at the first error; an unterminated quote is a usage error */
    rc = RUN_IN("count\nsearch --vector 'oops\ncount\n", "shell", "sh.db", "--bail");
    assert_int_equal(rc, 2);
    assert_string_equal(g_out, "2\n");
    /* in memory */
    rc = RUN_IN("count\ncreate --dim 3\nimport ok3.csv\ncount\n", "-q", "shell");
    assert_int_equal(rc, 3); /* count without a db is a usage error (2), then ok3.csv missing */
    assert_string_equal(g_out, "0\n");
}

/* ---- bench --------------------------------------------------------------------------------------
 */

static void test_cli_bench(void **state) {
    (void)state;
    make_search_db();
    EXPECT(0, "bench", "s.db", "--queries", "q.fvecs", "-k", "5", "--csv", "b.csv", "--json-out",
           "b.json", "--svg", "b.svg");
    assert_non_null(strstr(g_out, "\nexact  -          1.0000 "));
    char p[512], b[8192];
    pathf(p, sizeof p, "b.csv");
    assert_true(read_file(p, b, sizeof b) > 0);
    assert_non_null(strstr(b, "exact,-,0,5,1.000000,"));
    pathf(p, sizeof p, "b.svg");
    assert_true(read_file(p, b, sizeof b) > 0);
    assert_non_null(strstr(b, "<svg"));
    assert_non_null(strstr(b, "</svg>"));
    pathf(p, sizeof p, "b.json");
    assert_true(read_file(p, b, sizeof b) > 0);
    assert_non_null(strstr(b, "\"k\":5,\"queries\":12,\"records\":300"));

    /* Ties: a ground truth naming the other member of each duplicate pair (ids 1000+10m+2 and
     * 1000+10m+3 hold the same vector) still scores 1.0; a wrong neighbour does not. */
    iqdb *db = open_db("s.db", SD, IQDB_METRIC_L2);
    unsigned char gt[SQ * (5 + 1) * 4];
    int swapped = 0;
    for (int q = 0; q < SQ; q++) {
        iqdb_hit h[5];
        size_t n;
        iqdb_search(db, s_q + q * SD, 5, NULL, h, &n, NULL);
        put32(gt + q * 24, 5);
        for (int i = 0; i < 5; i++) {
            uint32_t id = (uint32_t)h[i].id;
            if (i == 4 && (id - 1000) % 10 == 2)
                id++, swapped++;
            else if (i == 4 && (id - 1000) % 10 == 3)
                id--, swapped++;
            put32(gt + q * 24 + 4 + 4 * i, id);
        }
    }
    iqdb_close(db);
    write_file("gt.ivecs", gt, sizeof gt);
    EXPECT(0, "--json", "bench", "s.db", "--queries", "q.fvecs", "-k", "5", "--gt", "gt.ivecs");
    assert_non_null(
        strstr(g_out, "\"mode\":\"exact\",\"knob\":\"-\",\"value\":0,\"recall\":1.000000"));
    /* A ground truth whose k-th neighbour is the nearest one (every row names it 5 times):
     * only hits at that distance count, so recall falls to about 1/5 (duplicates add a few). */
    for (int q = 0; q < SQ; q++)
        for (int i = 1; i < 5; i++) memcpy(gt + q * 24 + 4 + 4 * i, gt + q * 24 + 4, 4);
    write_file("gt2.ivecs", gt, sizeof gt);
    EXPECT(0, "--json", "bench", "s.db", "--queries", "q.fvecs", "-k", "5", "--gt", "gt2.ivecs");
    const char *r = strstr(g_out, "\"recall\":");
    assert_non_null(r);
    double recall = atof(r + 9);
    if (!(recall >= 0.2 && recall < 0.5)) fprintf(stderr, "%s", g_out);
    assert_true(recall >= 0.2 && recall < 0.5);
    /* built in memory from --base, with a filter */
    unsigned char buf[SN * (SD + 1) * 4];
    write_file("base.fvecs", buf, make_fvecs(buf, s_base, SN, SD));
    EXPECT(0, "-q", "bench", "--base", "base.fvecs", "--queries", "q.fvecs", "-k", "5", "--filter",
           "TRUE");
    assert_non_null(strstr(g_out, "1.0000"));
    EXPECT(3, "bench", "s.db", "--queries", "q.fvecs", "--gt", "b.csv");
    assert_true(swapped > 0); /* the tie rule was exercised */
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s PATH-TO-iqdb\n", argv[0]);
        return 2;
    }
    static char bin[4096];
    char cwd[2048];
    if (argv[1][0] == '/')
        snprintf(bin, sizeof bin, "%s", argv[1]);
    else if (getcwd(cwd, sizeof cwd))
        snprintf(bin, sizeof bin, "%s/%s", cwd, argv[1]);
    else
        return 1;
    g_bin = bin; /* absolute: the children run in the test directory */
    snprintf(g_dir, sizeof g_dir, "/tmp/iqdb-test-cli-XXXXXX");
    if (!mkdtemp(g_dir)) return 1;
    setenv("IQDBT_DIR", g_dir, 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cli_import_binary_formats),
        cmocka_unit_test(test_cli_import_text_formats),
        cmocka_unit_test(test_cli_import_idx),
        cmocka_unit_test(test_cli_malformed),
        cmocka_unit_test(test_cli_import_rollback),
        cmocka_unit_test(test_cli_search_matches_library),
        cmocka_unit_test(test_cli_records_and_exit_codes),
        cmocka_unit_test(test_cli_compression_kept),
        cmocka_unit_test(test_cli_shell),
        cmocka_unit_test(test_cli_bench),
        cmocka_unit_test(test_cli_hnsw),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (!failed) {
        char cmd[320];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
        if (system(cmd)) failed = 1;
    }
    return failed;
}
