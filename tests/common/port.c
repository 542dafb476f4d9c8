/*
 * port.c — the tests' portability helpers declared in testutil.h: temporary directories, tree
 * removal, file copy/move/remove, and setenv/unsetenv on Windows. Kept out of the header so a
 * test never sees <windows.h> (its IN, OUT, TRUE... macros collide with test identifiers).
 */
#if !defined(_WIN32)
#define _POSIX_C_SOURCE 200809L
#endif
#include "testutil.h"

#if defined(_WIN32)
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

int setenv(const char *name, const char *value, int overwrite) {
    if (!overwrite && getenv(name)) return 0;
    return _putenv_s(name, value) ? -1 : 0;
}
int unsetenv(const char *name) { return _putenv_s(name, "") ? -1 : 0; }

#undef mkdtemp
#undef system
char *iqdbt_win_mkdtemp(char *tmpl) {
    size_t n = strlen(tmpl);
    if (n < 6 || strcmp(tmpl + n - 6, "XXXXXX")) return NULL;
    /* "/tmp/..." names \tmp on the current drive: make sure it exists, keep the length. */
    if (!strncmp(tmpl, "/tmp/", 5)) CreateDirectoryA("/tmp", NULL);
    for (unsigned i = 0; i < 1000; i++) {
        unsigned v = (GetTickCount() + i * 7919u + GetCurrentProcessId()) % 1000000u;
        snprintf(tmpl + n - 6, 7, "%06u", v);
        if (CreateDirectoryA(tmpl, NULL)) return tmpl;
        if (GetLastError() != ERROR_ALREADY_EXISTS) break;
    }
    memcpy(tmpl + n - 6, "XXXXXX", 6);
    return NULL;
}

int iqdbt_win_system(const char *cmd) {
    int tree = !strncmp(cmd, "rm -rf ", 7), file = !strncmp(cmd, "rm -f ", 6);
    if (!tree && !file) return system(cmd);
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", cmd + (tree ? 7 : 6));
    int rc = 0;
    for (char *tok = strtok(buf, " "); tok; tok = strtok(NULL, " ")) {
        size_t l = strlen(tok);
        if (l >= 2 && (tok[0] == '\'' || tok[0] == '"') && tok[l - 1] == tok[0]) {
            tok[l - 1] = '\0';
            tok++;
        }
        DWORD attr = GetFileAttributesA(tok);
        if (attr == INVALID_FILE_ATTRIBUTES) continue; /* rm -f: a missing path is fine */
        if (attr & FILE_ATTRIBUTE_DIRECTORY) {
            if (!tree || iqdbt_rmtree(tok)) rc = 1;
        } else if (!DeleteFileA(tok)) {
            rc = 1;
        }
    }
    return rc;
}
#endif

/* Makes a new empty directory "<temp>/<tag>-<unique>" into out; 0 on success. The temporary
 * folder is $TMPDIR or /tmp (POSIX), GetTempPath (Windows). */
int iqdbt_mkdtemp(char *out, size_t cap, const char *tag) {
#if defined(_WIN32)
    char base[MAX_PATH];
    DWORD n = GetTempPathA(sizeof base, base);
    if (n == 0 || n >= sizeof base) return -1;
    for (unsigned i = 0; i < 1000; i++) {
        snprintf(out, cap, "%s%s-%lu-%u-%u", base, tag, (unsigned long)GetCurrentProcessId(),
                 (unsigned)GetTickCount(), i);
        if (CreateDirectoryA(out, NULL)) return 0;
        if (GetLastError() != ERROR_ALREADY_EXISTS) return -1;
    }
    return -1;
#else
    const char *t = getenv("TMPDIR");
    snprintf(out, cap, "%s/%s-XXXXXX", t && *t ? t : "/tmp", tag);
    return mkdtemp(out) ? 0 : -1;
#endif
}

/* Removes a directory and everything in it; 0 on success. */
int iqdbt_rmtree(const char *dir) {
#if defined(_WIN32)
    char pat[MAX_PATH + 4], sub[2 * MAX_PATH];
    snprintf(pat, sizeof pat, "%s\\*", dir);
    WIN32_FIND_DATAA fd;
    HANDLE h = FindFirstFileA(pat, &fd);
    if (h != INVALID_HANDLE_VALUE) {
        do {
            if (!strcmp(fd.cFileName, ".") || !strcmp(fd.cFileName, "..")) continue;
            snprintf(sub, sizeof sub, "%s\\%s", dir, fd.cFileName);
            if (fd.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY)
                iqdbt_rmtree(sub);
            else
                DeleteFileA(sub);
        } while (FindNextFileA(h, &fd));
        FindClose(h);
    }
    return RemoveDirectoryA(dir) ? 0 : -1;
#else
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
#endif
}

/* Removes a file; a missing one is fine. 0 on success. */
int iqdbt_rm(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fclose(f);
    return remove(path) == 0 ? 0 : -1;
}

/* Copies a file byte for byte (replacing `to`); 0 on success. */
int iqdbt_cp(const char *from, const char *to) {
    FILE *in = fopen(from, "rb");
    if (!in) return -1;
    FILE *out = fopen(to, "wb");
    if (!out) {
        fclose(in);
        return -1;
    }
    char buf[65536];
    size_t n;
    int rc = 0;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) rc = -1;
    if (ferror(in)) rc = -1;
    fclose(in);
    if (fclose(out)) rc = -1;
    return rc;
}

/* Renames a file over `to` (which Windows' rename() refuses when it exists); 0 on success. */
int iqdbt_mv(const char *from, const char *to) {
#if defined(_WIN32)
    return MoveFileExA(from, to, MOVEFILE_REPLACE_EXISTING) ? 0 : -1;
#else
    return rename(from, to) == 0 ? 0 : -1;
#endif
}
