"""Kernel-log dialects of lockdown: level changes and denials."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..host.kmsg import LogLine

# lock_kernel_down() (security/lockdown/lockdown.c):
#   "Kernel is locked down from %s; see man kernel_lockdown.7"
# distro spellings of <where> in kernel-facts.md 0.2; SUSE's early shim says
# "Kernel is early locked down from ...".
LEVEL_SET_RE = re.compile(
    r"Kernel is (?P<early>early )?locked down from (?P<where>.+?)(?:; see man kernel_lockdown\.7)?\s*$"
)
OLD_FEDORA_RE = re.compile(r"Secure boot enabled and kernel locked down")

# <where> -> the kind of source status reports.
WHERE_KINDS = {
    "command line": "cmdline",
    "securityfs": "securityfs",
    "kernel configuration": "kconfig",
    "efi secure boot": "secure_boot",
    "efi secure boot mode": "secure_boot",
    "secure ipl mode": "secure_boot",
}


@dataclass(frozen=True)
class LevelSet:
    where: str  # as printed
    kind: str  # cmdline | securityfs | kconfig | secure_boot | unknown
    line: LogLine


def level_sets(lines: list[LogLine]) -> list[LevelSet]:
    out = []
    for line in lines:
        if "locked down" not in line.text:
            continue
        if match := LEVEL_SET_RE.search(line.text):
            where = match.group("where").strip()
            out.append(LevelSet(where, WHERE_KINDS.get(where.lower(), "unknown"), line))
        elif OLD_FEDORA_RE.search(line.text):
            out.append(LevelSet("EFI secure boot", "secure_boot", line))
    return out
