/*
 * test_pool.c — the worker pool and the phase-fair reader–writer lock (internal modules).
 *
 * The pool runs every task exactly once, also with several callers at once and with no
 * workers. The lock gives writers exclusion and readers sharing; a writer gets in while
 * readers keep arriving, and readers get in while writers keep arriving (neither starves).
 */
#include "../common/testutil.h"

#include <pthread.h>
#include <time.h>

#include "os/thread.h"
#include "pool.h"

static iqdbt_alloc A;

typedef struct count_ctx {
    _Atomic int *hits;
} count_ctx;

static void count_task(void *arg, size_t t) {
    count_ctx *c = arg;
    atomic_fetch_add(&c->hits[t], 1);
}

static void check_run(iqdb__pool *p, size_t n) {
    _Atomic int *hits = calloc(n ? n : 1, sizeof *hits);
    count_ctx c = {hits};
    iqdb__pool_run(p, n, count_task, &c);
    for (size_t i = 0; i < n; i++) assert_int_equal(atomic_load(&hits[i]), 1);
    free((void *)hits);
}

/* Every task runs exactly once, for many sizes and widths. */
static void test_pool_runs_each_task_once(void **state) {
    (void)state;
    iqdb_allocator al = iqdbt_allocator(&A, 0);
    iqdb__mem mem;
    iqdb__mem_init(&mem, &al);
    for (unsigned workers = 0; workers <= 3; workers++) {
        iqdb__pool *p;
        assert_int_equal(iqdb__pool_create(&mem, workers, &p), IQDB_OK);
        assert_int_equal(iqdb__pool_width(p), workers + 1);
        const size_t sizes[] = {0, 1, 2, 3, 7, 64, 1000};
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) check_run(p, sizes[i]);
        iqdb__pool_destroy(p);
    }
    check_run(NULL, 17); /* no pool: everything on the caller */
    assert_int_equal(atomic_load(&A.live), 0);
}

typedef struct caller_arg {
    iqdb__pool *p;
    int rounds;
} caller_arg;

static void *caller_main(void *arg) {
    caller_arg *a = arg;
    for (int i = 0; i < a->rounds; i++) check_run(a->p, (size_t)(1 + i % 50));
    return NULL;
}

/* Several threads run jobs through one pool at the same time. */
static void test_pool_concurrent_callers(void **state) {
    (void)state;
    iqdb_allocator al = iqdbt_allocator(&A, 0);
    iqdb__mem mem;
    iqdb__mem_init(&mem, &al);
    iqdb__pool *p;
    assert_int_equal(iqdb__pool_create(&mem, 2, &p), IQDB_OK);
    pthread_t th[4];
    caller_arg a = {p, 300};
    for (int i = 0; i < 4; i++) assert_int_equal(pthread_create(&th[i], NULL, caller_main, &a), 0);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    iqdb__pool_destroy(p);
    assert_int_equal(atomic_load(&A.live), 0);
}

/* ---- rwlock --------------------------------------------------------------------------------- */

typedef struct lock_ctx {
    iqdb__rwlock lock;
    _Atomic int readers_in, writers_in, max_readers;
    _Atomic int violations;
    _Atomic int stop;
    _Atomic long reads, writes;
} lock_ctx;

static void *reader_main(void *arg) {
    lock_ctx *c = arg;
    while (!atomic_load(&c->stop)) {
        iqdb__rwlock_rdlock(&c->lock);
        int r = atomic_fetch_add(&c->readers_in, 1) + 1;
        int m = atomic_load(&c->max_readers);
        while (r > m && !atomic_compare_exchange_weak(&c->max_readers, &m, r)) {
        }
        if (atomic_load(&c->writers_in)) atomic_fetch_add(&c->violations, 1);
        for (volatile int spin = 0; spin < 2000; spin++) {
        }
        atomic_fetch_sub(&c->readers_in, 1);
        iqdb__rwlock_rdunlock(&c->lock);
        atomic_fetch_add(&c->reads, 1);
    }
    return NULL;
}

static void *writer_main(void *arg) {
    lock_ctx *c = arg;
    while (!atomic_load(&c->stop)) {
        iqdb__rwlock_wrlock(&c->lock);
        if (atomic_fetch_add(&c->writers_in, 1) != 0 || atomic_load(&c->readers_in))
            atomic_fetch_add(&c->violations, 1);
        for (volatile int spin = 0; spin < 500; spin++) {
        }
        atomic_fetch_sub(&c->writers_in, 1);
        iqdb__rwlock_wrunlock(&c->lock);
        atomic_fetch_add(&c->writes, 1);
    }
    return NULL;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Exclusion holds, readers share, and under steady pressure from both sides each side makes
 * progress (4 readers vs 2 writers for 400 ms). */
static void test_pool_rwlock_exclusion_and_fairness(void **state) {
    (void)state;
    lock_ctx *c = calloc(1, sizeof *c);
    assert_int_equal(iqdb__rwlock_init(&c->lock), 0);
    pthread_t r[4], w[2];
    for (int i = 0; i < 4; i++) pthread_create(&r[i], NULL, reader_main, c);
    for (int i = 0; i < 2; i++) pthread_create(&w[i], NULL, writer_main, c);
    sleep_ms(400);
    atomic_store(&c->stop, 1);
    for (int i = 0; i < 4; i++) pthread_join(r[i], NULL);
    for (int i = 0; i < 2; i++) pthread_join(w[i], NULL);
    printf("reads %ld writes %ld max concurrent readers %d\n", atomic_load(&c->reads),
           atomic_load(&c->writes), atomic_load(&c->max_readers));
    assert_int_equal(atomic_load(&c->violations), 0);
    /* Neither side starves. Before the generation fix a stream of readers held the readers'
     * turn open: 92 writes against 446,294 reads (1 : 4,850); after it, about 1 : 10. The bound
     * is loose because the OS may starve the writer threads of CPU (this test runs serially). */
    assert_true(atomic_load(&c->writes) * 1000 > atomic_load(&c->reads));
    assert_true(atomic_load(&c->reads) * 1000 > atomic_load(&c->writes));
    iqdb__rwlock_destroy(&c->lock);
    free(c);
}

typedef struct starve_ctx {
    iqdb__rwlock lock;
    _Atomic int stop;
    _Atomic int writer_done;
} starve_ctx;

static void *overlapping_reader(void *arg) {
    starve_ctx *c = arg;
    while (!atomic_load(&c->stop)) {
        iqdb__rwlock_rdlock(&c->lock);
        sleep_ms(2); /* readers overlap: without fairness the lock is never free of readers */
        iqdb__rwlock_rdunlock(&c->lock);
    }
    return NULL;
}

static void *one_writer(void *arg) {
    starve_ctx *c = arg;
    iqdb__rwlock_wrlock(&c->lock);
    atomic_store(&c->writer_done, 1);
    iqdb__rwlock_wrunlock(&c->lock);
    return NULL;
}

/* A writer gets the lock promptly although overlapping readers always hold it. */
static void test_pool_rwlock_writer_not_starved(void **state) {
    (void)state;
    starve_ctx *c = calloc(1, sizeof *c);
    iqdb__rwlock_init(&c->lock);
    pthread_t r[3], w;
    for (int i = 0; i < 3; i++) pthread_create(&r[i], NULL, overlapping_reader, c);
    sleep_ms(20);
    pthread_create(&w, NULL, one_writer, c);
    int waited = 0;
    while (!atomic_load(&c->writer_done) && waited < 2000) {
        sleep_ms(5);
        waited += 5;
    }
    int done = atomic_load(&c->writer_done);
    atomic_store(&c->stop, 1);
    pthread_join(w, NULL);
    for (int i = 0; i < 3; i++) pthread_join(r[i], NULL);
    printf("writer got the lock after about %d ms\n", waited);
    assert_true(done);
    iqdb__rwlock_destroy(&c->lock);
    free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_runs_each_task_once),
        cmocka_unit_test(test_pool_concurrent_callers),
        cmocka_unit_test(test_pool_rwlock_exclusion_and_fairness),
        cmocka_unit_test(test_pool_rwlock_writer_not_starved),
    };
    return cmocka_run_group_tests_name("pool", tests, NULL, NULL);
}
