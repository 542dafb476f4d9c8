// ann_bench.cc — iqdb-bench-ann: iqdb's HNSW index against hnswlib (and, optionally, faiss
// IndexHNSWFlat) on Fashion-MNIST, in one process run.
//
// Dataset: Debian's dataset-fashion-mnist, 60,000 base vectors x 784 (pixels as float32 0..255),
// 10,000 queries, L2, k = 10; exact ground truth from /work/shared/data (tie-aware recall: a hit
// at the exact distance of the true 10th neighbour counts as correct — the pixels are integers,
// so distances are computed exactly in double).
//
// What runs:
//   builds    iqdb (m = 16, ef_construction = 200, one iqdb_upsert_batch of all vectors) and
//             hnswlib (M = 16, ef_construction = 200, addPoint per vector; with 2 threads each
//             thread adds vectors taken from a shared counter), on 1 and 2 threads, alternating
//             iqdb / hnswlib; --build-reps repetitions, medians.
//   memory    per vector: iqdb_stats.mem_total / n (every byte iqdb allocated, rows included),
//             hnswlib's structures computed from its layout, and the growth of the process RSS
//             across each library's first build.
//   search    single thread, one query at a time, k = 10, for every ef in --efs; for each
//             repetition every engine runs every ef in turn (interleaved), medians reported.
//             QPS at recall 0.90 / 0.95 / 0.99 is interpolated on each curve (log QPS linear in
//             recall between the two measured points around the target), per repetition; the
//             ratio is the median of the per-repetition ratios.
//   engines   iqdb            iqdb at the kernel level it picks (AVX-512 on this machine)
//             hnswlib         hnswlib 0.6.2 compiled with the bench's flags + -mavx2 -mfma: the
//                             baseline of the targets
//             iqdb-avx2       (--variants) iqdb with options.simd = AVX2, its own build
//             hnswlib-avx512  (--variants) hnswlib compiled with -mavx512f in addition
//             faiss           (--faiss) IndexHNSWFlat M = 16, efConstruction = 200, Debian's
//                             libfaiss (a generic x86-64 build: labelled, not a target)
//
//             iqdb-sq8        (--quant) iqdb HNSW with SQ8 codes (graph distances on codes,
//                             the best k * oversample re-ranked against the rows)
//             iqdb-sq8-os1    (--quant) iqdb-sq8's database searched with oversample 1
//             iqdb-sq8-co     (--quant) the same with IQDB_QUANT_CODES_ONLY (rows dropped,
//                             distances to the decoded codes)
//             iqdb-sq8-file   (--quant) iqdb-sq8 as a durable database (in $TMPDIR or /tmp,
//                             removed at exit) opened with IQDB_VECTORS_IN_FILE: the rows in a
//                             mapped file, re-ranking exact; the build also writes the WAL
//
//   --base N  a second scale: only the first N base vectors, with the exact ground truth computed
//             here (integer arithmetic: the pixels are integers, so distances are exact).
//
//   iqdb-bench-ann [--queries N] [--base N] [--reps R] [--build-reps R] [--efs 10,16,...]
//   [--variants] [--quant]
//                  [--faiss] [--no-threads] [--json PATH] [--data DIR] [--gt PATH]
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif
#include "datasets.h"
#include "iqdb.h"
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#include "ann_hnswlib.h"

#ifdef IQDB_BENCH_HAVE_FAISS
#include <faiss/IndexHNSW.h>
#include <omp.h>
#endif

namespace {

constexpr size_t kK = 10;
const char *const kGt = "/work/shared/data/fashion-mnist-784-euclidean.gt100.ivecs";

[[noreturn]] void die(const std::string &m) {
    std::fprintf(stderr, "iqdb-bench-ann: %s\n", m.c_str());
    std::exit(1);
}

double clock_s() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

double median(std::vector<double> v) {
    if (v.empty()) return NAN;
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Resident set size of this process, bytes (Linux; 0 elsewhere).
size_t rss_bytes() {
    FILE *f = std::fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    size_t kb = 0;
    while (std::fgets(line, sizeof line, f))
        if (std::sscanf(line, "VmRSS: %zu kB", &kb) == 1) break;
    std::fclose(f);
    return kb * 1024;
}

struct Options {
    size_t queries = 10000;
    int reps = 3, build_reps = 1;
    std::vector<size_t> efs = {10, 12, 14, 16,  20,  24,  28,  32,  40,  48, 56,
                               64, 80, 96, 128, 160, 200, 256, 320, 400, 512};
    size_t base = 0; // 0: every base vector; else the first `base`, with exact ground truth
    bool variants = false, faiss = false, threads = true, quant = false;
    std::string json, data = DS_FMNIST_DIR, gt = kGt;
};

size_t to_size(const char *opt, const char *v) {
    char *end = nullptr;
    errno = 0;
    unsigned long long x = std::strtoull(v ? v : "", &end, 10);
    if (!v || !*v || *end || errno || x == 0) die(std::string("bad value for ") + opt);
    return static_cast<size_t>(x);
}

Options parse(int argc, char **argv) {
    Options o;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : nullptr;
        if (a == "--queries")
            o.queries = to_size("--queries", v), i++;
        else if (a == "--reps")
            o.reps = static_cast<int>(to_size("--reps", v)), i++;
        else if (a == "--base")
            o.base = to_size("--base", v), i++;
        else if (a == "--build-reps")
            o.build_reps = static_cast<int>(to_size(a.c_str(), v)), i++;
        else if (a == "--variants")
            o.variants = true;
        else if (a == "--quant")
            o.quant = true;
        else if (a == "--faiss")
            o.faiss = true;
        else if (a == "--no-threads")
            o.threads = false;
        else if (a == "--json" && v)
            o.json = v, i++;
        else if (a == "--data" && v)
            o.data = v, i++;
        else if (a == "--gt" && v)
            o.gt = v, i++;
        else if (a == "--efs" && v) {
            o.efs.clear();
            std::string s = v;
            for (size_t p = 0; p < s.size();) {
                size_t q = s.find(',', p);
                if (q == std::string::npos) q = s.size();
                o.efs.push_back(to_size("--efs", s.substr(p, q - p).c_str()));
                p = q + 1;
            }
            i++;
        } else {
            std::printf(
                "usage: %s [--queries N] [--base N] [--reps R] [--build-reps R] [--efs a,b,...] "
                "[--variants] [--quant] [--faiss] [--no-threads] [--json PATH] [--data DIR] "
                "[--gt PATH]\n",
                argv[0]);
            std::exit(a == "-h" || a == "--help" ? 0 : 1);
        }
    }
    return o;
}

struct Data {
    float *base = nullptr, *qs = nullptr;
    int32_t *gt = nullptr;
    size_t n = 0, d = 0, nq = 0, gt_dim = 0;
    std::vector<double> d10; // exact squared distance of each query's 10th neighbour
};

double exact_d2(const float *a, const float *b, size_t d) {
    double s = 0;
    for (size_t i = 0; i < d; i++) {
        double t = static_cast<double>(a[i]) - b[i];
        s += t * t;
    }
    return s;
}

// The exact 10 nearest of the first D.n base vectors for each of the D.nq queries, replacing
// D.gt. Fashion-MNIST pixels are integers 0..255, so squared distances are exact in int32
// (at most 784 * 255^2); two threads.
void exact_ground_truth(Data &D) {
    std::vector<int16_t> b(D.n * D.d), q(D.nq * D.d);
    for (size_t i = 0; i < b.size(); i++) b[i] = static_cast<int16_t>(D.base[i]);
    for (size_t i = 0; i < q.size(); i++) q[i] = static_cast<int16_t>(D.qs[i]);
    std::free(D.gt);
    D.gt = static_cast<int32_t *>(std::malloc(D.nq * kK * sizeof(int32_t)));
    if (!D.gt) die("out of memory");
    D.gt_dim = kK;
    auto work = [&](size_t from, size_t to) {
        std::vector<std::pair<int32_t, int32_t>> dist(D.n);
        for (size_t qi = from; qi < to; qi++) {
            const int16_t *qv = &q[qi * D.d];
            for (size_t j = 0; j < D.n; j++) {
                const int16_t *bv = &b[j * D.d];
                int32_t s = 0;
                for (size_t k = 0; k < D.d; k++) {
                    int32_t t = qv[k] - bv[k];
                    s += t * t;
                }
                dist[j] = {s, static_cast<int32_t>(j)};
            }
            std::partial_sort(dist.begin(), dist.begin() + kK, dist.end());
            for (size_t k = 0; k < kK; k++) D.gt[qi * kK + k] = dist[k].second;
        }
    };
    std::thread t(work, 0, D.nq / 2);
    work(D.nq / 2, D.nq);
    t.join();
}

// Tie-aware recall@10 of one query's labels.
size_t hits_of(const Data &D, size_t q, const int64_t *ids, size_t n) {
    const int32_t *g = D.gt + q * D.gt_dim;
    size_t h = 0;
    for (size_t j = 0; j < std::min(n, kK); j++) {
        int64_t id = ids[j];
        if (id < 0 || static_cast<size_t>(id) >= D.n) continue;
        if (std::find(g, g + kK, static_cast<int32_t>(id)) != g + kK ||
            exact_d2(D.qs + q * D.d, D.base + static_cast<size_t>(id) * D.d, D.d) <= D.d10[q])
            h++;
    }
    return h;
}

// ---- engines ------------------------------------------------------------------------------

struct Engine {
    std::string name, label;
    double build_s = NAN;
    size_t rss_delta = 0, bytes = 0;
    std::vector<std::vector<double>> qps; // [ef][rep]
    std::vector<double> recall;           // [ef]
    std::vector<double> dists;            // [ef] distance computations per query (iqdb)
    virtual ~Engine() = default;
    virtual void set_ef(size_t ef) = 0;
    // Searches query q; writes up to k labels; returns their count.
    virtual size_t search(const float *q, int64_t *labels, uint64_t *ndist) = 0;
};

// A path for a durable database in a fresh temporary directory ("" on failure); the files are
// removed by remove_db_files.
std::string temp_db_path() {
    const char *t = std::getenv("TMPDIR");
    std::string tmpl = std::string(t && *t ? t : "/tmp") + "/iqdb-bench-ann-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!mkdtemp(buf.data())) die("cannot make a directory from " + tmpl);
    return std::string(buf.data()) + "/db";
}
void remove_db_files(const std::string &path) {
    std::remove(path.c_str());
    std::remove((path + ".wal").c_str());
    std::remove(path.substr(0, path.size() - 3).c_str()); // the directory
}

struct IqdbEngine : Engine {
    iqdb *db = nullptr;
    bool owns = true; // false: another engine's database, searched with other parameters
    std::string path; // a durable database's files, removed with it
    iqdb_search_params p;
    ~IqdbEngine() override {
        if (owns) iqdb_close(db);
        if (owns && !path.empty()) remove_db_files(path);
    }
    void set_ef(size_t ef) override { p.ef = static_cast<uint32_t>(ef); }
    size_t search(const float *q, int64_t *labels, uint64_t *ndist) override {
        iqdb_hit hits[kK];
        size_t n = 0;
        iqdb_search_info info;
        std::memset(&info, 0, sizeof info);
        info.struct_size = sizeof info;
        if (iqdb_search(db, q, kK, &p, hits, &n, &info) != IQDB_OK) die(iqdb_errmsg(db));
        for (size_t i = 0; i < n; i++) labels[i] = static_cast<int64_t>(hits[i].id);
        *ndist = info.n_distances;
        return n;
    }
};

// Opens and bulk-builds an iqdb HNSW database; returns it and the build's wall time.
iqdb *iqdb_build(const Data &D, iqdb_simd simd, unsigned threads, double *secs,
                 iqdb_quant quant = IQDB_QUANT_NONE, uint32_t qflags = 0, uint32_t flags = 0,
                 const std::string &path = "") {
    iqdb_options o;
    iqdb_options_init(&o, static_cast<uint32_t>(D.d), IQDB_METRIC_L2);
    o.index = IQDB_INDEX_HNSW;
    o.quant.kind = quant;
    o.quant.flags = qflags;
    o.hnsw.m = 16;
    o.hnsw.ef_construction = 200;
    o.threads = threads;
    o.simd = simd;
    o.flags = flags;
    o.sync = IQDB_SYNC_NEVER; // (durable databases only) a bulk load
    o.checkpoint_bytes = UINT64_MAX;
    iqdb *db = nullptr;
    if (iqdb_open(path.empty() ? nullptr : path.c_str(), &o, &db) != IQDB_OK)
        die(iqdb_errmsg(nullptr));
    std::vector<iqdb_id> ids(D.n);
    for (size_t i = 0; i < D.n; i++) ids[i] = i;
    double t0 = clock_s();
    if (iqdb_upsert_batch(db, D.n, ids.data(), D.base, nullptr) != IQDB_OK) die(iqdb_errmsg(db));
    *secs = clock_s() - t0;
    return db;
}

struct HnswlibEngine : Engine {
    void *ix = nullptr;
    void (*set_ef_fn)(void *, size_t) = nullptr;
    size_t (*search_fn)(void *, const float *, size_t, int64_t *) = nullptr;
    void (*destroy_fn)(void *) = nullptr;
    ~HnswlibEngine() override {
        if (ix) destroy_fn(ix);
    }
    void set_ef(size_t ef) override { set_ef_fn(ix, ef); }
    size_t search(const float *q, int64_t *labels, uint64_t *ndist) override {
        *ndist = 0;
        return search_fn(ix, q, kK, labels);
    }
};

struct HnswlibApi {
    void *(*create)(size_t, size_t, size_t, size_t);
    void (*add)(void *, const float *, size_t);
    void (*set_ef)(void *, size_t);
    size_t (*search)(void *, const float *, size_t, int64_t *);
    size_t (*bytes)(void *);
    void (*destroy)(void *);
};
const HnswlibApi kHnswlibAvx2 = {ann_hnswlib_avx2_create,          ann_hnswlib_avx2_add,
                                 ann_hnswlib_avx2_set_ef,          ann_hnswlib_avx2_search,
                                 ann_hnswlib_avx2_structure_bytes, ann_hnswlib_avx2_destroy};
const HnswlibApi kHnswlibAvx512 = {ann_hnswlib_avx512_create,          ann_hnswlib_avx512_add,
                                   ann_hnswlib_avx512_set_ef,          ann_hnswlib_avx512_search,
                                   ann_hnswlib_avx512_structure_bytes, ann_hnswlib_avx512_destroy};

void *hnswlib_build(const Data &D, const HnswlibApi &api, unsigned threads, double *secs) {
    void *ix = api.create(D.d, D.n, 16, 200);
    double t0 = clock_s();
    if (threads <= 1) {
        for (size_t i = 0; i < D.n; i++) api.add(ix, D.base + i * D.d, i);
    } else {
        std::atomic<size_t> next{0};
        std::vector<std::thread> th;
        for (unsigned t = 0; t < threads; t++)
            th.emplace_back([&] {
                for (size_t i; (i = next.fetch_add(1)) < D.n;) api.add(ix, D.base + i * D.d, i);
            });
        for (auto &x : th) x.join();
    }
    *secs = clock_s() - t0;
    return ix;
}

#ifdef IQDB_BENCH_HAVE_FAISS
struct FaissEngine : Engine {
    faiss::IndexHNSWFlat *ix = nullptr;
    ~FaissEngine() override { delete ix; }
    void set_ef(size_t ef) override { ix->hnsw.efSearch = static_cast<int>(ef); }
    size_t search(const float *q, int64_t *labels, uint64_t *ndist) override {
        float dist[kK];
        faiss::Index::idx_t lab[kK];
        ix->search(1, q, kK, dist, lab);
        size_t n = 0;
        for (size_t i = 0; i < kK; i++)
            if (lab[i] >= 0) labels[n++] = lab[i];
        *ndist = 0;
        return n;
    }
};
#endif

// Runs every query once at the current ef; returns the wall time and fills recall / distances.
double run_queries(Engine &e, const Data &D, size_t nq, double *recall, double *dist) {
    std::vector<int64_t> lab(kK);
    size_t hits = 0;
    uint64_t nd = 0;
    double t0 = clock_s();
    std::vector<std::vector<int64_t>> out(nq, std::vector<int64_t>(kK, -1));
    std::vector<size_t> cnt(nq);
    for (size_t q = 0; q < nq; q++) {
        uint64_t d = 0;
        cnt[q] = e.search(D.qs + q * D.d, out[q].data(), &d);
        nd += d;
    }
    double t = clock_s() - t0;
    for (size_t q = 0; q < nq; q++) hits += hits_of(D, q, out[q].data(), cnt[q]);
    *recall = static_cast<double>(hits) / static_cast<double>(nq * kK);
    *dist = static_cast<double>(nd) / static_cast<double>(nq);
    return t;
}

// QPS at `target` recall on a curve of (recall, qps) points in ef order; NAN when the curve does
// not bracket the target.
double qps_at(const std::vector<double> &rec, const std::vector<double> &qps, double target) {
    for (size_t i = 0; i + 1 < rec.size(); i++) {
        double r0 = rec[i], r1 = rec[i + 1];
        if (r0 < target && r1 >= target && r1 > r0) {
            double f = (target - r0) / (r1 - r0);
            return std::exp(std::log(qps[i]) + f * (std::log(qps[i + 1]) - std::log(qps[i])));
        }
        if (i == 0 && r0 >= target) return qps[0];
    }
    return NAN;
}

std::string num(double x, int prec = 0) {
    if (!std::isfinite(x)) return "-";
    char b[64];
    std::snprintf(b, sizeof b, "%.*f", prec, x);
    return b;
}

} // namespace

int main(int argc, char **argv) {
    Options O = parse(argc, argv);
#ifndef IQDB_BENCH_HAVE_FAISS
    if (O.faiss) die("built without faiss (install libfaiss-dev and reconfigure)");
#endif
    Data D;
    char err[512];
    size_t dq = 0, nq_all = 0;
    if (ds_fmnist_load(O.data.c_str(), 0, &D.base, &D.n, &D.d, err, sizeof err)) die(err);
    if (ds_fmnist_load(O.data.c_str(), 1, &D.qs, &nq_all, &dq, err, sizeof err)) die(err);
    size_t n_gt = 0;
    if (ds_ivecs_load(O.gt.c_str(), &D.gt, &n_gt, &D.gt_dim, err, sizeof err)) die(err);
    if (dq != D.d || n_gt < nq_all || D.gt_dim < kK) die("dataset and ground truth disagree");
    D.nq = std::min(O.queries, nq_all);
    if (O.base && O.base < D.n) {
        D.n = O.base;
        exact_ground_truth(D);
    }
    for (size_t q = 0; q < D.nq; q++)
        D.d10.push_back(exact_d2(
            D.qs + q * D.d, D.base + static_cast<size_t>(D.gt[q * D.gt_dim + kK - 1]) * D.d, D.d));
    std::printf(
        "iqdb-bench-ann: Fashion-MNIST %zu x %zu, %zu queries, k = %zu, L2; iqdb %s, "
        "SIMD %s; hnswlib 0.6.2 (-mavx2 -mfma); reps %d, build reps %d\n",
        D.n, D.d, D.nq, kK, iqdb_version(),
        iqdb_simd_name(iqdb_simd_available(IQDB_SIMD_AVX512) ? IQDB_SIMD_AVX512 : IQDB_SIMD_AVX2),
        O.reps, O.build_reps);
    std::fflush(stdout);

    // ---- 1-thread builds that the searches use; RSS growth across each ----------------------
    std::vector<Engine *> engines;
    std::map<std::string, std::vector<double>> build1, build2;
    {
        auto *e = new IqdbEngine;
        e->name = "iqdb";
        e->label = "iqdb HNSW m=16 efc=200";
        size_t r0 = rss_bytes();
        e->db = iqdb_build(D, IQDB_SIMD_AUTO, 1, &e->build_s);
        e->rss_delta = rss_bytes() - r0;
        iqdb_stats st;
        std::memset(&st, 0, sizeof st);
        st.struct_size = sizeof st;
        iqdb_stats_get(e->db, &st);
        e->bytes = st.mem_total;
        iqdb_search_params_init(&e->p);
        build1["iqdb"].push_back(e->build_s);
        engines.push_back(e);
        std::printf("built iqdb (1 thread): %.1f s\n", e->build_s);
        std::fflush(stdout);
    }
    auto add_hnswlib = [&](const HnswlibApi &api, const char *name, const char *label) {
        auto *e = new HnswlibEngine;
        e->name = name;
        e->label = label;
        size_t r0 = rss_bytes();
        e->ix = hnswlib_build(D, api, 1, &e->build_s);
        e->rss_delta = rss_bytes() - r0;
        e->bytes = api.bytes(e->ix);
        e->set_ef_fn = api.set_ef;
        e->search_fn = api.search;
        e->destroy_fn = api.destroy;
        build1[name].push_back(e->build_s);
        engines.push_back(e);
        std::printf("built %s (1 thread): %.1f s\n", name, e->build_s);
        std::fflush(stdout);
    };
    add_hnswlib(kHnswlibAvx2, "hnswlib", "hnswlib 0.6.2 M=16 efc=200 (-mavx2 -mfma)");
    if (O.quant) {
        const struct {
            const char *name, *label;
            uint32_t flags, open_flags;
        } qv[] = {{"iqdb-sq8", "iqdb HNSW m=16 efc=200, SQ8 codes, oversample 4", 0, 0},
                  {"iqdb-sq8-co", "iqdb HNSW m=16 efc=200, SQ8 codes only, oversample 4",
                   IQDB_QUANT_CODES_ONLY, 0},
                  {"iqdb-sq8-file",
                   "iqdb HNSW m=16 efc=200, SQ8 codes, oversample 4, vectors in a mapped file", 0,
                   IQDB_VECTORS_IN_FILE}};
        for (const auto &v : qv) {
            auto *e = new IqdbEngine;
            e->name = v.name;
            e->label = v.label;
            if (v.open_flags) e->path = temp_db_path();
            size_t r0 = rss_bytes();
            e->db = iqdb_build(D, IQDB_SIMD_AUTO, 1, &e->build_s, IQDB_QUANT_SQ8, v.flags,
                               v.open_flags, e->path);
            e->rss_delta = rss_bytes() - r0;
            iqdb_stats st;
            std::memset(&st, 0, sizeof st);
            st.struct_size = sizeof st;
            iqdb_stats_get(e->db, &st);
            e->bytes = st.mem_total;
            iqdb_search_params_init(&e->p);
            build1[v.name].push_back(e->build_s);
            engines.push_back(e);
            std::printf("built %s (1 thread): %.1f s (vectors %.0f B + %.0f B mapped, codes %.0f "
                        "B, index %.0f B per vector)\n",
                        v.name, e->build_s, static_cast<double>(st.mem_vectors) / D.n,
                        static_cast<double>(st.mapped_vectors) / D.n,
                        static_cast<double>(st.mem_codes) / D.n,
                        static_cast<double>(st.mem_index) / D.n);
            std::fflush(stdout);
            if (v.flags || v.open_flags) continue;
            // the same database with a shortlist of k (oversample 1): the walk's width is then
            // the ef of the sweep (with 4 it is at least 40), so the curve reaches lower recall
            auto *e1 = new IqdbEngine;
            e1->name = "iqdb-sq8-os1";
            e1->label = "iqdb-sq8's database, params.oversample = 1";
            e1->db = e->db;
            e1->owns = false;
            iqdb_search_params_init(&e1->p);
            e1->p.oversample = 1;
            engines.push_back(e1);
        }
    }
    if (O.variants) {
        auto *e = new IqdbEngine;
        e->name = "iqdb-avx2";
        e->label = "iqdb HNSW, kernels forced to AVX2";
        size_t r0 = rss_bytes();
        e->db = iqdb_build(D, IQDB_SIMD_AVX2, 1, &e->build_s);
        e->rss_delta = rss_bytes() - r0;
        iqdb_search_params_init(&e->p);
        engines.push_back(e);
        std::printf("built iqdb-avx2 (1 thread): %.1f s\n", e->build_s);
        add_hnswlib(kHnswlibAvx512, "hnswlib-avx512",
                    "hnswlib 0.6.2 M=16 efc=200 (-mavx2 -mfma -mavx512f)");
    }
#ifdef IQDB_BENCH_HAVE_FAISS
    if (O.faiss) {
        auto *e = new FaissEngine;
        e->name = "faiss";
#ifdef IQDB_BENCH_FAISS_AVX2
        e->label = "faiss 1.7.3 IndexHNSWFlat M=16 efc=200 (built -DFAISS_OPT_LEVEL=avx2)";
#else
        e->label = "faiss 1.7.3 IndexHNSWFlat M=16 efc=200 (Debian generic build)";
#endif
        omp_set_num_threads(1);
        size_t r0 = rss_bytes();
        e->ix = new faiss::IndexHNSWFlat(static_cast<int>(D.d), 16);
        e->ix->hnsw.efConstruction = 200;
        double t0 = clock_s();
        e->ix->add(static_cast<faiss::Index::idx_t>(D.n), D.base);
        e->build_s = clock_s() - t0;
        e->rss_delta = rss_bytes() - r0;
        engines.push_back(e);
        std::printf("built faiss (1 thread): %.1f s\n", e->build_s);
        std::fflush(stdout);
    }
#endif

    // ---- build times: 1 and 2 threads, alternating ----------------------------------------
    for (int r = 0; r < O.build_reps; r++) {
        for (unsigned th : {1u, 2u}) {
            if (th == 2 && !O.threads) continue;
            if (th == 1 && r == 0) continue; // the first 1-thread builds are above
            double s;
            iqdb_close(iqdb_build(D, IQDB_SIMD_AUTO, th, &s));
            (th == 1 ? build1 : build2)["iqdb"].push_back(s);
            std::printf("built iqdb (%u threads): %.1f s\n", th, s);
            std::fflush(stdout);
            kHnswlibAvx2.destroy(hnswlib_build(D, kHnswlibAvx2, th, &s));
            (th == 1 ? build1 : build2)["hnswlib"].push_back(s);
            std::printf("built hnswlib (%u threads): %.1f s\n", th, s);
            std::fflush(stdout);
        }
    }

    // ---- the search sweep, interleaved --------------------------------------------------------
    for (Engine *e : engines) {
        e->qps.assign(O.efs.size(), {});
        e->recall.assign(O.efs.size(), NAN);
        e->dists.assign(O.efs.size(), NAN);
    }
    for (int r = 0; r < O.reps; r++)
        for (size_t i = 0; i < O.efs.size(); i++)
            for (Engine *e : engines) {
                e->set_ef(O.efs[i]);
                double rec, dist, t = run_queries(*e, D, D.nq, &rec, &dist);
                if (r > 0 && rec != e->recall[i])
                    std::printf("note: %s ef %zu recall changed between runs (%.4f, %.4f)\n",
                                e->name.c_str(), O.efs[i], e->recall[i], rec);
                e->recall[i] = rec;
                e->dists[i] = dist;
                e->qps[i].push_back(static_cast<double>(D.nq) / t);
            }

    // ---- report ---------------------------------------------------------------------------------
    std::printf("\nsingle-thread search, one query at a time (median of %d interleaved runs)\n",
                O.reps);
    std::printf("%6s", "ef");
    for (Engine *e : engines) std::printf(" | %-14s recall     QPS", e->name.c_str());
    std::printf(" | iqdb dist/q\n");
    for (size_t i = 0; i < O.efs.size(); i++) {
        std::printf("%6zu", O.efs[i]);
        for (Engine *e : engines)
            std::printf(" | %14s %6.4f %7s", "", e->recall[i], num(median(e->qps[i])).c_str());
        std::printf(" | %7s\n", num(engines[0]->dists[i]).c_str());
    }
    const double targets[3] = {0.90, 0.95, 0.99};
    std::printf("\nQPS at recall@10 (interpolated per run; median)\n");
    std::string js = "{\n  \"queries\": " + std::to_string(D.nq) + ",\n  \"engines\": {";
    for (size_t ei = 0; ei < engines.size(); ei++) {
        Engine *e = engines[ei];
        std::printf("  %-15s", e->name.c_str());
        js +=
            std::string(ei ? "," : "") + "\n    \"" + e->name + "\": {\"label\": \"" + e->label +
            "\", \"build_1t_s\": " +
            num(median(build1[e->name].empty() ? std::vector<double>{e->build_s} : build1[e->name]),
                2) +
            ", \"bytes_per_vector\": " + num(static_cast<double>(e->bytes) / D.n, 1) +
            ", \"rss_per_vector\": " + num(static_cast<double>(e->rss_delta) / D.n, 1) +
            ", \"curve\": [";
        for (size_t i = 0; i < O.efs.size(); i++)
            js += std::string(i ? ", " : "") + "[" + std::to_string(O.efs[i]) + ", " +
                  num(e->recall[i], 4) + ", " + num(median(e->qps[i])) + "]";
        js += "], \"qps_at\": {";
        for (int t = 0; t < 3; t++) {
            std::vector<double> per;
            for (int r = 0; r < O.reps; r++) {
                std::vector<double> q;
                for (size_t i = 0; i < O.efs.size(); i++) q.push_back(e->qps[i][r]);
                per.push_back(qps_at(e->recall, q, targets[t]));
            }
            double m = median(per);
            std::printf("  @%.2f %8s", targets[t], num(m).c_str());
            js += std::string(t ? ", " : "") + "\"" + num(targets[t], 2) +
                  "\": " + (std::isfinite(m) ? num(m) : "null");
        }
        js += "}}";
        std::printf("   %s\n", e->label.c_str());
    }
    js += "\n  },\n  \"ratios\": {";
    std::printf("\nratios against hnswlib (median of per-run ratios)\n");
    Engine *base = engines[1];
    bool first = true;
    for (Engine *e : engines) {
        if (e == base) continue;
        std::printf("  %-15s", e->name.c_str());
        for (int t = 0; t < 3; t++) {
            std::vector<double> per;
            for (int r = 0; r < O.reps; r++) {
                std::vector<double> qa, qb;
                for (size_t i = 0; i < O.efs.size(); i++) {
                    qa.push_back(e->qps[i][r]);
                    qb.push_back(base->qps[i][r]);
                }
                per.push_back(qps_at(e->recall, qa, targets[t]) /
                              qps_at(base->recall, qb, targets[t]));
            }
            double m = median(per);
            std::printf("  @%.2f %6sx", targets[t], num(m, 2).c_str());
            js += std::string(first ? "" : ", ") + "\"" + e->name + "@" + num(targets[t], 2) +
                  "\": " + (std::isfinite(m) ? num(m, 3) : "null");
            first = false;
        }
        std::printf("\n");
    }
    std::printf("\nbuild (s, median)        1 thread   2 threads   speed-up\n");
    js += "},\n  \"builds\": {";
    first = true;
    for (const char *name : {"iqdb", "hnswlib"}) {
        double b1 = median(build1[name]), b2 = median(build2[name]);
        std::printf("  %-20s %9s %11s %9sx\n", name, num(b1, 1).c_str(), num(b2, 1).c_str(),
                    num(b1 / b2, 2).c_str());
        js += std::string(first ? "" : ", ") + "\"" + name + "\": [" + num(b1, 2) + ", " +
              num(b2, 2) + "]";
        first = false;
    }
    std::printf("  build time iqdb / hnswlib: 1 thread %sx, 2 threads %sx\n",
                num(median(build1["iqdb"]) / median(build1["hnswlib"]), 2).c_str(),
                num(median(build2["iqdb"]) / median(build2["hnswlib"]), 2).c_str());
    std::printf("\nmemory per vector         accounted      RSS growth of the first build\n");
    for (Engine *e : engines)
        std::printf("  %-20s %9s B %12s B\n", e->name.c_str(),
                    e->bytes ? num(static_cast<double>(e->bytes) / D.n).c_str() : "-",
                    num(static_cast<double>(e->rss_delta) / D.n).c_str());
    js += "}\n}\n";
    if (!O.json.empty()) {
        FILE *f = std::fopen(O.json.c_str(), "w");
        if (!f || std::fputs(js.c_str(), f) < 0 || std::fclose(f)) die("cannot write " + O.json);
    }
    for (Engine *e : engines) delete e;
    std::free(D.base);
    std::free(D.qs);
    std::free(D.gt);
    return 0;
}
