# Cross-compiling for 64-bit Windows with Debian's mingw-w64 (gcc-mingw-w64-x86-64), tests run
# under wine64 (see docs/portability.md). Use through the "mingw64" preset:
#   cmake --preset mingw64 && cmake --build --preset mingw64 && ctest --preset mingw64
# Cross-built libraries (cmocka for the tests) are looked up in IQDB_CROSS_PREFIX, which
# scripts/run fills with a cmocka built from Debian's source package.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR AMD64)
set(IQDB_CROSS_TRIPLE x86_64-w64-mingw32)
set(CMAKE_C_COMPILER ${IQDB_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${IQDB_CROSS_TRIPLE}-g++)
set(CMAKE_RC_COMPILER ${IQDB_CROSS_TRIPLE}-windres)
# Programs are linked statically (libgcc, winpthreads for the tests' own threads) so wine needs
# no DLL search path; libiqdb itself uses only Win32 threads and kernel32.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")
set(CMAKE_CROSSCOMPILING_EMULATOR ${CMAKE_CURRENT_LIST_DIR}/wine-exec)
include(${CMAKE_CURRENT_LIST_DIR}/cross-common.cmake)
