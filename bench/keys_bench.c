/*
 * keys_bench.c — iqdb-bench-keys: what naming records by byte keys costs search, against u64 ids.
 *
 * Two in-memory flat databases hold the same Fashion-MNIST train images (60,000 x 784, L2), in
 * the same order: one names image i by the u64 i, the other by the byte key
 * "fashion-mnist/train/<i, 6 digits>" (26 bytes, a typical document id). Each trial runs the same
 * --queries test images through iqdb_search (k = --k, one thread, one query at a time) and
 * reports queries per second, of wall-clock time and of the thread's CPU time (on a shared
 * machine the second is far less disturbed by other processes taking the CPU):
 *   u64        the u64 database
 *   key        the keyed database; hits carry key handles (what search itself costs)
 *   key+names  the keyed database, then iqdb_hit_key for every hit (what a caller that wants
 *              the keys pays in all)
 *   u64 again  a second u64 database built the same way: an A/A control, whose ratio to u64
 *              shows how much of a difference this machine's noise alone produces
 * The databases are built batch by batch in turn, so their memory is placed alike.
 * Trials are interleaved (rep 1 of all three, then rep 2, ...; each rep starts at another
 * variant), the table shows medians with min and max, and the ratios are medians of per-rep
 * ratios. Before timing, every query's hits are compared: the keyed database must return the
 * same records (key of image i where the u64 database returns i) at the same distances.
 * Memory from iqdb_stats (mem_rows, mem_keys, mem_total) shows what keys cost in bytes, and
 * that the u64 database spends nothing on them. The load average is printed before and after,
 * because the machines this runs on are shared. Target: key within 3 % of u64.
 *
 *   iqdb-bench-keys [--dir DIR] [--n N] [--queries Q] [--k K] [--reps R]
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "datasets.h"
#include "iqdb.h"

#define MAX_REPS 64

static double clock_s(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
static double now(void) { return clock_s(CLOCK_MONOTONIC); }

static void die(const char *what, int rc, iqdb *db) {
    fprintf(stderr, "%s: %s (%s)\n", what, iqdb_errstr(rc), iqdb_errmsg(db));
    exit(1);
}

static int key_of(size_t i, char *buf) { return sprintf(buf, "fashion-mnist/train/%06zu", i); }

static void load_avg(const char *when) {
    FILE *f = fopen("/proc/loadavg", "r");
    char line[128] = "?";
    if (f) {
        if (!fgets(line, sizeof line, f)) strcpy(line, "?\n");
        fclose(f);
    }
    printf("load average %s: %s", when, line);
}

static iqdb *open_db(size_t dim) {
    iqdb_options o;
    iqdb_options_init(&o, (uint32_t)dim, IQDB_METRIC_L2);
    o.threads = 1;
    iqdb *db;
    int rc = iqdb_open(NULL, &o, &db);
    if (rc) die("open", rc, NULL);
    return db;
}

/* Builds the three databases batch by batch in turn, so their vector chunks come from the
 * allocator interleaved and none gets better-placed memory than another (built one after the
 * other, a first run showed the keyed one 8 % faster per CPU-second, which search code cannot
 * explain). u2 is a second u64 database: the A/A control that shows the noise floor. *t_u, *t_k:
 * the upsert seconds of u and kd. */
static void build_all(const float *x, size_t n, size_t dim, iqdb **u, iqdb **u2, iqdb **kd,
                      double *t_u, double *t_k) {
    *u = open_db(dim);
    *u2 = open_db(dim);
    *kd = open_db(dim);
    *t_u = *t_k = 0;
    enum { B = 1000 };
    static char kb[B][32];
    const void *keys[B];
    size_t lens[B];
    iqdb_id ids[B];
    for (size_t i = 0; i < n; i += B) {
        size_t m = n - i < B ? n - i : B;
        for (size_t j = 0; j < m; j++) {
            ids[j] = i + j;
            lens[j] = (size_t)key_of(i + j, kb[j]);
            keys[j] = kb[j];
        }
        double t0 = now();
        int rc = iqdb_upsert_batch(*u, m, ids, x + i * dim, NULL);
        if (rc) die("upsert", rc, *u);
        double t1 = now();
        rc = iqdb_upsert_batch_key(*kd, m, keys, lens, x + i * dim, NULL);
        if (rc) die("upsert_key", rc, *kd);
        *t_u += t1 - t0;
        *t_k += now() - t1;
        rc = iqdb_upsert_batch(*u2, m, ids, x + i * dim, NULL);
        if (rc) die("upsert", rc, *u2);
    }
}

/* One trial: every query once; returns queries per second of wall time, and in *cpu_qps per
 * second of this thread's CPU time. `names`: resolve every hit's key. */
static double trial(iqdb *db, const float *q, size_t nq, size_t dim, size_t k, int names,
                    size_t *checksum, double *cpu_qps) {
    iqdb_hit hits[256];
    char buf[IQDB_MAX_ID_KEY_LEN];
    double c0 = clock_s(CLOCK_THREAD_CPUTIME_ID), t0 = now();
    for (size_t i = 0; i < nq; i++) {
        size_t n;
        int rc = iqdb_search(db, q + i * dim, k, NULL, hits, &n, NULL);
        if (rc) die("search", rc, db);
        for (size_t j = 0; names && j < n; j++) {
            size_t len;
            rc = iqdb_hit_key(db, &hits[j], buf, sizeof buf, &len);
            if (rc) die("hit_key", rc, db);
            *checksum += len + (unsigned char)buf[len - 1];
        }
        *checksum += n;
    }
    double wall = now() - t0;
    *cpu_qps = (double)nq / (clock_s(CLOCK_THREAD_CPUTIME_ID) - c0);
    return (double)nq / wall;
}

/* The keyed database returns the same records at the same distances. */
static void verify(iqdb *u, iqdb *kdb, const float *q, size_t nq, size_t dim, size_t k) {
    iqdb_hit a[256], b[256];
    char want[32], got[IQDB_MAX_ID_KEY_LEN];
    for (size_t i = 0; i < nq; i++) {
        size_t na, nb, len;
        if (iqdb_search(u, q + i * dim, k, NULL, a, &na, NULL) ||
            iqdb_search(kdb, q + i * dim, k, NULL, b, &nb, NULL) || na != nb)
            die("verify search", IQDB_ERROR, NULL);
        for (size_t j = 0; j < na; j++) {
            int wl = key_of((size_t)a[j].id, want);
            if (iqdb_hit_has_key(&a[j]) || !iqdb_hit_has_key(&b[j]) ||
                iqdb_hit_key(kdb, &b[j], got, sizeof got, &len) != IQDB_OK || len != (size_t)wl ||
                memcmp(got, want, len) || a[j].distance != b[j].distance) {
                fprintf(stderr, "verify: query %zu hit %zu differs\n", i, j);
                exit(1);
            }
        }
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double median(const double *v, int n) {
    double s[MAX_REPS];
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}
static double vmin(const double *v, int n) {
    double m = v[0];
    for (int i = 1; i < n; i++) m = v[i] < m ? v[i] : m;
    return m;
}
static double vmax(const double *v, int n) {
    double m = v[0];
    for (int i = 1; i < n; i++) m = v[i] > m ? v[i] : m;
    return m;
}

int main(int argc, char **argv) {
    const char *dir = NULL;
    size_t n = 60000, nq = 200, k = 10;
    int reps = 7;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--n") && i + 1 < argc)
            n = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--queries") && i + 1 < argc)
            nq = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--k") && i + 1 < argc)
            k = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--dir DIR] [--n N] [--queries Q] [--k K] [--reps R]\n",
                    argv[0]);
            return 2;
        }
    }
    if (reps < 1 || reps > MAX_REPS || k < 1 || k > 256 || nq < 1) {
        fprintf(stderr, "reps 1..%d, k 1..256, queries >= 1\n", MAX_REPS);
        return 2;
    }
    float *train, *test;
    size_t nt, ntest, dim, dim2;
    char err[256];
    if (ds_fmnist_load(dir, 0, &train, &nt, &dim, err, sizeof err) ||
        ds_fmnist_load(dir, 1, &test, &ntest, &dim2, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (n > nt) n = nt;
    if (nq > ntest) nq = ntest;
    printf("iqdb %s, Fashion-MNIST: %zu x %zu records, %zu queries, k %zu, %d reps, 1 thread\n",
           iqdb_version(), n, dim, nq, k, reps);
    load_avg("before");
    iqdb *u, *u2, *kd;
    double t_u, t_k;
    build_all(train, n, dim, &u, &u2, &kd, &t_u, &t_k);
    verify(u, kd, test, nq, dim, k);
    printf("hits verified: the keyed database returns the same records at the same distances\n");

    enum { NV = 4 };
    const char *names[NV] = {"u64", "u64 again", "key", "key+names"};
    iqdb *dbs[NV] = {u, u2, kd, kd};
    static double qps[NV][MAX_REPS], cpu[NV][MAX_REPS], rq[NV][MAX_REPS], rc_[NV][MAX_REPS];
    size_t checksum = 0;
    for (int r = 0; r < reps; r++) {
        for (int j = 0; j < NV; j++) {
            int v = (r + j) % NV; /* each rep starts at another variant */
            qps[v][r] = trial(dbs[v], test, nq, dim, k, v == 3, &checksum, &cpu[v][r]);
        }
        for (int v = 0; v < NV; v++) {
            rq[v][r] = qps[v][r] / qps[0][r];
            rc_[v][r] = cpu[v][r] / cpu[0][r];
        }
    }
    printf("\n%-10s %12s %10s %10s %14s %10s %10s\n", "variant", "QPS median", "min", "max",
           "CPU-QPS median", "min", "max");
    for (int v = 0; v < NV; v++)
        printf("%-10s %12.1f %10.1f %10.1f %14.1f %10.1f %10.1f\n", names[v], median(qps[v], reps),
               vmin(qps[v], reps), vmax(qps[v], reps), median(cpu[v], reps), vmin(cpu[v], reps),
               vmax(cpu[v], reps));
    printf(
        "\nratio to u64 (median of per-rep ratios)  wall-clock QPS             per CPU-second\n");
    for (int v = 1; v < NV; v++)
        printf("%-40s %.4f (%.3f .. %.3f)     %.4f (%.3f .. %.3f)\n", names[v], median(rq[v], reps),
               vmin(rq[v], reps), vmax(rq[v], reps), median(rc_[v], reps), vmin(rc_[v], reps),
               vmax(rc_[v], reps));

    iqdb_stats su = {.struct_size = sizeof su}, sk = {.struct_size = sizeof sk};
    iqdb_stats_get(u, &su);
    iqdb_stats_get(kd, &sk);
    printf("\n%-10s %12s %12s %12s %12s %10s\n", "database", "mem_total", "mem_vectors", "mem_rows",
           "mem_keys", "build s");
    printf("%-10s %12llu %12llu %12llu %12llu %10.2f\n", "u64", (unsigned long long)su.mem_total,
           (unsigned long long)su.mem_vectors, (unsigned long long)su.mem_rows,
           (unsigned long long)su.mem_keys, t_u);
    printf("%-10s %12llu %12llu %12llu %12llu %10.2f\n", "key", (unsigned long long)sk.mem_total,
           (unsigned long long)sk.mem_vectors, (unsigned long long)sk.mem_rows,
           (unsigned long long)sk.mem_keys, t_k);
    load_avg("after");
    printf("(checksum %zu)\n", checksum);
    iqdb_close(u);
    iqdb_close(u2);
    iqdb_close(kd);
    free(train);
    free(test);
    return 0;
}
