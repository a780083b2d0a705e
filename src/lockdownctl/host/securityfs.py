"""securityfs: the lockdown level and the list of active LSMs.

``/sys/kernel/security/lockdown`` lists the levels with the current one in
brackets (``none [integrity] confidentiality``); it exists whenever the
lockdown LSM is built in, whether or not its hooks were registered, so the
LSM list (``/sys/kernel/security/lsm``) is what proves enforcement
(kernel-facts.md 0.4.1). securityfs is often not mounted; as root we mount it
in a private mount namespace, never on the host.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..errors import InputError
from ..reasons import LEVELS
from ..root import Root, Unreadable, in_private_mounts, is_mounted

LOCKDOWN = "sys/kernel/security/lockdown"
LSM = "sys/kernel/security/lsm"


@dataclass
class SecurityFs:
    level: str | None = None  # None: could not be read
    offered: list[str] = field(default_factory=list)  # levels the file lists
    lsm: list[str] | None = None  # active LSMs in init order
    lockdown_file: bool | None = None  # False: securityfs read, no lockdown file
    how: str = ""  # how it was read
    notes: list[str] = field(default_factory=list)


def parse_lockdown(text: str, path: str) -> tuple[str, list[str]]:
    words = text.split()
    current = [w[1:-1] for w in words if w.startswith("[") and w.endswith("]")]
    offered = [w.strip("[]") for w in words]
    if len(current) != 1 or not offered or any(w not in LEVELS for w in offered):
        raise InputError(f"{path}: malformed lockdown file: {text.strip()[:80]!r} "
                         "(expected e.g. 'none [integrity] confidentiality')")
    return current[0], offered


def parse_lsm(text: str, path: str) -> list[str]:
    names = [n for n in text.strip().split(",") if n]
    if not names or any(not n.replace("_", "").isalnum() for n in names):
        raise InputError(f"{path}: malformed LSM list: {text.strip()[:80]!r}")
    return names


def _read_live_files() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for key, rel in (("lockdown", LOCKDOWN), ("lsm", LSM)):
        try:
            with open("/" + rel, encoding="utf-8") as fh:
                out[key] = fh.read()
        except FileNotFoundError:
            out[key] = None
    out["present"] = "1" if os.path.isdir("/sys/kernel/security") and os.listdir("/sys/kernel/security") else None
    return out


def read_securityfs(root: Root) -> SecurityFs:
    result = SecurityFs()
    texts: dict[str, str | None]
    if root.live and not is_mounted("/sys/kernel/security", "securityfs"):
        if os.geteuid() != 0:
            result.notes.append("securityfs is not mounted and mounting it privately needs root: "
                                "level and LSM list could not be read")
            return result
        try:
            texts = in_private_mounts(["securityfs"], _read_live_files)
        except OSError as exc:
            result.notes.append(f"securityfs could not be mounted in a private namespace: {exc}")
            return result
        result.how = "securityfs (mounted in a private mount namespace)"
    else:
        texts = {}
        for key, rel in (("lockdown", LOCKDOWN), ("lsm", LSM)):
            value = root.read_text(rel)
            if isinstance(value, Unreadable):
                result.notes.append(f"{value.path}: {value.why}")
                value = None
            texts[key] = value
        texts["present"] = "1" if root.listdir("sys/kernel/security") else None
        result.how = "securityfs"
    if texts.get("lsm") is not None:
        result.lsm = parse_lsm(texts["lsm"] or "", root.display(LSM))
    if texts.get("lockdown") is not None:
        result.level, result.offered = parse_lockdown(texts["lockdown"] or "", root.display(LOCKDOWN))
        result.lockdown_file = True
    elif texts.get("present"):
        result.lockdown_file = False  # securityfs readable, no lockdown file: LSM not built in
    else:
        result.notes.append(f"{root.display('sys/kernel/security')}: securityfs not visible "
                            "(not mounted in this root)")
        result.how = ""
    return result
