/*
 * durable_bench.c — iqdb-bench-durable: what durability costs, on real files.
 *
 * 1. Upserts per second for each sync policy, dim 128, one record per call, on a fresh durable
 *    database in a temporary directory: ALWAYS with 1, 2 and 8 writer threads (each call
 *    returns after its WAL record is fsynced; concurrent writers share fsyncs — group commit),
 *    PERIODIC (default period, 1000 ms) and NEVER, one writer each. Each trial runs for
 *    --seconds; the WAL fsyncs come from iqdb_stats (wal_syncs), so "fsyncs per write" shows
 *    the group commit at work (1.0 means one fsync per write). Automatic checkpoints are off
 *    (checkpoint_bytes = UINT64_MAX) so the figures are the WAL path alone. A baseline without
 *    iqdb runs in the same rotation: one thread appending 640 bytes (about one record) with
 *    pwrite and fsyncing after each, which is what the disk allows a single synchronous writer.
 * 2. Checkpoint and reopen of --n (1,000,000) x 128 float vectors, against reading the snapshot
 *    file once into memory: read(2) in 4 MiB chunks into one buffer, like cat, either a buffer
 *    whose pages were touched beforehand (the cheapest read there is) or freshly allocated
 *    memory (the read then pays the first-touch page faults that any loader keeping the data
 *    in memory pays, iqdb's vector arena included). Reopen = the
 *    whole iqdb_open: snapshot read, checksums, rows, the id map, the index (empty WAL). Warm:
 *    the file is in the page cache; cold: `echo 3 > /proc/sys/vm/drop_caches` (after sync)
 *    before the measurement — that needs root; without it cold figures are reported as
 *    unavailable. A checkpoint writes the whole snapshot to path.tmp, fsyncs it, renames it,
 *    fsyncs the directory and resets the WAL; each rep upserts one record first so there is
 *    something to checkpoint. Target: reopen <= 2x read-once.
 *
 * Trials are interleaved (rep 1 of every measurement, then rep 2, ...; the upsert trials start
 * each rep at another policy and each after sync() and a 200 ms pause) and the tables show
 * medians, with min and max; ratios are medians of per-rep ratios. The load average is printed
 * before and after, because the machines this runs on are shared.
 *
 *   iqdb-bench-durable [--dir DIR] [--reps R] [--seconds S] [--n N] [--dim D]
 *                      [--codec none|zstd|lz4] [--skip-upserts] [--skip-large] [--json PATH]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "iqdb.h"

#define MAX_REPS 64

static const char *base_dir = "/tmp";
static int reps = 5;
static double seconds = 2.0;
static size_t big_n = 1000000;
static uint32_t dim = 128;
static iqdb_compression codec = IQDB_COMPRESS_NONE;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what, int rc) {
    fprintf(stderr, "%s: %d %s: %s\n", what, rc, iqdb_errstr(rc), iqdb_errmsg(NULL));
    exit(1);
}

static uint64_t rng_next(uint64_t *s) {
    uint64_t x = (*s += 0x9e3779b97f4a7c15ull);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
static void fill(float *v, size_t n, uint64_t seed) {
    for (size_t i = 0; i < n; i++)
        v[i] = (float)((rng_next(&seed) >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
typedef struct summary {
    double med, min, max;
} summary;
static summary summarize(const double *v, int n) {
    double s[MAX_REPS];
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    summary r = {n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2, s[0], s[n - 1]};
    return r;
}

static void make_dir(char *out, size_t cap) {
    snprintf(out, cap, "%s/iqdb-bench-durable-XXXXXX", base_dir);
    if (!mkdtemp(out)) {
        perror("mkdtemp");
        exit(1);
    }
}
static void remove_db(const char *dir) {
    const char *suffix[] = {"/db", "/db.wal", "/db.tmp"};
    char p[600];
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", dir, suffix[i]);
        unlink(p);
    }
    rmdir(dir);
}

static double loadavg(void) {
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1) l = -1;
        fclose(f);
    }
    return l;
}

/* ============================================================================================ */
/* 1. upserts per second                                                                        */
/* ============================================================================================ */

typedef struct config {
    const char *name;
    iqdb_sync sync;
    int threads; /* 0: the raw pwrite + fsync baseline */
} config;

static const config configs[] = {
    {"baseline: pwrite 640 B + fsync, no iqdb", IQDB_SYNC_ALWAYS, 0},
    {"ALWAYS, 1 writer", IQDB_SYNC_ALWAYS, 1},
    {"ALWAYS, 2 writers", IQDB_SYNC_ALWAYS, 2},
    {"ALWAYS, 8 writers", IQDB_SYNC_ALWAYS, 8},
    {"PERIODIC (1000 ms)", IQDB_SYNC_PERIODIC, 1},
    {"NEVER", IQDB_SYNC_NEVER, 1},
};
enum { N_CONFIGS = sizeof configs / sizeof configs[0], POOL = 256 };

typedef struct writer {
    iqdb *db;
    int index;
    const float *pool;
    uint64_t ops;
    pthread_t thread;
} writer;

static atomic_int stop_writers;

static void *write_loop(void *arg) {
    writer *w = arg;
    uint64_t i = 0;
    while (!atomic_load_explicit(&stop_writers, memory_order_relaxed)) {
        uint64_t id = ((uint64_t)w->index << 40) | i;
        int rc = iqdb_upsert(w->db, id, w->pool + (i % POOL) * dim, NULL);
        if (rc) die("upsert", rc);
        i++;
    }
    w->ops = i;
    return NULL;
}

typedef struct trial {
    double ops_per_s, syncs_per_write;
} trial;

/* The disk alone: append 640 bytes, fsync, repeat, for `seconds`. */
static trial run_raw_fsync(void) {
    char dir[512], path[600];
    make_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/db", dir);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    if (fd < 0) {
        perror(path);
        exit(1);
    }
    uint8_t rec[640];
    memset(rec, 0x5a, sizeof rec);
    uint64_t n = 0;
    double t0 = now(), t;
    while ((t = now() - t0) < seconds) {
        if (pwrite(fd, rec, sizeof rec, (off_t)(n * sizeof rec)) != (ssize_t)sizeof rec ||
            fsync(fd) != 0) {
            perror("pwrite/fsync");
            exit(1);
        }
        n++;
    }
    close(fd);
    remove_db(dir);
    trial r = {(double)n / t, 1.0};
    return r;
}

static trial run_upserts(const config *c, const float *pool) {
    char dir[512], path[600];
    make_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/db", dir);
    iqdb_options o;
    iqdb_options_init(&o, dim, IQDB_METRIC_L2);
    o.sync = c->sync;
    o.threads = 1;
    o.checkpoint_bytes = UINT64_MAX;
    iqdb *db;
    int rc = iqdb_open(path, &o, &db);
    if (rc) die("open", rc);
    writer w[8];
    atomic_store(&stop_writers, 0);
    double t0 = now();
    for (int i = 0; i < c->threads; i++) {
        w[i].db = db;
        w[i].index = i;
        w[i].pool = pool + (size_t)i * POOL * dim;
        w[i].ops = 0;
        pthread_create(&w[i].thread, NULL, write_loop, &w[i]);
    }
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
    atomic_store(&stop_writers, 1);
    uint64_t ops = 0;
    for (int i = 0; i < c->threads; i++) {
        pthread_join(w[i].thread, NULL);
        ops += w[i].ops;
    }
    double dt = now() - t0;
    iqdb_stats s = {.struct_size = sizeof s};
    iqdb_stats_get(db, &s);
    if (s.last_lsn != ops) {
        fprintf(stderr, "bench: %llu upserts but last LSN %llu\n", (unsigned long long)ops,
                (unsigned long long)s.last_lsn);
        exit(1);
    }
    if (c->sync == IQDB_SYNC_ALWAYS && s.durable_lsn != s.last_lsn) {
        fprintf(stderr, "bench: ALWAYS returned before the fsync\n");
        exit(1);
    }
    trial t = {(double)ops / dt, ops ? (double)s.wal_syncs / (double)ops : 0};
    iqdb_close(db); /* checkpoints: not timed */
    remove_db(dir);
    return t;
}

/* ============================================================================================ */
/* 2. checkpoint, reopen, read once                                                             */
/* ============================================================================================ */

static int drop_caches(void) {
    sync();
    int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
    if (fd < 0) return 0;
    int ok = write(fd, "3\n", 2) == 2;
    close(fd);
    return ok;
}

static double read_once(const char *path, uint8_t *buf, size_t cap, size_t *got) {
    double t0 = now();
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        perror(path);
        exit(1);
    }
    size_t n = 0;
    for (;;) {
        size_t want = cap - n < (4u << 20) ? cap - n : (4u << 20);
        if (!want) break;
        ssize_t r = read(fd, buf + n, want);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        n += (size_t)r;
    }
    close(fd);
    *got = n;
    return now() - t0;
}

/* The same read into memory allocated just before (its page faults are part of the time). */
static double read_fresh(const char *path, size_t cap) {
    double t0 = now();
    uint8_t *buf = malloc(cap);
    size_t got;
    read_once(path, buf, cap, &got);
    double t = now() - t0;
    free(buf);
    return t;
}

static iqdb_options big_options(void) {
    iqdb_options o;
    iqdb_options_init(&o, dim, IQDB_METRIC_L2);
    o.sync = IQDB_SYNC_NEVER; /* building: the first checkpoint makes it durable */
    o.threads = 1;
    o.compression = codec;
    o.checkpoint_bytes = UINT64_MAX;
    return o;
}

static void build_big(const char *path) {
    iqdb_options o = big_options();
    iqdb *db;
    int rc = iqdb_open(path, &o, &db);
    if (rc) die("open", rc);
    enum { BATCH = 10000 };
    float *v = malloc((size_t)BATCH * dim * sizeof *v);
    uint64_t *ids = malloc(BATCH * sizeof *ids);
    double t0 = now();
    for (size_t done = 0; done < big_n; done += BATCH) {
        size_t n = big_n - done < BATCH ? big_n - done : BATCH;
        fill(v, n * dim, 1000 + done);
        for (size_t i = 0; i < n; i++) ids[i] = done + i;
        rc = iqdb_upsert_batch(db, n, ids, v, NULL);
        if (rc) die("upsert_batch", rc);
    }
    double t1 = now();
    rc = iqdb_close(db); /* the first checkpoint */
    if (rc) die("close", rc);
    printf("built %zu x %u: %.1f s of upserts (NEVER), %.1f s for the closing checkpoint\n", big_n,
           dim, t1 - t0, now() - t1);
    free(v);
    free(ids);
}

static double time_checkpoint(const char *path) {
    iqdb_options o = big_options();
    iqdb *db;
    int rc = iqdb_open(path, &o, &db);
    if (rc) die("open", rc);
    float v[1024];
    fill(v, dim, 7);
    rc = iqdb_upsert(db, 0, v, NULL); /* something new to checkpoint */
    if (rc) die("upsert", rc);
    double t0 = now();
    rc = iqdb_checkpoint(db);
    double t = now() - t0;
    if (rc) die("checkpoint", rc);
    iqdb_close(db);
    return t;
}

static double time_reopen(const char *path) {
    iqdb_options o = big_options();
    iqdb *db;
    double t0 = now();
    int rc = iqdb_open(path, &o, &db);
    double t = now() - t0;
    if (rc) die("reopen", rc);
    uint64_t n = 0;
    iqdb_count(db, &n);
    if (n != big_n) {
        fprintf(stderr, "reopen: %llu records, expected %zu\n", (unsigned long long)n, big_n);
        exit(1);
    }
    iqdb_close(db); /* nothing new: no checkpoint */
    return t;
}

/* ============================================================================================ */

static void usage(const char *argv0) {
    fprintf(stderr,
            "usage: %s [--dir DIR] [--reps R] [--seconds S] [--n N] [--dim D] "
            "[--codec none|zstd|lz4] [--skip-upserts] [--skip-large] [--json PATH]\n",
            argv0);
    exit(2);
}

int main(int argc, char **argv) {
    const char *json = NULL;
    int skip_upserts = 0, skip_large = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--skip-upserts"))
            skip_upserts = 1;
        else if (!strcmp(a, "--skip-large"))
            skip_large = 1;
        else if (!v)
            usage(argv[0]);
        else if (!strcmp(a, "--dir"))
            base_dir = v, i++;
        else if (!strcmp(a, "--reps"))
            reps = atoi(v), i++;
        else if (!strcmp(a, "--seconds"))
            seconds = atof(v), i++;
        else if (!strcmp(a, "--n"))
            big_n = (size_t)atoll(v), i++;
        else if (!strcmp(a, "--dim"))
            dim = (uint32_t)atoi(v), i++;
        else if (!strcmp(a, "--json"))
            json = v, i++;
        else if (!strcmp(a, "--codec")) {
            codec = !strcmp(v, "zstd")  ? IQDB_COMPRESS_ZSTD
                    : !strcmp(v, "lz4") ? IQDB_COMPRESS_LZ4
                                        : IQDB_COMPRESS_NONE;
            i++;
        } else
            usage(argv[0]);
    }
    if (reps < 1 || reps > MAX_REPS || seconds <= 0 || dim < 1 || dim > 1024 || big_n < 1)
        usage(argv[0]);
    printf("iqdb %s, dim %u, %d reps (interleaved; medians), directory %s, %ld CPUs, load "
           "average %.2f\n",
           iqdb_version(), dim, reps, base_dir, sysconf(_SC_NPROCESSORS_ONLN), loadavg());

    double ops[N_CONFIGS][MAX_REPS], spw[N_CONFIGS][MAX_REPS];
    if (!skip_upserts) {
        float *pool = malloc((size_t)8 * POOL * dim * sizeof *pool);
        fill(pool, (size_t)8 * POOL * dim, 42);
        /* Each rep starts the rotation at another config, and every trial starts after sync(),
         * so no trial inherits the previous one's writeback (a NEVER trial leaves hundreds of
         * MiB behind) always in the same place. */
        for (int r = 0; r < reps; r++)
            for (int k = 0; k < N_CONFIGS; k++) {
                int c = (k + r) % N_CONFIGS;
                sync();
                struct timespec settle = {0, 200 * 1000 * 1000};
                nanosleep(&settle, NULL);
                trial t = configs[c].threads ? run_upserts(&configs[c], pool) : run_raw_fsync();
                ops[c][r] = t.ops_per_s;
                spw[c][r] = t.syncs_per_write;
            }
        free(pool);
        printf("\nUpserts per second, one record per call, %.1f s per trial\n\n", seconds);
        printf("| policy | upserts/s (median) | min .. max | WAL fsyncs per write |\n");
        printf("|---|---:|---:|---:|\n");
        for (int c = 0; c < N_CONFIGS; c++) {
            summary s = summarize(ops[c], reps), f = summarize(spw[c], reps);
            printf("| %s | %.0f | %.0f .. %.0f | %.3f |\n", configs[c].name, s.med, s.min, s.max,
                   f.med);
        }
    }

    double ck[MAX_REPS], rw[MAX_REPS], rf[MAX_REPS], ow[MAX_REPS], rc_[MAX_REPS], oc[MAX_REPS];
    double ratio_w[MAX_REPS], ratio_wf[MAX_REPS], ratio_c[MAX_REPS], ratio_ck[MAX_REPS];
    int cold = 0;
    size_t file_bytes = 0;
    if (!skip_large) {
        char dir[512], path[600];
        make_dir(dir, sizeof dir);
        snprintf(path, sizeof path, "%s/db", dir);
        build_big(path);
        struct stat st;
        stat(path, &st);
        file_bytes = (size_t)st.st_size;
        /* each checkpoint replaces one record, which moves it to another slot: the file can
         * grow by a few bytes per rep, so the buffer has room to spare */
        size_t cap = file_bytes + (1u << 20);
        uint8_t *buf = malloc(cap);
        memset(buf, 0, cap); /* fault the pages in before timing */
        cold = drop_caches();
        for (int r = 0; r < reps; r++) {
            size_t got;
            ck[r] = time_checkpoint(path);
            stat(path, &st);
            rw[r] = read_once(path, buf, cap, &got); /* warm */
            if (got != (size_t)st.st_size) {
                fprintf(stderr, "short read: %zu of %lld bytes\n", got, (long long)st.st_size);
                return 1;
            }
            file_bytes = got;
            rf[r] = read_fresh(path, cap);
            ow[r] = time_reopen(path);
            ratio_w[r] = ow[r] / rw[r];
            ratio_wf[r] = ow[r] / rf[r];
            ratio_ck[r] = ck[r] / rw[r];
            if (cold) {
                drop_caches();
                rc_[r] = read_once(path, buf, cap, &got);
                drop_caches();
                oc[r] = time_reopen(path);
                ratio_c[r] = oc[r] / rc_[r];
            }
        }
        free(buf);
        remove_db(dir);
        const char *cname = codec == IQDB_COMPRESS_ZSTD  ? "zstd"
                            : codec == IQDB_COMPRESS_LZ4 ? "lz4"
                                                         : "none";
        printf("\n%zu x %u vectors, snapshot %.1f MiB (codec %s)\n\n", big_n, dim,
               (double)file_bytes / 1048576.0, cname);
        printf("| measurement | median s | min .. max s | MiB/s | vs read-once (median of "
               "ratios) |\n");
        printf("|---|---:|---:|---:|---:|\n");
        struct {
            const char *name;
            double *v, *ratio;
        } rows[] = {{"read once, warm, into touched memory", rw, NULL},
                    {"read once, warm, into fresh memory", rf, NULL},
                    {"reopen (iqdb_open), warm: vs touched", ow, ratio_w},
                    {"reopen (iqdb_open), warm: vs fresh", ow, ratio_wf},
                    {"checkpoint (write, fsync, rename, dir fsync)", ck, ratio_ck},
                    {"read once, cold (caches dropped), touched memory", rc_, NULL},
                    {"reopen (iqdb_open), cold", oc, ratio_c}};
        for (int i = 0; i < 7; i++) {
            if (i >= 5 && !cold) {
                printf("| %s | not measured: dropping the page cache needs root | | | |\n",
                       rows[i].name);
                continue;
            }
            summary s = summarize(rows[i].v, reps);
            printf("| %s | %.3f | %.3f .. %.3f | %.0f |", rows[i].name, s.med, s.min, s.max,
                   (double)file_bytes / 1048576.0 / s.med);
            if (rows[i].ratio)
                printf(" %.2fx |\n", summarize(rows[i].ratio, reps).med);
            else
                printf(" |\n");
        }
    }
    printf("\nload average at the end: %.2f\n", loadavg());

    if (json) {
        FILE *f = fopen(json, "w");
        if (!f) {
            perror(json);
            return 1;
        }
        fprintf(f, "{\n  \"dim\": %u, \"reps\": %d, \"seconds\": %.2f,\n  \"upserts\": [", dim,
                reps, seconds);
        for (int c = 0; !skip_upserts && c < N_CONFIGS; c++)
            fprintf(f,
                    "%s\n    {\"policy\": \"%s\", \"ops_per_s\": %.1f, \"fsyncs_per_write\": %.4f}",
                    c ? "," : "", configs[c].name, summarize(ops[c], reps).med,
                    summarize(spw[c], reps).med);
        fprintf(f, "\n  ]");
        if (!skip_large) {
            fprintf(f,
                    ",\n  \"large\": {\"n\": %zu, \"file_bytes\": %zu, \"read_warm_s\": %.4f, "
                    "\"read_warm_fresh_s\": %.4f, \"reopen_warm_s\": %.4f, \"checkpoint_s\": "
                    "%.4f, \"reopen_vs_read_warm\": %.3f, \"reopen_vs_read_warm_fresh\": %.3f",
                    big_n, file_bytes, summarize(rw, reps).med, summarize(rf, reps).med,
                    summarize(ow, reps).med, summarize(ck, reps).med, summarize(ratio_w, reps).med,
                    summarize(ratio_wf, reps).med);
            if (cold)
                fprintf(f,
                        ", \"read_cold_s\": %.4f, \"reopen_cold_s\": %.4f, "
                        "\"reopen_vs_read_cold\": %.3f",
                        summarize(rc_, reps).med, summarize(oc, reps).med,
                        summarize(ratio_c, reps).med);
            fprintf(f, "}");
        }
        fprintf(f, "\n}\n");
        fclose(f);
    }
    return 0;
}
