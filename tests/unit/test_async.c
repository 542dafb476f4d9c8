/*
 * test_async.c — the async executor: every call through it, results equal to synchronous calls,
 * many submitting threads at once (run under ThreadSanitizer: label "concurrency"), callbacks
 * and futures, timeouts, cancellation while queued, destroy with queued calls, inputs copied at
 * submission, open/checkpoint/close of a durable database.
 */
#include "../common/testutil.h"

#include <pthread.h>
#include <unistd.h>

enum { DIM = 16 };

static void vec_of(float *v, uint64_t id) {
    iqdbt_rng r = {id * 7919 + 1};
    iqdbt_fill(&r, v, DIM, -1, 1);
}

static void count_cb(void *ud, iqdb_future *f, int rc) {
    (void)f;
    if (rc == IQDB_OK) atomic_fetch_add((_Atomic int *)ud, 1);
}

static int wait_rc(iqdb_future *f) {
    int rc = -1;
    assert_int_equal(iqdb_future_wait(f, UINT32_MAX, &rc), IQDB_OK);
    iqdb_future_release(f);
    return rc;
}

static void test_async_every_call(void **state) {
    (void)state;
    iqdb_async *a = NULL;
    assert_int_equal(iqdb_async_create(NULL, 3, &a), IQDB_OK);
    iqdb_options o;
    iqdb_options_init(&o, DIM, IQDB_METRIC_L2);
    o.cache_entries = 16;
    iqdb *db = NULL;
    iqdb_future *f;
    assert_int_equal(iqdb_async_open(a, NULL, &o, &db, NULL, NULL, &f), IQDB_OK);
    assert_int_equal(wait_rc(f), IQDB_OK);
    assert_non_null(db);
    _Atomic int ok = 0;
    iqdb_future *fs[200];
    iqdb_meta *m;
    iqdb_meta_create(NULL, &m);
    iqdb_meta_set_int(m, "par", 1);
    for (int i = 0; i < 200; i++) {
        float v[DIM];
        vec_of(v, (uint64_t)i);
        assert_int_equal(
            iqdb_async_upsert(a, db, (iqdb_id)i, v, i % 2 ? m : NULL, count_cb, &ok, &fs[i]),
            IQDB_OK);
    }
    iqdb_meta_destroy(m); /* copied at submission */
    for (int i = 0; i < 200; i++) assert_int_equal(wait_rc(fs[i]), IQDB_OK);
    assert_int_equal(atomic_load(&ok), 200);
    /* batch */
    iqdb_id ids[50];
    float vecs[50 * DIM];
    for (int i = 0; i < 50; i++) {
        ids[i] = 1000 + (iqdb_id)i;
        vec_of(vecs + i * DIM, ids[i]);
    }
    assert_int_equal(iqdb_async_upsert_batch(a, db, 50, ids, vecs, NULL, NULL, NULL, &f), IQDB_OK);
    memset(vecs, 0, sizeof vecs); /* copied */
    assert_int_equal(wait_rc(f), IQDB_OK);
    uint64_t n = 0;
    assert_int_equal(iqdb_async_count(a, db, &n, NULL, NULL, &f), IQDB_OK);
    assert_int_equal(wait_rc(f), IQDB_OK);
    assert_int_equal(n, 250);
    /* get */
    float got[DIM], want[DIM];
    iqdb_meta *gm = NULL;
    assert_int_equal(iqdb_async_get(a, db, 1001, got, &gm, NULL, NULL, &f), IQDB_OK);
    assert_int_equal(wait_rc(f), IQDB_OK);
    vec_of(want, 1001);
    assert_memory_equal(got, want, sizeof got);
    assert_null(gm);
    assert_int_equal(iqdb_async_get(a, db, 3, got, &gm, NULL, NULL, &f), IQDB_OK);
    assert_int_equal(wait_rc(f), IQDB_OK);
    int64_t par = 0;
    assert_int_equal(iqdb_meta_get_int(gm, "par", &par), IQDB_OK);
    assert_int_equal(par, 1);
    iqdb_meta_destroy(gm);
    assert_int_equal(iqdb_async_get(a, db, 99999, got, NULL, NULL, NULL, &f), IQDB_OK);
    assert_int_equal(wait_rc(f), IQDB_NOTFOUND);
    /* search (with a filter that is destroyed right after submission) and batch */
    iqdb_filter *flt = NULL;
    assert_int_equal(iqdb_filter_parse(NULL, "par = 1", 7, &flt, NULL), IQDB_OK);
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    p.filter = flt;
    float q[DIM];
    vec_of(q, 77);
    iqdb_hit ha[10], hs[10];
    size_t na = 0, ns = 0;
    iqdb_search_info info = {.struct_size = sizeof info};
    assert_int_equal(iqdb_async_search(a, db, q, 10, &p, ha, &na, &info, NULL, NULL, &f), IQDB_OK);
    assert_int_equal(iqdb_search(db, q, 10, &p, hs, &ns, NULL), IQDB_OK);
    iqdb_filter_destroy(flt);
    assert_int_equal(wait_rc(f), IQDB_OK);
    assert_int_equal(na, ns);
    assert_memory_equal(ha, hs, na * sizeof *ha);
    assert_int_equal(ha[0].id, 77);
    float qs[4 * DIM];
    for (int i = 0; i < 4; i++) vec_of(qs + i * DIM, (uint64_t)(i * 10));
    iqdb_hit hb[4 * 3];
    size_t nb[4];
    assert_int_equal(iqdb_async_search_batch(a, db, qs, 4, 3, NULL, hb, nb, NULL, NULL, &f),
                     IQDB_OK);
    assert_int_equal(wait_rc(f), IQDB_OK);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(nb[i], 3);
        assert_int_equal(hb[i * 3].id, (iqdb_id)(i * 10));
    }
    /* delete, checkpoint (in memory: nothing to do), check, close */
    int existed = 0;
    assert_int_equal(iqdb_async_delete(a, db, 5, &existed, NULL, NULL, &f), IQDB_OK);
    assert_int_equal(wait_rc(f), IQDB_OK);
    assert_int_equal(existed, 1);
    assert_int_equal(iqdb_async_checkpoint(a, db, NULL, NULL, &f), IQDB_OK);
    assert_int_equal(wait_rc(f), IQDB_OK);
    assert_int_equal(iqdb_async_check(a, db, NULL, NULL, &f), IQDB_OK);
    assert_int_equal(wait_rc(f), IQDB_OK);
    assert_int_equal(iqdb_async_close(a, db, NULL, NULL, &f), IQDB_OK);
    assert_int_equal(wait_rc(f), IQDB_OK);
    iqdb_async_destroy(a);
}

static void test_async_bad_input(void **state) {
    (void)state;
    iqdb_async *a = NULL;
    assert_int_equal(iqdb_async_create(NULL, IQDB_MAX_THREADS + 1, &a), IQDB_INVALID);
    assert_int_equal(iqdb_async_create(NULL, 1, NULL), IQDB_MISUSE);
    assert_int_equal(iqdb_async_create(NULL, 1, &a), IQDB_OK);
    iqdb_future *f = (iqdb_future *)1;
    float v[DIM] = {0};
    assert_int_equal(iqdb_async_upsert(a, NULL, 1, v, NULL, NULL, NULL, &f), IQDB_MISUSE);
    assert_null(f);
    assert_int_equal(iqdb_async_open(NULL, NULL, NULL, NULL, NULL, NULL, &f), IQDB_MISUSE);
    /* an open that fails reports through the future */
    iqdb_options o;
    iqdb_options_init(&o, 0, IQDB_METRIC_L2);
    iqdb *db = (iqdb *)1;
    assert_int_equal(iqdb_async_open(a, NULL, &o, &db, NULL, NULL, &f), IQDB_OK);
    assert_int_equal(wait_rc(f), IQDB_INVALID);
    assert_null(db);
    assert_int_equal(iqdb_future_wait(NULL, 0, NULL), IQDB_MISUSE);
    assert_int_equal(iqdb_future_cancel(NULL), IQDB_MISUSE);
    iqdb_future_release(NULL);
    iqdb_async_destroy(NULL);
    iqdb_async_destroy(a);
}

/* ---- cancellation, timeouts, destroy -------------------------------------------------------- */

typedef struct gate {
    pthread_mutex_t m;
    pthread_cond_t c;
    int open, entered;
} gate;

static void gate_cb(void *ud, iqdb_future *f, int rc) {
    (void)f;
    (void)rc;
    gate *g = ud;
    pthread_mutex_lock(&g->m);
    g->entered = 1;
    pthread_cond_broadcast(&g->c);
    while (!g->open) pthread_cond_wait(&g->c, &g->m);
    pthread_mutex_unlock(&g->m);
}

static void gate_wait_entered(gate *g) {
    pthread_mutex_lock(&g->m);
    while (!g->entered) pthread_cond_wait(&g->c, &g->m);
    pthread_mutex_unlock(&g->m);
}

static void gate_open(gate *g) {
    pthread_mutex_lock(&g->m);
    g->open = 1;
    pthread_cond_broadcast(&g->c);
    pthread_mutex_unlock(&g->m);
}

static void *open_later(void *g) {
    struct timespec ts = {0, 50 * 1000000L};
    nanosleep(&ts, NULL);
    gate_open(g);
    return NULL;
}

typedef struct seen {
    _Atomic int calls, last_rc;
} seen;

static void seen_cb(void *ud, iqdb_future *f, int rc) {
    (void)f;
    seen *s = ud;
    atomic_store(&s->last_rc, rc);
    atomic_fetch_add(&s->calls, 1);
}

static void test_async_cancel_and_timeout(void **state) {
    (void)state;
    iqdb_async *a = NULL;
    assert_int_equal(iqdb_async_create(NULL, 1, &a), IQDB_OK);
    iqdb_options o;
    iqdb_options_init(&o, DIM, IQDB_METRIC_L2);
    iqdb *db = NULL;
    assert_int_equal(iqdb_open(NULL, &o, &db), IQDB_OK);
    gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    float v[DIM];
    vec_of(v, 1);
    iqdb_future *blocker, *queued, *after;
    /* the single worker is held inside the first call's callback */
    assert_int_equal(iqdb_async_upsert(a, db, 1, v, NULL, gate_cb, &g, &blocker), IQDB_OK);
    gate_wait_entered(&g);
    seen s = {0, 0};
    assert_int_equal(iqdb_async_upsert(a, db, 2, v, NULL, seen_cb, &s, &queued), IQDB_OK);
    assert_int_equal(iqdb_async_upsert(a, db, 3, v, NULL, NULL, NULL, &after), IQDB_OK);
    int rc = 0;
    assert_int_equal(iqdb_future_wait(queued, 20, &rc), IQDB_BUSY); /* timeout */
    assert_int_equal(iqdb_future_wait(queued, 0, &rc), IQDB_BUSY);
    assert_int_equal(iqdb_future_cancel(blocker), IQDB_BUSY); /* running */
    assert_int_equal(iqdb_future_cancel(queued), IQDB_OK);
    assert_int_equal(atomic_load(&s.calls), 1); /* the callback ran, on this thread */
    assert_int_equal(atomic_load(&s.last_rc), IQDB_INTERRUPTED);
    assert_int_equal(iqdb_future_cancel(queued), IQDB_BUSY); /* done already */
    assert_int_equal(iqdb_future_wait(queued, 0, &rc), IQDB_OK);
    assert_int_equal(rc, IQDB_INTERRUPTED);
    iqdb_future_release(queued);
    gate_open(&g);
    assert_int_equal(wait_rc(blocker), IQDB_OK);
    assert_int_equal(wait_rc(after), IQDB_OK);
    /* the cancelled upsert never ran */
    assert_int_equal(iqdb_get(db, 2, NULL, NULL), IQDB_NOTFOUND);
    assert_int_equal(iqdb_get(db, 3, NULL, NULL), IQDB_OK);

    /* destroy with queued calls: they complete with IQDB_INTERRUPTED; futures outlive it */
    gate g2 = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    assert_int_equal(iqdb_async_upsert(a, db, 10, v, NULL, gate_cb, &g2, &blocker), IQDB_OK);
    gate_wait_entered(&g2);
    seen s2 = {0, 0};
    iqdb_future *q2[5];
    for (int i = 0; i < 5; i++)
        assert_int_equal(iqdb_async_upsert(a, db, 20 + (iqdb_id)i, v, NULL, seen_cb, &s2, &q2[i]),
                         IQDB_OK);
    /* open the gate from another thread once destroy is waiting for the running call */
    pthread_t t;
    pthread_create(&t, NULL, open_later, &g2);
    iqdb_async_destroy(a);
    pthread_join(t, NULL);
    assert_int_equal(atomic_load(&s2.calls), 5);
    for (int i = 0; i < 5; i++) assert_int_equal(wait_rc(q2[i]), IQDB_INTERRUPTED);
    assert_int_equal(wait_rc(blocker), IQDB_OK);
    uint64_t n;
    iqdb_count(db, &n);
    assert_int_equal(n, 3); /* ids 1, 3, 10 */
    iqdb_close(db);
}

/* ---- keyed twins, optimize, stats, cache_clear; cancelling a running call ------------------- */

static void test_async_more_twins(void **state) {
    (void)state;
    iqdb_async *a = NULL;
    assert_int_equal(iqdb_async_create(NULL, 2, &a), IQDB_OK);
    iqdb_options o;
    iqdb_options_init(&o, DIM, IQDB_METRIC_L2);
    o.index = IQDB_INDEX_HNSW;
    o.cache_entries = 16;
    iqdb *db = NULL;
    assert_int_equal(iqdb_open(NULL, &o, &db), IQDB_OK);
    float v[3 * DIM], got[DIM];
    for (int i = 0; i < 3; i++) vec_of(v + i * DIM, 100 + (uint64_t)i);
    char k0[] = "alpha", k1[] = "beta", k2[] = "gamma";
    iqdb_future *f;
    /* inputs are copied: the key buffer is overwritten right after the submit */
    assert_int_equal(iqdb_async_upsert_key(a, db, k0, 5, v, NULL, NULL, NULL, &f), IQDB_OK);
    memset(k0, 'x', 5);
    assert_int_equal(wait_rc(f), IQDB_OK);
    const void *keys[2] = {k1, k2};
    size_t lens[2] = {4, 5};
    assert_int_equal(
        iqdb_async_upsert_batch_key(a, db, 2, keys, lens, v + DIM, NULL, NULL, NULL, &f), IQDB_OK);
    memset(k1, 'x', 4);
    assert_int_equal(wait_rc(f), IQDB_OK);
    assert_int_equal(iqdb_async_get_key(a, db, "alpha", 5, got, NULL, NULL, NULL, &f), IQDB_OK);
    assert_int_equal(wait_rc(f), IQDB_OK);
    assert_memory_equal(got, v, sizeof got);
    assert_int_equal(iqdb_async_get_key(a, db, "beta", 4, got, NULL, NULL, NULL, &f), IQDB_OK);
    assert_int_equal(wait_rc(f), IQDB_OK);
    assert_memory_equal(got, v + DIM, sizeof got);
    int existed = -1;
    assert_int_equal(iqdb_async_delete_key(a, db, "gamma", 5, &existed, NULL, NULL, &f), IQDB_OK);
    assert_int_equal(wait_rc(f), IQDB_OK);
    assert_int_equal(existed, 1);
    assert_int_equal(iqdb_get_key(db, "gamma", 5, NULL, NULL), IQDB_NOTFOUND);
    assert_int_equal(iqdb_async_optimize(a, db, NULL, NULL, &f), IQDB_OK);
    assert_int_equal(wait_rc(f), IQDB_OK);
    iqdb_stats st = {.struct_size = sizeof st};
    assert_int_equal(iqdb_async_stats_get(a, db, &st, NULL, NULL, &f), IQDB_OK);
    assert_int_equal(wait_rc(f), IQDB_OK);
    assert_int_equal(st.count, 2);
    assert_int_equal(iqdb_async_cache_clear(a, db, NULL, NULL, &f), IQDB_OK);
    assert_int_equal(wait_rc(f), IQDB_OK);
    /* bad input: refused at submission, or by the call when it runs (empty key) */
    f = (iqdb_future *)&st;
    assert_int_equal(iqdb_async_get_key(a, db, NULL, 3, got, NULL, NULL, NULL, &f), IQDB_MISUSE);
    assert_null(f);
    static char big[IQDB_MAX_ID_KEY_LEN + 1];
    assert_int_equal(iqdb_async_upsert_key(a, db, big, sizeof big, v, NULL, NULL, NULL, &f),
                     IQDB_INVALID);
    assert_int_equal(iqdb_async_upsert_key(a, db, "k", 1, NULL, NULL, NULL, NULL, &f), IQDB_MISUSE);
    assert_int_equal(iqdb_async_upsert_batch_key(a, db, 2, NULL, lens, v, NULL, NULL, NULL, &f),
                     IQDB_MISUSE);
    assert_int_equal(iqdb_async_stats_get(a, db, NULL, NULL, NULL, &f), IQDB_MISUSE);
    assert_int_equal(iqdb_async_optimize(NULL, db, NULL, NULL, &f), IQDB_MISUSE);
    assert_int_equal(iqdb_async_delete_key(a, db, "", 0, NULL, NULL, NULL, &f), IQDB_OK);
    assert_int_equal(wait_rc(f), IQDB_INVALID);
    uint64_t n = 0;
    iqdb_count(db, &n);
    assert_int_equal(n, 2);
    iqdb_async_destroy(a);
    iqdb_close(db);
}

/* The progress callback holds the first report until the test has cancelled the running call. */
typedef struct hold {
    _Atomic int entered, released, reports;
} hold;

static int hold_progress(void *ud, iqdb_progress_op op, uint64_t done, uint64_t total) {
    (void)op;
    (void)done;
    (void)total;
    hold *h = ud;
    if (atomic_fetch_add(&h->reports, 1) == 0) {
        atomic_store(&h->entered, 1);
        while (!atomic_load(&h->released)) {
            struct timespec ts = {0, 100000L};
            nanosleep(&ts, NULL);
        }
    }
    return 0;
}

static void test_async_cancel_running(void **state) {
    (void)state;
    enum { N = 3000 };
    hold h;
    atomic_init(&h.entered, 0);
    atomic_init(&h.released, 0);
    atomic_init(&h.reports, 0);
    atomic_store(&h.released, 1); /* the load below is not held */
    iqdb_options o;
    iqdb_options_init(&o, DIM, IQDB_METRIC_L2);
    o.index = IQDB_INDEX_HNSW;
    o.threads = 2;
    o.progress_fn = hold_progress;
    o.progress_ud = &h;
    iqdb *db = NULL;
    assert_int_equal(iqdb_open(NULL, &o, &db), IQDB_OK);
    float *v = malloc((size_t)N * DIM * sizeof *v);
    iqdb_id *ids = malloc(N * sizeof *ids);
    for (int i = 0; i < N; i++) {
        vec_of(v + (size_t)i * DIM, (uint64_t)i);
        ids[i] = (iqdb_id)i;
    }
    assert_int_equal(iqdb_upsert_batch(db, N, ids, v, NULL), IQDB_OK);
    iqdb_async *a = NULL;
    assert_int_equal(iqdb_async_create(NULL, 1, &a), IQDB_OK);
    atomic_store(&h.reports, 0);
    atomic_store(&h.entered, 0);
    atomic_store(&h.released, 0);
    iqdb_future *f;
    assert_int_equal(iqdb_async_optimize(a, db, NULL, NULL, &f), IQDB_OK);
    while (!atomic_load(&h.entered)) {
        struct timespec ts = {0, 100000L};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(iqdb_future_cancel(f), IQDB_BUSY); /* running: asked to stop */
    atomic_store(&h.released, 1);
    assert_int_equal(wait_rc(f), IQDB_INTERRUPTED);
    assert_int_equal(iqdb_check(db), IQDB_OK);
    uint64_t n = 0;
    iqdb_count(db, &n);
    assert_int_equal(n, N);
    /* the cancel concerned that call only: the next optimize runs to the end */
    atomic_store(&h.released, 1);
    assert_int_equal(iqdb_async_optimize(a, db, NULL, NULL, &f), IQDB_OK);
    assert_int_equal(wait_rc(f), IQDB_OK);
    assert_int_equal(iqdb_optimize(db), IQDB_OK);
    iqdb_async_destroy(a);
    iqdb_close(db);
    free(ids);
    free(v);
}

/* ---- many threads at once ------------------------------------------------------------------- */

enum { SUBMITTERS = 4, PER = 150 };
static iqdb_async *ga;
static iqdb *gdb;
static _Atomic int g_ok, g_bad;

static void check_search_cb(void *ud, iqdb_future *f, int rc) {
    (void)f;
    iqdb_hit *h = ud;
    /* hits[0] is the record the query was made from (inserted before the search started) */
    if (rc != IQDB_OK || h[0].distance != 0.0f)
        atomic_fetch_add(&g_bad, 1);
    else
        atomic_fetch_add(&g_ok, 1);
}

static void *submitter(void *arg) {
    int t = (int)(intptr_t)arg;
    iqdb_hit(*hits)[4] = calloc(PER, sizeof *hits);
    size_t *nh = calloc(PER, sizeof *nh);
    iqdb_future **fs = calloc(2 * PER, sizeof *fs);
    for (int i = 0; i < PER; i++) {
        iqdb_id id = (iqdb_id)(t * 100000 + i);
        float v[DIM];
        vec_of(v, id);
        iqdb_future *up;
        if (iqdb_async_upsert(ga, gdb, id, v, NULL, NULL, NULL, &up) != IQDB_OK ||
            iqdb_future_wait(up, UINT32_MAX, NULL) != IQDB_OK) {
            atomic_fetch_add(&g_bad, 1);
            continue;
        }
        iqdb_future_release(up);
        if (iqdb_async_search(ga, gdb, v, 4, NULL, hits[i], &nh[i], NULL, check_search_cb, hits[i],
                              &fs[i]) != IQDB_OK)
            atomic_fetch_add(&g_bad, 1);
        if (i % 10 == 0) {
            iqdb_future *d;
            if (iqdb_async_delete(ga, gdb, id + 50000, NULL, NULL, NULL, &d) == IQDB_OK)
                iqdb_future_release(d); /* fire and forget */
        }
    }
    for (int i = 0; i < PER; i++)
        if (fs[i]) {
            iqdb_future_wait(fs[i], UINT32_MAX, NULL);
            iqdb_future_release(fs[i]);
        }
    free(hits);
    free(nh);
    free(fs);
    return NULL;
}

static void test_async_concurrent(void **state) {
    (void)state;
    assert_int_equal(iqdb_async_create(NULL, 4, &ga), IQDB_OK);
    iqdb_options o;
    iqdb_options_init(&o, DIM, IQDB_METRIC_L2);
    o.cache_entries = 64;
    assert_int_equal(iqdb_open(NULL, &o, &gdb), IQDB_OK);
    pthread_t th[SUBMITTERS];
    for (int t = 0; t < SUBMITTERS; t++)
        pthread_create(&th[t], NULL, submitter, (void *)(intptr_t)t);
    for (int t = 0; t < SUBMITTERS; t++) pthread_join(th[t], NULL);
    assert_int_equal(atomic_load(&g_bad), 0);
    assert_int_equal(atomic_load(&g_ok), SUBMITTERS * PER);
    iqdb_future *f;
    assert_int_equal(iqdb_async_close(ga, gdb, NULL, NULL, &f), IQDB_OK);
    assert_int_equal(wait_rc(f), IQDB_OK);
    iqdb_async_destroy(ga);
}

/* ---- durable open / checkpoint / close ------------------------------------------------------ */

static void test_async_durable(void **state) {
    (void)state;
    char dir[] = "/tmp/iqdb-async-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/db", dir);
    iqdb_async *a;
    assert_int_equal(iqdb_async_create(NULL, 2, &a), IQDB_OK);
    iqdb_options o;
    iqdb_options_init(&o, DIM, IQDB_METRIC_COSINE);
    o.sync = IQDB_SYNC_NEVER;
    iqdb *db = NULL;
    iqdb_future *f;
    assert_int_equal(iqdb_async_open(a, path, &o, &db, NULL, NULL, &f), IQDB_OK);
    assert_int_equal(wait_rc(f), IQDB_OK);
    float v[DIM];
    vec_of(v, 9);
    assert_int_equal(iqdb_async_upsert(a, db, 9, v, NULL, NULL, NULL, &f), IQDB_OK);
    assert_int_equal(wait_rc(f), IQDB_OK);
    assert_int_equal(iqdb_async_checkpoint(a, db, NULL, NULL, &f), IQDB_OK);
    assert_int_equal(wait_rc(f), IQDB_OK);
    iqdb_stats s = {.struct_size = sizeof s};
    iqdb_stats_get(db, &s);
    assert_int_equal(s.checkpoints, 1);
    assert_int_equal(iqdb_async_close(a, db, NULL, NULL, &f), IQDB_OK);
    assert_int_equal(wait_rc(f), IQDB_OK);
    assert_int_equal(iqdb_async_open(a, path, &o, &db, NULL, NULL, &f), IQDB_OK);
    assert_int_equal(wait_rc(f), IQDB_OK);
    assert_int_equal(iqdb_get(db, 9, NULL, NULL), IQDB_OK);
    assert_int_equal(iqdb_close(db), IQDB_OK);
    iqdb_async_destroy(a);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* Allocation failures in the executor and in the copies of a submit: clean codes, no leak. */
static void test_async_oom(void **state) {
    (void)state;
    iqdb_options o;
    iqdb_options_init(&o, DIM, IQDB_METRIC_L2);
    iqdb *db = NULL;
    assert_int_equal(iqdb_open(NULL, &o, &db), IQDB_OK);
    iqdb_meta *m;
    iqdb_meta_create(NULL, &m);
    iqdb_meta_set_string(m, "s", "value");
    iqdb_filter *flt = NULL;
    assert_int_equal(iqdb_filter_parse(NULL, "s = 'value' OR NOT EXISTS(t)", 28, &flt, NULL),
                     IQDB_OK);
    float v[DIM];
    vec_of(v, 1);
    int succeeded = 0;
    for (long long at = 1; at < 60 && !succeeded; at++) {
        iqdbt_alloc al;
        iqdbt_alloc_reset(&al);
        iqdb_allocator alloc = iqdbt_allocator(&al, 0);
        iqdbt_fail_after(&al, at, 0);
        iqdb_async *a = NULL;
        int rc = iqdb_async_create(&alloc, 2, &a);
        if (rc != IQDB_OK) {
            assert_int_equal(rc, IQDB_NOMEM);
            assert_null(a);
            assert_int_equal(atomic_load(&al.live), 0);
            continue;
        }
        iqdb_future *f1 = NULL, *f2 = NULL;
        int r1 = iqdb_async_upsert(a, db, 7, v, m, NULL, NULL, &f1);
        iqdb_search_params p;
        iqdb_search_params_init(&p);
        p.filter = flt;
        iqdb_hit h[2];
        size_t n;
        int r2 = iqdb_async_search(a, db, v, 2, &p, h, &n, NULL, NULL, NULL, &f2);
        assert_true(r1 == IQDB_OK || r1 == IQDB_NOMEM);
        assert_true(r2 == IQDB_OK || r2 == IQDB_NOMEM);
        if (r1 == IQDB_OK) assert_int_equal(wait_rc(f1), IQDB_OK);
        if (r2 == IQDB_OK) assert_int_equal(wait_rc(f2), IQDB_OK);
        succeeded = r1 == IQDB_OK && r2 == IQDB_OK;
        iqdb_async_destroy(a);
        assert_int_equal(atomic_load(&al.live), 0);
        assert_int_equal(atomic_load(&al.bad_free), 0);
    }
    assert_true(succeeded);
    iqdb_filter_destroy(flt);
    iqdb_meta_destroy(m);
    iqdb_close(db);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_async_every_call),
        cmocka_unit_test(test_async_bad_input),
        cmocka_unit_test(test_async_cancel_and_timeout),
        cmocka_unit_test(test_async_more_twins),
        cmocka_unit_test(test_async_cancel_running),
        cmocka_unit_test(test_async_concurrent),
        cmocka_unit_test(test_async_durable),
        cmocka_unit_test(test_async_oom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
