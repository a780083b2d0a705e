"""Rebuild the fixture roots under tests/data/roots/ (run by hand, not by tests).

Each root is a directory tree shaped like the files lockdownctl reads on a
real system. Sources:
- kernel configs: the real Debian 12 kernel packages' /boot/config-* files
  (linux-image-6.1.0-56-amd64 6.1.192-2, linux-image-6.12.117+deb12-amd64
  6.12.117-1~deb12u1) and this project's build host (6.18.44, /proc/config.gz),
  kept once in tests/data/kconfig/ and linked into the roots;
- securityfs values, LSM lists and kernel log lines: captured from Debian 12
  guests booted by tests/vm/runner.py (6.1: lsm
  "lockdown,capability,landlock,yama,apparmor,tomoyo,bpf") and from the build
  host (host-6.18-kconfig-integrity is a verbatim capture, 2026-11-22);
- EFI variables: the efivarfs layout (4-byte attribute mask, then the value;
  attributes 0x06 = BOOTSERVICE_ACCESS|RUNTIME_ACCESS for SecureBoot and
  SetupMode, as firmware exposes them), boot_params with the EFI stub's
  verdict at offset 0x1EC (struct boot_params.secure_boot).
The Secure Boot line is Debian's: its kernel image contains the string
"EFI Secure Boot" for lock_kernel_down() (checked in vmlinuz-6.1.0-56-amd64).

Usage: python3 tests/data/roots/make_roots.py [--host-capture KMSG_FILE]
"""

from __future__ import annotations

import argparse
import gzip
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
KCONFIG = HERE.parent / "kconfig"
EFI_GLOBAL = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
SHIM = "605dab50-e046-4300-abb6-3dd810dd8b23"
DEBIAN_61 = "6.1.0-56-amd64"
DEBIAN_612 = "6.12.117+deb12-amd64"
HOST = "6.18.44-fc-v657"
DEBIAN_LSM = "lockdown,capability,landlock,yama,apparmor,tomoyo,bpf"


def write(root: Path, rel: str, data: str | bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)


def link_config(root: Path, release: str, rel: str | None = None) -> None:
    rel = rel or f"boot/config-{release}"
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    # A copy, not a link: lockdownctl resolves every path inside --root, so a
    # link to ../../../kconfig would not leave the root (git stores one blob).
    shutil.copyfile(KCONFIG / f"config-{release}", path)


def lockdown_file(level: str) -> str:
    return " ".join(f"[{lvl}]" if lvl == level else lvl for lvl in ("none", "integrity", "confidentiality")) + "\n"


def boot_params(mode: int) -> bytes:
    data = bytearray(4096)
    data[0x1EC] = mode
    return bytes(data)


def kmsg(lines: list[tuple[int, int, str]]) -> str:
    """/dev/kmsg records: prio,seq,usec,flags;text."""
    return "".join(f"{prio},{seq},{usec},-;{text}\n" for seq, (prio, usec, text) in enumerate(lines))


def debian_log(release: str, cmdline: str, extra: list[tuple[int, int, str]]) -> str:
    version = "6.1.192-2" if release == DEBIAN_61 else "6.12.117-1~deb12u1"
    return kmsg([
        (5, 0, f"Linux version {release} (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) "
               f"12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian {version}"),
        (6, 0, f"Command line: {cmdline}"),
        *extra,
        (6, 368628, "LSM: Security Framework initializing"),
        (6, 378955, "LSM support for eBPF active"),
    ])


def base(root: Path, release: str, cmdline: str) -> None:
    write(root, "proc/sys/kernel/osrelease", release + "\n")
    write(root, "proc/cmdline", cmdline + "\n")


def efi(root: Path, secure_boot: int, setup_mode: int = 0, mok_sb_state: int | None = None) -> None:
    write(root, f"sys/firmware/efi/efivars/SecureBoot-{EFI_GLOBAL}", bytes([6, 0, 0, 0, secure_boot]))
    write(root, f"sys/firmware/efi/efivars/SetupMode-{EFI_GLOBAL}", bytes([6, 0, 0, 0, setup_mode]))
    if mok_sb_state is not None:
        write(root, f"sys/firmware/efi/efivars/MokSBStateRT-{SHIM}", bytes([6, 0, 0, 0, mok_sb_state]))


def build(out: Path, host_kmsg: Path | None) -> None:
    # Debian 12, Secure Boot on: the distro patch locks at integrity.
    r = out / "debian12-6.1-sb-integrity"
    cmd = f"BOOT_IMAGE=/boot/vmlinuz-{DEBIAN_61} root=UUID=3f1e2c57-7f0b-4a49-9d5e-0c2f1b5f8e11 ro quiet"
    base(r, DEBIAN_61, cmd)
    link_config(r, DEBIAN_61)
    efi(r, 1)
    write(r, "sys/kernel/boot_params/data", boot_params(3))
    write(r, "sys/kernel/security/lockdown", lockdown_file("integrity"))
    write(r, "sys/kernel/security/lsm", DEBIAN_LSM)
    write(r, "dev/kmsg", debian_log(DEBIAN_61, cmd, [
        (6, 0, "efi: EFI v2.70 by EDK II"),
        (6, 4105, "secureboot: Secure boot enabled"),
        (5, 4107, "Kernel is locked down from EFI Secure Boot; see man kernel_lockdown.7"),
    ]))

    # Debian 12 with the 6.12 kernel, Secure Boot off: no lockdown.
    r = out / "debian12-6.12-none"
    cmd = f"BOOT_IMAGE=/boot/vmlinuz-{DEBIAN_612} root=/dev/mapper/vg0-root ro quiet"
    base(r, DEBIAN_612, cmd)
    link_config(r, DEBIAN_612)
    efi(r, 0)
    write(r, "sys/kernel/boot_params/data", boot_params(2))
    write(r, "sys/kernel/security/lockdown", lockdown_file("none"))
    write(r, "sys/kernel/security/lsm", DEBIAN_LSM + ",ipe,ima,evm")
    write(r, "dev/kmsg", debian_log(DEBIAN_612, cmd, [(6, 4105, "secureboot: Secure boot disabled")]))

    # lockdown=confidentiality on the command line, legacy BIOS boot.
    r = out / "debian12-6.12-cmdline-confidentiality"
    cmd = f"BOOT_IMAGE=/boot/vmlinuz-{DEBIAN_612} root=/dev/sda1 ro lockdown=confidentiality quiet"
    base(r, DEBIAN_612, cmd)
    link_config(r, DEBIAN_612)
    write(r, "sys/kernel/boot_params/data", boot_params(0))
    write(r, "sys/kernel/security/lockdown", lockdown_file("confidentiality"))
    write(r, "sys/kernel/security/lsm", DEBIAN_LSM)
    write(r, "dev/kmsg", debian_log(DEBIAN_612, cmd, [
        (5, 96000, "Kernel is locked down from command line; see man kernel_lockdown.7"),
    ]))

    # Raised at run time: booted at integrity by Secure Boot, then
    # `echo confidentiality > /sys/kernel/security/lockdown`.
    r = out / "debian12-6.1-securityfs-confidentiality"
    cmd = f"BOOT_IMAGE=/boot/vmlinuz-{DEBIAN_61} root=/dev/sda1 ro quiet"
    base(r, DEBIAN_61, cmd)
    link_config(r, DEBIAN_61)
    efi(r, 1)
    write(r, "sys/kernel/boot_params/data", boot_params(3))
    write(r, "sys/kernel/security/lockdown", lockdown_file("confidentiality"))
    write(r, "sys/kernel/security/lsm", DEBIAN_LSM)
    write(r, "dev/kmsg", debian_log(DEBIAN_61, cmd, [
        (6, 4105, "secureboot: Secure boot enabled"),
        (5, 4107, "Kernel is locked down from EFI Secure Boot; see man kernel_lockdown.7"),
        (5, 61234567, "Kernel is locked down from securityfs; see man kernel_lockdown.7"),
    ]))

    # Secure Boot on but shim validation disabled (mokutil --disable-validation):
    # the EFI stub treats it as off, so no lockdown.
    r = out / "debian12-6.1-mok-validation-disabled"
    cmd = f"BOOT_IMAGE=/boot/vmlinuz-{DEBIAN_61} root=/dev/sda1 ro quiet"
    base(r, DEBIAN_61, cmd)
    link_config(r, DEBIAN_61)
    efi(r, 1, mok_sb_state=1)
    write(r, "sys/kernel/boot_params/data", boot_params(2))
    write(r, "sys/kernel/security/lockdown", lockdown_file("none"))
    write(r, "sys/kernel/security/lsm", DEBIAN_LSM)
    write(r, "dev/kmsg", debian_log(DEBIAN_61, cmd, [(6, 4105, "secureboot: Secure boot disabled")]))

    # A non-root view: securityfs not mounted, kernel log not readable;
    # only the command line tells the level.
    r = out / "securityfs-absent-cmdline-integrity"
    cmd = f"BOOT_IMAGE=/boot/vmlinuz-{DEBIAN_612} root=/dev/sda1 ro lockdown=integrity"
    base(r, DEBIAN_612, cmd)
    link_config(r, DEBIAN_612)

    # lsm= that drops lockdown on a kernel without SECURITY_LOCKDOWN_LSM_EARLY
    # (Debian's 6.12 config with EARLY switched off, as several distributions
    # build it): the level is set and displayed, but no hook enforces it.
    r = out / "lsm-drops-lockdown"
    cmd = f"BOOT_IMAGE=/boot/vmlinuz-{DEBIAN_612} root=/dev/sda1 ro lockdown=integrity lsm=capability,yama,apparmor,bpf"
    base(r, DEBIAN_612, cmd)
    cfg = (KCONFIG / f"config-{DEBIAN_612}").read_text().replace(
        "CONFIG_SECURITY_LOCKDOWN_LSM_EARLY=y", "# CONFIG_SECURITY_LOCKDOWN_LSM_EARLY is not set")
    write(r, f"boot/config-{DEBIAN_612}", cfg)
    write(r, "sys/kernel/security/lockdown", lockdown_file("integrity"))
    write(r, "sys/kernel/security/lsm", "capability,yama,apparmor,bpf")
    write(r, "dev/kmsg", debian_log(DEBIAN_612, cmd, [
        (5, 96000, "Kernel is locked down from command line; see man kernel_lockdown.7"),
    ]))

    # This project's build host, captured verbatim: forced to integrity by
    # CONFIG_LOCK_DOWN_KERNEL_FORCE_INTEGRITY, not an EFI boot.
    r = out / "host-6.18-kconfig-integrity"
    if host_kmsg is not None:
        base(r, HOST, Path("/proc/cmdline").read_text().strip())
        write(r, "proc/config.gz", gzip.compress((KCONFIG / f"config-{HOST}").read_bytes(), mtime=0))
        write(r, "sys/kernel/security/lockdown", lockdown_file("integrity"))
        write(r, "sys/kernel/security/lsm", "lockdown,capability,landlock,bpf")
        write(r, "sys/kernel/boot_params/data", Path("/sys/kernel/boot_params/data").read_bytes())
        write(r, "dev/kmsg", host_kmsg.read_text())

    # Malformed inputs: each must give one line naming the file, exit 2.
    bad = out / "malformed"
    r = bad / "efivar-short"
    base(r, DEBIAN_61, "ro quiet")
    write(r, f"sys/firmware/efi/efivars/SecureBoot-{EFI_GLOBAL}", bytes([6, 0, 0]))
    r = bad / "cmdline-garbage"
    base(r, DEBIAN_61, "x")
    write(r, "proc/cmdline", b"root=/dev/sda1 \x01\x02\x7f\x00 lockdown=\"integrity\n")
    r = bad / "config-gz-broken"
    base(r, HOST, "ro")
    write(r, "proc/config.gz", gzip.compress(b"CONFIG_X=y\n" * 100)[:40])
    r = bad / "btf-bad-magic"
    base(r, HOST, "ro")
    write(r, "sys/kernel/btf/vmlinux", b"\xeb\x9f" + bytes(64))  # big-endian magic: not ours
    r = bad / "lockdown-file-garbage"
    base(r, DEBIAN_61, "ro")
    write(r, "sys/kernel/security/lockdown", "none integrity confidentiality\n")
    write(r, "sys/kernel/security/lsm", DEBIAN_LSM)
    r = bad / "boot-params-truncated"
    base(r, DEBIAN_61, "ro")
    write(r, "sys/kernel/boot_params/data", bytes(100))
    r = bad / "kconfig-not-a-config"
    base(r, DEBIAN_61, "ro")
    write(r, f"boot/config-{DEBIAN_61}", "CONFIG_A=y\nthis is not kconfig\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host-capture", type=Path, help="a /dev/kmsg capture of the build host")
    args = parser.parse_args()
    for child in HERE.iterdir():
        if child.is_dir():
            if child.name == "host-6.18-kconfig-integrity" and args.host_capture is None:
                continue
            shutil.rmtree(child)
    build(HERE, args.host_capture)


if __name__ == "__main__":
    main()
