/*
 * pool.c — worker pool (see pool.h).
 *
 * A run is a job on the caller's stack, linked into the pool's queue. Workers take the job at
 * the head of the queue, claim task numbers with an atomic counter, and leave when the counter
 * passes the end. The job records how many workers hold a pointer to it ("active"); the caller
 * returns only when every task is done and no worker holds the job any more, so no worker ever
 * touches a job after its stack frame is gone.
 */
#include "pool.h"

#include "os/thread.h"

typedef struct job {
    void (*fn)(void *ctx, size_t task);
    void *ctx;
    size_t n_tasks;
    _Atomic size_t next; /* next task number to claim */
    size_t done;         /* finished tasks (under the pool mutex) */
    unsigned active;     /* workers holding this job (under the pool mutex) */
    int queued;          /* still linked in the queue */
    iqdb__cond finished; /* signalled when done == n_tasks and active == 0 */
    struct job *next_job;
} job;

struct iqdb__pool {
    iqdb__mem *mem;
    iqdb__mutex m;
    iqdb__cond work; /* a job was queued, or stop */
    job *head, *tail;
    unsigned want;           /* workers to start */
    unsigned started;        /* workers running */
    _Atomic int tried_start; /* set (release) after `started` is final */
    int stop;
    iqdb__thread *threads;
};

int iqdb__pool_create(iqdb__mem *mem, unsigned n_workers, iqdb__pool **out) {
    *out = NULL;
    iqdb__pool *p = iqdb__calloc(mem, 1, sizeof *p);
    if (!p) return IQDB_NOMEM;
    p->mem = mem;
    p->want = n_workers;
    atomic_init(&p->tried_start, 0);
    if (n_workers) {
        p->threads = iqdb__calloc(mem, n_workers, sizeof *p->threads);
        if (!p->threads) {
            iqdb__free(mem, p, sizeof *p);
            return IQDB_NOMEM;
        }
    }
    if (iqdb__mutex_init(&p->m)) goto fail;
    if (iqdb__cond_init(&p->work)) {
        iqdb__mutex_destroy(&p->m);
        goto fail;
    }
    *out = p;
    return IQDB_OK;
fail:
    iqdb__free(mem, p->threads, (size_t)n_workers * sizeof *p->threads);
    iqdb__free(mem, p, sizeof *p);
    return IQDB_NOMEM;
}

static void unlink_job(iqdb__pool *p, job *j) {
    if (!j->queued) return;
    job **pp = &p->head, *prev = NULL;
    while (*pp && *pp != j) {
        prev = *pp;
        pp = &(*pp)->next_job;
    }
    if (*pp) {
        *pp = j->next_job;
        if (p->tail == j) p->tail = prev;
    }
    j->queued = 0;
}

/* Claims and runs tasks of `j` until none is left; returns how many this thread finished. */
static size_t work_on(job *j) {
    size_t n = 0;
    for (;;) {
        size_t t = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (t >= j->n_tasks) break;
        j->fn(j->ctx, t);
        n++;
    }
    return n;
}

static void *worker_main(void *arg) {
    iqdb__pool *p = arg;
    iqdb__mutex_lock(&p->m);
    for (;;) {
        while (!p->stop && !p->head) iqdb__cond_wait(&p->work, &p->m);
        if (p->stop) break;
        job *j = p->head;
        j->active++;
        iqdb__mutex_unlock(&p->m);
        size_t n = work_on(j);
        iqdb__mutex_lock(&p->m);
        unlink_job(p, j); /* its tasks are all claimed */
        j->done += n;
        j->active--;
        if (j->done == j->n_tasks && j->active == 0) iqdb__cond_signal(&j->finished);
    }
    iqdb__mutex_unlock(&p->m);
    return NULL;
}

/* Starts the workers once (under p->m). A failed thread creation leaves fewer workers. */
static void start_workers(iqdb__pool *p) {
    for (unsigned i = 0; i < p->want; i++) {
        if (iqdb__thread_create(&p->threads[i], worker_main, p)) break;
        p->started++;
    }
    atomic_store_explicit(&p->tried_start, 1, memory_order_release);
}

void iqdb__pool_run(iqdb__pool *p, size_t n_tasks, void (*fn)(void *ctx, size_t task), void *ctx) {
    if (n_tasks == 0) return;
    if (p && p->want && !atomic_load_explicit(&p->tried_start, memory_order_acquire)) {
        iqdb__mutex_lock(&p->m);
        if (!atomic_load_explicit(&p->tried_start, memory_order_relaxed)) start_workers(p);
        iqdb__mutex_unlock(&p->m);
    }
    if (!p || p->started == 0 || n_tasks == 1) {
        for (size_t t = 0; t < n_tasks; t++) fn(ctx, t);
        return;
    }
    job j;
    j.fn = fn;
    j.ctx = ctx;
    j.n_tasks = n_tasks;
    atomic_init(&j.next, 0);
    j.done = 0;
    j.active = 0;
    j.queued = 1;
    j.next_job = NULL;
    if (iqdb__cond_init(&j.finished)) { /* cannot wait: do it all here */
        for (size_t t = 0; t < n_tasks; t++) fn(ctx, t);
        return;
    }
    iqdb__mutex_lock(&p->m);
    if (p->tail)
        p->tail->next_job = &j;
    else
        p->head = &j;
    p->tail = &j;
    iqdb__cond_broadcast(&p->work);
    iqdb__mutex_unlock(&p->m);

    size_t n = work_on(&j);

    iqdb__mutex_lock(&p->m);
    unlink_job(p, &j);
    j.done += n;
    while (j.done < j.n_tasks || j.active > 0) iqdb__cond_wait(&j.finished, &p->m);
    iqdb__mutex_unlock(&p->m);
    iqdb__cond_destroy(&j.finished);
}

unsigned iqdb__pool_width(const iqdb__pool *p) {
    /* Before the first run this reports the planned width. */
    if (!p) return 1;
    if (!atomic_load_explicit(&p->tried_start, memory_order_acquire)) return p->want + 1;
    return p->started + 1;
}

size_t iqdb__pool_mem(const iqdb__pool *p) {
    return p ? sizeof *p + (size_t)p->want * sizeof *p->threads : 0;
}

void iqdb__pool_destroy(iqdb__pool *p) {
    if (!p) return;
    iqdb__mutex_lock(&p->m);
    p->stop = 1;
    iqdb__cond_broadcast(&p->work);
    iqdb__mutex_unlock(&p->m);
    for (unsigned i = 0; i < p->started; i++) iqdb__thread_join(p->threads[i]);
    iqdb__cond_destroy(&p->work);
    iqdb__mutex_destroy(&p->m);
    iqdb__free(p->mem, p->threads, (size_t)p->want * sizeof *p->threads);
    iqdb__free(p->mem, p, sizeof *p);
}
