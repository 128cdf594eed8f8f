#!/usr/bin/env bash
# Builds tests/cross/fiber_switch.c for the host and for ARCH with the
# cross compiler CC, runs the latter under QEMU, and compares the outputs.
# Usage: run.sh SOURCE_DIR ARCH CC QEMU
set -euo pipefail
src=$1 arch=$2 cc=$3 qemu=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prog=(-O2 -std=gnu11 -I"$src" "$src/tests/cross/fiber_switch.c"
      "$src/runtime/fiber.c")
cc "${prog[@]}" "$src/runtime/arch/switch_x86_64.S" -lm -o "$tmp/host"
"$cc" "${prog[@]}" "$src/runtime/arch/switch_$arch.S" -static -lm -o "$tmp/cross"
want=$("$tmp/host")
got=$("$qemu" "$tmp/cross")
echo "host:  $want"
echo "$arch: $got"
[ "$want" = "$got" ]
