#!/usr/bin/env bash
# Install what the VM test tier (tests/vm) needs on Debian 12, as root.
# Idempotent: when everything is present it returns in well under a second
# without touching apt or PyPI.
#
#   sudo scripts/vm-setup.sh            # install what is missing
#   scripts/vm-setup.sh --check         # exit 1 (and say what) if something is missing
#
# The guest kernels are never installed on this host (nothing is written to
# /boot or /lib/modules): each family pinned in tests/vm/kernels.txt is
# fetched with `apt-get download` through a private apt configuration (its
# own sources list, state and cache under $LOCKDOWNCTL_KERNEL_CACHE/.apt; the
# host's sources are read only to learn its Debian mirrors), unpacked with
# `dpkg-deb -x` into $LOCKDOWNCTL_KERNEL_CACHE/<Debian version> and given
# its modules.dep with depmod. tests/vm/runner.py boots it from there.
#
# Afterwards put /opt/vng/bin on PATH (vng starts `virtme-run` by name), or let
# tests/vm/runner.py find it there by itself.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
VNG_VENV=${VNG_VENV:-/opt/vng}
VNG_VERSION=1.42   # verified with QEMU 7.2 and Debian's 6.1, 6.12 and 7.3 kernels
KERNEL_PINS=$repo/tests/vm/kernels.txt
KERNEL_CACHE=${LOCKDOWNCTL_KERNEL_CACHE:-/opt/lockdownctl-kernels}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
# busybox-static: vng builds an initramfs (9p and virtio are modules on Debian);
# udev: without it the guest cannot find its output channels (exit 255);
# kmod: depmod for the unpacked module trees; file: vng reads the kernel's version with it.
APT_PACKAGES=(qemu-system-x86 busybox-static udev kmod python3-venv file debian-archive-keyring)

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

# "family suite version package..." for every pin (comments and blank lines dropped)
pins() { sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$KERNEL_PINS"; }

# Families whose unpacked tree is missing (a tree is renamed into place only when complete).
missing_kernels() {
    local family suite version packages
    while read -r family suite version packages; do
        [[ -d $KERNEL_CACHE/$version ]] || echo "$family"
    done < <(pins)
}

# The host's mirror for a suite of its own release, from its apt configuration.
mirror_of() {
    apt-get indextargets --format '$(RELEASE) $(REPO_URI)' 'Identifier: Packages' 2>/dev/null |
        awk -v suite="$1" '$1 == suite { print $2; exit }'
}

fetch_kernels() {
    local apt=$KERNEL_CACHE/.apt codename debian security family suite version packages
    # shellcheck disable=SC1091
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
    debian=$(mirror_of "$codename")
    debian=${debian:-http://deb.debian.org/debian/}
    security=$(mirror_of "$codename-security")
    security=${security:-http://deb.debian.org/debian-security/}
    mkdir -p "$apt/state/lists/partial" "$apt/cache/archives/partial"
    : >"$apt/sources.list"
    while read -r family suite version packages; do
        case $suite in
            *-security) echo "deb [signed-by=$KEYRING] $security $suite main" ;;
            *) echo "deb [signed-by=$KEYRING] $debian $suite main" ;;
        esac
    done < <(pins) | sort -u >"$apt/sources.list"
    local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
                -o "Dir::State=$apt/state" -o "Dir::Cache=$apt/cache"
                -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null)
    echo "vm-setup: private apt sources ($apt/sources.list):"
    sed 's/^/    /' "$apt/sources.list"
    apt-get "${opts[@]}" update -q
    while read -r family suite version packages; do
        [[ -d $KERNEL_CACHE/$version ]] && continue
        local tree=$KERNEL_CACHE/$version work=$KERNEL_CACHE/.$version.partial specs=() p deb image kver root
        for p in $packages; do specs+=("$p=$version"); done
        rm -rf "$work"
        mkdir -p "$work/debs" "$work/tree"
        # apt downloads as the unprivileged _apt user when it may write there.
        id _apt >/dev/null 2>&1 && chown _apt "$work/debs"
        echo "vm-setup: kernel $family: apt-get download ${specs[*]}"
        (cd "$work/debs" && apt-get "${opts[@]}" download -q "${specs[@]}")
        for deb in "$work"/debs/*.deb; do
            dpkg-deb -x "$deb" "$work/tree"
        done
        # 6.1/6.12: boot/vmlinuz-KVER + lib/modules/KVER; 7.x: usr/lib/modules/KVER/vmlinuz
        image=$(compgen -G "$work/tree/boot/vmlinuz-*" || compgen -G "$work/tree/usr/lib/modules/*/vmlinuz" || true)
        [[ -n $image ]] || { echo "vm-setup: no vmlinuz in ${specs[*]}" >&2; exit 1; }
        for root in "$work/tree" "$work/tree/usr"; do
            for kver in "$root"/lib/modules/*/; do
                kver=$(basename "$kver")
                [[ -d $root/lib/modules/$kver/kernel ]] && depmod -b "$root" "$kver"
            done
        done
        {
            echo "family: $family"
            echo "suite: $suite"
            echo "version: $version"
            (cd "$work/debs" && sha256sum -- *.deb)
        } >"$work/tree/lockdownctl-kernel.txt"
        rm -rf "$work/debs"
        mv "$work/tree" "$tree"
        rmdir "$work"
        echo "vm-setup: kernel $family: $version in $tree"
    done < <(pins)
}

mapfile -t missing < <(missing_packages)
mapfile -t missing_k < <(missing_kernels)
if ((${#missing[@]} == 0 && ${#missing_k[@]} == 0)) && vng_ok; then
    echo "vm-setup: everything present (virtme-ng $VNG_VERSION in $VNG_VENV, kernels in $KERNEL_CACHE)"
    exit 0
fi
if [[ ${1:-} == --check ]]; then
    ((${#missing[@]})) && echo "vm-setup: missing packages: ${missing[*]}"
    vng_ok || echo "vm-setup: missing virtme-ng $VNG_VERSION in $VNG_VENV"
    ((${#missing_k[@]})) && echo "vm-setup: missing kernels in $KERNEL_CACHE: ${missing_k[*]}"
    exit 1
fi
if ((EUID != 0)); then
    echo "vm-setup: must run as root to install: ${missing[*]:-} ${missing_k[*]:-} virtme-ng" >&2
    exit 1
fi

if ((${#missing[@]})); then
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

((${#missing_k[@]})) && fetch_kernels
mapfile -t missing_k < <(missing_kernels)
((${#missing_k[@]} == 0)) || { echo "vm-setup: kernels still missing: ${missing_k[*]}" >&2; exit 1; }
echo "vm-setup: done (virtme-ng $VNG_VERSION in $VNG_VENV, kernels in $KERNEL_CACHE)"
