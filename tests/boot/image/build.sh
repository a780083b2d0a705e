#!/bin/bash
# build.sh OUTDIR: build the boot-test disk image, a Debian system installed the way a user's is:
# UEFI -> shim (signed by Microsoft) -> GRUB (signed by Debian) -> signed Debian kernel ->
# initramfs -> systemd, on a GPT disk with an ESP (FAT32) and an ext4 root.
# Normally run by tests/boot/image.py, which caches OUTDIR by a hash of this script, the package
# list and the suite; by hand: sudo tests/boot/image/build.sh /tmp/img
#
# Loop-free and mount-free (this host kernel has no GPT partition scanning and no vfat): the root
# file system is filled with `mkfs.ext4 -d`, the ESP with mtools, and both are written into the
# disk with dd. Needs root (mmdebstrap in root mode keeps file owners). Host packages:
# scripts/boot-setup.sh.
#
# Outputs in OUTDIR: base.qcow2 (tests boot copy-on-write overlays on it), image.env (kernel
# version, UUIDs, suite) and modules/ (four of the kernel's own module files, for the MOK test).
# Knobs: SUITE [bookworm], MIRROR, SECMIRROR, DISK_MIB [2048], ESP_MIB [100].
# The guest side of the tier (boottest.service + boottest-hook) is described in tests/boot/README.md.
set -euo pipefail

OUT=${1:?usage: build.sh OUTDIR}
HERE=$(cd "$(dirname "$0")" && pwd)
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECMIRROR=${SECMIRROR:-http://deb.debian.org/debian-security}
DISK_MIB=${DISK_MIB:-2048}
ESP_MIB=${ESP_MIB:-100}

[ "$(id -u)" = 0 ] || { echo "build.sh: run as root" >&2; exit 1; }
for t in mmdebstrap mkfs.vfat mcopy sfdisk mkfs.ext4 qemu-img; do
    command -v "$t" >/dev/null || { echo "build.sh: missing $t (run scripts/boot-setup.sh)" >&2; exit 1; }
done

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$OUT/work
rm -rf "$WORK"; mkdir "$WORK"
ROOTFS=$WORK/rootfs
trap 'rm -rf "$WORK"' EXIT
t0=$(date +%s)
stamp() { echo "[build +$(( $(date +%s) - t0 ))s] $*"; }

ROOT_UUID=$(cat /proc/sys/kernel/random/uuid)
ESP_SERIAL=$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n' | tr a-f A-F)   # FAT volume id, 8 hex digits
ESP_UUID=${ESP_SERIAL:0:4}-${ESP_SERIAL:4:4}                               # as blkid/fstab spell it

# ---------------------------------------------------------------- 1. root tree
PKGS=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$HERE/packages" | tr -d ' \t' | paste -sd, -)
stamp "mmdebstrap $SUITE ($PKGS)"
# fstab and FSTYPE go in before the kernel package is installed: initramfs-tools probes the real
# root device for its type (there is none in a chroot), and without FSTYPE=ext4 it leaves fsck out
# of the initramfs ("Warning: fsck not present, so skipping root file system" at boot).
cat > "$WORK/fstab" <<EOF
UUID=$ROOT_UUID  /          ext4  errors=remount-ro  0  1
UUID=$ESP_UUID   /boot/efi  vfat  umask=0077         0  1
EOF
echo 'FSTYPE=ext4' > "$WORK/initramfs-fstype"
# minbase = Essential packages + apt; Recommends are not installed (mmdebstrap's default).
mmdebstrap --variant=minbase --include="$PKGS" \
    --essential-hook="upload $WORK/fstab /etc/fstab" \
    --essential-hook='mkdir -p "$1/etc/initramfs-tools/conf.d"' \
    --essential-hook="upload $WORK/initramfs-fstype /etc/initramfs-tools/conf.d/fstype" \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --aptopt='Acquire::Retries "3"' \
    "$SUITE" "$ROOTFS" \
    "deb $MIRROR $SUITE main" \
    "deb $MIRROR $SUITE-updates main" \
    "deb $SECMIRROR $SUITE-security main"

KVER=$(basename "$(ls -1 "$ROOTFS"/boot/vmlinuz-* | sort -V | tail -1)")
KVER=${KVER#vmlinuz-}
stamp "kernel $KVER"

# In-tree modules with no dependencies that nothing loads at boot: the host strips Debian's
# signature and re-signs them (MOK key, another key, none) for the Secure Boot MOK test
# (tests/boot/machine.py: mok_modules). Copied out here: the host cannot read the disk image.
mkdir -p "$OUT/modules"
for m in dummy ifb nlmon veth; do
    f=$ROOTFS/lib/modules/$KVER/kernel/drivers/net/$m.ko
    grep -q "^kernel/drivers/net/$m.ko:\s*$" "$ROOTFS/lib/modules/$KVER/modules.dep" \
        || { echo "build.sh: $f missing or has dependencies" >&2; exit 1; }
    cp "$f" "$OUT/modules/"
done

# ---------------------------------------------------------------- 2. configure the tree
echo boottest > "$ROOTFS/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tboottest\n' > "$ROOTFS/etc/hosts"
mkdir -p "$ROOTFS/boot/efi"
chroot "$ROOTFS" passwd -d root >/dev/null

# GRUB: serial console, no menu wait, text terminal (gfxterm would draw on the invisible VGA
# screen). No "quiet": the kernel log reaches the serial line.
sed -i -e 's/^GRUB_TIMEOUT=.*/GRUB_TIMEOUT=0/' \
       -e 's/^GRUB_CMDLINE_LINUX_DEFAULT=.*/GRUB_CMDLINE_LINUX_DEFAULT="console=ttyS0,115200"/' \
       -e 's/^#\?GRUB_TERMINAL=.*/GRUB_TERMINAL=console/' "$ROOTFS/etc/default/grub"
grep -q '^GRUB_TERMINAL=' "$ROOTFS/etc/default/grub" || echo 'GRUB_TERMINAL=console' >> "$ROOTFS/etc/default/grub"

# Root shell on the serial line without a password (interactive use, tests/boot/README.md).
mkdir -p "$ROOTFS/etc/systemd/system/serial-getty@ttyS0.service.d"
cat > "$ROOTFS/etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf" <<'EOF'
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --keep-baud 115200,57600,38400,9600 %I $TERM
EOF

# The test hook: mounts the 9p shares QEMU offers and runs the tier's guest driver from the share
# (tests/boot/guest/hook.sh, not part of the image: changing it does not rebuild the image).
# It runs BEFORE the serial getty: agetty calls vhangup() on ttyS0 when it starts, and a writer
# that opened ttyS0 earlier then loses its output silently.
install -m 755 "$HERE/boottest-hook" "$ROOTFS/usr/local/sbin/boottest-hook"
install -m 644 "$HERE/boottest.service" "$ROOTFS/etc/systemd/system/boottest.service"
mkdir -p "$ROOTFS/etc/systemd/system/multi-user.target.wants"
ln -sf /etc/systemd/system/boottest.service "$ROOTFS/etc/systemd/system/multi-user.target.wants/boottest.service"

# ---------------------------------------------------------------- 3. GRUB config, ESP
# /boot/grub/grub.cfg by hand: update-grub cannot run here (its 10_linux skips every kernel when /
# is not a partition device, and this host cannot scan a loop device's GPT). In the guest,
# update-grub (run by `lockdownctl enable`) regenerates Debian's full file.
cat > "$ROOTFS/boot/grub/grub.cfg" <<EOF
# Written by tests/boot/image/build.sh; update-grub in the guest replaces it.
set default=0
set timeout=0
terminal_output console
insmod part_gpt
insmod ext2
search --no-floppy --fs-uuid --set=root $ROOT_UUID
menuentry 'Debian GNU/Linux' {
	insmod part_gpt
	insmod ext2
	search --no-floppy --fs-uuid --set=root $ROOT_UUID
	echo	'Loading Linux $KVER ...'
	linux	/boot/vmlinuz-$KVER root=UUID=$ROOT_UUID ro console=ttyS0,115200
	echo	'Loading initial ramdisk ...'
	initrd	/boot/initrd.img-$KVER
}
EOF
cat > "$WORK/esp-grub.cfg" <<EOF
search.fs_uuid $ROOT_UUID root
set prefix=(\$root)'/boot/grub'
configfile \$prefix/grub.cfg
EOF

stamp "ESP"
truncate -s "${ESP_MIB}M" "$WORK/esp.img"
mkfs.vfat -F 32 -s 1 -n ESP -i "$ESP_SERIAL" "$WORK/esp.img" >/dev/null
export MTOOLS_SKIP_CHECK=1
mmd -i "$WORK/esp.img" ::/EFI ::/EFI/BOOT
# The removable-media path, as `grub-install --removable --uefi-secure-boot` lays it out: the
# firmware starts \EFI\BOOT\BOOTX64.EFI (shim), shim starts grubx64.efi beside it (no fbx64.efi:
# shim creates no NVRAM entries). Debian's signed GRUB falls back to $cmdpath/grub.cfg when its
# built-in /EFI/debian prefix is missing; that file finds the root by UUID.
mcopy -i "$WORK/esp.img" "$ROOTFS/usr/lib/shim/shimx64.efi.signed" ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$WORK/esp.img" "$ROOTFS/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed" ::/EFI/BOOT/grubx64.efi
mcopy -i "$WORK/esp.img" "$ROOTFS/usr/lib/shim/mmx64.efi.signed" ::/EFI/BOOT/mmx64.efi
mcopy -i "$WORK/esp.img" "$WORK/esp-grub.cfg" ::/EFI/BOOT/grub.cfg

# ---------------------------------------------------------------- 4. root file system, disk
ROOT_MIB=$(( DISK_MIB - ESP_MIB - 2 ))          # 1 MiB before the ESP, 1 MiB for the backup GPT
stamp "mkfs.ext4 -d (root ${ROOT_MIB} MiB)"
# Pin the ext4 features: GRUB 2.06 cannot read metadata_csum_seed (a default of newer e2fsprogs).
cat > "$WORK/mke2fs.conf" <<'CONF'
[defaults]
	blocksize = 4096
	inode_size = 256
	inode_ratio = 16384
[fs_types]
	ext4 = {
		features = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
	}
CONF
MKE2FS_CONFIG=$WORK/mke2fs.conf mkfs.ext4 -q -t ext4 -L root -U "$ROOT_UUID" -d "$ROOTFS" \
    "$WORK/root.img" "${ROOT_MIB}M"

stamp "disk"
truncate -s "${DISK_MIB}M" "$WORK/disk.raw"
sfdisk -q "$WORK/disk.raw" <<EOF
label: gpt
start=2048, size=$(( ESP_MIB * 2048 )), type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="ESP"
start=$(( (1 + ESP_MIB) * 2048 )), size=$(( ROOT_MIB * 2048 )), type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name="root"
EOF
dd if="$WORK/esp.img" of="$WORK/disk.raw" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$WORK/root.img" of="$WORK/disk.raw" bs=1M seek=$(( 1 + ESP_MIB )) conv=notrunc,sparse status=none
qemu-img convert -f raw -O qcow2 "$WORK/disk.raw" "$OUT/base.qcow2"

cat > "$OUT/image.env" <<EOF
KVER=$KVER
ROOT_UUID=$ROOT_UUID
ESP_UUID=$ESP_UUID
SUITE=$SUITE
EOF
stamp "done: $OUT/base.qcow2 ($(du -h "$OUT/base.qcow2" | cut -f1)), kernel $KVER"
