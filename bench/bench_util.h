// bench_util.h — helpers shared by the benchmark programs (iqdb-bench-flat, iqdb-bench-ivf):
// timing, a per-rep series with medians, tie-aware recall against exact ground truth, faiss
// thread control, JSON output. Header-only; C++17.
#ifndef IQDB_BENCH_UTIL_H
#define IQDB_BENCH_UTIL_H

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#ifdef IQDB_BENCH_HAVE_FAISS
#include <dlfcn.h>
#include <omp.h>
#endif

namespace iqdb_bench {

// The program name in error messages.
inline const char *&prog_name() {
    static const char *p = "iqdb-bench";
    return p;
}

[[noreturn]] inline void die(const std::string &msg) {
    std::fprintf(stderr, "%s: %s\n", prog_name(), msg.c_str());
    std::exit(1);
}

inline double now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

// One measured quantity: a value per rep.
struct Series {
    std::string key, label, unit;
    std::vector<double> runs;
    double median() const {
        if (runs.empty()) return NAN;
        std::vector<double> v = runs;
        std::sort(v.begin(), v.end());
        size_t n = v.size();
        return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    }
    double min() const { return runs.empty() ? NAN : *std::min_element(runs.begin(), runs.end()); }
    double max() const { return runs.empty() ? NAN : *std::max_element(runs.begin(), runs.end()); }
};

inline size_t parse_size(const char *opt, const char *v, size_t lo) {
    char *end = nullptr;
    errno = 0;
    unsigned long long x = std::strtoull(v ? v : "", &end, 10);
    if (!v || !*v || *end || errno || x < lo) die(std::string("bad value for ") + opt);
    return static_cast<size_t>(x);
}

// ---- recall -----------------------------------------------------------------------------------

// Exact squared L2 of integer-valued vectors (the pixels are 0..255: every sum is exact in double).
inline double exact_d2(const float *a, const float *b, size_t d) {
    double s = 0;
    for (size_t i = 0; i < d; i++) {
        double t = static_cast<double>(a[i]) - static_cast<double>(b[i]);
        s += t * t;
    }
    return s;
}

// The exact k nearest (squared L2, ties to the lower row number) of the first n base vectors
// for each of nq queries, as nq x k row numbers. Fashion-MNIST pixels are integers 0..255, so
// the squared distances are exact in int32 (at most 784 * 255^2); two threads.
inline std::vector<int32_t> exact_knn_int(const float *base, size_t n, const float *qs, size_t nq,
                                          size_t d, size_t k) {
    std::vector<int16_t> b(n * d), q(nq * d);
    for (size_t i = 0; i < b.size(); i++) b[i] = static_cast<int16_t>(base[i]);
    for (size_t i = 0; i < q.size(); i++) q[i] = static_cast<int16_t>(qs[i]);
    std::vector<int32_t> out(nq * k);
    k = std::min(k, n);
    auto work = [&](size_t from, size_t to) {
        std::vector<std::pair<int32_t, int32_t>> dist(n);
        for (size_t qi = from; qi < to; qi++) {
            const int16_t *qv = &q[qi * d];
            for (size_t j = 0; j < n; j++) {
                const int16_t *bv = &b[j * d];
                int32_t s = 0;
                for (size_t c = 0; c < d; c++) {
                    int32_t t = qv[c] - bv[c];
                    s += t * t;
                }
                dist[j] = {s, static_cast<int32_t>(j)};
            }
            std::partial_sort(dist.begin(), dist.begin() + static_cast<std::ptrdiff_t>(k),
                              dist.end());
            for (size_t c = 0; c < k; c++) out[qi * k + c] = dist[c].second;
        }
    };
    std::thread t(work, 0, nq / 2);
    work(nq / 2, nq);
    t.join();
    return out;
}

struct RecallResult {
    double by_id = 0, tie_aware = 0;
    size_t bad_ids = 0; // hits outside 0..n_base-1
};

// ids[q * stride + j], j < n[q]: the hits of query q. gt: nq x gt_dim row numbers.
inline RecallResult recall_at_k(const std::vector<int64_t> &ids, const std::vector<size_t> &n_hits,
                                size_t stride, size_t nq, const int32_t *gt, size_t gt_dim,
                                const float *base, size_t n_base, const float *qs, size_t d,
                                size_t kK = 10) {
    RecallResult r;
    size_t hit_id = 0, hit_tie = 0;
    for (size_t q = 0; q < nq; q++) {
        const int32_t *g = gt + q * gt_dim;
        const float *qv = qs + q * d;
        std::unordered_set<int64_t> truth(g, g + kK);
        double d10 = exact_d2(qv, base + static_cast<size_t>(g[kK - 1]) * d, d);
        for (size_t j = 0; j < std::min(n_hits[q], kK); j++) {
            int64_t id = ids[q * stride + j];
            if (id < 0 || static_cast<uint64_t>(id) >= n_base) {
                r.bad_ids++;
                continue;
            }
            if (truth.count(id)) {
                hit_id++;
                hit_tie++;
            } else if (exact_d2(qv, base + static_cast<size_t>(id) * d, d) <= d10) {
                hit_tie++;
            }
        }
    }
    r.by_id = static_cast<double>(hit_id) / static_cast<double>(nq * kK);
    r.tie_aware = static_cast<double>(hit_tie) / static_cast<double>(nq * kK);
    return r;
}

// ---- faiss ------------------------------------------------------------------------------------

#ifdef IQDB_BENCH_HAVE_FAISS
// OpenBLAS runs its own thread pool (Debian's libblas is openblas-pthread): set it too. Looked up
// at run time so any BLAS works.
inline void set_faiss_threads(int n) {
    omp_set_num_threads(n);
    using setter = void (*)(int);
    static setter set_blas =
        reinterpret_cast<setter>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
    if (set_blas) set_blas(n);
}

// "OpenBLAS 0.3.21 DYNAMIC_ARCH ... Zen MAX_THREADS=64" or "" when the BLAS is not OpenBLAS.
inline std::string blas_config() {
    using getter = const char *(*)();
    getter get = reinterpret_cast<getter>(dlsym(RTLD_DEFAULT, "openblas_get_config"));
    const char *c = get ? get() : nullptr;
    return c ? c : "";
}
#endif

// Thread-related environment that changes faiss' (OpenMP + OpenBLAS) behaviour.
inline std::string thread_env() {
    std::string o;
    for (const char *v :
         {"OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OPENBLAS_NUM_THREADS"}) {
        const char *x = std::getenv(v);
        if (x) o += (o.empty() ? "" : " ") + std::string(v) + "=" + x;
    }
    return o;
}

// ---- output -----------------------------------------------------------------------------------

inline std::string json_num(double x) {
    if (!std::isfinite(x)) return "null";
    char b[64];
    std::snprintf(b, sizeof b, "%.6g", x);
    return b;
}

inline std::string json_series(const Series &s) {
    std::string o = "{\"label\": \"" + s.label + "\", \"unit\": \"" + s.unit +
                    "\", \"median\": " + json_num(s.median()) + ", \"min\": " + json_num(s.min()) +
                    ", \"max\": " + json_num(s.max()) + ", \"runs\": [";
    for (size_t i = 0; i < s.runs.size(); i++) o += (i ? ", " : "") + json_num(s.runs[i]);
    return o + "]}";
}

inline std::string json_str(const std::string &s) {
    std::string o = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') o += '\\';
        if (static_cast<unsigned char>(c) < 0x20) continue;
        o += c;
    }
    return o + "\"";
}

} // namespace iqdb_bench

#endif
