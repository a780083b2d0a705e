"""Raise the running kernel's level through securityfs (``enable LEVEL --now``).

The kernel only ever raises the level (lock_kernel_down() refuses a level that
is not higher, until reboot), so asking for the current level or a lower one
is refused with that explanation instead of an EPERM. securityfs is mounted,
when it is not, in a private mount namespace of a child process: the host's
mount table is never changed.
"""

from __future__ import annotations

from typing import Any

from ..errors import FeatureMissing, InputError, NeedsRoot
from ..levels import level_rank
from ..root import Child, Root, private_mounts

LOCKDOWN = "/sys/kernel/security/lockdown"


def _write(level: str) -> dict[str, Any]:
    """In a child: mount securityfs privately (read-write) if needed, write, read back."""
    private_mounts(["securityfs"], writable=("securityfs",))
    try:
        with open(LOCKDOWN, "w", encoding="ascii") as fh:
            fh.write(level)
    except OSError as exc:
        return {"ok": False, "error": f"{LOCKDOWN}: {exc.strerror}", "after": _read()}
    return {"ok": True, "error": None, "after": _read()}


def _read() -> str | None:
    try:
        with open(LOCKDOWN, encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        return None


def raise_now(root: Root, level: str, status: dict[str, Any], dry_run: bool) -> dict[str, Any]:
    """Plan and (unless dry_run) do the write; the ``now`` part of the result."""
    if not root.live:
        raise InputError("--now acts on the running kernel: it cannot be combined with --root")
    current = status.get("level")
    out: dict[str, Any] = {"from": current, "to": level, "written": False, "after": None, "refused": None}
    if status["lsm"]["lockdown_active"] is False:
        raise FeatureMissing("the lockdown LSM is not active on the running kernel: writing a level would "
                             "change nothing it enforces (add lockdown to lsm= on the kernel command line)")
    if status.get("offered") and level not in status["offered"]:
        raise FeatureMissing(f"{LOCKDOWN} does not offer {level} on this kernel (offers: "
                             f"{', '.join(status['offered'])})")
    if current is None:
        if dry_run and not _is_root():
            out["plan"] = f"write {level} to {LOCKDOWN} (current level unknown: securityfs not readable)"
            return out
        if not _is_root():
            raise NeedsRoot(f"--now writes {LOCKDOWN}: run as root")
        raise FeatureMissing(f"{LOCKDOWN} could not be read: " + "; ".join(status.get("notes", [])[:1]))
    if level_rank(level) <= level_rank(current):
        out["refused"] = (f"the running kernel is already at {current}: lockdown levels only go up until "
                          f"reboot, so {level} cannot be set now"
                          + ("" if level == current else f" (that would lower it from {current})"))
        return out
    out["plan"] = f"write {level} to {LOCKDOWN} (from {current}; cannot be undone until reboot)"
    if dry_run:
        return out
    if not _is_root():
        raise NeedsRoot(f"--now writes {LOCKDOWN}: run as root")
    result = Child(lambda: _write(level)).result()
    out["written"] = result["ok"]
    out["after"] = result["after"]
    out["error"] = result["error"]
    return out


def _is_root() -> bool:
    import os

    return os.geteuid() == 0
