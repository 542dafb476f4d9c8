/*
 * filter.h — filter trees (the public iqdb_filter), their evaluation, and the compiled form a
 * search evaluates against stored metadata blobs.
 *
 * A built filter is always valid (depth and IN limits are checked by the builders), immutable,
 * and may be shared by concurrent searches. A search compiles it into per-query scratch: keys
 * are resolved to the handle's key ids once, so evaluating a row costs blob scans by integer
 * key, no string compares. A key the handle has never seen resolves to IQDB__NO_KEY, which no
 * record has: its leaves are false (closed world) without touching the blob.
 */
#ifndef IQDB_FILTER_H
#define IQDB_FILTER_H

#include "internal.h"
#include "meta/meta.h"

typedef enum iqdb__fkind {
    IQDB__F_CMP = 0,
    IQDB__F_IN = 1,
    IQDB__F_EXISTS = 2,
    IQDB__F_AND = 3,
    IQDB__F_OR = 4,
    IQDB__F_NOT = 5
} iqdb__fkind;

struct iqdb_filter {
    iqdb__mem mem;
    uint8_t kind;   /* iqdb__fkind */
    uint8_t op;     /* iqdb_op for CMP */
    uint16_t depth; /* AND/OR/NOT nesting height: leaves 0 */
    char *key;      /* leaves */
    size_t key_len;
    iqdb_value v;     /* CMP: owned copy */
    iqdb_value *vals; /* IN: owned copies */
    size_t n_vals;
    iqdb_filter **kids; /* AND / OR / NOT */
    size_t n_kids;
};

/* Three-way comparison of two values under the filter's type rules. Returns 1 and sets *c to
 * -1/0/1 when the pair is comparable, else 0. */
int iqdb__value_cmp(const iqdb_value *a, const iqdb_value *b, int *c);
/* `a op b` under the filter's rules (incomparable pairs are false for every op). */
int iqdb__value_op(iqdb_op op, const iqdb_value *a, const iqdb_value *b);

/* ---- compiled form ---------------------------------------------------------------------- */

typedef struct iqdb__cnode {
    uint8_t kind;
    uint8_t op;
    uint32_t key;           /* leaves: key id or IQDB__NO_KEY */
    const iqdb_value *vals; /* CMP: one value; IN: n values (point into the filter) */
    uint32_t n;             /* IN: values; AND/OR/NOT: children */
    uint32_t first;         /* AND/OR/NOT: index of the first child in kids[] */
} iqdb__cnode;

typedef struct iqdb__cfilter {
    iqdb__cnode *nodes;
    uint32_t *kids;
    size_t nodes_cap, kids_cap;
    size_t n_nodes, n_kids;
} iqdb__cfilter;

/* Compiles `f` against dictionary `d` into `cf`, growing its buffers from `mem` when needed.
 * Returns IQDB_OK or IQDB_NOMEM. */
int iqdb__filter_compile(const iqdb_filter *f, const iqdb__keydict *d, iqdb__cfilter *cf,
                         iqdb__mem *mem);
/* Evaluates a compiled filter against a record's metadata blob (NULL: no metadata). */
int iqdb__cfilter_eval(const iqdb__cfilter *cf, const uint8_t *blob, uint32_t len);
void iqdb__cfilter_free(iqdb__cfilter *cf, iqdb__mem *mem);
size_t iqdb__cfilter_mem(const iqdb__cfilter *cf);

#endif
