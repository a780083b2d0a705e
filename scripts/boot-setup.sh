#!/usr/bin/env bash
# Install what the real-boot test tier (tests/boot) needs on Debian 12, as root:
# QEMU, OVMF (UEFI firmware with Secure Boot and Microsoft's keys), and the
# tools that build the Debian disk image without loop devices or mounts
# (mmdebstrap, mtools, mkfs.vfat, sfdisk, mkfs.ext4, qemu-img).
# Idempotent: returns at once when everything is present.
#
#   scripts/boot-setup.sh            # install what is missing
#   scripts/boot-setup.sh --check    # exit 1 (and say what) if something is missing
#
# shim, GRUB and the kernel are installed only inside the image, never here:
# their maintainer scripts would run grub-install on an EFI host.
set -euo pipefail

APT_PACKAGES=(qemu-system-x86 qemu-utils ovmf mmdebstrap mtools dosfstools fdisk e2fsprogs python3-venv)

missing=()
for p in "${APT_PACKAGES[@]}"; do
    [[ $(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null) == ii* ]] || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
    echo "boot-setup: everything present"
    exit 0
fi
if [[ ${1:-} == --check ]]; then
    echo "boot-setup: missing packages: ${missing[*]}"
    exit 1
fi
if ((EUID != 0)); then
    echo "boot-setup: must run as root to install: ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Wait for another apt run (a second setup script, unattended-upgrades) instead of failing.
apt-get -o DPkg::Lock::Timeout=900 update -q
apt-get -o DPkg::Lock::Timeout=900 install -y -q --no-install-recommends "${missing[@]}"
echo "boot-setup: done"
