"""Kernel configuration options that force a lockdown level or tie it to Secure Boot.

The one table of them: ``status`` (why is this kernel locked down),
``audit`` (does this config lock down) and ``check`` (will the next boot
lock down) all read it. Upstream (v5.4+, security/lockdown/Kconfig) only
knows the ``LOCK_DOWN_KERNEL_FORCE_*`` choice; locking down because the
machine booted with Secure Boot is a distribution patch with a different
option name in each family, and the pre-5.4 patch series had options of its
own. Each row cites the tree it was read in (repository, path, commit).

On the hot path of ``status``: plain tuples, no imports.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

# effect: "force"       the kernel locks down at ``level`` on every boot
#         "secure_boot" the kernel locks down at ``level`` when booted with Secure Boot
#         "none"        the member of the upstream choice that forces nothing
#         "allow"       lockdown exists but nothing here turns it on (lockdown= does)
# (option, effect, level, who, source)
KCONFIG: tuple[tuple[str, str, str, str, str], ...] = (
    ("CONFIG_LOCK_DOWN_KERNEL_FORCE_INTEGRITY", "force", "integrity", "upstream v5.4+",
     "torvalds/linux security/lockdown/Kconfig; security/lockdown/lockdown.c lockdown_lsm_init() "
     "'Kernel configuration'"),
    ("CONFIG_LOCK_DOWN_KERNEL_FORCE_CONFIDENTIALITY", "force", "confidentiality", "upstream v5.4+",
     "torvalds/linux security/lockdown/Kconfig; security/lockdown/lockdown.c lockdown_lsm_init()"),
    ("CONFIG_LOCK_DOWN_KERNEL_FORCE_NONE", "none", "none", "upstream v5.4+",
     "torvalds/linux security/lockdown/Kconfig (the default member of the choice)"),
    # Debian >= 11, Fedora/RHEL >= 9 (kernel-ark), SUSE: "efi: Lock down the kernel if booted in
    # secure boot mode" on the lockdown LSM; Debian's help text says integrity since #1025417.
    ("CONFIG_LOCK_DOWN_IN_EFI_SECURE_BOOT", "secure_boot", "integrity", "Debian, Fedora, RHEL, SUSE",
     "pexip/os-linux debian/patches/features/all/lockdown/efi-lock-down-the-kernel-if-booted-in-secure-"
     "boot-mo.patch @4b6a52437aa7 (lock_kernel_down(\"EFI Secure Boot\", LOCKDOWN_INTEGRITY_MAX)); "
     "openSUSE/kernel security/lockdown/Kconfig @e71837077e76 and drivers/firmware/efi/secureboot.c "
     "@aa187454d2de (arm64: \"EFI Secure Boot mode\")"),
    # Ubuntu >= 20.04: "UBUNTU: SAUCE: (lockdown) ..." renamed the option, also for s390/powerpc.
    ("CONFIG_LOCK_DOWN_IN_SECURE_BOOT", "secure_boot", "integrity", "Ubuntu",
     "proxmox/mirror_ubuntu-focal-kernel arch/x86/kernel/setup.c @7ca05228f713 (#ifdef "
     "CONFIG_LOCK_DOWN_IN_SECURE_BOOT: security_lock_kernel_down(\"EFI Secure Boot mode\", "
     "LOCKDOWN_INTEGRITY_MAX))"),
    # The pre-5.4 series (Debian 10, RHEL 8, Ubuntu 18.04) used the same name with one level.
    # The 2017 series (David Howells, lore 149141204578) called it EFI_SECURE_BOOT_LOCK_DOWN.
    ("CONFIG_EFI_SECURE_BOOT_LOCK_DOWN", "secure_boot", "integrity", "2017 patch series (Fedora, Debian 9 "
     "backports)", "linux-test-project/ltp lib/tst_lockdown.c @d9f88b35a573 (checks it with "
     "CONFIG_LOCK_DOWN_IN_EFI_SECURE_BOOT: 'non-mainline patch from 2017')"),
    # Pre-5.4: one level, printed "Kernel is locked down from config" at every boot. Its one
    # level refused what integrity refuses and more (kprobes, BPF reads, /proc/kcore): at least
    # integrity.
    ("CONFIG_LOCK_DOWN_MANDATORY", "force", "integrity", "pre-5.4 series (RHEL-based OpenVZ, Ubuntu 18.04)",
     "OpenVZ/vzkernel security/Kconfig and security/lock_down.c @2319788ec594; "
     "thekubajx29/ws-bionic security/lock_down.c @4aa496d5e982"),
    # Pre-5.4: only makes lockdown possible (lockdown= on the command line); the Secure Boot
    # option selects it. Not a reason to expect a locked-down kernel.
    ("CONFIG_LOCK_DOWN_KERNEL", "allow", "", "pre-5.4 series (Debian 10, RHEL-based OpenVZ, Ubuntu 18.04)",
     "OpenVZ/vzkernel security/Kconfig @2319788ec594 ('Allow the kernel to be locked down ... can be "
     "triggered by adding lockdown=1'); ParrotSec/linux-parrot debian/patches/features/all/lockdown/"
     "0001-Add-the-ability-to-lock-down-access-to-the-running-k.patch @e20cba76c6c2"),
)

# (option, level) of every option that locks down on every boot, upstream first.
FORCE_OPTIONS: tuple[tuple[str, str], ...] = tuple((o, lvl) for o, eff, lvl, _w, _s in KCONFIG if eff == "force")
# The upstream choice, level -> option (what a config fragment sets).
UPSTREAM_FORCE: dict[str, str] = {lvl: o for o, eff, lvl, who, _s in KCONFIG
                                  if eff == "force" and who.startswith("upstream")}
FORCE_NONE = next(o for o, eff, *_ in KCONFIG if eff == "none")
# Options under which booting with Secure Boot locks down (at integrity, every family).
SECURE_BOOT_OPTIONS: tuple[str, ...] = tuple(o for o, eff, *_ in KCONFIG if eff == "secure_boot")
SECURE_BOOT_LEVEL = "integrity"


def secure_boot_option(get: Callable[[str], str | None]) -> str | None:
    """The Secure Boot lockdown option the config sets to y, if any."""
    return next((o for o in SECURE_BOOT_OPTIONS if get(o) == "y"), None)
