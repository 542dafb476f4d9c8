// ann_hnswlib.h — the interface of the two hnswlib builds linked into iqdb-bench-ann.
#ifndef IQDB_ANN_HNSWLIB_H
#define IQDB_ANN_HNSWLIB_H

#include <cstddef>
#include <cstdint>

#define ANN_HNSWLIB_DECLARE(tag)                                                            \
    extern "C" {                                                                            \
    void *ann_hnswlib_##tag##_create(size_t dim, size_t n, size_t m, size_t efc);           \
    void ann_hnswlib_##tag##_add(void *ix, const float *v, size_t label);                   \
    void ann_hnswlib_##tag##_set_ef(void *ix, size_t ef);                                   \
    size_t ann_hnswlib_##tag##_search(void *ix, const float *q, size_t k, int64_t *labels); \
    size_t ann_hnswlib_##tag##_structure_bytes(void *ix);                                   \
    void ann_hnswlib_##tag##_destroy(void *ix);                                             \
    }

ANN_HNSWLIB_DECLARE(avx2)
ANN_HNSWLIB_DECLARE(avx512)

#endif
