/*
 * async.c — the executor behind iqdb_async_* (contract in iqdb.h, "Async calls").
 *
 * A call is a future: the copied inputs, the caller's output pointers, a state and a return
 * code. Futures wait in a FIFO queue; worker threads take them from the head, run the
 * synchronous call, run the callback, then mark the future done and wake waiters. One mutex
 * (the executor's) guards the queue, every future's state and the reference counts; the calls
 * themselves run without it.
 *
 * Lifetimes. A future is referenced by the caller (until iqdb_future_release) and by the
 * executor (until it is done); it is freed when both let go. The executor itself is referenced
 * by its owner (until iqdb_async_destroy) and by every live future, so a future can be waited
 * on and released after the executor was destroyed — the memory and the mutex are still there.
 *
 * Close. iqdb_close must not overlap another call on the same handle, so a worker that takes a
 * close waits until no other running future names that handle. Futures for that handle queued
 * behind the close are misuse (documented): they would run on a freed handle.
 */
#include "cache.h"
#include "handle.h"
#include "observe.h"

typedef enum async_op {
    OP_OPEN,
    OP_CLOSE,
    OP_UPSERT,
    OP_UPSERT_BATCH,
    OP_GET,
    OP_DELETE,
    OP_COUNT,
    OP_SEARCH,
    OP_SEARCH_BATCH,
    OP_CHECKPOINT,
    OP_CHECK,
    OP_UPSERT_KEY,
    OP_UPSERT_BATCH_KEY,
    OP_GET_KEY,
    OP_DELETE_KEY,
    OP_OPTIMIZE,
    OP_STATS,
    OP_CACHE_CLEAR
} async_op;

enum { QUEUED, RUNNING, DONE };

struct iqdb_future {
    iqdb_async *a;
    struct iqdb_future *next; /* queue */
    async_op op;
    int state, rc, refs;
    iqdb *db;
    iqdb_async_fn cb;
    void *ud;
    /* copied inputs (owned) */
    char *path;
    size_t path_len;
    iqdb_options opts;
    iqdb_id id;
    size_t n, k;
    float *vecs;
    size_t vecs_bytes;
    iqdb_id *ids;
    iqdb_meta **metas; /* n entries (or 1 for upsert) */
    iqdb_search_params params;
    iqdb_filter *filter;
    uint8_t *keys; /* key bytes, back to back (keyed calls) */
    size_t keys_bytes;
    const void **key_ptrs; /* n (or 1) pointers into keys */
    size_t *key_lens;      /* n (or 1) lengths */
    _Atomic int cancel;    /* iqdb_future_cancel while running: long calls stop (observe.h) */
    /* caller outputs (borrowed) */
    iqdb **out_db;
    float *vec_out;
    iqdb_meta **meta_out;
    int *existed;
    uint64_t *count_out;
    iqdb_hit *hits;
    size_t *n_hits;
    iqdb_search_info *info;
    iqdb_stats *stats_out;
};

struct iqdb_async {
    iqdb__mem mem;
    iqdb__mutex mu;
    iqdb__cond work, done;
    iqdb_future *head, *tail;
    iqdb_future **running; /* one slot per worker */
    unsigned n_threads, started;
    iqdb__thread *threads;
    int stop, refs;
};

/* ---- lifetimes ------------------------------------------------------------------------------ */

static void free_inputs(iqdb_async *a, iqdb_future *f) {
    iqdb__free(&a->mem, f->path, f->path_len);
    iqdb__free(&a->mem, f->vecs, f->vecs_bytes);
    iqdb__free(&a->mem, f->ids, f->n * sizeof *f->ids);
    if (f->metas) {
        size_t m = f->op == OP_UPSERT || f->op == OP_UPSERT_KEY ? 1 : f->n;
        for (size_t i = 0; i < m; i++) iqdb_meta_destroy(f->metas[i]);
        iqdb__free(&a->mem, f->metas, m * sizeof *f->metas);
    }
    iqdb_filter_destroy(f->filter);
    size_t nk = f->op == OP_UPSERT_BATCH_KEY ? IQDB_MAX(f->n, (size_t)1) : 1;
    iqdb__free(&a->mem, f->keys, f->keys_bytes);
    if (f->key_ptrs) iqdb__free(&a->mem, f->key_ptrs, nk * sizeof *f->key_ptrs);
    if (f->key_lens) iqdb__free(&a->mem, f->key_lens, nk * sizeof *f->key_lens);
    f->keys = NULL;
    f->key_ptrs = NULL;
    f->key_lens = NULL;
    f->path = NULL;
    f->vecs = NULL;
    f->ids = NULL;
    f->metas = NULL;
    f->filter = NULL;
}

static void free_executor(iqdb_async *a) {
    iqdb__cond_destroy(&a->done);
    iqdb__cond_destroy(&a->work);
    iqdb__mutex_destroy(&a->mu);
    iqdb__free(&a->mem, a->threads, a->n_threads * sizeof *a->threads);
    iqdb__free(&a->mem, a->running, a->n_threads * sizeof *a->running);
    iqdb__mem m = a->mem;
    iqdb__free(&m, a, sizeof *a);
}

/* With a->mu held: drops one reference of f. Returns 1 when the executor must be freed (its
 * last reference went with f), which the caller does after unlocking. */
static int unref_locked(iqdb_future *f) {
    iqdb_async *a = f->a;
    if (--f->refs > 0) return 0;
    free_inputs(a, f);
    iqdb__free(&a->mem, f, sizeof *f);
    return --a->refs == 0;
}

/* Marks f done with rc (its callback has run), wakes waiters, drops the executor's reference. */
static void finish(iqdb_future *f, int rc) {
    iqdb_async *a = f->a;
    iqdb__mutex_lock(&a->mu);
    f->rc = rc;
    f->state = DONE;
    iqdb__cond_broadcast(&a->done);
    int last = unref_locked(f);
    iqdb__mutex_unlock(&a->mu);
    if (last) free_executor(a);
}

/* ---- running a call ------------------------------------------------------------------------- */

static int run(iqdb_future *f) {
    switch (f->op) {
    case OP_OPEN: return iqdb_open(f->path, &f->opts, f->out_db);
    case OP_CLOSE: return iqdb_close(f->db);
    case OP_UPSERT: return iqdb_upsert(f->db, f->id, f->vecs, f->metas ? f->metas[0] : NULL);
    case OP_UPSERT_BATCH:
        return iqdb_upsert_batch(f->db, f->n, f->ids, f->vecs, (const iqdb_meta *const *)f->metas);
    case OP_GET: return iqdb_get(f->db, f->id, f->vec_out, f->meta_out);
    case OP_DELETE: return iqdb_delete(f->db, f->id, f->existed);
    case OP_COUNT: return iqdb_count(f->db, f->count_out);
    case OP_SEARCH:
        return iqdb_search(f->db, f->vecs, f->k, &f->params, f->hits, f->n_hits, f->info);
    case OP_SEARCH_BATCH:
        return iqdb_search_batch(f->db, f->vecs, f->n, f->k, &f->params, f->hits, f->n_hits);
    case OP_CHECKPOINT: return iqdb_checkpoint(f->db);
    case OP_CHECK: return iqdb_check(f->db);
    case OP_UPSERT_KEY:
        return iqdb_upsert_key(f->db, f->key_ptrs[0], f->key_lens[0], f->vecs,
                               f->metas ? f->metas[0] : NULL);
    case OP_UPSERT_BATCH_KEY:
        return iqdb_upsert_batch_key(f->db, f->n, f->key_ptrs, f->key_lens, f->vecs,
                                     (const iqdb_meta *const *)f->metas);
    case OP_GET_KEY:
        return iqdb_get_key(f->db, f->key_ptrs[0], f->key_lens[0], f->vec_out, f->meta_out);
    case OP_DELETE_KEY: return iqdb_delete_key(f->db, f->key_ptrs[0], f->key_lens[0], f->existed);
    case OP_OPTIMIZE: return iqdb_optimize(f->db);
    case OP_STATS: return iqdb_stats_get(f->db, f->stats_out);
    case OP_CACHE_CLEAR: return iqdb_cache_clear(f->db);
    }
    return IQDB_ERROR;
}

static int other_running_on(const iqdb_async *a, const iqdb_future *f) {
    for (unsigned i = 0; i < a->n_threads; i++)
        if (a->running[i] && a->running[i] != f && a->running[i]->db == f->db) return 1;
    return 0;
}

typedef struct worker_arg {
    iqdb_async *a;
    unsigned slot;
} worker_arg;

static void *worker_main(void *arg) {
    iqdb_async *a = ((worker_arg *)arg)->a;
    unsigned slot = ((worker_arg *)arg)->slot;
    iqdb__free(&a->mem, arg, sizeof(worker_arg));
    iqdb__mutex_lock(&a->mu);
    for (;;) {
        while (!a->stop && !a->head) iqdb__cond_wait(&a->work, &a->mu);
        if (!a->head) break; /* stopping, and nothing is left */
        iqdb_future *f = a->head;
        a->head = f->next;
        if (!a->head) a->tail = NULL;
        f->state = RUNNING;
        a->running[slot] = f;
        if (f->op == OP_CLOSE)
            while (other_running_on(a, f)) iqdb__cond_wait(&a->done, &a->mu);
        iqdb__mutex_unlock(&a->mu);
        iqdb__set_cancel_flag(&f->cancel); /* long calls on this thread watch it */
        int rc = run(f);
        iqdb__set_cancel_flag(NULL);
        if (f->cb) f->cb(f->ud, f, rc);
        iqdb__mutex_lock(&a->mu);
        a->running[slot] = NULL;
        iqdb__mutex_unlock(&a->mu);
        finish(f, rc);
        iqdb__mutex_lock(&a->mu);
    }
    iqdb__mutex_unlock(&a->mu);
    return NULL;
}

/* ---- executor ------------------------------------------------------------------------------- */

int iqdb_async_create(const iqdb_allocator *alloc, uint32_t threads, iqdb_async **out) {
    if (out) *out = NULL;
    if (!out) return iqdb__fail(NULL, IQDB_MISUSE, "iqdb_async_create: out is NULL");
    if (threads > IQDB_MAX_THREADS)
        return iqdb__fail(NULL, IQDB_INVALID, "threads %u exceeds %u", threads, IQDB_MAX_THREADS);
    IQDB_TRY(iqdb__mem_check(alloc));
    iqdb__mem boot;
    iqdb__mem_init(&boot, alloc);
    iqdb_async *a = iqdb__calloc(&boot, 1, sizeof *a);
    if (!a) return iqdb__nomem(NULL);
    iqdb__mem_init(&a->mem, alloc);
    a->n_threads = threads ? threads : iqdb__cpu_count();
    if (a->n_threads > IQDB_MAX_THREADS) a->n_threads = IQDB_MAX_THREADS;
    a->threads = iqdb__calloc(&a->mem, a->n_threads, sizeof *a->threads);
    a->running = iqdb__calloc(&a->mem, a->n_threads, sizeof *a->running);
    int ok = a->threads && a->running && !iqdb__mutex_init(&a->mu);
    if (ok && iqdb__cond_init(&a->work)) {
        iqdb__mutex_destroy(&a->mu);
        ok = 0;
    }
    if (ok && iqdb__cond_init(&a->done)) {
        iqdb__cond_destroy(&a->work);
        iqdb__mutex_destroy(&a->mu);
        ok = 0;
    }
    if (!ok) {
        iqdb__free(&a->mem, a->threads, a->n_threads * sizeof *a->threads);
        iqdb__free(&a->mem, a->running, a->n_threads * sizeof *a->running);
        iqdb__free(&boot, a, sizeof *a);
        return iqdb__nomem(NULL);
    }
    a->refs = 1;
    for (unsigned i = 0; i < a->n_threads; i++) {
        worker_arg *wa = iqdb__alloc(&a->mem, sizeof *wa);
        if (!wa) break;
        wa->a = a;
        wa->slot = i;
        if (iqdb__thread_create(&a->threads[i], worker_main, wa)) {
            iqdb__free(&a->mem, wa, sizeof *wa);
            break;
        }
        a->started++;
    }
    if (a->started == 0) {
        free_executor(a);
        return iqdb__fail(NULL, IQDB_NOMEM, "iqdb_async_create: no worker thread could start");
    }
    *out = a;
    return IQDB_OK;
}

void iqdb_async_destroy(iqdb_async *a) {
    if (!a) return;
    /* cancel what waits: each completes with IQDB_INTERRUPTED */
    iqdb__mutex_lock(&a->mu);
    iqdb_future *q = a->head;
    for (iqdb_future *x = q; x; x = x->next) x->state = RUNNING; /* a cancel now gets BUSY */
    a->head = a->tail = NULL;
    a->stop = 1;
    iqdb__cond_broadcast(&a->work);
    iqdb__mutex_unlock(&a->mu);
    while (q) {
        iqdb_future *next = q->next;
        if (q->cb) q->cb(q->ud, q, IQDB_INTERRUPTED);
        finish(q, IQDB_INTERRUPTED);
        q = next;
    }
    for (unsigned i = 0; i < a->started; i++) iqdb__thread_join(a->threads[i]);
    iqdb__mutex_lock(&a->mu);
    int last = --a->refs == 0;
    iqdb__mutex_unlock(&a->mu);
    if (last) free_executor(a);
}

/* ---- futures -------------------------------------------------------------------------------- */

int iqdb_future_wait(iqdb_future *f, uint32_t timeout_ms, int *rc) {
    if (rc) *rc = IQDB_OK;
    if (!f) return iqdb__fail(NULL, IQDB_MISUSE, "iqdb_future_wait: f is NULL");
    iqdb_async *a = f->a;
    uint64_t end = iqdb__now_ns() + (uint64_t)timeout_ms * 1000000u;
    iqdb__mutex_lock(&a->mu);
    while (f->state != DONE) {
        if (timeout_ms == UINT32_MAX) {
            iqdb__cond_wait(&a->done, &a->mu);
            continue;
        }
        uint64_t now = iqdb__now_ns();
        if (now >= end) break;
        uint64_t left = (end - now + 999999u) / 1000000u;
        iqdb__cond_timedwait(&a->done, &a->mu, (uint32_t)IQDB_MIN(left, (uint64_t)UINT32_MAX - 1));
    }
    int done = f->state == DONE, r = f->rc;
    iqdb__mutex_unlock(&a->mu);
    if (!done) return IQDB_BUSY;
    if (rc) *rc = r;
    return IQDB_OK;
}

int iqdb_future_cancel(iqdb_future *f) {
    if (!f) return iqdb__fail(NULL, IQDB_MISUSE, "iqdb_future_cancel: f is NULL");
    iqdb_async *a = f->a;
    iqdb__mutex_lock(&a->mu);
    if (f->state != QUEUED) {
        /* running: ask this call (only) to stop at its next check; done: nothing to do */
        if (f->state == RUNNING) atomic_store(&f->cancel, 1);
        iqdb__mutex_unlock(&a->mu);
        return IQDB_BUSY;
    }
    iqdb_future **pp = &a->head, *prev = NULL;
    while (*pp && *pp != f) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp) {
        *pp = f->next;
        if (a->tail == f) a->tail = prev;
    }
    f->state = RUNNING; /* nobody else will take it; finish() marks it done */
    iqdb__mutex_unlock(&a->mu);
    if (f->cb) f->cb(f->ud, f, IQDB_INTERRUPTED);
    finish(f, IQDB_INTERRUPTED);
    return IQDB_OK;
}

void iqdb_future_release(iqdb_future *f) {
    if (!f) return;
    iqdb_async *a = f->a;
    iqdb__mutex_lock(&a->mu);
    int last = unref_locked(f);
    iqdb__mutex_unlock(&a->mu);
    if (last) free_executor(a);
}

/* ---- submitting ----------------------------------------------------------------------------- */

static int new_future(iqdb_async *a, async_op o, iqdb *db, iqdb_async_fn cb, void *ud,
                      iqdb_future **out) {
    if (!a) return iqdb__fail(NULL, IQDB_MISUSE, "iqdb_async: the executor is NULL");
    if (o != OP_OPEN && (!db || db->magic != IQDB_MAGIC))
        return iqdb__fail(NULL, IQDB_MISUSE, "iqdb_async: invalid or closed handle");
    iqdb_future *f = iqdb__calloc(&a->mem, 1, sizeof *f);
    if (!f) return iqdb__nomem(db);
    f->a = a;
    atomic_init(&f->cancel, 0);
    f->op = o;
    f->db = db;
    f->cb = cb;
    f->ud = ud;
    *out = f;
    return IQDB_OK;
}

/* Queues f (or frees it when rc is a failure while copying). */
static int submit(iqdb_future *f, int rc, iqdb_future **fut) {
    iqdb_async *a = f->a;
    if (rc) {
        free_inputs(a, f);
        iqdb__free(&a->mem, f, sizeof *f);
        return rc;
    }
    iqdb__mutex_lock(&a->mu);
    if (a->stop) {
        iqdb__mutex_unlock(&a->mu);
        free_inputs(a, f);
        iqdb__free(&a->mem, f, sizeof *f);
        return iqdb__fail(NULL, IQDB_MISUSE, "iqdb_async: the executor is being destroyed");
    }
    f->refs = fut ? 2 : 1;
    a->refs++;
    if (a->tail)
        a->tail->next = f;
    else
        a->head = f;
    a->tail = f;
    iqdb__cond_signal(&a->work);
    iqdb__mutex_unlock(&a->mu);
    if (fut) *fut = f;
    return IQDB_OK;
}

static int copy_floats(iqdb_future *f, const float *v, size_t count) {
    size_t bytes;
    if (iqdb__mul_overflow(count, sizeof(float), &bytes)) return IQDB_INVALID;
    f->vecs = iqdb__alloc(&f->a->mem, bytes ? bytes : 1);
    if (!f->vecs) return iqdb__nomem(f->db);
    f->vecs_bytes = bytes ? bytes : 1;
    memcpy(f->vecs, v, bytes);
    return IQDB_OK;
}

static int copy_meta(iqdb_future *f, const iqdb_meta *m, iqdb_meta **out) {
    *out = NULL;
    if (!m) return IQDB_OK;
    int rc = iqdb_meta_create(&f->a->mem.a, out);
    for (size_t i = 0, n = iqdb_meta_count(m); i < n && rc == IQDB_OK; i++) {
        const char *key;
        iqdb_value v;
        rc = iqdb_meta_at(m, i, &key, &v);
        if (rc == IQDB_OK) rc = iqdb_meta_set(*out, key, v);
    }
    return rc == IQDB_NOMEM ? iqdb__nomem(f->db) : rc;
}

/* Copies n metadata objects (metas or its entries may be NULL) into f->metas (n entries, or
 * none when metas is NULL or n is 0; freed by free_inputs with the op's count). */
static int copy_metas(iqdb_future *f, size_t n, const iqdb_meta *const *metas) {
    if (!metas || !n || (n == 1 && !metas[0])) return IQDB_OK;
    f->metas = iqdb__calloc(&f->a->mem, n, sizeof *f->metas);
    if (!f->metas) return iqdb__nomem(f->db);
    int rc = IQDB_OK;
    for (size_t i = 0; i < n && rc == IQDB_OK; i++) rc = copy_meta(f, metas[i], &f->metas[i]);
    return rc;
}

static int copy_params(iqdb_future *f, const iqdb_search_params *p) {
    iqdb_search_params_init(&f->params);
    if (!p) return IQDB_OK;
    if (p->struct_size < offsetof(iqdb_search_params, filter) + sizeof p->filter)
        return iqdb__fail(f->db, IQDB_MISUSE, "iqdb_async: set p->struct_size = sizeof *p");
    memcpy(&f->params, p, IQDB_MIN(p->struct_size, sizeof f->params));
    f->params.struct_size = sizeof f->params;
    if (p->filter) {
        int rc = iqdb__filter_clone(&f->a->mem.a, p->filter, &f->filter);
        if (rc) return rc == IQDB_NOMEM ? iqdb__nomem(f->db) : rc;
        f->params.filter = f->filter;
    }
    return IQDB_OK;
}

#define SUBMIT(o, dbv)                           \
    iqdb_future *f = NULL;                       \
    if (fut) *fut = NULL;                        \
    IQDB_TRY(new_future(a, o, dbv, cb, ud, &f)); \
    int rc = IQDB_OK

int iqdb_async_open(iqdb_async *a, const char *path, const iqdb_options *opts, iqdb **out,
                    iqdb_async_fn cb, void *ud, iqdb_future **fut) {
    if (out) *out = NULL;
    if (!opts || !out)
        return iqdb__fail(NULL, IQDB_MISUSE, "iqdb_async_open: opts and out are required");
    SUBMIT(OP_OPEN, NULL);
    memset(&f->opts, 0, sizeof f->opts);
    memcpy(&f->opts, opts, IQDB_MIN(opts->struct_size, sizeof f->opts));
    if (opts->struct_size > sizeof f->opts)
        rc = iqdb__fail(NULL, IQDB_UNSUPPORTED, "iqdb_async_open: options from a newer library");
    f->opts.struct_size = IQDB_MIN(opts->struct_size, sizeof f->opts);
    if (rc == IQDB_OK && path) {
        f->path_len = strlen(path) + 1;
        f->path = iqdb__alloc(&a->mem, f->path_len);
        if (!f->path) {
            f->path_len = 0;
            rc = iqdb__nomem(NULL);
        } else {
            memcpy(f->path, path, f->path_len);
        }
    }
    f->out_db = out;
    return submit(f, rc, fut);
}

int iqdb_async_close(iqdb_async *a, iqdb *db, iqdb_async_fn cb, void *ud, iqdb_future **fut) {
    SUBMIT(OP_CLOSE, db);
    return submit(f, rc, fut);
}

int iqdb_async_upsert(iqdb_async *a, iqdb *db, iqdb_id id, const float *vec, const iqdb_meta *meta,
                      iqdb_async_fn cb, void *ud, iqdb_future **fut) {
    if (fut) *fut = NULL;
    if (!vec) return iqdb__fail(db, IQDB_MISUSE, "iqdb_async_upsert: vec is NULL");
    SUBMIT(OP_UPSERT, db);
    f->id = id;
    rc = copy_floats(f, vec, db->dim);
    if (rc == IQDB_OK) rc = copy_metas(f, 1, &meta);
    return submit(f, rc, fut);
}

int iqdb_async_upsert_batch(iqdb_async *a, iqdb *db, size_t n, const iqdb_id *ids,
                            const float *vecs, const iqdb_meta *const *metas, iqdb_async_fn cb,
                            void *ud, iqdb_future **fut) {
    if (fut) *fut = NULL;
    if (n && (!ids || !vecs))
        return iqdb__fail(db, IQDB_MISUSE, "iqdb_async_upsert_batch: ids and vecs are required");
    SUBMIT(OP_UPSERT_BATCH, db);
    size_t total;
    if (iqdb__mul_overflow(n, db->dim, &total) || n > SIZE_MAX / sizeof *ids)
        rc = iqdb__fail(db, IQDB_INVALID, "batch of %zu records is too large", n);
    if (rc == IQDB_OK) rc = copy_floats(f, vecs, total);
    if (rc == IQDB_OK && n) {
        f->ids = iqdb__alloc(&a->mem, n * sizeof *ids);
        if (!f->ids)
            rc = iqdb__nomem(db);
        else {
            memcpy(f->ids, ids, n * sizeof *ids);
            f->n = n;
        }
    }
    if (rc == IQDB_OK) rc = copy_metas(f, n, metas);
    return submit(f, rc, fut);
}

int iqdb_async_get(iqdb_async *a, iqdb *db, iqdb_id id, float *vec_out, iqdb_meta **meta_out,
                   iqdb_async_fn cb, void *ud, iqdb_future **fut) {
    if (meta_out) *meta_out = NULL;
    SUBMIT(OP_GET, db);
    f->id = id;
    f->vec_out = vec_out;
    f->meta_out = meta_out;
    return submit(f, rc, fut);
}

int iqdb_async_delete(iqdb_async *a, iqdb *db, iqdb_id id, int *existed, iqdb_async_fn cb, void *ud,
                      iqdb_future **fut) {
    if (existed) *existed = 0;
    SUBMIT(OP_DELETE, db);
    f->id = id;
    f->existed = existed;
    return submit(f, rc, fut);
}

int iqdb_async_count(iqdb_async *a, iqdb *db, uint64_t *n, iqdb_async_fn cb, void *ud,
                     iqdb_future **fut) {
    if (fut) *fut = NULL;
    if (!n) return iqdb__fail(db, IQDB_MISUSE, "iqdb_async_count: n is NULL");
    *n = 0;
    SUBMIT(OP_COUNT, db);
    f->count_out = n;
    return submit(f, rc, fut);
}

int iqdb_async_search(iqdb_async *a, iqdb *db, const float *query, size_t k,
                      const iqdb_search_params *p, iqdb_hit *hits, size_t *n_hits,
                      iqdb_search_info *info, iqdb_async_fn cb, void *ud, iqdb_future **fut) {
    if (fut) *fut = NULL;
    if (n_hits) *n_hits = 0;
    if (!query || !n_hits || (!hits && k > 0))
        return iqdb__fail(db, IQDB_MISUSE,
                          "iqdb_async_search: query, n_hits and hits are required");
    SUBMIT(OP_SEARCH, db);
    f->k = k;
    f->hits = hits;
    f->n_hits = n_hits;
    f->info = info;
    rc = copy_floats(f, query, db->dim);
    if (rc == IQDB_OK) rc = copy_params(f, p);
    return submit(f, rc, fut);
}

int iqdb_async_search_batch(iqdb_async *a, iqdb *db, const float *qs, size_t n, size_t k,
                            const iqdb_search_params *p, iqdb_hit *hits, size_t *n_hits,
                            iqdb_async_fn cb, void *ud, iqdb_future **fut) {
    if (fut) *fut = NULL;
    if (n && (!qs || !n_hits || (!hits && k > 0)))
        return iqdb__fail(db, IQDB_MISUSE,
                          "iqdb_async_search_batch: qs, n_hits and hits are required");
    SUBMIT(OP_SEARCH_BATCH, db);
    size_t total;
    if (iqdb__mul_overflow(n, db->dim, &total))
        rc = iqdb__fail(db, IQDB_INVALID, "iqdb_async_search_batch: n * dim overflows");
    f->n = 0; /* f->ids stays NULL: n counts queries here */
    f->k = k;
    f->hits = hits;
    f->n_hits = n_hits;
    if (rc == IQDB_OK) rc = copy_floats(f, qs, total);
    if (rc == IQDB_OK) rc = copy_params(f, p);
    f->n = n;
    return submit(f, rc, fut);
}

int iqdb_async_checkpoint(iqdb_async *a, iqdb *db, iqdb_async_fn cb, void *ud, iqdb_future **fut) {
    SUBMIT(OP_CHECKPOINT, db);
    return submit(f, rc, fut);
}

int iqdb_async_check(iqdb_async *a, iqdb *db, iqdb_async_fn cb, void *ud, iqdb_future **fut) {
    SUBMIT(OP_CHECK, db);
    return submit(f, rc, fut);
}

/* ---- keyed calls, optimize, stats, cache_clear ----------------------------------------------- */

/* Copies n keys (checked for NULL; lengths are checked by the call when it runs, after a cap
 * that keeps the copy bounded) into one block with pointers into it. */
static int copy_keys(iqdb_future *f, size_t n, const void *const *keys, const size_t *lens) {
    iqdb__mem *mem = &f->a->mem;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (lens[i] && !keys[i]) return iqdb__fail(f->db, IQDB_MISUSE, "iqdb_async: key is NULL");
        if (lens[i] > IQDB_MAX_ID_KEY_LEN)
            return iqdb__fail(f->db, IQDB_INVALID, "iqdb_async: key %zu has length %zu, over %u", i,
                              lens[i], IQDB_MAX_ID_KEY_LEN);
        total += lens[i];
    }
    f->key_ptrs = iqdb__alloc(mem, IQDB_MAX(n, (size_t)1) * sizeof *f->key_ptrs);
    f->key_lens = iqdb__alloc(mem, IQDB_MAX(n, (size_t)1) * sizeof *f->key_lens);
    f->keys = iqdb__alloc(mem, total ? total : 1);
    if (!f->key_ptrs || !f->key_lens || !f->keys) {
        /* free_inputs frees with the op's count; make the sizes agree */
        iqdb__free(mem, f->key_ptrs, IQDB_MAX(n, (size_t)1) * sizeof *f->key_ptrs);
        iqdb__free(mem, f->key_lens, IQDB_MAX(n, (size_t)1) * sizeof *f->key_lens);
        iqdb__free(mem, f->keys, total ? total : 1);
        f->key_ptrs = NULL;
        f->key_lens = NULL;
        f->keys = NULL;
        return iqdb__nomem(f->db);
    }
    f->keys_bytes = total ? total : 1;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (lens[i]) memcpy(f->keys + at, keys[i], lens[i]);
        f->key_ptrs[i] = f->keys + at;
        f->key_lens[i] = lens[i];
        at += lens[i];
    }
    return IQDB_OK;
}

int iqdb_async_upsert_key(iqdb_async *a, iqdb *db, const void *key, size_t key_len,
                          const float *vec, const iqdb_meta *meta, iqdb_async_fn cb, void *ud,
                          iqdb_future **fut) {
    if (fut) *fut = NULL;
    if (!vec) return iqdb__fail(db, IQDB_MISUSE, "iqdb_async_upsert_key: vec is NULL");
    SUBMIT(OP_UPSERT_KEY, db);
    rc = copy_keys(f, 1, &key, &key_len);
    if (rc == IQDB_OK) rc = copy_floats(f, vec, db->dim);
    if (rc == IQDB_OK) rc = copy_metas(f, 1, &meta);
    return submit(f, rc, fut);
}

int iqdb_async_upsert_batch_key(iqdb_async *a, iqdb *db, size_t n, const void *const *keys,
                                const size_t *key_lens, const float *vecs,
                                const iqdb_meta *const *metas, iqdb_async_fn cb, void *ud,
                                iqdb_future **fut) {
    if (fut) *fut = NULL;
    if (n && (!keys || !key_lens || !vecs))
        return iqdb__fail(db, IQDB_MISUSE,
                          "iqdb_async_upsert_batch_key: keys, key_lens and vecs are required");
    SUBMIT(OP_UPSERT_BATCH_KEY, db);
    size_t total;
    if (iqdb__mul_overflow(n, db->dim, &total) || n > IQDB__MAX_SLOTS)
        rc = iqdb__fail(db, IQDB_INVALID, "batch of %zu records is too large", n);
    if (rc == IQDB_OK) rc = copy_keys(f, n, keys, key_lens);
    if (rc == IQDB_OK) f->n = n; /* from here free_inputs frees n key pointers */
    if (rc == IQDB_OK) rc = copy_floats(f, vecs, total);
    if (rc == IQDB_OK) rc = copy_metas(f, n, metas);
    return submit(f, rc, fut);
}

int iqdb_async_get_key(iqdb_async *a, iqdb *db, const void *key, size_t key_len, float *vec_out,
                       iqdb_meta **meta_out, iqdb_async_fn cb, void *ud, iqdb_future **fut) {
    if (meta_out) *meta_out = NULL;
    SUBMIT(OP_GET_KEY, db);
    f->vec_out = vec_out;
    f->meta_out = meta_out;
    rc = copy_keys(f, 1, &key, &key_len);
    return submit(f, rc, fut);
}

int iqdb_async_delete_key(iqdb_async *a, iqdb *db, const void *key, size_t key_len, int *existed,
                          iqdb_async_fn cb, void *ud, iqdb_future **fut) {
    if (existed) *existed = 0;
    SUBMIT(OP_DELETE_KEY, db);
    f->existed = existed;
    rc = copy_keys(f, 1, &key, &key_len);
    return submit(f, rc, fut);
}

int iqdb_async_optimize(iqdb_async *a, iqdb *db, iqdb_async_fn cb, void *ud, iqdb_future **fut) {
    SUBMIT(OP_OPTIMIZE, db);
    return submit(f, rc, fut);
}

int iqdb_async_stats_get(iqdb_async *a, iqdb *db, iqdb_stats *s, iqdb_async_fn cb, void *ud,
                         iqdb_future **fut) {
    if (fut) *fut = NULL;
    if (!s) return iqdb__fail(db, IQDB_MISUSE, "iqdb_async_stats_get: s is NULL");
    SUBMIT(OP_STATS, db);
    f->stats_out = s;
    return submit(f, rc, fut);
}

int iqdb_async_cache_clear(iqdb_async *a, iqdb *db, iqdb_async_fn cb, void *ud, iqdb_future **fut) {
    SUBMIT(OP_CACHE_CLEAR, db);
    return submit(f, rc, fut);
}
