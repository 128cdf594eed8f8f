#!/usr/bin/env bash
# Checks that a shared weft exports only the public API: every defined
# dynamic symbol matches weft_[a-z]* (internal functions are weft__* and
# hidden; nothing from the dependencies leaks out).
#
# usage: check_exports.sh <libweft.so> [nm]
set -euo pipefail

lib=${1:?usage: check_exports.sh <libweft.so> [nm]}
nm=${2:-nm}

symbols=$("$nm" -D --defined-only "$lib" | awk 'NF >= 3 { print $3 }')
[ -n "$symbols" ] || { echo "exports: $lib exports nothing" >&2; exit 1; }
echo "$symbols" | grep -qx 'weft_run' ||
    { echo "exports: weft_run is not exported" >&2; exit 1; }
stray=$(echo "$symbols" | grep -v '^weft_[a-z]' || true)
if [ -n "$stray" ]; then
    echo "exports: $lib exports symbols outside weft_[a-z]*:" >&2
    echo "$stray" >&2
    exit 1
fi
echo "exports: $(echo "$symbols" | wc -l) symbols, all weft_[a-z]*"
