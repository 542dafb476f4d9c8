/*
 * gen_corpus.c — writes the seed corpus of the fuzz targets (tests/fuzz/corpus), from the
 * library itself through the simulated file system, so every seed is a file iqdb really wrote:
 *
 *   snapshot/  empty and populated snapshots: plain, zstd, lz4 (fast and HC), a zstd one whose
 *              rows section spans two blocks, COSINE and HAMMING databases, metadata of every
 *              type, deleted slots (a free list), two HNSW databases (the graph section)
 *              keyed: records named by byte keys beside u64 ids (keyed rows)
 *   wal/       WALs extending the base snapshot of fuzz_wal (fz_build_base): upserts with new
 *              keys, deletes, batches with duplicate ids, a torn tail, a NEVER-policy log whose
 *              records claim nothing synced, the header alone, and the previous generation's log;
 *              keyed upserts, batches and deletes (record types 3 and 4)
 *   filter/    filter texts covering the grammar
 *
 * Usage: iqdb-fuzz-corpus <dir>   (the directories must exist). scripts/run fuzz-corpus runs it
 * into tests/fuzz/corpus. Snapshot bytes depend on the zstd / lz4 versions, nothing else.
 */
#include "fuzz_common.h"

static const char *out_dir;

static void save(const char *sub, const char *name, const uint8_t *p, size_t n) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s/%s", out_dir, sub, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f)) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    printf("%-40s %6zu bytes\n", path, n);
}

static iqdb_meta *rich_meta(int i) {
    if (i % 4 == 0) return NULL;
    iqdb_meta *m = fz_meta(i);
    iqdb_meta_set_double(m, "score", 0.5 * i);
    iqdb_meta_set_bool(m, "archived", i % 2);
    if (i % 3 == 0) iqdb_meta_set_null(m, "owner");
    if (i % 5 == 0) iqdb_meta_set(m, "blob", iqdb_strn("a\0b", 3));
    return m;
}

static iqdb_index_kind snap_index = IQDB_INDEX_FLAT; /* the index of the next snapshot() */

/* Byte key i: a zero byte, a byte that is not UTF-8, and i; key 1 is the single byte 0x01. */
static size_t fz_key(int i, uint8_t *k) {
    if (i == 1) {
        k[0] = 1;
        return 1;
    }
    k[0] = 'k';
    k[1] = 0;
    k[2] = 0xfe;
    k[3] = (uint8_t)i;
    return 4;
}

/* A database of `n` records written with codec `c`, some deleted, then checkpointed. With
 * `keyed`, every other record is named by a byte key. */
static void snapshot_k(const char *name, uint32_t dim, iqdb_metric metric, iqdb_compression c,
                       int level, int n, int same_vector, int keyed) {
    simfs *fs = simfs_new();
    iqdb__io_set_default(simfs_io(fs));
    iqdb_options o;
    fz_options(&o, dim, metric);
    o.compression = c;
    o.compression_level = level;
    o.index = snap_index;
    if (snap_index == IQDB_INDEX_HNSW) {
        o.hnsw.m = 4; /* small lists: more nodes with upper layers, and full lists, in few bytes */
        o.hnsw.ef_construction = 8;
    }
    iqdb *db;
    FZ_CHECK(iqdb_open(FZ_PATH, &o, &db) == IQDB_OK);
    float *v = calloc(dim, sizeof *v);
    for (int i = 0; i < n; i++) {
        for (uint32_t d = 0; d < dim; d++)
            v[d] = same_vector                     ? 1.0f
                   : metric == IQDB_METRIC_HAMMING ? (float)((i >> (d % 8)) & 1)
                                                   : (float)((i * 31 + (int)d * 7) % 17) - 8.0f;
        iqdb_meta *m = same_vector ? NULL : rich_meta(i);
        uint8_t k[4];
        if (keyed && i % 2)
            FZ_CHECK(iqdb_upsert_key(db, k, fz_key(i, k), v, m) == IQDB_OK);
        else
            FZ_CHECK(iqdb_upsert(db, (uint64_t)i * 3, v, m) == IQDB_OK);
        iqdb_meta_destroy(m);
    }
    for (int i = 1; i < n && !same_vector; i += 4) { /* a free list */
        uint8_t k[4];
        if (keyed)
            FZ_CHECK(iqdb_delete_key(db, k, fz_key(i, k), NULL) == IQDB_OK);
        else
            FZ_CHECK(iqdb_delete(db, (uint64_t)i * 3, NULL) == IQDB_OK);
    }
    if (n > 2 && !same_vector) FZ_CHECK(iqdb_upsert(db, 3, v, NULL) == IQDB_OK); /* reuses */
    FZ_CHECK(iqdb_checkpoint(db) == IQDB_OK);
    uint8_t *p;
    size_t len;
    FZ_CHECK(simfs_get(fs, FZ_PATH, &p, &len));
    save("snapshot", name, p, len);
    free(p);
    free(v);
    FZ_CHECK(iqdb_close(db) == IQDB_OK);
    iqdb__io_set_default(NULL);
    simfs_free(fs);
}

static void snapshot(const char *name, uint32_t dim, iqdb_metric metric, iqdb_compression c,
                     int level, int n, int same_vector) {
    snapshot_k(name, dim, metric, c, level, n, same_vector, 0);
}

static uint8_t *base_snap;
static size_t base_len;

/* Opens the base, runs `ops`, and saves the WAL as a crashed process leaves it (cut to `keep`
 * bytes when keep > 0). */
static void wal(const char *name, iqdb_sync sync, void (*ops)(iqdb *), size_t cut) {
    simfs *fs = simfs_new();
    simfs_put(fs, FZ_PATH, base_snap, base_len);
    iqdb__io_set_default(simfs_io(fs));
    iqdb_options o;
    fz_options(&o, FZ_BASE_DIM, IQDB_METRIC_L2);
    o.sync = sync;
    o.sync_period_ms = 3600000;
    iqdb *db;
    FZ_CHECK(iqdb_open(FZ_PATH, &o, &db) == IQDB_OK);
    ops(db);
    simfs *left = simfs_clone(fs);
    uint8_t *p;
    size_t len;
    FZ_CHECK(simfs_get(left, FZ_WAL, &p, &len));
    save("wal", name, p, cut && cut < len ? len - cut : len);
    free(p);
    simfs_free(left);
    FZ_CHECK(iqdb_close(db) == IQDB_OK);
    iqdb__io_set_default(NULL);
    simfs_free(fs);
}

static void up(iqdb *db, uint64_t id, iqdb_meta *m) {
    float v[FZ_BASE_DIM] = {(float)id, -0.25f, 3.0f, (float)(id % 5)};
    FZ_CHECK(iqdb_upsert(db, id, v, m) == IQDB_OK);
    iqdb_meta_destroy(m);
}

static void ops_upserts(iqdb *db) {
    iqdb_meta *m = fz_meta(4);
    iqdb_meta_set_string(m, "tag", "new-key");
    up(db, 4, m);
    up(db, 5, NULL);
    up(db, 1, fz_meta(7)); /* replaces a record of the snapshot */
}

static void ops_deletes(iqdb *db) {
    FZ_CHECK(iqdb_delete(db, 2, NULL) == IQDB_OK);
    up(db, 9, NULL);
    FZ_CHECK(iqdb_delete(db, 9, NULL) == IQDB_OK);
}

static void ops_batch(iqdb *db) {
    uint64_t ids[4] = {10, 11, 10, 3};
    float v[4 * FZ_BASE_DIM];
    for (int i = 0; i < 4 * FZ_BASE_DIM; i++) v[i] = (float)i * 0.5f;
    iqdb_meta *m[4] = {rich_meta(1), NULL, rich_meta(5), rich_meta(6)};
    iqdb_meta_set_string(m[0], "lang", "en");
    FZ_CHECK(iqdb_upsert_batch(db, 4, ids, v, (const iqdb_meta *const *)m) == IQDB_OK);
    for (int i = 0; i < 4; i++) iqdb_meta_destroy(m[i]);
}

static void ops_mixed(iqdb *db) {
    ops_upserts(db);
    ops_deletes(db);
    ops_batch(db);
}

static void upk(iqdb *db, int i, iqdb_meta *m) {
    float v[FZ_BASE_DIM] = {(float)i, 0.75f, -3.0f, (float)(i % 3)};
    uint8_t k[4];
    FZ_CHECK(iqdb_upsert_key(db, k, fz_key(i, k), v, m) == IQDB_OK);
    iqdb_meta_destroy(m);
}

/* Keyed records beside the base's u64 ids: key 0x01 beside the u64 1, new metadata keys, a
 * keyed batch with a duplicate, a replace, keyed deletes. */
static void ops_keyed(iqdb *db) {
    iqdb_meta *m = fz_meta(8);
    iqdb_meta_set_string(m, "src", "keyed");
    upk(db, 1, m);
    upk(db, 2, NULL);
    const void *keys[3];
    size_t lens[3];
    uint8_t kb[3][4];
    int which[3] = {3, 4, 3};
    float v[3 * FZ_BASE_DIM];
    for (int i = 0; i < 3; i++) {
        lens[i] = fz_key(which[i], kb[i]);
        keys[i] = kb[i];
    }
    for (int i = 0; i < 3 * FZ_BASE_DIM; i++) v[i] = (float)i * -0.5f;
    FZ_CHECK(iqdb_upsert_batch_key(db, 3, keys, lens, v, NULL) == IQDB_OK);
    upk(db, 2, fz_meta(9)); /* replace */
    uint8_t k[4];
    FZ_CHECK(iqdb_delete_key(db, k, fz_key(4, k), NULL) == IQDB_OK);
    up(db, 1, NULL); /* the u64 1 is another record */
}

static void ops_none(iqdb *db) { (void)db; }

static const char *filters[] = {
    "kind = 'doc'",
    "kind = 'doc' AND year >= 2020 AND tag IN ('a', 'b') AND NOT archived = true",
    "year > 2000 OR score <= 0.5",
    "(kind == \"img\" OR kind <> 'doc') AND EXISTS(owner)",
    "owner = NULL",
    "NOT (year < 2001.5e0) and archived != FALSE",
    "tag NOT IN ()",
    "tag not in ('a', 'it''s', \"q\"\"q\")",
    "`odd key``` = 'x' OR `weird.key-1` = -3",
    "big = 9223372036854775807 OR big > 9223372036854775808",
    "score >= -1e308 AND score < 1.5E+2",
    "TRUE",
    "false OR true AND NOT false",
    "((((kind = 'doc'))))",
    "exists(year) AND year IN (1997, 2004.0, -0, 0x10)",
    "kind < 'doc\\0' OR kind >= ''",
    "year = 2019 OR",
    "NOT NOT NOT archived = 1",
};

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s <corpus dir with snapshot/, wal/, filter/>\n", argv[0]);
        return 2;
    }
    out_dir = argv[1];
    snapshot("empty", 4, IQDB_METRIC_L2, IQDB_COMPRESS_NONE, 0, 0, 0);
    snapshot("plain", 8, IQDB_METRIC_L2, IQDB_COMPRESS_NONE, 0, 14, 0);
    snapshot("cosine", 3, IQDB_METRIC_COSINE, IQDB_COMPRESS_NONE, 0, 6, 0);
    snapshot("hamming", 16, IQDB_METRIC_HAMMING, IQDB_COMPRESS_NONE, 0, 9, 0);
    snap_index = IQDB_INDEX_HNSW; /* the graph section (deleted nodes repaired, a reused slot) */
    snapshot("hnsw", 2, IQDB_METRIC_L2, IQDB_COMPRESS_NONE, 0, 17, 0);
    snapshot("hnsw-cosine", 3, IQDB_METRIC_COSINE, IQDB_COMPRESS_NONE, 0, 12, 0);
    snap_index = IQDB_INDEX_FLAT;
    if (iqdb_compression_available(IQDB_COMPRESS_ZSTD)) {
        snapshot("zstd", 8, IQDB_METRIC_DOT, IQDB_COMPRESS_ZSTD, 0, 14, 0);
        snapshot("zstd-2blocks", 256, IQDB_METRIC_L1, IQDB_COMPRESS_ZSTD, 19, 1100, 1);
    }
    if (iqdb_compression_available(IQDB_COMPRESS_LZ4)) {
        snapshot("lz4", 8, IQDB_METRIC_L2, IQDB_COMPRESS_LZ4, 0, 14, 0);
        snapshot("lz4hc", 5, IQDB_METRIC_COSINE, IQDB_COMPRESS_LZ4, 9, 7, 0);
    }
    snapshot_k("keyed", 6, IQDB_METRIC_L2, IQDB_COMPRESS_NONE, 0, 12, 0, 1);
    if (iqdb_compression_available(IQDB_COMPRESS_ZSTD))
        snapshot_k("keyed-zstd", 4, IQDB_METRIC_COSINE, IQDB_COMPRESS_ZSTD, 0, 9, 0, 1);
    uint8_t *prev;
    size_t prev_len;
    fz_build_base(&base_snap, &base_len, &prev, &prev_len);
    save("wal", "prev-generation", prev, prev_len);
    wal("header-only", IQDB_SYNC_ALWAYS, ops_none, 0);
    wal("upserts", IQDB_SYNC_ALWAYS, ops_upserts, 0);
    wal("deletes", IQDB_SYNC_ALWAYS, ops_deletes, 0);
    wal("batch", IQDB_SYNC_ALWAYS, ops_batch, 0);
    wal("mixed", IQDB_SYNC_ALWAYS, ops_mixed, 0);
    wal("torn-tail", IQDB_SYNC_ALWAYS, ops_mixed, 13);
    wal("never-synced", IQDB_SYNC_NEVER, ops_mixed, 0);
    wal("periodic", IQDB_SYNC_PERIODIC, ops_upserts, 0);
    wal("keyed", IQDB_SYNC_ALWAYS, ops_keyed, 0);
    wal("keyed-torn", IQDB_SYNC_ALWAYS, ops_keyed, 21);
    for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "f%02zu", i);
        save("filter", name, (const uint8_t *)filters[i], strlen(filters[i]));
    }
    free(prev);
    free(base_snap);
    return 0;
}
