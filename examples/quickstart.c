/*
 * quickstart.c — the smallest complete iqdb program (it is the README's example, built and run
 * by ctest): open an in-memory database, insert records with metadata, search with and without
 * a filter, read a record back, close.
 */
#include <stdio.h>

#include "iqdb.h"

#define CHECK(call)                                                                            \
    do {                                                                                       \
        int rc_ = (call);                                                                      \
        if (rc_ != IQDB_OK) {                                                                  \
            fprintf(stderr, "%s failed: %s (%s)\n", #call, iqdb_errstr(rc_), iqdb_errmsg(db)); \
            return 1;                                                                          \
        }                                                                                      \
    } while (0)

int main(void) {
    iqdb *db = NULL;
    iqdb_options opts;
    iqdb_options_init(&opts, 4, IQDB_METRIC_COSINE); /* 4-dimensional vectors, cosine distance */
    CHECK(iqdb_open(NULL, &opts, &db));              /* NULL path: in memory */

    const float vecs[5][4] = {
        {1, 0, 0, 0}, {0.9f, 0.1f, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 1}, {1, 1, 0, 0}};
    const char *kinds[5] = {"doc", "doc", "image", "doc", "image"};
    for (int i = 0; i < 5; i++) {
        iqdb_meta *meta;
        CHECK(iqdb_meta_create(NULL, &meta));
        CHECK(iqdb_meta_set_string(meta, "kind", kinds[i]));
        CHECK(iqdb_meta_set_int(meta, "year", 2019 + i));
        CHECK(iqdb_upsert(db, (iqdb_id)(100 + i), vecs[i], meta)); /* copies vector and meta */
        iqdb_meta_destroy(meta);
    }

    const float query[4] = {1, 0.05f, 0, 0};
    iqdb_hit hits[3];
    size_t n;
    CHECK(iqdb_search(db, query, 3, NULL, hits, &n, NULL));
    printf("nearest 3:\n");
    for (size_t i = 0; i < n; i++)
        printf("  id %llu  distance %.4f\n", (unsigned long long)hits[i].id, hits[i].distance);

    /* Only documents from 2020 on. */
    iqdb_filter *filter;
    const char *text = "kind = 'doc' AND year >= 2020";
    size_t err_at;
    if (iqdb_filter_parse(NULL, text, 29, &filter, &err_at) != IQDB_OK) {
        fprintf(stderr, "filter error at %zu: %s\n", err_at, iqdb_errmsg(NULL));
        return 1;
    }
    iqdb_search_params params;
    iqdb_search_params_init(&params);
    params.filter = filter;
    iqdb_search_info info = {.struct_size = sizeof info};
    CHECK(iqdb_search(db, query, 3, &params, hits, &n, &info));
    printf("nearest docs since 2020 (%s):\n", info.complete ? "complete" : "incomplete");
    for (size_t i = 0; i < n; i++)
        printf("  id %llu  distance %.4f\n", (unsigned long long)hits[i].id, hits[i].distance);
    iqdb_filter_destroy(filter);

    float v[4];
    iqdb_meta *meta;
    CHECK(iqdb_get(db, 103, v, &meta));
    const char *kind;
    CHECK(iqdb_meta_get_string(meta, "kind", &kind, NULL));
    printf("record 103: [%g %g %g %g] kind=%s\n", v[0], v[1], v[2], v[3], kind);
    iqdb_meta_destroy(meta);

    uint64_t count;
    CHECK(iqdb_count(db, &count));
    printf("%llu records, iqdb %s\n", (unsigned long long)count, iqdb_version());
    /* the nearest record must be 100, then 101; the filtered result must hold 101 and 103 */
    return iqdb_close(db) == IQDB_OK && n == 2 && hits[0].id == 101 && hits[1].id == 103 ? 0 : 1;
}
