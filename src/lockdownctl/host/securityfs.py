"""securityfs: the lockdown level and the list of active LSMs.

``/sys/kernel/security/lockdown`` lists the levels with the current one in
brackets (``none [integrity] confidentiality``); it exists whenever the
lockdown LSM is built in, whether or not its hooks were registered, so the
LSM list (``/sys/kernel/security/lsm``) is what proves enforcement
(docs/kernel-facts.md 0.4, item 1). securityfs is often not mounted; as root we mount it
in a private mount namespace of a child process, never on the host.
"""

from __future__ import annotations

import os

from ..errors import InputError
from ..levels import LEVELS
from ..mountinfo import is_mounted
from ..root import Root, Unreadable, private_mounts

DIR = "sys/kernel/security"
LOCKDOWN = DIR + "/lockdown"
LSM = DIR + "/lsm"


class SecurityFs:
    """What securityfs said: level, offered levels, LSM list, and what was not read."""

    def __init__(self) -> None:
        self.level: str | None = None  # None: could not be read
        self.offered: list[str] = []  # levels the file lists
        self.lsm: list[str] | None = None  # active LSMs in init order
        self.lockdown_file: bool | None = None  # False: securityfs read, no lockdown file
        self.how = ""  # how it was read
        self.notes: list[str] = []


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


def raw_securityfs(root: Root, in_child: bool = False) -> dict[str, str | None]:
    """The raw files as text (plain data, so a child process can send it).

    On the live system, when securityfs is not mounted, it is mounted first in
    a private mount namespace, which changes the calling process's namespace:
    so that only happens when ``in_child`` says this runs in a throw-away child.
    """
    out: dict[str, str | None] = {"how": "securityfs", "note": None}
    if root.live and not is_mounted("/" + DIR, "securityfs"):
        if not in_child:
            out["how"] = ""
            out["note"] = "securityfs is not mounted (read it in a child process)"
            return out
        if os.geteuid() != 0:
            out["how"] = ""
            out["note"] = ("securityfs is not mounted and mounting it privately needs root: "
                           "level and LSM list could not be read")
            return out
        try:
            private_mounts(["securityfs"])
        except OSError as exc:
            out["how"] = ""
            out["note"] = f"securityfs could not be mounted in a private namespace: {exc}"
            return out
        out["how"] = "securityfs (mounted in a private mount namespace)"
    for key, rel in (("lockdown", LOCKDOWN), ("lsm", LSM)):
        value = root.read_text(rel)
        if isinstance(value, Unreadable):
            out["note"] = f"{value.path}: {value.why}"
            value = None
        out[key] = value
    out["present"] = "1" if root.listdir(DIR) else None
    return out


def parse_securityfs(raw: dict[str, str | None], root: Root) -> SecurityFs:
    result = SecurityFs()
    result.how = raw.get("how") or ""
    if raw.get("note"):
        result.notes.append(str(raw["note"]))
    if raw.get("lsm") is not None:
        result.lsm = parse_lsm(raw["lsm"] or "", root.display(LSM))
    if raw.get("lockdown") is not None:
        result.level, result.offered = parse_lockdown(raw["lockdown"] or "", root.display(LOCKDOWN))
        result.lockdown_file = True
    elif raw.get("present"):
        result.lockdown_file = False  # securityfs readable, no lockdown file: LSM not built in
    elif result.how:
        result.notes.append(f"{root.display(DIR)}: securityfs not visible (not mounted in this root)")
        result.how = ""
    return result


def read_securityfs(root: Root) -> SecurityFs:
    """Read securityfs; on the live system in a child process (private mounts)."""
    if root.live:
        from ..root import Child

        return parse_securityfs(Child(lambda: raw_securityfs(root, in_child=True)).result(), root)
    return parse_securityfs(raw_securityfs(root), root)
