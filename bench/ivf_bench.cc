// ivf_bench.cc — iqdb-bench-ivf: the IVF index and quantizers on Fashion-MNIST, side by side with
// faiss IndexIVFFlat, IndexIVFPQ and IndexScalarQuantizer, all in one process run.
//
// Dataset: Debian's dataset-fashion-mnist (60,000 base x 784, pixels as float32 0..255), L2,
// k = 10, ground truth /work/shared/data/fashion-mnist-784-euclidean.gt100.ivecs. Recall@10 is
// tie-aware: a hit at the same exact (integer) squared distance as the true 10th neighbour counts.
//
// Every configuration is one index built once; its knob (IVF: n_probes; a flat quantized index:
// the re-ranking oversample factor) is swept, and every sweep point is timed single-threaded, one
// query at a time, over --queries queries. The repetitions are interleaved (rep 1 of every point
// of every configuration, then rep 2, ...). QPS at recall 0.90 / 0.95 / 0.99 is interpolated
// linearly on each curve between the two sweep points around the target, per rep; the table
// shows medians, and iqdb/faiss ratios are the median of the per-rep ratios.
//
// Build: "iqdb build" is iqdb_upsert_batch of all rows (which trains automatically as the row
// count crosses 1,024, 8,192 ... rows) and "train" is iqdb_optimize (k-means on all 60,000 rows,
// reassignment, encoding) — the work faiss' train + add do. Both are timed with 1 and 2 threads.
// Memory: bytes per vector by component from iqdb_stats (everything iqdb allocated); for faiss
// the sizes of its structures (inverted lists' codes and ids, coarse centroids, PQ tables).
//
// --base N uses the first N rows of the base set (a second scale); its ground truth is then
// computed here by an exact iqdb search (params.exact, batched over 2 threads).
//
//   iqdb-bench-ivf [--queries N] [--base N] [--reps R] [--nlist L] [--pq-m M] [--no-faiss] [--json
//   PATH]
//                  [--data DIR] [--gt PATH] [--only NAME,NAME...]
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif
#include "bench_util.h"
#include "datasets.h"
#include "iqdb.h"
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#ifdef IQDB_BENCH_HAVE_FAISS
#include <faiss/IndexFlat.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/IndexScalarQuantizer.h>
#include <faiss/invlists/InvertedLists.h>
#endif

#ifndef IQDB_BENCH_FAISS_LABEL
#define IQDB_BENCH_FAISS_LABEL \
    "Debian faiss 1.7.3 (generic build: its own loops are not vectorised)"
#endif

namespace {

using namespace iqdb_bench;

constexpr size_t kK = 10;
const char *const kDefaultGt = "/work/shared/data/fashion-mnist-784-euclidean.gt100.ivecs";
const double kTargets[3] = {0.90, 0.95, 0.99};

struct Args {
    size_t queries = 2000;
    size_t base = 0; // use the first `base` rows only (0 = all); ground truth is then computed
    int reps = 3;
    uint32_t nlist = 1024;
    uint32_t pq_m = 98;
    bool faiss = true;
    std::string json;
    std::string data_dir = DS_FMNIST_DIR;
    std::string gt = kDefaultGt;
    std::string dir; // where the vectors-in-file databases go (default $TMPDIR or /tmp)
    std::vector<std::string> only; // run the configurations whose names contain one of these
    bool wants(const std::string &name) const {
        if (only.empty()) return true;
        for (const auto &o : only)
            if (name.find(o) != std::string::npos) return true;
        return false;
    }
};

Args parse_args(int argc, char **argv) {
    Args a;
    for (int i = 1; i < argc; i++) {
        std::string o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : nullptr;
        if (o == "--queries")
            a.queries = parse_size("--queries", v, 1), i++;
        else if (o == "--base")
            a.base = parse_size("--base", v, 1), i++;
        else if (o == "--reps")
            a.reps = static_cast<int>(std::min<size_t>(parse_size("--reps", v, 1), 100)), i++;
        else if (o == "--nlist")
            a.nlist = static_cast<uint32_t>(parse_size("--nlist", v, 1)), i++;
        else if (o == "--pq-m")
            a.pq_m = static_cast<uint32_t>(parse_size("--pq-m", v, 1)), i++;
        else if (o == "--no-faiss")
            a.faiss = false;
        else if (o == "--json" && v)
            a.json = v, i++;
        else if (o == "--data" && v)
            a.data_dir = v, i++;
        else if (o == "--gt" && v)
            a.gt = v, i++;
        else if (o == "--dir" && v)
            a.dir = v, i++;
        else if (o == "--only" && v) {
            std::string s = v;
            for (size_t p = 0; p <= s.size();) {
                size_t q = s.find(',', p);
                if (q == std::string::npos) q = s.size();
                if (q > p) a.only.push_back(s.substr(p, q - p));
                p = q + 1;
            }
            i++;
        } else {
            std::printf(
                "usage: %s [--queries N] [--base N] [--reps R] [--nlist L] [--pq-m M] [--no-faiss] "
                "[--json PATH] [--data DIR] [--gt PATH] [--dir DIR] [--only NAME,NAME...]\n",
                argv[0]);
            std::exit(o == "-h" || o == "--help" ? 0 : 1);
        }
    }
    return a;
}

// One index with a swept knob.
struct Config {
    std::string name, lib, knob;
    std::vector<uint32_t> params;
    std::function<void(uint32_t param, const float *q, int64_t *ids, size_t *n)> search;
    std::vector<double> recall;           // per param
    std::vector<std::vector<double>> qps; // [param][rep]
    double build_s[2] = {NAN, NAN}, train_s[2] = {NAN, NAN};
    std::vector<std::pair<std::string, double>> mem; // bytes per vector by component
    double mem_total = 0;                            // bytes per vector
    iqdb *file_db = nullptr; // the handle, when its vectors are in a mapped file
};

// QPS at recall target t on one rep's curve, linearly between the sweep points around t; NaN
// when the curve never reaches t; the cheapest point's QPS when it already does.
double qps_at(const Config &c, int rep, double t) {
    for (size_t i = 0; i < c.params.size(); i++) {
        if (c.recall[i] < t) continue;
        if (i == 0) return c.qps[0][rep];
        double r0 = c.recall[i - 1], r1 = c.recall[i], q0 = c.qps[i - 1][rep], q1 = c.qps[i][rep];
        return q0 + (q1 - q0) * (t - r0) / (r1 - r0);
    }
    return NAN;
}

extern "C" int iqdb_bench_evict_vectors(iqdb *db); // vec_evict.c

// A line of /proc/self/status ("RssFile:" ...) in kB; -1 where there is none (not Linux).
long status_kb(const char *key) {
    FILE *st = std::fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = std::strlen(key);
    while (st && std::fgets(line, sizeof line, st))
        if (!std::strncmp(line, key, n)) v = std::strtol(line + n, nullptr, 10);
    if (st) std::fclose(st);
    return v;
}

double median_of(std::vector<double> v) {
    v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return std::isnan(x); }), v.end());
    if (v.empty()) return NAN;
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// The directory of the vectors-in-file databases: made on first use, emptied at exit.
std::string &db_dir() {
    static std::string d;
    return d;
}
std::string db_path(const std::string &parent) {
    static int n = 0;
    if (db_dir().empty()) {
        const char *t = std::getenv("TMPDIR");
        std::string tmpl = (parent.empty() ? std::string(t && *t ? t : "/tmp") : parent) +
                           "/iqdb-bench-ivf-XXXXXX";
        std::vector<char> buf(tmpl.begin(), tmpl.end());
        buf.push_back('\0');
        if (!mkdtemp(buf.data())) die("cannot make a directory from " + tmpl);
        db_dir() = buf.data();
    }
    return db_dir() + "/db" + std::to_string(n++);
}

iqdb *open_iqdb(uint32_t dim, iqdb_index_kind kind, iqdb_quant q, uint32_t qflags, uint32_t nlist,
                uint32_t pq_m, uint32_t threads, uint32_t flags = 0, const std::string &dir = "") {
    iqdb_options o;
    iqdb_options_init(&o, dim, IQDB_METRIC_L2);
    o.index = kind;
    o.ivf.n_lists = kind == IQDB_INDEX_IVF ? nlist : 0;
    o.quant.kind = q;
    o.quant.pq_m = q == IQDB_QUANT_PQ ? pq_m : 0;
    o.quant.flags = qflags;
    o.threads = threads;
    o.flags = flags;
    std::string path;
    if (flags & IQDB_VECTORS_IN_FILE) { // a durable database; the build is not what we time
        path = db_path(dir);
        o.sync = IQDB_SYNC_NEVER;
        o.checkpoint_bytes = UINT64_MAX;
    }
    iqdb *db = nullptr;
    int rc = iqdb_open(path.empty() ? nullptr : path.c_str(), &o, &db);
    if (rc) die(std::string("iqdb_open: ") + iqdb_errmsg(nullptr));
    return db;
}

// Builds (upsert_batch) and trains (optimize) one iqdb configuration; returns the handle.
iqdb *build_iqdb(Config &c, int ti, uint32_t dim, iqdb_index_kind kind, iqdb_quant q,
                 uint32_t qflags, uint32_t nlist, uint32_t pq_m, const float *base, size_t n,
                 uint32_t flags, const std::string &dir) {
    iqdb *db =
        open_iqdb(dim, kind, q, qflags, nlist, pq_m, static_cast<uint32_t>(ti + 1), flags, dir);
    std::vector<iqdb_id> ids(n);
    for (size_t i = 0; i < n; i++) ids[i] = i;
    double t0 = now();
    if (iqdb_upsert_batch(db, n, ids.data(), base, nullptr)) die("iqdb_upsert_batch");
    double t1 = now();
    if (iqdb_optimize(db)) die("iqdb_optimize");
    double t2 = now();
    c.build_s[ti] = t1 - t0;
    c.train_s[ti] = t2 - t1;
    return db;
}

void iqdb_memory(Config &c, iqdb *db) {
    iqdb_stats s;
    std::memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    iqdb_stats_get(db, &s);
    double n = static_cast<double>(s.count);
    c.mem = {{"vectors (f32)", s.mem_vectors / n},
             {"codes", s.mem_codes / n},
             {"index (lists, centroids)", s.mem_index / n},
             {"rows (ids, seqs, norms, map)", s.mem_rows / n},
             {"scratch", s.mem_scratch / n}};
    if (s.mapped_vectors) // page cache, not heap: shown, not counted in the total
        c.mem.push_back({"(vectors in the mapped file, not heap)", s.mapped_vectors / n});
    c.mem_total = s.mem_total / n;
}

#ifdef IQDB_BENCH_HAVE_FAISS
double invlists_bytes(const faiss::InvertedLists *il) {
    auto *a = dynamic_cast<const faiss::ArrayInvertedLists *>(il);
    if (!a) return NAN;
    double b = 0;
    for (size_t i = 0; i < a->nlist; i++)
        b += static_cast<double>(a->codes[i].capacity() +
                                 a->ids[i].capacity() * sizeof(faiss::Index::idx_t));
    return b;
}
#endif

} // namespace

int main(int argc, char **argv) {
    prog_name() = "iqdb-bench-ivf";
    Args args = parse_args(argc, argv);
#ifndef IQDB_BENCH_HAVE_FAISS
    args.faiss = false;
#endif
    char err[512];
    float *base = nullptr, *qs = nullptr;
    size_t n_base, d, n_q, dq;
    if (ds_fmnist_load(args.data_dir.c_str(), 0, &base, &n_base, &d, err, sizeof err)) die(err);
    if (ds_fmnist_load(args.data_dir.c_str(), 1, &qs, &n_q, &dq, err, sizeof err)) die(err);
    int32_t *gt = nullptr;
    size_t n_gt, gt_dim;
    if (ds_ivecs_load(args.gt.c_str(), &gt, &n_gt, &gt_dim, err, sizeof err)) die(err);
    if (n_gt != n_q || gt_dim < kK || dq != d) die("ground truth and data do not match");
    const size_t nq = std::min(args.queries, n_q);
    const uint32_t dim = static_cast<uint32_t>(d);
    std::vector<int32_t> sub_gt;
    if (args.base && args.base < n_base) { // a smaller scale: exact ground truth for its rows
        n_base = args.base;
        iqdb *g = open_iqdb(dim, IQDB_INDEX_FLAT, IQDB_QUANT_NONE, 0, 0, 0, 2);
        std::vector<iqdb_id> gids(n_base);
        for (size_t i = 0; i < n_base; i++) gids[i] = i;
        if (iqdb_upsert_batch(g, n_base, gids.data(), base, nullptr)) die("ground truth upsert");
        iqdb_search_params sp;
        iqdb_search_params_init(&sp);
        sp.exact = 1;
        std::vector<iqdb_hit> hits(nq * kK);
        std::vector<size_t> nh(nq);
        if (iqdb_search_batch(g, qs, nq, kK, &sp, hits.data(), nh.data()))
            die("ground truth search");
        sub_gt.assign(nq * kK, 0);
        for (size_t i = 0; i < nq * kK; i++) sub_gt[i] = static_cast<int32_t>(hits[i].id);
        iqdb_close(g);
        gt_dim = kK;
    }
    const int32_t *truth = sub_gt.empty() ? gt : sub_gt.data();

    std::printf("iqdb-bench-ivf: Fashion-MNIST %zu x %zu, %zu queries, L2, k=%zu, %d reps "
                "(interleaved; medians), nlist %u, PQ m %u; single-thread search\n",
                n_base, d, nq, kK, args.reps, args.nlist, args.pq_m);
    std::printf("iqdb %s; faiss: %s\n", iqdb_version(),
                args.faiss ? IQDB_BENCH_FAISS_LABEL : "not run");
    std::fflush(stdout);

    std::vector<std::unique_ptr<Config>> cfgs;
    std::vector<iqdb *> dbs;
    const std::vector<uint32_t> probes = {1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64};
    auto add_iqdb = [&](const std::string &name, iqdb_index_kind kind, iqdb_quant q,
                        uint32_t qflags, const std::vector<uint32_t> &params,
                        const std::string &knob, uint32_t flags = 0) {
        if (!args.wants(name)) return;
        auto c = std::make_unique<Config>();
        c->name = name;
        c->lib = "iqdb";
        c->knob = knob;
        c->params = params;
        std::fprintf(stderr, "building %s\n", name.c_str());
        iqdb_close(build_iqdb(*c, 1, dim, kind, q, qflags, args.nlist, args.pq_m, base, n_base,
                              flags, args.dir));
        iqdb *db = build_iqdb(*c, 0, dim, kind, q, qflags, args.nlist, args.pq_m, base, n_base,
                              flags, args.dir);
        iqdb_memory(*c, db);
        dbs.push_back(db);
        if (flags & IQDB_VECTORS_IN_FILE) c->file_db = db;
        const bool ivf = kind == IQDB_INDEX_IVF;
        c->search = [db, ivf](uint32_t p, const float *qv, int64_t *ids, size_t *n) {
            iqdb_search_params sp;
            iqdb_search_params_init(&sp);
            if (ivf)
                sp.n_probes = p;
            else
                sp.oversample = p;
            iqdb_hit h[kK];
            if (iqdb_search(db, qv, kK, &sp, h, n, nullptr)) die("iqdb_search");
            for (size_t j = 0; j < *n; j++) ids[j] = static_cast<int64_t>(h[j].id);
        };
        cfgs.push_back(std::move(c));
    };
    add_iqdb("iqdb IVF-Flat", IQDB_INDEX_IVF, IQDB_QUANT_NONE, 0, probes, "n_probes");
    add_iqdb("iqdb IVF-SQ8 (re-ranked)", IQDB_INDEX_IVF, IQDB_QUANT_SQ8, 0, probes, "n_probes");
    add_iqdb("iqdb IVF-SQ8 codes only", IQDB_INDEX_IVF, IQDB_QUANT_SQ8, IQDB_QUANT_CODES_ONLY,
             probes, "n_probes");
    add_iqdb("iqdb IVF-SQ8 (re-ranked, vectors in file)", IQDB_INDEX_IVF, IQDB_QUANT_SQ8, 0, probes,
             "n_probes", IQDB_VECTORS_IN_FILE);
    add_iqdb("iqdb IVF-PQ (re-ranked)", IQDB_INDEX_IVF, IQDB_QUANT_PQ, 0, probes, "n_probes");
    add_iqdb("iqdb flat SQ8 (re-ranked)", IQDB_INDEX_FLAT, IQDB_QUANT_SQ8, 0, {1, 2, 4, 8},
             "oversample");
    add_iqdb("iqdb flat SQ8 codes only", IQDB_INDEX_FLAT, IQDB_QUANT_SQ8, IQDB_QUANT_CODES_ONLY,
             {1}, "oversample");
    add_iqdb("iqdb flat SQ8 (re-ranked, vectors in file)", IQDB_INDEX_FLAT, IQDB_QUANT_SQ8, 0,
             {1, 2, 4, 8}, "oversample", IQDB_VECTORS_IN_FILE);

#ifdef IQDB_BENCH_HAVE_FAISS
    std::vector<std::unique_ptr<faiss::Index>> findex;
    if (args.faiss) {
        const faiss::Index::idx_t N = static_cast<faiss::Index::idx_t>(n_base);
        // IVFFlat and IVFPQ: train + add with 2 threads (timing only), then 1 thread (kept)
        static const char *const fnames[3] = {"faiss IndexIVFFlat", "faiss IndexIVFPQ",
                                              "faiss IndexScalarQuantizer SQ8"};
        for (int kind = 0; kind < 3; kind++) {
            if (!args.wants(fnames[kind])) continue;
            auto c = std::make_unique<Config>();
            c->lib = "faiss";
            for (int ti = 1; ti >= 0; ti--) {
                set_faiss_threads(ti + 1);
                std::unique_ptr<faiss::Index> idx;
                faiss::IndexFlatL2 *q = nullptr;
                if (kind == 0) {
                    q = new faiss::IndexFlatL2(static_cast<faiss::Index::idx_t>(d));
                    idx.reset(new faiss::IndexIVFFlat(q, d, args.nlist));
                    c->name = "faiss IndexIVFFlat";
                } else if (kind == 1) {
                    q = new faiss::IndexFlatL2(static_cast<faiss::Index::idx_t>(d));
                    idx.reset(new faiss::IndexIVFPQ(q, d, args.nlist, args.pq_m, 8));
                    c->name = "faiss IndexIVFPQ";
                } else {
                    idx.reset(new faiss::IndexScalarQuantizer(d, faiss::ScalarQuantizer::QT_8bit,
                                                              faiss::METRIC_L2));
                    c->name = "faiss IndexScalarQuantizer SQ8";
                }
                if (auto *ivf = dynamic_cast<faiss::IndexIVF *>(idx.get())) ivf->own_fields = true;
                std::fprintf(stderr, "building %s (%d threads)\n", c->name.c_str(), ti + 1);
                double t0 = now();
                idx->train(N, base);
                double t1 = now();
                idx->add(N, base);
                double t2 = now();
                c->train_s[ti] = t1 - t0;
                c->build_s[ti] = t2 - t1;
                if (ti == 0) findex.push_back(std::move(idx));
            }
            faiss::Index *idx = findex.back().get();
            double nb = static_cast<double>(n_base);
            if (auto *ivf = dynamic_cast<faiss::IndexIVF *>(idx)) {
                double cent = static_cast<double>(args.nlist) * d * sizeof(float);
                c->mem = {
                    {"inverted lists (codes + 8-byte ids)", invlists_bytes(ivf->invlists) / nb},
                    {"coarse centroids", cent / nb}};
                if (auto *pq = dynamic_cast<faiss::IndexIVFPQ *>(idx)) {
                    c->mem.push_back(
                        {"PQ codebooks", pq->pq.centroids.size() * sizeof(float) / nb});
                    c->mem.push_back(
                        {"precomputed tables", pq->precomputed_table.size() * sizeof(float) / nb});
                }
                c->knob = "nprobe";
                c->params = probes;
                c->search = [ivf](uint32_t p, const float *qv, int64_t *ids, size_t *n) {
                    ivf->nprobe = p;
                    float D[kK];
                    faiss::Index::idx_t I[kK];
                    ivf->search(1, qv, kK, D, I);
                    *n = 0;
                    for (size_t j = 0; j < kK; j++)
                        if (I[j] >= 0) ids[(*n)++] = I[j];
                };
            } else {
                auto *sq = dynamic_cast<faiss::IndexScalarQuantizer *>(idx);
                c->mem = {{"codes", sq->codes.size() / nb},
                          {"trained ranges", sq->sq.trained.size() * sizeof(float) / nb}};
                c->knob = "-";
                c->params = {0};
                c->search = [sq](uint32_t, const float *qv, int64_t *ids, size_t *n) {
                    float D[kK];
                    faiss::Index::idx_t I[kK];
                    sq->search(1, qv, kK, D, I);
                    *n = 0;
                    for (size_t j = 0; j < kK; j++)
                        if (I[j] >= 0) ids[(*n)++] = I[j];
                };
            }
            c->mem_total = 0;
            for (auto &m : c->mem) c->mem_total += m.second;
            cfgs.push_back(std::move(c));
        }
        set_faiss_threads(1);
    }
#endif

    // ---- recall per sweep point (deterministic), then the timed reps ----
    for (auto &c : cfgs) {
        c->qps.assign(c->params.size(), {});
        for (size_t pi = 0; pi < c->params.size(); pi++) {
            std::vector<int64_t> ids(nq * kK, -1);
            std::vector<size_t> nh(nq);
            for (size_t i = 0; i < nq; i++)
                c->search(c->params[pi], qs + i * d, &ids[i * kK], &nh[i]);
            RecallResult r = recall_at_k(ids, nh, kK, nq, truth, gt_dim, base, n_base, qs, d, kK);
            if (r.bad_ids) die(c->name + ": out-of-range ids");
            c->recall.push_back(r.tie_aware);
        }
    }
    for (int rep = 0; rep < args.reps; rep++) {
        std::fprintf(stderr, "rep %d/%d\n", rep + 1, args.reps);
        for (auto &c : cfgs)
            for (size_t pi = 0; pi < c->params.size(); pi++) {
                int64_t ids[kK];
                size_t n;
                double t0 = now();
                for (size_t i = 0; i < nq; i++) c->search(c->params[pi], qs + i * d, ids, &n);
                c->qps[pi].push_back(static_cast<double>(nq) / (now() - t0));
            }
    }

    // ---- curves ----
    std::printf("\nrecall@10 and QPS (median of %d) per sweep point:\n", args.reps);
    for (auto &c : cfgs) {
        std::printf("  %-34s %s:", c->name.c_str(), c->knob.c_str());
        for (size_t pi = 0; pi < c->params.size(); pi++)
            std::printf(" %u:%.4f/%.0f", c->params[pi], c->recall[pi], median_of(c->qps[pi]));
        std::printf("\n");
    }

    // ---- QPS at recall targets, ratios against faiss IVFFlat ----
    const Config *fivf = nullptr;
    for (auto &c : cfgs)
        if (c->name == "faiss IndexIVFFlat") fivf = c.get();
    std::printf("\n%-34s %10s %10s %10s   (QPS at recall@10; median over reps)\n", "index", "@0.90",
                "@0.95", "@0.99");
    std::string json_rows;
    for (auto &c : cfgs) {
        std::printf("%-34s", c->name.c_str());
        std::string jr = "    {\"name\": " + json_str(c->name) + ", \"knob\": " + json_str(c->knob);
        for (double t : kTargets) {
            std::vector<double> v;
            for (int rep = 0; rep < args.reps; rep++) v.push_back(qps_at(*c, rep, t));
            double m = median_of(v);
            std::printf(" %10.0f", m);
            jr += ", \"qps_at_" + json_num(t) + "\": " + json_num(m);
        }
        std::printf("\n");
        if (fivf && c->lib == "iqdb") {
            std::printf("%-34s", "  ratio to faiss IndexIVFFlat");
            for (double t : kTargets) {
                std::vector<double> v;
                for (int rep = 0; rep < args.reps; rep++)
                    v.push_back(qps_at(*c, rep, t) / qps_at(*fivf, rep, t));
                std::printf(" %10.2f", median_of(v));
                jr += ", \"ratio_ivfflat_at_" + json_num(t) + "\": " + json_num(median_of(v));
            }
            std::printf("\n");
        }
        jr += ", \"build_s_1t\": " + json_num(c->build_s[0]) +
              ", \"build_s_2t\": " + json_num(c->build_s[1]) +
              ", \"train_s_1t\": " + json_num(c->train_s[0]) +
              ", \"train_s_2t\": " + json_num(c->train_s[1]) +
              ", \"bytes_per_vector\": " + json_num(c->mem_total) + ", \"recall\": [";
        for (size_t pi = 0; pi < c->params.size(); pi++)
            jr += (pi ? ", " : "") + std::string("[") + std::to_string(c->params[pi]) + ", " +
                  json_num(c->recall[pi]) + ", " + json_num(median_of(c->qps[pi])) + "]";
        json_rows += (json_rows.empty() ? "" : ",\n") + jr + "]}";
    }

    // ---- build, train, memory ----
    std::printf("\n%-34s %9s %9s %9s %9s %12s\n", "index", "build 1t", "build 2t", "train 1t",
                "train 2t", "bytes/vector");
    const double f32 = static_cast<double>(d) * sizeof(float);
    for (auto &c : cfgs) {
        std::printf("%-34s %8.2fs %8.2fs %8.2fs %8.2fs %12.0f  (%.1f%% of the f32 vectors)\n",
                    c->name.c_str(), c->build_s[0], c->build_s[1], c->train_s[0], c->train_s[1],
                    c->mem_total, 100.0 * c->mem_total / f32);
        for (auto &m : c->mem) std::printf("    %-40s %10.1f\n", m.first.c_str(), m.second);
    }
    // ---- vectors in a file, evicted: what a search costs when the re-ranked rows come from disk
    for (auto &c : cfgs) {
        if (!c->file_db) continue;
        size_t pi = 0; // the cheapest sweep point at recall 0.99 (else the last)
        while (pi + 1 < c->params.size() && c->recall[pi] < 0.99) pi++;
        long before = status_kb("RssFile:");
        int e = iqdb_bench_evict_vectors(c->file_db);
        if (e) {
            std::printf("\n%s: evicting the mapped vectors failed (%d); not measured\n",
                        c->name.c_str(), e);
            continue;
        }
        long after = status_kb("RssFile:");
        int64_t ids[kK];
        size_t n;
        double pass[2];
        for (int k = 0; k < 2; k++) { // cold (just evicted), then warm
            double t0 = now();
            for (size_t i = 0; i < nq; i++) c->search(c->params[pi], qs + i * d, ids, &n);
            pass[k] = static_cast<double>(nq) / (now() - t0);
        }
        std::printf(
            "\n%s, %s %u (recall %.4f), vectors evicted from memory first:\n"
            "    process RssFile %ld kB before the eviction, %ld kB after, %ld kB after the "
            "two passes\n    QPS first pass (re-ranked rows read from the file) %.0f, "
            "second pass %.0f, timed reps above %.0f\n",
            c->name.c_str(), c->knob.c_str(), c->params[pi], c->recall[pi], before, after,
            status_kb("RssFile:"), pass[0], pass[1], median_of(c->qps[pi]));
    }
    // the process's resident memory (Linux): anonymous (heap) and file-backed (mappings)
    std::printf("process VmRSS %ld kB, RssAnon %ld kB, RssFile %ld kB\n", status_kb("VmRSS:"),
                status_kb("RssAnon:"), status_kb("RssFile:"));
    std::printf("\niqdb build = iqdb_upsert_batch (with its automatic trainings), train = "
                "iqdb_optimize; faiss build = add, train = train. f32 vectors: %.0f bytes each.\n",
                f32);

    if (!args.json.empty()) {
        std::string j = "{\n  \"benchmark\": \"iqdb-bench-ivf\",\n  \"iqdb_version\": " +
                        json_str(iqdb_version()) + ",\n  \"faiss\": " +
                        (args.faiss ? json_str(IQDB_BENCH_FAISS_LABEL) : std::string("null")) +
                        ",\n  \"queries\": " + std::to_string(nq) +
                        ",\n  \"reps\": " + std::to_string(args.reps) +
                        ",\n  \"nlist\": " + std::to_string(args.nlist) +
                        ",\n  \"pq_m\": " + std::to_string(args.pq_m) +
                        ",\n  \"thread_env\": " + json_str(thread_env()) + ",\n  \"configs\": [\n" +
                        json_rows + "\n  ]\n}\n";
        FILE *f = std::fopen(args.json.c_str(), "w");
        if (!f || std::fputs(j.c_str(), f) < 0 || std::fclose(f) != 0)
            die("cannot write " + args.json);
    }
    for (iqdb *db : dbs) iqdb_close(db);
    if (!db_dir().empty()) { // the closed databases' snapshots and WALs
        for (int i = 0;; i++) {
            std::string p = db_dir() + "/db" + std::to_string(i);
            if (std::remove(p.c_str()) != 0) break;
            std::remove((p + ".wal").c_str());
        }
        std::remove(db_dir().c_str());
    }
    std::free(base);
    std::free(qs);
    std::free(gt);
    return 0;
}
