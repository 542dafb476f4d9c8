// bench_kernels.cc — micro benchmarks of iqdb's distance kernels (google-benchmark).
//
// For every SIMD level this machine runs (iqdb__kernels_get(level) != NULL), every op (l2sq, dot,
// l1, ham) and dims 96, 128, 784, 1536:
//
//   BM_Kernel/<op>/<level>/<dim>        pair kernel, both vectors in L1: the compute ceiling.
//                                       bytes = 2 vectors per distance.
//   BM_KernelStream/<op>/<level>/<dim>  rows kernel over a 256 MiB buffer (far beyond the caches),
//                                       in groups of 64 rows as the flat index scans: the
//                                       memory-bound throughput of a single-query scan.
//                                       bytes = 1 row per distance (the query stays in cache).
//   BM_KernelTile/<op>/<level>/<dim>    tile kernel, 16 queries x 64 rows in L2: the arithmetic
//                                       of a batch search. bytes = the 80 distinct vectors per
//                                       call, so only items/s (distances) is comparable.
//   BM_KernelPanel/dot/<level>/<dim>    dot_panel kernel, 80 transposed queries x 64 rows in L2:
//                                       the arithmetic of an L2 batch search (items = dot
//                                       products; comp/s = multiply-adds per second).
//
// Every benchmark reports bytes/s, items/s (distances per second) and comp/s (vector components
// per second = distances x dim, comparable across dims).
//
//   iqdb-bench-kernels --benchmark_filter='BM_Kernel/l2sq/.*/784'
//   iqdb-bench-kernels --benchmark_min_time=0.05
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

// iqdb.h zero-initialises its structs with {0}, which g++ -Wextra reports as missing field
// initializers (C does not); keep that header noise out of the bench build.
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif
extern "C" {
#include "dist/dist.h"
}
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace {

constexpr size_t kDims[] = {96, 128, 784, 1536};
constexpr size_t kStreamBytes = size_t(256) << 20;
constexpr size_t kGroup = 64; // rows per rows() call, as in src/index/flat.c
constexpr size_t kTileQ = 16, kTileX = 64, kPanelQ = 80;

const char *const kOpNames[IQDB__N_OPS] = {"l2sq", "dot", "l1", "ham"};

// A 64-byte aligned float array that frees itself.
struct FloatBuf {
    float *p = nullptr;
    size_t n = 0;
    explicit FloatBuf(size_t count) : n(count) {
        size_t bytes = (count * sizeof(float) + 63) / 64 * 64;
        p = static_cast<float *>(std::aligned_alloc(64, bytes ? bytes : 64));
        if (!p) {
            std::fprintf(stderr, "out of memory allocating %zu bytes\n", bytes);
            std::exit(1);
        }
    }
    ~FloatBuf() { std::free(p); }
    FloatBuf(const FloatBuf &) = delete;
    FloatBuf &operator=(const FloatBuf &) = delete;
};

// Deterministic values in [0, 256) on a 1/4 grid, so ham sees both equal and different
// components (about 1 in 1024 equal) and nothing is denormal.
void fill(float *x, size_t n, uint64_t seed) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        x[i] = static_cast<float>(s >> 54) * 0.25f;
    }
}

const float *stream_buffer() {
    static FloatBuf *buf = [] {
        auto *b = new FloatBuf(kStreamBytes / sizeof(float));
        fill(b->p, b->n, 7); // writing every page also faults it in before timing
        return b;
    }();
    return buf->p;
}

void set_counters(benchmark::State &st, size_t dists_per_iter, size_t bytes_per_iter, size_t d) {
    int64_t it = static_cast<int64_t>(st.iterations());
    st.SetItemsProcessed(it * static_cast<int64_t>(dists_per_iter));
    st.SetBytesProcessed(it * static_cast<int64_t>(bytes_per_iter));
    st.counters["comp/s"] = benchmark::Counter(static_cast<double>(it) * dists_per_iter * d,
                                               benchmark::Counter::kIsRate);
}

void bm_pair(benchmark::State &st, iqdb__pair_fn fn, size_t d) {
    FloatBuf a(d), b(d);
    fill(a.p, d, 1);
    fill(b.p, d, 2);
    for (auto _ : st) {
        float r = fn(a.p, b.p, d);
        benchmark::DoNotOptimize(r);
    }
    set_counters(st, 1, 2 * d * sizeof(float), d);
}

void bm_stream(benchmark::State &st, iqdb__rows_fn fn, size_t d) {
    const float *buf = stream_buffer();
    const size_t n = kStreamBytes / (d * sizeof(float));
    FloatBuf q(d);
    fill(q.p, d, 3);
    const float *ptrs[kGroup];
    float out[kGroup];
    float sink = 0.0f;
    for (auto _ : st) {
        for (size_t base = 0; base < n; base += kGroup) {
            size_t m = n - base < kGroup ? n - base : kGroup;
            for (size_t i = 0; i < m; i++) ptrs[i] = buf + (base + i) * d;
            fn(q.p, ptrs, m, d, out);
            sink += out[0];
        }
        benchmark::DoNotOptimize(sink);
    }
    set_counters(st, n, n * d * sizeof(float), d);
}

void bm_tile(benchmark::State &st, iqdb__tile_fn fn, size_t d) {
    FloatBuf qs(kTileQ * d), xs(kTileX * d);
    fill(qs.p, kTileQ * d, 4);
    fill(xs.p, kTileX * d, 5);
    const float *qp[kTileQ], *xp[kTileX];
    for (size_t i = 0; i < kTileQ; i++) qp[i] = qs.p + i * d;
    for (size_t j = 0; j < kTileX; j++) xp[j] = xs.p + j * d;
    std::vector<float> out(kTileQ * kTileX);
    for (auto _ : st) {
        fn(qp, kTileQ, xp, kTileX, d, out.data());
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    set_counters(st, kTileQ * kTileX, (kTileQ + kTileX) * d * sizeof(float), d);
}

void bm_panel(benchmark::State &st, iqdb__panel_fn fn, size_t d) {
    FloatBuf qt(kPanelQ * d), xs(kTileX * d);
    fill(qt.p, kPanelQ * d, 4);
    fill(xs.p, kTileX * d, 5);
    const float *xp[kTileX];
    for (size_t j = 0; j < kTileX; j++) xp[j] = xs.p + j * d;
    std::vector<float> out(kPanelQ * kTileX);
    for (auto _ : st) {
        fn(qt.p, kPanelQ, xp, kTileX, d, out.data());
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    set_counters(st, kPanelQ * kTileX, (kPanelQ + kTileX) * d * sizeof(float), d);
}

} // namespace

int main(int argc, char **argv) {
    const iqdb_simd levels[] = {IQDB_SIMD_SCALAR, IQDB_SIMD_AVX2, IQDB_SIMD_AVX512, IQDB_SIMD_NEON};
    std::string avail;
    for (iqdb_simd level : levels) {
        const iqdb__kernels *k = iqdb__kernels_get(level);
        if (!k) continue;
        const std::string lname = iqdb_simd_name(level);
        avail += (avail.empty() ? "" : ",") + lname;
        for (size_t d : kDims)
            benchmark::RegisterBenchmark(
                ("BM_KernelPanel/dot/" + lname + "/" + std::to_string(d)).c_str(), bm_panel,
                k->dot_panel, d);
        for (int op = 0; op < IQDB__N_OPS; op++) {
            for (size_t d : kDims) {
                std::string suffix =
                    std::string("/") + kOpNames[op] + "/" + lname + "/" + std::to_string(d);
                benchmark::RegisterBenchmark(("BM_Kernel" + suffix).c_str(), bm_pair, k->pair[op],
                                             d);
                benchmark::RegisterBenchmark(("BM_KernelStream" + suffix).c_str(), bm_stream,
                                             k->rows[op], d);
                benchmark::RegisterBenchmark(("BM_KernelTile" + suffix).c_str(), bm_tile,
                                             k->tile[op], d);
            }
        }
    }
    benchmark::AddCustomContext("iqdb_levels", avail);
    benchmark::AddCustomContext("iqdb_best", iqdb_simd_name(iqdb__simd_best()));
    benchmark::AddCustomContext("stream_buffer_MiB", std::to_string(kStreamBytes >> 20));
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
