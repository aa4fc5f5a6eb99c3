#!/bin/sh
# Build fuzz/fuzz_scan.c, the pure-C libFuzzer target of the compiled path's scanner
# and echo (sipresponder/csrc/scan.h, echo.h), with AddressSanitizer and
# UndefinedBehaviorSanitizer (any finding aborts), into fuzz/build-asan/fuzz_scan
# (git-ignored). Needs clang (apt-get install -y clang); no Python.
#
#   sh fuzz/build_scan.sh && fuzz/build-asan/fuzz_scan -dict=fuzz/speedups.dict \
#       fuzz/corpus-scan fuzz/seeds fuzz/seeds-speedups tests/torture
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out="${OUT:-$here/build-asan}"
mkdir -p "$out"
cc=$(command -v clang || command -v clang-14 || true)
if [ -z "$cc" ]; then
    echo "build_scan.sh: no clang (apt-get install -y clang)" >&2
    exit 1
fi
# The warnings the extension builds clean under, as errors (unused-function: the
# target uses part of the headers).
warn="-std=c11 -Wall -Wextra -Wshadow -Wconversion -Werror -Wno-unused-function"
sanitize="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all"
# shellcheck disable=SC2086 # word splitting of the flag lists is meant
"$cc" -g -O1 -fno-omit-frame-pointer $sanitize $warn -I"$here/../sipresponder/csrc" \
    "$here/fuzz_scan.c" -o "$out/fuzz_scan"
echo "$out/fuzz_scan"
