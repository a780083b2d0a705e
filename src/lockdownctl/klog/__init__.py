"""Kernel-log dialects of lockdown: level changes and denials."""

from __future__ import annotations

from ..host.kmsg import LogLine

# lock_kernel_down() (security/lockdown/lockdown.c):
#   "Kernel is locked down from %s; see man kernel_lockdown.7"
# distro spellings of <where> in kernel-facts.md 0.2; SUSE's early shim says
# "Kernel is early locked down from ...". Very old Fedora printed
# "Secure boot enabled and kernel locked down".
LEVEL_SET_PREFIXES = ("Kernel is locked down from ", "Kernel is early locked down from ")
LEVEL_SET_SUFFIX = "; see man kernel_lockdown.7"
OLD_FEDORA = "Secure boot enabled and kernel locked down"

# <where> -> the kind of source status reports.
WHERE_KINDS = {
    "command line": "cmdline",
    "securityfs": "securityfs",
    "kernel configuration": "kconfig",
    "efi secure boot": "secure_boot",
    "efi secure boot mode": "secure_boot",
    "secure ipl mode": "secure_boot",
}


class LevelSet:
    __slots__ = ("kind", "line", "where")

    def __init__(self, where: str, kind: str, line: LogLine) -> None:
        self.where = where  # as printed
        self.kind = kind  # cmdline | securityfs | kconfig | secure_boot | unknown
        self.line = line


# Lines status needs from the kernel log (level changes, the LSM list).
STATUS_MARKERS = ("locked down", "LSM: initializing lsm=")


def status_relevant(text: str) -> bool:
    return any(marker in text for marker in STATUS_MARKERS)


def level_sets(lines: list[LogLine]) -> list[LevelSet]:
    out = []
    for line in lines:
        if "locked down" not in line.text:
            continue
        for prefix in LEVEL_SET_PREFIXES:
            if (pos := line.text.find(prefix)) >= 0:
                where = line.text[pos + len(prefix) :].split(LEVEL_SET_SUFFIX, 1)[0].strip()
                out.append(LevelSet(where, WHERE_KINDS.get(where.lower(), "unknown"), line))
                break
        else:
            if OLD_FEDORA in line.text:
                out.append(LevelSet("EFI secure boot", "secure_boot", line))
    return out
