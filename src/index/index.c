/*
 * index.c — the dispatcher (see index.h). Every switch is over the closed kind enum with no
 * default case; -Wswitch-enum turns a missing kind into a build error.
 */
#include "index/index.h"
#include "store/keys.h"

#include "index/flat.h"
#include "index/hnsw.h"
#include "index/ivf.h"

struct iqdb__index {
    iqdb__index_kind kind;
    iqdb__mem *mem;
    iqdb__hnsw *hnsw; /* IQDB__INDEX_HNSW */
    iqdb__ivf *ivf;   /* IQDB__INDEX_IVF */
};

int iqdb__index_create(iqdb__index_kind kind, const iqdb__env *env, iqdb__index **out) {
    *out = NULL;
    iqdb__index *ix = iqdb__calloc(env->mem, 1, sizeof *ix);
    if (!ix) return IQDB_NOMEM;
    ix->kind = kind;
    ix->mem = env->mem;
    int rc = IQDB_OK;
    const iqdb_options *o = env->opts;
    switch (kind) {
    case IQDB__INDEX_FLAT: break; /* no structure of its own */
    case IQDB__INDEX_HNSW: rc = iqdb__hnsw_create(env, &ix->hnsw); break;
    case IQDB__INDEX_IVF:
        rc = iqdb__ivf_create(env, o, o->index != IQDB_INDEX_IVF, &ix->ivf);
        break;
    }
    if (rc) {
        iqdb__free(env->mem, ix, sizeof *ix);
        return rc;
    }
    *out = ix;
    return IQDB_OK;
}

void iqdb__index_destroy(iqdb__index *ix) {
    if (!ix) return;
    switch (ix->kind) {
    case IQDB__INDEX_FLAT: break;
    case IQDB__INDEX_HNSW: iqdb__hnsw_destroy(ix->hnsw); break;
    case IQDB__INDEX_IVF: iqdb__ivf_destroy(ix->ivf); break;
    }
    iqdb__free(ix->mem, ix, sizeof *ix);
}

iqdb__index_kind iqdb__index_kind_of(const iqdb__index *ix) { return ix->kind; }

int iqdb__index_insert(iqdb__index *ix, const iqdb__env *env, uint32_t slot) {
    return iqdb__index_insert_batch(ix, env, &slot, 1, NULL);
}

int iqdb__index_insert_batch(iqdb__index *ix, const iqdb__env *env, const uint32_t *slots, size_t n,
                             const float *vecs) {
    switch (ix->kind) {
    case IQDB__INDEX_FLAT: return IQDB_OK; /* the scan sees the row as soon as it is live */
    case IQDB__INDEX_HNSW: return iqdb__hnsw_insert(ix->hnsw, env, slots, n, vecs);
    case IQDB__INDEX_IVF:
        for (size_t i = 0; i < n; i++) {
            const float *x = vecs ? vecs + i * env->store->dim : NULL;
            int rc = iqdb__ivf_insert(ix->ivf, env, slots[i], x);
            if (rc) { /* all or nothing */
                for (size_t j = i; j-- > 0;) iqdb__ivf_remove(ix->ivf, env, slots[j]);
                return rc;
            }
        }
        return IQDB_OK;
    }
    return IQDB_ERROR;
}

void iqdb__index_remove(iqdb__index *ix, const iqdb__env *env, uint32_t slot) {
    switch (ix->kind) {
    case IQDB__INDEX_FLAT: return;
    case IQDB__INDEX_HNSW: iqdb__hnsw_remove(ix->hnsw, env, slot); return;
    case IQDB__INDEX_IVF: iqdb__ivf_remove(ix->ivf, env, slot); return;
    }
}

int iqdb__index_maintain(iqdb__index *ix, const iqdb__env *env) {
    switch (ix->kind) {
    case IQDB__INDEX_FLAT: return 0;
    case IQDB__INDEX_HNSW: return iqdb__hnsw_maintain(ix->hnsw, env);
    case IQDB__INDEX_IVF: return iqdb__ivf_maintain(ix->ivf, env);
    }
    return 0;
}

void iqdb__index_reorder_store(iqdb__index *ix, const iqdb__env *env, iqdb__store *store) {
    switch (ix->kind) {
    case IQDB__INDEX_FLAT:
    case IQDB__INDEX_HNSW: return;
    case IQDB__INDEX_IVF: iqdb__ivf_reorder_store(ix->ivf, env, store); return;
    }
}

int iqdb__index_optimize(iqdb__index *ix, const iqdb__env *env) {
    switch (ix->kind) {
    case IQDB__INDEX_FLAT: return IQDB_OK; /* nothing to rebuild */
    case IQDB__INDEX_HNSW: return iqdb__hnsw_optimize(ix->hnsw, env);
    case IQDB__INDEX_IVF: return iqdb__ivf_optimize(ix->ivf, env);
    }
    return IQDB_ERROR;
}

int iqdb__index_search(iqdb__index *ix, const iqdb__env *env, const iqdb__query *q,
                       iqdb__scratch *s, iqdb__topk *top, iqdb__sinfo *info) {
    switch (ix->kind) {
    case IQDB__INDEX_FLAT: return iqdb__flat_search(env, q, s, top, info);
    case IQDB__INDEX_HNSW: return iqdb__hnsw_search(ix->hnsw, env, q, s, top, info);
    case IQDB__INDEX_IVF: return iqdb__ivf_search(ix->ivf, env, q, s, top, info);
    }
    return IQDB_ERROR;
}

int iqdb__index_search_batch(iqdb__index *ix, const iqdb__env *env, const iqdb__batch *b) {
    switch (ix->kind) {
    case IQDB__INDEX_FLAT: return iqdb__flat_search_batch(env, b);
    case IQDB__INDEX_HNSW: return iqdb__hnsw_search_batch(ix->hnsw, env, b);
    case IQDB__INDEX_IVF: return iqdb__ivf_search_batch(ix->ivf, env, b);
    }
    return IQDB_ERROR;
}

int iqdb__index_serialize(const iqdb__index *ix, const iqdb__env *env, iqdb__sink *sink) {
    switch (ix->kind) {
    case IQDB__INDEX_FLAT: return IQDB_OK; /* nothing beyond the rows */
    case IQDB__INDEX_HNSW: return iqdb__hnsw_serialize(ix->hnsw, env, sink);
    case IQDB__INDEX_IVF: return iqdb__ivf_serialize(ix->ivf, env, sink);
    }
    return IQDB_ERROR;
}

int iqdb__index_load(iqdb__index *ix, const iqdb__env *env, iqdb__source *src) {
    switch (ix->kind) {
    case IQDB__INDEX_FLAT: return IQDB_OK;
    case IQDB__INDEX_HNSW: return iqdb__hnsw_load(ix->hnsw, env, src);
    case IQDB__INDEX_IVF: return iqdb__ivf_load(ix->ivf, env, src);
    }
    return IQDB_ERROR;
}

int iqdb__index_vector(const iqdb__index *ix, const iqdb__env *env, uint32_t slot, float *out) {
    switch (ix->kind) {
    case IQDB__INDEX_FLAT: return IQDB_ERROR; /* the store always holds the rows */
    case IQDB__INDEX_HNSW: return iqdb__hnsw_vector(ix->hnsw, env, slot, out);
    case IQDB__INDEX_IVF: return iqdb__ivf_vector(ix->ivf, env, slot, out);
    }
    return IQDB_ERROR;
}

size_t iqdb__index_mem(const iqdb__index *ix) {
    switch (ix->kind) {
    case IQDB__INDEX_FLAT: return sizeof *ix;
    case IQDB__INDEX_HNSW: return sizeof *ix + iqdb__hnsw_mem(ix->hnsw);
    case IQDB__INDEX_IVF: return sizeof *ix + iqdb__ivf_mem(ix->ivf);
    }
    return 0;
}

void iqdb__index_describe(const iqdb__index *ix, iqdb__index_desc *d) {
    memset(d, 0, sizeof *d);
    switch (ix->kind) {
    case IQDB__INDEX_FLAT: return;
    case IQDB__INDEX_HNSW: iqdb__hnsw_describe_quant(ix->hnsw, d); return;
    case IQDB__INDEX_IVF: iqdb__ivf_describe(ix->ivf, d); return;
    }
}

int iqdb__index_check(const iqdb__index *ix, const iqdb__env *env) {
    switch (ix->kind) {
    case IQDB__INDEX_FLAT: return IQDB_OK; /* iqdb_check verifies the rows themselves */
    case IQDB__INDEX_HNSW: return iqdb__hnsw_check(ix->hnsw, env);
    case IQDB__INDEX_IVF: return iqdb__ivf_check(ix->ivf, env);
    }
    return IQDB_ERROR;
}

void iqdb__hits_from_top(const iqdb__store *st, iqdb__topk *top, iqdb_hit *hits, size_t *n) {
    iqdb__topk_sort(top);
    for (size_t i = 0; i < top->n; i++) {
        uint32_t slot = top->h[i].slot;
        /* A keyed record's hit is a handle (store/keys.h): its sequence number names the
         * version, slot + 1 (never 0) says "keyed" and where; iqdb_hit_key resolves it. */
        int keyed = iqdb__store_is_keyed((const uint8_t *const *)st->keys, slot);
        hits[i].id = keyed ? st->seqs[slot] : st->ids[slot];
        hits[i].distance = top->h[i].d;
        hits[i].reserved = keyed ? slot + 1 : 0;
    }
    *n = top->n;
}
