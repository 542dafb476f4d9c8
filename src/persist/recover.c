/*
 * recover.c — see recover.h. The order of the checkpoint steps is the whole point: the WAL is
 * reset only after the new snapshot's data and its name are both durable, so at every crash
 * point one of (old snapshot, WAL) or (new snapshot, stale or reset WAL) is on disk, and
 * recovery (docs/FORMAT.md) tells them apart by generation.
 */
#include "persist/recover.h"

char *iqdb__paths_sibling(const iqdb__paths *p, const char sfx[5], iqdb__mem *mem) {
    char *s = iqdb__alloc(mem, p->len + 5);
    if (s) {
        memcpy(s, p->snap, p->len);
        memcpy(s + p->len, sfx, 5);
    }
    return s;
}

int iqdb__paths_init(iqdb__paths *p, const char *path, iqdb__mem *mem) {
    memset(p, 0, sizeof *p);
    p->len = strlen(path);
    if (p->len > SIZE_MAX / 4) return IQDB_NOMEM;
    p->snap = iqdb__strndup(mem, path, p->len);
    if (p->snap) {
        p->wal = iqdb__paths_sibling(p, ".wal", mem);
        p->tmp = iqdb__paths_sibling(p, ".tmp", mem);
    }
    if (!p->snap || !p->wal || !p->tmp) {
        iqdb__paths_free(p, mem);
        return IQDB_NOMEM;
    }
    return IQDB_OK;
}

void iqdb__paths_free(iqdb__paths *p, iqdb__mem *mem) {
    if (p->snap) iqdb__free(mem, p->snap, p->len + 1);
    if (p->wal) iqdb__free(mem, p->wal, p->len + 5);
    if (p->tmp) iqdb__free(mem, p->tmp, p->len + 5);
    memset(p, 0, sizeof *p);
}

int iqdb__checkpoint_files(const iqdb__io *io, const iqdb__paths *p, const iqdb__snap_src *src,
                           int codec, int level, iqdb__mem *mem, iqdb__wal *wal,
                           iqdb__ckpt_stage *stage, uint64_t *bytes) {
    *stage = IQDB__CKPT_NONE;
    /* 1. the temp file, complete and synced (removed again on failure) */
    IQDB_TRY(iqdb__snapshot_write(io, p->tmp, src, codec, level, mem, bytes));
    /* 2. into place, and the directory entry durable */
    int rc = io->rename(io, p->tmp, p->snap);
    if (rc) {
        io->remove(io, p->tmp);
        return iqdb__fail(NULL, rc, "renaming the new snapshot failed (errno %d)",
                          iqdb__io_last_errno());
    }
    rc = io->sync_dir(io, p->snap) ? IQDB_IOERR_DIRSYNC : IQDB_OK;
    if (rc) {
        *stage = IQDB__CKPT_UNKNOWN;
        return iqdb__fail(NULL, rc, "fsync of the database's directory failed (errno %d)",
                          iqdb__io_last_errno());
    }
    /* 3. only now may the WAL forget what the snapshot holds */
    *stage = IQDB__CKPT_SWITCHED;
    IQDB_TRY(iqdb__wal_reset(wal, src->generation, src->lsn + 1));
    *stage = IQDB__CKPT_DONE;
    return IQDB_OK;
}
