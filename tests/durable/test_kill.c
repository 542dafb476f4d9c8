/*
 * test_kill.c — real processes, real files: a child opens the database under ALWAYS and upserts
 * versions of records in a loop (even ids by u64, odd ones by byte key), writing "id version" to
 * a pipe after each call returns IQDB_OK. The
 * parent SIGKILLs it after a random 0-50 ms, reads what was acknowledged, reopens the database
 * and checks that every acknowledged version (or the one in flight after it) is there, byte for
 * byte, and that iqdb_check passes. Repeated IQDBT_KILLS times (default 200) on one database,
 * so each child also recovers what the previous one left. A kill cannot lose the OS cache, so
 * this tests the code paths (partial writes, recovery after them), not fsync; the crash
 * simulator tests fsync.
 */
#if defined(_WIN32)
#include <stdio.h>
int main(void) {
    puts("SKIP: test_kill needs fork() and SIGKILL (POSIX); Windows has neither");
    return 77;
}
#else
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

enum { IDS = 64 };

static char dir[256], path[300];
static int acked[IDS], latest[IDS]; /* acknowledged version; highest version attempted */

/* Odd ids name their record by a byte key (harness.h's h_key), even ids by the u64. */
static int put(iqdb *db, uint64_t id, const float *vec) {
    uint8_t k[8];
    if (id % 2) return iqdb_upsert_key(db, k, h_key(H_IDS + id, k), vec, NULL);
    return iqdb_upsert(db, id, vec, NULL);
}
static int get(iqdb *db, uint64_t id, float *vec) {
    uint8_t k[8];
    if (id % 2) return iqdb_get_key(db, k, h_key(H_IDS + id, k), vec, NULL);
    return iqdb_get(db, id, vec, NULL);
}

static void child(int fd, uint64_t seed) {
    iqdb_options o;
    iqdb_options_init(&o, H_DIM, IQDB_METRIC_L2);
    o.checkpoint_bytes = 64 * 1024; /* automatic checkpoints happen too */
    iqdb *db;
    if (iqdb_open(path, &o, &db) != IQDB_OK) _exit(3);
    iqdbt_rng r = {seed};
    for (;;) {
        uint64_t id = iqdbt_next(&r) % IDS;
        int v = ++latest[id];
        float vec[H_DIM];
        h_vec(vec, id, v);
        if (put(db, id, vec) != IQDB_OK) _exit(4);
        int msg[2] = {(int)id, v};
        if (write(fd, msg, sizeof msg) != (ssize_t)sizeof msg) _exit(5);
    }
}

static void test_kill_loop(void **state) {
    (void)state;
    const char *e = getenv("IQDBT_KILLS");
    int kills = e ? atoi(e) : 200;
    snprintf(dir, sizeof dir, "/tmp/iqdb-kill-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/db", dir);
    uint64_t seed = (uint64_t)time(NULL);
    printf("seed %llu\n", (unsigned long long)seed);
    iqdbt_rng r = {seed};
    long acks = 0;
    for (int k = 0; k < kills; k++) {
        int p[2];
        assert_int_equal(pipe(p), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            child(p[1], seed + (uint64_t)k);
        }
        close(p[1]);
        struct timespec ts = {0, (long)(iqdbt_next(&r) % 50000) * 1000};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        if (!WIFSIGNALED(status)) {
            print_error("kill %d: the child exited with %d before the kill\n", k,
                        WEXITSTATUS(status));
            fail();
        }
        int msg[2];
        while (read(p[0], msg, sizeof msg) == (ssize_t)sizeof msg) {
            acked[msg[0]] = msg[1];
            acks++;
        }
        close(p[0]);
        /* the child's attempts continue from the acknowledged versions */
        iqdb_options o;
        iqdb_options_init(&o, H_DIM, IQDB_METRIC_L2);
        iqdb *db;
        int rc = iqdb_open(path, &o, &db);
        if (rc != IQDB_OK) {
            print_error("kill %d: reopen failed: %d %s\n", k, rc, iqdb_errmsg(NULL));
            fail();
        }
        for (int id = 0; id < IDS; id++) {
            float got[H_DIM], want[H_DIM], next[H_DIM];
            rc = get(db, (uint64_t)id, got);
            if (acked[id] == 0 && rc == IQDB_NOTFOUND) continue;
            h_vec(want, (uint64_t)id, acked[id]);
            h_vec(next, (uint64_t)id, acked[id] + 1); /* in flight when killed */
            if (rc != IQDB_OK || (memcmp(got, want, sizeof got) && memcmp(got, next, sizeof got))) {
                print_error("kill %d: id %d lost acknowledged version %d\n", k, id, acked[id]);
                fail();
            }
            if (!memcmp(got, next, sizeof got)) acked[id]++; /* it did land */
            latest[id] = acked[id];
        }
        assert_int_equal(iqdb_check(db), IQDB_OK);
        assert_int_equal(iqdb_close(db), IQDB_OK);
    }
    printf("kills: %d, acknowledged writes checked: %ld, lost: 0\n", kills, acks);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void) {
    iqdbt_simd_gate();
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_kill_loop)};
    return cmocka_run_group_tests_name("kill", tests, NULL, NULL);
}
#endif /* !_WIN32 */
