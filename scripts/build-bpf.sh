#!/bin/sh
# Rebuild the BPF objects in src/lockdownctl/bpf from their sources with
# Debian 12's clang (14.0.6):
#   lockdown.bpf.o      the enforcer (lockdown.bpf.c)
#   seal.bpf.o          the seal (seal.bpf.c), `bpf` LSM hook with 3 arguments
#   seal-kernarg.bpf.o  the same with the 4-argument `bpf` hook (Linux 6.15+)
#   gate.bpf.o          the signed-update gate (gate.bpf.c), 3-argument `bpf` hook
#   gate-kernarg.bpf.o  the same with the 4-argument `bpf` hook
# lockdownctl/bpf/hooks.py loads the variant whose programs' arguments match
# the running kernel's BTF. The objects are committed, so installing
# lockdownctl needs no compiler; tests/host/test_enforcer_host.py runs this
# into a scratch directory and checks that the committed objects are exactly
# what the sources give.
#   scripts/build-bpf.sh [OUTDIR]
set -eu
dir=$(cd "$(dirname "$0")/../src/lockdownctl/bpf" && pwd)
out=${1:-$dir}
out=$(cd "$out" && pwd)
cd "$dir"
build() {  # SOURCE OBJECT [CLANG OPTION...]
    src=$1 obj=$2
    shift 2
    # -fdebug-prefix-map: no build directory in the object, so it is reproducible.
    clang -target bpf -O2 -g -D__TARGET_ARCH_x86 "$@" \
        -fdebug-prefix-map="$dir"=. \
        -I/usr/include/"$(uname -m)"-linux-gnu -I. \
        -c "$src" -o "$out/$obj"
}
build lockdown.bpf.c lockdown.bpf.o
build seal.bpf.c seal.bpf.o
build seal.bpf.c seal-kernarg.bpf.o -DLDCTL_BPF_KERNEL_ARG
# The gate takes a busy flag with cmpxchg: BPF atomics need -mcpu=v3 (Linux 5.12+).
build gate.bpf.c gate.bpf.o -mcpu=v3
build gate.bpf.c gate-kernarg.bpf.o -mcpu=v3 -DLDCTL_BPF_KERNEL_ARG
