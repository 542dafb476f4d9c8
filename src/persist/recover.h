/*
 * recover.h — the file-level protocols around the snapshot and the WAL: the names of the three
 * files, and the checkpoint sequence of docs/FORMAT.md (temp file, fsync, rename, directory
 * fsync, WAL reset), which creation uses too. Opening and replay are driven by the API layer
 * (src/durable.c), which owns the handle these steps fill.
 */
#ifndef IQDB_PERSIST_RECOVER_H
#define IQDB_PERSIST_RECOVER_H

#include "persist/snapshot.h"
#include "persist/wal.h"

typedef struct iqdb__paths {
    char *snap, *wal, *tmp;
    size_t len; /* strlen(snap) */
} iqdb__paths;

int iqdb__paths_init(iqdb__paths *p, const char *path, iqdb__mem *mem);
void iqdb__paths_free(iqdb__paths *p, iqdb__mem *mem);
/* "<snap><sfx>" for a 4-character suffix such as ".wal" (p->len + 5 bytes, freed by the caller),
 * or NULL when out of memory. */
char *iqdb__paths_sibling(const iqdb__paths *p, const char sfx[5], iqdb__mem *mem);

/* How far a checkpoint got. */
typedef enum iqdb__ckpt_stage {
    IQDB__CKPT_NONE = 0, /* the old snapshot and WAL are in charge; nothing to undo */
    IQDB__CKPT_UNKNOWN,  /* renamed, but the directory fsync failed: durable or not, unknown */
    IQDB__CKPT_SWITCHED, /* the new snapshot is durable; the WAL reset failed */
    IQDB__CKPT_DONE      /* new snapshot durable and the WAL reset to its generation */
} iqdb__ckpt_stage;

/* Runs the checkpoint sequence for `src` (whose generation and LSN are the new snapshot's) and
 * resets `wal` (already open) to generation src->generation at src->lsn + 1. *bytes receives
 * the snapshot's size. */
int iqdb__checkpoint_files(const iqdb__io *io, const iqdb__paths *p, const iqdb__snap_src *src,
                           int codec, int level, iqdb__mem *mem, iqdb__wal *wal,
                           iqdb__ckpt_stage *stage, uint64_t *bytes);

#endif
