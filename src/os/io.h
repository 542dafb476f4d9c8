/*
 * io.h — the I/O seam: every file operation iqdb performs goes through an iqdb__io table, so
 * tests can substitute an implementation that fails the Nth operation or simulates power loss
 * (SQLite's VFS is the model). The default table is POSIX (io_posix.c) or Win32 (io_win32.c).
 *
 * Rules for implementations:
 *  - Every function returns IQDB_OK or an IQDB_IOERR* code (never errno); the OS error, if any,
 *    goes to *sys_errno of the file or table for messages.
 *  - write_at writes all n bytes or fails; read_at reads up to n bytes and reports how many
 *    (fewer only at end of file).
 *  - sync makes the file's data and size durable; sync_dir makes the directory entries under
 *    `dir` durable (a no-op where the platform has no such call).
 *  - lock takes an exclusive advisory lock on an open file without waiting, or returns
 *    IQDB_BUSY. The lock lasts until the file is closed.
 *  - Functions may be called from several threads at once on different files, and sync may run
 *    on a file while another thread writes to it (group commit does).
 */
#ifndef IQDB_IO_H
#define IQDB_IO_H

#include <stdint.h>

#include "internal.h"

/* The extended I/O codes (IQDB_IOERR_OPEN ...) are public: see iqdb.h. */

/* open flags */
#define IQDB__IO_READ 0x1
#define IQDB__IO_WRITE 0x2
#define IQDB__IO_CREATE 0x4 /* create if missing */
#define IQDB__IO_EXCL 0x8   /* fail if it exists */

typedef struct iqdb__file iqdb__file;
typedef struct iqdb__io iqdb__io;

struct iqdb__io {
    int (*open)(const iqdb__io *io, const char *path, int flags, iqdb__file **out);
    int (*close)(iqdb__file *f);
    int (*read_at)(iqdb__file *f, void *buf, size_t n, uint64_t off, size_t *got);
    int (*write_at)(iqdb__file *f, const void *buf, size_t n, uint64_t off);
    int (*sync)(iqdb__file *f);
    int (*truncate)(iqdb__file *f, uint64_t size);
    int (*size)(iqdb__file *f, uint64_t *size);
    int (*lock)(iqdb__file *f);
    int (*exists)(const iqdb__io *io, const char *path, int *exists);
    int (*rename)(const iqdb__io *io, const char *from, const char *to);
    int (*remove)(const iqdb__io *io, const char *path);
    int (*sync_dir)(const iqdb__io *io, const char *path_in_dir);
    void *ctx; /* for test implementations */
};

/* The implementation iqdb_open uses: the platform's, unless a test installed another. */
const iqdb__io *iqdb__io_default(void);
/* The platform's implementation (io_posix.c or io_win32.c). */
const iqdb__io *iqdb__io_platform(void);
/* Test hook: make iqdb_open use `io` (NULL restores the platform's). Not thread-safe against
 * concurrent opens; tests install it before opening. */
void iqdb__io_set_default(const iqdb__io *io);
/* The last OS error number seen by the default implementation on this thread. */
int iqdb__io_last_errno(void);

#endif
