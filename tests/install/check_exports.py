#!/usr/bin/env python3
"""check_exports.py CC LIBSTRATA_SO INCLUDE_DIR...: libstrata.so exports its public API and only it.

The public API is every function declared in include/strata/*.h (and the generated version.h):
each header is run through the C preprocessor (so comments, usage examples and
`#ifdef __cplusplus` blocks are gone) and its top-level declarations are read. The library
exports what `nm -D --defined-only` lists. Both sets must be equal: a declared function that is
not exported would fail to link for users of the shared library (hardening item 14), and an
exported one that is not declared (a strata__ internal, a helper of a dependency) is ABI that
nobody meant to promise. Prints every difference and exits 1, or one summary line and exits 0."""
import glob
import os
import re
import subprocess
import sys

TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\S")
MARKER = re.compile(r'^# \d+ "([^"]*)"')


def own_text(cc, includes, header):
    """The header's own lines after preprocessing (not those of the headers it includes)."""
    out = subprocess.run([cc, "-E"] + ["-I" + d for d in includes] + [header],
                         capture_output=True, text=True, check=True).stdout
    me, keep, lines = os.path.realpath(header), False, []
    for line in out.splitlines():
        m = MARKER.match(line)
        if m:
            keep = os.path.realpath(m.group(1)) == me
        elif keep:
            lines.append(line)
    return "\n".join(lines)


def statements(text):
    """Top-level declarations as token lists; the bodies of structs, enums and inline functions
    are left out (a struct's function-pointer fields are not functions of the library)."""
    out, cur, depth = [], [], 0
    for tok in TOKEN.findall(text):
        if tok == "{":
            depth += 1
        elif tok == "}":
            depth -= 1
            if depth == 0 and cur and cur[-1] == ")":  # the end of an inline function's body
                out.append(cur + ["{"])
                cur = []
        elif depth == 0:
            if tok == ";":
                out.append(cur)
                cur = []
            else:
                cur.append(tok)
    return out


def functions(stmt):
    """The names this declaration declares as functions with external linkage."""
    if not stmt or stmt[0] == "typedef" or "static" in stmt or "{" in stmt:
        return []
    names, parens = [], 0
    for i, tok in enumerate(stmt):
        if tok == "(":
            if parens == 0 and i > 0 and re.match(r"[A-Za-z_]", stmt[i - 1]):
                names.append(stmt[i - 1])
            parens += 1
        elif tok == ")":
            parens -= 1
    return names


def declared(cc, includes):
    headers = []
    for d in includes:
        headers += glob.glob(os.path.join(d, "strata", "*.h"))
    found = {}
    for h in sorted(headers):
        for stmt in statements(own_text(cc, includes, h)):
            for name in functions(stmt):
                found.setdefault(name, os.path.relpath(h))
    return found


def exported(so):
    out = subprocess.run(["nm", "-D", "--defined-only", "--format=posix", so],
                         capture_output=True, text=True, check=True).stdout
    return {line.split()[0].split("@")[0] for line in out.splitlines() if line.strip()}


def main():
    if len(sys.argv) < 4:
        print(__doc__)
        return 2
    cc, so, includes = sys.argv[1], sys.argv[2], sys.argv[3:]
    want, have = declared(cc, includes), exported(so)
    if not want:
        print("check_exports: no function declared under", " ".join(includes))
        return 1
    bad = ["declared in %s but not exported: %s" % (want[n], n) for n in sorted(set(want) - have)]
    bad += ["exported but declared in no public header: %s" % n for n in sorted(have - set(want))]
    for line in bad:
        print(line)
    print("check_exports: %d functions declared, %d symbols exported, %d differences"
          % (len(want), len(have), len(bad)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
