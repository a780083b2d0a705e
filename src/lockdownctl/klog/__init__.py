"""Kernel-log dialects of lockdown: the level-set and LSM-list lines.

The grammar of every lockdown line lives in this package: the denials, side
effects, SELinux records and rate-limit notices in ``parser.py`` (which uses
regular expressions), the lines ``status`` needs on its start-up path here
(plain string operations, no ``re``). ``parser.classify`` reads level-set
lines through :func:`level_set`, so there is one reading of each line.

Level-set lines (security/lockdown/lockdown.c lock_kernel_down()):
``Kernel is locked down from <where>; see man kernel_lockdown.7``, where
<where> names who locked it; the pre-5.4 series and the distribution
patches spell it differently (table below). Debian ends the line with ``;
see https://wiki.debian.org/SecureBoot`` instead (ParrotSec/linux-parrot
debian/patches/features/all/lockdown/lockdown-refer-to-debian-wiki-until-
manual-page-exists.patch @5a4d0ac11141), SUSE's early-boot shim says
``Kernel is early locked down from ...``, very old Fedora ``Secure boot
enabled and kernel locked down`` (rhuefi/qemu-ovmf-secureboot#14), and the
distribution SysRq escape ``Lifting lockdown`` (CONFIG_ALLOW_LOCKDOWN_LIFT_BY_SYSRQ,
ParrotSec/linux-parrot debian/patches/features/all/lockdown/0002-Add-a-SysRq-
option-to-lift-kernel-lockdown.patch).
"""

from __future__ import annotations

from ..host.kmsg import LogLine
from ..kfacts import FORCE_OPTIONS, SECURE_BOOT_LEVEL, SECURE_BOOT_OPTIONS

LEVEL_SET_PREFIXES = ("Kernel is locked down from ", "Kernel is early locked down from ")
# Every known ending: "; see man kernel_lockdown.7", Debian's "; see https://wiki.debian.org/SecureBoot".
LEVEL_SET_SEE = "; see "
OLD_FEDORA = "Secure boot enabled and kernel locked down"
SYSRQ_LIFT = "Lifting lockdown"

# <where> (lower case) -> the kind of source status reports. The Secure Boot
# patches all lock at integrity (kfacts.SECURE_BOOT_OPTIONS).
WHERE_KINDS = {
    "command line": "cmdline",  # lockdown_param()
    "securityfs": "securityfs",  # lockdown_write()
    "kernel configuration": "kconfig",  # lockdown_lsm_init(), CONFIG_LOCK_DOWN_KERNEL_FORCE_*
    "config": "kconfig",  # pre-5.4 CONFIG_LOCK_DOWN_MANDATORY (OpenVZ/vzkernel security/lock_down.c)
    "efi secure boot": "secure_boot",  # Debian >= 11 "EFI Secure Boot", pre-5.4 "EFI secure boot"
    "efi secure boot mode": "secure_boot",  # Ubuntu, RHEL >= 9, SUSE arm64
    "secure ipl mode": "secure_boot",  # s390 (Ubuntu, RHEL)
}

# The line that lists the LSMs initialised at boot (security/security.c ordered_lsm_init()).
LSM_INIT = "LSM: initializing lsm="


class LevelSet:
    __slots__ = ("kind", "level", "line", "where")

    def __init__(self, where: str, kind: str, line: LogLine, level: str | None = None) -> None:
        self.where = where  # as printed
        self.kind = kind  # cmdline | securityfs | kconfig | secure_boot | sysrq | unknown
        self.level = level  # what the line itself says about the level (None: it does not say)
        self.line = line


def level_set(text: str) -> tuple[str, str, str | None] | None:
    """(where, kind, level) of a level-set message, None if ``text`` is not one.

    ``level`` is only what the line proves: integrity for the Secure Boot
    patches, none for a SysRq lift, None for the rest (the line does not say).
    """
    if "locked down" in text:
        for prefix in LEVEL_SET_PREFIXES:
            if (pos := text.find(prefix)) >= 0:
                where = text[pos + len(prefix) :].split(LEVEL_SET_SEE, 1)[0].strip()
                kind = WHERE_KINDS.get(where.lower(), "unknown")
                return where, kind, SECURE_BOOT_LEVEL if kind == "secure_boot" else None
        if OLD_FEDORA in text:
            return "EFI secure boot", "secure_boot", SECURE_BOOT_LEVEL
    if SYSRQ_LIFT in text:
        return "sysrq", "sysrq", "none"
    return None


def lsm_list(text: str) -> list[str] | None:
    """The LSM names of an ``LSM: initializing lsm=`` message, None if ``text`` is not one."""
    if LSM_INIT not in text:
        return None
    return [n for n in text.split(LSM_INIT, 1)[1].strip().split(",") if n]


# Lines status needs from the kernel log (level changes, the LSM list).
STATUS_MARKERS = ("locked down", LSM_INIT)


def status_relevant(text: str) -> bool:
    return any(marker in text for marker in STATUS_MARKERS)


def level_sets(lines: list[LogLine]) -> list[LevelSet]:
    """The lines that say who locked the kernel down, in order (a SysRq lift lowers
    the level and locks nothing: status reads the level from securityfs)."""
    out = []
    for line in lines:
        found = level_set(line.text)
        if found is not None and found[1] != "sysrq":
            out.append(LevelSet(found[0], found[1], line, found[2]))
    return out


# Who locked the kernel down, by the kind of a level-set line's <where>.
_BY = {
    "secure_boot": "by Secure Boot (the distribution's patch: {sb})",
    "cmdline": "by lockdown= on the kernel command line",
    "kconfig": "by the kernel configuration ({force})",
    "securityfs": "at run time through /sys/kernel/security/lockdown",
}


def level_answer(where: str, level: str | None) -> str:
    """What a level-set line says, in one sentence (explain prints it, check notes it)."""
    kind = "sysrq" if where == "sysrq" else WHERE_KINDS.get(where.lower(), "unknown")
    if kind == "sysrq":
        return "lockdown was lifted with the distribution's SysRq key: the level is none until the next boot"
    by = _BY.get(kind, f"from {where!r}").format(sb=", ".join(SECURE_BOOT_OPTIONS),
                                                 force=", ".join(o for o, _ in FORCE_OPTIONS))
    if level:
        return f"this kernel was locked down to {level} {by}"
    return f"this kernel was locked down {by} (the line does not say the level: /sys/kernel/security/lockdown does)"


def ratelimit_answer(suppressed: int | None, func: str | None) -> str:
    return (f"the kernel suppressed {suppressed} lockdown messages ({func}): counts read from the log are "
            "lower bounds")
