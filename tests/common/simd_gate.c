/*
 * simd_gate.c — runs argv[1..] when the kernel level named by IQDB_SIMD can run on this
 * machine; otherwise exits 77, which CTest reports as skipped. Used to run the examples once
 * per level without teaching the examples about test conventions.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <unistd.h>

#include "../common/testutil.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: simd_gate PROGRAM [ARGS...]\n");
        return 2;
    }
    iqdbt_simd_gate(); /* exits 77 when the level is missing */
    execv(argv[1], argv + 1);
    perror(argv[1]);
    return 127;
}
