/*
 * simd_gate.c — runs argv[1..] when the kernel level named by IQDB_SIMD can run on this
 * machine; otherwise exits 77, which CTest reports as skipped. Used to run the examples once
 * per level without teaching the examples about test conventions.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#if !defined(_WIN32)
#include <unistd.h>
#endif

#include "../common/testutil.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: simd_gate PROGRAM [ARGS...]\n");
        return 2;
    }
    iqdbt_simd_gate(); /* exits 77 when the level is missing */
#if defined(_WIN32)
    /* Windows' _execv starts a new process and ends this one at once, losing the exit code. */
    intptr_t rc = _spawnv(_P_WAIT, argv[1], (const char *const *)(argv + 1));
    if (rc != -1) return (int)rc;
#else
    execv(argv[1], argv + 1);
#endif
    perror(argv[1]);
    return 127;
}
