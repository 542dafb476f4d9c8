/*
 * test_io.c — the platform's I/O seam (POSIX, or Win32 under wine): create, positional write/read
 * (short at end of file), size, truncate, sync, the exclusive lock (a second open in the same
 * process gets IQDB_BUSY), exists, rename, remove, directory sync, and error mapping (never a raw
 * errno).
 */
#include "../common/testutil.h"

#include "os/io.h"

static char dir[256];

static int setup(void **state) {
    (void)state;
    assert_int_equal(iqdbt_mkdtemp(dir, sizeof dir, "iqdb-test-io"), 0);
    return 0;
}
static int teardown(void **state) {
    (void)state;
    return iqdbt_rmtree(dir);
}

static void path_of(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", dir, name); }

/* The happy path through every operation. */
static void test_io_roundtrip(void **state) {
    (void)state;
    const iqdb__io *io = iqdb__io_default();
    char p[300], q[300];
    path_of(p, sizeof p, "a.bin");
    path_of(q, sizeof q, "b.bin");
    iqdb__file *f;
    assert_int_equal(io->open(io, p, IQDB__IO_READ | IQDB__IO_WRITE | IQDB__IO_CREATE, &f),
                     IQDB_OK);
    assert_int_equal(io->write_at(f, "hello world", 11, 0), IQDB_OK);
    assert_int_equal(io->write_at(f, "W", 1, 6), IQDB_OK);
    assert_int_equal(io->sync(f), IQDB_OK);
    uint64_t size;
    assert_int_equal(io->size(f, &size), IQDB_OK);
    assert_int_equal(size, 11);
    char buf[32];
    size_t got;
    assert_int_equal(io->read_at(f, buf, 32, 0, &got), IQDB_OK);
    assert_int_equal(got, 11); /* short read at end of file */
    assert_memory_equal(buf, "hello World", 11);
    assert_int_equal(io->read_at(f, buf, 4, 100, &got), IQDB_OK);
    assert_int_equal(got, 0);
    assert_int_equal(io->truncate(f, 5), IQDB_OK);
    assert_int_equal(io->size(f, &size), IQDB_OK);
    assert_int_equal(size, 5);
    assert_int_equal(io->close(f), IQDB_OK);
    int ex;
    assert_int_equal(io->exists(io, p, &ex), IQDB_OK);
    assert_int_equal(ex, 1);
    assert_int_equal(io->rename(io, p, q), IQDB_OK);
    assert_int_equal(io->sync_dir(io, q), IQDB_OK);
    assert_int_equal(io->exists(io, p, &ex), IQDB_OK);
    assert_int_equal(ex, 0);
    assert_int_equal(io->remove(io, q), IQDB_OK);
    assert_int_equal(io->remove(io, q), IQDB_OK); /* removing an absent file is fine */
    assert_int_equal(io->sync_dir(io, "relative-name"), IQDB_OK); /* the current directory */
}

/* Two opens of one file in one process: the second lock attempt is refused with IQDB_BUSY. */
static void test_io_lock_conflict(void **state) {
    (void)state;
    const iqdb__io *io = iqdb__io_default();
    char p[300];
    path_of(p, sizeof p, "lock.bin");
    iqdb__file *f, *g;
    assert_int_equal(io->open(io, p, IQDB__IO_READ | IQDB__IO_WRITE | IQDB__IO_CREATE, &f),
                     IQDB_OK);
    assert_int_equal(io->open(io, p, IQDB__IO_READ | IQDB__IO_WRITE, &g), IQDB_OK);
    assert_int_equal(io->lock(f), IQDB_OK);
    assert_int_equal(io->lock(g), IQDB_BUSY);
    io->close(f);
    assert_int_equal(io->lock(g), IQDB_OK); /* released with its holder */
    io->close(g);
}

/* The checkpoint's atomic replace: rename over an existing file (rename(2) on POSIX;
 * MoveFileExW(MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH) on Windows). On POSIX it
 * works while a reader has the old file open, and the reader keeps the old bytes; on Windows a
 * target that is open anywhere cannot be replaced (the rename fails with IQDB_IOERR_RENAME and
 * changes nothing), so there the reader closes first. */
static void test_io_replace_existing(void **state) {
    (void)state;
    const iqdb__io *io = iqdb__io_default();
    char p[300], q[300];
    path_of(p, sizeof p, "new.tmp");
    path_of(q, sizeof q, "db");
    iqdb__file *f, *r;
    assert_int_equal(io->open(io, q, IQDB__IO_WRITE | IQDB__IO_CREATE, &f), IQDB_OK);
    assert_int_equal(io->write_at(f, "old-contents", 12, 0), IQDB_OK);
    assert_int_equal(io->close(f), IQDB_OK);
    assert_int_equal(io->open(io, p, IQDB__IO_WRITE | IQDB__IO_CREATE, &f), IQDB_OK);
    assert_int_equal(io->write_at(f, "new", 3, 0), IQDB_OK);
    assert_int_equal(io->sync(f), IQDB_OK);
    assert_int_equal(io->close(f), IQDB_OK);
    assert_int_equal(io->open(io, q, IQDB__IO_READ, &r), IQDB_OK); /* a reader holds the old one */
    char buf[16];
    size_t got;
#if defined(_WIN32)
    assert_int_equal(io->rename(io, p, q), IQDB_IOERR_RENAME);
    assert_int_equal(io->read_at(r, buf, sizeof buf, 0, &got), IQDB_OK);
    assert_int_equal(got, 12);
    assert_int_equal(io->close(r), IQDB_OK);
    int still;
    assert_int_equal(io->exists(io, p, &still), IQDB_OK);
    assert_int_equal(still, 1); /* the failed replace changed nothing */
    assert_int_equal(io->rename(io, p, q), IQDB_OK);
#else
    assert_int_equal(io->rename(io, p, q), IQDB_OK);
    assert_int_equal(io->sync_dir(io, q), IQDB_OK);
    assert_int_equal(io->read_at(r, buf, sizeof buf, 0, &got), IQDB_OK);
    assert_int_equal(got, 12);
    assert_memory_equal(buf, "old-contents", 12);
    assert_int_equal(io->close(r), IQDB_OK);
#endif
    assert_int_equal(io->sync_dir(io, q), IQDB_OK);
    int ex;
    assert_int_equal(io->exists(io, p, &ex), IQDB_OK);
    assert_int_equal(ex, 0);
    assert_int_equal(io->open(io, q, IQDB__IO_READ, &r), IQDB_OK);
    assert_int_equal(io->read_at(r, buf, sizeof buf, 0, &got), IQDB_OK);
    assert_int_equal(got, 3);
    assert_memory_equal(buf, "new", 3);
    assert_int_equal(io->close(r), IQDB_OK);
}

/* Failures map to IQDB_IOERR extended codes and keep the OS error for messages. */
static void test_io_errors(void **state) {
    (void)state;
    const iqdb__io *io = iqdb__io_default();
    char p[300];
    path_of(p, sizeof p, "missing/deeper/x.bin");
    iqdb__file *f = (iqdb__file *)1;
    int rc = io->open(io, p, IQDB__IO_READ, &f);
    assert_int_equal(rc, IQDB_IOERR_OPEN);
    assert_int_equal(IQDB_PRIMARY(rc), IQDB_IOERR);
    assert_null(f);
    assert_true(iqdb__io_last_errno() != 0);
    path_of(p, sizeof p, "excl.bin");
    assert_int_equal(io->open(io, p, IQDB__IO_WRITE | IQDB__IO_CREATE | IQDB__IO_EXCL, &f),
                     IQDB_OK);
    io->close(f);
    assert_int_equal(io->open(io, p, IQDB__IO_WRITE | IQDB__IO_CREATE | IQDB__IO_EXCL, &f),
                     IQDB_IOERR_OPEN);
    char q[300];
    path_of(q, sizeof q, "nodir/y.bin");
    assert_int_equal(io->rename(io, p, q), IQDB_IOERR_RENAME);
#if defined(_WIN32)
    /* Windows has no directory fsync: MOVEFILE_WRITE_THROUGH made the rename durable, and
     * sync_dir is a documented no-op (io_win32.c). */
    assert_int_equal(io->sync_dir(io, "/nonexistent-dir-iqdb/x"), IQDB_OK);
#else
    assert_int_equal(io->sync_dir(io, "/nonexistent-dir-iqdb/x"), IQDB_IOERR_DIRSYNC);
#endif
    assert_int_equal(io->close(NULL), IQDB_OK);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_io_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_lock_conflict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_replace_existing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_errors, setup, teardown),
    };
    return cmocka_run_group_tests_name("io", tests, NULL, NULL);
}
