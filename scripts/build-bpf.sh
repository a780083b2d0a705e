#!/bin/sh
# Rebuild the BPF objects in src/lockdownctl/bpf (lockdown.bpf.o, the
# enforcer, and seal.bpf.o, the seal) from their sources with Debian 12's
# clang (14.0.6). The objects are committed, so installing lockdownctl needs
# no compiler; tests/host/test_enforcer_host.py runs this into a scratch
# directory and checks that the committed objects are exactly what the
# sources give.
#   scripts/build-bpf.sh [OUTDIR]
set -eu
dir=$(cd "$(dirname "$0")/../src/lockdownctl/bpf" && pwd)
out=${1:-$dir}
out=$(cd "$out" && pwd)
cd "$dir"
for name in lockdown seal; do
    # -fdebug-prefix-map: no build directory in the object, so it is reproducible.
    clang -target bpf -O2 -g -D__TARGET_ARCH_x86 \
        -fdebug-prefix-map="$dir"=. \
        -I/usr/include/"$(uname -m)"-linux-gnu -I. \
        -c "$name.bpf.c" -o "$out/$name.bpf.o"
done
