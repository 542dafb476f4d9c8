// ann_hnswlib.cc — the hnswlib side of iqdb-bench-ann, behind a small C-style interface.
//
// hnswlib is header-only and picks its distance code at compile time (USE_AVX with -mavx,
// USE_AVX512 with -mavx512f, then a CPU check at run time). This file is compiled twice: as the
// baseline the targets are measured against (ANN_HNSWLIB_TAG=avx2, flags -mavx2 -mfma, as
// shared/peers.md measured it) and, for information, with -mavx512f (ANN_HNSWLIB_TAG=avx512).
// The second copy renames hnswlib's namespace and its global helper functions with -D, so the
// two instantiations of the same templates cannot be merged by the linker.
#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "ann_hnswlib.h"

#define ANN_CAT2(a, b) a##b
#define ANN_CAT(a, b) ANN_CAT2(a, b)
#define ANN_FN(name) ANN_CAT(ANN_CAT(ann_hnswlib_, ANN_HNSWLIB_TAG), ANN_CAT(_, name))

namespace {
struct Index {
    hnswlib::L2Space space;
    hnswlib::HierarchicalNSW<float> alg;
    Index(size_t dim, size_t n, size_t m, size_t efc)
        : space(dim), alg(&space, n, m, efc, 100 /* hnswlib's default seed */) {}
};
} // namespace

extern "C" {

void *ANN_FN(create)(size_t dim, size_t n, size_t m, size_t efc) {
    return new Index(dim, n, m, efc);
}

void ANN_FN(add)(void *ix, const float *v, size_t label) {
    static_cast<Index *>(ix)->alg.addPoint(v, label);
}

void ANN_FN(set_ef)(void *ix, size_t ef) { static_cast<Index *>(ix)->alg.setEf(ef); }

size_t ANN_FN(search)(void *ix, const float *q, size_t k, int64_t *labels) {
    auto r = static_cast<Index *>(ix)->alg.searchKnn(q, k);
    size_t n = r.size();
    for (size_t i = n; i-- > 0;) { // the queue gives the farthest first
        labels[i] = static_cast<int64_t>(r.top().second);
        r.pop();
    }
    return n;
}

// Bytes of hnswlib's own structures for n elements, from its layout: the level-0 block per
// element (links, vector, label), the upper-link pointer and blocks, levels, one std::mutex per
// element, the label map (node and bucket per entry, libstdc++), the fixed pool of label locks.
size_t ANN_FN(structure_bytes)(void *ix) {
    auto &a = static_cast<Index *>(ix)->alg;
    size_t n = a.cur_element_count, upper = 0;
    for (size_t i = 0; i < n; i++)
        if (a.element_levels_[i] > 0) upper += a.size_links_per_element_ * a.element_levels_[i];
    return a.max_elements_ *
               (a.size_data_per_element_ + sizeof(void *) + sizeof(int) + sizeof(std::mutex)) +
           upper + a.label_lookup_.size() * (2 * sizeof(void *) + 16) +
           a.label_lookup_.bucket_count() * sizeof(void *) +
           a.link_list_update_locks_.size() * sizeof(std::mutex);
}

void ANN_FN(destroy)(void *ix) { delete static_cast<Index *>(ix); }

} // extern "C"
