#!/usr/bin/env bash
# tests/consumer/run.sh [WORKDIR] — packaging tests (scripts/run package; docs/portability.md):
#
#  1. install: a shared RelWithDebInfo libiqdb installed into WORKDIR/prefix; its SONAME is
#     libiqdb.so.<major> and the file carries the full version (libiqdb.so.X.Y.Z, from iqdb.h)
#  2. find_package: tests/consumer/find_package built against the install and run
#  3. pkg-config: tests/consumer/app.c compiled with `pkg-config --cflags --libs iqdb`, run
#  4. add_subdirectory: tests/consumer/add_subdirectory builds iqdb as a subproject (which must
#     add no tests or examples and change no global flags), run
#  5. ABI: abidw of the installed library (public headers only) against abi/libiqdb.abi with
#     abidiff: a removed symbol (abidiff exit bit 8) or a layout change that breaks callers
#     (abi_verdict.py reads the report: changed member types, moved members, a size change of a
#     struct without struct_size...) fails; a compatible change (abidiff bit 4: an added function,
#     a struct_size-versioned struct grown at its end) is reported and passes. scripts/run
#     abi-baseline regenerates the baseline after an intended API change.
#
# Prints "N passed, M failed" at the end and exits non-zero if anything failed.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
W=$(mkdir -p "${1:-$ROOT/build/consumer}" && cd "${1:-$ROOT/build/consumer}" && pwd)
CC=${CC:-cc}
passed=0 failed=0
ok() { echo "PASS: $*"; passed=$((passed + 1)); }
bad() { echo "FAIL: $*"; failed=$((failed + 1)); }
quiet() { # run a command, show its output only if it fails
    local log
    log=$(mktemp)
    if "$@" >"$log" 2>&1; then rm -f "$log"; return 0; fi
    tail -30 "$log"; rm -f "$log"; return 1
}
jobs=2
version=$(sed -n 's/^#define IQDB_VERSION_STRING "\(.*\)"/\1/p' "$ROOT/include/iqdb.h")
major=${version%%.*}

rm -rf "$W/iqdb" "$W/prefix" "$W/fp" "$W/as" "$W/pc"
# 1. install
if quiet cmake -S "$ROOT" -B "$W/iqdb" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_SHARED_LIBS=ON \
    -DIQDB_BUILD_TESTS=OFF -DIQDB_BUILD_EXAMPLES=OFF -DIQDB_BUILD_BENCH=OFF \
    -DCMAKE_INSTALL_PREFIX="$W/prefix" -DCMAKE_INSTALL_LIBDIR=lib &&
    quiet cmake --build "$W/iqdb" -j$jobs && quiet cmake --install "$W/iqdb"; then
    lib="$W/prefix/lib/libiqdb.so.$version"
    soname=$(readelf -d "$lib" 2>/dev/null | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
    if [ -f "$lib" ] && [ "$soname" = "libiqdb.so.$major" ] &&
        [ "$(readlink "$W/prefix/lib/libiqdb.so.$major")" = "libiqdb.so.$version" ] &&
        [ -f "$W/prefix/include/iqdb.h" ] && [ -f "$W/prefix/lib/pkgconfig/iqdb.pc" ] &&
        [ -f "$W/prefix/lib/cmake/iqdb/iqdbConfig.cmake" ]; then
        ok "install: libiqdb.so.$version, SONAME $soname, header, iqdb.pc, iqdbConfig.cmake"
    else
        bad "install: expected libiqdb.so.$version with SONAME libiqdb.so.$major (got '$soname')"
    fi
else
    bad "install: the library did not build or install"
fi

# 2. find_package
if quiet cmake -S "$ROOT/tests/consumer/find_package" -B "$W/fp" -DCMAKE_PREFIX_PATH="$W/prefix" &&
    quiet cmake --build "$W/fp" && out=$("$W/fp/app"); then
    ok "find_package(iqdb): $out"
else
    bad "find_package(iqdb)"
fi

# 3. pkg-config
mkdir -p "$W/pc"
if flags=$(PKG_CONFIG_PATH="$W/prefix/lib/pkgconfig" pkg-config --cflags --libs iqdb) &&
    [ "$(PKG_CONFIG_PATH="$W/prefix/lib/pkgconfig" pkg-config --modversion iqdb)" = "$version" ] &&
    quiet $CC -std=c11 -Wall -Wextra -Werror -o "$W/pc/app" "$ROOT/tests/consumer/app.c" $flags \
        -Wl,-rpath,"$W/prefix/lib" && out=$("$W/pc/app"); then
    ok "pkg-config iqdb ($flags): $out"
else
    bad "pkg-config iqdb"
fi

# 4. add_subdirectory
if quiet cmake -S "$ROOT/tests/consumer/add_subdirectory" -B "$W/as" -DIQDB_SOURCE_DIR="$ROOT" &&
    quiet cmake --build "$W/as" -j$jobs && out=$("$W/as/app"); then
    ok "add_subdirectory(iqdb): $out"
else
    bad "add_subdirectory(iqdb)"
fi

# 5. ABI
if [ -f "${lib:-}" ] && command -v abidw >/dev/null; then
    abidw --no-corpus-path --no-show-locs --headers-dir "$W/prefix/include" \
        --out-file "$W/libiqdb.abi" "$lib"
    if [ "${IQDB_ABI_BASELINE:-0}" = 1 ]; then
        cp "$W/libiqdb.abi" "$ROOT/abi/libiqdb.abi"
        echo "abi/libiqdb.abi regenerated from $(basename "$lib")"
    fi
    abidiff --no-show-locs "$ROOT/abi/libiqdb.abi" "$W/libiqdb.abi" >"$W/abidiff.txt" 2>&1
    rc=$?
    if [ $rc -eq 0 ]; then
        ok "ABI: identical to abi/libiqdb.abi"
    elif [ $((rc & 3)) -ne 0 ]; then
        cat "$W/abidiff.txt"
        bad "ABI: abidiff could not compare (exit $rc)"
    elif /usr/bin/python3 "$ROOT/tests/consumer/abi_verdict.py" $rc "$W/abidiff.txt" \
        "$ROOT/include/iqdb.h" >"$W/abi-verdict.txt"; then
        sed -n '1,40p' "$W/abidiff.txt"
        cat "$W/abi-verdict.txt"
        ok "ABI: compatible changes against abi/libiqdb.abi (abidiff exit $rc; report above;" \
            "scripts/run abi-baseline records them)"
    else
        cat "$W/abidiff.txt" "$W/abi-verdict.txt"
        bad "ABI: INCOMPATIBLE change against abi/libiqdb.abi (abidiff exit $rc; report above)"
    fi
else
    bad "ABI: no library or no abidw (install abigail-tools)"
fi

echo "package: $passed passed, $failed failed"
[ $failed -eq 0 ]
