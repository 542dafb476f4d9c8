/*
 * pool.h — the handle's worker pool for batch calls.
 *
 * iqdb__pool_run(p, n, fn, ctx) runs fn(ctx, i) for every i in [0, n) and returns when all have
 * finished. The calling thread works too, so a run always makes progress even when every worker
 * is busy with another caller's run, and a pool with no workers (threads = 1, or thread
 * creation failed) simply runs everything on the caller. Workers start on the first run that
 * needs them. Several threads may call run at once; their tasks interleave.
 */
#ifndef IQDB_POOL_H
#define IQDB_POOL_H

#include "internal.h"

typedef struct iqdb__pool iqdb__pool;

/* A pool that will use up to `n_workers` extra threads. Returns IQDB_OK or IQDB_NOMEM. */
int iqdb__pool_create(iqdb__mem *mem, unsigned n_workers, iqdb__pool **out);
/* Stops and joins the workers; no run may be in progress. NULL is a no-op. */
void iqdb__pool_destroy(iqdb__pool *p);
/* Runs the tasks; see above. p may be NULL (everything on the caller). */
void iqdb__pool_run(iqdb__pool *p, size_t n_tasks, void (*fn)(void *ctx, size_t task), void *ctx);
/* Threads that take part in a run: the workers that started, plus the caller. */
unsigned iqdb__pool_width(const iqdb__pool *p);
/* Bytes the pool allocated. */
size_t iqdb__pool_mem(const iqdb__pool *p);

#endif
