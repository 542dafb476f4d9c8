/*
 * io_win32.c — the I/O seam over Win32: CreateFileW, ReadFile / WriteFile at explicit offsets
 * (OVERLAPPED on a synchronous handle), FlushFileBuffers, SetFileInformationByHandle for
 * truncation, MoveFileExW(MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH) for the atomic
 * replace, and LockFileEx for the exclusive lock. Paths are UTF-8 and converted to UTF-16.
 *
 * Windows has no directory fsync: MOVEFILE_WRITE_THROUGH makes the rename itself durable before
 * MoveFileEx returns, so sync_dir is a no-op here. Files are opened with FILE_SHARE_DELETE, but
 * a target that is open anywhere still cannot be replaced (MoveFileEx fails and changes nothing,
 * tests/unit/test_io.c): a checkpoint racing another process's snapshot load fails with
 * IQDB_IOERR_RENAME, and the next one succeeds. iqdb holds a snapshot open only while loading it.
 */
#if defined(_WIN32)
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include "os/io.h"
#include "os/thread.h"

struct iqdb__file {
    HANDLE h;
};

static IQDB_THREAD_LOCAL int last_error;

int iqdb__io_last_errno(void) { return last_error; }

static int winerr(int code) {
    DWORD e = GetLastError();
    last_error = (int)e;
    if (e == ERROR_DISK_FULL || e == ERROR_HANDLE_DISK_FULL) return IQDB_IOERR_NOSPACE;
    return code;
}

static iqdb__mem io_mem;
static iqdb__once io_once = IQDB__ONCE_INIT;
static void io_init(void) { iqdb__mem_init(&io_mem, NULL); }

/* UTF-8 -> UTF-16 into a fixed buffer (long paths are refused rather than truncated). */
static int widen(const char *path, wchar_t *out, int cap) {
    int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, -1, out, cap);
    if (n <= 0) {
        last_error = (int)GetLastError();
        return 0;
    }
    return 1;
}

#define WPATH 32768

static int w_open(const iqdb__io *io, const char *path, int flags, iqdb__file **out) {
    (void)io;
    *out = NULL;
    iqdb__call_once(&io_once, io_init);
    wchar_t *wp = iqdb__alloc(&io_mem, WPATH * sizeof(wchar_t));
    if (!wp) return IQDB_NOMEM;
    if (!widen(path, wp, WPATH)) {
        iqdb__free(&io_mem, wp, WPATH * sizeof(wchar_t));
        return IQDB_IOERR_OPEN;
    }
    DWORD access = 0;
    if (flags & IQDB__IO_READ) access |= GENERIC_READ;
    if (flags & IQDB__IO_WRITE) access |= GENERIC_WRITE;
    DWORD disp = OPEN_EXISTING;
    if ((flags & IQDB__IO_CREATE) && (flags & IQDB__IO_EXCL))
        disp = CREATE_NEW;
    else if (flags & IQDB__IO_CREATE)
        disp = OPEN_ALWAYS;
    HANDLE h = CreateFileW(wp, access, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                           disp, FILE_ATTRIBUTE_NORMAL, NULL);
    iqdb__free(&io_mem, wp, WPATH * sizeof(wchar_t));
    if (h == INVALID_HANDLE_VALUE) return winerr(IQDB_IOERR_OPEN);
    iqdb__file *f = iqdb__alloc(&io_mem, sizeof *f);
    if (!f) {
        CloseHandle(h);
        return IQDB_NOMEM;
    }
    f->h = h;
    *out = f;
    return IQDB_OK;
}

static int w_close(iqdb__file *f) {
    if (!f) return IQDB_OK;
    int rc = CloseHandle(f->h) ? IQDB_OK : winerr(IQDB_IOERR_WRITE);
    iqdb__free(&io_mem, f, sizeof *f);
    return rc;
}

static OVERLAPPED at(uint64_t off) {
    OVERLAPPED ov;
    memset(&ov, 0, sizeof ov);
    ov.Offset = (DWORD)off;
    ov.OffsetHigh = (DWORD)(off >> 32);
    return ov;
}

static int w_read_at(iqdb__file *f, void *buf, size_t n, uint64_t off, size_t *got) {
    size_t done = 0;
    while (done < n) {
        DWORD chunk = (DWORD)IQDB_MIN(n - done, (size_t)1 << 30), r = 0;
        OVERLAPPED ov = at(off + done);
        if (!ReadFile(f->h, (char *)buf + done, chunk, &r, &ov)) {
            if (GetLastError() == ERROR_HANDLE_EOF) break;
            *got = done;
            return winerr(IQDB_IOERR_READ);
        }
        if (r == 0) break;
        done += r;
    }
    *got = done;
    return IQDB_OK;
}

static int w_write_at(iqdb__file *f, const void *buf, size_t n, uint64_t off) {
    size_t done = 0;
    while (done < n) {
        DWORD chunk = (DWORD)IQDB_MIN(n - done, (size_t)1 << 30), w = 0;
        OVERLAPPED ov = at(off + done);
        if (!WriteFile(f->h, (const char *)buf + done, chunk, &w, &ov))
            return winerr(IQDB_IOERR_WRITE);
        done += w;
    }
    return IQDB_OK;
}

static int w_sync(iqdb__file *f) {
    return FlushFileBuffers(f->h) ? IQDB_OK : winerr(IQDB_IOERR_FSYNC);
}

static int w_truncate(iqdb__file *f, uint64_t size) {
    FILE_END_OF_FILE_INFO info;
    info.EndOfFile.QuadPart = (LONGLONG)size;
    return SetFileInformationByHandle(f->h, FileEndOfFileInfo, &info, sizeof info)
               ? IQDB_OK
               : winerr(IQDB_IOERR_TRUNCATE);
}

static int w_size(iqdb__file *f, uint64_t *size) {
    LARGE_INTEGER li;
    if (!GetFileSizeEx(f->h, &li)) return winerr(IQDB_IOERR_SIZE);
    *size = (uint64_t)li.QuadPart;
    return IQDB_OK;
}

static int w_lock(iqdb__file *f) {
    OVERLAPPED ov = at(0);
    if (LockFileEx(f->h, LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY, 0, MAXDWORD, MAXDWORD,
                   &ov))
        return IQDB_OK;
    DWORD e = GetLastError();
    if (e == ERROR_LOCK_VIOLATION || e == ERROR_IO_PENDING) return IQDB_BUSY;
    return winerr(IQDB_IOERR_LOCK);
}

/* Runs fn on the UTF-16 forms of one or two paths. */
static int with_wide(const char *a, const char *b, int code,
                     int (*fn)(const wchar_t *, const wchar_t *, int *)) {
    iqdb__call_once(&io_once, io_init);
    wchar_t *wa = iqdb__alloc(&io_mem, 2 * WPATH * sizeof(wchar_t));
    if (!wa) return IQDB_NOMEM;
    wchar_t *wb = wa + WPATH;
    int rc = code, out = 0;
    if (widen(a, wa, WPATH) && (!b || widen(b, wb, WPATH))) rc = fn(wa, b ? wb : NULL, &out);
    iqdb__free(&io_mem, wa, 2 * WPATH * sizeof(wchar_t));
    return rc;
}

static int do_exists(const wchar_t *p, const wchar_t *unused, int *out) {
    (void)unused;
    DWORD attr = GetFileAttributesW(p);
    if (attr != INVALID_FILE_ATTRIBUTES) return *out = 1, IQDB_OK;
    DWORD e = GetLastError();
    if (e == ERROR_FILE_NOT_FOUND || e == ERROR_PATH_NOT_FOUND) return *out = 0, IQDB_OK;
    return winerr(IQDB_IOERR_SIZE);
}

static int do_rename(const wchar_t *from, const wchar_t *to, int *out) {
    (void)out;
    return MoveFileExW(from, to, MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH)
               ? IQDB_OK
               : winerr(IQDB_IOERR_RENAME);
}

static int do_remove(const wchar_t *p, const wchar_t *unused, int *out) {
    (void)unused;
    (void)out;
    if (DeleteFileW(p)) return IQDB_OK;
    DWORD e = GetLastError();
    if (e == ERROR_FILE_NOT_FOUND || e == ERROR_PATH_NOT_FOUND) return IQDB_OK;
    return winerr(IQDB_IOERR_DELETE);
}

static int w_exists(const iqdb__io *io, const char *path, int *exists) {
    (void)io;
    *exists = 0;
    iqdb__call_once(&io_once, io_init);
    wchar_t *w = iqdb__alloc(&io_mem, WPATH * sizeof(wchar_t));
    if (!w) return IQDB_NOMEM;
    int rc = widen(path, w, WPATH) ? do_exists(w, NULL, exists) : IQDB_IOERR_SIZE;
    iqdb__free(&io_mem, w, WPATH * sizeof(wchar_t));
    return rc;
}

static int w_rename(const iqdb__io *io, const char *from, const char *to) {
    (void)io;
    return with_wide(from, to, IQDB_IOERR_RENAME, do_rename);
}

static int w_remove(const iqdb__io *io, const char *path) {
    (void)io;
    return with_wide(path, NULL, IQDB_IOERR_DELETE, do_remove);
}

static int w_sync_dir(const iqdb__io *io, const char *path_in_dir) {
    (void)io;
    (void)path_in_dir; /* MOVEFILE_WRITE_THROUGH already made the rename durable */
    return IQDB_OK;
}

static const iqdb__io win32_io = {w_open,     w_close,    w_read_at, w_write_at, w_sync,
                                  w_truncate, w_size,     w_lock,    w_exists,   w_rename,
                                  w_remove,   w_sync_dir, NULL};

const iqdb__io *iqdb__io_platform(void) { return &win32_io; }
#endif
