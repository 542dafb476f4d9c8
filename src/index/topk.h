/*
 * topk.h — bounded selection of the k best candidates by (distance, sequence).
 *
 * A max-heap whose root is the worst kept candidate. Keys are totally ordered: distances are
 * never NaN (iqdb__finish maps NaN to +inf) and sequence numbers are unique, so the kept set
 * does not depend on the order of pushes — which is what makes batch and single searches, and
 * searches on different threads, agree exactly.
 */
#ifndef IQDB_TOPK_H
#define IQDB_TOPK_H

#include <math.h>

#include "internal.h"

typedef struct iqdb__cand {
    float d;
    uint32_t slot;
    uint64_t seq;
} iqdb__cand;

typedef struct iqdb__topk {
    iqdb__cand *h;
    size_t n, k;
} iqdb__topk;

static inline int iqdb__cand_less(float ad, uint64_t aseq, float bd, uint64_t bseq) {
    return ad < bd || (ad == bd && aseq < bseq);
}

static inline void iqdb__topk_init(iqdb__topk *t, iqdb__cand *buf, size_t k) {
    t->h = buf;
    t->n = 0;
    t->k = k;
}

/* The distance a new candidate must not exceed to have a chance (+inf while not full). */
static inline float iqdb__topk_bound(const iqdb__topk *t) {
    return t->n < t->k ? INFINITY : t->h[0].d;
}

static inline void iqdb__topk_sift_down(iqdb__cand *h, size_t n, size_t i) {
    iqdb__cand x = h[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && iqdb__cand_less(h[c].d, h[c].seq, h[c + 1].d, h[c + 1].seq)) c++;
        if (!iqdb__cand_less(x.d, x.seq, h[c].d, h[c].seq)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

static inline void iqdb__topk_push(iqdb__topk *t, float d, uint64_t seq, uint32_t slot) {
    if (t->n < t->k) {
        size_t i = t->n++;
        while (i > 0) {
            size_t p = (i - 1) / 2;
            if (!iqdb__cand_less(t->h[p].d, t->h[p].seq, d, seq)) break;
            t->h[i] = t->h[p];
            i = p;
        }
        t->h[i].d = d;
        t->h[i].seq = seq;
        t->h[i].slot = slot;
        return;
    }
    if (t->k == 0 || !iqdb__cand_less(d, seq, t->h[0].d, t->h[0].seq)) return;
    t->h[0].d = d;
    t->h[0].seq = seq;
    t->h[0].slot = slot;
    iqdb__topk_sift_down(t->h, t->n, 0);
}

/* Sorts the kept candidates ascending, in place (heap sort). */
static inline void iqdb__topk_sort(iqdb__topk *t) {
    for (size_t n = t->n; n > 1; n--) {
        iqdb__cand x = t->h[0];
        t->h[0] = t->h[n - 1];
        t->h[n - 1] = x;
        iqdb__topk_sift_down(t->h, n - 1, 0);
    }
}

#endif
