/*
 * arena_read.c — for iqdb-bench-flat: the spans of a database's own row arena, so the bench can
 * run its bandwidth loop over exactly the bytes, in exactly the memory, that a single-query scan
 * reads. A copy of them elsewhere can read several per cent faster or slower depending only on
 * where the OS placed its pages (docs/benchmarks.md, "Flat"), so a pass over these spans is the
 * like-for-like bound for one query. Uses the handle's internals (bench only).
 */
#include "handle.h"

size_t iqdb_bench_arena_span(iqdb *db, size_t i, const void **p);

/* Span i of the arena: its first byte in *p and its length (the rows in use of chunk i), or 0
 * past the last one. */
size_t iqdb_bench_arena_span(iqdb *db, size_t i, const void **p) {
    const iqdb__store *st = &db->store;
    const size_t per_chunk = iqdb__store_rows_per_chunk(st), base = i * per_chunk;
    if (st->no_vectors || base >= st->n_slots) return 0;
    size_t rows = st->n_slots - base < per_chunk ? st->n_slots - base : per_chunk;
    *p = iqdb__store_vec(st, (uint32_t)base);
    return rows * (size_t)st->stride * sizeof(float);
}
