#!/usr/bin/env python3
"""check_layers.py BUILD_DIR: the library's layers, checked on the objects of a build.

A source file depends on another when its object uses a symbol that only the other's object
defines (read with nm). Two rules, both failures when broken:
  1. no loops: no file needs a file that needs it (anywhere under src/);
  2. src/lib calls down only: core <- l1, redis <- cache <- features (see docs/architecture.md,
     "Layers"); a lower layer is handed callbacks, it never names a higher one.
Prints every violation and exits 1, or prints a one-line summary and exits 0."""
import os
import subprocess
import sys

ORDER = {"core": 0, "l1": 1, "redis": 1, "cache": 2, "features": 3}
MAY_USE = {"core": set(), "l1": {"core"}, "redis": {"core"},
           "cache": {"core", "l1", "redis"}, "features": {"core", "l1", "redis", "cache"}}


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def objects(build):
    """Each source's object; objects left by sources since removed or moved are skipped."""
    found = {}
    for root, _, files in os.walk(build):
        for f in files:
            path = os.path.join(root, f)
            i = path.find("/src/")
            src = path[i + 1:-2]  # src/lib/l1/l1.c
            if f.endswith(".c.o") and i >= 0 and "/CMakeFiles/" in path and \
                    os.path.exists(os.path.join(ROOT, src)):
                found.setdefault(src, path)
    return found


def symbols(path):
    defined, used = set(), set()
    for line in subprocess.run(["nm", path], capture_output=True, text=True).stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "U":
            used.add(parts[1])
        elif len(parts) == 3 and parts[1] in "TDBRGSVW":
            defined.add(parts[2])
    return defined, used


def graph(objs):
    owners, uses = {}, {}
    for src, path in objs.items():
        defined, uses[src] = symbols(path)
        for s in defined:
            owners.setdefault(s, set()).add(src)
    edges = {src: set() for src in objs}
    for src, used in uses.items():
        for s in used:
            o = owners.get(s, set())
            if len(o) == 1 and src not in o:
                edges[src] |= o
    return edges


def loops(edges):
    index, low, stack, on, out = {}, {}, [], set(), []
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def layer(src):
    parts = src.split("/")
    return parts[2] if len(parts) > 3 and parts[1] == "lib" else None


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    objs = objects(sys.argv[1])
    if not any(layer(s) for s in objs):
        print("check_layers: no objects of src/lib under", sys.argv[1])
        return 1
    edges = graph(objs)
    bad = ["loop: " + ", ".join(c) for c in loops(edges)]
    for a, targets in sorted(edges.items()):
        la = layer(a)
        for b in sorted(targets):
            lb = layer(b)
            if la and lb and la != lb and lb not in MAY_USE.get(la, set()):
                bad.append("upward or sideways call: %s (%s) uses %s (%s)" % (a, la, b, lb))
    for line in bad:
        print(line)
    print("check_layers: %d files, %d violations" % (len(objs), len(bad)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
