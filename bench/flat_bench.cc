// flat_bench.cc — iqdb-bench-flat: exact (flat) search on Fashion-MNIST, side by side with the
// machine's memory bandwidth and with faiss IndexFlatL2, all in one process run.
//
// Dataset: Debian's dataset-fashion-mnist (60,000 base x 784, 10,000 queries, pixels as float32
// 0..255), L2, k = 10. Every measurement is repeated --reps times; the repetitions are
// interleaved (rep 1 of everything, then rep 2 of everything, ...), and the table shows medians
// (ratios are the median of the per-rep ratios, so both sides of a ratio come from the same rep).
//
// Measurements:
//   bw-rows   memory read bandwidth, timing iqdb's own l2sq rows kernel (the level the database
//             uses) over a --bw-mib buffer of 784-float rows, in groups of 64 rows as the flat
//             index scans; 1 and 2 threads (each thread its own half of the buffer)
//   bw-sum    the same buffer read by a portable C++ loop (8 uint64 accumulators, no SIMD
//             intrinsics, baseline compiler flags); 1 and 2 threads
//   bound     single-query scan bound = best 1-thread bandwidth / (60000 * 784 * 4 bytes)
//   paired    one query against one read pass, alternating 100 times, median of the time ratios:
//             the pass over a copy of the base (the faster of the two loops above), and the sum
//             loop over the database's own rows (arena_read.c: the same bytes in the same pages)
//   iqdb      iqdb_search one query at a time on one thread; iqdb_search_batch over all queries
//             with options.threads = 1 and 2
//   faiss     IndexFlatL2: search(n = 1) in a loop over --faiss-single-queries queries, and one
//             search over all queries with 1 and 2 threads (OpenMP and OpenBLAS threads both set)
//   recall    recall@10 against the exact ground truth; a hit at the same (exact, integer) distance
//             as the true 10th neighbour counts as correct; iqdb batch results must equal iqdb
//             single results bit for bit
//
//   iqdb-bench-flat [--queries N] [--base N] [--reps R] [--no-faiss] [--json PATH]
//   [--faiss-single-queries N]
//                   [--bw-mib MiB] [--data DIR] [--gt PATH]
// IQDB_SIMD=scalar|avx2|avx512 forces iqdb's kernel level (iqdb itself reads it).
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

// iqdb.h zero-initialises its structs with {0}, which g++ -Wextra reports as missing field
// initializers (C does not); keep that header noise out of the bench build.
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif
#include "bench_util.h"
#include "datasets.h"
#include "iqdb.h"
extern "C" {
#include "dist/dist.h"
size_t iqdb_bench_arena_span(iqdb *db, size_t i, const void **p); // arena_read.c
}
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#ifdef IQDB_BENCH_HAVE_FAISS
#include <faiss/IndexFlat.h>
#endif

namespace {

using namespace iqdb_bench;

constexpr size_t kK = 10;
constexpr size_t kGroup = 64; // rows per rows() call, as src/index/flat.c
const char *const kFaissLabel = "Debian faiss 1.7.3 (generic build, BLAS batch)";
const char *const kDefaultGt = "/work/shared/data/fashion-mnist-784-euclidean.gt100.ivecs";

struct Args {
    size_t queries = 10000;
    size_t base = 0; // 0: every base vector; else the first `base`, with exact ground truth
    int reps = 3;
    bool faiss = true;
    std::string json;
    size_t faiss_single = 200;
    size_t bw_mib = 1024;
    std::string data_dir = DS_FMNIST_DIR;
    std::string gt = kDefaultGt;
};

void usage(const char *argv0) {
    std::printf(
        "usage: %s [options]\n"
        "  --queries N               queries to use, the first N of the test set (default 10000)\n"
        "  --base N                  use only the first N base vectors (a second scale); the\n"
        "                            exact ground truth is then computed here\n"
        "  --reps R                  interleaved repetitions, medians reported (default 3)\n"
        "  --no-faiss                skip faiss\n"
        "  --faiss-single-queries N  queries for faiss' one-at-a-time search (default 200)\n"
        "  --bw-mib M                bandwidth buffer size in MiB (default 1024)\n"
        "  --json PATH               also write the figures as JSON\n"
        "  --data DIR                Fashion-MNIST directory (default %s)\n"
        "  --gt PATH                 ground truth .ivecs (default %s)\n"
        "environment: IQDB_SIMD=scalar|avx2|avx512 forces iqdb's kernel level\n",
        argv0, DS_FMNIST_DIR, kDefaultGt);
}

Args parse_args(int argc, char **argv) {
    Args a;
    for (int i = 1; i < argc; i++) {
        std::string o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : nullptr;
        if (o == "--queries") {
            a.queries = parse_size("--queries", v, 1), i++;
        } else if (o == "--base") {
            a.base = parse_size("--base", v, 10), i++;
        } else if (o == "--reps") {
            a.reps = static_cast<int>(std::min<size_t>(parse_size("--reps", v, 1), 1000)), i++;
        } else if (o == "--no-faiss") {
            a.faiss = false;
        } else if (o == "--faiss-single-queries") {
            a.faiss_single = parse_size(o.c_str(), v, 1), i++;
        } else if (o == "--bw-mib") {
            a.bw_mib = parse_size("--bw-mib", v, 64), i++;
        } else if (o == "--json" && v) {
            a.json = v, i++;
        } else if (o == "--data" && v) {
            a.data_dir = v, i++;
        } else if (o == "--gt" && v) {
            a.gt = v, i++;
        } else if (o == "-h" || o == "--help") {
            usage(argv[0]);
            std::exit(0);
        } else {
            usage(argv[0]);
            die("unknown or incomplete option " + o);
        }
    }
    return a;
}

// ---- memory bandwidth ------------------------------------------------------------------------

// Runs fn(t) on `nt` threads released together; returns the wall time until all have finished.
double run_threads(unsigned nt, const std::function<void(unsigned)> &fn) {
    std::atomic<unsigned> ready{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> th;
    for (unsigned t = 0; t < nt; t++)
        th.emplace_back([&, t] {
            ready.fetch_add(1);
            while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
            fn(t);
        });
    while (ready.load() < nt) std::this_thread::yield();
    double t0 = now();
    go.store(true, std::memory_order_release);
    for (auto &x : th) x.join();
    return now() - t0;
}

struct BwBuffer {
    float *p = nullptr;
    size_t rows = 0, dim = 0;
    size_t bytes() const { return rows * dim * sizeof(float); }
};

constexpr int kBwPasses = 3;

// GB/s reading the buffer with iqdb's rows kernel; each thread streams its half `kBwPasses` times.
double bw_rows(const BwBuffer &b, iqdb__rows_fn rows, const float *q, unsigned nt) {
    std::vector<float> sinks(nt * 16, 0.0f);
    double t = run_threads(nt, [&](unsigned ti) {
        size_t lo = b.rows * ti / nt, hi = b.rows * (ti + 1) / nt;
        const float *ptrs[kGroup];
        float out[kGroup], s = 0.0f;
        for (int pass = 0; pass < kBwPasses; pass++)
            for (size_t base = lo; base < hi; base += kGroup) {
                size_t m = std::min(kGroup, hi - base);
                for (size_t i = 0; i < m; i++) ptrs[i] = b.p + (base + i) * b.dim;
                rows(q, ptrs, m, b.dim, out);
                s += out[0];
            }
        sinks[ti * 16] = s;
    });
    volatile float sink = sinks[0];
    (void)sink;
    return kBwPasses * static_cast<double>(b.bytes()) / t / 1e9;
}

// One read pass over the whole buffer with the rows kernel, on the calling thread.
void scanbuf_read_once(const BwBuffer &b, iqdb__rows_fn rows, const float *q) {
    const float *ptrs[kGroup];
    float out[kGroup], s = 0.0f;
    for (size_t base = 0; base < b.rows; base += kGroup) {
        size_t m = std::min(kGroup, b.rows - base);
        for (size_t i = 0; i < m; i++) ptrs[i] = b.p + (base + i) * b.dim;
        rows(q, ptrs, m, b.dim, out);
        s += out[0];
    }
    volatile float sink = s;
    (void)sink;
}

// One read pass with the portable loop, on the calling thread.
// One pass of the portable loop over [p, p + bytes): 8 independent uint64 sums of 8-byte words.
uint64_t sum_words(const void *p, size_t bytes) {
    const unsigned char *b = static_cast<const unsigned char *>(p);
    const size_t words = bytes / 8;
    uint64_t acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (size_t i = 0; i + 8 <= words; i += 8)
        for (int j = 0; j < 8; j++) {
            uint64_t w;
            std::memcpy(&w, b + (i + j) * 8, 8);
            acc[j] += w;
        }
    return acc[0] + acc[1] + acc[2] + acc[3] + acc[4] + acc[5] + acc[6] + acc[7];
}

void bw_sum_once(const BwBuffer &b) {
    volatile uint64_t sink = sum_words(b.p, b.bytes());
    (void)sink;
}

// The same loop over the database's own rows, span by span (arena_read.c).
uint64_t arena_sum(iqdb *db) {
    uint64_t acc = 0;
    const void *p;
    for (size_t i = 0, n; (n = iqdb_bench_arena_span(db, i, &p)) != 0; i++) acc += sum_words(p, n);
    return acc;
}

// GB/s reading the buffer with a portable loop: 8 independent uint64 sums of 8-byte words.
double bw_sum(const BwBuffer &b, unsigned nt) {
    const unsigned char *bytes = reinterpret_cast<const unsigned char *>(b.p);
    const size_t words = b.bytes() / 8;
    std::vector<uint64_t> sinks(nt * 8, 0);
    double t = run_threads(nt, [&](unsigned ti) {
        size_t lo = words * ti / nt / 8 * 8,
               hi = ti + 1 == nt ? words : words * (ti + 1) / nt / 8 * 8;
        uint64_t acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int pass = 0; pass < kBwPasses; pass++) {
            for (size_t i = lo; i + 8 <= hi; i += 8)
                for (int j = 0; j < 8; j++) {
                    uint64_t w;
                    std::memcpy(&w, bytes + (i + j) * 8, 8);
                    acc[j] += w;
                }
        }
        uint64_t s = 0;
        for (uint64_t x : acc) s += x;
        sinks[ti * 8] = s;
    });
    volatile uint64_t sink = sinks[0];
    (void)sink;
    return kBwPasses * static_cast<double>(words / 8 * 64) / t / 1e9;
}

} // namespace

int main(int argc, char **argv) {
    prog_name() = "iqdb-bench-flat";
    Args args = parse_args(argc, argv);
#ifndef IQDB_BENCH_HAVE_FAISS
    const bool faiss_built = false;
    args.faiss = false;
#else
    const bool faiss_built = true;
#endif
    char err[512];

    // ---- data ----
    float *base = nullptr, *qs_all = nullptr;
    size_t n_base, d, n_q_all, dq;
    double t_load = now();
    if (ds_fmnist_load(args.data_dir.c_str(), 0, &base, &n_base, &d, err, sizeof err)) die(err);
    if (ds_fmnist_load(args.data_dir.c_str(), 1, &qs_all, &n_q_all, &dq, err, sizeof err)) die(err);
    int32_t *gt = nullptr;
    size_t n_gt, gt_dim;
    if (ds_ivecs_load(args.gt.c_str(), &gt, &n_gt, &gt_dim, err, sizeof err)) die(err);
    if (n_gt != n_q_all || gt_dim < kK)
        die(args.gt + ": expected " + std::to_string(n_q_all) +
            " rows of >= " + std::to_string(kK) + " neighbours, found " + std::to_string(n_gt) +
            " x " + std::to_string(gt_dim));
    for (size_t i = 0; i < n_gt * gt_dim; i++)
        if (gt[i] < 0 || static_cast<size_t>(gt[i]) >= n_base)
            die(args.gt + ": row number out of range at entry " + std::to_string(i));
    if (dq != d) die("queries and base have different dimensions");
    const size_t nq = std::min(args.queries, n_q_all);
    const float *qs = qs_all;
    const bool reduced = args.base && args.base < n_base;
    if (reduced) { // the first args.base rows: the file's ground truth no longer applies
        n_base = args.base;
        std::vector<int32_t> g = exact_knn_int(base, n_base, qs, nq, d, kK);
        std::copy(g.begin(), g.end(), gt);
        n_gt = nq;
        gt_dim = kK;
    }
    t_load = now() - t_load;

    // Cross-check the ground truth against the loaded data: the rank-1 and rank-10 distances of
    // the companion .fvecs (if present) must match exact distances computed here.
    std::string gt_check = reduced ? "computed exactly here (--base)"
                                   : "not checked (no .gt100-dist.fvecs next to the .ivecs)";
    if (!reduced) {
        std::string fpath = args.gt;
        size_t dot = fpath.rfind(".ivecs");
        if (dot != std::string::npos) {
            fpath = fpath.substr(0, dot) + "-dist.fvecs";
            float *gd = nullptr;
            size_t n_gd, gd_dim;
            if (ds_fvecs_load(fpath.c_str(), &gd, &n_gd, &gd_dim, err, sizeof err) == 0) {
                if (n_gd != n_gt || gd_dim != gt_dim)
                    die(fpath + ": shape differs from " + args.gt);
                size_t bad = 0;
                for (size_t q = 0; q < nq; q++)
                    for (size_t r : {size_t(0), kK - 1}) {
                        double ex = std::sqrt(
                            exact_d2(qs + q * d, base + size_t(gt[q * gt_dim + r]) * d, d));
                        if (std::fabs(ex - gd[q * gd_dim + r]) > 1e-4 * std::max(1.0, ex)) bad++;
                    }
                if (bad)
                    die("ground truth disagrees with the loaded data (" + std::to_string(bad) +
                        " distances differ): wrong dataset files?");
                gt_check = "ok (" + fpath + ")";
                std::free(gd);
            }
        }
    }

    // ---- iqdb ----
    iqdb *db[2] = {nullptr, nullptr}; // threads = 1, 2
    std::vector<iqdb_id> ids(n_base);
    for (size_t i = 0; i < n_base; i++) ids[i] = i;
    double t_upsert = 0;
    for (int t = 0; t < 2; t++) {
        iqdb_options o;
        iqdb_options_init(&o, static_cast<uint32_t>(d), IQDB_METRIC_L2);
        o.threads = static_cast<uint32_t>(t + 1);
        int rc = iqdb_open(nullptr, &o, &db[t]);
        if (rc) die(std::string("iqdb_open: ") + iqdb_errstr(rc) + ": " + iqdb_errmsg(nullptr));
        double t0 = now();
        rc = iqdb_upsert_batch(db[t], n_base, ids.data(), base, nullptr);
        if (t == 0) t_upsert = now() - t0;
        if (rc)
            die(std::string("iqdb_upsert_batch: ") + iqdb_errstr(rc) + ": " + iqdb_errmsg(db[t]));
    }
    iqdb_stats stats;
    std::memset(&stats, 0, sizeof stats);
    stats.struct_size = sizeof stats;
    if (iqdb_stats_get(db[0], &stats)) die("iqdb_stats_get failed");
    const char *simd_name = iqdb_simd_name(stats.simd);
    const iqdb__kernels *kern = iqdb__kernels_get(stats.simd);
    if (!kern) die("no kernel table for the level the database uses");
    const char *simd_env = std::getenv("IQDB_SIMD");

#ifdef IQDB_BENCH_HAVE_FAISS
    faiss::IndexFlatL2 *fidx = nullptr;
    if (args.faiss) {
        fidx = new faiss::IndexFlatL2(static_cast<faiss::Index::idx_t>(d));
        fidx->add(static_cast<faiss::Index::idx_t>(n_base), base);
    }
#endif

    // ---- bandwidth buffer: rows of d floats, written once (pages faulted in) ----
    BwBuffer bw;
    bw.dim = d;
    bw.rows = ((args.bw_mib << 20) + d * sizeof(float) - 1) / (d * sizeof(float)); // >= bw_mib
    bw.p = static_cast<float *>(std::aligned_alloc(64, (bw.bytes() + 63) / 64 * 64));
    if (!bw.p) die("out of memory for the bandwidth buffer");
    for (size_t i = 0; i < bw.rows * d; i++) bw.p[i] = static_cast<float>(i % 251);
    const float *bwq = qs; // any query: it stays in L1

    // A copy of the base vectors (the same 188 MB) for the paired measurement: one read pass of
    // the copy, then one query, alternating, so both see the machine's bandwidth at that moment.
    BwBuffer scanbuf;
    scanbuf.dim = d;
    scanbuf.rows = n_base;
    scanbuf.p = static_cast<float *>(std::aligned_alloc(64, (scanbuf.bytes() + 63) / 64 * 64));
    if (!scanbuf.p) die("out of memory for the scan copy");
    std::memcpy(scanbuf.p, base, scanbuf.bytes());

    const double bytes_per_query = static_cast<double>(n_base) * d * sizeof(float);
    const unsigned hw = std::max(1u, std::thread::hardware_concurrency());

    std::printf("iqdb-bench-flat: Fashion-MNIST %zu x %zu base, %zu queries, L2, k=%zu, %d reps "
                "(interleaved; medians)\n",
                n_base, d, nq, kK, args.reps);
    std::printf("iqdb %s, kernel level %s%s%s, online CPUs %u\n", iqdb_version(), simd_name,
                simd_env ? " (IQDB_SIMD=" : "",
                simd_env ? (std::string(simd_env) + ")").c_str() : "", hw);
    std::printf("load %.2f s, iqdb_upsert_batch of %zu rows %.2f s; ground truth check: %s\n",
                t_load, n_base, t_upsert, gt_check.c_str());
    if (!faiss_built)
        std::printf("faiss: not compiled in\n");
    else if (!args.faiss)
        std::printf("faiss: skipped (--no-faiss)\n");
    else
        std::printf("faiss: %s; single-query on the first %zu queries\n", kFaissLabel,
                    std::min(args.faiss_single, nq));
#ifdef IQDB_BENCH_HAVE_FAISS
    const std::string blas = args.faiss ? blas_config() : "";
    if (!blas.empty()) std::printf("BLAS: %s\n", blas.c_str());
#else
    const std::string blas;
#endif
    const std::string tenv = thread_env();
    if (!tenv.empty()) std::printf("environment: %s\n", tenv.c_str());
    std::fflush(stdout);

    // ---- series ----
    Series bw_rows1{"bw_rows_1t", "memory read, iqdb rows kernel, 1 thread", "GB/s", {}};
    Series bw_rows2{"bw_rows_2t", "memory read, iqdb rows kernel, 2 threads", "GB/s", {}};
    Series bw_sum1{"bw_sum_1t", "memory read, portable sum loop, 1 thread", "GB/s", {}};
    Series bw_sum2{"bw_sum_2t", "memory read, portable sum loop, 2 threads", "GB/s", {}};
    Series bound{"bound_qps_1t", "single-query bound (best 1t bw / bytes per query)", "QPS", {}};
    Series iq_single{"iqdb_single_qps", "iqdb single-query, 1 thread", "QPS", {}};
    Series iq_ratio{"iqdb_single_vs_bound", "iqdb single-query / bound", "ratio", {}};
    Series iq_paired{"iqdb_single_vs_bw_paired",
                     "iqdb single-query / bandwidth, paired in time (median of 100 pairs)",
                     "ratio",
                     {}};
    Series iq_same{"iqdb_single_vs_own_rows_paired",
                   "iqdb single-query / sum loop over the database's own rows, paired",
                   "ratio",
                   {}};
    Series iq_b1{"iqdb_batch_qps_1t", "iqdb batch, threads=1", "QPS", {}};
    Series iq_b2{"iqdb_batch_qps_2t", "iqdb batch, threads=2", "QPS", {}};
    Series fa_single{"faiss_single_qps", "faiss single-query, 1 thread", "QPS", {}};
    Series fa_b1{"faiss_batch_qps_1t", "faiss batch, 1 thread", "QPS", {}};
    Series fa_b2{"faiss_batch_qps_2t", "faiss batch, 2 threads", "QPS", {}};
    Series r_single{"iqdb_over_faiss_single", "iqdb / faiss, single-query", "ratio", {}};
    Series r_b1{"iqdb_over_faiss_batch_1t", "iqdb / faiss, batch 1 thread", "ratio", {}};
    Series r_b2{"iqdb_over_faiss_batch_2t", "iqdb / faiss, batch 2 threads", "ratio", {}};

    // ---- results kept for the checks ----
    std::vector<iqdb_hit> single_hits(nq * kK), first_single(nq * kK), batch_hits(nq * kK);
    std::vector<size_t> single_n(nq), first_n(nq), batch_n(nq);
    size_t batch_mismatch = 0, single_nondet = 0;
    auto compare_hits = [&](const std::vector<iqdb_hit> &a, const std::vector<size_t> &an,
                            const std::vector<iqdb_hit> &b, const std::vector<size_t> &bn) {
        size_t bad = 0;
        for (size_t q = 0; q < nq; q++) {
            bool same = an[q] == bn[q];
            for (size_t j = 0; same && j < an[q]; j++) {
                const iqdb_hit &x = a[q * kK + j], &y = b[q * kK + j];
                same = x.id == y.id && std::memcmp(&x.distance, &y.distance, sizeof(float)) == 0;
            }
            bad += !same;
        }
        return bad;
    };
#ifdef IQDB_BENCH_HAVE_FAISS
    const size_t nfs = std::min(args.faiss_single, nq);
    std::vector<float> fD(nq * kK), fD1(kK);
    std::vector<faiss::Index::idx_t> fI(nq * kK), fI1(kK);
#endif

    // ---- warm-up: fault in scratch, start the pool workers, touch every structure once ----
    {
        size_t nw = std::min<size_t>(nq, 8);
        for (int t = 0; t < 2; t++) {
            int rc =
                iqdb_search_batch(db[t], qs, nw, kK, nullptr, batch_hits.data(), batch_n.data());
            if (rc) die(std::string("iqdb_search_batch: ") + iqdb_errstr(rc));
        }
        for (size_t i = 0; i < nw; i++) {
            int rc = iqdb_search(db[0], qs + i * d, kK, nullptr, single_hits.data(), &single_n[0],
                                 nullptr);
            if (rc) die(std::string("iqdb_search: ") + iqdb_errstr(rc) + ": " + iqdb_errmsg(db[0]));
        }
        bw_rows(bw, kern->rows[IQDB__OP_L2SQ], bwq, 1);
#ifdef IQDB_BENCH_HAVE_FAISS
        if (args.faiss) {
            set_faiss_threads(1);
            fidx->search(1, qs, kK, fD1.data(), fI1.data());
        }
#endif
    }

    // The pool widths the batch runs use (workers start on the first batch, in the warm-up).
    unsigned widths[2];
    for (int t = 0; t < 2; t++) {
        iqdb_stats st;
        std::memset(&st, 0, sizeof st);
        st.struct_size = sizeof st;
        if (iqdb_stats_get(db[t], &st)) die("iqdb_stats_get failed");
        widths[t] = st.threads;
    }
    std::printf("iqdb batch worker threads (iqdb_stats.threads): %u and %u\n", widths[0],
                widths[1]);
    std::fflush(stdout);

    auto progress = [](const char *what) {
        std::fprintf(stderr, "  %-34s", what);
        std::fflush(stderr);
    };
    auto done = [](double v, const char *unit) {
        // ratios need three decimals (the single-query target is 0.9)
        std::fprintf(stderr, std::strncmp(unit, "ratio", 5) ? " %10.1f %s\n" : " %10.3f %s\n", v,
                     unit);
    };

    for (int rep = 0; rep < args.reps; rep++) {
        std::fprintf(stderr, "rep %d/%d\n", rep + 1, args.reps);
        // a. bandwidth
        progress("bw rows kernel 1t");
        bw_rows1.runs.push_back(bw_rows(bw, kern->rows[IQDB__OP_L2SQ], bwq, 1));
        done(bw_rows1.runs.back(), "GB/s");
        progress("bw rows kernel 2t");
        bw_rows2.runs.push_back(bw_rows(bw, kern->rows[IQDB__OP_L2SQ], bwq, 2));
        done(bw_rows2.runs.back(), "GB/s");
        progress("bw portable sum 1t");
        bw_sum1.runs.push_back(bw_sum(bw, 1));
        done(bw_sum1.runs.back(), "GB/s");
        progress("bw portable sum 2t");
        bw_sum2.runs.push_back(bw_sum(bw, 2));
        done(bw_sum2.runs.back(), "GB/s");
        double best1 = std::max(bw_rows1.runs.back(), bw_sum1.runs.back());
        bound.runs.push_back(best1 * 1e9 / bytes_per_query);

        // b. iqdb single query
        progress("iqdb single");
        double t0 = now();
        for (size_t i = 0; i < nq; i++) {
            int rc = iqdb_search(db[0], qs + i * d, kK, nullptr, &single_hits[i * kK], &single_n[i],
                                 nullptr);
            if (rc) die(std::string("iqdb_search: ") + iqdb_errstr(rc) + ": " + iqdb_errmsg(db[0]));
        }
        double dt = now() - t0;
        iq_single.runs.push_back(nq / dt);
        iq_ratio.runs.push_back(iq_single.runs.back() / bound.runs.back());
        done(iq_single.runs.back(), "QPS");
        if (rep == 0) {
            first_single = single_hits;
            first_n = single_n;
        } else {
            single_nondet += compare_hits(first_single, first_n, single_hits, single_n);
        }

        // b2. paired: a read pass over a copy of the base (the faster of the two read loops),
        // then one query; the ratio of the two times, median over the pairs.
        {
            progress("iqdb single vs bw, paired");
            std::vector<double> ratios, same;
            const float *pq;
            size_t pn;
            iqdb_hit ph[kK];
            volatile uint64_t arena_sink = 0;
            for (size_t i = 0; i < 100; i++) {
                double ta = now();
                scanbuf_read_once(scanbuf, kern->rows[IQDB__OP_L2SQ], bwq);
                double tb = now();
                bw_sum_once(scanbuf);
                double tc = now();
                pq = qs + (i % nq) * d;
                if (iqdb_search(db[0], pq, kK, nullptr, ph, &pn, nullptr)) die("iqdb_search");
                double td = now();
                arena_sink = arena_sink + arena_sum(db[0]);
                double te = now();
                ratios.push_back(std::min(tb - ta, tc - tb) / (td - tc));
                same.push_back((te - td) / (td - tc));
            }
            std::sort(ratios.begin(), ratios.end());
            std::sort(same.begin(), same.end());
            iq_paired.runs.push_back(ratios[ratios.size() / 2]);
            iq_same.runs.push_back(same[same.size() / 2]);
            done(iq_paired.runs.back(), "ratio");
            progress("iqdb single vs own rows, paired");
            done(iq_same.runs.back(), "ratio");
        }

        // d. faiss single query (between the iqdb runs, so the two alternate)
#ifdef IQDB_BENCH_HAVE_FAISS
        if (args.faiss) {
            progress("faiss single");
            set_faiss_threads(1);
            t0 = now();
            for (size_t i = 0; i < nfs; i++)
                fidx->search(1, qs + i * d, kK, fD1.data(), fI1.data());
            dt = now() - t0;
            fa_single.runs.push_back(nfs / dt);
            r_single.runs.push_back(iq_single.runs.back() / fa_single.runs.back());
            done(fa_single.runs.back(), "QPS");
        }
#endif

        // c. iqdb batch, and d. faiss batch, threads 1 then 2
        for (int t = 0; t < 2; t++) {
            Series &iqs = t ? iq_b2 : iq_b1;
            progress(t ? "iqdb batch 2t" : "iqdb batch 1t");
            t0 = now();
            int rc =
                iqdb_search_batch(db[t], qs, nq, kK, nullptr, batch_hits.data(), batch_n.data());
            dt = now() - t0;
            if (rc)
                die(std::string("iqdb_search_batch: ") + iqdb_errstr(rc) + ": " +
                    iqdb_errmsg(db[t]));
            iqs.runs.push_back(nq / dt);
            done(iqs.runs.back(), "QPS");
            batch_mismatch += compare_hits(first_single, first_n, batch_hits, batch_n);
#ifdef IQDB_BENCH_HAVE_FAISS
            if (args.faiss) {
                Series &fs = t ? fa_b2 : fa_b1;
                progress(t ? "faiss batch 2t" : "faiss batch 1t");
                set_faiss_threads(t + 1);
                t0 = now();
                fidx->search(static_cast<faiss::Index::idx_t>(nq), qs, kK, fD.data(), fI.data());
                dt = now() - t0;
                fs.runs.push_back(nq / dt);
                (t ? r_b2 : r_b1).runs.push_back(iqs.runs.back() / fs.runs.back());
                done(fs.runs.back(), "QPS");
            }
#endif
        }
    }

    // ---- e. recall ----
    std::vector<int64_t> hit_ids(nq * kK, -1);
    for (size_t i = 0; i < nq * kK; i++) hit_ids[i] = static_cast<int64_t>(first_single[i].id);
    RecallResult rec = recall_at_k(hit_ids, first_n, kK, nq, gt, gt_dim, base, n_base, qs, d);
    size_t short_results = 0;
    double max_rel_dist_err = 0;
    for (size_t q = 0; q < nq; q++) {
        short_results += first_n[q] != kK;
        for (size_t j = 0; j < first_n[q]; j++) {
            const iqdb_hit &h = first_single[q * kK + j];
            if (h.id >= n_base) continue;
            double ex = std::sqrt(exact_d2(qs + q * d, base + h.id * d, d));
            max_rel_dist_err =
                std::max(max_rel_dist_err, std::fabs(h.distance - ex) / std::max(1.0, ex));
        }
    }
    RecallResult frec;
    bool have_frec = false;
#ifdef IQDB_BENCH_HAVE_FAISS
    if (args.faiss) {
        std::vector<int64_t> fids(fI.begin(), fI.end());
        std::vector<size_t> fn(nq, kK);
        frec = recall_at_k(fids, fn, kK, nq, gt, gt_dim, base, n_base, qs, d);
        have_frec = true;
    }
#endif
    const bool recall_ok = rec.tie_aware == 1.0 && rec.bad_ids == 0 && short_results == 0;

    // ---- table ----
    std::printf("\n%-52s %10s %10s %10s  %s\n", "measurement", "median", "min", "max", "unit");
    auto row = [](const Series &s) {
        if (s.runs.empty()) return;
        const char *fmt = s.unit == "ratio" ? "%-52s %10.3f %10.3f %10.3f  %s\n"
                                            : "%-52s %10.1f %10.1f %10.1f  %s\n";
        std::printf(fmt, s.label.c_str(), s.median(), s.min(), s.max(), s.unit.c_str());
    };
    for (const Series *s : {&bw_rows1, &bw_rows2, &bw_sum1, &bw_sum2}) row(*s);
    std::printf("bytes per single-query scan: %zu x %zu x 4 = %.1f MB\n", n_base, d,
                bytes_per_query / 1e6);
    for (const Series *s : {&bound, &iq_single, &iq_ratio, &iq_paired, &iq_same, &iq_b1, &iq_b2})
        row(*s);
    if (!fa_single.runs.empty()) {
        std::printf("-- %s --\n", kFaissLabel);
        for (const Series *s : {&fa_single, &fa_b1, &fa_b2, &r_single, &r_b1, &r_b2}) row(*s);
    }
    std::printf("\nrecall@10 iqdb: %.4f (tie-aware), %.4f (by row number)%s\n", rec.tie_aware,
                rec.by_id, recall_ok ? "" : "   <-- EXPECTED 1.0");
    if (have_frec)
        std::printf("recall@10 faiss: %.4f (tie-aware), %.4f (by row number)\n", frec.tie_aware,
                    frec.by_id);
    std::printf("iqdb results: %zu queries with fewer than %zu hits, %zu out-of-range ids, max "
                "relative distance error %.2e\n",
                short_results, kK, rec.bad_ids, max_rel_dist_err);
    std::printf("iqdb batch == single (ids and distances, bit for bit): %s (%zu mismatching "
                "query results over %d batch runs); single repeatable across reps: %s\n",
                batch_mismatch ? "NO" : "yes", batch_mismatch, 2 * args.reps,
                single_nondet ? "NO" : "yes");

    // ---- JSON ----
    if (!args.json.empty()) {
        std::string j = "{\n";
        j += "  \"benchmark\": \"iqdb-bench-flat\",\n";
        j += "  \"iqdb_version\": " + json_str(iqdb_version()) + ",\n";
        j += "  \"simd\": " + json_str(simd_name) + ",\n";
        j += "  \"simd_env\": " + (simd_env ? json_str(simd_env) : std::string("null")) + ",\n";
        j += "  \"online_cpus\": " + std::to_string(hw) + ",\n";
        j += "  \"blas\": " + (blas.empty() ? std::string("null") : json_str(blas)) + ",\n";
        j += "  \"thread_env\": " + json_str(tenv) + ",\n";
        j += "  \"dataset\": {\"name\": \"fashion-mnist-784-euclidean\", \"n_base\": " +
             std::to_string(n_base) + ", \"dim\": " + std::to_string(d) +
             ", \"n_queries\": " + std::to_string(nq) + ", \"k\": " + std::to_string(kK) +
             ", \"metric\": \"l2\"},\n";
        j += "  \"reps\": " + std::to_string(args.reps) + ",\n";
        j += "  \"bytes_per_query\": " + json_num(bytes_per_query) + ",\n";
        j += "  \"bandwidth_buffer_bytes\": " + std::to_string(bw.bytes()) + ",\n";
        j += "  \"bandwidth_method\": \"bw_rows: iqdb l2sq rows kernel at the database's level, "
             "groups of 64 rows; bw_sum: portable 8 x uint64 sum loop; each thread reads its "
             "half of the buffer " +
             std::to_string(kBwPasses) + " times\",\n";
        j += "  \"faiss\": " +
             (fa_single.runs.empty()
                  ? std::string("null")
                  : "{\"label\": " + json_str(kFaissLabel) +
                        ", \"single_queries\": " + std::to_string(std::min(args.faiss_single, nq)) +
                        ", \"recall_at_10\": " + json_num(frec.tie_aware) +
                        ", \"recall_at_10_by_id\": " + json_num(frec.by_id) + "}") +
             ",\n";
        j += "  \"iqdb_recall_at_10\": " + json_num(rec.tie_aware) + ",\n";
        j += "  \"iqdb_recall_at_10_by_id\": " + json_num(rec.by_id) + ",\n";
        j += "  \"iqdb_recall_ok\": " + std::string(recall_ok ? "true" : "false") + ",\n";
        j += "  \"iqdb_batch_equals_single\": " + std::string(batch_mismatch ? "false" : "true") +
             ",\n";
        j += "  \"iqdb_single_repeatable\": " + std::string(single_nondet ? "false" : "true") +
             ",\n";
        j += "  \"iqdb_upsert_seconds\": " + json_num(t_upsert) + ",\n";
        j += "  \"series\": {";
        bool first = true;
        for (const Series *s :
             {&bw_rows1, &bw_rows2, &bw_sum1, &bw_sum2, &bound, &iq_single, &iq_ratio, &iq_paired,
              &iq_same, &iq_b1, &iq_b2, &fa_single, &fa_b1, &fa_b2, &r_single, &r_b1, &r_b2}) {
            if (s->runs.empty()) continue;
            j += (first ? "\n    " : ",\n    ") + json_str(s->key) + ": " + json_series(*s);
            first = false;
        }
        j += "\n  }\n}\n";
        FILE *f = std::fopen(args.json.c_str(), "w");
        if (!f || std::fputs(j.c_str(), f) < 0 || std::fclose(f) != 0)
            die("cannot write " + args.json);
        std::printf("wrote %s\n", args.json.c_str());
    }

#ifdef IQDB_BENCH_HAVE_FAISS
    delete fidx;
#endif
    for (iqdb *x : db) iqdb_close(x);
    std::free(bw.p);
    std::free(base);
    std::free(qs_all);
    std::free(gt);
    return recall_ok && !batch_mismatch && !single_nondet ? 0 : 2;
}
