/*
 * flat.h — the exact index: a scan over every live row. It keeps no structure of its own (the
 * row store is the index), so insert, remove, serialize and load have nothing to do; search
 * and search_batch are the point.
 */
#ifndef IQDB_FLAT_H
#define IQDB_FLAT_H

#include "index/index.h"

int iqdb__flat_search(const iqdb__env *env, const iqdb__query *q, iqdb__scratch *s, iqdb__topk *top,
                      iqdb__sinfo *info);
int iqdb__flat_search_batch(const iqdb__env *env, const iqdb__batch *b);
/* Offers m rows with raw kernel values `raw` (slots `slots`) to `top`, at their reported
 * distance; rows that cannot enter are rejected in the raw domain first (metric.h). Shared with
 * the IVF list scan, so both report the same distance for a row. */
void iqdb__flat_push(const iqdb__env *env, float qnorm, const float *raw, const uint32_t *slots,
                     size_t m, iqdb__topk *top);

#endif
