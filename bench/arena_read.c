/*
 * arena_read.c — for iqdb-bench-flat: one read pass over a database's own row arena with the
 * same portable sum loop the bench uses for its bandwidth figure. The single-query scan reads
 * exactly these bytes, in this memory; a copy of them elsewhere can read several per cent faster
 * or slower depending only on where the OS placed its pages (docs/benchmarks.md, "Flat"), so
 * this pass is the like-for-like bound for one query. Uses the handle's internals (bench only).
 */
#include <string.h>

#include "handle.h"

uint64_t iqdb_bench_arena_sum(iqdb *db);

uint64_t iqdb_bench_arena_sum(iqdb *db) {
    const iqdb__store *st = &db->store;
    const size_t per_chunk = iqdb__store_rows_per_chunk(st);
    const size_t row_bytes = (size_t)st->stride * sizeof(float);
    uint64_t acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (size_t base = 0; base < st->n_slots && !st->no_vectors; base += per_chunk) {
        size_t rows = st->n_slots - base < per_chunk ? st->n_slots - base : per_chunk;
        const unsigned char *p = (const unsigned char *)iqdb__store_vec(st, (uint32_t)base);
        const size_t words = rows * row_bytes / 8;
        for (size_t i = 0; i + 8 <= words; i += 8)
            for (int j = 0; j < 8; j++) {
                uint64_t w;
                memcpy(&w, p + (i + (size_t)j) * 8, 8);
                acc[j] += w;
            }
    }
    return acc[0] + acc[1] + acc[2] + acc[3] + acc[4] + acc[5] + acc[6] + acc[7];
}
