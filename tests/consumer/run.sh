#!/usr/bin/env bash
# Installs a built weft into a temporary prefix and builds main.c against it
# the two ways a service would: find_package(weft) in CMake (shared and
# static library), and pkg-config (shared, and static with --static). Runs
# every program and expects "ok".
#
# usage: run.sh <weft build dir> [C compiler]
set -euo pipefail

build=${1:?usage: run.sh <weft build dir> [C compiler]}
cc=${2:-cc}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

fail() {
    echo "consumer: $*" >&2
    exit 1
}

# A static build must not need libweft.so.
check_static() {
    if LD_LIBRARY_PATH=$prefix/lib ldd "$1" | grep -q libweft; then
        fail "$1 is linked against libweft.so"
    fi
}

# The program must print exactly "ok" and exit 0.
check() {
    local out
    out=$(LD_LIBRARY_PATH=$prefix/lib "$@") || fail "$1 exited with $?"
    [ "$out" = ok ] || fail "$1 printed '$out', not 'ok'"
    echo "consumer: $1: ok"
}

cmake --install "$build" --prefix "$prefix" >/dev/null

# find_package(weft) with CMAKE_PREFIX_PATH; nothing from the source tree.
cmake -S "$here" -B "$tmp/cmake-build" -DCMAKE_C_COMPILER="$cc" \
    -DCMAKE_PREFIX_PATH="$prefix" >"$tmp/cmake.log" 2>&1 ||
    { cat "$tmp/cmake.log" >&2; fail "configuring with find_package failed"; }
cmake --build "$tmp/cmake-build" >"$tmp/build.log" 2>&1 ||
    { cat "$tmp/build.log" >&2; fail "building with find_package failed"; }
check "$tmp/cmake-build/consumer"
check_static "$tmp/cmake-build/consumer_static"
check "$tmp/cmake-build/consumer_static"

# pkg-config, from the installed .pc only (the prefix was chosen at install
# time, after weft was configured: the .pc file must not hard-code it).
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
[ "$(pkg-config --variable=prefix weft)" -ef "$prefix" ] ||
    fail "weft.pc points at $(pkg-config --variable=prefix weft), not $prefix"
# shellcheck disable=SC2046 # word splitting of the flags is intended
"$cc" -o "$tmp/pc-shared" "$here/main.c" $(pkg-config --cflags --libs weft)
check "$tmp/pc-shared"
# The README's commands: an rpath instead of LD_LIBRARY_PATH, and the
# static archives named explicitly.
# shellcheck disable=SC2046
"$cc" -o "$tmp/pc-rpath" "$here/main.c" $(pkg-config --cflags --libs weft) \
    -Wl,-rpath,"$(pkg-config --variable=libdir weft)"
[ "$("$tmp/pc-rpath")" = ok ] || fail "pc-rpath did not print ok"
echo "consumer: $tmp/pc-rpath: ok"
if [ -f "$("$cc" -print-file-name=libjemalloc.a)" ]; then
    # shellcheck disable=SC2046
    "$cc" -o "$tmp/pc-bstatic" "$here/main.c" $(pkg-config --cflags weft) \
        -L"$(pkg-config --variable=libdir weft)" \
        -Wl,-Bstatic -lweft -luring -ljemalloc -Wl,-Bdynamic -lm -pthread
    check_static "$tmp/pc-bstatic"
    check "$tmp/pc-bstatic"
fi
# Static: a directory holding only libweft.a, searched first, makes -lweft
# pick the archive; --static adds the private dependencies.
mkdir "$tmp/static-only"
ln -s "$prefix/lib/libweft.a" "$tmp/static-only/libweft.a"
# shellcheck disable=SC2046
"$cc" -o "$tmp/pc-static" "$here/main.c" -L"$tmp/static-only" \
    $(pkg-config --static --cflags --libs weft)
check_static "$tmp/pc-static"
check "$tmp/pc-static"
# Fully static dependencies too (liburing.a, libjemalloc.a where weft uses
# it): Libs.private must name everything they need (libm for jemalloc).
for dep in liburing.a libjemalloc.a; do
    path=$("$cc" -print-file-name="$dep")
    if [ -f "$path" ]; then ln -s "$path" "$tmp/static-only/$dep"; fi
done
# shellcheck disable=SC2046
"$cc" -o "$tmp/pc-static-deps" "$here/main.c" -L"$tmp/static-only" \
    $(pkg-config --static --cflags --libs weft)
check_static "$tmp/pc-static-deps"
if ldd "$tmp/pc-static-deps" | grep -Eq 'liburing|libjemalloc'; then
    fail "pc-static-deps is linked against a shared liburing or jemalloc"
fi
check "$tmp/pc-static-deps"
