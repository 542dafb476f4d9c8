#!/usr/bin/python3
"""amalgamate.py — write iqdb's single-file distribution: iqdb.c + iqdb.h, like SQLite's.

    scripts/amalgamate.py OUTDIR [--src DIR] [--include DIR]

Every .c file under src/ (found by a glob, so files other branches add are picked up) is
concatenated into one translation unit, in a fixed order (alloc.c first, then by path). Rules:

  * Quoted includes of project headers are inlined. A header with an include guard (or
    #pragma once) is inlined once; one without (a template such as dist/dist_impl.h) every time.
    System includes stay as they are.
  * #define lines that a .c file puts before its first #include (_GNU_SOURCE, _POSIX_C_SOURCE,
    IQDB_ALLOW_LIBC_ALLOC, ZSTD_STATIC_LINKING_ONLY...) are hoisted to the top of iqdb.c, so
    they precede every system header as they did in their own file.
  * Macros a .c file defines are #undef'd after it. File-local names (static functions and
    variables, struct/union/enum tags, typedefs) that two files both define are renamed in each
    file with a #define/#undef pair around it (name -> name__<file>), so nothing collides.
  * Per-ISA kernel files (*_avx2.c, *_avx512.c, *_sse42.c, *_neon.c, crc32c_arm.c) are wrapped
    in the IQDB_HAVE_<ISA> guard and compiled for their ISA with target pragmas (GCC and Clang);
    the guards are set from the compiler's target at the top of iqdb.c and can be turned off
    with -DIQDB_NO_<ISA>. A new *_<isa>.c file with no rule here is an error, not a silent miss.
  * Internal symbols keep their iqdb__ prefix and external linkage (so the test suite can link
    the amalgamation), so every global symbol of the object starts with iqdb_; a shared library
    built with -fvisibility=hidden exports only the API (marked IQDB_API). The symbol test
    (tests/amalgamation/check.sh) checks both with nm. (A visibility pragma around the file
    would also hide the libc functions its system headers declare.)

iqdb.h is include/iqdb.h unchanged. Standard library only; run by scripts/run amalgamation and
by the IQDB_AMALGAMATION=ON build.
"""
import os
import re
import sys

ISA_RULES = [
    # (file-name regex, guard macro, GCC target, Clang target, compiler/arch condition)
    (r"_avx2\.c$", "IQDB_HAVE_AVX2", "avx2,fma", "avx2,fma", "IQDB__AMALG_X86"),
    (r"_avx512\.c$", "IQDB_HAVE_AVX512", "avx512f,fma", "avx512f,fma", "IQDB__AMALG_X86"),
    (r"_sse42\.c$", "IQDB_HAVE_CRC_SSE42", "sse4.2,crc32", "sse4.2,crc32", "IQDB__AMALG_X86_64"),
    (r"_neon\.c$", "IQDB_HAVE_NEON", None, None, "IQDB__AMALG_ARM64"),
    (r"crc32c_arm\.c$", "IQDB_HAVE_CRC_ARMV8", "+crc", "crc", "IQDB__AMALG_ARM64"),
]
ISA_SUSPECT = re.compile(r"_(avx\w*|sse\w*|neon|arm\w*|sve\w*|rvv)\.c$")

INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
SYS_INCLUDE_RE = re.compile(r"^\s*#\s*include\s+<")
INTRIN_RE = re.compile(r"<(\w*intrin\.h|arm_neon\.h|arm_acle\.h|arm_sve\.h)>")
DEFINE_RE = re.compile(r"^\s*#\s*define\s+([A-Za-z_]\w*)")
GUARD_RE = re.compile(r"^\s*#\s*ifndef\s+(\w+)\s*\n\s*#\s*define\s+(\w+)", re.M)

# Top-level file-local names (column 0 only: the house style is clang-formatted).
STATIC_FN_RE = re.compile(r"^static\b[^=;(]*?\b([A-Za-z_]\w*)\s*\(", re.M)
STATIC_VAR_RE = re.compile(r"^static\b[^(=;{]*?\b([A-Za-z_]\w*)\s*(?:\[[^\]]*\]\s*)*(?:=|;)", re.M)
TAG_RE = re.compile(r"^(?:typedef\s+)?(?:struct|union|enum)\s+([A-Za-z_]\w*)\s*\{", re.M)
TYPEDEF_END_RE = re.compile(r"^\}\s*([A-Za-z_]\w*)\s*;", re.M)
TYPEDEF_ONE_RE = re.compile(r"^typedef\b[^;{]*?\b([A-Za-z_]\w*)\s*;", re.M)


def die(msg):
    sys.stderr.write("amalgamate.py: " + msg + "\n")
    sys.exit(1)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def has_guard(text):
    if re.search(r"^\s*#\s*pragma\s+once", text, re.M):
        return True
    m = GUARD_RE.match(strip_comments(text).lstrip())  # the first directive of the file
    return bool(m and m.group(1) == m.group(2))


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


class Amalgamator:
    def __init__(self, src, include):
        self.src = src
        self.include = include
        self.done_headers = set()  # guarded headers already inlined
        self.hoisted = []  # (name, line)

    def resolve(self, name, from_dir):
        for base in (from_dir, self.src, self.include):
            p = os.path.normpath(os.path.join(base, name))
            if os.path.isfile(p):
                return p
        return None

    def expand(self, path, local, text=None):
        """Text of `path` with project includes inlined. `local` collects the text that belongs
        to this .c file only (itself and unguarded templates), for name and macro scans."""
        out = []
        own = read(path) if text is None else text
        for line in own.splitlines(keepends=True):
            m = INCLUDE_RE.match(line)
            if not m:
                out.append(line)
                continue
            name = m.group(1)
            if name == "iqdb.h":
                out.append("/* #include \"iqdb.h\": above */\n")
                continue
            target = self.resolve(name, os.path.dirname(path))
            if target is None:
                die("%s: cannot find \"%s\"" % (path, name))
            rel = os.path.relpath(target, os.path.dirname(self.src))
            text = read(target)
            if has_guard(text):
                if target in self.done_headers:
                    out.append("/* #include \"%s\": already above */\n" % name)
                    continue
                self.done_headers.add(target)
                body = self.expand(target, None)
            else:
                sub = []
                body = self.expand(target, sub)
                if local is not None:
                    local.append(body)
            out.append("/* ---- begin %s ---- */\n" % rel)
            out.append(body)
            if not body.endswith("\n"):
                out.append("\n")
            out.append("/* ---- end %s ---- */\n" % rel)
        text = "".join(out)
        if local is not None:
            local.append(own)
        return text

    def hoist_prelude(self, path, text):
        """Removes the #define lines before the first #include and records them."""
        lines = text.splitlines(keepends=True)
        code = strip_comments(text).splitlines(keepends=True)
        for i, line in enumerate(code):
            if SYS_INCLUDE_RE.match(line) or INCLUDE_RE.match(line):
                break
            m = DEFINE_RE.match(line)
            if m:
                if line.rstrip().endswith("\\"):
                    die("%s: multi-line #define before the first #include" % path)
                if m.group(1) not in [n for n, _ in self.hoisted]:
                    self.hoisted.append((m.group(1), line.strip()))
                lines[i] = "/* (#define %s: hoisted to the top) */\n" % m.group(1)
        return "".join(lines)


def names_defined(text):
    code = strip_comments(text)
    names = set()
    for rx in (STATIC_FN_RE, STATIC_VAR_RE, TAG_RE, TYPEDEF_END_RE, TYPEDEF_ONE_RE):
        names.update(rx.findall(code))
    # A function named through a macro (static void IQDB_CAT(f_, ISA)(...)) shows the macro's
    # name where the function's would be: macros are never renamed.
    macros = set(macros_defined(text))
    return {n for n in names
            if not n.startswith("iqdb_") and n not in ("void", "int") and n not in macros}


def macros_defined(text):
    found = []
    for line in strip_comments(text).splitlines():
        m = DEFINE_RE.match(line)
        if m and m.group(1) not in found:
            found.append(m.group(1))
    return found


def file_id(rel):
    return re.sub(r"\W", "_", os.path.splitext(rel)[0])


def main(argv):
    if len(argv) < 2:
        die("usage: amalgamate.py OUTDIR [--src DIR] [--include DIR]")
    root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    outdir = argv[1]
    src = os.path.join(root, "src")
    include = os.path.join(root, "include")
    if "--src" in argv:
        src = os.path.abspath(argv[argv.index("--src") + 1])
    if "--include" in argv:
        include = os.path.abspath(argv[argv.index("--include") + 1])

    files = []
    for d, _, fs in os.walk(src):
        for f in fs:
            if f.endswith(".c"):
                files.append(os.path.relpath(os.path.join(d, f), src))
    files.sort(key=lambda r: (r != "alloc.c", r.count(os.sep) > 0, r))
    if not files:
        die("no .c files under " + src)

    am = Amalgamator(src, include)
    units = []  # (rel, text, local names, macros, isa rule)
    intrin = []  # (guard, [#include <...>])
    for rel in files:
        path = os.path.join(src, rel)
        rule = next((r for r in ISA_RULES if re.search(r[0], rel)), None)
        if rule is None and ISA_SUSPECT.search(rel):
            die("%s looks like a per-ISA kernel file but has no rule in ISA_RULES" % rel)
        local = []
        raw = am.hoist_prelude(path, read(path))
        isa_headers = []
        if rule:
            # Intrinsics headers go to the top, outside every target pragma: a header parsed
            # inside the AVX2 region would give its inline functions the AVX2 target, and the
            # SSE4.2 or scalar code could no longer inline them.
            kept = []
            for line in raw.splitlines(keepends=True):
                if SYS_INCLUDE_RE.match(line) and INTRIN_RE.search(line):
                    isa_headers.append(line.strip())
                    kept.append("/* %s: at the top */\n" % line.strip())
                else:
                    kept.append(line)
            raw = "".join(kept)
        text = am.expand(path, local, raw)
        local_text = "".join(local)
        units.append((rel, text, names_defined(local_text), macros_defined(local_text), rule))
        if isa_headers:
            intrin.append((rule[1], isa_headers))

    # File-local names defined by more than one file are renamed in each.
    seen = {}
    for rel, _, names, _, _ in units:
        for n in names:
            seen.setdefault(n, []).append(rel)
    clashes = {n for n, where in seen.items() if len(where) > 1}

    version = re.search(r'#define\s+IQDB_VERSION_STRING\s+"([^"]+)"', read(os.path.join(include, "iqdb.h")))
    ver = version.group(1) if version else "unknown"
    out = []
    out.append("""/*
 * iqdb.c — the iqdb amalgamation (version %s): every source file of libiqdb in one
 * translation unit. Generated by scripts/amalgamate.py from %d files; do not edit.
 *
 * Build: cc -std=c11 -O2 -c iqdb.c (plus -pthread -lm where needed; -DIQDB_HAVE_ZSTD and/or
 * -DIQDB_HAVE_LZ4 with -lzstd/-llz4 for snapshot compression). The SIMD kernels for the target
 * (AVX2/AVX-512 and SSE4.2 CRC32C on x86-64, NEON and the CRC32 extension on ARM64) are built
 * with target pragmas and chosen at run time; -DIQDB_NO_AVX2, -DIQDB_NO_AVX512, ... leave one
 * out. Define IQDB_STATIC_DEFINE when linking this object into a program (not a DLL). For a
 * shared library, add -fvisibility=hidden: only the API (IQDB_API) is then exported.
 * Every global symbol starts with iqdb_ (internal ones with iqdb__).
 */
""" % (ver, len(units)))
    out.append("#ifndef IQDB_AMALGAMATION\n#define IQDB_AMALGAMATION 1\n#endif\n")
    out.append("#ifndef IQDB_BUILDING\n#define IQDB_BUILDING 1\n#endif\n")
    out.append("#if defined(__MINGW32__) && !defined(__USE_MINGW_ANSI_STDIO)\n"
               "#define __USE_MINGW_ANSI_STDIO 1\n#endif\n")
    out.append("/* Hoisted from the files' preludes: they must precede every system header. */\n")
    for name, line in am.hoisted:
        out.append("#ifndef %s\n%s\n#endif\n" % (name, line))
    out.append("""
/* Which kernels this compiler and target can build (GCC or Clang; others get the scalar path). */
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define IQDB__AMALG_X86 1
#if defined(__x86_64__)
#define IQDB__AMALG_X86_64 1
#endif
#endif
#if (defined(__GNUC__) || defined(__clang__)) && defined(__aarch64__)
#define IQDB__AMALG_ARM64 1
#endif
""")
    for rx, guard, _, _, cond in ISA_RULES:
        if any(re.search(rx, u[0]) for u in units):
            opt = guard.replace("IQDB_HAVE_", "IQDB_NO_")
            out.append("#if defined(%s) && !defined(%s) && !defined(%s)\n#define %s 1\n#endif\n"
                       % (cond, opt, guard, guard))
    for guard, incs in intrin:
        out.append("#if defined(%s)\n%s\n#endif\n" % (guard, "\n".join(incs)))
    out.append("""
/* Generated code: header-style static inline helpers are all in this one main file. */
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wunused-function"
#endif

/* ---- iqdb.h -------------------------------------------------------------------------------- */
#include "iqdb.h"
""")
    for rel, text, names, macros, rule in units:
        fid = file_id(rel)
        out.append("\n/* ==== src/%s %s */\n" % (rel, "=" * max(4, 88 - len(rel))))
        if rule:
            _, guard, gcc_t, clang_t, _ = rule
            out.append("#if defined(%s)\n" % guard)
            if gcc_t:
                out.append("#if defined(__clang__)\n"
                           "#pragma clang attribute push(__attribute__((target(\"%s\"))), apply_to = function)\n"
                           "#elif defined(__GNUC__)\n#pragma GCC push_options\n#pragma GCC target(\"%s\")\n"
                           "#endif\n" % (clang_t, gcc_t))
        renamed = sorted(n for n in names if n in clashes)
        for n in renamed:
            out.append("#define %s %s__%s\n" % (n, n, fid))
        out.append(text)
        if not text.endswith("\n"):
            out.append("\n")
        for n in renamed:
            out.append("#undef %s\n" % n)
        for m in macros:
            if m not in [h for h, _ in am.hoisted]:
                out.append("#undef %s\n" % m)
        if rule:
            if rule[2]:
                out.append("#if defined(__clang__)\n#pragma clang attribute pop\n"
                           "#elif defined(__GNUC__)\n#pragma GCC pop_options\n#endif\n")
            out.append("#endif /* %s */\n" % rule[1])
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "iqdb.c"), "w", encoding="utf-8") as f:
        f.write("".join(out))
    with open(os.path.join(outdir, "iqdb.h"), "w", encoding="utf-8") as f:
        f.write(read(os.path.join(include, "iqdb.h")))
    print("amalgamation: %d source files -> %s/iqdb.c (%d lines), iqdb.h; %d names renamed"
          % (len(units), outdir, "".join(out).count("\n"), len(clashes)))


if __name__ == "__main__":
    main(sys.argv)
