/*
 * app.c — the program every consumer test builds against an iqdb taken in a different way
 * (find_package, pkg-config, add_subdirectory): it checks that the header and the library agree
 * on the version, then opens an in-memory database, inserts three vectors and finds the nearest.
 * Exit 0 only when every step gives the expected answer.
 */
#include <stdio.h>
#include <string.h>

#include <iqdb.h>

int main(void) {
    if (iqdb_version_number() != IQDB_VERSION_NUMBER ||
        strcmp(iqdb_version(), IQDB_VERSION_STRING)) {
        fprintf(stderr, "header %s but library %s\n", IQDB_VERSION_STRING, iqdb_version());
        return 1;
    }
    iqdb_options o;
    iqdb_options_init(&o, 2, IQDB_METRIC_L2);
    iqdb *db = NULL;
    if (iqdb_open(NULL, &o, &db) != IQDB_OK) return 2;
    const float v[3][2] = {{0, 0}, {10, 10}, {3, 4}};
    for (int i = 0; i < 3; i++)
        if (iqdb_upsert(db, (iqdb_id)(i + 1), v[i], NULL) != IQDB_OK) return 3;
    const float q[2] = {3, 3};
    iqdb_hit hit;
    size_t n = 0;
    if (iqdb_search(db, q, 1, NULL, &hit, &n, NULL) != IQDB_OK || n != 1 || hit.id != 3) return 4;
    if (iqdb_close(db) != IQDB_OK) return 5;
    printf("consumer: iqdb %s, nearest id %llu at %.3f\n", iqdb_version(),
           (unsigned long long)hit.id, hit.distance);
    return 0;
}
