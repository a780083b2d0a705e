#!/bin/sh
# Install lockdownctl on Debian 12 (run as root): a private virtual environment
# in $PREFIX (default /opt/lockdownctl), the command in $BINDIR (default
# /usr/local/bin) and lockdownctl(8) below $MANDIR (default /usr/local/share/man).
# Idempotent; re-running upgrades to the checked-out source.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=${PREFIX:-/opt/lockdownctl}
BINDIR=${BINDIR:-/usr/local/bin}
MANDIR=${MANDIR:-/usr/local/share/man}

# The system interpreter, never the first python3 on PATH: a venv made from an
# interpreter in root's home (pyenv) cannot run for any other user.
PYTHON=/usr/bin/python3
need_apt=""
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || need_apt="$need_apt python3-venv"
# libbpf.so.1 is the enforcer's only native dependency (loaded through ctypes).
[ -e /usr/lib/x86_64-linux-gnu/libbpf.so.1 ] || ldconfig -p 2>/dev/null | grep -q 'libbpf.so.1 ' \
    || need_apt="$need_apt libbpf1"
if [ -n "$need_apt" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends python3 $need_apt
fi
# An existing venv made from another interpreter is rebuilt from the system one.
if [ -x "$PREFIX/bin/python" ] && [ "$(readlink -f "$PREFIX/bin/python")" != "$(readlink -f "$PYTHON")" ]; then
    rm -rf "$PREFIX"
fi
[ -x "$PREFIX/bin/python" ] || "$PYTHON" -m venv "$PREFIX"
"$PREFIX/bin/pip" install -q --disable-pip-version-check "$repo"
# Our own launcher rather than a link to pip's console script: that one imports
# re before anything else (5 ms, half an interpreter start), which
# `lockdownctl status` itself never needs (benchmarks/startup.py).
mkdir -p "$BINDIR" "$MANDIR/man5" "$MANDIR/man8"
rm -f "$BINDIR/lockdownctl.new"
printf '#!%s/bin/python3\n# lockdownctl, installed by scripts/install.sh from %s\nfrom lockdownctl.cli import entry\nentry()\n' \
    "$PREFIX" "$repo" >"$BINDIR/lockdownctl.new"
chmod 755 "$BINDIR/lockdownctl.new"
mv -f "$BINDIR/lockdownctl.new" "$BINDIR/lockdownctl"
cp "$repo/man/lockdownctl.8" "$MANDIR/man8/lockdownctl.8"
cp "$repo/man/lockdownctl-policy.5" "$MANDIR/man5/lockdownctl-policy.5"
echo "installed: $("$BINDIR/lockdownctl" --version) -> $BINDIR/lockdownctl"
