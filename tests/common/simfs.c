/*
 * simfs.c — see simfs.h. Plain malloc (this is test code) and one mutex around everything, so
 * the group-commit leader may fsync while another thread appends.
 */
#define IQDB_ALLOW_LIBC_ALLOC
#include "simfs.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct op {
    int trunc; /* 0: write at off of len bytes; 1: truncate to off */
    uint64_t off;
    size_t len;
    uint8_t *data;
} op;

typedef struct inode {
    uint8_t *cur, *dur;
    size_t cur_len, dur_len;
    op *ops;
    size_t n_ops, cap_ops;
    int locked, sync_failed;
} inode;

typedef struct entry {
    char *name;
    inode *ino;
} entry;

typedef struct nsop {
    int kind; /* SIMFS_OP_CREATE / RENAME / REMOVE */
    char *a, *b;
    inode *ino;
} nsop;

struct simfs {
    iqdb__io io;
    pthread_mutex_t mu;
    entry *names, *dnames; /* current and durable names */
    size_t n_names, n_dnames;
    nsop *ns;
    size_t n_ns;
    inode **inodes;
    size_t n_inodes;
    long ops, crash_at, open_files, sync_retries;
    int crashed;
    int fail_kinds, fail_persistent, fail_rc, failed;
    long fail_nth, fail_seen;
};

struct iqdb__file {
    simfs *fs;
    inode *ino;
    int locked;
};

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) abort();
    return p;
}
static void *xrealloc(void *p, size_t n) {
    p = realloc(p, n ? n : 1);
    if (!p) abort();
    return p;
}
static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = xmalloc(n);
    memcpy(d, s, n);
    return d;
}
static uint8_t *dup_bytes(const uint8_t *p, size_t n) {
    uint8_t *d = xmalloc(n);
    if (n) memcpy(d, p, n);
    return d;
}

/* the final path component: the simulated directory is flat */
static const char *base(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static inode *new_inode(simfs *fs) {
    inode *ino = calloc(1, sizeof *ino);
    if (!ino) abort();
    fs->inodes = xrealloc(fs->inodes, (fs->n_inodes + 1) * sizeof *fs->inodes);
    fs->inodes[fs->n_inodes++] = ino;
    return ino;
}

static entry *find(entry *e, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(e[i].name, name) == 0) return &e[i];
    return NULL;
}
static void set_name(entry **e, size_t *n, const char *name, inode *ino) {
    entry *x = find(*e, *n, name);
    if (x) {
        x->ino = ino;
        return;
    }
    *e = xrealloc(*e, (*n + 1) * sizeof **e);
    (*e)[*n].name = xstrdup(name);
    (*e)[*n].ino = ino;
    (*n)++;
}
static void del_name(entry *e, size_t *n, const char *name) {
    entry *x = find(e, *n, name);
    if (!x) return;
    free(x->name);
    *x = e[--*n];
}
static void add_ns(simfs *fs, int kind, const char *a, const char *b, inode *ino) {
    fs->ns = xrealloc(fs->ns, (fs->n_ns + 1) * sizeof *fs->ns);
    fs->ns[fs->n_ns].kind = kind;
    fs->ns[fs->n_ns].a = xstrdup(a);
    fs->ns[fs->n_ns].b = b ? xstrdup(b) : NULL;
    fs->ns[fs->n_ns].ino = ino;
    fs->n_ns++;
}

/* Counts a mutating call; returns non-zero when it must fail (crash or injected fault). */
static int gate(simfs *fs, int kind, int *rc, int fail_code) {
    if (kind != SIMFS_OP_READ) {
        if (fs->crashed) {
            *rc = fail_code;
            return 1;
        }
        fs->ops++;
        if (fs->crash_at && fs->ops >= fs->crash_at) {
            fs->crashed = 1;
            *rc = fail_code;
            return 1;
        }
    }
    if (fs->fail_kinds & kind) {
        fs->fail_seen++;
        if (fs->fail_seen == fs->fail_nth ||
            (fs->fail_persistent && fs->fail_seen > fs->fail_nth)) {
            fs->failed = 1;
            *rc = fs->fail_rc ? fs->fail_rc : fail_code;
            return 1;
        }
    }
    return 0;
}

/* ---- content ------------------------------------------------------------------------------ */

static void apply_write(uint8_t **buf, size_t *len, uint64_t off, const uint8_t *data, size_t n) {
    size_t end = (size_t)off + n;
    if (end > *len) {
        *buf = xrealloc(*buf, end);
        memset(*buf + *len, 0, end - *len);
        *len = end;
    }
    if (n) memcpy(*buf + off, data, n);
}
static void apply_trunc(uint8_t **buf, size_t *len, uint64_t size) {
    if (size > *len) {
        *buf = xrealloc(*buf, (size_t)size);
        memset(*buf + *len, 0, (size_t)size - *len);
    }
    *len = (size_t)size;
}
static void push_op(inode *ino, int trunc, uint64_t off, const uint8_t *data, size_t n) {
    if (ino->n_ops == ino->cap_ops) {
        ino->cap_ops = ino->cap_ops ? ino->cap_ops * 2 : 16;
        ino->ops = xrealloc(ino->ops, ino->cap_ops * sizeof *ino->ops);
    }
    op *o = &ino->ops[ino->n_ops++];
    o->trunc = trunc;
    o->off = off;
    o->len = n;
    o->data = trunc ? NULL : dup_bytes(data, n);
}
static void clear_ops(inode *ino) {
    for (size_t i = 0; i < ino->n_ops; i++) free(ino->ops[i].data);
    ino->n_ops = 0;
}

/* ---- the seam ----------------------------------------------------------------------------- */

#define FS(io) ((simfs *)(io)->ctx)

static int s_open(const iqdb__io *io, const char *path, int flags, iqdb__file **out) {
    simfs *fs = FS(io);
    *out = NULL;
    pthread_mutex_lock(&fs->mu);
    int rc = IQDB_OK;
    const char *name = base(path);
    entry *e = find(fs->names, fs->n_names, name);
    if (e && (flags & IQDB__IO_EXCL)) rc = IQDB_IOERR_OPEN;
    if (!e && !(flags & IQDB__IO_CREATE)) rc = IQDB_IOERR_OPEN;
    inode *ino = e ? e->ino : NULL;
    if (rc == IQDB_OK && !e && !gate(fs, SIMFS_OP_CREATE, &rc, IQDB_IOERR_OPEN)) {
        ino = new_inode(fs);
        set_name(&fs->names, &fs->n_names, name, ino);
        add_ns(fs, SIMFS_OP_CREATE, name, NULL, ino);
    }
    if (rc == IQDB_OK) {
        iqdb__file *f = xmalloc(sizeof *f);
        f->fs = fs;
        f->ino = ino;
        f->locked = 0;
        fs->open_files++;
        *out = f;
    }
    pthread_mutex_unlock(&fs->mu);
    return rc;
}

static int s_close(iqdb__file *f) {
    if (!f) return IQDB_OK;
    simfs *fs = f->fs;
    pthread_mutex_lock(&fs->mu);
    if (f->locked) f->ino->locked = 0;
    fs->open_files--;
    pthread_mutex_unlock(&fs->mu);
    free(f);
    return IQDB_OK;
}

static int s_read_at(iqdb__file *f, void *buf, size_t n, uint64_t off, size_t *got) {
    simfs *fs = f->fs;
    pthread_mutex_lock(&fs->mu);
    int rc = IQDB_OK;
    *got = 0;
    if (!gate(fs, SIMFS_OP_READ, &rc, IQDB_IOERR_READ) && off < f->ino->cur_len) {
        size_t take = f->ino->cur_len - (size_t)off;
        if (take > n) take = n;
        memcpy(buf, f->ino->cur + off, take);
        *got = take;
    }
    pthread_mutex_unlock(&fs->mu);
    return rc;
}

static int s_write_at(iqdb__file *f, const void *buf, size_t n, uint64_t off) {
    simfs *fs = f->fs;
    pthread_mutex_lock(&fs->mu);
    int rc = IQDB_OK;
    int crashed_before = fs->crashed;
    if (gate(fs, SIMFS_OP_WRITE, &rc, IQDB_IOERR_WRITE)) {
        /* an injected failure (not a crash) may have written part of the data */
        if (!fs->crashed && !crashed_before && n > 1) {
            apply_write(&f->ino->cur, &f->ino->cur_len, off, buf, n / 2);
            push_op(f->ino, 0, off, buf, n / 2);
        }
    } else {
        apply_write(&f->ino->cur, &f->ino->cur_len, off, buf, n);
        push_op(f->ino, 0, off, buf, n);
    }
    pthread_mutex_unlock(&fs->mu);
    return rc;
}

static int s_sync(iqdb__file *f) {
    simfs *fs = f->fs;
    pthread_mutex_lock(&fs->mu);
    int rc = IQDB_OK;
    if (f->ino->sync_failed) fs->sync_retries++;
    if (gate(fs, SIMFS_OP_SYNC, &rc, IQDB_IOERR_FSYNC)) {
        if (!fs->crashed) f->ino->sync_failed = 1;
    } else {
        inode *ino = f->ino;
        free(ino->dur);
        ino->dur = dup_bytes(ino->cur, ino->cur_len);
        ino->dur_len = ino->cur_len;
        clear_ops(ino);
    }
    pthread_mutex_unlock(&fs->mu);
    return rc;
}

static int s_truncate(iqdb__file *f, uint64_t size) {
    simfs *fs = f->fs;
    pthread_mutex_lock(&fs->mu);
    int rc = IQDB_OK;
    if (!gate(fs, SIMFS_OP_TRUNC, &rc, IQDB_IOERR_TRUNCATE)) {
        apply_trunc(&f->ino->cur, &f->ino->cur_len, size);
        push_op(f->ino, 1, size, NULL, 0);
    }
    pthread_mutex_unlock(&fs->mu);
    return rc;
}

static int s_size(iqdb__file *f, uint64_t *size) {
    pthread_mutex_lock(&f->fs->mu);
    *size = f->ino->cur_len;
    pthread_mutex_unlock(&f->fs->mu);
    return IQDB_OK;
}

static int s_lock(iqdb__file *f) {
    pthread_mutex_lock(&f->fs->mu);
    int rc = IQDB_OK;
    if (f->ino->locked && !f->locked)
        rc = IQDB_BUSY;
    else
        f->ino->locked = f->locked = 1;
    pthread_mutex_unlock(&f->fs->mu);
    return rc;
}

static int s_exists(const iqdb__io *io, const char *path, int *exists) {
    simfs *fs = FS(io);
    pthread_mutex_lock(&fs->mu);
    *exists = find(fs->names, fs->n_names, base(path)) != NULL;
    pthread_mutex_unlock(&fs->mu);
    return IQDB_OK;
}

static int s_rename(const iqdb__io *io, const char *from, const char *to) {
    simfs *fs = FS(io);
    pthread_mutex_lock(&fs->mu);
    int rc = IQDB_OK;
    entry *e = find(fs->names, fs->n_names, base(from));
    if (!e) {
        rc = IQDB_IOERR_RENAME;
    } else if (!gate(fs, SIMFS_OP_RENAME, &rc, IQDB_IOERR_RENAME)) {
        inode *ino = e->ino;
        del_name(fs->names, &fs->n_names, base(from));
        set_name(&fs->names, &fs->n_names, base(to), ino);
        add_ns(fs, SIMFS_OP_RENAME, base(from), base(to), ino);
    }
    pthread_mutex_unlock(&fs->mu);
    return rc;
}

static int s_remove(const iqdb__io *io, const char *path) {
    simfs *fs = FS(io);
    pthread_mutex_lock(&fs->mu);
    int rc = IQDB_OK;
    if (find(fs->names, fs->n_names, base(path)) &&
        !gate(fs, SIMFS_OP_REMOVE, &rc, IQDB_IOERR_DELETE)) {
        del_name(fs->names, &fs->n_names, base(path));
        add_ns(fs, SIMFS_OP_REMOVE, base(path), NULL, NULL);
    }
    pthread_mutex_unlock(&fs->mu);
    return rc;
}

static void copy_names(entry **dst, size_t *nd, const entry *src, size_t ns) {
    for (size_t i = 0; i < *nd; i++) free((*dst)[i].name);
    free(*dst);
    *dst = xmalloc(ns * sizeof **dst);
    for (size_t i = 0; i < ns; i++) {
        (*dst)[i].name = xstrdup(src[i].name);
        (*dst)[i].ino = src[i].ino;
    }
    *nd = ns;
}
static void clear_ns(simfs *fs) {
    for (size_t i = 0; i < fs->n_ns; i++) {
        free(fs->ns[i].a);
        free(fs->ns[i].b);
    }
    fs->n_ns = 0;
}

static int s_sync_dir(const iqdb__io *io, const char *path_in_dir) {
    (void)path_in_dir;
    simfs *fs = FS(io);
    pthread_mutex_lock(&fs->mu);
    int rc = IQDB_OK;
    if (!gate(fs, SIMFS_OP_SYNCDIR, &rc, IQDB_IOERR_DIRSYNC)) {
        copy_names(&fs->dnames, &fs->n_dnames, fs->names, fs->n_names);
        clear_ns(fs);
    }
    pthread_mutex_unlock(&fs->mu);
    return rc;
}

/* ---- the simulation's own API -------------------------------------------------------------- */

simfs *simfs_new(void) {
    simfs *fs = calloc(1, sizeof *fs);
    if (!fs) abort();
    pthread_mutex_init(&fs->mu, NULL);
    iqdb__io io = {s_open, s_close,  s_read_at, s_write_at, s_sync,     s_truncate, s_size,
                   s_lock, s_exists, s_rename,  s_remove,   s_sync_dir, fs};
    fs->io = io;
    return fs;
}

void simfs_free(simfs *fs) {
    if (!fs) return;
    for (size_t i = 0; i < fs->n_inodes; i++) {
        clear_ops(fs->inodes[i]);
        free(fs->inodes[i]->ops);
        free(fs->inodes[i]->cur);
        free(fs->inodes[i]->dur);
        free(fs->inodes[i]);
    }
    free(fs->inodes);
    for (size_t i = 0; i < fs->n_names; i++) free(fs->names[i].name);
    for (size_t i = 0; i < fs->n_dnames; i++) free(fs->dnames[i].name);
    free(fs->names);
    free(fs->dnames);
    clear_ns(fs);
    free(fs->ns);
    pthread_mutex_destroy(&fs->mu);
    free(fs);
}

const iqdb__io *simfs_io(simfs *fs) { return &fs->io; }
void simfs_crash_at(simfs *fs, long n) { fs->crash_at = n; }
long simfs_ops(const simfs *fs) { return fs->ops; }
int simfs_crashed(const simfs *fs) { return fs->crashed; }
int simfs_failed(const simfs *fs) { return fs->failed; }
long simfs_sync_retries(const simfs *fs) { return fs->sync_retries; }
long simfs_open_files(const simfs *fs) { return fs->open_files; }

void simfs_fail(simfs *fs, int kinds, long nth, int persistent, int rc) {
    pthread_mutex_lock(&fs->mu);
    fs->fail_kinds = kinds;
    fs->fail_nth = nth;
    fs->fail_persistent = persistent;
    fs->fail_rc = rc;
    fs->fail_seen = 0;
    fs->failed = 0;
    pthread_mutex_unlock(&fs->mu);
}
void simfs_fail_off(simfs *fs) {
    pthread_mutex_lock(&fs->mu);
    fs->fail_kinds = 0;
    pthread_mutex_unlock(&fs->mu);
}

static uint64_t rnd(uint64_t *s) {
    uint64_t x = (*s += 0x9e3779b97f4a7c15ull);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* One unsynced write under the TORN model: whole, torn (a prefix, the rest zeros or garbage),
 * or garbage. */
static void torn_write(uint8_t **buf, size_t *len, const op *o, uint64_t *seed) {
    uint8_t *d = dup_bytes(o->data, o->len);
    switch (rnd(seed) % 4) {
    case 0: break;
    case 1:
    case 2: {
        size_t cut = o->len ? (size_t)(rnd(seed) % o->len) : 0;
        int garbage = rnd(seed) & 1;
        for (size_t i = cut; i < o->len; i++) d[i] = garbage ? (uint8_t)rnd(seed) : 0;
        break;
    }
    default:
        for (size_t i = 0; i < o->len; i++) d[i] = (uint8_t)rnd(seed);
    }
    apply_write(buf, len, o->off, d, o->len);
    free(d);
}

/* The content of one inode after the crash. */
static void crash_content(const inode *ino, int model, uint64_t *seed, uint8_t **out,
                          size_t *out_len) {
    uint8_t *b = dup_bytes(ino->dur, ino->dur_len);
    size_t len = ino->dur_len;
    for (size_t i = 0; model != SIMFS_STRICT && i < ino->n_ops; i++) {
        if (rnd(seed) % 2) continue; /* this one never reached the disk */
        const op *o = &ino->ops[i];
        if (o->trunc)
            apply_trunc(&b, &len, o->off);
        else if (model == SIMFS_TORN)
            torn_write(&b, &len, o, seed);
        else
            apply_write(&b, &len, o->off, o->data, o->len);
    }
    *out = b;
    *out_len = len;
}

simfs *simfs_after_crash(const simfs *fs, int model, uint64_t seed) {
    uint64_t s = seed * 0x2545F4914F6CDD1Dull + 1;
    /* names: the durable ones plus (not STRICT) a prefix of the changes since */
    entry *names = NULL;
    size_t n = 0;
    copy_names(&names, &n, fs->dnames, fs->n_dnames);
    size_t prefix = model == SIMFS_STRICT ? 0 : (size_t)(rnd(&s) % (fs->n_ns + 1));
    for (size_t i = 0; i < prefix; i++) {
        const nsop *o = &fs->ns[i];
        if (o->kind == SIMFS_OP_CREATE) set_name(&names, &n, o->a, o->ino);
        if (o->kind == SIMFS_OP_RENAME) {
            del_name(names, &n, o->a);
            set_name(&names, &n, o->b, o->ino);
        }
        if (o->kind == SIMFS_OP_REMOVE) del_name(names, &n, o->a);
    }
    simfs *out = simfs_new();
    for (size_t i = 0; i < n; i++) {
        uint8_t *b;
        size_t len;
        crash_content(names[i].ino, model, &s, &b, &len);
        simfs_put(out, names[i].name, b, len);
        free(b);
        free(names[i].name);
    }
    free(names);
    return out;
}

simfs *simfs_clone(const simfs *fs) {
    simfs *out = simfs_new();
    for (size_t i = 0; i < fs->n_names; i++)
        simfs_put(out, fs->names[i].name, fs->names[i].ino->cur, fs->names[i].ino->cur_len);
    return out;
}

int simfs_get(const simfs *fs, const char *name, uint8_t **data, size_t *len) {
    entry *e = find(fs->names, fs->n_names, base(name));
    if (!e) return 0;
    *data = dup_bytes(e->ino->cur, e->ino->cur_len);
    *len = e->ino->cur_len;
    return 1;
}

void simfs_put(simfs *fs, const char *name, const uint8_t *data, size_t len) {
    inode *ino = new_inode(fs);
    ino->cur = dup_bytes(data, len);
    ino->dur = dup_bytes(data, len);
    ino->cur_len = ino->dur_len = len;
    set_name(&fs->names, &fs->n_names, base(name), ino);
    copy_names(&fs->dnames, &fs->n_dnames, fs->names, fs->n_names);
}

void simfs_unlink(simfs *fs, const char *name) {
    del_name(fs->names, &fs->n_names, base(name));
    copy_names(&fs->dnames, &fs->n_dnames, fs->names, fs->n_names);
}
