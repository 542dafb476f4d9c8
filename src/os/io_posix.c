/*
 * io_posix.c — the I/O seam over POSIX: pread/pwrite, fsync (F_FULLFSYNC on Apple, where plain
 * fsync does not flush the drive cache), fcntl locks, rename, and a directory fsync after
 * namespace changes.
 */
#if !defined(_WIN32)
#define _GNU_SOURCE /* F_OFD_SETLK */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "os/io.h"
#include "os/thread.h"

struct iqdb__file {
    int fd;
};

static IQDB_THREAD_LOCAL int last_errno;

int iqdb__io_last_errno(void) { return last_errno; }

static int ioerr(int code) {
    last_errno = errno;
    if (errno == ENOSPC || errno == EDQUOT) return IQDB_IOERR_NOSPACE;
    return code;
}

/* The file structs come from a small static-free allocation: the seam has no handle, so it uses
 * the default allocator (counted in no handle). */
static iqdb__mem io_mem;
static iqdb__once io_once = IQDB__ONCE_INIT;
static void io_init(void) { iqdb__mem_init(&io_mem, NULL); }

static int px_open(const iqdb__io *io, const char *path, int flags, iqdb__file **out) {
    (void)io;
    *out = NULL;
    iqdb__call_once(&io_once, io_init);
    int of = O_CLOEXEC;
    if ((flags & IQDB__IO_READ) && (flags & IQDB__IO_WRITE))
        of |= O_RDWR;
    else if (flags & IQDB__IO_WRITE)
        of |= O_WRONLY;
    else
        of |= O_RDONLY;
    if (flags & IQDB__IO_CREATE) of |= O_CREAT;
    if (flags & IQDB__IO_EXCL) of |= O_EXCL;
    int fd;
    do fd = open(path, of, 0644);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) return ioerr(IQDB_IOERR_OPEN);
    iqdb__file *f = iqdb__alloc(&io_mem, sizeof *f);
    if (!f) {
        close(fd);
        return IQDB_NOMEM;
    }
    f->fd = fd;
    *out = f;
    return IQDB_OK;
}

static int px_close(iqdb__file *f) {
    if (!f) return IQDB_OK;
    int rc = close(f->fd) ? ioerr(IQDB_IOERR_WRITE) : IQDB_OK;
    iqdb__free(&io_mem, f, sizeof *f);
    return rc;
}

static int px_read_at(iqdb__file *f, void *buf, size_t n, uint64_t off, size_t *got) {
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(f->fd, (char *)buf + done, n - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR) continue;
            *got = done;
            return ioerr(IQDB_IOERR_READ);
        }
        if (r == 0) break;
        done += (size_t)r;
    }
    *got = done;
    return IQDB_OK;
}

static int px_write_at(iqdb__file *f, const void *buf, size_t n, uint64_t off) {
    size_t done = 0;
    while (done < n) {
        ssize_t r = pwrite(f->fd, (const char *)buf + done, n - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR) continue;
            return ioerr(IQDB_IOERR_WRITE);
        }
        done += (size_t)r;
    }
    return IQDB_OK;
}

static int px_sync(iqdb__file *f) {
#if defined(__APPLE__) && defined(F_FULLFSYNC)
    if (fcntl(f->fd, F_FULLFSYNC) == 0) return IQDB_OK;
#endif
    if (fsync(f->fd)) return ioerr(IQDB_IOERR_FSYNC);
    return IQDB_OK;
}

static int px_truncate(iqdb__file *f, uint64_t size) {
    int r;
    do r = ftruncate(f->fd, (off_t)size);
    while (r && errno == EINTR);
    return r ? ioerr(IQDB_IOERR_TRUNCATE) : IQDB_OK;
}

static int px_size(iqdb__file *f, uint64_t *size) {
    struct stat st;
    if (fstat(f->fd, &st)) return ioerr(IQDB_IOERR_SIZE);
    *size = (uint64_t)st.st_size;
    return IQDB_OK;
}

static int px_lock(iqdb__file *f) {
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
#ifdef F_OFD_SETLK
    /* Open-file-description locks conflict between two opens in the same process too, and are
     * not dropped when another descriptor of the file is closed (the classic POSIX-lock trap). */
    if (fcntl(f->fd, F_OFD_SETLK, &fl) == 0) return IQDB_OK;
    if (errno == EACCES || errno == EAGAIN) return IQDB_BUSY;
    if (errno != EINVAL) return ioerr(IQDB_IOERR_LOCK);
#endif
    if (fcntl(f->fd, F_SETLK, &fl) == 0) return IQDB_OK;
    if (errno == EACCES || errno == EAGAIN) return IQDB_BUSY;
    return ioerr(IQDB_IOERR_LOCK);
}

static int px_exists(const iqdb__io *io, const char *path, int *exists) {
    (void)io;
    struct stat st;
    if (stat(path, &st) == 0) {
        *exists = 1;
        return IQDB_OK;
    }
    *exists = 0;
    return errno == ENOENT ? IQDB_OK : ioerr(IQDB_IOERR_SIZE);
}

static int px_rename(const iqdb__io *io, const char *from, const char *to) {
    (void)io;
    return rename(from, to) ? ioerr(IQDB_IOERR_RENAME) : IQDB_OK;
}

static int px_remove(const iqdb__io *io, const char *path) {
    (void)io;
    if (unlink(path) == 0 || errno == ENOENT) return IQDB_OK;
    return ioerr(IQDB_IOERR_DELETE);
}

static int px_sync_dir(const iqdb__io *io, const char *path_in_dir) {
    (void)io;
    /* The directory is everything before the last '/', or "." */
    char dir[4096];
    const char *slash = strrchr(path_in_dir, '/');
    if (!slash) {
        strcpy(dir, ".");
    } else {
        size_t n = (size_t)(slash - path_in_dir);
        if (n == 0) n = 1; /* "/file" */
        if (n >= sizeof dir) return IQDB_IOERR_DIRSYNC;
        memcpy(dir, path_in_dir, n);
        dir[n] = '\0';
    }
    int fd = open(dir, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ioerr(IQDB_IOERR_DIRSYNC);
    int rc = fsync(fd) ? ioerr(IQDB_IOERR_DIRSYNC) : IQDB_OK;
    close(fd);
    return rc;
}

static const iqdb__io posix_io = {px_open,     px_close,    px_read_at, px_write_at, px_sync,
                                  px_truncate, px_size,     px_lock,    px_exists,   px_rename,
                                  px_remove,   px_sync_dir, NULL};

const iqdb__io *iqdb__io_platform(void) { return &posix_io; }
#endif
