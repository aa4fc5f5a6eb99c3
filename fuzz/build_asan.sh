#!/bin/sh
# Build sipresponder._speedups with AddressSanitizer into fuzz/build-asan/ (git-ignored:
# *.so), beside the installed build, for fuzz_speedups.py / fuzz_batch.py
# (SIPRESPONDER_SPEEDUPS_SO names it). fuzz/README.md says how to run with it.
#
#   sh fuzz/build_asan.sh          clang: ASan + libFuzzer coverage of the C code
#                                  (-fsanitize=fuzzer-no-link); run with atheris's
#                                  asan_with_fuzzer.so preloaded
#   sh fuzz/build_asan.sh gcc      gcc: ASan only (no C coverage for libFuzzer); run
#                                  with LD_PRELOAD=$(gcc -print-file-name=libasan.so)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python}
include=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
suffix=$("$python" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
out="${OUT:-$here/build-asan}"
mkdir -p "$out"
warn="-std=c11 -Wall -Wextra -Wshadow -Wconversion"
case "${1:-clang}" in
clang)
    cc=$(command -v clang || command -v clang-14 || true)
    if [ -z "$cc" ]; then
        echo "build_asan.sh: no clang (apt-get install -y clang); or: sh $0 gcc" >&2
        exit 1
    fi
    sanitize="-fsanitize=address,fuzzer-no-link"
    ;;
gcc)
    cc=gcc
    sanitize="-fsanitize=address"
    ;;
*)
    echo "build_asan.sh: clang or gcc, not $1" >&2
    exit 2
    ;;
esac
# shellcheck disable=SC2086 # word splitting of the flag lists is meant
"$cc" -shared -fPIC -O1 -g -fno-omit-frame-pointer $sanitize $warn -I"$include" \
    "$here/../sipresponder/csrc/speedups.c" -o "$out/_speedups$suffix"
echo "$out/_speedups$suffix"
