#!/bin/sh
# Rebuild src/lockdownctl/bpf/lockdown.bpf.o from its source with Debian 12's
# clang (14.0.6). The object is committed, so installing lockdownctl needs no
# compiler; tests/host/test_bpf_build.py runs this into a scratch file and
# checks that the committed object is exactly what the source gives.
#   scripts/build-bpf.sh [OUTPUT]
set -eu
dir=$(cd "$(dirname "$0")/../src/lockdownctl/bpf" && pwd)
out=${1:-$dir/lockdown.bpf.o}
cd "$dir"
# -fdebug-prefix-map: no build directory in the object, so it is reproducible.
clang -target bpf -O2 -g -D__TARGET_ARCH_x86 \
    -fdebug-prefix-map="$dir"=. \
    -I/usr/include/"$(uname -m)"-linux-gnu -I. \
    -c lockdown.bpf.c -o "$out"
