/*
 * ivf.c — an IVF index with SQ8 codes in a durable database: it trains by itself, a search
 * scans a few lists (n_probes, per query too), the shortlist is re-ranked against the full
 * vectors, and a reopen loads the trained index instead of training again. A last reopen with
 * IQDB_VECTORS_IN_FILE keeps the full vectors in a mapped file instead of on the heap: the same
 * answers, with the heap holding little more than the codes.
 *
 *   ivf [DIR]     (the database goes to DIR/ivf-example, default the current directory)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "iqdb.h"

enum { DIM = 32, ROWS = 20000, K = 5 };

/* Rows around 50 random centres, deterministic. */
static float rnd(uint32_t *x) {
    *x = *x * 1664525u + 1013904223u;
    return (float)(*x >> 8) / 16777216.0f;
}

static int fail(const char *what, iqdb *db) {
    fprintf(stderr, "%s: %s\n", what, iqdb_errmsg(db));
    return 1;
}

static void show(const char *label, iqdb *db) {
    iqdb_stats s = {.struct_size = sizeof s};
    iqdb_stats_get(db, &s);
    double n = (double)s.count;
    printf("%s: %llu rows, %u lists, trained at %llu rows; bytes per row: vector %.0f "
           "(+ %.0f mapped from a file), code %.0f, lists and centroids %.0f; heap in all %.0f\n",
           label, (unsigned long long)s.count, s.ivf_lists, (unsigned long long)s.trained_rows,
           (double)s.mem_vectors / n, (double)s.mapped_vectors / n, (double)s.mem_codes / n,
           (double)s.mem_index / n, (double)s.mem_total / n);
}

int main(int argc, char **argv) {
    char path[1024];
    snprintf(path, sizeof path, "%s/ivf-example", argc > 1 ? argv[1] : ".");
    remove(path);
    char wal[1100];
    snprintf(wal, sizeof wal, "%s.wal", path);
    remove(wal);

    iqdb_options o;
    iqdb_options_init(&o, DIM, IQDB_METRIC_L2);
    o.index = IQDB_INDEX_IVF;      /* n_lists 0: chosen from the data size at each training */
    o.ivf.n_probes = 16;           /* lists scanned per query by default */
    o.quant.kind = IQDB_QUANT_SQ8; /* 1 byte per dimension, re-ranked */
    o.sync = IQDB_SYNC_NEVER;      /* a bulk load; iqdb_close checkpoints */
    iqdb *db;
    if (iqdb_open(path, &o, &db) != IQDB_OK) return fail("open", NULL);

    float *rows = malloc(sizeof(float) * ROWS * DIM), centres[50][DIM];
    iqdb_id *ids = malloc(sizeof(iqdb_id) * ROWS);
    if (!rows || !ids) return 1;
    uint32_t x = 7;
    for (int c = 0; c < 50; c++)
        for (int d = 0; d < DIM; d++) centres[c][d] = 10.0f * rnd(&x);
    for (int i = 0; i < ROWS; i++) {
        ids[i] = (iqdb_id)i;
        for (int d = 0; d < DIM; d++) rows[i * DIM + d] = centres[i % 50][d] + rnd(&x);
    }
    /* the index trains by itself as the rows arrive (here: once the batch is in) */
    if (iqdb_upsert_batch(db, ROWS, ids, rows, NULL) != IQDB_OK) return fail("upsert", db);
    show("written ", db);

    const float *q = rows + 123 * DIM;
    iqdb_hit hits[K], exact[K];
    size_t n, ne;
    iqdb_search_info info = {.struct_size = sizeof info};
    if (iqdb_search(db, q, K, NULL, hits, &n, &info) != IQDB_OK) return fail("search", db);
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    p.exact = 1; /* ground truth: every row */
    if (iqdb_search(db, q, K, &p, exact, &ne, NULL) != IQDB_OK) return fail("exact", db);
    int same = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < ne; j++) same += hits[i].id == exact[j].id;
    printf("IVF search: %u lists scanned, %llu rows scored, %d of %zu exact neighbours found\n",
           info.n_lists_scanned, (unsigned long long)info.n_distances, same, ne);
    if (iqdb_close(db) != IQDB_OK) return fail("close", NULL);

    /* reopen with default options: the index kind, the quantizer and the trained lists come
     * from the file; nothing is trained again */
    iqdb_options plain;
    iqdb_options_init(&plain, DIM, IQDB_METRIC_L2);
    if (iqdb_open(path, &plain, &db) != IQDB_OK) return fail("reopen", NULL);
    show("reopened", db);
    iqdb_hit again[K];
    size_t n2;
    if (iqdb_search(db, q, K, NULL, again, &n2, NULL) != IQDB_OK) return fail("search", db);
    int equal = n2 == n;
    for (size_t i = 0; equal && i < n; i++)
        equal = again[i].id == hits[i].id && again[i].distance == hits[i].distance;
    printf("same results after reopen: %s\n", equal ? "yes" : "NO");
    if (iqdb_check(db) != IQDB_OK) return fail("check", db);
    iqdb_close(db);

    /* the vectors in a file: re-ranking reads them from the mapping; the heap keeps the codes */
    plain.flags = IQDB_VECTORS_IN_FILE;
    if (iqdb_open(path, &plain, &db) != IQDB_OK) return fail("reopen (vectors in file)", NULL);
    show("in file ", db);
    if (iqdb_search(db, q, K, NULL, again, &n2, NULL) != IQDB_OK) return fail("search", db);
    int equal2 = n2 == n;
    for (size_t i = 0; equal2 && i < n; i++)
        equal2 = again[i].id == hits[i].id && again[i].distance == hits[i].distance;
    printf("same results with the vectors in a file: %s\n", equal2 ? "yes" : "NO");
    equal = equal && equal2;
    iqdb_close(db);
    remove(path);
    remove(wal);
    free(rows);
    free(ids);
    return equal && same >= K - 1 ? 0 : 1;
}
