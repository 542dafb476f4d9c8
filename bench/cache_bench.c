/*
 * cache_bench.c — iqdb-bench-cache: what the result cache buys on Fashion-MNIST.
 *
 *   1. the cost of a cache hit against the uncached search it replaces (flat; HNSW too when this
 *      build has it), same queries, same handle options, interleaved repetitions, medians;
 *   2. hit rate and time per query on a repeated-query workload: queries drawn with a Zipf law
 *      (exponent s) from a pool of test images, per policy and capacity, against a cache-off
 *      handle on the same stream;
 *   3. the same stream with a fraction of writes mixed in (replacing random base records):
 *      hit rate and entries invalidated per write (precise invalidation at work);
 *   4. the cost of a miss that evicts from a full cache, per policy, at 1,024 and 65,536
 *      entries.
 *
 *   iqdb-bench-cache [--base N] [--pool P] [--draws D] [--zipf S] [--k K] [--write-pct W]
 *                    [--reps R] [--threads T]
 * Needs Debian's dataset-fashion-mnist. Public API only.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "datasets.h"
#include "iqdb.h"

#define CHECK(x)                                                                              \
    do {                                                                                      \
        int rc_ = (x);                                                                        \
        if (rc_ != IQDB_OK) {                                                                 \
            fprintf(stderr, "%s:%d: %s: %s (%s)\n", __FILE__, __LINE__, #x, iqdb_errstr(rc_), \
                    iqdb_errmsg(NULL));                                                       \
            exit(1);                                                                          \
        }                                                                                     \
    } while (0)

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static uint64_t rng_state = 12345;
static uint64_t rnd(void) {
    uint64_t x = (rng_state += 0x9e3779b97f4a7c15ull);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

typedef struct cfg {
    size_t base, pool, draws, k;
    double zipf, write_pct;
    int reps;
    uint32_t threads;
} cfg;

static iqdb *open_db(const cfg *c, iqdb_index_kind kind, uint32_t entries, iqdb_cache_policy pol,
                     const float *base, int *unsupported) {
    iqdb_options o;
    iqdb_options_init(&o, 784, IQDB_METRIC_L2);
    o.index = kind;
    o.threads = c->threads;
    o.cache_entries = entries;
    o.cache_policy = pol;
    iqdb *db = NULL;
    int rc = iqdb_open(NULL, &o, &db);
    if (rc == IQDB_UNSUPPORTED && unsupported) {
        *unsupported = 1;
        return NULL;
    }
    CHECK(rc);
    iqdb_id *ids = malloc(c->base * sizeof *ids);
    for (size_t i = 0; i < c->base; i++) ids[i] = i;
    CHECK(iqdb_upsert_batch(db, c->base, ids, base, NULL));
    free(ids);
    return db;
}

/* Part 1: seconds per search over `nq` queries, `rounds` times each. */
static double time_searches(iqdb *db, const float *qs, size_t nq, size_t k, int rounds) {
    iqdb_hit hits[100];
    size_t n;
    double t0 = now_s();
    for (int r = 0; r < rounds; r++)
        for (size_t i = 0; i < nq; i++)
            CHECK(iqdb_search(db, qs + i * 784, k, NULL, hits, &n, NULL));
    return (now_s() - t0) / (double)(rounds * nq);
}

static void hit_cost(const cfg *c, const char *name, iqdb_index_kind kind, const float *base,
                     const float *test) {
    int unsup = 0;
    iqdb *off = open_db(c, kind, 0, 0, base, &unsup);
    if (unsup) {
        printf("%-5s  not available in this build (IQDB_UNSUPPORTED): skipped\n", name);
        return;
    }
    iqdb *on = open_db(c, kind, 1024, IQDB_CACHE_LRU, base, NULL);
    enum { NQ = 50 };
    double *t_off = malloc(c->reps * sizeof *t_off), *t_hit = malloc(c->reps * sizeof *t_hit);
    time_searches(on, test, NQ, c->k, 1); /* fill the cache */
    for (int r = 0; r < c->reps; r++) {   /* interleaved */
        t_off[r] = time_searches(off, test, NQ, c->k, 1);
        t_hit[r] = time_searches(on, test, NQ, c->k, 200);
    }
    iqdb_stats s = {.struct_size = sizeof s};
    iqdb_stats_get(on, &s);
    double mo = median(t_off, c->reps), mh = median(t_hit, c->reps);
    printf("%-5s  uncached search %9.1f us   cache hit %7.3f us   ratio %8.0fx   (hits %llu, "
           "misses %llu)\n",
           name, mo * 1e6, mh * 1e6, mo / mh, (unsigned long long)s.cache_hits,
           (unsigned long long)s.cache_misses);
    free(t_off);
    free(t_hit);
    iqdb_close(on);
    iqdb_close(off);
}

/* Part 2 and 3: a Zipf stream of query indexes into the pool. */
static size_t *zipf_stream(const cfg *c) {
    double *cdf = malloc(c->pool * sizeof *cdf), sum = 0;
    for (size_t i = 0; i < c->pool; i++) cdf[i] = (sum += 1.0 / pow((double)(i + 1), c->zipf));
    size_t *out = malloc(c->draws * sizeof *out);
    for (size_t d = 0; d < c->draws; d++) {
        double u = (double)(rnd() >> 11) / 9007199254740992.0 * sum;
        size_t lo = 0, hi = c->pool - 1;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (cdf[mid] < u)
                lo = mid + 1;
            else
                hi = mid;
        }
        out[d] = lo;
    }
    free(cdf);
    return out;
}

typedef struct run_out {
    double secs, hit_rate, inval_per_write;
    size_t writes;
} run_out;

static run_out run_stream(const cfg *c, iqdb *db, const size_t *stream, const float *test,
                          const float *base, double write_pct) {
    iqdb_hit hits[100];
    size_t n, writes = 0;
    iqdb_stats s0 = {.struct_size = sizeof s0}, s1 = {.struct_size = sizeof s1};
    iqdb_stats_get(db, &s0);
    uint64_t wr = 777;
    double t0 = now_s();
    for (size_t d = 0; d < c->draws; d++) {
        wr = wr * 6364136223846793005ull + 1442695040888963407ull;
        if (write_pct > 0 && (double)(wr >> 11) / 9007199254740992.0 * 100.0 < write_pct) {
            /* replace a random base record with another base image */
            size_t id = (size_t)((wr >> 20) % c->base), src = (size_t)((wr >> 40) % c->base);
            CHECK(iqdb_upsert(db, id, base + src * 784, NULL));
            writes++;
        }
        CHECK(iqdb_search(db, test + stream[d] * 784, c->k, NULL, hits, &n, NULL));
    }
    run_out r;
    r.secs = now_s() - t0;
    iqdb_stats_get(db, &s1);
    uint64_t h = s1.cache_hits - s0.cache_hits, m = s1.cache_misses - s0.cache_misses;
    r.hit_rate = h + m ? (double)h / (double)(h + m) : 0.0;
    r.writes = writes;
    r.inval_per_write =
        writes ? (double)(s1.cache_invalidations - s0.cache_invalidations) / (double)writes : 0.0;
    return r;
}

static const char *pol_name(iqdb_cache_policy p) {
    switch (p) {
    case IQDB_CACHE_DEFAULT:
    case IQDB_CACHE_LRU: return "LRU";
    case IQDB_CACHE_LFU: return "LFU";
    case IQDB_CACHE_FIFO: return "FIFO";
    case IQDB_CACHE_ARC: return "ARC";
    }
    return "?";
}

/* 4. What a miss costs when the cache is full and must evict, per policy and capacity: a
 * 16-row, 4-dimension database (the search itself costs about a microsecond), the cache filled
 * with distinct queries, then 20,000 more distinct queries, each a miss that evicts; against
 * the same searches on a cache-off handle. */
static void evict_cost(void) {
    printf("\n4. a miss that evicts from a full cache (16 rows x 4 dimensions, 20,000 misses)\n");
    const iqdb_cache_policy pols[] = {IQDB_CACHE_LRU, IQDB_CACHE_LFU, IQDB_CACHE_FIFO,
                                      IQDB_CACHE_ARC};
    const uint32_t caps[] = {1024, 65536};
    for (size_t ci = 0; ci < 2; ci++)
        for (size_t pi = 0; pi < 4; pi++) {
            double us[2];
            for (int with = 1; with >= 0; with--) {
                iqdb_options o;
                iqdb_options_init(&o, 4, IQDB_METRIC_L2);
                o.cache_entries = with ? caps[ci] : 0;
                o.cache_policy = pols[pi];
                o.threads = 1;
                iqdb *db;
                CHECK(iqdb_open(NULL, &o, &db));
                for (int i = 0; i < 16; i++) {
                    float v[4] = {(float)i, 0, 0, 0};
                    CHECK(iqdb_upsert(db, (iqdb_id)i, v, NULL));
                }
                iqdb_hit h[4];
                size_t n;
                for (uint32_t i = 0; with && i < caps[ci]; i++) {
                    float q[4] = {(float)i * 0.001f, 1, 0, 0};
                    CHECK(iqdb_search(db, q, 4, NULL, h, &n, NULL));
                }
                enum { M = 20000 };
                double t0 = now_s();
                for (uint32_t i = 0; i < M; i++) {
                    float q[4] = {(float)(caps[ci] + i) * 0.001f, 1, 0, 0};
                    CHECK(iqdb_search(db, q, 4, NULL, h, &n, NULL));
                }
                us[with] = (now_s() - t0) / M * 1e6;
                iqdb_close(db);
            }
            printf("   %-4s %6u entries  %8.2f us per missing search (no cache %.2f us)\n",
                   pol_name(pols[pi]), caps[ci], us[1], us[0]);
        }
}

int main(int argc, char **argv) {
    cfg c = {10000, 1000, 4000, 10, 1.0, 1.0, 5, 1};
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--base"))
            c.base = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--pool"))
            c.pool = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--draws"))
            c.draws = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--zipf"))
            c.zipf = atof(v);
        else if (!strcmp(a, "--k"))
            c.k = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--write-pct"))
            c.write_pct = atof(v);
        else if (!strcmp(a, "--reps"))
            c.reps = atoi(v);
        else if (!strcmp(a, "--threads"))
            c.threads = (uint32_t)atoi(v);
        else {
            fprintf(stderr, "unknown option %s\n", a);
            return 2;
        }
    }
    if (c.k > 100 || c.k == 0 || c.pool == 0 || c.pool > 10000 || c.base == 0 || c.base > 60000 ||
        c.reps < 1) {
        fprintf(stderr, "out of range: k 1..100, pool 1..10000, base 1..60000, reps >= 1\n");
        return 2;
    }
    char err[256];
    float *train = NULL, *test = NULL;
    size_t ntr, nte, dim;
    if (ds_fmnist_load(NULL, 0, &train, &ntr, &dim, err, sizeof err) ||
        ds_fmnist_load(NULL, 1, &test, &nte, &dim, err, sizeof err)) {
        fprintf(stderr, "%s (needs Debian's dataset-fashion-mnist)\n", err);
        return 1;
    }
    printf("Fashion-MNIST: %zu base vectors x 784, L2, k = %zu, %u search thread(s)\n\n", c.base,
           c.k, c.threads);
    printf("1. cost of a cache hit (medians of %d interleaved reps)\n", c.reps);
    hit_cost(&c, "flat", IQDB_INDEX_FLAT, train, test);
    hit_cost(&c, "hnsw", IQDB_INDEX_HNSW, train, test);

    size_t *stream = zipf_stream(&c);
    printf("\n2. Zipf(s = %.2f) stream of %zu queries over a pool of %zu test images\n", c.zipf,
           c.draws, c.pool);
    iqdb *off = open_db(&c, IQDB_INDEX_FLAT, 0, 0, train, NULL);
    printf("   (each cached run is paired with a cache-off run of the same stream just before it;\n"
           "    the speed-up is the pair's ratio, so machine load hits both sides alike)\n");
    const struct {
        iqdb_cache_policy pol;
        uint32_t cap;
    } runs[] = {{IQDB_CACHE_LRU, 64},   {IQDB_CACHE_LRU, 256}, {IQDB_CACHE_LFU, 256},
                {IQDB_CACHE_FIFO, 256}, {IQDB_CACHE_ARC, 256}, {IQDB_CACHE_LRU, 1024}};
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        iqdb *db = open_db(&c, IQDB_INDEX_FLAT, runs[i].cap, runs[i].pol, train, NULL);
        run_out b = run_stream(&c, off, stream, test, train, 0);
        run_out r = run_stream(&c, db, stream, test, train, 0);
        printf("   %-4s %5u entries  %8.3f ms/query (no cache %.3f)  hit rate %5.1f%%  speed-up "
               "%5.2fx\n",
               pol_name(runs[i].pol), runs[i].cap, r.secs * 1e3 / (double)c.draws,
               b.secs * 1e3 / (double)c.draws, r.hit_rate * 100, b.secs / r.secs);
        iqdb_close(db);
    }
    if (c.write_pct > 0) {
        printf("\n3. the same stream with %.1f%% writes (a random base record replaced before a "
               "search)\n",
               c.write_pct);
        run_out w0 = run_stream(&c, off, stream, test, train, c.write_pct);
        iqdb *db = open_db(&c, IQDB_INDEX_FLAT, 256, IQDB_CACHE_LRU, train, NULL);
        run_out w = run_stream(&c, db, stream, test, train, c.write_pct);
        iqdb_stats s = {.struct_size = sizeof s};
        iqdb_stats_get(db, &s);
        printf("   LRU  256 entries  %8.3f ms/query (no cache %.3f)  hit rate %5.1f%%  %zu writes, "
               "%.2f entries invalidated per write (of %llu cached)\n",
               w.secs * 1e3 / (double)c.draws, w0.secs * 1e3 / (double)c.draws, w.hit_rate * 100,
               w.writes, w.inval_per_write, (unsigned long long)s.cache_len);
        iqdb_close(db);
    }
    iqdb_close(off);
    free(stream);
    free(train);
    free(test);
    evict_cost();
    return 0;
}
