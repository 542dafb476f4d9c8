/*
 * ivf.h — the inverted-file index (and the flat index with a quantizer, which is the same
 * machinery with one list). See ivf.c for the algorithm, the training policy and the byte
 * layout of serialize / load.
 */
#ifndef IQDB_IVF_H
#define IQDB_IVF_H

#include "index/index.h"

typedef struct iqdb__ivf iqdb__ivf;

/* `single`: a flat index with a quantizer (one list, every code scanned). */
int iqdb__ivf_create(const iqdb__env *env, const iqdb_options *o, int single, iqdb__ivf **out);
void iqdb__ivf_destroy(iqdb__ivf *v);
int iqdb__ivf_insert(iqdb__ivf *v, const iqdb__env *env, uint32_t slot, const float *vec);
void iqdb__ivf_remove(iqdb__ivf *v, const iqdb__env *env, uint32_t slot);
int iqdb__ivf_maintain(iqdb__ivf *v, const iqdb__env *env);
int iqdb__ivf_optimize(iqdb__ivf *v, const iqdb__env *env);
/* After a training of IVF-Flat: renumbers the store's slots so that each list's rows are
 * consecutive (see ivf.c, "Row order"). Never fails (out of memory: the order stays). */
void iqdb__ivf_reorder_store(iqdb__ivf *v, const iqdb__env *env, iqdb__store *store);
int iqdb__ivf_search(const iqdb__ivf *v, const iqdb__env *env, const iqdb__query *q,
                     iqdb__scratch *s, iqdb__topk *top, iqdb__sinfo *info);
int iqdb__ivf_search_batch(const iqdb__ivf *v, const iqdb__env *env, const iqdb__batch *b);
int iqdb__ivf_serialize(const iqdb__ivf *v, const iqdb__env *env, iqdb__sink *sink);
int iqdb__ivf_load(iqdb__ivf *v, const iqdb__env *env, iqdb__source *src);
size_t iqdb__ivf_mem(const iqdb__ivf *v);
/* Codes only: the decoded vector of a trained row. IQDB_OK or IQDB_ERROR (not in a list). */
int iqdb__ivf_vector(const iqdb__ivf *v, const iqdb__env *env, uint32_t slot, float *out);
void iqdb__ivf_describe(const iqdb__ivf *v, iqdb__index_desc *d);
int iqdb__ivf_check(const iqdb__ivf *v, const iqdb__env *env);

/* The row count at which an untrained index trains itself (tests use it). */
uint64_t iqdb__ivf_train_threshold(const iqdb__ivf *v);

#endif
