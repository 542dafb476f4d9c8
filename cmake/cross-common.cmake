# Shared by the cross toolchain files: search the target's sysroot and IQDB_CROSS_PREFIX (cross-
# built dependencies, by default build/deps/<triple> in the source tree) and never the build
# machine's libraries; pkg-config looks only at IQDB_CROSS_PREFIX, so host zstd/lz4/cmocka are
# never picked up by mistake.
get_filename_component(_iqdb_src "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
if(NOT IQDB_CROSS_PREFIX)
  set(IQDB_CROSS_PREFIX "${_iqdb_src}/build/deps/${IQDB_CROSS_TRIPLE}")
endif()
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES IQDB_CROSS_PREFIX)
set(CMAKE_FIND_ROOT_PATH /usr/${IQDB_CROSS_TRIPLE} ${IQDB_CROSS_PREFIX})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(ENV{PKG_CONFIG_LIBDIR} "${IQDB_CROSS_PREFIX}/lib/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "")
