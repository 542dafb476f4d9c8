/*
 * persistence.c — a durable database: open (create), write, close, reopen, read back. Shows the
 * sync policy, compression when it is built in, a checkpoint, and the stats that say what is on
 * disk. Run: persistence [directory] (default: a new directory under /tmp).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iqdb.h"

static int fail(const char *what, const iqdb *db) {
    fprintf(stderr, "%s: %s\n", what, iqdb_errmsg(db));
    return 1;
}

int main(int argc, char **argv) {
    char path[512];
    const char *tag = getenv("IQDB_SIMD"); /* the test suite runs one copy per level at once */
    snprintf(path, sizeof path, "%s/vectors-%s.iqdb", argc > 1 ? argv[1] : "/tmp",
             tag ? tag : "demo");
    remove(path);
    char wal[520];
    snprintf(wal, sizeof wal, "%s.wal", path);
    remove(wal);

    iqdb_options o;
    iqdb_options_init(&o, 3, IQDB_METRIC_L2);
    o.sync = IQDB_SYNC_ALWAYS; /* a write returns once it is on disk (the default) */
    if (iqdb_compression_available(IQDB_COMPRESS_ZSTD)) o.compression = IQDB_COMPRESS_ZSTD;
    iqdb *db;
    if (iqdb_open(path, &o, &db) != IQDB_OK) return fail("open", NULL);
    for (iqdb_id id = 1; id <= 100; id++) {
        float v[3] = {(float)id, (float)(id % 7), 1.0f};
        if (iqdb_upsert(db, id, v, NULL) != IQDB_OK) return fail("upsert", db);
    }
    if (iqdb_checkpoint(db) != IQDB_OK) return fail("checkpoint", db); /* WAL -> snapshot */
    int existed;
    if (iqdb_delete(db, 42, &existed) != IQDB_OK) return fail("delete", db); /* in the WAL */
    if (iqdb_close(db) != IQDB_OK) return fail("close", db);                 /* checkpoints */

    if (iqdb_open(path, &o, &db) != IQDB_OK) return fail("reopen", NULL);
    uint64_t n;
    iqdb_count(db, &n);
    iqdb_stats s = {.struct_size = sizeof s};
    iqdb_stats_get(db, &s);
    printf("%s: %llu records, snapshot generation %llu at LSN %llu\n", path, (unsigned long long)n,
           (unsigned long long)s.generation, (unsigned long long)s.checkpoint_lsn);
    float q[3] = {42, 0, 1}, v[3];
    iqdb_hit hits[3];
    size_t got;
    iqdb_search(db, q, 3, NULL, hits, &got, NULL);
    for (size_t i = 0; i < got; i++)
        printf("  id %llu at %.3f\n", (unsigned long long)hits[i].id, hits[i].distance);
    int ok = n == 99 && iqdb_get(db, 42, v, NULL) == IQDB_NOTFOUND && iqdb_check(db) == IQDB_OK;
    if (iqdb_close(db) != IQDB_OK) return fail("close", NULL);
    remove(path);
    remove(wal);
    return ok ? 0 : 1;
}
