#!/bin/sh
# Install lockdownctl on Debian 12 (run as root): a private virtual environment
# in $PREFIX (default /opt/lockdownctl) and /usr/local/bin/lockdownctl.
# Idempotent; re-running upgrades to the checked-out source.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=${PREFIX:-/opt/lockdownctl}

need_apt=""
python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt="$need_apt python3-venv"
# libbpf.so.1 is the enforcer's only native dependency (loaded through ctypes).
[ -e /usr/lib/x86_64-linux-gnu/libbpf.so.1 ] || ldconfig -p 2>/dev/null | grep -q 'libbpf.so.1 ' \
    || need_apt="$need_apt libbpf1"
if [ -n "$need_apt" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends python3 $need_apt
fi
[ -x "$PREFIX/bin/python" ] || python3 -m venv "$PREFIX"
"$PREFIX/bin/pip" install -q --disable-pip-version-check "$repo"
ln -sf "$PREFIX/bin/lockdownctl" /usr/local/bin/lockdownctl
mkdir -p /usr/local/share/man/man8
cp "$repo/man/lockdownctl.8" /usr/local/share/man/man8/lockdownctl.8
echo "installed: $(/usr/local/bin/lockdownctl --version) -> /usr/local/bin/lockdownctl"
