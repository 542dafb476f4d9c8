# Cross-compiling for 64-bit ARM Linux with Debian's gcc-aarch64-linux-gnu, tests run under
# qemu-user (qemu-user-static) with the cross libc in /usr/aarch64-linux-gnu (see
# docs/portability.md). Use through the "aarch64" preset:
#   cmake --preset aarch64 && cmake --build --preset aarch64 && ctest --preset aarch64
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(IQDB_CROSS_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${IQDB_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${IQDB_CROSS_TRIPLE}-g++)
find_program(IQDB_QEMU_AARCH64 NAMES qemu-aarch64-static qemu-aarch64 REQUIRED)
set(CMAKE_CROSSCOMPILING_EMULATOR ${IQDB_QEMU_AARCH64} -L /usr/${IQDB_CROSS_TRIPLE})
include(${CMAKE_CURRENT_LIST_DIR}/cross-common.cmake)
