#!/usr/bin/python3
"""abi_verdict.py ABIDIFF_EXIT REPORT HEADER — decide whether an abidiff report (libiqdb's
installed library against abi/libiqdb.abi) is compatible under iqdb's ABI rules (docs/guide.md,
"ABI"): functions are only added; enums are append-only; a struct that carries a struct_size
field may grow at its end; nothing else changes layout.

abidiff itself sets exit bit 8 only for removed symbols and reports every layout change as a
plain "ABI change" (bit 4), so this reads the report:
  incompatible: a removed function or variable (bit 8); a member or parameter whose type
      changed ("type name changed"); a member that moved ("offset changed") or was deleted; an
      enumerator deleted or renumbered ("value changed"); a size change of a struct without a
      struct_size member (callers allocate it, maybe in arrays)
  compatible: added functions and variables, enumerators appended, members appended to a
      struct_size-versioned struct (its size grows, nothing moves)
  not ABI at all: anything reported inside an opaque type — a struct the header declares but
      never defines (`typedef struct iqdb iqdb;`): callers only hold pointers to it, so its
      layout (the handle's internals, reached through iqdb_check(iqdb *) and friends) may change
      freely. abidiff sees it because the library's DWARF defines it.
Prints the verdict with its reasons; exit 0 compatible, 1 incompatible.
"""
import re
import sys


def main():
    rc, report, header = int(sys.argv[1]), open(sys.argv[2]).read(), open(sys.argv[3]).read()
    versioned = set()
    for m in re.finditer(r"typedef struct (\w+) \{(.*?)\}", header, re.S):
        if re.search(r"\bstruct_size\b", m.group(2)):
            versioned.add(m.group(1))
    opaque = set(re.findall(r"typedef struct (\w+) \1;", header)) - set(
        re.findall(r"typedef struct (\w+) \{", header))
    reasons = []
    if rc & 8:
        reasons.append("a function or variable was removed (abidiff exit bit 8)")
    struct = None
    skip_indent = None  # inside the report block of an opaque type
    for line in report.splitlines():
        s = line.strip()
        indent = len(line) - len(line.lstrip())
        if skip_indent is not None:
            if not s or indent > skip_indent:
                continue
            skip_indent = None
        m = re.search(r"type '(?:struct |typedef )?(\w+)' changed", s)
        if m and m.group(1) in opaque:
            skip_indent = indent
            continue
        m = re.search(r"type 'struct (\w+)' changed", s)
        if m:
            struct = m.group(1)
        if "type name changed" in s:
            reasons.append("a type changed: " + s)
        elif "offset changed" in s:
            reasons.append("a member moved: " + s)
        elif re.search(r"data member deletion|enumerator deletion|value changed", s):
            reasons.append(s)
        elif s.startswith("type size changed") and struct and struct not in versioned:
            reasons.append("struct %s (no struct_size member) changed size: %s" % (struct, s))
    if reasons:
        print("ABI verdict: INCOMPATIBLE")
        for r in dict.fromkeys(reasons):
            print("  - " + r)
        return 1
    print("ABI verdict: compatible (additions only, or growth of struct_size-versioned structs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
