#!/usr/bin/env bash
# check_install.sh SOURCE_DIR BUILD_DIR [CC]: libstrata installs where it is told and links as the
# README says (hardening items 14 and 15).
#
# On the existing build tree, and in temporary directories only, in an order where a broken
# install cannot write outside them (a prefix ignored by the install fails case 1, before case 3
# installs without a DESTDIR):
#   1. `cmake --install BUILD --prefix R`: the files land under R and strata.pc says prefix=R;
#   2. `make install PREFIX=Q DESTDIR=S` (a packager's staging): the files land under S/Q, none
#      under Q, strata.pc says prefix=Q; examples/l1.c builds from the staged tree through
#      PKG_CONFIG_SYSROOT_DIR=S and runs;
#   3. `make install PREFIX=P`: the files land under P, strata.pc says prefix=P, and
#      examples/l1.c built with `pkg-config --cflags --libs strata` links libstrata.so (not the
#      static library beside it) and runs against the installed copy.
# A tree configured by `make build` has the default prefix (/usr/local), so each case also checks
# that a prefix given at install time wins over the one given at configure time.
set -euo pipefail
# Run from `make test`, the makes below would inherit the outer one's flags, jobserver and
# command-line variables (a DESTDIR there would stage case 3).
unset MAKEFLAGS MFLAGS MAKELEVEL DESTDIR PREFIX

src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
cc=${3:-cc}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/strata-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

fail() {
    echo "check_install: $*" >&2
    exit 1
}

# pc PCDIR SYSROOT ARGS...: pkg-config finding strata.pc in PCDIR first (the system's directories
# still give the dependencies strata.pc names).
pc() {
    local dir=$1 sysroot=$2
    shift 2
    PKG_CONFIG_PATH="$dir" PKG_CONFIG_SYSROOT_DIR="$sysroot" pkg-config "$@"
}

# check_tree ROOT PREFIX: an install for PREFIX whose files are under ROOT (ROOT is PREFIX, or
# DESTDIR + PREFIX when staged). Prints the directory holding strata.pc.
check_tree() {
    local root=$1 prefix=$2 pcfile got libdir
    pcfile=$(find "$root" -path '*/pkgconfig/strata.pc' -print -quit 2>/dev/null || true)
    [ -n "$pcfile" ] || fail "no strata.pc under $root"
    got=$(sed -n 's/^prefix=//p' "$pcfile")
    [ "$got" = "$prefix" ] || fail "$pcfile says prefix=$got, the install was for $prefix"
    libdir=${pcfile%/pkgconfig/strata.pc}
    [ -e "$libdir/libstrata.so" ] || fail "no libstrata.so beside $pcfile"
    [ -e "$root/include/strata/strata.h" ] || fail "no include/strata/strata.h under $root"
    [ -e "$root/include/strata/version.h" ] || fail "no include/strata/version.h under $root"
    dirname "$pcfile"
}

# link_and_run PCDIR SYSROOT NAME: examples/l1.c built as README says, run on the installed .so.
link_and_run() {
    local pcdir=$1 sysroot=$2 exe=$tmp/$3 flags libdir needed loaded
    flags=$(pc "$pcdir" "$sysroot" --cflags --libs strata) || fail "pkg-config strata failed"
    libdir=$sysroot$(pc "$pcdir" "" --variable=libdir strata)
    # shellcheck disable=SC2086 # the flags are words
    "$cc" -o "$exe" "$src/examples/l1.c" $flags || fail "examples/l1.c does not link with: $flags"
    # (read whole, then matched: `cmd | grep -q` under pipefail fails when grep exits first)
    needed=$(readelf -d "$exe")
    grep -q 'NEEDED.*\[libstrata\.so' <<<"$needed" || fail "$exe is not linked against libstrata.so"
    loaded=$(LD_LIBRARY_PATH=$libdir ldd "$exe")
    grep -q "libstrata\.so.* => $libdir/" <<<"$loaded" ||
        fail "$exe does not load libstrata.so from $libdir: $loaded"
    LD_LIBRARY_PATH=$libdir "$exe" >"$exe.out" || fail "$exe failed: $(cat "$exe.out")"
    grep -q '^hit: 42 is the answer' "$exe.out" || fail "unexpected output: $(cat "$exe.out")"
}

# 1. cmake --install --prefix
cmake --install "$build" --prefix "$tmp/cmake" >"$tmp/cmake.log" 2>&1 ||
    fail "cmake --install --prefix failed: $(tail -n 20 "$tmp/cmake.log")"
check_tree "$tmp/cmake" "$tmp/cmake" >/dev/null

# 2. make install PREFIX=... DESTDIR=... (DESTDIR in the environment too: were the Makefile ever to
# drop it, cmake would still stage instead of writing to the real prefix). `-o build`: install's
# own recipe is what is checked; its build step must not run here, where other tests use the
# tree's binaries at the same time (on a tree older than its sources it relinked them under
# example/l1: "permission denied").
DESTDIR="$tmp/stage" make -s -C "$src" -o build install BUILD="$build" PREFIX="$tmp/final" \
    DESTDIR="$tmp/stage" >"$tmp/make-destdir.log" 2>&1 ||
    fail "make install DESTDIR=$tmp/stage failed: $(tail -n 20 "$tmp/make-destdir.log")"
[ ! -e "$tmp/final" ] || fail "make install DESTDIR=... wrote to the prefix itself ($tmp/final)"
pcdir=$(check_tree "$tmp/stage$tmp/final" "$tmp/final")
link_and_run "$pcdir" "$tmp/stage" l1_staged

# 3. make install PREFIX=... (`-o build`, as above)
make -s -C "$src" -o build install BUILD="$build" PREFIX="$tmp/prefix" >"$tmp/make.log" 2>&1 ||
    fail "make install PREFIX=$tmp/prefix failed: $(tail -n 20 "$tmp/make.log")"
pcdir=$(check_tree "$tmp/prefix" "$tmp/prefix")
link_and_run "$pcdir" "" l1_prefix

echo "check_install: cmake --install --prefix, make install DESTDIR and PREFIX: installed, linked, ran"
