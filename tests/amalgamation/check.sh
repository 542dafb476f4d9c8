#!/bin/sh
# check.sh CC AMALGAMATION_DIR OBJECT WORKDIR EXAMPLE.c — the amalgamation's own tests (CTest
# amalgamation.symbols, in the IQDB_AMALGAMATION=ON build; the rest of the suite runs against
# the same object):
#  1. every global symbol the built iqdb.c object defines starts with iqdb_ (internal ones with
#     iqdb__), so a static link next to other libraries cannot collide;
#  2. iqdb.c + iqdb.h alone (copied to an empty directory, no other header) compile with
#     -Wall -Wextra -Werror into a shared library that, built with -fvisibility=hidden, exports
#     exactly the functions iqdb.h declares IQDB_API, nothing else;
#  3. an example program built from the two files runs.
set -eu
CC=$1 AMALG=$2 OBJ=$3 WORK=$4
EXAMPLE=$(cd "$(dirname "$5")" && pwd)/$(basename "$5")
fail() { echo "FAIL: $*"; exit 1; }

bad=$(nm -g --defined-only "$OBJ" | awk 'NF == 3 {print $3}' | grep -v '^iqdb_' || true)
[ -z "$bad" ] || fail "global symbols without the iqdb_ prefix: $bad"
n_obj=$(nm -g --defined-only "$OBJ" | awk 'NF == 3' | wc -l)
echo "1. $n_obj global symbols in $(basename "$OBJ"), all iqdb_*"

rm -rf "$WORK" && mkdir -p "$WORK"
cp "$AMALG/iqdb.c" "$AMALG/iqdb.h" "$WORK/"
cd "$WORK"
"$CC" -std=c11 -O2 -Wall -Wextra -Werror -fPIC -fvisibility=hidden -shared -o libiqdb-amalg.so \
    iqdb.c -pthread -lm
nm -D --defined-only libiqdb-amalg.so | awk 'NF == 3 && $2 ~ /[TDBR]/ {print $3}' | sort >exported.txt
grep '^IQDB_API' iqdb.h | grep -o '^IQDB_API[^(]*(' | sed 's/($//; s/.*[ *]//' | sort -u >declared.txt
[ -s declared.txt ] || fail "no IQDB_API declarations found in iqdb.h"
if ! diff -u declared.txt exported.txt; then
    fail "the shared library's exports differ from iqdb.h's IQDB_API functions (diff above: - declared, + exported)"
fi
echo "2. iqdb.c alone: a shared library exporting exactly the $(wc -l <declared.txt) IQDB_API functions"

"$CC" -std=c11 -O2 -Wall -Wextra -Werror -DIQDB_STATIC_DEFINE -I. -o example "$EXAMPLE" iqdb.c \
    -pthread -lm
./example >example.out || fail "the example built from the amalgamation failed: $(cat example.out)"
echo "3. $(basename "$EXAMPLE") built from iqdb.c + iqdb.h runs"
echo "amalgamation: 3 passed, 0 failed"
