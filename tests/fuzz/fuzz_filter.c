/*
 * fuzz_filter.c — libFuzzer target for the filter parser (iqdb_filter_parse): the input is
 * filter text.
 *
 * Checks:
 *  - a syntax error is IQDB_INVALID with an error offset inside the text;
 *  - any other failure than IQDB_INVALID is a finding;
 *  - a parsed filter evaluated on metadata objects (iqdb_filter_matches) and the same filter
 *    in a search (which evaluates it on the stored blobs) select exactly the same records, over
 *    a small in-memory database whose records cover every value type, absent keys and a
 *    record without metadata (differential: two evaluators of one tree).
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { N_RECS = 12, DIM = 2 };

static iqdb *db;
static iqdb_meta *metas[N_RECS];

static iqdb_meta *make_meta(int i) {
    if (i == 0) return NULL; /* a record without metadata */
    iqdb_meta *m;
    FZ_CHECK(iqdb_meta_create(NULL, &m) == IQDB_OK);
    static const char *kinds[] = {"doc", "img", "", "Doc", "doc\0x"};
    iqdb_meta_set(m, "kind", iqdb_strn(kinds[i % 5], i % 5 == 4 ? 5 : strlen(kinds[i % 5])));
    if (i % 3) iqdb_meta_set_int(m, "year", 1990 + 7 * i);
    if (i % 4 == 1) iqdb_meta_set_double(m, "score", 0.25 * i - 1.0);
    if (i % 4 == 2) iqdb_meta_set_int(m, "score", i);
    if (i % 5 == 3) iqdb_meta_set_double(m, "year", 2021.5);
    iqdb_meta_set_bool(m, "archived", i % 2);
    if (i % 6 == 0) iqdb_meta_set_null(m, "owner");
    if (i % 6 == 1) iqdb_meta_set_string(m, "owner", "ann");
    if (i % 7 == 2) iqdb_meta_set_string(m, "tag", i % 2 ? "a" : "b");
    if (i == 5) iqdb_meta_set_int(m, "big", INT64_MAX);
    if (i == 6) iqdb_meta_set_double(m, "big", 9223372036854775808.0);
    if (i == 7) iqdb_meta_set_string(m, "odd key`", "x");
    return m;
}

static void setup(void) {
    iqdb_options o;
    fz_options(&o, DIM, IQDB_METRIC_L2);
    FZ_CHECK(iqdb_open(NULL, &o, &db) == IQDB_OK);
    for (int i = 0; i < N_RECS; i++) {
        metas[i] = make_meta(i);
        float v[DIM] = {(float)i, (float)(i % 3)};
        FZ_CHECK(iqdb_upsert(db, (uint64_t)i, v, metas[i]) == IQDB_OK);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!db) setup();
    iqdb_filter *f = NULL;
    size_t where = SIZE_MAX;
    int rc = iqdb_filter_parse(NULL, (const char *)data, size, &f, &where);
    if (rc != IQDB_OK) {
        FZ_CHECK(rc == IQDB_INVALID && f == NULL && where <= size);
        return 0;
    }
    int want[N_RECS];
    for (int i = 0; i < N_RECS; i++) {
        want[i] = -1;
        FZ_CHECK(iqdb_filter_matches(f, metas[i], &want[i]) == IQDB_OK);
        FZ_CHECK(want[i] == 0 || want[i] == 1);
    }
    iqdb_search_params p;
    iqdb_search_params_init(&p);
    p.filter = f;
    float q[DIM] = {0, 0};
    iqdb_hit hits[N_RECS];
    size_t n = 0;
    iqdb_search_info info = {.struct_size = sizeof info};
    FZ_CHECK(iqdb_search(db, q, N_RECS, &p, hits, &n, &info) == IQDB_OK);
    int got[N_RECS] = {0};
    for (size_t i = 0; i < n; i++) {
        FZ_CHECK(hits[i].id < N_RECS && !got[hits[i].id]);
        got[hits[i].id] = 1;
    }
    for (int i = 0; i < N_RECS; i++) FZ_CHECK(got[i] == want[i]);
    FZ_CHECK(info.complete == 1);
    iqdb_filter_destroy(f);
    return 0;
}
