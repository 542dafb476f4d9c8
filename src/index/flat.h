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

#endif
