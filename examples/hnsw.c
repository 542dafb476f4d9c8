/*
 * hnsw.c — an HNSW database on disk: a bulk insert linked on the worker threads, searches with
 * the default and a per-query ef, an exact search to compare with, a filtered search (the planner
 * picks a graph walk or a scan, and k hits come back whenever k records match), a true delete,
 * and a reopen that loads the graph instead of rebuilding it.
 * Run: hnsw [directory] (default /tmp).
 */
#include <stdio.h>
#include <stdlib.h>

#include "iqdb.h"

enum { DIM = 32, N = 5000, K = 5 };

static int fail(const char *what, const iqdb *db) {
    fprintf(stderr, "%s: %s\n", what, iqdb_errmsg(db));
    return 1;
}

static float rnd(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return (float)((*s >> 8) & 0xffff) / 65536.0f - 0.5f;
}

static void show(const char *what, const iqdb_hit *h, size_t n, const iqdb_search_info *info) {
    static const char *const strategy[] = {"none", "scan", "scan of the matches", "graph",
                                           "filtered graph walk"};
    printf("%-28s", what);
    for (size_t i = 0; i < n; i++) printf(" %4llu", (unsigned long long)h[i].id);
    if (info)
        printf("   (%s, %llu distances, complete %d)", strategy[info->strategy],
               (unsigned long long)info->n_distances, info->complete);
    printf("\n");
}

int main(int argc, char **argv) {
    char path[512], wal[520];
    const char *tag = getenv("IQDB_SIMD"); /* the test suite runs one copy per level at once */
    snprintf(path, sizeof path, "%s/hnsw-%s.iqdb", argc > 1 ? argv[1] : "/tmp", tag ? tag : "demo");
    snprintf(wal, sizeof wal, "%s.wal", path);
    remove(path);
    remove(wal);

    iqdb_options o;
    iqdb_options_init(&o, DIM, IQDB_METRIC_L2);
    o.index = IQDB_INDEX_HNSW;
    o.hnsw.m = 16;                /* links per node (32 on the bottom layer); the default */
    o.hnsw.ef_construction = 100; /* build effort; default 200 */
    o.sync = IQDB_SYNC_NEVER;     /* a demo: checkpoints (and close) still make it durable */
    iqdb *db;
    if (iqdb_open(path, &o, &db) != IQDB_OK) return fail("open", NULL);

    /* one batch: all or nothing, linked into the graph on the worker threads */
    static float vecs[N * DIM];
    static iqdb_id ids[N];
    static iqdb_meta *metas[N];
    unsigned seed = 7;
    for (int i = 0; i < N; i++) {
        ids[i] = (iqdb_id)i;
        for (int d = 0; d < DIM; d++) vecs[i * DIM + d] = rnd(&seed);
        if (iqdb_meta_create(NULL, &metas[i]) != IQDB_OK) return fail("meta", NULL);
        iqdb_meta_set_int(metas[i], "shard", i % 100); /* shard = 3: 1 % of the records */
    }
    int rc = iqdb_upsert_batch(db, N, ids, vecs, (const iqdb_meta *const *)metas);
    for (int i = 0; i < N; i++) iqdb_meta_destroy(metas[i]);
    if (rc != IQDB_OK) return fail("upsert_batch", db);

    const float *q = vecs + 123 * DIM; /* record 123's own vector: it must come first */
    iqdb_hit hits[K], exact[K];
    size_t n, ne;
    iqdb_search_info info = {.struct_size = sizeof info};
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    if (iqdb_search(db, q, K, NULL, hits, &n, &info) != IQDB_OK) return fail("search", db);
    show("graph, default ef (64):", hits, n, &info);
    p.ef = 16; /* faster, lower recall */
    iqdb_search(db, q, K, &p, hits, &n, &info);
    show("graph, ef 16:", hits, n, &info);
    p.ef = 0;
    p.exact = 1; /* bypass the graph: the ground truth */
    iqdb_search(db, q, K, &p, exact, &ne, &info);
    show("exact scan:", exact, ne, &info);
    p.exact = 0;

    iqdb_filter *f;
    if (iqdb_filter_parse(NULL, "shard = 3", 9, &f, NULL) != IQDB_OK) return fail("filter", NULL);
    p.filter = f;
    iqdb_search(db, q, K, &p, hits, &n, &info);
    show("filter shard = 3 (1 %):", hits, n, &info);
    int complete = n == K && info.complete;
    iqdb_filter_destroy(f);
    p.filter = NULL;

    int existed;
    iqdb_delete(db, 123, &existed); /* leaves the graph for real; its neighbours are re-linked */
    if (iqdb_close(db) != IQDB_OK) return fail("close", NULL); /* checkpoint: graph on disk */

    iqdb_options any;
    iqdb_options_init(&any, DIM, IQDB_METRIC_L2); /* the file decides: HNSW, m 16, efc 100 */
    if (iqdb_open(path, &any, &db) != IQDB_OK) return fail("reopen", NULL);
    iqdb_search(db, q, K, NULL, hits, &n, &info);
    show("after delete 123 + reopen:", hits, n, &info);
    uint64_t count = 0;
    iqdb_count(db, &count);
    int ok = n == K && exact[0].id == 123 && complete && count == N - 1 &&
             iqdb_check(db) == IQDB_OK; /* iqdb_check verifies every link of the graph */
    for (size_t i = 0; i < n; i++) ok &= hits[i].id != 123;
    iqdb_close(db);
    remove(path);
    remove(wal);
    return ok ? 0 : 1;
}
