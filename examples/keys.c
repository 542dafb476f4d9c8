/*
 * keys.c — records named by byte keys (document paths here) beside u64 ids in one database:
 * upsert by key, search, turn each hit back into its name, replace and delete by key, and what a
 * key handle does when its record changes after the search. Run: keys
 */
#include <stdio.h>
#include <string.h>

#include "iqdb.h"

static int fail(const char *what, const iqdb *db) {
    fprintf(stderr, "%s: %s\n", what, iqdb_errmsg(db));
    return 1;
}

/* Prints a hit by its name: the u64 id, or the key (with bytes outside ASCII escaped). */
static void print_hit(iqdb *db, const iqdb_hit *h) {
    if (!iqdb_hit_has_key(h)) {
        printf("  id %llu  distance %.3f\n", (unsigned long long)h->id, h->distance);
        return;
    }
    unsigned char key[IQDB_MAX_ID_KEY_LEN];
    size_t len;
    if (iqdb_hit_key(db, h, key, sizeof key, &len) != IQDB_OK) {
        printf("  (gone: %s)\n", iqdb_errmsg(db));
        return;
    }
    printf("  key \"");
    for (size_t i = 0; i < len; i++)
        if (key[i] >= 32 && key[i] < 127)
            putchar(key[i]);
        else
            printf("\\x%02x", key[i]);
    printf("\"  distance %.3f\n", h->distance);
}

int main(void) {
    iqdb_options o;
    iqdb_options_init(&o, 2, IQDB_METRIC_L2);
    iqdb *db;
    if (iqdb_open(NULL, &o, &db) != IQDB_OK) return fail("open", NULL);

    const char *docs[] = {"docs/guide.md", "docs/FORMAT.md", "README.md"};
    for (int i = 0; i < 3; i++) {
        float v[2] = {(float)i, 1.0f};
        if (iqdb_upsert_key(db, docs[i], strlen(docs[i]), v, NULL) != IQDB_OK)
            return fail("upsert_key", db);
    }
    float v[2] = {0.5f, 1.0f};
    if (iqdb_upsert(db, 1, v, NULL) != IQDB_OK) return fail("upsert", db); /* the u64 1 */
    const unsigned char raw[2] = {0x01, 0xff}; /* any bytes: this is not the u64 1 either */
    if (iqdb_upsert_key(db, raw, sizeof raw, v, NULL) != IQDB_OK) return fail("upsert_key", db);

    iqdb_hit hits[5];
    size_t n;
    float q[2] = {0.9f, 1.0f};
    if (iqdb_search(db, q, 5, NULL, hits, &n, NULL) != IQDB_OK) return fail("search", db);
    printf("nearest to (0.9, 1):\n");
    for (size_t i = 0; i < n; i++) print_hit(db, &hits[i]);

    /* replace and delete by key; the hits of the earlier search now name gone versions */
    float w[2] = {9.0f, 9.0f};
    if (iqdb_upsert_key(db, docs[1], strlen(docs[1]), w, NULL) != IQDB_OK)
        return fail("upsert_key", db);
    int existed;
    if (iqdb_delete_key(db, docs[0], strlen(docs[0]), &existed) != IQDB_OK || !existed)
        return fail("delete_key", db);
    printf("the same hits after replacing %s and deleting %s:\n", docs[1], docs[0]);
    for (size_t i = 0; i < n; i++) print_hit(db, &hits[i]);

    float got[2];
    if (iqdb_get_key(db, docs[1], strlen(docs[1]), got, NULL) != IQDB_OK)
        return fail("get_key", db);
    printf("%s is now (%g, %g); %s: %s\n", docs[1], got[0], got[1], docs[0],
           iqdb_errstr(iqdb_get_key(db, docs[0], strlen(docs[0]), NULL, NULL)));
    uint64_t count;
    iqdb_count(db, &count);
    printf("%llu records\n", (unsigned long long)count);
    return iqdb_close(db) == IQDB_OK ? 0 : fail("close", db);
}
