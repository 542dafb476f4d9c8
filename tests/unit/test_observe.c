/*
 * test_observe.c — progress callbacks (reports and cancelling), iqdb_interrupt from another
 * thread, the log callback, and the per-query counters of iqdb_search_info. Interrupts cross
 * threads, so this runs under ThreadSanitizer too (label "concurrency").
 */
#include "../common/testutil.h"

#include <pthread.h>
#include <unistd.h>

enum { DIM = 32 };

typedef struct prog {
    int calls, stop_at; /* stop_at: return 1 on that call (1-based); 0 = never */
    iqdb_progress_op op;
    uint64_t last_done, total;
    int monotone;
    iqdb *interrupt_db; /* call iqdb_interrupt on this handle instead of returning 1 */
} prog;

static int progress(void *ud, iqdb_progress_op op, uint64_t done, uint64_t total) {
    prog *p = ud;
    p->calls++;
    if (done < p->last_done || done > total) p->monotone = 0;
    p->last_done = done;
    p->total = total;
    p->op = op;
    if (p->stop_at && p->calls == p->stop_at) {
        if (p->interrupt_db) {
            iqdb_interrupt(p->interrupt_db);
            return 0;
        }
        return 1;
    }
    return 0;
}

static iqdb *open_db(const char *path, prog *p) {
    iqdb_options o;
    iqdb_options_init(&o, DIM, IQDB_METRIC_L2);
    o.progress_fn = progress;
    o.progress_ud = p;
    o.sync = IQDB_SYNC_NEVER;
    o.threads = 2;
    iqdb *db = NULL;
    assert_int_equal(iqdb_open(path, &o, &db), IQDB_OK);
    return db;
}

static float *make_vecs(size_t n) {
    float *v = malloc(n * DIM * sizeof *v);
    iqdbt_rng r = {42};
    iqdbt_fill(&r, v, n * DIM, -1, 1);
    return v;
}

static iqdb_id *make_ids(size_t n, iqdb_id base) {
    iqdb_id *ids = malloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++) ids[i] = base + i;
    return ids;
}

static void test_observe_import_progress(void **state) {
    (void)state;
    prog p = {0, 0, 0, 0, 0, 1, NULL};
    iqdb *db = open_db(NULL, &p);
    enum { N = 5000 };
    float *v = make_vecs(N);
    iqdb_id *ids = make_ids(N, 0);
    assert_int_equal(iqdb_upsert_batch(db, N, ids, v, NULL), IQDB_OK);
    assert_int_equal(p.op, IQDB_PROGRESS_IMPORT);
    assert_int_equal(p.calls, N / 1024 + 1);
    assert_true(p.monotone);
    assert_int_equal(p.total, N);
    /* cancel in the middle: nothing of the batch stays (replacements included) */
    iqdb_id *ids2 = make_ids(N, 2500); /* half replace, half new */
    p = (prog){0, 3, 0, 0, 0, 1, NULL};
    assert_int_equal(iqdb_upsert_batch(db, N, ids2, v, NULL), IQDB_INTERRUPTED);
    assert_int_equal(p.calls, 3);
    uint64_t n = 0;
    iqdb_count(db, &n);
    assert_int_equal(n, N);
    assert_int_equal(iqdb_get(db, N + 10, NULL, NULL), IQDB_NOTFOUND);
    float got[DIM];
    assert_int_equal(iqdb_get(db, 2600, got, NULL), IQDB_OK);
    assert_memory_equal(got, v + 2600 * DIM, sizeof got);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    /* small batches do not report */
    p = (prog){0, 1, 0, 0, 0, 1, NULL};
    assert_int_equal(iqdb_upsert_batch(db, 10, ids2, v, NULL), IQDB_OK);
    assert_int_equal(p.calls, 0);
    free(ids2);
    free(ids);
    free(v);
    iqdb_close(db);
}

static void test_observe_search_batch_progress(void **state) {
    (void)state;
    prog p = {0, 0, 0, 0, 0, 1, NULL};
    iqdb *db = open_db(NULL, &p);
    enum { N = 300, Q = 5000, K = 2 };
    float *v = make_vecs(Q);
    iqdb_id *ids = make_ids(N, 0);
    assert_int_equal(iqdb_upsert_batch(db, N, ids, v, NULL), IQDB_OK);
    iqdb_hit *h = malloc(Q * K * sizeof *h), *h2 = malloc(Q * K * sizeof *h2);
    size_t *nh = malloc(Q * sizeof *nh), *nh2 = malloc(Q * sizeof *nh2);
    p = (prog){0, 0, 0, 0, 0, 1, NULL};
    assert_int_equal(iqdb_search_batch(db, v, Q, K, NULL, h, nh), IQDB_OK);
    assert_int_equal(p.op, IQDB_PROGRESS_SEARCH_BATCH);
    assert_int_equal(p.calls, 4); /* at 0, 2048, 4096 and the end */
    assert_int_equal(p.last_done, Q);
    assert_true(p.monotone);
    /* chunked results equal single searches */
    for (size_t i = 0; i < Q; i += 499) {
        iqdb_hit one[K];
        size_t n1;
        assert_int_equal(iqdb_search(db, v + i * DIM, K, NULL, one, &n1, NULL), IQDB_OK);
        assert_int_equal(n1, nh[i]);
        assert_memory_equal(one, h + i * K, n1 * sizeof *one);
    }
    p = (prog){0, 2, 0, 0, 0, 1, NULL};
    assert_int_equal(iqdb_search_batch(db, v, Q, K, NULL, h2, nh2), IQDB_INTERRUPTED);
    for (size_t i = 0; i < Q; i++) assert_int_equal(nh2[i], 0);
    /* the progress callback may call iqdb_interrupt itself */
    p = (prog){0, 2, 0, 0, 0, 1, db};
    assert_int_equal(iqdb_search_batch(db, v, Q, K, NULL, h2, nh2), IQDB_INTERRUPTED);
    /* an interrupt before a call starts does not affect it */
    p = (prog){0, 0, 0, 0, 0, 1, NULL};
    assert_int_equal(iqdb_interrupt(db), IQDB_OK);
    assert_int_equal(iqdb_search_batch(db, v, Q, K, NULL, h2, nh2), IQDB_OK);
    assert_int_equal(iqdb_interrupt(NULL), IQDB_MISUSE);
    free(h);
    free(h2);
    free(nh);
    free(nh2);
    free(ids);
    free(v);
    iqdb_close(db);
}

static void test_observe_checkpoint_progress(void **state) {
    (void)state;
    char dir[] = "/tmp/iqdb-observe-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/db", dir);
    prog p = {0, 0, 0, 0, 0, 1, NULL};
    iqdb *db = open_db(path, &p);
    enum { N = 20000 }; /* 2.5 MB of vectors: three 1 MiB blocks */
    float *v = make_vecs(N);
    iqdb_id *ids = make_ids(N, 0);
    assert_int_equal(iqdb_upsert_batch(db, N, ids, v, NULL), IQDB_OK);
    p = (prog){0, 2, 0, 0, 0, 1, NULL};
    assert_int_equal(iqdb_checkpoint(db), IQDB_INTERRUPTED);
    assert_int_equal(p.op, IQDB_PROGRESS_CHECKPOINT);
    iqdb_stats s = {.struct_size = sizeof s};
    iqdb_stats_get(db, &s);
    assert_int_equal(s.checkpoints, 0);
    assert_int_equal(s.fatal, 0);
    assert_int_equal(iqdb_check(db), IQDB_OK); /* the old snapshot and WAL are intact */
    float one[DIM] = {0};
    assert_int_equal(iqdb_upsert(db, N + 1, one, NULL), IQDB_OK); /* still writable */
    p = (prog){0, 0, 0, 0, 0, 1, NULL};
    assert_int_equal(iqdb_checkpoint(db), IQDB_OK);
    assert_true(p.calls >= 3);
    assert_true(p.monotone);
    iqdb_stats_get(db, &s);
    assert_int_equal(s.checkpoints, 1);
    assert_int_equal(iqdb_close(db), IQDB_OK);
    db = open_db(path, &p);
    uint64_t n;
    iqdb_count(db, &n);
    assert_int_equal(n, N + 1);
    iqdb_close(db);
    free(ids);
    free(v);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* iqdb_interrupt from another thread stops a running batch search. */
static iqdb *gdb;
static _Atomic int g_stop;

static void *interrupter(void *arg) {
    (void)arg;
    while (!atomic_load(&g_stop)) {
        iqdb_interrupt(gdb);
        struct timespec ts = {0, 200000L};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void test_observe_interrupt_thread(void **state) {
    (void)state;
    prog p = {0, 0, 0, 0, 0, 1, NULL};
    gdb = open_db(NULL, &p);
    enum { N = 2000, Q = 20000, K = 1 };
    float *v = make_vecs(Q);
    iqdb_id *ids = make_ids(N, 0);
    assert_int_equal(iqdb_upsert_batch(gdb, N, ids, v, NULL), IQDB_OK);
    iqdb_hit *h = malloc(Q * K * sizeof *h);
    size_t *nh = malloc(Q * sizeof *nh);
    pthread_t t;
    pthread_create(&t, NULL, interrupter, NULL);
    int interrupted = 0;
    for (int tries = 0; tries < 50 && !interrupted; tries++) {
        int rc = iqdb_search_batch(gdb, v, Q, K, NULL, h, nh);
        assert_true(rc == IQDB_OK || rc == IQDB_INTERRUPTED);
        interrupted = rc == IQDB_INTERRUPTED;
        if (interrupted) {
            assert_int_equal(nh[0], 0);
            assert_int_equal(strstr(iqdb_errmsg(gdb), "iqdb_interrupt") != NULL, 1);
        }
    }
    atomic_store(&g_stop, 1);
    pthread_join(t, NULL);
    assert_true(interrupted);
    uint64_t n;
    iqdb_count(gdb, &n);
    assert_int_equal(n, N);
    free(h);
    free(nh);
    free(ids);
    free(v);
    iqdb_close(gdb);
}

/* ---- index builds: HNSW bulk inserts, IVF training, optimize ------------------------------- */

/* Progress per op: calls, the last report, whether done ever went backwards. A build reports
 * with its own op after the import's reports, so each op is tracked apart. */
typedef struct bprog {
    int calls[6];
    uint64_t last[6], total[6];
    int monotone;
    iqdb_progress_op stop_op; /* return 1 on the stop_at-th report of this op */
    int stop_at;
} bprog;

static int bprogress(void *ud, iqdb_progress_op op, uint64_t done, uint64_t total) {
    bprog *p = ud;
    assert_true(op >= 1 && op <= 5);
    p->calls[op]++;
    if ((p->calls[op] > 1 && done < p->last[op]) || done > total) p->monotone = 0;
    p->last[op] = done;
    p->total[op] = total;
    return p->stop_op == op && p->calls[op] == p->stop_at;
}

static void bprog_reset(bprog *p, iqdb_progress_op stop_op, int stop_at) {
    memset(p, 0, sizeof *p);
    p->monotone = 1;
    p->stop_op = stop_op;
    p->stop_at = stop_at;
}

static iqdb *open_index(iqdb_index_kind kind, bprog *p) {
    iqdb_options o;
    iqdb_options_init(&o, DIM, IQDB_METRIC_L2);
    o.index = kind;
    o.progress_fn = bprogress;
    o.progress_ud = p;
    o.threads = 2;
    if (kind == IQDB_INDEX_IVF) o.ivf.n_lists = 16;
    iqdb *db = NULL;
    assert_int_equal(iqdb_open(NULL, &o, &db), IQDB_OK);
    return db;
}

enum { NQ = 20, QK = 10 };

/* Approximate answers for NQ fixed queries. */
static void answers(iqdb *db, const float *qs, iqdb_hit *out, size_t *n) {
    for (size_t i = 0; i < NQ; i++)
        assert_int_equal(iqdb_search(db, qs + i * DIM, QK, NULL, out + i * QK, n + i, NULL),
                         IQDB_OK);
}

static void exact_answers(iqdb *db, const float *qs, iqdb_hit *out, size_t *n) {
    iqdb_search_params sp;
    iqdb_search_params_init(&sp);
    sp.exact = 1;
    for (size_t i = 0; i < NQ; i++)
        assert_int_equal(iqdb_search(db, qs + i * DIM, QK, &sp, out + i * QK, n + i, NULL),
                         IQDB_OK);
}

static void assert_same_answers(const iqdb_hit *a, const size_t *na, const iqdb_hit *b,
                                const size_t *nb) {
    for (size_t i = 0; i < NQ; i++) {
        assert_int_equal(na[i], nb[i]);
        for (size_t j = 0; j < na[i]; j++) {
            assert_int_equal(a[i * QK + j].id, b[i * QK + j].id);
            assert_true(a[i * QK + j].distance == b[i * QK + j].distance);
        }
    }
}

static void test_observe_hnsw_build(void **state) {
    (void)state;
    enum { N = 1500 };
    bprog p;
    bprog_reset(&p, 0, 0);
    float *v = make_vecs(2 * N);
    iqdb_id *ids = make_ids(N, 0);
    iqdb_hit a[NQ * QK], b[NQ * QK];
    size_t na[NQ], nb[NQ];
    uint64_t n = 0;

    /* an interrupted first build leaves an empty database; the next one builds in full */
    iqdb *db = open_index(IQDB_INDEX_HNSW, &p);
    bprog_reset(&p, IQDB_PROGRESS_BUILD, 3);
    assert_int_equal(iqdb_upsert_batch(db, N, ids, v, NULL), IQDB_INTERRUPTED);
    assert_non_null(strstr(iqdb_errmsg(db), "index build was stopped by the progress callback"));
    assert_int_equal(p.calls[IQDB_PROGRESS_BUILD], 3);
    iqdb_count(db, &n);
    assert_int_equal(n, 0);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    bprog_reset(&p, 0, 0);
    assert_int_equal(iqdb_upsert_batch(db, N, ids, v, NULL), IQDB_OK);
    assert_int_equal(p.calls[IQDB_PROGRESS_IMPORT], N / 1024 + 1);
    /* one report per 256 nodes linked, of N */
    assert_int_equal(p.calls[IQDB_PROGRESS_BUILD], N / 256);
    assert_int_equal(p.total[IQDB_PROGRESS_BUILD], N);
    assert_true(p.monotone);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    answers(db, v + N * DIM, a, na);
    exact_answers(db, v + N * DIM, b, nb);
    size_t found = 0; /* the graph answers well: it was built in full */
    for (size_t i = 0; i < NQ; i++)
        for (size_t j = 0; j < nb[i]; j++)
            for (size_t t = 0; t < na[i]; t++) found += a[i * QK + t].id == b[i * QK + j].id;
    assert_true(found >= NQ * QK * 9 / 10);

    /* an interrupted bulk insert into a built graph: half replacements, half new rows */
    iqdb_id *ids2 = make_ids(N, N / 2);
    bprog_reset(&p, IQDB_PROGRESS_BUILD, 5);
    iqdb_hit e[NQ * QK];
    size_t ne[NQ];
    assert_int_equal(iqdb_upsert_batch(db, N, ids2, v + N * DIM, NULL), IQDB_INTERRUPTED);
    iqdb_count(db, &n);
    assert_int_equal(n, N);
    assert_int_equal(iqdb_get(db, N + 10, NULL, NULL), IQDB_NOTFOUND);
    float got[DIM];
    assert_int_equal(iqdb_get(db, N - 1, got, NULL), IQDB_OK);
    assert_memory_equal(got, v + (N - 1) * DIM, sizeof got);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    exact_answers(db, v + N * DIM, e, ne);
    assert_same_answers(b, nb, e, ne);
    answers(db, v + N * DIM, e, ne);
    for (size_t i = 0; i < NQ; i++) assert_int_equal(ne[i], QK);
    /* and the same batch goes in afterwards */
    bprog_reset(&p, 0, 0);
    assert_int_equal(iqdb_upsert_batch(db, N, ids2, v + N * DIM, NULL), IQDB_OK);
    iqdb_count(db, &n);
    assert_int_equal(n, N + N / 2);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    free(ids2);
    free(ids);
    free(v);
    iqdb_close(db);
}

static void test_observe_hnsw_optimize(void **state) {
    (void)state;
    enum { N = 2000 };
    bprog p;
    bprog_reset(&p, 0, 0);
    float *v = make_vecs(N + NQ);
    iqdb_id *ids = make_ids(N, 0);
    iqdb *db = open_index(IQDB_INDEX_HNSW, &p);
    assert_int_equal(iqdb_upsert_batch(db, N, ids, v, NULL), IQDB_OK);
    for (iqdb_id id = 0; id < N; id += 4) assert_int_equal(iqdb_delete(db, id, NULL), IQDB_OK);
    iqdb_hit a[NQ * QK], b[NQ * QK];
    size_t na[NQ], nb[NQ];
    answers(db, v + N * DIM, a, na);
    /* stopped by the callback: the graph is the one from before, answers identical */
    bprog_reset(&p, IQDB_PROGRESS_OPTIMIZE, 2);
    assert_int_equal(iqdb_optimize(db), IQDB_INTERRUPTED);
    assert_non_null(strstr(iqdb_errmsg(db), "optimize was stopped by the progress callback"));
    assert_int_equal(p.calls[IQDB_PROGRESS_OPTIMIZE], 2);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    answers(db, v + N * DIM, b, nb);
    assert_same_answers(a, na, b, nb);
    /* in full: reports of the live rows linked */
    bprog_reset(&p, 0, 0);
    assert_int_equal(iqdb_optimize(db), IQDB_OK);
    assert_int_equal(p.total[IQDB_PROGRESS_OPTIMIZE], N - N / 4);
    assert_int_equal(p.calls[IQDB_PROGRESS_OPTIMIZE], (N - N / 4) / 256);
    assert_true(p.monotone);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    free(ids);
    free(v);
    iqdb_close(db);
}

static void test_observe_ivf_training(void **state) {
    (void)state;
    enum { N = 4000 };
    bprog p;
    bprog_reset(&p, IQDB_PROGRESS_BUILD, 1);
    float *v = make_vecs(N + NQ);
    iqdb_id *ids = make_ids(N, 0);
    iqdb *db = open_index(IQDB_INDEX_IVF, &p);
    iqdb_stats s;
    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    /* the automatic training a write triggers, stopped: the write stands, no training */
    assert_int_equal(iqdb_upsert_batch(db, N, ids, v, NULL), IQDB_OK);
    assert_int_equal(p.calls[IQDB_PROGRESS_BUILD], 1);
    assert_int_equal(p.total[IQDB_PROGRESS_BUILD], 13); /* 10 iterations + 3 steps */
    uint64_t n = 0;
    iqdb_count(db, &n);
    assert_int_equal(n, N);
    assert_int_equal(iqdb_stats_get(db, &s), IQDB_OK);
    assert_int_equal(s.trained, 0);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    /* optimize trains, reporting steps */
    bprog_reset(&p, 0, 0);
    assert_int_equal(iqdb_optimize(db), IQDB_OK);
    assert_true(p.calls[IQDB_PROGRESS_OPTIMIZE] >= 3);
    assert_int_equal(p.last[IQDB_PROGRESS_OPTIMIZE], 13);
    assert_true(p.monotone);
    assert_int_equal(iqdb_stats_get(db, &s), IQDB_OK);
    assert_int_equal(s.trained, 1);
    assert_int_equal(s.ivf_lists, 16);
    iqdb_hit a[NQ * QK], b[NQ * QK];
    size_t na[NQ], nb[NQ];
    answers(db, v + N * DIM, a, na);
    /* a retraining stopped at each step leaves the lists as they were */
    for (int at = 1; at <= 3; at++) {
        bprog_reset(&p, IQDB_PROGRESS_OPTIMIZE, at);
        assert_int_equal(iqdb_optimize(db), IQDB_INTERRUPTED);
        assert_int_equal(iqdb_check(db), IQDB_OK);
        answers(db, v + N * DIM, b, nb);
        assert_same_answers(a, na, b, nb);
    }
    free(ids);
    free(v);
    iqdb_close(db);
}

static void test_observe_interrupt_optimize(void **state) {
    (void)state;
    enum { N = 1500 };
    bprog p;
    bprog_reset(&p, 0, 0);
    float *v = make_vecs(N);
    iqdb_id *ids = make_ids(N, 0);
    gdb = open_index(IQDB_INDEX_HNSW, &p);
    assert_int_equal(iqdb_upsert_batch(gdb, N, ids, v, NULL), IQDB_OK);
    atomic_store(&g_stop, 0);
    pthread_t t;
    pthread_create(&t, NULL, interrupter, NULL);
    int interrupted = 0;
    for (int tries = 0; tries < 50 && !interrupted; tries++) {
        int rc = iqdb_optimize(gdb);
        assert_true(rc == IQDB_OK || rc == IQDB_INTERRUPTED);
        interrupted = rc == IQDB_INTERRUPTED;
        if (interrupted) assert_non_null(strstr(iqdb_errmsg(gdb), "iqdb_interrupt"));
    }
    atomic_store(&g_stop, 1);
    pthread_join(t, NULL);
    assert_true(interrupted);
    assert_int_equal(iqdb_check(gdb), IQDB_OK);
    uint64_t n;
    iqdb_count(gdb, &n);
    assert_int_equal(n, N);
    free(ids);
    free(v);
    iqdb_close(gdb);
}

/* ---- log ------------------------------------------------------------------------------------ */

typedef struct logbuf {
    int n, max_level;
    char text[4096];
} logbuf;

static void logger(void *ud, iqdb_log_level level, const char *msg) {
    logbuf *b = ud;
    b->n++;
    if ((int)level > b->max_level) b->max_level = (int)level;
    strncat(b->text, msg, sizeof b->text - strlen(b->text) - 2);
    strcat(b->text, "\n");
}

static void test_observe_log(void **state) {
    (void)state;
    char dir[] = "/tmp/iqdb-log-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/db", dir);
    logbuf b;
    memset(&b, 0, sizeof b);
    iqdb_options o;
    iqdb_options_init(&o, DIM, IQDB_METRIC_L2);
    o.log_fn = logger;
    o.log_ud = &b;
    iqdb *db = NULL;
    assert_int_equal(iqdb_open(path, &o, &db), IQDB_OK);
    float v[DIM] = {1};
    assert_int_equal(iqdb_upsert(db, 1, v, NULL), IQDB_OK);
    assert_int_equal(iqdb_checkpoint(db), IQDB_OK);
    assert_int_equal(iqdb_close(db), IQDB_OK);
    assert_non_null(strstr(b.text, "opened "));
    assert_non_null(strstr(b.text, "checkpoint: generation 2"));
    assert_true(b.max_level <= IQDB_LOG_INFO); /* DEBUG is off by default */
    /* ERROR only: a normal session says nothing */
    memset(&b, 0, sizeof b);
    o.log_level = IQDB_LOG_ERROR;
    assert_int_equal(iqdb_open(path, &o, &db), IQDB_OK);
    assert_int_equal(iqdb_upsert(db, 2, v, NULL), IQDB_OK);
    assert_int_equal(iqdb_close(db), IQDB_OK);
    assert_int_equal(b.n, 0);
    o.log_level = (iqdb_log_level)9;
    assert_int_equal(iqdb_open(path, &o, &db), IQDB_INVALID);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* ---- search info counters ------------------------------------------------------------------- */

static void test_observe_search_info(void **state) {
    (void)state;
    iqdb_options o;
    iqdb_options_init(&o, DIM, IQDB_METRIC_L2);
    iqdb *db = NULL;
    assert_int_equal(iqdb_open(NULL, &o, &db), IQDB_OK);
    enum { N = 500 };
    float *v = make_vecs(N);
    iqdb_meta *m;
    iqdb_meta_create(NULL, &m);
    iqdb_meta_set_int(m, "x", 1);
    for (int i = 0; i < N; i++)
        assert_int_equal(iqdb_upsert(db, (iqdb_id)i, v + i * DIM, i % 5 ? NULL : m), IQDB_OK);
    for (int i = 0; i < N; i += 7) iqdb_delete(db, (iqdb_id)i, NULL); /* 72 gone */
    uint64_t live;
    iqdb_count(db, &live);
    iqdb_hit h[5];
    size_t n;
    iqdb_search_info info = {.struct_size = sizeof info};
    assert_int_equal(iqdb_search(db, v, 5, NULL, h, &n, &info), IQDB_OK);
    assert_int_equal(info.n_visited, live);
    assert_int_equal(info.n_distances, live);
    assert_int_equal(info.n_matched, live);
    uint64_t matching = 0;
    for (int i = 0; i < N; i++)
        if (i % 5 == 0 && i % 7 != 0) matching++;
    iqdb_filter *f;
    iqdb_filter_parse(NULL, "x = 1", 5, &f, NULL);
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    p.filter = f;
    assert_int_equal(iqdb_search(db, v, 5, &p, h, &n, &info), IQDB_OK);
    assert_int_equal(info.strategy, IQDB_STRATEGY_SCAN_FILTERED);
    assert_int_equal(info.n_visited, live);
    assert_int_equal(info.n_matched, matching);
    assert_int_equal(info.n_distances, matching);
    assert_int_equal(info.cache_hit, 0);
    /* an old caller's smaller struct is left alone past its size */
    struct {
        iqdb_search_info i;
        uint32_t canary;
    } small;
    memset(&small, 0xab, sizeof small);
    small.i.struct_size = offsetof(iqdb_search_info, cache_hit);
    assert_int_equal(iqdb_search(db, v, 5, NULL, h, &n, &small.i), IQDB_OK);
    assert_int_equal(small.i.cache_hit, 0xabababab);
    iqdb_filter_destroy(f);
    iqdb_meta_destroy(m);
    free(v);
    iqdb_close(db);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_observe_import_progress),
        cmocka_unit_test(test_observe_search_batch_progress),
        cmocka_unit_test(test_observe_checkpoint_progress),
        cmocka_unit_test(test_observe_interrupt_thread),
        cmocka_unit_test(test_observe_hnsw_build),
        cmocka_unit_test(test_observe_hnsw_optimize),
        cmocka_unit_test(test_observe_ivf_training),
        cmocka_unit_test(test_observe_interrupt_optimize),
        cmocka_unit_test(test_observe_log),
        cmocka_unit_test(test_observe_search_info),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
