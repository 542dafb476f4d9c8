/*
 * harness.h — what the durability tests share: seeded workloads of upserts, deletes, batches,
 * checkpoints and reopens over a small id space; a model of the expected state after every
 * prefix of a workload; and the oracle that compares a reopened database with it (every record
 * byte for byte, metadata included; count; iqdb_check; exact search against brute force).
 *
 * Records 0 .. H_IDS-1 are named by u64 ids, records H_IDS .. H_RECS-1 by byte keys (h_key:
 * one-byte keys such as 0x01 beside the u64 1, 8-byte keys equal to a u64's little-endian bytes,
 * keys with zero bytes and bytes that are not UTF-8), so every workload mixes the two kinds and
 * the WAL and snapshots it leaves hold keyed rows and keyed records.
 */
#ifndef IQDBT_HARNESS_H
#define IQDBT_HARNESS_H

#include "../common/testutil.h"
/* after testutil.h, which allows libc allocation next to the internal headers */
#include "../common/simfs.h"

enum { H_DIM = 8, H_IDS = 24, H_RECS = 2 * H_IDS, H_MAX_OPS = 96, H_BATCH = 5 };
enum { H_UPSERT, H_DELETE, H_BATCH_UPSERT, H_CHECKPOINT, H_REOPEN };

typedef struct h_op {
    int kind;
    int n; /* batch size */
    uint64_t ids[H_BATCH];
    int versions[H_BATCH];
} h_op;

typedef struct h_workload {
    const char *name;
    iqdb_sync sync;
    iqdb_compression codec;
    uint64_t checkpoint_bytes;
    int n_ops;
    h_op ops[H_MAX_OPS];
    iqdb_index_kind index; /* 0: the default (flat) */
} h_workload;

/* What every id holds after a prefix of the workload (version 0 = absent). */
typedef struct h_state {
    int version[H_RECS];
} h_state;

/* The byte key of record r >= H_IDS (into buf, room for 8); returns its length. */
static inline size_t h_key(uint64_t r, uint8_t *buf) {
    uint64_t k = r - H_IDS;
    switch (k % 3) {
    case 0: buf[0] = (uint8_t)k; return 1; /* 0x00, 0x03, ...: beside the u64 0, 3, ... */
    case 1:
        for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(k >> (8 * i)); /* a u64's bytes */
        return 8;
    default:
        memcpy(buf, "d\0\xff", 3);
        buf[3] = (uint8_t)k;
        return 4;
    }
}

static inline void h_vec(float *v, uint64_t id, int version) {
    iqdbt_rng r = {id * 1000003u + (uint64_t)version * 7919u + 17};
    iqdbt_fill(&r, v, H_DIM, -1.0f, 1.0f);
}

/* Metadata of a version: none for some, and keys that appear over time (k0 .. k9). */
static inline iqdb_meta *h_meta(uint64_t id, int version) {
    if ((id + (uint64_t)version) % 3 == 0) return NULL;
    iqdb_meta *m;
    iqdb_meta_create(NULL, &m);
    char key[8];
    snprintf(key, sizeof key, "k%d", version % 10);
    iqdb_meta_set_int(m, key, (int64_t)(id * 100 + (uint64_t)version));
    iqdb_meta_set_string(m, "tag", version % 2 ? "odd" : "even");
    return m;
}

static inline void h_generate(h_workload *w, uint64_t seed, int n_ops, int with_reopen) {
    iqdbt_rng r = {seed};
    int version = 0;
    w->n_ops = n_ops;
    for (int i = 0; i < n_ops; i++) {
        h_op *o = &w->ops[i];
        memset(o, 0, sizeof *o);
        unsigned p = (unsigned)(iqdbt_next(&r) % 100);
        o->n = 1;
        o->ids[0] = iqdbt_next(&r) % H_RECS;
        uint64_t base = o->ids[0] >= H_IDS ? H_IDS : 0; /* a batch names one kind */
        o->versions[0] = ++version;
        if (p < 55) {
            o->kind = H_UPSERT;
        } else if (p < 72) {
            o->kind = H_DELETE;
        } else if (p < 86) {
            o->kind = H_BATCH_UPSERT;
            o->n = 2 + (int)(iqdbt_next(&r) % (H_BATCH - 1));
            for (int j = 1; j < o->n; j++) {
                o->ids[j] = j == 2 ? o->ids[0] : base + iqdbt_next(&r) % H_IDS; /* a duplicate */
                o->versions[j] = ++version;
            }
        } else if (p < 95 || !with_reopen) {
            o->kind = H_CHECKPOINT;
        } else {
            o->kind = H_REOPEN;
        }
    }
}

static inline void h_apply(h_state *s, const h_op *o) {
    if (o->kind == H_UPSERT || o->kind == H_BATCH_UPSERT)
        for (int j = 0; j < o->n; j++) s->version[o->ids[j]] = o->versions[j];
    if (o->kind == H_DELETE) s->version[o->ids[0]] = 0;
}

static inline void h_options(const h_workload *w, iqdb_options *o, const iqdb_allocator *al) {
    iqdb_options_init(o, H_DIM, IQDB_METRIC_L2);
    o->sync = w->sync;
    o->compression = w->codec;
    o->checkpoint_bytes = w->checkpoint_bytes;
    o->threads = 1;
    o->index = w->index;
    if (al) o->allocator = *al;
}

/* Runs one operation; returns its status. *db may be replaced (reopen) or become NULL. */
static inline int h_run_op(iqdb **db, const h_workload *w, const h_op *o, const char *path,
                           const iqdb_allocator *al) {
    if (!*db) return IQDB_MISUSE;
    float v[H_BATCH * H_DIM];
    iqdb_meta *m[H_BATCH] = {0};
    uint8_t kb[H_BATCH][8];
    const void *keys[H_BATCH];
    size_t kl[H_BATCH];
    const int keyed = o->ids[0] >= H_IDS;
    for (int j = 0; keyed && j < o->n; j++) {
        kl[j] = h_key(o->ids[j], kb[j]);
        keys[j] = kb[j];
    }
    int rc = IQDB_OK;
    switch (o->kind) {
    case H_UPSERT:
        h_vec(v, o->ids[0], o->versions[0]);
        m[0] = h_meta(o->ids[0], o->versions[0]);
        rc = keyed ? iqdb_upsert_key(*db, kb[0], kl[0], v, m[0])
                   : iqdb_upsert(*db, o->ids[0], v, m[0]);
        break;
    case H_DELETE:
        rc = keyed ? iqdb_delete_key(*db, kb[0], kl[0], NULL) : iqdb_delete(*db, o->ids[0], NULL);
        break;
    case H_BATCH_UPSERT:
        for (int j = 0; j < o->n; j++) {
            h_vec(v + j * H_DIM, o->ids[j], o->versions[j]);
            m[j] = h_meta(o->ids[j], o->versions[j]);
        }
        if (keyed)
            rc = iqdb_upsert_batch_key(*db, (size_t)o->n, keys, kl, v, (const iqdb_meta *const *)m);
        else
            rc = iqdb_upsert_batch(*db, (size_t)o->n, o->ids, v, (const iqdb_meta *const *)m);
        break;
    case H_CHECKPOINT: rc = iqdb_checkpoint(*db); break;
    case H_REOPEN: {
        rc = iqdb_close(*db);
        *db = NULL;
        iqdb_options opt;
        h_options(w, &opt, al);
        int orc = iqdb_open(path, &opt, db);
        if (rc == IQDB_OK) rc = orc;
        break;
    }
    }
    for (int j = 0; j < H_BATCH; j++) iqdb_meta_destroy(m[j]);
    return rc;
}

/* ---- the oracle ---------------------------------------------------------------------------- */

typedef struct h_seen {
    int present[H_RECS];
    float vec[H_RECS][H_DIM];
    char meta[H_RECS][96];
    uint64_t count;
} h_seen;

static inline void h_meta_text(const iqdb_meta *m, char *out, size_t cap) {
    size_t used = 0;
    out[0] = 0;
    for (size_t i = 0; m && i < iqdb_meta_count(m); i++) {
        const char *k;
        iqdb_value v;
        iqdb_meta_at(m, i, &k, &v);
        int n = v.type == IQDB_TYPE_INT
                    ? snprintf(out + used, cap - used, "%s=%lld;", k, (long long)v.u.i)
                    : snprintf(out + used, cap - used, "%s=%.*s;", k, (int)v.u.s.len, v.u.s.ptr);
        if (n > 0) used += (size_t)n;
        if (used >= cap) break;
    }
}

static inline int h_read(iqdb *db, h_seen *s) {
    memset(s, 0, sizeof *s);
    for (uint64_t id = 0; id < H_RECS; id++) {
        iqdb_meta *m = NULL;
        uint8_t kb[8];
        int rc = id >= H_IDS ? iqdb_get_key(db, kb, h_key(id, kb), s->vec[id], &m)
                             : iqdb_get(db, id, s->vec[id], &m);
        if (rc != IQDB_OK && rc != IQDB_NOTFOUND) return rc;
        s->present[id] = rc == IQDB_OK;
        if (m) h_meta_text(m, s->meta[id], sizeof s->meta[id]);
        iqdb_meta_destroy(m);
    }
    return iqdb_count(db, &s->count);
}

/* 1 when what was read equals state `st`, byte for byte. */
static inline int h_equal(const h_seen *s, const h_state *st) {
    uint64_t count = 0;
    for (int id = 0; id < H_RECS; id++) {
        int want = st->version[id] != 0;
        if (s->present[id] != want) return 0;
        if (!want) continue;
        count++;
        float v[H_DIM];
        char mt[96];
        h_vec(v, (uint64_t)id, st->version[id]);
        if (memcmp(v, s->vec[id], sizeof v)) return 0;
        iqdb_meta *m = h_meta((uint64_t)id, st->version[id]);
        h_meta_text(m, mt, sizeof mt);
        iqdb_meta_destroy(m);
        if (strcmp(mt, s->meta[id])) return 0;
    }
    return count == s->count; /* nothing invented outside the record range either */
}

/* Exact search equals brute force over the expected state (double precision, sorted); so does
 * the index's own search (an HNSW search with ef = 64 >= H_IDS is exact, so a recovered graph
 * that lost or misplaced a node fails here). */
static inline int h_search_ok(iqdb *db, const h_state *st, uint64_t seed) {
    for (int q = 0; q < 6; q++) {
        float qv[H_DIM];
        iqdbt_rng r = {seed + (uint64_t)(q / 2)};
        iqdbt_fill(&r, qv, H_DIM, -1.0f, 1.0f);
        double dist[H_RECS];
        int order[H_RECS], n = 0;
        for (int id = 0; id < H_RECS; id++) {
            if (!st->version[id]) continue;
            float v[H_DIM];
            h_vec(v, (uint64_t)id, st->version[id]);
            dist[id] = iqdbt_dist(IQDB_METRIC_L2, qv, v, H_DIM);
            int k = n++;
            while (k > 0 && dist[order[k - 1]] > dist[id]) {
                order[k] = order[k - 1];
                k--;
            }
            order[k] = id;
        }
        iqdb_hit hits[5];
        size_t got;
        iqdb_search_params p;
        iqdb_search_params_init(&p);
        p.exact = q % 2 == 0;
        if (iqdb_search(db, qv, 5, &p, hits, &got, NULL) != IQDB_OK) return 0;
        if (got != (size_t)(n < 5 ? n : 5)) return 0;
        for (size_t i = 0; i < got; i++) {
            if (fabs(hits[i].distance - dist[order[i]]) > 1e-4) return 0;
            if (order[i] < H_IDS) {
                if (iqdb_hit_has_key(&hits[i]) || hits[i].id != (uint64_t)order[i]) return 0;
                continue;
            }
            uint8_t want[8], k[8]; /* a keyed hit gives its key back */
            size_t wl = h_key((uint64_t)order[i], want), kl;
            if (!iqdb_hit_has_key(&hits[i]) ||
                iqdb_hit_key(db, &hits[i], k, sizeof k, &kl) != IQDB_OK || kl != wl ||
                memcmp(k, want, wl))
                return 0;
        }
    }
    return 1;
}

#endif
