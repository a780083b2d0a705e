#!/usr/bin/env bash
# Install what the VM test tier (tests/vm) needs on Debian 12, as root.
# Idempotent: when everything is present it returns in well under a second
# without touching apt or PyPI.
#
#   sudo scripts/vm-setup.sh            # install what is missing
#   scripts/vm-setup.sh --check         # exit 1 (and say what) if something is missing
#
# Afterwards put /opt/vng/bin on PATH (vng starts `virtme-run` by name), or let
# tests/vm/runner.py find it there by itself.
set -euo pipefail

VNG_VENV=${VNG_VENV:-/opt/vng}
VNG_VERSION=1.42   # verified with QEMU 7.2 and Debian's 6.1 / 6.12 kernels
# busybox-static: vng builds an initramfs (9p and virtio are modules on Debian);
# udev: without it the guest cannot find its output channels (exit 255).
APT_PACKAGES=(qemu-system-x86 busybox-static udev kmod python3-venv
              linux-image-amd64 linux-image-6.12-amd64)

missing_packages() {
    local p
    for p in "${APT_PACKAGES[@]}"; do
        [[ $(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null) == ii* ]] || echo "$p"
    done
}

vng_ok() {
    [[ -x $VNG_VENV/bin/vng && -x $VNG_VENV/bin/virtme-run ]] || return 1
    # Read the installed version from the dist-info name: importing would cost ~0.3 s.
    compgen -G "$VNG_VENV/lib/python3*/site-packages/virtme_ng-$VNG_VERSION.dist-info" >/dev/null
}

kernels_ok() {
    compgen -G '/boot/vmlinuz-6.1.*-amd64' >/dev/null &&
        compgen -G '/boot/vmlinuz-6.12.*+deb12-amd64' >/dev/null
}

mapfile -t missing < <(missing_packages)
if ((${#missing[@]} == 0)) && vng_ok && kernels_ok; then
    echo "vm-setup: everything present (virtme-ng $VNG_VERSION in $VNG_VENV)"
    exit 0
fi
if [[ ${1:-} == --check ]]; then
    ((${#missing[@]})) && echo "vm-setup: missing packages: ${missing[*]}"
    vng_ok || echo "vm-setup: missing virtme-ng $VNG_VERSION in $VNG_VENV"
    kernels_ok || echo "vm-setup: missing kernel images in /boot"
    exit 1
fi
if ((EUID != 0)); then
    echo "vm-setup: must run as root to install: ${missing[*]:-virtme-ng}" >&2
    exit 1
fi

if ((${#missing[@]})) || ! kernels_ok; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${APT_PACKAGES[@]}"
fi

if ! vng_ok; then
    # Debian's python, not whatever python3 is first on PATH: the venv must
    # outlive pyenv upgrades and exist on a fresh machine.
    [[ -x $VNG_VENV/bin/python ]] || /usr/bin/python3 -m venv "$VNG_VENV"
    "$VNG_VENV/bin/pip" install -q --disable-pip-version-check "virtme-ng==$VNG_VERSION"
fi

kernels_ok || { echo "vm-setup: kernel images still missing in /boot" >&2; exit 1; }
echo "vm-setup: done (virtme-ng $VNG_VERSION in $VNG_VENV)"
