"""One record for everything ``watch`` reports: kernel-log lines and enforcer events.

The kernel-log parser (``klog/parser.py``) and the BPF enforcer's ring buffer
both produce :class:`Event`, so ``watch`` can show them side by side
(:func:`merge` orders finished streams by time since boot).

A plain class (no dataclass, no __slots__): the parser builds events from a
cached dict per message text (:meth:`Event.from_fields`), which keeps
``watch`` near ``grep``'s speed on large logs.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from typing import Any

KINDS = ("denial", "level-set", "ratelimit", "unparsed", "tamper")
SOURCES = ("file", "stdin", "kmsg", "journal", "enforcer")
DIALECTS = ("upstream", "pre-5.4", "suse-early", "side-effect", "selinux-avc", "level-set", "ratelimit", "enforcer",
            "seal")
VERDICTS = ("denied", "audited")

FIELDS = ("kind", "source", "dialect", "time", "wall_time", "comm", "pid", "uid", "cgroup_id", "exe", "reason",
          "what", "level", "verdict", "where", "suppressed", "raw", "lineno")


class Event:
    """One lockdown event. Fields (all JSON-able; None when not known):

    kind        "denial" | "level-set" | "ratelimit" | "unparsed" (a line that looks
                like lockdown but matches no known dialect: counted, never dropped) |
                "tamper" (the seal refused a way to lower the enforced policy; ``what`` is
                the rule, see lockdownctl/bpf/seal.py RULES)
    source      where it was read: "file" | "stdin" | "kmsg" | "journal" | "enforcer"
    dialect     how it was printed: "upstream" (``Lockdown: <comm>: <what> is restricted``,
                v5.4+), "pre-5.4" (distro backports: no comm or old phrases),
                "suse-early" (``Lockdown early:``), "side-effect" (a message that means a
                denial happened, e.g. ``Could not create tracefs``), "selinux-avc"
                (``tclass=lockdown``), "level-set", "ratelimit", "enforcer", "seal" (tamper
                attempts); None for unparsed
    time        seconds since boot (printk timestamp, or the enforcer's CLOCK_MONOTONIC)
    wall_time   ISO 8601 wall-clock time when the source gives one (journal, ``dmesg -T``,
                RFC 3339 syslog)
    comm        process name as the kernel printed it (task comm, at most 15 characters)
    pid         process (thread) id: SELinux AVC, printk caller id ``[T123]``, enforcer
    uid         user id (enforcer)
    cgroup_id   cgroup v2 id (enforcer)
    exe         executable path (enforcer, when it resolved it)
    reason      catalogue id (``lockdownctl explain REASON``), None if unknown
    what        the phrase as printed: the reason string of a ``Lockdown:`` line, or the
                object of a side effect (module name, tracefs entry, tracer)
    level       denials: the level that denies ``reason`` ("integrity" or
                "confidentiality"); level-set: the new level when the line implies it
    verdict     denials: "denied", or "audited" (let through: enforcer audit mode,
                SELinux permissive); None for other kinds
    where       level-set: where the level came from as printed ("command line",
                "securityfs", "Kernel configuration", "EFI Secure Boot", "sysrq", ...)
    suppressed  ratelimit: how many messages the kernel's rate limit swallowed
    raw         the input line (cut to ``RAW_MAX`` characters)
    lineno      line number in a file or stdin (None for live sources)
    """

    kind: str
    source: str
    dialect: str | None
    time: float | None
    wall_time: str | None
    comm: str | None
    pid: int | None
    uid: int | None
    cgroup_id: int | None
    exe: str | None
    reason: str | None
    what: str | None
    level: str | None
    verdict: str | None
    where: str | None
    suppressed: int | None
    raw: str
    lineno: int | None

    def __init__(self, kind: str, source: str, dialect: str | None, raw: str = "", *,
                 time: float | None = None, wall_time: str | None = None, comm: str | None = None,
                 pid: int | None = None, uid: int | None = None, cgroup_id: int | None = None,
                 exe: str | None = None, reason: str | None = None, what: str | None = None,
                 level: str | None = None, verdict: str | None = None, where: str | None = None,
                 suppressed: int | None = None, lineno: int | None = None) -> None:
        # Assigned in FIELDS order: to_dict() is a copy of __dict__.
        self.kind = kind
        self.source = source
        self.dialect = dialect
        self.time = time
        self.wall_time = wall_time
        self.comm = comm
        self.pid = pid
        self.uid = uid
        self.cgroup_id = cgroup_id
        self.exe = exe
        self.reason = reason
        self.what = what
        self.level = level
        self.verdict = verdict
        self.where = where
        self.suppressed = suppressed
        self.raw = raw
        self.lineno = lineno

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> Event:
        """An event from a complete FIELDS dict (taken over, not copied): the
        parser's fast path, which fills a cached template per message text."""
        event = cls.__new__(cls)
        event.__dict__ = fields
        return event

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        """The inverse of :meth:`to_dict` (unknown keys are ignored); ValueError names what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("an event must be a JSON object")
        kind, source = data.get("kind"), data.get("source")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        if source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, not {source!r}")
        dialect = data.get("dialect")
        if dialect is not None and dialect not in DIALECTS:
            raise ValueError(f"dialect must be one of {', '.join(DIALECTS)}, not {dialect!r}")
        verdict = data.get("verdict")
        if verdict is not None and verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, not {verdict!r}")
        t = data.get("time")
        if t is not None and (isinstance(t, bool) or not isinstance(t, int | float)):
            raise ValueError("time must be a number of seconds since boot")
        for name in ("pid", "uid", "cgroup_id", "suppressed", "lineno"):
            value = data.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"{name} must be an integer")
        for name in ("wall_time", "comm", "exe", "reason", "what", "level", "where", "raw"):
            value = data.get(name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name} must be a string")
        # Extra keys (the enforcer adds exe_id, cgroup, tid) are not part of the record.
        rest = {k: v for k, v in data.items() if k in FIELDS and k not in ("kind", "source", "dialect", "raw")}
        return cls(kind, source, dialect, data.get("raw") or "", **rest)

    def __repr__(self) -> str:
        return f"Event({self.kind!r}, {self.source!r}, {self.dialect!r}, reason={self.reason!r}, time={self.time!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Event) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


def _time_key(event: Event) -> float:
    return event.time if event.time is not None else float("-inf")


def merge(*streams: Iterable[Event]) -> Iterator[Event]:
    """Events of several time-ordered streams (kernel log, enforcer) in time order.

    Both clocks count from boot and stop during suspend (printk's local
    clock; the enforcer must stamp with ``bpf_ktime_get_ns``, CLOCK_MONOTONIC,
    not the boot-time clock), so they interleave directly. Within one
    stream the order is kept; an event without a time goes out as soon as
    its stream reaches it.
    """
    return heapq.merge(*streams, key=_time_key)
