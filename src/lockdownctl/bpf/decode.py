"""Ring-buffer records of the enforcer and of the seal -> the shared event record (lockdownctl.events).

The enforcer's records (struct ld_event) are denials and audits; the seal's
(struct ld_tamper_event) are refused tamper attempts, kind "tamper".
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

from ..events import Event
from .abi import LD_DENY, LdEvent, dev_text, kernel_dev
from .resolve import cgroup2_mount
from .seal import RULES, LdTamperEvent

MAX_DEBUGFS_FILES = 100_000  # a bound on the walk that names a debugfs file in an event

EXE_CACHE = 4096


class EventDecoder:
    """Ring-buffer records -> the shared event record (lockdownctl.events)."""

    def __init__(self, cat: Any) -> None:
        self.by_value = {r.value: r for r in cat.reasons if r.value is not None}
        self._cgroups: dict[int, str] | None = None
        self._exes: dict[tuple[int, int, int], str | None] = {}  # (pid, exe dev, exe inode) -> path or None
        self._files: dict[tuple[int, int], str] | None = None

    def file_path(self, kdev: int, ino: int) -> str | None:
        """The debugfs file a check was about (path exceptions loaded), found by
        (dev, inode) below the debugfs mounts; None when it is gone."""
        if self._files is None:
            self._files = {}
            from ..mountinfo import mounts

            seen = 0
            for point, fstype in mounts():
                if fstype != "debugfs":
                    continue
                for dirpath, dirs, files in os.walk(point):
                    if dirpath == point:  # tracing/ is tracefs (an automount a stat would trigger)
                        dirs[:] = [d for d in dirs if d != "tracing"]
                    for name in files:
                        seen += 1
                        if seen > MAX_DEBUGFS_FILES:
                            break
                        try:
                            st = os.stat(os.path.join(dirpath, name))
                        except OSError:
                            continue
                        self._files.setdefault((kernel_dev(st.st_dev), st.st_ino), os.path.join(dirpath, name))
        return self._files.get((kdev, ino))

    def cgroup_path(self, cgid: int) -> str | None:
        if self._cgroups is None:
            self._cgroups = {}
            try:
                mount = cgroup2_mount()
                for dirpath, _dirs, _files in os.walk(mount):
                    self._cgroups[os.stat(dirpath).st_ino] = "/" + os.path.relpath(dirpath, mount).lstrip(".")
            except Exception:
                pass
        return self._cgroups.get(cgid)

    def decode(self, raw: bytes) -> dict[str, Any]:
        """The event as a dict: the shared record plus the enforcer's own fields."""
        event, rec = self._event(raw)
        out = event.to_dict()
        out["exe_id"] = f"{dev_text(rec.exe_dev)}:{rec.exe_ino}"
        out["cgroup"] = self.cgroup_path(rec.cgroup_id)
        out["tid"] = rec.tid
        out["reason_value"] = rec.reason
        out["file_id"] = f"{dev_text(rec.file_dev)}:{rec.file_ino}" if rec.file_ino else None
        out["file"] = self.file_path(rec.file_dev, rec.file_ino) if rec.file_ino else None
        return out

    def event(self, raw: bytes) -> Event:
        """The shared record alone (what ``watch`` merges with kernel-log events)."""
        return self._event(raw)[0]

    def _event(self, raw: bytes) -> tuple[Event, LdEvent]:
        rec = LdEvent.from_buffer_copy(raw[: ctypes.sizeof(LdEvent)])
        reason = self.by_value.get(rec.reason)
        key = (rec.pid, rec.exe_dev, rec.exe_ino)
        if key in self._exes:
            exe = self._exes[key]
        else:
            exe = exe_path(rec.pid, rec.exe_dev, rec.exe_ino)
            # A flood of denials comes from few processes: two syscalls per event were
            # most of the decoding (tests/vm/test_flood.py). Bounded: a fresh dict when full.
            if len(self._exes) >= EXE_CACHE:
                self._exes.clear()
            self._exes[key] = exe
        event = Event("denial", "enforcer", "enforcer", time=rec.time_ns / 1e9,
                      comm=rec.comm.decode("utf-8", "replace"), pid=rec.pid, uid=rec.uid, cgroup_id=rec.cgroup_id,
                      exe=exe, reason=reason.id if reason else None, what=reason.log if reason else None,
                      level=reason.level if reason else None,
                      verdict="denied" if rec.verdict == LD_DENY else "audited")
        return event, rec


def exe_path(pid: int, dev: int, ino: int) -> str | None:
    """The executable's path from /proc, only when its identity is the one the
    kernel recorded (the process may be gone, or its pid reused)."""
    if not ino:
        return None
    try:
        path = os.readlink(f"/proc/{pid}/exe")
        st = os.stat(f"/proc/{pid}/exe")
    except OSError:
        return None
    return path if st.st_ino == ino and kernel_dev(st.st_dev) == dev else None


class TamperDecoder:
    """The seal's ring-buffer records -> events of kind "tamper"."""

    def __init__(self, cgroups: EventDecoder) -> None:
        self.cgroups = cgroups  # shares the cgroup id -> path cache

    def decode(self, raw: bytes) -> dict[str, Any]:
        event, rec = self._event(raw)
        out = event.to_dict()
        rule = RULES[rec.rule] if rec.rule < len(RULES) else None
        out["rule"] = rule.name if rule else None
        out["rule_value"] = rec.rule
        out["hook"] = rule.hook if rule else None
        out["object"] = object_text(rule.object if rule else "?", rec.object)
        out["detail"] = rec.detail
        out["exe_id"] = f"{dev_text(rec.exe_dev)}:{rec.exe_ino}" if rec.exe_ino else None
        out["cgroup"] = self.cgroups.cgroup_path(rec.cgroup_id)
        out["tid"] = rec.tid
        return out

    def event(self, raw: bytes) -> Event:
        return self._event(raw)[0]

    def _event(self, raw: bytes) -> tuple[Event, LdTamperEvent]:
        rec = LdTamperEvent.from_buffer_copy(raw[: ctypes.sizeof(LdTamperEvent)])
        rule = RULES[rec.rule] if rec.rule < len(RULES) else None
        name = rule.name if rule else f"rule {rec.rule}"
        what = rule.route if rule else "a rule this lockdownctl does not know"
        obj = object_text(rule.object if rule else "?", rec.object)
        comm = rec.comm.decode("utf-8", "replace")
        event = Event("tamper", "enforcer", "seal", f"seal refused {name} ({what}; {obj}) from {comm}[{rec.pid}]",
                      time=rec.time_ns / 1e9, comm=comm, pid=rec.pid, uid=rec.uid, cgroup_id=rec.cgroup_id,
                      exe=exe_path(rec.pid, rec.exe_dev, rec.exe_ino), what=name, verdict="denied")
        return event, rec


def object_text(kind: str, value: int) -> str:
    if kind == "device":
        return f"device {dev_text(value)}"
    if kind == "-":
        return "-"
    return f"{kind} {value}"


def buffered_events(cat: Any) -> list[Event]:
    """Consume what the pinned enforcer's ring buffer holds (its events go to
    one reader: read here, they are gone from ``enforce events``)."""
    from ..errors import FeatureMissing
    from . import libbpf
    from .enforcer import Enforcer, require_root

    require_root()
    enforcer = Enforcer.open_pinned()
    if enforcer is None:
        raise FeatureMissing("the enforcer is not loaded (lockdownctl enforce apply FILE loads it)")
    decoder = EventDecoder(cat)
    out: list[Event] = []
    try:
        for fd, decode in ((enforcer.fds["events"], decoder.event),
                           (open_tamper_events(), TamperDecoder(decoder).event)):
            if fd is None:
                continue
            ring = libbpf.RingBuffer(fd, lambda raw, decode=decode: out.append(decode(raw)))  # type: ignore[misc]
            try:
                ring.consume()
            finally:
                ring.close()
                if fd != enforcer.fds["events"]:
                    os.close(fd)
    finally:
        enforcer.close()
    return sorted(out, key=lambda e: e.time or 0.0)


def open_tamper_events() -> int | None:
    """The seal's ring buffer (None: not sealed); exit 3 when it cannot be opened."""
    from ..errors import FeatureMissing
    from .seal import open_events

    try:
        return open_events()
    except OSError as exc:
        raise FeatureMissing(f"the seal's tamper events cannot be read: {exc.strerror or exc}") from None


def render_event(e: dict[str, Any]) -> str:
    if e["kind"] == "tamper":
        return (f"[{e['time']:12.6f}] {'TAMPER':8} {e['rule'] or e['rule_value']:18} pid {e['pid']} "
                f"({e['comm']}) uid {e['uid']} exe {e['exe'] or e['exe_id'] or '?'} "
                f"cgroup {e['cgroup'] or e['cgroup_id']}: refused {e['hook']} ({e['object']})")
    who = e["exe"] or e["exe_id"]
    line = (f"[{e['time']:12.6f}] {e['verdict']:8} {e['reason'] or e['reason_value']:18} pid {e['pid']} "
            f"({e['comm']}) uid {e['uid']} exe {who} cgroup {e['cgroup'] or e['cgroup_id']}")
    if e.get("file_id"):
        line += f" file {e['file'] or e['file_id']}"
    return line
