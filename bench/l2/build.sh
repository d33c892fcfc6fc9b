# bench/l2/build.sh: sourced by bench/l2/run.sh and bench/l2/run_topology.sh (not run alone).
#
# bench_l2_prepare SRC BUILD: configures and builds libstrata in BUILD (RelWithDebInfo), links
# bench_l2 there and sets BENCH to its absolute path.
#
# bench_l2_build SRC BUILD OUT: links SRC/bench/l2/bench_l2.c against BUILD/libstrata.a into OUT.
# libstrata's own dependencies are read from SRC/strata.pc.in's Requires.private and Libs.private
# (the build's strata.pc is written only by an install), so the link follows the library when it
# gains one.
bench_l2_build() {
    local src=$1 build=$2 out=$3 deps libs
    deps=$(sed -n 's/^Requires.private://p' "$src/strata.pc.in")
    libs=$(sed -n 's/^Libs.private://p' "$src/strata.pc.in")
    # shellcheck disable=SC2046,SC2086 # word splitting of the flag lists is intended
    gcc -O2 -std=c11 -D_GNU_SOURCE -I"$src/include" -I"$build/include" \
        "$src/bench/l2/bench_l2.c" "$build/libstrata.a" \
        $(pkg-config --libs $deps) $libs -lpthread -lm -o "$out"
}

bench_l2_prepare() {
    local src=$1 build=$2
    cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$build" -j2 --target strata >/dev/null
    bench_l2_build "$src" "$build" "$build/bench_l2"
    BENCH=$(cd "$build" && pwd)/bench_l2
}
