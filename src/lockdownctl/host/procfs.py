"""Processes: what each one holds open (``/proc/PID/fd``) or has mapped
(``/proc/PID/maps``), its executable and its name.

Only long-running users show up here (docs/kernel-facts.md 2.3); batch tools are
found through units, configs and packages. A fixture root holds the same
layout: ``proc/PID/fd/N`` symlinks (read, never followed), ``fdinfo/N``,
``maps``, ``comm``, ``exe``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..root import Root

if TYPE_CHECKING:
    from collections.abc import Callable

O_ACCMODE = 3
ACCESS = {0: "r", 1: "w", 2: "rw"}


class ProcHit:
    """One process holding or mapping an object a matcher asked for."""

    __slots__ = ("access", "comm", "exe", "fd", "path", "pid", "via")

    def __init__(self, pid: int, comm: str, exe: str, via: str, path: str, fd: int | None, access: str) -> None:
        self.pid = pid
        self.comm = comm
        self.exe = exe
        self.via = via  # "fd" or "map"
        self.path = path
        self.fd = fd
        self.access = access  # "r", "w", "rw" or "" (unknown)

    @property
    def where(self) -> str:
        if self.via == "fd":
            return f"/proc/{self.pid}/fd/{self.fd}"
        return f"/proc/{self.pid}/maps"

    def to_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__slots__}


def pids(root: Root) -> list[int]:
    return sorted(int(name) for name in root.listdir("proc") if name.isdigit())


def _text(root: Root, rel: str) -> str:
    value = root.read_text(rel)
    return value if isinstance(value, str) else ""


def fd_access(root: Root, pid: int, fd: int) -> str:
    """Access mode from ``fdinfo`` (``flags:`` is octal)."""
    for line in _text(root, f"proc/{pid}/fdinfo/{fd}").splitlines():
        if line.startswith("flags:"):
            try:
                return ACCESS.get(int(line.split()[1], 8) & O_ACCMODE, "")
            except (IndexError, ValueError):
                return ""
    return ""


def fdinfo(root: Root, pid: int, fd: int) -> dict[str, str]:
    out = {}
    for line in _text(root, f"proc/{pid}/fdinfo/{fd}").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def scan(
    root: Root, wanted: Callable[[str], bool], maps_hint: tuple[str, ...] = ("/dev/", "/sys/", "/proc/")
) -> list[ProcHit]:
    """Every fd and mapping whose target ``wanted`` accepts, in pid order.

    ``maps_hint``: substrings a mapped path must contain to be tested at all
    (most mappings are libraries; this keeps the scan linear and cheap).
    """
    hits: list[ProcHit] = []
    for pid in pids(root):
        base = f"proc/{pid}"
        found: list[tuple[str, str, int | None]] = []
        for name in root.listdir(base + "/fd"):
            target = root.readlink(f"{base}/fd/{name}")
            if target is not None and wanted(target):
                found.append(("fd", target, int(name) if name.isdigit() else None))
        seen = set()
        for line in _text(root, base + "/maps").splitlines():
            fields = line.split(None, 5)
            if len(fields) == 6:
                path = fields[5]
                if path not in seen and any(h in path for h in maps_hint) and wanted(path):
                    seen.add(path)
                    found.append(("map", path, None))
        if not found:
            continue
        comm = _text(root, base + "/comm").strip()
        exe = root.readlink(base + "/exe") or ""
        for via, path, fd in found:
            if via == "fd" and fd is not None:
                access = fd_access(root, pid, fd)
            else:
                perms = next(
                    (
                        ln.split()[1]
                        for ln in _text(root, base + "/maps").splitlines()
                        if ln.endswith(path) and len(ln.split()) > 1
                    ),
                    "",
                )
                access = "rw" if "w" in perms else "r" if perms else ""
            hits.append(ProcHit(pid, comm, exe, via, path, fd, access))
    return hits
