/*
 * fashion_demo.c — iqdb on real data: Fashion-MNIST from Debian's dataset-fashion-mnist
 * (60,000 images of clothing as 784-dimensional vectors, 10,000 query images).
 *
 * Loads the images with their class as metadata, then runs exact nearest-neighbour searches:
 * one query at a time, all queries as one batch on every core, and filtered searches ("only
 * footwear"), timing each and checking the answers (every filtered hit has the right class, a
 * filtered search returns k hits, batch equals single). Usage:
 *
 *   fashion_demo [--queries N] [--base N] [--k K] [--threads T]
 *
 * --base keeps only the first N training images (the test suite runs a small demo).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "datasets.h"
#include "iqdb.h"

#define FMNIST_DIM 784

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#define CHECK(call)                                                                            \
    do {                                                                                       \
        int rc_ = (call);                                                                      \
        if (rc_ != IQDB_OK) {                                                                  \
            fprintf(stderr, "%s failed: %s (%s)\n", #call, iqdb_errstr(rc_), iqdb_errmsg(db)); \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)

int main(int argc, char **argv) {
    size_t n_queries = 2000, k = 10, max_base = 0;
    unsigned threads = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--queries"))
            n_queries = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--k"))
            k = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads"))
            threads = (unsigned)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--base"))
            max_base = (size_t)atol(argv[i + 1]);
        else {
            fprintf(stderr, "usage: %s [--queries N] [--base N] [--k K] [--threads T]\n", argv[0]);
            return 2;
        }
    }
    size_t n_base, n_test, n_bl, n_tl, dim;
    float *base, *test;
    unsigned char *base_lab, *test_lab;
    char err[512];
    double t0 = now();
    if (ds_fmnist_load(NULL, 0, &base, &n_base, &dim, err, sizeof err) ||
        ds_fmnist_load(NULL, 1, &test, &n_test, &dim, err, sizeof err) ||
        ds_fmnist_labels(NULL, 0, &base_lab, &n_bl, err, sizeof err) ||
        ds_fmnist_labels(NULL, 1, &test_lab, &n_tl, err, sizeof err)) {
        fprintf(stderr, "%s\n(the demo needs Debian's dataset-fashion-mnist package)\n", err);
        return 1;
    }
    if (max_base && n_base > max_base) n_base = max_base;
    if (n_queries > n_test) n_queries = n_test;
    printf("loaded %zu base and %zu query images (%d dims) in %.2f s\n", n_base, n_test, FMNIST_DIM,
           now() - t0);

    iqdb *db = NULL;
    iqdb_options o;
    iqdb_options_init(&o, FMNIST_DIM, IQDB_METRIC_L2);
    o.threads = threads;
    CHECK(iqdb_open(NULL, &o, &db));
    iqdb_stats st = {.struct_size = sizeof st};
    CHECK(iqdb_stats_get(db, &st));
    printf("iqdb %s, kernels: %s, %u threads for batch calls\n", iqdb_version(),
           iqdb_simd_name(st.simd), st.threads);

    /* Insert: metadata {class: int, name: string}; ids are the row numbers. */
    iqdb_id *ids = malloc(n_base * sizeof *ids);
    iqdb_meta **metas = malloc(n_base * sizeof *metas);
    for (size_t i = 0; i < n_base; i++) {
        ids[i] = i;
        CHECK(iqdb_meta_create(NULL, &metas[i]));
        CHECK(iqdb_meta_set_int(metas[i], "class", base_lab[i]));
        CHECK(iqdb_meta_set_string(metas[i], "name", ds_fmnist_class_names[base_lab[i]]));
    }
    t0 = now();
    CHECK(iqdb_upsert_batch(db, n_base, ids, base, (const iqdb_meta *const *)metas));
    double t_ins = now() - t0;
    CHECK(iqdb_stats_get(db, &st));
    printf(
        "inserted %llu records in %.2f s (%.0f/s); memory %.1f MiB (vectors %.1f, metadata %.1f)\n",
        (unsigned long long)st.count, t_ins, (double)n_base / t_ins, st.mem_total / 1048576.0,
        st.mem_vectors / 1048576.0, st.mem_meta / 1048576.0);
    for (size_t i = 0; i < n_base; i++) iqdb_meta_destroy(metas[i]);

    /* Exact search, one query at a time. */
    iqdb_hit *single = malloc(n_queries * k * sizeof *single);
    size_t *n_single = malloc(n_queries * sizeof *n_single);
    t0 = now();
    for (size_t q = 0; q < n_queries; q++)
        CHECK(iqdb_search(db, test + q * FMNIST_DIM, k, NULL, single + q * k, &n_single[q], NULL));
    double t_single = now() - t0;
    size_t same_class = 0;
    for (size_t q = 0; q < n_queries; q++) same_class += base_lab[single[q * k].id] == test_lab[q];
    printf("exact search, 1 query at a time: %zu queries in %.2f s = %.1f QPS "
           "(nearest image has the query's class for %.1f%%)\n",
           n_queries, t_single, n_queries / t_single, 100.0 * same_class / n_queries);

    /* The same queries as one batch, spread over the worker threads: the same answers. */
    iqdb_hit *batch = malloc(n_queries * k * sizeof *batch);
    size_t *n_batch = malloc(n_queries * sizeof *n_batch);
    t0 = now();
    CHECK(iqdb_search_batch(db, test, n_queries, k, NULL, batch, n_batch));
    double t_batch = now() - t0;
    int equal = memcmp(batch, single, n_queries * k * sizeof *batch) == 0 &&
                memcmp(n_batch, n_single, n_queries * sizeof *n_batch) == 0;
    printf("exact search, one batch:        %zu queries in %.2f s = %.1f QPS (%s single search)\n",
           n_queries, t_batch, n_queries / t_batch, equal ? "identical to" : "DIFFERENT FROM");

    /* Filtered search: only footwear, given as text. */
    const char *text = "class IN (5, 7, 9)";
    iqdb_filter *footwear;
    size_t err_at;
    if (iqdb_filter_parse(NULL, text, strlen(text), &footwear, &err_at)) {
        fprintf(stderr, "filter error at %zu: %s\n", err_at, iqdb_errmsg(NULL));
        return 1;
    }
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    p.filter = footwear;
    size_t fq = n_queries < 500 ? n_queries : 500, wrong = 0, short_results = 0;
    iqdb_hit *fh = malloc(k * sizeof *fh);
    iqdb_search_info info = {.struct_size = sizeof info};
    t0 = now();
    for (size_t q = 0; q < fq; q++) {
        size_t n;
        CHECK(iqdb_search(db, test + q * FMNIST_DIM, k, &p, fh, &n, &info));
        short_results += n != k || !info.complete;
        for (size_t i = 0; i < n; i++)
            wrong += base_lab[fh[i].id] != 5 && base_lab[fh[i].id] != 7 && base_lab[fh[i].id] != 9;
    }
    double t_filt = now() - t0;
    printf("filtered search \"%s\": %zu queries, %.1f QPS, %zu hits outside the filter, "
           "%zu short results; last query matched %llu of %llu rows\n",
           text, fq, fq / t_filt, wrong, short_results, (unsigned long long)info.n_matched,
           (unsigned long long)info.n_visited);

    /* One query in detail. */
    size_t n;
    CHECK(iqdb_search(db, test, 5, NULL, fh, &n, NULL));
    printf("query 0 is a %s; its 5 nearest images:\n", ds_fmnist_class_names[test_lab[0]]);
    for (size_t i = 0; i < n; i++) {
        iqdb_meta *m;
        const char *name;
        CHECK(iqdb_get(db, fh[i].id, NULL, &m));
        CHECK(iqdb_meta_get_string(m, "name", &name, NULL));
        printf("  #%zu row %-6llu distance %8.1f  %s\n", i + 1, (unsigned long long)fh[i].id,
               fh[i].distance, name);
        iqdb_meta_destroy(m);
    }
    CHECK(iqdb_check(db));
    iqdb_filter_destroy(footwear);
    iqdb_close(db);
    free(base), free(test), free(base_lab), free(test_lab), free(ids), free(metas);
    free(single), free(n_single), free(batch), free(n_batch), free(fh);
    int ok = equal && wrong == 0 && short_results == 0;
    printf("%s\n", ok ? "demo OK" : "demo FAILED");
    return ok ? 0 : 1;
}
