#!/bin/sh
# Install everything the tests need on Debian 12 (run as root) and run the
# whole suite: lint, types, unit, host, VM and boot tiers. Idempotent.
#   LOCKDOWNCTL_REQUIRE_HOST=1  host-tier skips become failures
#   LOCKDOWNCTL_REQUIRE_VM=1    VM-tier skips become failures (CI sets both)
# Extra arguments go to pytest, e.g. scripts/test.sh tests/unit -k btf
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
VENV=${LOCKDOWNCTL_VENV:-/opt/lockdownctl-test-venv}
export LOCKDOWNCTL_VENV="$VENV"

# promtool (prometheus), node_exporter, and what tests/host/test_deb.py builds and installs the package with
pkgs="python3-venv libbpf1 libbpf-dev clang llvm bpftool grub-common prometheus prometheus-node-exporter
      debhelper dh-python pybuild-plugin-pyproject python3-all python3-setuptools python3-shtab
      python3-yaml python3-zstandard python3-pefile python3-prometheus-client python3-cryptography openssl lintian mmdebstrap fish zsh"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || missing="$missing $p"
done
if [ -n "$missing" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # Tools only: no daemon of these packages (prometheus, node_exporter) may
    # start on the test machine, so invoke-rc.d is told "not now" (policy-rc.d,
    # as in chroots and image builds) unless the admin already has a policy.
    norc=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && norc=1
    fi
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing || { [ -z "$norc" ] || rm -f /usr/sbin/policy-rc.d; exit 1; }
    [ -z "$norc" ] || rm -f /usr/sbin/policy-rc.d
fi
"$repo/scripts/vm-setup.sh"
"$repo/scripts/boot-setup.sh"

[ -x "$VENV/bin/python" ] || /usr/bin/python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check -e "$repo[test]"

cd "$repo"
"$VENV/bin/ruff" check src tests benchmarks fuzz fuzz/run-all
"$VENV/bin/mypy"
"$VENV/bin/lint-imports"  # layer contract (pyproject.toml [tool.importlinter])
[ $# -eq 0 ] || exec "$VENV/bin/python" -m pytest "$@"

# The whole suite. The unit tier on both cores (pytest-xdist); then the host
# tier; then the VM and boot tiers side by side: each QEMU runs round-robin
# TCG on one host thread, so on two cores neither waits for the other (the
# boot tier's output follows the VM tier's). Exit 1 if any tier failed.
py="$VENV/bin/python"
status=0
"$py" -m pytest -n 2 tests/unit || status=1
"$py" -m pytest tests/host || status=1
bootlog=$(mktemp /tmp/lockdownctl-boot-tier.XXXXXX)
"$py" -m pytest -p no:cacheprovider tests/boot >"$bootlog" 2>&1 &
bootpid=$!
"$py" -m pytest -p no:cacheprovider tests/vm || status=1
wait "$bootpid" || status=1
echo "---------------- tests/boot (ran beside tests/vm) ----------------"
cat "$bootlog"
rm -f "$bootlog"
exit "$status"
