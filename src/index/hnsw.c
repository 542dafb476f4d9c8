/*
 * hnsw.c — the HNSW index: Malkov & Yashunin's hierarchical navigable small-world graph over the
 * row store's slots, with true deletes, a filter planner and a parallel bulk build.
 *
 * ---------------------------------------------------------------------------------------------
 * Layout
 *
 * A node is a live slot of the row store; the graph never copies vectors (it reads them from the
 * arena by slot) and never renumbers (the durability layer preserves slot numbers). Per node:
 *
 *   l0[slot * (1 + m0)]   layer 0, a fixed block of 1 + m0 u32 words: a header word, then up to
 *                         m0 = 2m neighbour slots. Header: bits 0-15 the neighbour count,
 *                         16-20 the node's level, 30 "has overflow children", 31 "present".
 *                         Fixed blocks indexed by slot: a node's neighbours are one cache-line
 *                         read away from its slot number, with no pointer to chase.
 *   um (a table by slot)  for the ~1 node in m whose level is above 0: level blocks of 1 + m
 *                         words (count, then up to m slots) for layers 1..level. A table, not a
 *                         pointer per node: 1.6 instead of 8 bytes a node at m = 16.
 *   parent[slot]          the node's reachability parent (below); ovf_head / ovf_next hold the
 *                         rare overflow edges; indeg[slot] (u16, saturating) counts the layer-0
 *                         lists holding it.
 *
 * Levels are a function of (seed, the row's sequence number): level L has probability m^-L,
 * drawn with integer thresholds (no libm), so a build is reproducible and load can verify every
 * node's level instead of trusting it.
 *
 * Distances inside the graph are "keys": the raw kernel value where the metric is monotonic in
 * it (squared L2; -dot; L1; Hamming) and the cosine distance itself for cosine (it needs both
 * norms). A search reports iqdb__finish's distance at the end; ties between equal keys go to the
 * smaller sequence number everywhere, so every search is deterministic.
 *
 * ---------------------------------------------------------------------------------------------
 * Invariants (iqdb_check verifies each; load verifies them on hostile bytes)
 *
 *  I1  a node exists exactly for each live row; its level is level(seed, seq).
 *  I2  every list holds present nodes other than itself, without duplicates, at most m0 on layer
 *      0 and m above; a node in a layer-lc list has level >= lc.
 *  I3  entry is the node of the highest level (top); root is the node with the smallest
 *      sequence number (the oldest).
 *  I4  reachability: every node z other than root has parent[z], a node OLDER than z (smaller
 *      sequence), and the edge parent[z] -> z exists, in parent's layer-0 list or in its
 *      overflow chain; root's parent is entry (edge entry -> root) unless root == entry. As
 *      parents are older, parent links form a tree rooted at root, so every node is reachable
 *      from entry on layer 0. Edges to a node's children are "pinned": list selection keeps
 *      them; the few that do not fit go to the parent's overflow chain (ovf_head[p], then
 *      ovf_next[child]), which searches traverse like list edges.
 *  I5  a chain holds exactly the parent's children that are not in its layer-0 list, and the
 *      header's overflow bit is set iff the chain is non-empty.
 *  I6  indeg[z] = the number of layer-0 lists that hold z (or HN_INDEG_MAX when that many or
 *      more).
 *
 * Why I4: standard HNSW may leave nodes unreachable (all their in-links pruned away), and with
 * deletes it gets worse; a node nothing links to can never be found. The parent tree makes
 * "every live node reachable from the entry point" an invariant that costs 12 bytes a node and a
 * handful of pinned edges, instead of a property that usually holds.
 *
 * Memory per node at m = 16: 132 bytes of layer 0, 2 of indeg, 12 of parent and chain links, ~6
 * of upper layers and their table, and the writer's 2-byte visited mark: about 154 (hnswlib:
 * 132 + an 8-byte pointer, a 4-byte level and a 40-byte mutex per node, besides vector and label).
 *
 * ---------------------------------------------------------------------------------------------
 * Algorithms
 *
 * Insert (Malkov & Yashunin algorithm 1): greedy descent from entry to the node's level, then a
 * beam search of ef_construction on each lower layer; the node's neighbours are chosen by the
 * diversity heuristic (algorithm 4: a candidate is kept unless an already kept neighbour is
 * nearer to it than the new node is). Each neighbour gets the reverse edge; a full list is
 * re-selected with the same heuristic, pinned children first. The nearest older neighbour
 * becomes the node's parent.
 *   keepPrunedConnections (topping lists up with pruned candidates) is implemented in
 *   hn_select but not used when inserting: on Fashion-MNIST (m 16, ef_construction 200) it made
 *   the build compute 4.4x more distances (every list is full, so every reverse link re-selects
 *   a list) and it is worse at recall 0.95 (0.97 already at the smallest ef, 10, for 269
 *   distances a query, against 0.95 for 238 without); it is 5 % better at 0.99. Deletes use it.
 *
 * Delete (true delete): the node's in-neighbours are found — on layer 0 from indeg, by looking
 * at its 1- and 2-hop neighbourhood and a full scan of the lists only when some are still
 * missing; on upper layers by a scan of the ~1/m nodes that have them. Each in-neighbour drops
 * the edge and re-selects its list (the repair) among its other neighbours, the deleted node's,
 * and what a short beam search (ef = 2m) from those finds, and keeps pruned candidates up to its
 * former degree. Measured (4,000 clustered 128-d points, two rounds of deleting and re-inserting
 * a random half, recall@10 at ef 16 against a fresh build of the same points): re-selecting
 * among the two lists alone lost 1.1-1.4 points; refilling to the former degree 0.9-1.1; with
 * the beam search 0.3-0.65 (one round: 0.03-0.4, while the insertion order alone moves a fresh
 * build by 0.2). The node's children are re-parented to its own parent (older than them), or to
 * the new root when the root goes. Nothing allocates: the writer's two scratches were sized by
 * the inserts.
 *
 * Search: greedy descent, then the beam search on layer 0 with ef = max(ef, k). Unvisited
 * neighbours of an expanded node are gathered first, then scored with a prefetch pipeline (see
 * hn_score: +55 % QPS). The visited set is an epoch-tagged u16 array in the per-thread scratch
 * (2 bytes a slot: 120 KB for 60,000 rows, so it stays in L2).
 *
 * Filtered search: a planner estimates the filter's selectivity by evaluating it on up to 2048
 * deterministically spread rows (stopping after 64 matches) and compares the cost of an exact
 * scan of the matching rows with the expected cost of an in-graph traversal (about
 * HN_VISITS_PER_EF * ef / selectivity nodes). In-graph, every node is traversed but only
 * matching ones enter the result set; while fewer than ef matches are known, every neighbour is
 * explored (the search widens by itself); a visit budget switches to the scan when the estimate
 * was wrong; and if the walk ends before it has ef results, the rows it never saw are swept,
 * so a filtered search always returns min(k, matching) hits (and a search with ef at least the
 * number of matching records is exact).
 *
 * ---------------------------------------------------------------------------------------------
 * Quantized graphs (options.quant.kind SQ8 or BINARY; PQ is refused by iqdb.c)
 *
 * Codes live in one array by slot (code_size bytes each, ccap >= g.cap slots), beside the graph
 * and outside it: a rebuild (optimize) or a load swaps graph and codes separately. Once the
 * quantizer is trained every graph distance is a proxy (quant.h) between a prepared float query
 * and a code: the searched vector, the row being inserted, or — when a node's own list is
 * re-selected or repaired, and for each candidate of the diversity heuristic — that node's row
 * (codes only: its decoded code). SQ8 codes are scored with the per-dimension kernel sq8_pair
 * (float query, byte code: a quarter of the bytes of a float row, through the same prefetch
 * pipeline as rows), binary codes with bits_pair (popcount). Proxy keys are never reported: of
 * the walk's max(ef, k) results the best k * oversample (options.quant.oversample, per query
 * params.oversample; SQ8 4, BINARY 16 as for IVF) by proxy are re-ranked against the
 * full-precision rows — or, codes only, against the decoded codes (iqdb__quant_rerank_code),
 * whose distances are then the ones reported. With SQ8 ef is not raised to k * oversample
 * (a narrower walk re-ranks everything it found); with binary codes it is (hn_plan_query has
 * the measurements).
 *
 * When codes are trained — the IVF rules, adapted to a graph that is built as rows arrive:
 *  - the insert that brings the store to HN_TRAIN_MIN (1,024) rows trains the quantizer on
 *    every live row and encodes them all before it links the new nodes, so a bulk build links
 *    on codes; below that the graph works on the rows. A failed or interrupted insert untrains
 *    again (nothing changed); a training that fails for memory leaves the build on rows and
 *    maintain (after the write) tries again;
 *  - while the rows are stored, maintain retrains after each HN_GROW-fold growth (ranges
 *    follow the data; every row re-encoded, the graph kept);
 *  - optimize retrains on the rows (any count; none: untrained) and rebuilds the graph on the
 *    new codes; codes only (no rows) keeps quantizer and codes and rebuilds on them.
 * Codes-only stores drop their vectors once trained (iqdb.c); new rows come with their vectors
 * (insert's vecs) and are encoded from them.
 *
 * ---------------------------------------------------------------------------------------------
 * Threads and locking
 *
 * Searches only read. A bulk insert (upsert_batch, optimize) of HN_PAR_MIN or more nodes runs
 * on the worker pool under the handle's exclusive lock: every node's level, upper block and
 * header are set up (and every allocation made) before the workers start; then each worker
 * inserts nodes taken in sequence order from a shared counter. Neighbour lists (a node's blocks
 * on every layer, its header, its overflow chain) are guarded by one of HN_STRIPES spinlocks
 * chosen by slot; a worker holds at most one stripe at a time (it copies nothing: it scores a
 * node's neighbours while holding the stripe), so there is no lock order to get wrong. indeg and
 * parent are atomics (relaxed: their readers either hold the stripe of the node that changes
 * them, or run after the pool's join). Entry and top are read under a mutex; a node that raises
 * the top level holds that mutex for its whole insert (hnswlib does the same). Single-threaded
 * builds are deterministic; parallel ones are not (the interleaving decides the graph).
 *
 * ---------------------------------------------------------------------------------------------
 * Serialized form, all integers little-endian (version 1 without a quantizer; version 2 adds
 * the quantizer block before the end magic):
 *
 *   u32 magic 0x57534e48 ("HNSW")   u32 version (1 or 2)
 *   u32 m   u32 ef_construction   u32 ef_search   u32 filter_widen   u64 seed
 *   u32 n_slots (the store's slot count when written)   u32 n_nodes
 *   u32 entry   u32 root   u32 top + 1 (0 = empty graph)
 *   n_nodes node records, in increasing slot order:
 *     u32 slot   u32 level   u32 parent (0xffffffff = none)   u32 ovf_next (0xffffffff = none)
 *     u32 ovf_head (0xffffffff = none)
 *     level + 1 lists, layer 0 first: u32 count, then count u32 slots
 *   version 2 only: u32 kind   u32 trained (0 / 1)   u32 code_size   u32 flags (bit 0: codes
 *     only)   u64 trained_rows   u64 next_train; when trained: the quantizer parameters
 *     (iqdb__quant_write), then one code per node in the node records' order
 *   u32 end magic 0x444e4548
 *
 * The store (with its slots and sequence numbers) is restored before the graph; load checks
 * every count against m, every slot against the store, and then every invariant above, so bytes
 * that do not describe a valid graph of these rows give IQDB_CORRUPT. indeg is recomputed.
 */
#include "index/hnsw.h"

#include "index/flat.h"
#include "index/metric.h"
#include "index/quant.h"
#include "observe.h"
#include "os/thread.h"

#define HN_NONE UINT32_MAX
#define HN_MAX_LEVEL 30
#define HN_CNT 0xffffu
#define HN_LVL_SHIFT 16
#define HN_LVL_MASK 0x1fu
#define HN_HAS_OVF (1u << 30)
#define HN_PRESENT (1u << 31)
#define HN_STRIPES 4096u
#define HN_INDEG_MAX UINT16_MAX
#define HN_GROUP 64u    /* overflow-chain members scored per kernel call */
#define HN_PAR_MIN 256u /* smaller batches are inserted on the calling thread */
#define HN_DEFAULT_SEED 0x2545f4914f6cdd1dull
#define HN_MAGIC 0x57534e48u
#define HN_END_MAGIC 0x444e4548u
#define HN_VERSION 1u   /* a graph without a quantizer (written as before quantizers existed) */
#define HN_VERSION_Q 2u /* version 1 plus the quantizer block */
/* Quantized graphs: rows before the first training, and the growth (x) after which the
 * quantizer is retrained while the full-precision rows are still stored (see "Quantized
 * graphs" above). */
#define HN_TRAIN_MIN 1024u
#define HN_GROW 4u
/* Planner: rows sampled to estimate a filter's selectivity, and the matches after which the
 * sample stops early. */
#define HN_SAMPLE_MAX 2048u
#define HN_SAMPLE_MATCHES 64u
/* Nodes an unfiltered layer-0 search visits per unit of ef (measured on Fashion-MNIST, m = 16:
 * 11-14 for ef 16..256); the planner's cost of an in-graph filtered search. */
#define HN_VISITS_PER_EF 12u
/* Prefetching of the rows being scored (see hn_score): the first lines of every row into L1,
 * the rest of the row HN_AHEAD rows ahead into L2. */
#define HN_PREFETCH_LINES 2u
#define HN_AHEAD 2u

/* The upper-layer blocks of the ~1/m nodes that have them, by slot: open addressing, linear
 * probing, backward-shift deletion, load at most 1/2. A pointer per node would cost 8 bytes for
 * every node; this costs about 12 * 2/(m-1) (1.6 bytes a node at m = 16). Lookups happen only on
 * upper layers (a few dozen per search). */
typedef struct hn_umap {
    uint32_t *key; /* slot, or HN_NONE */
    uint32_t **blk;
    size_t cap, n; /* cap: 0 or a power of two */
} hn_umap;

typedef struct hn_graph {
    size_t cap; /* nodes the arrays hold (>= the store's slot count after an insert) */
    uint32_t *l0;
    hn_umap um;
    _Atomic uint16_t *indeg; /* saturates at HN_INDEG_MAX ("that many or more") */
    _Atomic uint32_t *parent;
    uint32_t *ovf_head, *ovf_next;
    uint32_t entry, root;
    int top; /* -1: empty */
    uint64_t n_nodes;
    size_t up_bytes;
} hn_graph;

struct iqdb__hnsw {
    iqdb__mem *mem;
    iqdb_metric metric;
    uint32_t dim;
    uint32_t m, m0, efc, ef, widen;
    uint64_t seed;
    uint64_t thr[HN_MAX_LEVEL + 2]; /* level >= L iff r < thr[L] */
    uint32_t stride0, strideu;      /* words per block */
    uint32_t batch;                 /* neighbours scored per kernel call: max(m0, HN_GROUP) */
    hn_graph g;
    iqdb__scratch *ws;  /* the writer's scratch: single inserts and every remove */
    iqdb__scratch *ws2; /* a second one for the searches of delete repairs; it borrows ws's
                           visited array (2 bytes a node saved; see hn_repair) */
    _Atomic uint32_t *locks;
    iqdb__mutex elock;
    /* quantized storage ("Quantized graphs"): codes by slot, valid for every node once q is
     * trained; ccap >= g.cap then */
    iqdb_quant qkind;
    uint32_t oversample;
    iqdb__quant q;
    uint8_t *codes;
    size_t ccap;
    uint64_t trained_rows, next_train;
};

/* ============================================================================================ */
/* Small helpers                                                                                */
/* ============================================================================================ */

static inline size_t hn_umap_home(const hn_umap *u, uint32_t slot) {
    return (size_t)(((uint64_t)slot * 0x9e3779b97f4a7c15ull) >> 32) & (u->cap - 1);
}

/* The upper block of slot, or NULL. */
static inline uint32_t *hn_umap_get(const hn_umap *u, uint32_t slot) {
    if (!u->cap) return NULL;
    for (size_t i = hn_umap_home(u, slot);; i = (i + 1) & (u->cap - 1)) {
        if (u->key[i] == slot) return u->blk[i];
        if (u->key[i] == HN_NONE) return NULL;
    }
}

static inline uint32_t *hn_blk(const iqdb__hnsw *h, const hn_graph *g, uint32_t x, int lc) {
    if (lc == 0) return g->l0 + (size_t)x * h->stride0;
    return hn_umap_get(&g->um, x) + (size_t)(lc - 1) * h->strideu;
}
static inline uint32_t hn_hdr(const iqdb__hnsw *h, const hn_graph *g, uint32_t x) {
    return g->l0[(size_t)x * h->stride0];
}
static inline int hn_present(const iqdb__hnsw *h, const hn_graph *g, uint32_t x) {
    return x < g->cap && (hn_hdr(h, g, x) & HN_PRESENT) != 0;
}
static inline int hn_level(const iqdb__hnsw *h, const hn_graph *g, uint32_t x) {
    return (int)((hn_hdr(h, g, x) >> HN_LVL_SHIFT) & HN_LVL_MASK);
}
static inline uint32_t hn_count(const uint32_t *blk) { return blk[0] & HN_CNT; }
static inline void hn_set_count(uint32_t *blk, uint32_t n) { blk[0] = (blk[0] & ~HN_CNT) | n; }
static inline uint32_t hn_cap_at(const iqdb__hnsw *h, int lc) { return lc ? h->m : h->m0; }

static int hn_contains(const uint32_t *blk, uint32_t x) {
    uint32_t n = hn_count(blk);
    for (uint32_t i = 0; i < n; i++)
        if (blk[1 + i] == x) return 1;
    return 0;
}

static int hn_level_of(const iqdb__hnsw *h, uint64_t seq) {
    uint64_t r = iqdb__mix64(h->seed ^ iqdb__mix64(seq));
    int L = 0;
    while (L < HN_MAX_LEVEL && r < h->thr[L + 1]) L++;
    return L;
}

static inline int hn_older(const iqdb__store *st, uint32_t a, uint32_t b) {
    return st->seqs[a] < st->seqs[b];
}

/* indeg saturates: a node with HN_INDEG_MAX or more in-links keeps that value, and deleting it
 * scans every list instead of trusting the count. */
static inline void hn_indeg_inc(hn_graph *g, uint32_t x) {
    uint16_t v = atomic_load_explicit(&g->indeg[x], memory_order_relaxed);
    while (v != HN_INDEG_MAX &&
           !atomic_compare_exchange_weak_explicit(&g->indeg[x], &v, (uint16_t)(v + 1),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}
static inline void hn_indeg_dec(hn_graph *g, uint32_t x) {
    uint16_t v = atomic_load_explicit(&g->indeg[x], memory_order_relaxed);
    while (v != HN_INDEG_MAX && v != 0 &&
           !atomic_compare_exchange_weak_explicit(&g->indeg[x], &v, (uint16_t)(v - 1),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

/* Spinlock stripes (parallel builds only). */
static inline void hn_lock(const iqdb__hnsw *h, uint32_t x) {
    _Atomic uint32_t *l = &h->locks[x & (HN_STRIPES - 1)];
    for (;;) {
        if (!atomic_exchange_explicit(l, 1, memory_order_acquire)) return;
        /* Spin a little (a list is held for a few microseconds), then yield: on a machine with
         * more runnable threads than cores the holder may have been preempted, and spinning
         * would burn the time slice it needs. */
        for (unsigned spins = 0; atomic_load_explicit(l, memory_order_relaxed); spins++) {
            if (spins >= 2000) {
                iqdb__thread_yield();
                spins = 0;
                continue;
            }
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        }
    }
}
static inline void hn_unlock(const iqdb__hnsw *h, uint32_t x) {
    atomic_store_explicit(&h->locks[x & (HN_STRIPES - 1)], 0, memory_order_release);
}

/* ---- candidate heaps: ordered by (key, sequence number) -------------------------------------- */

static inline int it_less(iqdb__gitem a, iqdb__gitem b, const uint64_t *seqs) {
    return a.d < b.d || (a.d == b.d && seqs[a.slot] < seqs[b.slot]);
}

/* Max-heap (root = worst): the result set W. */
static void maxh_sift_down(iqdb__gitem *hp, size_t n, size_t i, const uint64_t *seqs) {
    iqdb__gitem x = hp[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && it_less(hp[c], hp[c + 1], seqs)) c++;
        if (!it_less(x, hp[c], seqs)) break;
        hp[i] = hp[c];
        i = c;
    }
    hp[i] = x;
}
static void maxh_push(iqdb__gitem *hp, size_t *n, iqdb__gitem x, const uint64_t *seqs) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!it_less(hp[p], x, seqs)) break;
        hp[i] = hp[p];
        i = p;
    }
    hp[i] = x;
}
/* Offers x to a max-heap bounded at cap; returns 1 if it was kept. */
static inline int maxh_offer(iqdb__gitem *hp, size_t *n, size_t cap, iqdb__gitem x,
                             const uint64_t *seqs) {
    if (*n < cap) {
        maxh_push(hp, n, x, seqs);
        return 1;
    }
    if (!it_less(x, hp[0], seqs)) return 0;
    hp[0] = x;
    maxh_sift_down(hp, *n, 0, seqs);
    return 1;
}
/* Sorts a max-heap ascending in place. */
static void maxh_sort(iqdb__gitem *hp, size_t n, const uint64_t *seqs) {
    for (size_t k = n; k > 1; k--) {
        iqdb__gitem t = hp[0];
        hp[0] = hp[k - 1];
        hp[k - 1] = t;
        maxh_sift_down(hp, k - 1, 0, seqs);
    }
}
static void maxh_heapify(iqdb__gitem *hp, size_t n, const uint64_t *seqs) {
    for (size_t i = n / 2; i-- > 0;) maxh_sift_down(hp, n, i, seqs);
}

/* Min-heap (root = best): the candidate queue C. */
static void minh_sift_down(iqdb__gitem *hp, size_t n, size_t i, const uint64_t *seqs) {
    iqdb__gitem x = hp[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && it_less(hp[c + 1], hp[c], seqs)) c++;
        if (!it_less(hp[c], x, seqs)) break;
        hp[i] = hp[c];
        i = c;
    }
    hp[i] = x;
}
static void minh_push(iqdb__gitem *hp, size_t *n, iqdb__gitem x, const uint64_t *seqs) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!it_less(x, hp[p], seqs)) break;
        hp[i] = hp[p];
        i = p;
    }
    hp[i] = x;
}
static iqdb__gitem minh_pop(iqdb__gitem *hp, size_t *n, const uint64_t *seqs) {
    iqdb__gitem top = hp[0];
    hp[0] = hp[--*n];
    if (*n) minh_sift_down(hp, *n, 0, seqs);
    return top;
}
static void minh_heapify(iqdb__gitem *hp, size_t n, const uint64_t *seqs) {
    for (size_t i = n / 2; i-- > 0;) minh_sift_down(hp, n, i, seqs);
}
/* Drops the candidates that can no longer be expanded (worse than the worst kept result), so a
 * queue of ef + one expansion never overflows: the survivors are all in W, hence at most ef. */
static void minh_compact(iqdb__gitem *hp, size_t *n, iqdb__gitem worst, const uint64_t *seqs) {
    size_t k = 0;
    for (size_t i = 0; i < *n; i++)
        if (!it_less(worst, hp[i], seqs)) hp[k++] = hp[i];
    *n = k;
    minh_heapify(hp, k, seqs);
}

/* ============================================================================================ */
/* Distances                                                                                    */
/* ============================================================================================ */

/* One query's distance context: the vector, its norm (cosine), the kernels; on a quantized
 * graph also the prepared query (iqdb__quant_query) and the codes it is scored against. */
typedef struct hn_q {
    const iqdb__hnsw *h;
    const iqdb__store *st;
    iqdb__rows_fn rows;
    iqdb__pair_fn pair;
    const float *vec;
    float qn;
    uint64_t n_dist;
    /* quantized: codes != NULL */
    const uint8_t *codes;
    size_t cs;
    iqdb__qquery qq;
    iqdb__sq8_fn sq8;
    const float *sq8s; /* the per-dimension steps (NULL for the dot kernel) */
    int sq8dot;
    iqdb__bits_fn bits;
    size_t words;
} hn_q;

static inline float hn_key(const iqdb__hnsw *h, const iqdb__store *st, float raw, float qn,
                           uint32_t slot) {
    float d;
    switch (h->metric) {
    case IQDB_METRIC_COSINE: return iqdb__finish(IQDB_METRIC_COSINE, raw, qn, st->sqnorm[slot]);
    case IQDB_METRIC_DOT: d = -raw; break;
    case IQDB_METRIC_DEFAULT:
    case IQDB_METRIC_L2:
    case IQDB_METRIC_L1:
    case IQDB_METRIC_HAMMING: d = raw; break;
    default: d = raw; break;
    }
    return d != d ? INFINITY : d;
}

/* The reported distance of a key. */
static inline float hn_report(const iqdb__hnsw *h, float key) {
    if (h->metric == IQDB_METRIC_L2 || h->metric == IQDB_METRIC_DEFAULT) return sqrtf(key);
    return key;
}

static inline float hn_norm(const iqdb__hnsw *h, const iqdb__store *st, uint32_t slot) {
    return h->metric == IQDB_METRIC_COSINE ? sqrtf(st->sqnorm[slot]) : 0.0f;
}

/* 1 when graph distances are computed on codes. */
static inline int hn_coded(const iqdb__hnsw *h) { return h->q.trained; }
static inline const uint8_t *hn_code(const iqdb__hnsw *h, uint32_t slot) {
    return h->codes + (size_t)slot * h->q.code_size;
}

/* Floats of one query region in a scratch's fbuf: the prepared query, then a decoded row;
 * even, so every region stays 8-byte aligned (binary queries hold u64 words). Three regions:
 * HN_RQ the query of a search or an insert, HN_RY the node whose list is re-selected (or
 * repaired), HN_RC a candidate of the diversity heuristic. They nest (an insert re-selects
 * its neighbours' lists, each re-selection runs the heuristic), so each has its own. */
enum { HN_RQ = 0, HN_RY = 1, HN_RC = 2, HN_NREG = 3 };
static size_t hn_region(const iqdb__hnsw *h) {
    size_t f = iqdb__quant_query_floats(&h->q) + h->dim;
    return (f + 1) & ~(size_t)1;
}
static float *hn_work(const iqdb__hnsw *h, iqdb__scratch *s, int reg) {
    /* without a quantizer there are no regions (and fbuf may be NULL) */
    if (h->qkind == IQDB_QUANT_NONE || !s->fbuf) return NULL;
    return s->fbuf + (size_t)reg * hn_region(h);
}

/* A query context for vector `vec` (|vec| = qn for cosine). On a quantized graph the query is
 * prepared in `work` (a region of hn_region floats); vec must outlive the context. */
static void hn_q_init(hn_q *Q, const iqdb__hnsw *h, const iqdb__env *env, const float *vec,
                      float qn, float *work) {
    Q->h = h;
    Q->st = env->store;
    Q->rows = env->kern->rows[env->op];
    Q->pair = env->kern->pair[env->op];
    Q->vec = vec;
    Q->qn = qn;
    Q->n_dist = 0;
    Q->codes = NULL;
    if (!hn_coded(h)) return;
    const iqdb__quant *qt = &h->q;
    iqdb__quant_query(qt, env->kern, vec, qn, work, &Q->qq);
    Q->codes = h->codes;
    Q->cs = qt->code_size;
    if (qt->kind == IQDB_QUANT_SQ8) {
        /* the proxies of quant.c: squared L2 for L2, minus the inner product for dot and
         * cosine, L1 for L1 and Hamming */
        int m = h->metric;
        int op = m == IQDB_METRIC_DOT || m == IQDB_METRIC_COSINE ? IQDB__SQ8_DOT
                 : m == IQDB_METRIC_L2                           ? IQDB__SQ8_L2SQ
                                                                 : IQDB__SQ8_L1;
        Q->sq8 = env->kern->sq8_pair[op];
        Q->sq8s = op == IQDB__SQ8_DOT ? NULL : qt->step;
        Q->sq8dot = op == IQDB__SQ8_DOT;
    } else {
        Q->sq8 = NULL;
        Q->bits = env->kern->bits_pair;
        Q->words = qt->code_size / 8u;
    }
}

/* The context of a stored node as the query: its row, or (codes only: the store holds no
 * vectors) its decoded code, kept in the region after the prepared query. */
static void hn_q_node(hn_q *Q, const iqdb__hnsw *h, const iqdb__env *env, uint32_t slot,
                      const float *vec, float *work) {
    const iqdb__store *st = env->store;
    const float *v = vec ? vec : iqdb__store_vec(st, slot);
    float qn = hn_norm(h, st, slot);
    if (!v) {
        float *dec = work + iqdb__quant_query_floats(&h->q);
        iqdb__quant_decode(&h->q, hn_code(h, slot), NULL, dec);
        if (h->metric == IQDB_METRIC_COSINE)
            qn = sqrtf(env->kern->pair[IQDB__OP_DOT](dec, dec, h->dim));
        v = dec;
    }
    hn_q_init(Q, h, env, v, qn, work);
}

/* The proxy distance (quant.h) of the prepared query to one code: smaller is nearer. */
static inline float hn_code_key(const hn_q *Q, const uint8_t *code) {
    float d;
    if (Q->sq8) {
        d = Q->sq8(Q->qq.a, Q->sq8s, code, Q->h->dim);
        if (Q->sq8dot) d = -(d + Q->qq.cst);
    } else {
        d = (float)Q->bits(Q->qq.bits, (const uint64_t *)(const void *)code, Q->words);
    }
    return d != d ? INFINITY : d;
}

/* Keys of m rows (slots ids[0..m)) against the query, into out. The vectors' first lines are
 * prefetched for all m rows before the kernel runs, so their misses overlap (the kernel itself
 * prefetches one row ahead). */
static inline void hn_prefetch_l2(const void *v, size_t from, size_t to) {
#if defined(__GNUC__) || defined(__clang__)
    for (size_t l = from; l < to; l++) __builtin_prefetch((const char *)v + l * 64, 0, 2);
#else
    (void)v, (void)from, (void)to;
#endif
}

/* Keys of m nodes on a quantized graph: the same prefetch pipeline as for rows (below) over
 * the codes, a quarter of the bytes with SQ8 (784 against 3,136 at dim 784) and 1/32 with
 * binary codes; then one asymmetric kernel call per code (float query, byte code: the
 * per-dimension scale / offset kernel of dist_quant_impl.h). */
static void hn_score_codes(hn_q *Q, const uint32_t *ids, size_t m, float *out) {
    const size_t cs = Q->cs, lines = (cs + 63) / 64;
    const size_t first = IQDB_MIN((size_t)HN_PREFETCH_LINES, lines);
    for (size_t i = 0; i < m; i++) {
        const uint8_t *c = Q->codes + (size_t)ids[i] * cs;
        for (size_t l = 0; l < first; l++) IQDB_PREFETCH(c + l * 64);
    }
    if (lines > first)
        for (size_t i = 0; i < m && i < HN_AHEAD; i++)
            hn_prefetch_l2(Q->codes + (size_t)ids[i] * cs, first, lines);
    for (size_t i = 0; i < m; i++) {
        if (lines > first && i + HN_AHEAD < m)
            hn_prefetch_l2(Q->codes + (size_t)ids[i + HN_AHEAD] * cs, first, lines);
        out[i] = hn_code_key(Q, Q->codes + (size_t)ids[i] * cs);
    }
    Q->n_dist += m;
}

/* Keys of m rows (slots ids[0..m)) against the query, into out.
 *
 * Memory is what a graph search waits for: at 784 dims each neighbour is 49 cache lines read
 * from a random place in a 188 MB arena, and without help one thread reached ~7 GB/s of its
 * ~25 GB/s (one vector after the other, each stream started cold). What helps, measured on
 * Fashion-MNIST (ef 16 and 32, queries interleaved across variants in blocks of 40):
 *  - the first HN_PREFETCH_LINES lines of every row into L1 up front, so each row's first miss
 *    overlaps the others';
 *  - the rest of row i + HN_AHEAD into L2 (prefetcht1) while row i is computed: +57 % QPS at
 *    ef 16, +54 % at ef 32 over prefetching 4 lines of each row only. L2 has room to spare (a
 *    row is 3 KB) and a larger miss queue than L1; prefetching everything at once into L1 was
 *    20 % slower, into L2 13 % faster; 1, 2 or 3 rows ahead were within 2 %.
 * Short rows (two lines or less) are scored with one kernel call. */
static void hn_score(hn_q *Q, iqdb__scratch *s, const uint32_t *ids, size_t m, float *out) {
    if (Q->codes) {
        hn_score_codes(Q, ids, m, out);
        return;
    }
    const iqdb__store *st = Q->st;
    const size_t lines = ((size_t)st->dim * sizeof(float) + 63) / 64;
    const size_t first = IQDB_MIN((size_t)HN_PREFETCH_LINES, lines);
    for (size_t i = 0; i < m; i++) {
        const float *v = iqdb__store_vec(st, ids[i]);
        s->ptrs[i] = v;
        for (size_t l = 0; l < first; l++) IQDB_PREFETCH((const char *)v + l * 64);
    }
    if (lines <= first) {
        Q->rows(Q->vec, s->ptrs, m, st->dim, out);
    } else {
        for (size_t i = 0; i < m && i < HN_AHEAD; i++) hn_prefetch_l2(s->ptrs[i], first, lines);
        for (size_t i = 0; i < m; i++) {
            if (i + HN_AHEAD < m) hn_prefetch_l2(s->ptrs[i + HN_AHEAD], first, lines);
            Q->rows(Q->vec, s->ptrs + i, 1, st->dim, out + i);
        }
    }
    for (size_t i = 0; i < m; i++) out[i] = hn_key(Q->h, st, out[i], Q->qn, ids[i]);
    Q->n_dist += m;
}

/* ============================================================================================ */
/* Graph arrays                                                                                 */
/* ============================================================================================ */

static void hn_untrain(iqdb__hnsw *h);

static void hn_graph_init(hn_graph *g) {
    memset(g, 0, sizeof *g);
    g->entry = g->root = HN_NONE;
    g->top = -1;
}

/* Room for `extra` more entries without growing later; all or nothing. */
static int hn_umap_reserve(iqdb__mem *mem, hn_umap *u, size_t extra) {
    size_t need = u->n + extra, cap = u->cap ? u->cap : 16;
    while (cap < 2 * need) cap *= 2;
    if (cap == u->cap) return IQDB_OK;
    uint32_t *key = iqdb__alloc(mem, cap * sizeof *key);
    uint32_t **blk = iqdb__alloc(mem, cap * sizeof *blk);
    if (!key || !blk) {
        iqdb__free(mem, key, cap * sizeof *key);
        iqdb__free(mem, (void *)blk, cap * sizeof *blk);
        return IQDB_NOMEM;
    }
    hn_umap nu = {key, blk, cap, 0};
    memset(key, 0xff, cap * sizeof *key);
    for (size_t i = 0; i < u->cap; i++) {
        if (u->key[i] == HN_NONE) continue;
        size_t j = hn_umap_home(&nu, u->key[i]);
        while (nu.key[j] != HN_NONE) j = (j + 1) & (cap - 1);
        nu.key[j] = u->key[i];
        nu.blk[j] = u->blk[i];
        nu.n++;
    }
    iqdb__free(mem, u->key, u->cap * sizeof *u->key);
    iqdb__free(mem, (void *)u->blk, u->cap * sizeof *u->blk);
    *u = nu;
    return IQDB_OK;
}

/* Adds slot -> blk (after a reserve). */
static void hn_umap_put(hn_umap *u, uint32_t slot, uint32_t *blk) {
    size_t i = hn_umap_home(u, slot);
    while (u->key[i] != HN_NONE) i = (i + 1) & (u->cap - 1);
    u->key[i] = slot;
    u->blk[i] = blk;
    u->n++;
}

/* Removes slot; returns its block (NULL if absent). Backward shift: no tombstones. */
static uint32_t *hn_umap_del(hn_umap *u, uint32_t slot) {
    if (!u->cap) return NULL;
    size_t i = hn_umap_home(u, slot), mask = u->cap - 1;
    while (u->key[i] != slot) {
        if (u->key[i] == HN_NONE) return NULL;
        i = (i + 1) & mask;
    }
    uint32_t *b = u->blk[i];
    for (size_t j = (i + 1) & mask; u->key[j] != HN_NONE; j = (j + 1) & mask) {
        size_t home = hn_umap_home(u, u->key[j]);
        /* the entry at j may move to the hole at i if its home is not in (i, j] */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            u->key[i] = u->key[j];
            u->blk[i] = u->blk[j];
            i = j;
        }
    }
    u->key[i] = HN_NONE;
    u->n--;
    return b;
}

static void hn_graph_free(const iqdb__hnsw *h, hn_graph *g) {
    iqdb__mem *mem = h->mem;
    for (size_t i = 0; i < g->um.cap; i++)
        if (g->um.key[i] != HN_NONE)
            iqdb__free(mem, g->um.blk[i],
                       (size_t)hn_level(h, g, g->um.key[i]) * h->strideu * sizeof(uint32_t));
    iqdb__free(mem, g->um.key, g->um.cap * sizeof *g->um.key);
    iqdb__free(mem, (void *)g->um.blk, g->um.cap * sizeof *g->um.blk);
    iqdb__free(mem, g->l0, g->cap * h->stride0 * sizeof(uint32_t));
    iqdb__free(mem, (void *)g->indeg, g->cap * sizeof *g->indeg);
    iqdb__free(mem, (void *)g->parent, g->cap * sizeof *g->parent);
    iqdb__free(mem, g->ovf_head, g->cap * sizeof *g->ovf_head);
    iqdb__free(mem, g->ovf_next, g->cap * sizeof *g->ovf_next);
    hn_graph_init(g);
}

/* Grows the per-node arrays to at least `need` nodes; all or nothing. */
static int hn_graph_grow(const iqdb__hnsw *h, hn_graph *g, size_t need) {
    if (need <= g->cap) return IQDB_OK;
    size_t ncap = g->cap ? IQDB_MAX(need, g->cap + g->cap / 2) : IQDB_MAX(need, (size_t)64);
    if (ncap > (size_t)IQDB__MAX_SLOTS) ncap = IQDB__MAX_SLOTS;
    if (ncap < need) return IQDB_NOMEM;
    iqdb__mem *mem = h->mem;
    size_t old = g->cap;
    const size_t el[5] = {h->stride0 * sizeof(uint32_t), sizeof(uint16_t), sizeof(uint32_t),
                          sizeof(uint32_t), sizeof(uint32_t)};
    void *olds[5] = {g->l0, (void *)g->indeg, (void *)g->parent, g->ovf_head, g->ovf_next};
    void *n[5] = {0};
    for (int i = 0; i < 5; i++) {
        size_t bytes;
        if (iqdb__mul_overflow(ncap, el[i], &bytes) || !(n[i] = iqdb__alloc(mem, bytes))) {
            for (int j = 0; j < i; j++) iqdb__free(mem, n[j], ncap * el[j]);
            return IQDB_NOMEM;
        }
        if (old) memcpy(n[i], olds[i], old * el[i]);
        /* new nodes: header 0 (absent), indeg 0; parent and chain links "none" */
        memset((char *)n[i] + old * el[i], i < 2 ? 0 : 0xff, (ncap - old) * el[i]);
    }
    for (int i = 0; i < 5; i++) iqdb__free(mem, olds[i], old * el[i]);
    g->l0 = n[0];
    g->indeg = n[1];
    g->parent = n[2];
    g->ovf_head = n[3];
    g->ovf_next = n[4];
    g->cap = ncap;
    return IQDB_OK;
}

static size_t hn_graph_mem(const iqdb__hnsw *h, const hn_graph *g) {
    return g->cap * (h->stride0 * sizeof(uint32_t) + sizeof(uint16_t) + 3 * sizeof(uint32_t)) +
           g->um.cap * (sizeof(uint32_t) + sizeof(uint32_t *)) + g->up_bytes;
}

/* Sizes a scratch for graph work over `cap` slots with result sets of up to `ef` (cap 0: no
 * visited array of its own). */
static int hn_scratch_prepare(const iqdb__hnsw *h, iqdb__scratch *s, size_t cap, size_t ef) {
    iqdb__mem *mem = h->mem;
    size_t rows = IQDB_MAX((size_t)h->batch, 3 * (size_t)h->m0 + 2);
    if (cap) IQDB_TRY(iqdb__scratch_marks(s, mem, cap));
    IQDB_TRY(iqdb__scratch_items(mem, &s->gw, &s->gw_cap, ef + 1));
    IQDB_TRY(iqdb__scratch_items(mem, &s->gc, &s->gc_cap, ef + h->batch + 1));
    IQDB_TRY(iqdb__scratch_items(mem, &s->gs, &s->gs_cap, 3 * (size_t)h->m0 + 2));
    IQDB_TRY(iqdb__scratch_ids(s, mem, rows));
    /* a quantized graph's query regions (hn_region), sized by the quantizer's shape */
    if (h->qkind != IQDB_QUANT_NONE)
        IQDB_TRY(iqdb__scratch_fbuf(s, mem, (size_t)HN_NREG * hn_region(h)));
    return iqdb__scratch_rows(s, mem, rows);
}

/* ============================================================================================ */
/* Create, destroy                                                                              */
/* ============================================================================================ */

static void hn_set_params(iqdb__hnsw *h, uint32_t m, uint32_t efc, uint32_t ef, uint32_t widen,
                          uint64_t seed) {
    h->m = m;
    h->m0 = 2 * m;
    h->efc = IQDB_MAX(efc, m);
    h->ef = ef;
    h->widen = widen;
    h->seed = seed;
    h->stride0 = 1 + h->m0;
    h->strideu = 1 + h->m;
    h->batch = IQDB_MAX(h->m0, HN_GROUP);
    /* level >= L with probability m^-L: r < floor(2^64 / m^L) */
    h->thr[0] = UINT64_MAX;
    uint64_t t = UINT64_MAX;
    for (int L = 1; L <= HN_MAX_LEVEL + 1; L++) {
        t /= m;
        h->thr[L] = t;
    }
}

int iqdb__hnsw_create(const iqdb__env *env, iqdb__hnsw **out) {
    *out = NULL;
    iqdb__hnsw *h = iqdb__calloc(env->mem, 1, sizeof *h);
    if (!h) return IQDB_NOMEM;
    h->mem = env->mem;
    h->metric = env->metric;
    h->dim = env->store->dim;
    const iqdb_options *o = env->opts;
    uint32_t m = o && o->hnsw.m ? o->hnsw.m : 16;
    hn_set_params(h, m, o && o->hnsw.ef_construction ? o->hnsw.ef_construction : 200,
                  o && o->hnsw.ef_search ? o->hnsw.ef_search : 64,
                  o && o->hnsw.filter_widen ? o->hnsw.filter_widen : 4,
                  o && o->hnsw.seed ? o->hnsw.seed : HN_DEFAULT_SEED);
    hn_graph_init(&h->g);
    h->qkind = o ? o->quant.kind : IQDB_QUANT_NONE;
    IQDB_ASSERT(h->qkind == IQDB_QUANT_NONE || h->qkind == IQDB_QUANT_SQ8 ||
                h->qkind == IQDB_QUANT_BINARY);
    /* SQ8 4 and binary 16, as for IVF (ivf.c: default_oversample) */
    h->oversample = o && o->quant.oversample      ? o->quant.oversample
                    : h->qkind == IQDB_QUANT_SQ8  ? 4u
                    : h->qkind == IQDB_QUANT_NONE ? 1u
                                                  : 16u;
    iqdb__quant_init(&h->q, env->mem, h->qkind, h->metric, h->dim, 0);
    h->next_train = HN_TRAIN_MIN;
    if (iqdb__mutex_init(&h->elock)) {
        iqdb__free(env->mem, h, sizeof *h);
        return IQDB_NOMEM;
    }
    h->ws = iqdb__scratch_create(env->mem);
    h->ws2 = iqdb__scratch_create(env->mem);
    if (!h->ws || !h->ws2) {
        iqdb__scratch_destroy(env->mem, h->ws);
        iqdb__scratch_destroy(env->mem, h->ws2);
        iqdb__mutex_destroy(&h->elock);
        iqdb__free(env->mem, h, sizeof *h);
        return IQDB_NOMEM;
    }
    *out = h;
    return IQDB_OK;
}

void iqdb__hnsw_destroy(iqdb__hnsw *h) {
    if (!h) return;
    hn_graph_free(h, &h->g);
    hn_untrain(h);
    iqdb__scratch_destroy(h->mem, h->ws);
    iqdb__scratch_destroy(h->mem, h->ws2);
    iqdb__free(h->mem, (void *)h->locks, HN_STRIPES * sizeof *h->locks);
    iqdb__mutex_destroy(&h->elock);
    iqdb__free(h->mem, h, sizeof *h);
}

size_t iqdb__hnsw_mem(const iqdb__hnsw *h) {
    return sizeof *h + hn_graph_mem(h, &h->g) + iqdb__scratch_mem(h->ws) +
           iqdb__scratch_mem(h->ws2) + (h->locks ? HN_STRIPES * sizeof *h->locks : 0) +
           iqdb__quant_mem(&h->q);
}

void iqdb__hnsw_describe(const iqdb__hnsw *h, iqdb__hnsw_info *out) {
    const hn_graph *g = &h->g;
    memset(out, 0, sizeof *out);
    out->nodes = g->n_nodes;
    out->top = g->top;
    out->entry = g->entry;
    out->root = g->root;
    for (size_t x = 0; x < g->cap; x++) {
        if (!hn_present(h, g, (uint32_t)x)) continue;
        out->edges0 += hn_count(hn_blk(h, g, (uint32_t)x, 0));
        for (int lc = 1; lc <= hn_level(h, g, (uint32_t)x); lc++)
            out->edges_upper += hn_count(hn_blk(h, g, (uint32_t)x, lc));
        for (uint32_t c = g->ovf_head[x]; c != HN_NONE; c = g->ovf_next[c]) out->overflow++;
    }
}

/* ============================================================================================ */
/* Walking a node's neighbours                                                                  */
/* ============================================================================================ */

/* A cursor over a node's neighbours on one layer: its list, then (layer 0) its overflow chain. */
typedef struct hn_cursor {
    const uint32_t *list;
    uint32_t n, i;
    uint32_t chain;
} hn_cursor;

static void hn_cursor_init(const iqdb__hnsw *h, const hn_graph *g, hn_cursor *c, uint32_t x,
                           int lc) {
    const uint32_t *b = hn_blk(h, g, x, lc);
    c->list = b + 1;
    c->n = hn_count(b);
    c->i = 0;
    c->chain = lc == 0 && (b[0] & HN_HAS_OVF) ? g->ovf_head[x] : HN_NONE;
}

/* Moves up to `cap` not-yet-visited neighbours into ids, marking them visited; 0 when the cursor
 * is exhausted. */
static size_t hn_gather(const hn_graph *g, hn_cursor *c, uint16_t *mark, uint16_t ep, uint32_t *ids,
                        size_t cap) {
    size_t m = 0;
    while (c->i < c->n && m < cap) {
        uint32_t y = c->list[c->i++];
        if (mark[y] != ep) {
            mark[y] = ep;
            ids[m++] = y;
        }
    }
    while (c->chain != HN_NONE && m < cap) {
        uint32_t y = c->chain;
        c->chain = g->ovf_next[y];
        if (mark[y] != ep) {
            mark[y] = ep;
            ids[m++] = y;
        }
    }
    return m;
}

/* ============================================================================================ */
/* Beam search on one layer                                                                     */
/* ============================================================================================ */

/* Malkov & Yashunin's SEARCH-LAYER. On entry s->gw[0..*nw) holds the seeds with their keys,
 * already marked with `ep`; on return it holds the best `ef` nodes found, as a max-heap of *nw
 * items. The candidate queue is compacted instead of grown (see minh_compact), so this never
 * allocates. With `par`, each expanded node's stripe is held while its neighbours are read. */
static void hn_search_layer(hn_q *Q, const hn_graph *g, iqdb__scratch *s, uint16_t ep, size_t *nw,
                            size_t ef, int lc, int par) {
    const iqdb__hnsw *h = Q->h;
    const uint64_t *seqs = Q->st->seqs;
    iqdb__gitem *W = s->gw, *C = s->gc;
    size_t nW = *nw, nC = 0;
    for (size_t i = 0; i < nW; i++) C[nC++] = W[i];
    minh_heapify(C, nC, seqs);
    maxh_heapify(W, nW, seqs);
    while (nC) {
        iqdb__gitem c = C[0];
        if (nW >= ef && it_less(W[0], c, seqs)) break; /* nothing left can improve W */
        minh_pop(C, &nC, seqs);
        if (par) hn_lock(h, c.slot);
        hn_cursor cur;
        hn_cursor_init(h, g, &cur, c.slot, lc);
        size_t m;
        while ((m = hn_gather(g, &cur, s->mark, ep, s->ids, h->batch)) > 0) {
            hn_score(Q, s, s->ids, m, s->dbuf);
            if (nC + m > s->gc_cap) minh_compact(C, &nC, W[0], seqs);
            for (size_t i = 0; i < m; i++) {
                iqdb__gitem it = {s->dbuf[i], s->ids[i]};
                if (nW < ef || it_less(it, W[0], seqs)) {
                    minh_push(C, &nC, it, seqs);
                    maxh_offer(W, &nW, ef, it, seqs);
                }
            }
        }
        if (par) hn_unlock(h, c.slot);
    }
    *nw = nW;
}

/* Greedy descent from `entry` through layers top .. stop+1; leaves the nearest node found in
 * s->gw[0] (*nw = 1). `exclude` (the node being inserted, or HN_NONE) is never visited. */
static void hn_descend(hn_q *Q, const hn_graph *g, iqdb__scratch *s, uint32_t entry, int top,
                       int stop, uint32_t exclude, size_t *nw, int par) {
    s->gw[0].slot = entry;
    hn_score(Q, s, &entry, 1, &s->gw[0].d);
    *nw = 1;
    for (int lc = top; lc > stop; lc--) {
        uint16_t ep = iqdb__scratch_epoch(s);
        if (exclude != HN_NONE) s->mark[exclude] = ep;
        s->mark[s->gw[0].slot] = ep;
        hn_search_layer(Q, g, s, ep, nw, 1, lc, par);
    }
}

/* ============================================================================================ */
/* Neighbour selection                                                                          */
/* ============================================================================================ */

#define HN_MAX_M0 256u

/* The diversity heuristic (Malkov & Yashunin algorithm 4) with keepPrunedConnections: `cand`
 * holds n candidates sorted ascending by key from `base`; a candidate is kept unless a neighbour
 * kept before it is nearer to it than `base` is (it would be reached through that neighbour);
 * then the pruned ones, nearest first, fill the list up to min(fill, M). With `pins` (layer 0),
 * base's children (parent == base) are kept first whatever their distance — they carry invariant I4
 * — and those beyond M are returned in spill[0..*nspill) for the overflow chain. Writes at most M
 * ids to out and returns their count. */
static size_t hn_select(const hn_graph *g, const iqdb__env *env, iqdb__scratch *s,
                        const iqdb__hnsw *h, uint32_t base, const iqdb__gitem *cand, size_t n,
                        size_t M, int pins, size_t fill, uint32_t *out, uint32_t *spill,
                        size_t *nspill) {
    const iqdb__store *st = env->store;
    iqdb__pair_fn pair = env->kern->pair[env->op];
    uint32_t pruned[HN_MAX_M0 + 2];
    size_t nout = 0, npr = 0;
    *nspill = 0;
    if (pins)
        for (size_t i = 0; i < n; i++) {
            uint32_t c = cand[i].slot;
            if (atomic_load_explicit(&g->parent[c], memory_order_relaxed) != base) continue;
            if (nout < M)
                out[nout++] = c;
            else
                spill[(*nspill)++] = c;
        }
    for (size_t i = 0; i < n && nout < M; i++) {
        uint32_t c = cand[i].slot;
        if (pins && atomic_load_explicit(&g->parent[c], memory_order_relaxed) == base) continue;
        int good = 1;
        if (hn_coded(h) && nout) { /* c as the query against the kept nodes' codes */
            hn_q Qc;
            hn_q_node(&Qc, h, env, c, NULL, hn_work(h, s, HN_RC));
            for (size_t j = 0; j < nout && good; j++)
                if (hn_code_key(&Qc, hn_code(h, out[j])) < cand[i].d) good = 0;
        } else {
            const float *vc = iqdb__store_vec(st, c);
            float nc = hn_norm(h, st, c);
            for (size_t j = 0; j < nout && good; j++)
                if (hn_key(h, st, pair(vc, iqdb__store_vec(st, out[j]), st->dim), nc, out[j]) <
                    cand[i].d)
                    good = 0;
        }
        if (good)
            out[nout++] = c;
        else if (npr < M)
            pruned[npr++] = c;
    }
    for (size_t j = 0; j < npr && nout < IQDB_MIN(fill, M); j++) out[nout++] = pruned[j];
    return nout;
}

/* Sorts graph items ascending by (key, sequence). */
static void hn_sort_items(iqdb__gitem *it, size_t n, const uint64_t *seqs) {
    maxh_heapify(it, n, seqs);
    maxh_sort(it, n, seqs);
}

static void hn_chain_push(const iqdb__hnsw *h, hn_graph *g, uint32_t p, uint32_t c) {
    g->ovf_next[c] = g->ovf_head[p];
    g->ovf_head[p] = c;
    g->l0[(size_t)p * h->stride0] |= HN_HAS_OVF;
}

static void hn_chain_remove(const iqdb__hnsw *h, hn_graph *g, uint32_t p, uint32_t c) {
    uint32_t *pp = &g->ovf_head[p];
    while (*pp != HN_NONE && *pp != c) pp = &g->ovf_next[*pp];
    if (*pp == c) {
        *pp = g->ovf_next[c];
        g->ovf_next[c] = HN_NONE;
    }
    if (g->ovf_head[p] == HN_NONE) g->l0[(size_t)p * h->stride0] &= ~HN_HAS_OVF;
}

static int hn_in(const uint32_t *a, size_t n, uint32_t x) {
    for (size_t i = 0; i < n; i++)
        if (a[i] == x) return 1;
    return 0;
}

/* Re-selects y's list on layer lc from the candidates in s->ids[0..n) (distinct, not y), and
 * installs it: indeg follows the change, children that do not fit go to y's overflow chain.
 * The caller holds y's stripe in a parallel build. */
static void hn_reselect(iqdb__hnsw *h, const iqdb__env *env, iqdb__scratch *s, uint32_t y, size_t n,
                        int lc, size_t fill) {
    hn_graph *g = &h->g;
    const iqdb__store *st = env->store;
    hn_q Qy;
    hn_q_node(&Qy, h, env, y, NULL, hn_work(h, s, HN_RY));
    hn_score(&Qy, s, s->ids, n, s->dbuf);
    for (size_t i = 0; i < n; i++) {
        s->gs[i].d = s->dbuf[i];
        s->gs[i].slot = s->ids[i];
    }
    hn_sort_items(s->gs, n, st->seqs);
    uint32_t out[HN_MAX_M0 + 2], spill[HN_MAX_M0 + 2];
    size_t nsp, M = hn_cap_at(h, lc);
    size_t nsel = hn_select(g, env, s, h, y, s->gs, n, M, lc == 0, fill, out, spill, &nsp);
    uint32_t *b = hn_blk(h, g, y, lc);
    if (lc == 0) {
        uint32_t old = hn_count(b);
        for (uint32_t i = 0; i < old; i++)
            if (!hn_in(out, nsel, b[1 + i])) hn_indeg_dec(g, b[1 + i]);
        for (size_t i = 0; i < nsel; i++)
            if (!hn_contains(b, out[i])) hn_indeg_inc(g, out[i]);
    }
    for (size_t i = 0; i < nsel; i++) b[1 + i] = out[i];
    hn_set_count(b, (uint32_t)nsel);
    for (size_t i = 0; i < nsp; i++) hn_chain_push(h, g, y, spill[i]);
}

/* Adds the edge y -> x on layer lc: the reverse link of an insert, or (as_parent) the pinned
 * edge that makes y the parent of x. A full list is re-selected among its members and x. */
static void hn_link(iqdb__hnsw *h, const iqdb__env *env, iqdb__scratch *s, uint32_t y, uint32_t x,
                    int lc, int par, int as_parent) {
    hn_graph *g = &h->g;
    if (par) hn_lock(h, y);
    if (as_parent) atomic_store_explicit(&g->parent[x], y, memory_order_relaxed);
    uint32_t *b = hn_blk(h, g, y, lc);
    uint32_t n = hn_count(b);
    if (!hn_contains(b, x)) {
        if (n < hn_cap_at(h, lc)) {
            b[1 + n] = x;
            hn_set_count(b, n + 1);
            if (lc == 0) hn_indeg_inc(g, x);
        } else {
            for (uint32_t i = 0; i < n; i++) s->ids[i] = b[1 + i];
            s->ids[n] = x;
            hn_reselect(h, env, s, y, n + 1, lc, 0);
        }
    }
    if (par) hn_unlock(h, y);
}

/* ============================================================================================ */
/* Insert                                                                                       */
/* ============================================================================================ */

/* Links node x (present, level set, lists empty, its code written on a quantized graph) into
 * the graph. xv: its vector when the caller has it (a codes-only store keeps none), else NULL.
 * Never fails. */
static void hn_insert_node(iqdb__hnsw *h, const iqdb__env *env, iqdb__scratch *s, uint32_t x,
                           const float *xv, int par) {
    hn_graph *g = &h->g;
    const iqdb__store *st = env->store;
    const uint64_t *seqs = st->seqs;
    const int L = hn_level_of(h, seqs[x]); /* not from x's header: other workers write it */
    hn_q Q;
    hn_q_node(&Q, h, env, x, xv, hn_work(h, s, HN_RQ));

    /* 1. the current entry point; a node that raises the top level keeps the lock */
    if (par) iqdb__mutex_lock(&h->elock);
    uint32_t entry = g->entry;
    int top = g->top;
    if (top < 0) {
        g->entry = g->root = x;
        g->top = L;
        if (par) iqdb__mutex_unlock(&h->elock);
        return;
    }
    int hold = par && L > top;
    if (par && !hold) iqdb__mutex_unlock(&h->elock);

    /* 2. greedy descent to layer L + 1 */
    size_t nW;
    hn_descend(&Q, g, s, entry, top, L, x, &nW, par);

    /* 3. layers min(L, top) .. 0: beam search, select, link both ways */
    uint32_t parent = HN_NONE;
    for (int lc = IQDB_MIN(L, top); lc >= 0; lc--) {
        uint16_t ep = iqdb__scratch_epoch(s);
        s->mark[x] = ep;
        for (size_t i = 0; i < nW; i++) s->mark[s->gw[i].slot] = ep;
        hn_search_layer(&Q, g, s, ep, &nW, h->efc, lc, par);
        maxh_sort(s->gw, nW, seqs);
        uint32_t out[HN_MAX_M0 + 2], spill[HN_MAX_M0 + 2];
        size_t nsp, M = hn_cap_at(h, lc);
        size_t nsel = hn_select(g, env, s, h, x, s->gw, nW, M, 0, 0, out, spill, &nsp);
        /* In a parallel build another worker may have reached x through a higher layer and
         * linked to it on this one already: merge, do not overwrite. */
        if (par) hn_lock(h, x);
        uint32_t *b = hn_blk(h, g, x, lc);
        uint32_t had = hn_count(b);
        if (had == 0) {
            for (size_t i = 0; i < nsel; i++) b[1 + i] = out[i];
            hn_set_count(b, (uint32_t)nsel);
            if (lc == 0)
                for (size_t i = 0; i < nsel; i++) hn_indeg_inc(g, out[i]);
        } else {
            size_t k = 0;
            for (uint32_t i = 0; i < had; i++) s->ids[k++] = b[1 + i];
            for (size_t i = 0; i < nsel; i++)
                if (!hn_in(s->ids, had, out[i])) s->ids[k++] = out[i];
            hn_reselect(h, env, s, x, k, lc, 0);
        }
        if (par) hn_unlock(h, x);
        if (lc == 0) {
            /* the nearest older neighbour becomes the parent (in a parallel build a selected
             * neighbour may be a newer node inserted concurrently) */
            for (size_t i = 0; i < nsel && parent == HN_NONE; i++)
                if (hn_older(st, out[i], x)) parent = out[i];
        }
        for (size_t i = 0; i < nsel; i++)
            hn_link(h, env, s, out[i], x, lc, par, lc == 0 && out[i] == parent);
    }
    /* No older neighbour (only possible in a parallel build): the root, older than every
     * node, adopts x. */
    if (parent == HN_NONE && g->root != x) hn_link(h, env, s, g->root, x, 0, par, 1);

    /* 4. a new top level: x becomes the entry point, and root's parent (I4) */
    if (L > top) {
        if (!par) {
            g->entry = x;
            g->top = L;
        }
        uint32_t root = g->root, old = atomic_load_explicit(&g->parent[root], memory_order_relaxed);
        hn_link(h, env, s, x, root, 0, par, 1);
        if (old != HN_NONE) {
            if (par) hn_lock(h, old);
            if (!hn_contains(hn_blk(h, g, old, 0), root)) hn_chain_remove(h, g, old, root);
            if (par) hn_unlock(h, old);
        }
        if (par) {
            g->entry = x;
            g->top = L;
        }
    }
    if (hold) iqdb__mutex_unlock(&h->elock);
}

typedef struct hn_build {
    iqdb__hnsw *h;
    const iqdb__env *env;
    const uint32_t *slots;
    const float *vecs; /* row i's vector at vecs + i * dim, or NULL */
    size_t n;
    _Atomic size_t next;
    iqdb__scratch **sc;
    _Atomic size_t done; /* nodes linked, for progress reports */
    size_t done0;        /* linked before the run (the first node of an empty graph) */
    size_t total;
    _Atomic int stop;
} hn_build;

/* Every HN_POLL linked nodes a builder asks env->lc (progress, interrupts) whether to go on. */
#define HN_POLL 256u

static void hn_build_task(void *arg, size_t task) {
    hn_build *b = arg;
    iqdb__scratch *s = b->sc[task];
    while (!atomic_load_explicit(&b->stop, memory_order_relaxed)) {
        size_t i = atomic_fetch_add_explicit(&b->next, 1, memory_order_relaxed);
        if (i >= b->n) break;
        hn_insert_node(b->h, b->env, s, b->slots[i],
                       b->vecs ? b->vecs + i * (size_t)b->h->dim : NULL, 1);
        size_t d = atomic_fetch_add_explicit(&b->done, 1, memory_order_relaxed) + 1 + b->done0;
        if (b->env->lc && d % HN_POLL == 0 && iqdb__long_poll(b->env->lc, d, b->total))
            atomic_store_explicit(&b->stop, 1, memory_order_relaxed);
    }
}

/* x (top level L) leaves the graph's arrays: its upper block, header, parent, in-degree and
 * overflow chain. Edges to and from it are the caller's business (remove repairs them; an
 * unbuild clears nodes nothing links to, or the whole graph). */
static void hn_forget(iqdb__hnsw *h, hn_graph *g, uint32_t x, int L) {
    size_t ub = (size_t)L * h->strideu * sizeof(uint32_t);
    iqdb__free(h->mem, hn_umap_del(&g->um, x), ub);
    g->up_bytes -= ub;
    g->l0[(size_t)x * h->stride0] = 0;
    atomic_store_explicit(&g->parent[x], HN_NONE, memory_order_relaxed);
    atomic_store_explicit(&g->indeg[x], 0, memory_order_relaxed);
    g->ovf_head[x] = g->ovf_next[x] = HN_NONE;
    g->n_nodes--;
}

/* An interrupted bulk insert: slots[0, linked) are in the graph, slots[linked, n) have headers
 * only (no edge leads to or from them). The graph goes back to holding none of the n. */
static void hn_unbuild(iqdb__hnsw *h, const iqdb__env *env, const uint32_t *slots, size_t n,
                       size_t linked, int was_empty) {
    hn_graph *g = &h->g;
    const iqdb__store *st = env->store;
    /* an empty graph before: every node goes, edges and all, without repairs */
    size_t from = was_empty ? 0 : linked;
    for (size_t i = from; i < n; i++) hn_forget(h, g, slots[i], hn_level_of(h, st->seqs[slots[i]]));
    if (was_empty) {
        g->entry = g->root = HN_NONE;
        g->top = -1;
        return;
    }
    /* the linked ones leave like deleted nodes, newest first: their neighbours are repaired */
    for (size_t i = linked; i-- > 0;) iqdb__hnsw_remove(h, env, slots[i]);
}

/* Workers for a build of n nodes: 1 below HN_PAR_MIN, else the pool's width. */
static unsigned hn_build_width(const iqdb__env *env, size_t n) {
    return n >= HN_PAR_MIN ? iqdb__pool_width(env->pool) : 1;
}

/* ---- the quantizer ------------------------------------------------------------------------- */

static void hn_codes_free(const iqdb__hnsw *h, uint8_t *codes, size_t ccap) {
    iqdb__free(h->mem, codes, ccap * h->q.code_size);
}

/* Trains a fresh quantizer (*nq) on every live row and encodes them all into a new array of
 * `cap` codes (*ncodes; dead slots zero). Needs the store's vectors. IQDB_OK, or IQDB_NOMEM
 * with nothing allocated. */
static int hn_train(const iqdb__hnsw *h, const iqdb__env *env, size_t cap, iqdb__quant *nq,
                    uint8_t **ncodes) {
    const iqdb__store *st = env->store;
    const size_t n = (size_t)st->count, cs = h->q.code_size;
    IQDB_ASSERT(!st->no_vectors && cap >= st->n_slots);
    iqdb__quant_init(nq, h->mem, h->qkind, h->metric, h->dim, 0);
    *ncodes = NULL;
    size_t xb = IQDB_MAX(n, (size_t)1) * sizeof(float *), wb = (size_t)h->dim * sizeof(float);
    const float **xs = iqdb__alloc(h->mem, xb);
    float *work = iqdb__alloc(h->mem, wb);
    uint8_t *codes = iqdb__calloc(h->mem, IQDB_MAX(cap, (size_t)1), cs);
    int rc = xs && work && codes ? IQDB_OK : IQDB_NOMEM;
    size_t k = 0;
    for (size_t x = 0; rc == IQDB_OK && x < st->n_slots; x++)
        if (st->live[x]) xs[k++] = iqdb__store_vec(st, (uint32_t)x);
    if (rc == IQDB_OK) {
        iqdb__qtrain t = {xs, NULL, k, env->kern, env->pool, h->seed};
        rc = iqdb__quant_train(nq, &t);
    }
    for (size_t x = 0; rc == IQDB_OK && x < st->n_slots; x++)
        if (st->live[x])
            iqdb__quant_encode(nq, env->kern, iqdb__store_vec(st, (uint32_t)x), NULL, work,
                               codes + x * cs);
    iqdb__free(h->mem, (void *)xs, xb);
    iqdb__free(h->mem, work, wb);
    if (rc) {
        iqdb__free(h->mem, codes, IQDB_MAX(cap, (size_t)1) * cs);
        iqdb__quant_clear(nq);
        return rc;
    }
    *ncodes = codes;
    return IQDB_OK;
}

/* The quantizer and codes in use become (q, codes, ccap); the old ones are returned in the
 * same variables, so a swap undoes a swap. */
static void hn_swap_quant(iqdb__hnsw *h, iqdb__quant *q, uint8_t **codes, size_t *ccap) {
    iqdb__quant tq = h->q;
    uint8_t *tc = h->codes;
    size_t tcap = h->ccap;
    h->q = *q;
    h->codes = *codes;
    h->ccap = *ccap;
    *q = tq;
    *codes = tc;
    *ccap = tcap;
}

/* Frees a quantizer and codes that are no longer in use. */
static void hn_drop_quant(iqdb__hnsw *h, iqdb__quant *q, uint8_t *codes, size_t ccap) {
    iqdb__free(h->mem, codes, ccap * q->code_size);
    iqdb__quant_clear(q);
}

/* Trains on the live rows and installs the result (codes for `cap` slots). */
static int hn_retrain(iqdb__hnsw *h, const iqdb__env *env, size_t cap) {
    iqdb__quant nq;
    uint8_t *nc;
    IQDB_TRY(hn_train(h, env, cap, &nq, &nc));
    size_t ncap = IQDB_MAX(cap, (size_t)1);
    hn_swap_quant(h, &nq, &nc, &ncap);
    hn_drop_quant(h, &nq, nc, ncap);
    h->trained_rows = env->store->count;
    h->next_train = h->trained_rows * HN_GROW;
    return IQDB_OK;
}

/* Back to untrained (no codes). */
static void hn_untrain(iqdb__hnsw *h) {
    hn_codes_free(h, h->codes, h->ccap);
    iqdb__quant_clear(&h->q);
    h->codes = NULL;
    h->ccap = 0;
    h->trained_rows = 0;
    h->next_train = HN_TRAIN_MIN;
}

/* Codes for at least `need` slots (existing codes kept, new ones zero); all or nothing. */
static int hn_codes_grow(iqdb__hnsw *h, size_t need) {
    if (need <= h->ccap) return IQDB_OK;
    const size_t cs = h->q.code_size;
    uint8_t *n = iqdb__calloc(h->mem, need, cs);
    if (!n) return IQDB_NOMEM;
    if (h->ccap) memcpy(n, h->codes, h->ccap * cs);
    hn_codes_free(h, h->codes, h->ccap);
    h->codes = n;
    h->ccap = need;
    return IQDB_OK;
}

int iqdb__hnsw_insert(iqdb__hnsw *h, const iqdb__env *env, const uint32_t *slots, size_t n,
                      const float *vecs) {
    if (n == 0) return IQDB_OK;
    hn_graph *g = &h->g;
    const iqdb__store *st = env->store;
    iqdb__mem *mem = h->mem;

    /* 1. every allocation, before the graph changes. A quantized graph that reaches
     * HN_TRAIN_MIN rows trains here, on every live row (these included), so a bulk build links
     * its nodes on codes; if that fails for memory the build runs on the rows and maintain
     * trains later. A failed insert untrains again: nothing changed. */
    IQDB_TRY(hn_graph_grow(h, g, st->n_slots));
    int trained_now = 0;
    if (h->qkind != IQDB_QUANT_NONE && !hn_coded(h) && st->count >= HN_TRAIN_MIN && !st->no_vectors)
        trained_now = hn_retrain(h, env, g->cap) == IQDB_OK;
    int rc = hn_coded(h) ? hn_codes_grow(h, g->cap) : IQDB_OK;
    if (rc == IQDB_OK) rc = hn_scratch_prepare(h, h->ws, g->cap, h->efc);
    if (rc == IQDB_OK) rc = hn_scratch_prepare(h, h->ws2, 0, 4 * (size_t)h->m0);
    if (rc) {
        if (trained_now) hn_untrain(h);
        return rc;
    }
    unsigned width = hn_build_width(env, n);
    iqdb__scratch *sc[IQDB_MAX_THREADS];
    sc[0] = h->ws;
    unsigned made = 1;
    /* Extra workers are an optimisation: if their memory is not there, build on one thread. */
    if (width > 1 && !h->locks) {
        h->locks = iqdb__calloc(mem, HN_STRIPES, sizeof *h->locks);
        if (!h->locks) width = 1;
    }
    for (; made < width; made++) {
        sc[made] = iqdb__scratch_create(mem);
        if (!sc[made] || hn_scratch_prepare(h, sc[made], g->cap, h->efc)) {
            iqdb__scratch_destroy(mem, sc[made]);
            break;
        }
    }
    width = made;
    size_t i = 0, n_upper = 0;
    for (i = 0; i < n; i++) n_upper += hn_level_of(h, st->seqs[slots[i]]) > 0;
    rc = hn_umap_reserve(mem, &g->um, n_upper);
    for (i = 0; rc == IQDB_OK && i < n; i++) {
        uint32_t x = slots[i];
        int L = hn_level_of(h, st->seqs[x]);
        IQDB_ASSERT(x < g->cap && !hn_present(h, g, x) && !hn_umap_get(&g->um, x));
        if (!L) continue;
        uint32_t *b = iqdb__calloc(mem, (size_t)L * h->strideu, sizeof(uint32_t));
        if (!b) break;
        hn_umap_put(&g->um, x, b);
    }
    if (rc || i < n) { /* undo */
        for (size_t j = 0; rc == IQDB_OK && j < i; j++) {
            uint32_t x = slots[j];
            int L = hn_level_of(h, st->seqs[x]);
            iqdb__free(mem, hn_umap_del(&g->um, x), (size_t)L * h->strideu * sizeof(uint32_t));
        }
        for (unsigned t = 1; t < width; t++) iqdb__scratch_destroy(mem, sc[t]);
        if (trained_now) hn_untrain(h);
        return IQDB_NOMEM;
    }

    /* 2. nothing fails from here: codes, headers, then the links. A node without a vector (a
     * codes-only store rebuilding in optimize) keeps the code it has. */
    for (i = 0; i < n && hn_coded(h); i++) {
        const float *v = vecs ? vecs + i * (size_t)h->dim : iqdb__store_vec(st, slots[i]);
        if (v)
            iqdb__quant_encode(&h->q, env->kern, v, NULL, hn_work(h, h->ws, HN_RQ),
                               h->codes + (size_t)slots[i] * h->q.code_size);
    }
    for (i = 0; i < n; i++) {
        uint32_t x = slots[i];
        uint32_t L = (uint32_t)hn_level_of(h, st->seqs[x]);
        g->l0[(size_t)x * h->stride0] = HN_PRESENT | (L << HN_LVL_SHIFT);
        atomic_store_explicit(&g->indeg[x], 0, memory_order_relaxed);
        atomic_store_explicit(&g->parent[x], HN_NONE, memory_order_relaxed);
        g->ovf_head[x] = g->ovf_next[x] = HN_NONE;
        g->up_bytes += (size_t)L * h->strideu * sizeof(uint32_t);
    }
    const int was_empty = g->n_nodes == 0;
    g->n_nodes += n;
    size_t first = 0, linked = n;
    int stopped = 0;
    const size_t dim = h->dim;
    if (g->top < 0) {
        hn_insert_node(h, env, h->ws, slots[0], vecs, 0);
        first = 1;
    }
    if (width > 1 && n - first >= 2) {
        hn_build b = {
            h, env, slots + first, vecs ? vecs + first * dim : NULL, n - first, 0, sc, 0, first,
            n, 0};
        atomic_init(&b.next, 0);
        atomic_init(&b.done, 0);
        atomic_init(&b.stop, 0);
        iqdb__pool_run(env->pool, width, hn_build_task, &b);
        stopped = atomic_load(&b.stop);
        /* builders take indices in order and finish each one they take */
        if (stopped) linked = first + IQDB_MIN(atomic_load(&b.next), n - first);
    } else {
        for (i = first; i < n && !stopped; i++) {
            hn_insert_node(h, env, h->ws, slots[i], vecs ? vecs + i * dim : NULL, 0);
            stopped = env->lc && (i + 1) % HN_POLL == 0 && iqdb__long_poll(env->lc, i + 1, n);
        }
        if (stopped) linked = i;
    }
    for (unsigned t = 1; t < width; t++) iqdb__scratch_destroy(mem, sc[t]);
    if (stopped) {
        hn_unbuild(h, env, slots, n, linked, was_empty);
        if (trained_now) hn_untrain(h);
        return IQDB_INTERRUPTED;
    }
    return IQDB_OK;
}

/* ============================================================================================ */
/* Remove                                                                                       */
/* ============================================================================================ */

/* y loses its edge to x on layer lc and re-selects its list among its other neighbours and x's
 * (the nodes x connected it to). y's own overflow children are not candidates: they are linked
 * already, through the chain. */
static void hn_repair(iqdb__hnsw *h, const iqdb__env *env, iqdb__scratch *s, uint32_t y, uint32_t x,
                      int lc) {
    hn_graph *g = &h->g;
    const iqdb__store *st = env->store;
    const uint32_t *b = hn_blk(h, g, y, lc), *bx = hn_blk(h, g, x, lc);
    size_t n = 0;
    for (uint32_t i = 0; i < hn_count(b); i++)
        if (b[1 + i] != x) s->ids[n++] = b[1 + i];
    for (uint32_t i = 0; i < hn_count(bx); i++) {
        uint32_t c = bx[1 + i];
        if (c == y || hn_in(s->ids, n, c)) continue;
        if (lc == 0 && atomic_load_explicit(&g->parent[c], memory_order_relaxed) == y &&
            !hn_contains(b, c))
            continue; /* in y's chain */
        s->ids[n++] = c;
    }
    if (n) {
        /* A short beam search from these candidates finds y's true neighbourhood without x. */
        iqdb__scratch *t = h->ws2;
        /* The search borrows the writer's visited array: its epochs overwrite the delete's
         * own marks, which then only cost re-checks (the delete's final scan ignores marks). */
        t->mark = s->mark;
        t->mark_cap = s->mark_cap;
        t->epoch = s->epoch;
        hn_q Qy;
        hn_q_node(&Qy, h, env, y, NULL, hn_work(h, s, HN_RY));
        uint16_t ep = iqdb__scratch_epoch(t);
        t->mark[x] = t->mark[y] = ep;
        size_t nW = 0, ef = h->m0;
        for (size_t i = 0; i < n; i++) t->mark[s->ids[i]] = ep;
        hn_score(&Qy, t, s->ids, n, t->dbuf);
        for (size_t i = 0; i < n; i++) {
            iqdb__gitem it = {t->dbuf[i], s->ids[i]};
            maxh_offer(t->gw, &nW, ef, it, st->seqs);
        }
        hn_search_layer(&Qy, g, t, ep, &nW, ef, lc, 0);
        s->epoch = t->epoch;
        t->mark = NULL;
        t->mark_cap = 0;
        /* candidates: the union above plus what the search found (not y's chain members) */
        for (size_t i = 0; i < nW && n < 3 * (size_t)h->m0; i++) {
            uint32_t c = t->gw[i].slot;
            if (hn_in(s->ids, n, c)) continue;
            if (lc == 0 && atomic_load_explicit(&g->parent[c], memory_order_relaxed) == y &&
                !hn_contains(b, c))
                continue;
            s->ids[n++] = c;
        }
    }
    hn_reselect(h, env, s, y, n, lc, hn_count(b) - 1);
}

/* The oldest node other than x (the next root). */
static uint32_t hn_oldest_except(const iqdb__hnsw *h, const hn_graph *g, const iqdb__store *st,
                                 uint32_t x) {
    uint32_t best = HN_NONE;
    for (size_t y = 0; y < g->cap; y++)
        if (y != x && hn_present(h, g, (uint32_t)y) &&
            (best == HN_NONE || st->seqs[y] < st->seqs[best]))
            best = (uint32_t)y;
    return best;
}

/* The node of the highest level other than x, the oldest among equals (the next entry). */
static uint32_t hn_highest_except(const iqdb__hnsw *h, const hn_graph *g, const iqdb__store *st,
                                  uint32_t x, uint32_t oldest) {
    uint32_t best = HN_NONE;
    int bl = 0;
    for (size_t i = 0; i < g->um.cap; i++) {
        uint32_t y = g->um.key[i];
        if (y == HN_NONE || y == x) continue;
        int l = hn_level(h, g, y);
        if (best == HN_NONE || l > bl || (l == bl && st->seqs[y] < st->seqs[best])) {
            best = y;
            bl = l;
        }
    }
    return best != HN_NONE ? best : oldest;
}

typedef struct hn_rm {
    iqdb__hnsw *h;
    const iqdb__env *env;
    iqdb__scratch *s;
    uint32_t x;
    uint16_t ep;
    uint32_t found;
} hn_rm;

/* A candidate in-neighbour of the deleted node on layer 0: repaired if it links to it. Marks
 * only save re-checks (`trust` 0: check anyway): a repaired node no longer links to x, so it is
 * never counted twice. */
static void hn_rm_consider(hn_rm *r, uint32_t y, int trust) {
    hn_graph *g = &r->h->g;
    if (trust && r->s->mark[y] == r->ep) return;
    r->s->mark[y] = r->ep;
    if (!hn_present(r->h, g, y) || !hn_contains(hn_blk(r->h, g, y, 0), r->x)) return;
    hn_repair(r->h, r->env, r->s, y, r->x, 0);
    r->found++;
}

void iqdb__hnsw_remove(iqdb__hnsw *h, const iqdb__env *env, uint32_t x) {
    hn_graph *g = &h->g;
    const iqdb__store *st = env->store;
    if (!hn_present(h, g, x)) return;
    iqdb__scratch *s = h->ws;
    const int L = hn_level(h, g, x);
    const uint32_t old_root = g->root;
    uint32_t nroot = g->root, nentry = g->entry;
    if (g->n_nodes > 1) {
        if (x == g->root) nroot = hn_oldest_except(h, g, st, x);
        if (x == g->entry) nentry = hn_highest_except(h, g, st, x, nroot);
    } else {
        nroot = nentry = HN_NONE;
    }

    /* 1. x's own parent edge, when it lives in the parent's overflow chain */
    uint32_t px = atomic_load_explicit(&g->parent[x], memory_order_relaxed);
    if (px != HN_NONE && !hn_contains(hn_blk(h, g, px, 0), x)) hn_chain_remove(h, g, px, x);

    /* 2. upper layers: the ~1/m nodes that have them are scanned */
    for (int lc = 1; lc <= L; lc++)
        for (size_t i = 0; i < g->um.cap; i++) {
            uint32_t y = g->um.key[i];
            if (y != HN_NONE && y != x && hn_level(h, g, y) >= lc &&
                hn_contains(hn_blk(h, g, y, lc), x))
                hn_repair(h, env, s, y, x, lc);
        }

    /* 3. layer 0: indeg says how many lists hold x. Look where they usually are — x's own
     * neighbours (most edges are reciprocal), its parent, its 2-hop neighbourhood — and scan
     * every node only if some are still missing. */
    hn_rm r = {h, env, s, x, iqdb__scratch_epoch(s), 0};
    uint32_t need = atomic_load_explicit(&g->indeg[x], memory_order_relaxed);
    const int unknown = need == HN_INDEG_MAX; /* saturated: only a full scan finds them all */
    if (unknown) need = UINT32_MAX;
    s->mark[x] = r.ep;
    const uint32_t *bx = hn_blk(h, g, x, 0);
    for (uint32_t i = 0; i < hn_count(bx) && r.found < need; i++) hn_rm_consider(&r, bx[1 + i], 1);
    for (uint32_t c = g->ovf_head[x]; c != HN_NONE && r.found < need; c = g->ovf_next[c])
        hn_rm_consider(&r, c, 1);
    if (px != HN_NONE && r.found < need) hn_rm_consider(&r, px, 1);
    for (uint32_t i = 0; i < hn_count(bx) && r.found < need; i++) {
        const uint32_t *bz = hn_blk(h, g, bx[1 + i], 0);
        for (uint32_t j = 0; j < hn_count(bz) && r.found < need; j++)
            hn_rm_consider(&r, bz[1 + j], 1);
    }
    for (size_t y = 0; y < g->cap && r.found < need; y++)
        if (y != x) hn_rm_consider(&r, (uint32_t)y, 0);
    IQDB_ASSERT(unknown || r.found == need);

    /* 4. x's children get a new parent: x's own parent (older than x, so older than them), or
     * the new root when x was the root; the (new) root's parent is the (new) entry. */
    for (int pass = 0; pass < 2; pass++) {
        uint32_t i = 0, c = pass ? g->ovf_head[x] : HN_NONE;
        for (;;) {
            if (pass == 0) {
                if (i >= hn_count(bx)) break;
                c = bx[1 + i++];
                if (atomic_load_explicit(&g->parent[c], memory_order_relaxed) != x) continue;
            } else if (c == HN_NONE) {
                break;
            }
            uint32_t next = pass ? g->ovf_next[c] : HN_NONE;
            if (pass) g->ovf_next[c] = HN_NONE;
            uint32_t np;
            if (c == nroot)
                np = nentry != c ? nentry : HN_NONE;
            else
                np = x == old_root ? nroot : px;
            atomic_store_explicit(&g->parent[c], np, memory_order_relaxed);
            if (np != HN_NONE) hn_link(h, env, s, np, c, 0, 0, 1);
            c = next;
        }
    }

    /* 5. x leaves, with its own edges */
    for (uint32_t i = 0; i < hn_count(bx); i++) hn_indeg_dec(g, bx[1 + i]);
    hn_forget(h, g, x, L);
    g->root = nroot;
    g->entry = nentry;
    g->top = nentry == HN_NONE ? -1 : hn_level(h, g, nentry);
}

/* ============================================================================================ */
/* Search                                                                                       */
/* ============================================================================================ */

/* What a query will do; a pure function of (graph, filter, k, ef), so a batch and single
 * searches make the same choice. */
typedef struct hn_plan {
    int scan;        /* exact scan of the matching rows */
    size_t ef;       /* result-set size on layer 0 */
    size_t sl;       /* quantized: candidates re-ranked (k * oversample, at most the rows) */
    uint64_t budget; /* nodes a filtered traversal may visit before it gives up for the scan */
    double sel;      /* estimated selectivity (1 without a filter) */
} hn_plan;

/* Evaluates the filter on up to HN_SAMPLE_MAX live rows spread over the slots by a fixed
 * multiplicative stride (no randomness: the plan must be reproducible); stops after
 * HN_SAMPLE_MATCHES matches, which bounds the cost for unselective filters. */
static double hn_selectivity(const iqdb__store *st, const iqdb__cfilter *f) {
    size_t n = st->n_slots, sampled = 0, matched = 0;
    if (!n || !st->count) return 0.0;
    size_t want = IQDB_MIN((size_t)HN_SAMPLE_MAX, (size_t)st->count);
    for (size_t i = 0; i < 4 * (size_t)HN_SAMPLE_MAX && sampled < want; i++) {
        size_t slot = (size_t)(((uint64_t)i * 0x9e3779b97f4a7c15ull) % n);
        if (want == st->count) slot = i; /* small stores: every row */
        if (slot >= n) break;
        if (!st->live[slot]) continue;
        sampled++;
        if (iqdb__cfilter_eval(f, st->meta[slot], st->meta_len[slot]) &&
            ++matched >= HN_SAMPLE_MATCHES)
            break;
    }
    if (!sampled) return 0.0;
    return (double)matched / (double)sampled;
}

static void hn_plan_query(const iqdb__hnsw *h, const iqdb__env *env, const iqdb__query *q,
                          hn_plan *p) {
    const iqdb__store *st = env->store;
    size_t ef = IQDB_MAX((size_t)(q->ef ? q->ef : h->ef), q->k);
    p->sl = q->k;
    if (hn_coded(h)) {
        /* The best k * oversample of the walk's results (by proxy distance) are re-ranked.
         * SQ8: ef is not raised to the shortlist (a walk of ef < k * oversample re-ranks all
         * it found). Raising it cost what the codes save — Fashion-MNIST, oversample 4: every
         * ef below 40 ran as 40, 5,800 QPS at recall 0.95 against 12,600 without, at the same
         * recall per ef (SQ8 orders these rows almost exactly); at the default ef_search (64)
         * the two agree. BINARY: one bit a dimension orders neighbours coarsely, the shortlist
         * (k * 16 by default) is what recovers recall, so the walk widens to it (test data,
         * L2: recall@10 0.79 at ef 64 against 0.98 widened to 160). */
        size_t os = q->oversample ? q->oversample : h->oversample, sl;
        if (iqdb__mul_overflow(q->k, os, &sl) || sl > st->count) sl = (size_t)st->count;
        p->sl = IQDB_MAX(sl, q->k);
        if (h->q.kind == IQDB_QUANT_BINARY) ef = IQDB_MAX(ef, p->sl);
    }
    p->scan = 0;
    p->ef = ef;
    p->budget = UINT64_MAX;
    p->sel = 1.0;
    if (!q->filter) return;
    double sel = hn_selectivity(st, q->filter), n = (double)st->count;
    p->sel = sel;
    /* Costs in units of one filter evaluation in a sequential scan (about 18 ns here). A
     * distance costs 1 + dim/32; a node visited by the walk costs a distance plus ~8 units of
     * random access (its metadata blob, its vector, the queue): fitted on measured walks (20,000
     * x 64-d: 150-330 ns a visit, against 18 ns a scanned row). */
    double c_dist = 1.0 + (double)st->dim / 32.0, c_visit = c_dist + 8.0;
    double scan = n + sel * n * c_dist;
    /* A wider result set when matches get rare (a walk has to cross non-matching regions):
     * sqrt(0.1 / sel), at most filter_widen. Measured there: x4 at 10 % cost 5x the time for no
     * recall gain, so the widening starts only below 10 %. */
    double widen = sel > 0 ? IQDB_MIN((double)h->widen, IQDB_MAX(1.0, sqrt(0.1 / sel))) : 1.0;
    p->ef = (size_t)((double)ef * widen);
    if (p->ef < q->k) p->ef = q->k;
    /* Nodes a walk visits to collect ef matches: measured 887, 962, 1104, 4663, 11259, 16179 at
     * 50, 20, 10, 5, 2, 1 % (ef 64); HN_VISITS_PER_EF * ef / sel^0.75 follows that from above. */
    double visits =
        sel > 0 ? IQDB_MIN(n, (double)HN_VISITS_PER_EF * (double)p->ef / pow(sel, 0.75)) : n;
    if (!(visits * c_visit < scan)) {
        p->scan = 1;
        return;
    }
    /* A wrong estimate costs at most this much: give up on the graph when the walk has cost
     * twice the scan, and scan. */
    double b = 2.0 * scan / c_visit;
    p->budget = b > 1e18 ? UINT64_MAX : (uint64_t)b + p->ef;
}

/* Offers every row the traversal did not visit (matching the filter, if any) to the result
 * heap: what completes a search whose walk ended with fewer than k results. */
static void hn_sweep(hn_q *Q, const hn_graph *g, iqdb__scratch *s, uint16_t ep, size_t ef,
                     const iqdb__cfilter *f, size_t *nw, uint64_t *visited, uint64_t *matched) {
    const iqdb__hnsw *h = Q->h;
    const iqdb__store *st = Q->st;
    size_t m = 0;
    for (size_t slot = 0; slot <= st->n_slots; slot++) {
        if (slot < st->n_slots) {
            if (!hn_present(h, g, (uint32_t)slot) || s->mark[slot] == ep) continue;
            s->mark[slot] = ep;
            (*visited)++;
            if (f && !iqdb__cfilter_eval(f, st->meta[slot], st->meta_len[slot])) continue;
            (*matched)++;
            s->ids[m++] = (uint32_t)slot;
            if (m < h->batch) continue;
        }
        if (!m) continue;
        hn_score(Q, s, s->ids, m, s->dbuf);
        for (size_t i = 0; i < m; i++) {
            iqdb__gitem it = {s->dbuf[i], s->ids[i]};
            maxh_offer(s->gw, nw, ef, it, st->seqs);
        }
        m = 0;
    }
}

/* Layer 0 with a filter: every node is walked, only matching ones enter the result set R
 * (s->gw, bounded at ef). While R is not full every neighbour joins the queue, so the walk widens
 * on its own until it has ef matches; then only nodes nearer than R's worst. Returns IQDB_OK
 * (or IQDB_NOMEM when the queue cannot grow); *gave_up when the visit budget ran out. */
static int hn_search_filtered(hn_q *Q, const hn_graph *g, iqdb__scratch *s, uint16_t ep,
                              iqdb__gitem seed, const hn_plan *p, const iqdb__cfilter *f,
                              size_t *nr, uint64_t *visited, uint64_t *matched, int *gave_up) {
    const iqdb__hnsw *h = Q->h;
    const iqdb__store *st = Q->st;
    const uint64_t *seqs = st->seqs;
    const size_t ef = p->ef;
    size_t nR = 0, nC = 1;
    s->gc[0] = seed;
    (*visited)++;
    if (iqdb__cfilter_eval(f, st->meta[seed.slot], st->meta_len[seed.slot])) {
        (*matched)++;
        maxh_push(s->gw, &nR, seed, seqs);
    }
    *gave_up = 0;
    while (nC) {
        iqdb__gitem c = s->gc[0];
        if (nR >= ef && it_less(s->gw[0], c, seqs)) break;
        minh_pop(s->gc, &nC, seqs);
        hn_cursor cur;
        hn_cursor_init(h, g, &cur, c.slot, 0);
        size_t m;
        while ((m = hn_gather(g, &cur, s->mark, ep, s->ids, h->batch)) > 0) {
            hn_score(Q, s, s->ids, m, s->dbuf);
            *visited += m;
            if (nC + m > s->gc_cap) {
                if (nR >= ef) minh_compact(s->gc, &nC, s->gw[0], seqs);
                if (nC + m > s->gc_cap)
                    IQDB_TRY(iqdb__scratch_items(h->mem, &s->gc, &s->gc_cap, nC + m));
            }
            for (size_t i = 0; i < m; i++) {
                iqdb__gitem it = {s->dbuf[i], s->ids[i]};
                if (nR >= ef && !it_less(it, s->gw[0], seqs)) continue;
                minh_push(s->gc, &nC, it, seqs);
                if (iqdb__cfilter_eval(f, st->meta[it.slot], st->meta_len[it.slot])) {
                    (*matched)++;
                    maxh_offer(s->gw, &nR, ef, it, seqs);
                }
            }
            if (*visited > p->budget) {
                *gave_up = 1;
                *nr = nR;
                return IQDB_OK;
            }
        }
    }
    *nr = nR;
    return IQDB_OK;
}

/* Re-ranks the best p->sl of the walk's nW results (proxy keys, a max-heap in s->gw) into
 * `top`: against the full-precision rows, or (codes only) against the decoded codes. */
static int hn_rerank(const iqdb__hnsw *h, const iqdb__env *env, const iqdb__query *q, size_t sl,
                     iqdb__scratch *s, size_t nW, iqdb__topk *top, iqdb__sinfo *info) {
    const iqdb__store *st = env->store;
    maxh_sort(s->gw, nW, st->seqs);
    size_t n = IQDB_MIN(sl, nW);
    IQDB_TRY(iqdb__scratch_cand2(s, env->mem, IQDB_MAX(n, (size_t)1)));
    for (size_t i = 0; i < n; i++) {
        s->cand2[i].d = s->gw[i].d;
        s->cand2[i].slot = s->gw[i].slot;
        s->cand2[i].seq = st->seqs[s->gw[i].slot];
    }
    if (st->no_vectors) {
        float *work = hn_work(h, s, HN_RY);
        for (size_t i = 0; i < n; i++)
            iqdb__quant_rerank_code(&h->q, env, q, &s->cand2[i], hn_code(h, s->cand2[i].slot), NULL,
                                    work, top);
    } else {
        iqdb__quant_rerank(env, q, s->cand2, n, top);
    }
    info->n_reranked += (uint32_t)n;
    info->n_distances += n;
    return IQDB_OK;
}

/* Codes only: the exact search (params.exact) and the planner's scan read codes, as the store
 * holds no vectors. An exact search re-ranks every (matching) code against the decoded rows —
 * exact over what is stored; a planned scan re-ranks the best `sl` by proxy. */
static int hn_scan_codes(const iqdb__hnsw *h, const iqdb__env *env, const iqdb__query *q, size_t sl,
                         iqdb__scratch *s, iqdb__topk *top, iqdb__sinfo *info) {
    const iqdb__store *st = env->store;
    if (q->exact) sl = (size_t)st->count;
    IQDB_TRY(hn_scratch_prepare(h, s, 0, 0));
    IQDB_TRY(iqdb__scratch_lbuf(s, env->mem, IQDB_MAX(sl, (size_t)1)));
    iqdb__topk short_;
    iqdb__topk_init(&short_, s->lbuf, IQDB_MAX(sl, (size_t)1));
    hn_q Q;
    hn_q_init(&Q, h, env, q->vec, q->qnorm, hn_work(h, s, HN_RQ));
    uint64_t visited = 0, matched = 0;
    for (size_t x = 0; x < st->n_slots; x++) {
        if (!st->live[x]) continue;
        visited++;
        if (q->filter && !iqdb__cfilter_eval(q->filter, st->meta[x], st->meta_len[x])) continue;
        matched++;
        iqdb__topk_push(&short_, hn_code_key(&Q, hn_code(h, (uint32_t)x)), st->seqs[x],
                        (uint32_t)x);
    }
    float *work = hn_work(h, s, HN_RY);
    for (size_t i = 0; i < short_.n; i++)
        iqdb__quant_rerank_code(&h->q, env, q, &short_.h[i], hn_code(h, short_.h[i].slot), NULL,
                                work, top);
    info->complete = 1;
    info->strategy = q->filter ? IQDB_STRATEGY_SCAN_FILTERED : IQDB_STRATEGY_SCAN;
    info->n_distances += matched + short_.n;
    info->n_visited += visited;
    info->n_matched += matched;
    info->n_reranked += (uint32_t)short_.n;
    return IQDB_OK;
}

/* The exact scan of a plan or an exact search: the flat index over the rows, or over the codes
 * when the store holds none. */
static int hn_scan(const iqdb__hnsw *h, const iqdb__env *env, const iqdb__query *q, size_t sl,
                   iqdb__scratch *s, iqdb__topk *top, iqdb__sinfo *info) {
    if (env->store->no_vectors && hn_coded(h)) return hn_scan_codes(h, env, q, sl, s, top, info);
    return iqdb__flat_search(env, q, s, top, info);
}

/* One query with a plan: the strategy, then the k best into `top`. */
static int hn_search_one(const iqdb__hnsw *h, const iqdb__env *env, const iqdb__query *q,
                         const hn_plan *p, iqdb__scratch *s, iqdb__topk *top, iqdb__sinfo *info) {
    const hn_graph *g = &h->g;
    const iqdb__store *st = env->store;
    if (p->scan) return hn_scan(h, env, q, p->sl, s, top, info);
    IQDB_TRY(hn_scratch_prepare(h, s, g->cap, p->ef));
    hn_q Q;
    hn_q_init(&Q, h, env, q->vec, q->qnorm, hn_coded(h) ? hn_work(h, s, HN_RQ) : NULL);
    size_t nW;
    uint64_t visited = 0, matched = 0;
    hn_descend(&Q, g, s, g->entry, g->top, 0, HN_NONE, &nW, 0);
    uint16_t ep = iqdb__scratch_epoch(s);
    s->mark[s->gw[0].slot] = ep;
    if (q->filter) {
        int gave_up;
        iqdb__gitem seed = s->gw[0];
        IQDB_TRY(hn_search_filtered(&Q, g, s, ep, seed, p, q->filter, &nW, &visited, &matched,
                                    &gave_up));
        if (gave_up) {
            info->n_distances += Q.n_dist;
            info->n_visited += visited;
            return hn_scan(h, env, q, p->sl, s, top, info);
        }
    } else {
        hn_search_layer(&Q, g, s, ep, &nW, p->ef, 0, 0);
        visited = matched = Q.n_dist;
    }
    /* A walk that ends before its result set is full has exhausted the part of the graph it
     * could reach: sweep the rest, so the count is right, and a search with ef >= the number of
     * (matching) records is exact. */
    if (nW < IQDB_MIN(p->ef, (size_t)st->count))
        hn_sweep(&Q, g, s, ep, p->ef, q->filter, &nW, &visited, &matched);
    if (Q.codes) {
        IQDB_TRY(hn_rerank(h, env, q, p->sl, s, nW, top, info));
    } else {
        for (size_t i = 0; i < nW; i++) {
            uint32_t slot = s->gw[i].slot;
            iqdb__topk_push(top, hn_report(h, s->gw[i].d), st->seqs[slot], slot);
        }
    }
    info->complete = 1; /* k results, or every match: the sweep guarantees it */
    info->strategy = q->filter ? IQDB_STRATEGY_HNSW_FILTERED : IQDB_STRATEGY_HNSW;
    info->n_distances += Q.n_dist;
    info->n_visited += visited;
    info->n_matched += matched;
    return IQDB_OK;
}

/* An exact search, or any search of an empty graph. */
static int hn_search_exact(const iqdb__hnsw *h, const iqdb__env *env, const iqdb__query *q,
                           iqdb__scratch *s, iqdb__topk *top, iqdb__sinfo *info) {
    return hn_scan(h, env, q, (size_t)env->store->count, s, top, info);
}

int iqdb__hnsw_search(iqdb__hnsw *h, const iqdb__env *env, const iqdb__query *q, iqdb__scratch *s,
                      iqdb__topk *top, iqdb__sinfo *info) {
    if (q->exact || h->g.top < 0) return hn_search_exact(h, env, q, s, top, info);
    hn_plan p;
    hn_plan_query(h, env, q, &p);
    return hn_search_one(h, env, q, &p, s, top, info);
}

/* ---- batch: queries spread over the worker pool, each searched exactly as alone ------------ */

typedef struct hn_batch {
    const iqdb__hnsw *h;
    const iqdb__env *env;
    const iqdb__batch *b;
    hn_plan plan;
    size_t per_task;
    _Atomic int rc;
} hn_batch;

static void hn_batch_task(void *arg, size_t task) {
    hn_batch *c = arg;
    const iqdb__batch *b = c->b;
    size_t q0 = task * c->per_task, q1 = IQDB_MIN(q0 + c->per_task, b->nq), k = b->proto.k;
    iqdb__scratch *s = iqdb__scratch_get(c->env->scratch);
    if (!s || iqdb__scratch_cand(s, c->env->mem, k)) {
        atomic_store(&c->rc, IQDB_NOMEM);
        iqdb__scratch_put(c->env->scratch, s);
        return;
    }
    for (size_t i = q0; i < q1 && atomic_load_explicit(&c->rc, memory_order_relaxed) == IQDB_OK;
         i++) {
        iqdb__query q = b->proto;
        q.vec = b->qs + i * b->dim;
        q.qnorm = b->qnorms ? b->qnorms[i] : 0.0f;
        iqdb__topk top;
        iqdb__topk_init(&top, s->cand, k);
        iqdb__sinfo si = {1, IQDB_STRATEGY_NONE, 0, 0, 0, 0, 0};
        int rc = q.exact ? hn_search_exact(c->h, c->env, &q, s, &top, &si)
                         : hn_search_one(c->h, c->env, &q, &c->plan, s, &top, &si);
        if (rc) {
            atomic_store(&c->rc, rc);
            break;
        }
        iqdb__hits_from_top(c->env->store, &top, b->hits + i * b->out_stride, &b->n_hits[i]);
    }
    iqdb__scratch_put(c->env->scratch, s);
}

int iqdb__hnsw_search_batch(iqdb__hnsw *h, const iqdb__env *env, const iqdb__batch *b) {
    /* exact: the flat batch (its tile kernel equals the single scan bit for bit) */
    if ((h->g.top < 0 || b->proto.exact) && !(env->store->no_vectors && hn_coded(h)))
        return iqdb__flat_search_batch(env, b);
    hn_batch c;
    c.h = h;
    c.env = env;
    c.b = b;
    hn_plan_query(h, env, &b->proto, &c.plan);
    /* Tasks of a few queries: enough tasks to balance the workers, few enough that taking a
     * scratch from the pool is noise. */
    unsigned width = iqdb__pool_width(env->pool);
    c.per_task = IQDB_MAX((size_t)1, IQDB_MIN((size_t)16, b->nq / (4 * (size_t)width)));
    atomic_init(&c.rc, IQDB_OK);
    iqdb__pool_run(env->pool, (b->nq + c.per_task - 1) / c.per_task, hn_batch_task, &c);
    return atomic_load(&c.rc);
}

/* ============================================================================================ */
/* Check (the validator behind iqdb_check and load)                                             */
/* ============================================================================================ */

#define HN_CORRUPT(...) iqdb__fail(NULL, IQDB_CORRUPT, "hnsw: " __VA_ARGS__)

/* One list on layer lc of node x: I2. `stamp` (per slot) detects duplicates with tag `tag`. */
static int hn_check_list(const iqdb__hnsw *h, const hn_graph *g, uint32_t x, int lc,
                         uint32_t *stamp, uint32_t tag) {
    const uint32_t *b = hn_blk(h, g, x, lc);
    uint32_t n = hn_count(b);
    if (n > hn_cap_at(h, lc))
        return HN_CORRUPT("node %u layer %d holds %u links (cap %u)", x, lc, n, hn_cap_at(h, lc));
    if (lc && (b[0] & ~HN_CNT))
        return HN_CORRUPT("node %u layer %d has header bits 0x%x", x, lc, b[0]);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t y = b[1 + i];
        if (y >= g->cap || !hn_present(h, g, y))
            return HN_CORRUPT("node %u layer %d links to %u, which is not a node", x, lc, y);
        if (y == x) return HN_CORRUPT("node %u layer %d links to itself", x, lc);
        if (hn_level(h, g, y) < lc)
            return HN_CORRUPT("node %u layer %d links to %u of level %d", x, lc, y,
                              hn_level(h, g, y));
        if (stamp[y] == tag) return HN_CORRUPT("node %u layer %d links twice to %u", x, lc, y);
        stamp[y] = tag;
    }
    return IQDB_OK;
}

/* Verifies I1..I6 and reachability. `work` holds 3 * cap u32. */
static int hn_validate(const iqdb__hnsw *h, const hn_graph *g, const iqdb__store *st,
                       uint32_t *work) {
    const size_t cap = g->cap;
    uint32_t *stamp = work, *owner = work + cap, *queue = work + 2 * cap;
    uint64_t nodes = 0, n_upper = 0;
    int maxl = -1;
    uint32_t oldest = HN_NONE;
    for (size_t i = 0; i < cap; i++) stamp[i] = owner[i] = HN_NONE;
    /* I1, I2, levels (slots past the arrays' capacity are not nodes: the store may have grown
     * for an insert that then failed) */
    for (size_t xs = 0; xs < IQDB_MAX(cap, st->n_slots); xs++) {
        uint32_t x = (uint32_t)xs;
        int live = xs < st->n_slots && st->live[xs];
        if (!hn_present(h, g, x)) {
            if (live) return HN_CORRUPT("live row %u is not in the graph", x);
            if (xs < cap && (g->l0[xs * h->stride0] || hn_umap_get(&g->um, x)))
                return HN_CORRUPT("slot %u is not a node but has links", x);
            continue;
        }
        if (!live) return HN_CORRUPT("node %u is not a live row", x);
        nodes++;
        uint32_t hdr = hn_hdr(h, g, x);
        if (hdr & ~(HN_PRESENT | HN_HAS_OVF | HN_CNT | (HN_LVL_MASK << HN_LVL_SHIFT)))
            return HN_CORRUPT("node %u has header bits 0x%x", x, hdr);
        int L = hn_level(h, g, x);
        if (L != hn_level_of(h, st->seqs[x]))
            return HN_CORRUPT("node %u has level %d, its sequence number gives %d", x, L,
                              hn_level_of(h, st->seqs[x]));
        if ((L > 0) != (hn_umap_get(&g->um, x) != NULL))
            return HN_CORRUPT("node %u of level %d has %s upper block", x, L, L ? "no" : "an");
        n_upper += L > 0;
        for (int lc = 0; lc <= L; lc++)
            IQDB_TRY(hn_check_list(h, g, x, lc, stamp, x * 32u + (uint32_t)lc));
        if (L > maxl) maxl = L;
        if (oldest == HN_NONE || st->seqs[x] < st->seqs[oldest]) oldest = x;
    }
    if (n_upper != g->um.n)
        return HN_CORRUPT("%llu upper blocks for %llu upper nodes", (unsigned long long)g->um.n,
                          (unsigned long long)n_upper);
    if (nodes != g->n_nodes || nodes != st->count)
        return HN_CORRUPT("%llu nodes, counted %llu, rows %llu", (unsigned long long)g->n_nodes,
                          (unsigned long long)nodes, (unsigned long long)st->count);
    /* I3 */
    if (nodes == 0) {
        if (g->top != -1 || g->entry != HN_NONE || g->root != HN_NONE)
            return HN_CORRUPT("an empty graph has an entry point");
        return IQDB_OK;
    }
    if (g->entry >= cap || !hn_present(h, g, g->entry) || g->top != maxl ||
        hn_level(h, g, g->entry) != maxl)
        return HN_CORRUPT("entry %u / top %d is not a node of the highest level %d", g->entry,
                          g->top, maxl);
    if (g->root != oldest) return HN_CORRUPT("root %u is not the oldest node %u", g->root, oldest);
    /* I5: chains */
    for (size_t ps = 0; ps < cap; ps++) {
        uint32_t p = (uint32_t)ps;
        if (!hn_present(h, g, p)) {
            if (g->ovf_head[p] != HN_NONE) return HN_CORRUPT("slot %u has a chain", p);
            continue;
        }
        if ((g->ovf_head[p] != HN_NONE) != ((hn_hdr(h, g, p) & HN_HAS_OVF) != 0))
            return HN_CORRUPT("node %u: chain and overflow bit disagree", p);
        uint64_t len = 0;
        for (uint32_t c = g->ovf_head[p]; c != HN_NONE; c = g->ovf_next[c]) {
            if (c >= cap || !hn_present(h, g, c)) return HN_CORRUPT("chain of %u holds %u", p, c);
            if (owner[c] != HN_NONE || ++len > nodes)
                return HN_CORRUPT("node %u is in two chains, or a chain loops", c);
            owner[c] = p;
            if (atomic_load_explicit(&g->parent[c], memory_order_relaxed) != p ||
                hn_contains(hn_blk(h, g, p, 0), c))
                return HN_CORRUPT("chain of %u holds %u, not an overflow child of it", p, c);
        }
    }
    for (size_t c = 0; c < cap; c++)
        if (owner[c] == HN_NONE && g->ovf_next[c] != HN_NONE)
            return HN_CORRUPT("slot %zu has a chain link but is in no chain", c);
    /* I4: parents */
    for (size_t xs = 0; xs < cap; xs++) {
        uint32_t x = (uint32_t)xs;
        uint32_t p = atomic_load_explicit(&g->parent[x], memory_order_relaxed);
        if (!hn_present(h, g, x)) {
            if (p != HN_NONE) return HN_CORRUPT("slot %u is not a node but has a parent", x);
            continue;
        }
        if (x == g->root) {
            uint32_t want = g->root == g->entry ? HN_NONE : g->entry;
            if (p != want) return HN_CORRUPT("root %u has parent %u, not the entry %u", x, p, want);
            if (p == HN_NONE) continue;
        } else if (p >= cap || !hn_present(h, g, p) || !hn_older(st, p, x)) {
            return HN_CORRUPT("node %u has parent %u, not an older node", x, p);
        }
        if (!hn_contains(hn_blk(h, g, p, 0), x) && owner[x] != p)
            return HN_CORRUPT("parent %u does not link to its child %u", p, x);
    }
    /* I6 */
    for (size_t i = 0; i < cap; i++) stamp[i] = 0;
    for (size_t x = 0; x < cap; x++) {
        if (!hn_present(h, g, (uint32_t)x)) continue;
        const uint32_t *b = hn_blk(h, g, (uint32_t)x, 0);
        for (uint32_t i = 0; i < hn_count(b); i++) stamp[b[1 + i]]++;
    }
    for (size_t x = 0; x < cap; x++)
        if (IQDB_MIN(stamp[x], (uint32_t)HN_INDEG_MAX) !=
            atomic_load_explicit(&g->indeg[x], memory_order_relaxed))
            return HN_CORRUPT("node %zu: indeg %u, but %u lists hold it", x,
                              (unsigned)atomic_load_explicit(&g->indeg[x], memory_order_relaxed),
                              stamp[x]);
    /* reachability on layer 0 (lists and chains) from the entry point */
    for (size_t i = 0; i < cap; i++) stamp[i] = 0;
    size_t qh = 0, qt = 0;
    queue[qt++] = g->entry;
    stamp[g->entry] = 1;
    while (qh < qt) {
        uint32_t x = queue[qh++];
        const uint32_t *b = hn_blk(h, g, x, 0);
        for (uint32_t i = 0; i < hn_count(b); i++)
            if (!stamp[b[1 + i]]) {
                stamp[b[1 + i]] = 1;
                queue[qt++] = b[1 + i];
            }
        for (uint32_t c = g->ovf_head[x]; c != HN_NONE; c = g->ovf_next[c])
            if (!stamp[c]) {
                stamp[c] = 1;
                queue[qt++] = c;
            }
    }
    if (qt != nodes)
        return HN_CORRUPT("%zu of %llu nodes are reachable from the entry point", qt,
                          (unsigned long long)nodes);
    return IQDB_OK;
}

/* A quantized graph: finite parameters, a code for every node, each equal to a fresh encoding
 * of its row (encoding is deterministic at every SIMD level, quant.h); codes only (no rows):
 * binary codes' bits past dim are zero. */
static int hn_check_codes(const iqdb__hnsw *h, const iqdb__env *env) {
    const hn_graph *g = &h->g;
    const iqdb__store *st = env->store;
    if (!hn_coded(h)) {
        if (h->codes || h->ccap) return HN_CORRUPT("an untrained quantizer has codes");
        if (st->no_vectors) return HN_CORRUPT("the rows' vectors are gone, yet no codes exist");
        return IQDB_OK;
    }
    if (!iqdb__quant_valid(&h->q)) return HN_CORRUPT("quantizer parameters are out of range");
    if (h->ccap < g->cap) return HN_CORRUPT("codes for %zu of %zu slots", h->ccap, g->cap);
    const size_t cs = h->q.code_size;
    size_t wb = (size_t)h->dim * sizeof(float) + cs + 8;
    float *work = iqdb__alloc(h->mem, wb);
    if (!work) return IQDB_NOMEM;
    uint8_t *code = (uint8_t *)(work + h->dim);
    int rc = IQDB_OK;
    for (size_t xs = 0; xs < g->cap && rc == IQDB_OK; xs++) {
        uint32_t x = (uint32_t)xs;
        if (!hn_present(h, g, x)) continue;
        const float *v = iqdb__store_vec(st, x);
        if (v) {
            iqdb__quant_encode(&h->q, env->kern, v, NULL, work, code);
            if (memcmp(code, hn_code(h, x), cs))
                rc = HN_CORRUPT("the code of node %u differs from its row's encoding", x);
        } else if (h->q.kind == IQDB_QUANT_BINARY) {
            const uint8_t *c = hn_code(h, x);
            for (uint32_t b = h->dim; b < cs * 8u && rc == IQDB_OK; b++)
                if (c[b >> 3] >> (b & 7) & 1u)
                    rc = HN_CORRUPT("node %u: a binary code sets bit %u", x, b);
        }
    }
    iqdb__free(h->mem, work, wb);
    return rc;
}

int iqdb__hnsw_check(const iqdb__hnsw *h, const iqdb__env *env) {
    const hn_graph *g = &h->g;
    if (!g->cap)
        return g->n_nodes || env->store->count ? HN_CORRUPT("no graph for the rows") : IQDB_OK;
    uint32_t *work = iqdb__alloc(h->mem, 3 * g->cap * sizeof(uint32_t));
    if (!work) return IQDB_NOMEM;
    int rc = hn_validate(h, g, env->store, work);
    iqdb__free(h->mem, work, 3 * g->cap * sizeof(uint32_t));
    if (rc == IQDB_OK) rc = hn_check_codes(h, env);
    return rc;
}

/* ============================================================================================ */
/* Serialize and load                                                                           */
/* ============================================================================================ */

typedef struct hn_out {
    iqdb__sink *sink;
    uint8_t buf[4096];
    size_t n;
    int rc;
} hn_out;

static void hn_flush(hn_out *o) {
    if (o->rc == IQDB_OK && o->n) o->rc = o->sink->write(o->sink->ctx, o->buf, o->n);
    o->n = 0;
}
static void hn_put32(hn_out *o, uint32_t v) {
    if (o->n + 4 > sizeof o->buf) hn_flush(o);
    for (int i = 0; i < 4; i++) o->buf[o->n++] = (uint8_t)(v >> (8 * i));
}
static void hn_put64(hn_out *o, uint64_t v) {
    hn_put32(o, (uint32_t)v);
    hn_put32(o, (uint32_t)(v >> 32));
}
static void hn_putbytes(hn_out *o, const uint8_t *p, size_t n) {
    while (n && o->rc == IQDB_OK) {
        if (o->n == sizeof o->buf) hn_flush(o);
        size_t m = IQDB_MIN(n, sizeof o->buf - o->n);
        memcpy(o->buf + o->n, p, m);
        o->n += m;
        p += m;
        n -= m;
    }
}

/* The quantizer block of version 2 (see "Serialized form"). */
static void hn_put_quant(const iqdb__hnsw *h, const iqdb__store *st, hn_out *o) {
    const hn_graph *g = &h->g;
    hn_put32(o, (uint32_t)h->qkind);
    hn_put32(o, (uint32_t)hn_coded(h));
    hn_put32(o, h->q.code_size);
    hn_put32(o, st->no_vectors ? 1u : 0u); /* flags: bit 0 codes only */
    hn_put64(o, h->trained_rows);
    hn_put64(o, h->next_train);
    if (!hn_coded(h)) return;
    hn_flush(o);
    if (o->rc == IQDB_OK) o->rc = iqdb__quant_write(&h->q, o->sink);
    for (size_t x = 0; x < g->cap && o->rc == IQDB_OK; x++)
        if (hn_present(h, g, (uint32_t)x)) hn_putbytes(o, hn_code(h, (uint32_t)x), h->q.code_size);
}

int iqdb__hnsw_serialize(const iqdb__hnsw *h, const iqdb__env *env, iqdb__sink *sink) {
    const hn_graph *g = &h->g;
    hn_out o = {sink, {0}, 0, IQDB_OK};
    hn_put32(&o, HN_MAGIC);
    /* without a quantizer the bytes are exactly version 1's, which older libraries read */
    hn_put32(&o, h->qkind == IQDB_QUANT_NONE ? HN_VERSION : HN_VERSION_Q);
    hn_put32(&o, h->m);
    hn_put32(&o, h->efc);
    hn_put32(&o, h->ef);
    hn_put32(&o, h->widen);
    hn_put64(&o, h->seed);
    hn_put32(&o, (uint32_t)env->store->n_slots);
    hn_put32(&o, (uint32_t)g->n_nodes);
    hn_put32(&o, g->entry);
    hn_put32(&o, g->root);
    hn_put32(&o, (uint32_t)(g->top + 1));
    for (size_t xs = 0; xs < g->cap && o.rc == IQDB_OK; xs++) {
        uint32_t x = (uint32_t)xs;
        if (!hn_present(h, g, x)) continue;
        int L = hn_level(h, g, x);
        hn_put32(&o, x);
        hn_put32(&o, (uint32_t)L);
        hn_put32(&o, atomic_load_explicit(&g->parent[x], memory_order_relaxed));
        hn_put32(&o, g->ovf_next[x]);
        hn_put32(&o, g->ovf_head[x]);
        for (int lc = 0; lc <= L; lc++) {
            const uint32_t *b = hn_blk(h, g, x, lc);
            hn_put32(&o, hn_count(b));
            for (uint32_t i = 0; i < hn_count(b); i++) hn_put32(&o, b[1 + i]);
        }
    }
    if (h->qkind != IQDB_QUANT_NONE) hn_put_quant(h, env->store, &o);
    hn_put32(&o, HN_END_MAGIC);
    hn_flush(&o);
    return o.rc;
}

typedef struct hn_reader {
    iqdb__source *src;
    int rc;
} hn_reader;

static uint32_t hn_get32(hn_reader *in) {
    uint8_t b[4] = {0, 0, 0, 0};
    if (in->rc == IQDB_OK) in->rc = in->src->read(in->src->ctx, b, 4);
    if (in->rc) return 0;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* Reads the node records into g (arrays of cap >= n_slots, zeroed). */
static int hn_load_nodes(iqdb__hnsw *h, hn_graph *g, const iqdb__store *st, hn_reader *in,
                         uint32_t n_nodes) {
    uint64_t prev = 0;
    for (uint32_t k = 0; k < n_nodes; k++) {
        uint32_t x = hn_get32(in), L = hn_get32(in), p = hn_get32(in), nx = hn_get32(in),
                 hd = hn_get32(in);
        if (in->rc) return in->rc;
        if (x >= st->n_slots || (k && x <= prev) || !st->live[x])
            return HN_CORRUPT("node record %u names slot %u", k, x);
        prev = x;
        if (L > HN_MAX_LEVEL || (int)L != hn_level_of(h, st->seqs[x]))
            return HN_CORRUPT("node %u has level %u", x, L);
        if ((p != HN_NONE && p >= st->n_slots) || (nx != HN_NONE && nx >= st->n_slots) ||
            (hd != HN_NONE && hd >= st->n_slots))
            return HN_CORRUPT("node %u has an out-of-range parent or chain link", x);
        if (L) {
            IQDB_TRY(hn_umap_reserve(h->mem, &g->um, 1));
            uint32_t *b = iqdb__calloc(h->mem, (size_t)L * h->strideu, sizeof(uint32_t));
            if (!b) return IQDB_NOMEM;
            hn_umap_put(&g->um, x, b);
        }
        g->up_bytes += (size_t)L * h->strideu * sizeof(uint32_t);
        g->l0[(size_t)x * h->stride0] = HN_PRESENT | (L << HN_LVL_SHIFT);
        atomic_store_explicit(&g->parent[x], p, memory_order_relaxed);
        g->ovf_next[x] = nx;
        g->ovf_head[x] = hd;
        if (hd != HN_NONE) g->l0[(size_t)x * h->stride0] |= HN_HAS_OVF;
        for (uint32_t lc = 0; lc <= L; lc++) {
            uint32_t n = hn_get32(in);
            if (in->rc) return in->rc;
            if (n > hn_cap_at(h, (int)lc))
                return HN_CORRUPT("node %u layer %u holds %u links", x, lc, n);
            uint32_t *b = hn_blk(h, g, x, (int)lc);
            for (uint32_t i = 0; i < n; i++) {
                uint32_t y = hn_get32(in);
                if (in->rc) return in->rc;
                if (y >= st->n_slots) return HN_CORRUPT("node %u links to slot %u", x, y);
                b[1 + i] = y;
            }
            hn_set_count(b, n);
        }
        g->n_nodes++;
    }
    return IQDB_OK;
}

static uint64_t hn_get64(hn_reader *in) {
    uint64_t lo = hn_get32(in);
    return lo | (uint64_t)hn_get32(in) << 32;
}

/* Reads the quantizer block of version 2 into nq (initialised, untrained) and a new code array
 * of g->cap slots (*nc, *ncc). qrows: trained_rows, next_train. Allocates nothing on failure. */
static int hn_load_quant(const iqdb__hnsw *h, const hn_graph *g, const iqdb__store *st,
                         hn_reader *in, iqdb__quant *nq, uint8_t **nc, size_t *ncc,
                         uint64_t *qrows) {
    uint32_t kind = hn_get32(in), trained = hn_get32(in), cs = hn_get32(in), res = hn_get32(in);
    qrows[0] = hn_get64(in);
    qrows[1] = hn_get64(in);
    if (in->rc) return in->rc;
    if (kind != (uint32_t)h->qkind || trained > 1 || cs != nq->code_size || res > 1 ||
        (res && !trained))
        return HN_CORRUPT("quantizer block (kind %u, trained %u, code size %u, flags %u) does not "
                          "fit the quantizer %d of the parameters",
                          kind, trained, cs, res, (int)h->qkind);
    /* codes only: the codes are the rows, so the store must be in the same state */
    if ((res != 0) != (st->no_vectors != 0))
        return HN_CORRUPT("the section is %scodes only, the rows are %sstored", res ? "" : "not ",
                          st->no_vectors ? "not " : "");
    if (!trained) return IQDB_OK;
    int rc = iqdb__quant_read(nq, in->src);
    if (rc == IQDB_CORRUPT) return HN_CORRUPT("bad quantizer parameters");
    if (rc) return rc;
    uint8_t *codes = iqdb__calloc(h->mem, g->cap, cs);
    if (!codes) {
        iqdb__quant_clear(nq);
        return IQDB_NOMEM;
    }
    /* binary codes: the bits past dim are zero (encode writes them so; the distance counts
     * them) */
    const uint32_t pad = nq->kind == IQDB_QUANT_BINARY ? cs * 8u - h->dim : 0;
    for (size_t x = 0; x < g->cap && rc == IQDB_OK; x++) {
        if (!hn_present(h, g, (uint32_t)x)) continue;
        uint8_t *c = codes + x * cs;
        rc = in->src->read(in->src->ctx, c, cs);
        for (uint32_t b = h->dim; rc == IQDB_OK && b < h->dim + pad; b++)
            if (c[b >> 3] >> (b & 7) & 1u)
                rc = HN_CORRUPT("node %zu: a binary code sets bit %u", x, b);
    }
    if (rc) {
        iqdb__free(h->mem, codes, g->cap * cs);
        iqdb__quant_clear(nq);
        return rc;
    }
    *nc = codes;
    *ncc = g->cap;
    return IQDB_OK;
}

int iqdb__hnsw_load(iqdb__hnsw *h, const iqdb__env *env, iqdb__source *src) {
    const iqdb__store *st = env->store;
    hn_reader in = {src, IQDB_OK};
    uint32_t hdr[6];
    for (int i = 0; i < 6; i++) hdr[i] = hn_get32(&in);
    uint64_t seed = hn_get32(&in);
    seed |= (uint64_t)hn_get32(&in) << 32;
    uint32_t n_slots = hn_get32(&in), n_nodes = hn_get32(&in), entry = hn_get32(&in),
             root = hn_get32(&in), top1 = hn_get32(&in);
    if (in.rc) return in.rc;
    if (hdr[0] != HN_MAGIC) return HN_CORRUPT("bad magic 0x%08x", hdr[0]);
    if (hdr[1] != HN_VERSION && hdr[1] != HN_VERSION_Q)
        return iqdb__fail(NULL, IQDB_FORMAT,
                          "hnsw: format version %u, this library reads %u and %u", hdr[1],
                          HN_VERSION, HN_VERSION_Q);
    if ((hdr[1] == HN_VERSION_Q) != (h->qkind != IQDB_QUANT_NONE))
        return HN_CORRUPT("graph version %u does not fit the quantizer %d of the parameters",
                          hdr[1], (int)h->qkind);
    uint32_t m = hdr[2], efc = hdr[3], ef = hdr[4], widen = hdr[5];
    if (m < 2 || m > 128 || efc < m || efc > 100000 || ef == 0 || ef > 100000 || widen == 0 ||
        widen > 1024 || seed == 0)
        return HN_CORRUPT("parameters out of range (m %u, ef_construction %u, ef %u, widen %u)", m,
                          efc, ef, widen);
    /* The index was created with the parameters the snapshot's own section holds: the graph
     * must agree with them, or the handle would report one m and search with another. */
    if (m != h->m || efc != h->efc || ef != h->ef || widen != h->widen || seed != h->seed)
        return HN_CORRUPT("the graph's parameters (m %u, ef_construction %u, ef %u, widen %u) "
                          "differ from the index's (%u, %u, %u, %u)",
                          m, efc, ef, widen, h->m, h->efc, h->ef, h->widen);
    if (n_slots > st->n_slots || n_nodes != st->count || top1 > HN_MAX_LEVEL + 1 ||
        (n_nodes == 0) != (top1 == 0))
        return HN_CORRUPT("%u nodes in %u slots (top %u) do not fit %llu rows in %zu slots",
                          n_nodes, n_slots, top1, (unsigned long long)st->count, st->n_slots);

    /* Build into a fresh graph with the stored parameters; the old graph and parameters come
     * back on any failure. */
    const uint32_t om = h->m, oefc = h->efc, oef = h->ef, owiden = h->widen;
    const uint64_t oseed = h->seed;
    hn_set_params(h, m, efc, ef, widen, seed);
    hn_graph g;
    hn_graph_init(&g);
    int rc = hn_graph_grow(h, &g, IQDB_MAX(st->n_slots, (size_t)1));
    if (rc == IQDB_OK) rc = hn_load_nodes(h, &g, st, &in, n_nodes);
    iqdb__quant nq;
    iqdb__quant_init(&nq, h->mem, h->qkind, h->metric, h->dim, 0);
    uint8_t *nc = NULL;
    size_t ncc = 0;
    uint64_t qrows[2] = {0, HN_TRAIN_MIN};
    if (rc == IQDB_OK && hdr[1] == HN_VERSION_Q)
        rc = hn_load_quant(h, &g, st, &in, &nq, &nc, &ncc, qrows);
    if (rc == IQDB_OK && hn_get32(&in) != HN_END_MAGIC)
        rc = in.rc ? in.rc : HN_CORRUPT("bad end marker");
    if (rc == IQDB_OK) {
        g.entry = entry;
        g.root = root;
        g.top = (int)top1 - 1;
        if (n_nodes && (entry >= st->n_slots || root >= st->n_slots))
            rc = HN_CORRUPT("entry %u or root %u out of range", entry, root);
    }
    if (rc == IQDB_OK) {
        /* indeg is derived, not stored; the validator checks every other invariant */
        for (size_t x = 0; x < g.cap; x++) {
            if (!hn_present(h, &g, (uint32_t)x)) continue;
            const uint32_t *b = hn_blk(h, &g, (uint32_t)x, 0);
            for (uint32_t i = 0; i < hn_count(b); i++)
                if (b[1 + i] < g.cap) hn_indeg_inc(&g, b[1 + i]);
        }
        uint32_t *work = iqdb__alloc(h->mem, 3 * g.cap * sizeof(uint32_t));
        rc = work ? hn_validate(h, &g, st, work) : IQDB_NOMEM;
        iqdb__free(h->mem, work, 3 * g.cap * sizeof(uint32_t));
    }
    if (rc == IQDB_OK) rc = hn_scratch_prepare(h, h->ws, g.cap, h->efc);
    if (rc == IQDB_OK) rc = hn_scratch_prepare(h, h->ws2, 0, 4 * (size_t)h->m0);
    if (rc) {
        hn_graph_free(h, &g);
        hn_drop_quant(h, &nq, nc, ncc);
        hn_set_params(h, om, oefc, oef, owiden, oseed);
        return rc;
    }
    hn_swap_quant(h, &nq, &nc, &ncc);
    hn_drop_quant(h, &nq, nc, ncc);
    h->trained_rows = qrows[0];
    /* the next automatic training: as written, but never before the threshold or (trained)
     * the last training's row count, whatever the bytes say */
    uint64_t floor_ = hn_coded(h) ? IQDB_MAX(qrows[0], (uint64_t)1) : HN_TRAIN_MIN;
    h->next_train = IQDB_MAX(qrows[1], floor_);
    /* the old graph is freed with the parameters (block sizes) it was built with */
    hn_set_params(h, om, oefc, oef, owiden, oseed);
    hn_graph_free(h, &h->g);
    hn_set_params(h, m, efc, ef, widen, seed);
    h->g = g;
    return IQDB_OK;
}

/* ============================================================================================ */
/* Optimize                                                                                     */
/* ============================================================================================ */

/* Heap sort of slots by sequence number (no allocation). */
static void hn_slots_sift(uint32_t *a, size_t n, size_t i, const uint64_t *seqs) {
    uint32_t x = a[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && seqs[a[c]] < seqs[a[c + 1]]) c++;
        if (seqs[x] >= seqs[a[c]]) break;
        a[i] = a[c];
        i = c;
    }
    a[i] = x;
}
static void hn_sort_slots_by_seq(uint32_t *a, size_t n, const uint64_t *seqs) {
    for (size_t i = n / 2; i-- > 0;) hn_slots_sift(a, n, i, seqs);
    for (size_t k = n; k > 1; k--) {
        uint32_t t = a[0];
        a[0] = a[k - 1];
        a[k - 1] = t;
        hn_slots_sift(a, k - 1, 0, seqs);
    }
}

/* Rebuilds the graph from the live rows, in insertion (sequence) order, through the same bulk
 * insert: repaired lists and overflow edges are replaced by a fresh build, and the arrays shrink
 * to the store's slot count. A quantized graph first retrains its quantizer on the rows (any
 * number of them; none: untrained again) and the build runs on the new codes; codes only (no
 * rows to train on) keeps quantizer and codes. All or nothing. */
int iqdb__hnsw_optimize(iqdb__hnsw *h, const iqdb__env *env) {
    const iqdb__store *st = env->store;
    size_t n = (size_t)st->count;
    uint32_t *slots = iqdb__alloc(h->mem, IQDB_MAX(n, (size_t)1) * sizeof *slots);
    if (!slots) return IQDB_NOMEM;
    size_t k = 0;
    for (size_t x = 0; x < st->n_slots; x++)
        if (st->live[x]) slots[k++] = (uint32_t)x;
    hn_sort_slots_by_seq(slots, k, st->seqs);
    /* the old quantizer is kept aside until the build has succeeded */
    iqdb__quant oq;
    iqdb__quant_init(&oq, h->mem, h->qkind, h->metric, h->dim, 0);
    uint8_t *oc = NULL;
    size_t occ = 0;
    uint64_t otr = h->trained_rows, ont = h->next_train;
    int rc = IQDB_OK, swapped = 0;
    if (h->qkind != IQDB_QUANT_NONE && !st->no_vectors) {
        if (n) {
            size_t cap = IQDB_MAX(st->n_slots, (size_t)1);
            rc = hn_train(h, env, cap, &oq, &oc);
            occ = cap;
        }
        if (rc == IQDB_OK) { /* n == 0: an untrained quantizer and no codes go in */
            hn_swap_quant(h, &oq, &oc, &occ);
            swapped = 1;
            h->trained_rows = n;
            h->next_train = n ? n * HN_GROW : HN_TRAIN_MIN;
        }
    }
    hn_graph old = h->g;
    hn_graph_init(&h->g);
    if (rc == IQDB_OK) rc = iqdb__hnsw_insert(h, env, slots, k, NULL);
    if (rc) {
        hn_graph_free(h, &h->g);
        h->g = old;
        if (swapped) {
            hn_swap_quant(h, &oq, &oc, &occ);
            h->trained_rows = otr;
            h->next_train = ont;
        }
    } else {
        hn_graph_free(h, &old);
    }
    hn_drop_quant(h, &oq, oc, occ);
    iqdb__free(h->mem, slots, IQDB_MAX(n, (size_t)1) * sizeof *slots);
    return rc;
}

/* After a write (index.h): a quantized graph trains once it holds HN_TRAIN_MIN rows (when the
 * insert that crossed the mark could not) and, while the rows are stored, retrains after each
 * HN_GROW-fold growth, so the codes' ranges follow the data; a retraining re-encodes every
 * row (the graph stays). Out of memory: tried again after a further quarter of growth. */
int iqdb__hnsw_maintain(iqdb__hnsw *h, const iqdb__env *env) {
    const iqdb__store *st = env->store;
    uint64_t n = st->count;
    if (h->qkind == IQDB_QUANT_NONE || st->no_vectors || n < h->next_train || n == 0) return 0;
    if (hn_retrain(h, env, IQDB_MAX(h->g.cap, st->n_slots)) != IQDB_OK) {
        h->next_train = n + n / 4 + 1;
        return 0;
    }
    return 1;
}

/* ---- what iqdb_stats and iqdb_get see of the quantizer --------------------------------------- */

void iqdb__hnsw_describe_quant(const iqdb__hnsw *h, iqdb__index_desc *d) {
    memset(d, 0, sizeof *d);
    d->quant = h->qkind;
    d->code_bytes = h->q.code_size;
    d->trained = (uint32_t)hn_coded(h);
    d->trained_rows = h->trained_rows;
    d->mem_codes = h->ccap * h->q.code_size;
}

int iqdb__hnsw_vector(const iqdb__hnsw *h, const iqdb__env *env, uint32_t slot, float *out) {
    if (!hn_coded(h) || !hn_present(h, &h->g, slot) || slot >= h->ccap) return IQDB_ERROR;
    iqdb__quant_decode(&h->q, hn_code(h, slot), NULL, out);
    if (h->q.normalize) { /* codes hold the direction; the store keeps the norm */
        float nrm = sqrtf(IQDB_MAX(env->store->sqnorm[slot], 0.0f));
        for (uint32_t j = 0; j < h->dim; j++) out[j] *= nrm;
    }
    return IQDB_OK;
}
