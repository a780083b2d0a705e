"""The ``watch`` summary: denials per reason and per process, level changes, rate limits."""

from __future__ import annotations

from typing import Any

from ..events import Event
from ..reasons import Catalogue, merge

UNPARSED_EXAMPLES = 10
PROCESS_NAMES = 8  # processes listed per reason

# printk of denials: rate-limited (pr_notice_ratelimited) in some trees, once
# per boot (pr_notice_once) in others (docs/kernel-facts.md 0.2).
LOWER_BOUND_NOTE = ("counts are lower bounds: the kernel rate-limited its lockdown messages "
                    "({suppressed} suppressed)")
ONCE_NOTE = ("the kernel prints lockdown denials rate-limited or only once per boot: a missing "
             "line proves nothing, and a count of 1 may stand for many")


# Capability probes: (reason, comm) pairs where the denial is a question, not a failure.
# systemd-logind reads /sys/power/state (and /sys/power/disk) on its Can* D-Bus calls;
# state_show() and disk_show() run hibernation_available() (kernel/power/main.c,
# kernel/power/hibernate.c), which logs a denial each time under lockdown (systemd/systemd#39802).
PROBES = {("hibernation", "systemd-logind"): (
    "a capability probe (logind asking whether hibernation is possible), not a failed hibernate; to silence it "
    "boot with nohibernate: hibernation_available() tests it before asking lockdown (kernel/power/hibernate.c), "
    "so no reader of /sys/power/state logs a denial, and a locked-down kernel cannot hibernate anyway. "
    "AllowHibernation=no, AllowHybridSleep=no and AllowSuspendThenHibernate=no in a sleep.conf.d drop-in stop "
    "only logind's hibernate queries (systemd src/shared/sleep-config.c checks Allow*= first): its suspend "
    "queries still read /sys/power/state")}


class _Probe:
    __slots__ = ("count", "first", "last")

    def __init__(self) -> None:
        self.count = 0
        self.first: float | None = None
        self.last: float | None = None


class _Reason:
    __slots__ = ("audited", "denials", "first", "last", "level", "processes", "side_effects", "what")

    def __init__(self) -> None:
        self.denials = 0
        self.side_effects = 0
        self.audited = 0
        self.processes: dict[str, int] = {}
        self.first: float | None = None
        self.last: float | None = None
        self.level: str | None = None
        self.what: str | None = None


class Summary:
    """Counts over a stream of events; :meth:`to_dict` is the ``watch`` result data."""

    def __init__(self) -> None:
        self.events = 0
        self.denials = 0
        self.side_effects = 0
        self.audited = 0
        self.suppressed = 0
        self.rate_limited = False
        self.unparsed = 0
        self.unparsed_examples: list[dict[str, Any]] = []
        self.level_changes: list[dict[str, Any]] = []
        self.by_reason: dict[str, _Reason] = {}
        self.by_process: dict[str, dict[str, int]] = {}
        self.sources: dict[str, int] = {}
        self.probes: dict[tuple[str, str], _Probe] = {}
        self.tamper: dict[str, dict[str, int]] = {}  # rule -> comm -> refused attempts (the seal's events)

    def add(self, ev: Event) -> None:
        self.events += 1
        self.sources[ev.source] = self.sources.get(ev.source, 0) + 1
        if ev.kind == "denial":
            self._denial(ev)
        elif ev.kind == "level-set":
            self.level_changes.append({"time": ev.time, "wall_time": ev.wall_time, "where": ev.where,
                                       "level": ev.level, "source": ev.source, "lineno": ev.lineno,
                                       "raw": ev.raw})
        elif ev.kind == "ratelimit":
            self.rate_limited = True
            self.suppressed += ev.suppressed or 0
        elif ev.kind == "tamper":
            per = self.tamper.setdefault(ev.what or "?", {})
            per[ev.comm or "(unknown)"] = per.get(ev.comm or "(unknown)", 0) + 1
        else:
            self.unparsed += 1
            if len(self.unparsed_examples) < UNPARSED_EXAMPLES:
                self.unparsed_examples.append({"source": ev.source, "lineno": ev.lineno, "raw": ev.raw})

    def probe_number(self, ev: Event) -> int:
        """For a capability probe already added: how many of its kind so far (1 for the
        first); 0 for any other event. ``watch`` prints the first and folds the rest."""
        if ev.kind != "denial" or ev.dialect == "side-effect":
            return 0
        probe = self.probes.get((ev.reason or "", ev.comm or ""))
        return probe.count if probe is not None else 0

    def _denial(self, ev: Event) -> None:
        key = ev.reason or f"?{ev.what or ''}"
        entry = self.by_reason.get(key)
        if entry is None:
            entry = self.by_reason[key] = _Reason()
            entry.level = ev.level
            entry.what = ev.what if ev.reason is None else None
        if ev.time is not None:
            entry.first = ev.time if entry.first is None else min(entry.first, ev.time)
            entry.last = ev.time if entry.last is None else max(entry.last, ev.time)
        if ev.dialect == "side-effect":
            self.side_effects += 1
            entry.side_effects += 1
            return
        self.denials += 1
        entry.denials += 1
        if ev.verdict == "audited":
            self.audited += 1
            entry.audited += 1
        comm = ev.comm or "(unknown)"
        if (key, comm) in PROBES:
            probe = self.probes.get((key, comm)) or self.probes.setdefault((key, comm), _Probe())
            probe.count += 1
            if ev.time is not None:
                probe.first = ev.time if probe.first is None else min(probe.first, ev.time)
                probe.last = ev.time if probe.last is None else max(probe.last, ev.time)
        entry.processes[comm] = entry.processes.get(comm, 0) + 1
        per = self.by_process.setdefault(comm, {})
        per[key] = per.get(key, 0) + 1

    def to_dict(self, lines: int | None = None, inputs: list[str] | None = None, lost: int = 0,
                cat: Catalogue | None = None) -> dict[str, Any]:
        cat = cat or merge(None)
        reasons = []
        for key, entry in sorted(self.by_reason.items(), key=lambda kv: (-kv[1].denials - kv[1].side_effects,
                                                                          kv[0])):
            reason = None if key.startswith("?") else cat.find(key)
            reasons.append({
                "reason": None if key.startswith("?") else key,
                "what": entry.what,
                "level": entry.level,
                "denials": entry.denials,
                "audited": entry.audited,
                "side_effects": entry.side_effects,
                "processes": dict(sorted(entry.processes.items(), key=lambda kv: (-kv[1], kv[0]))),
                "first_time": entry.first,
                "last_time": entry.last,
                "remedy": reason.remedy if reason else None,
            })
        ranked = sorted(self.by_process.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
        processes = [{"comm": comm, "denials": sum(per.values()),
                      "reasons": dict(sorted(per.items(), key=lambda kv: (-kv[1], kv[0])))}
                     for comm, per in ranked]
        notes = []
        if self.rate_limited:
            notes.append(LOWER_BOUND_NOTE.format(suppressed=self.suppressed))
        elif self.denials:
            notes.append(ONCE_NOTE)
        if lost:
            notes.append(f"{lost} kernel log records were overwritten before they could be read")
        return {
            "inputs": inputs or [],
            "lines": lines,
            "events": self.events,
            "denials": self.denials,
            "audited": self.audited,
            "side_effects": self.side_effects,
            "level_changes": self.level_changes,
            "by_reason": reasons,
            "by_process": processes,
            "rate_limited": self.rate_limited,
            "suppressed": self.suppressed,
            "lower_bound": self.rate_limited,
            "unparsed": self.unparsed,
            "unparsed_examples": self.unparsed_examples,
            "lost_records": lost,
            "probes": [{"reason": reason, "comm": comm, "count": p.count, "first_time": p.first,
                        "last_time": p.last, "remedy": PROBES[(reason, comm)]}
                       for (reason, comm), p in self.probes.items()],
            "notes": notes,
            "tamper_attempts": sum(sum(per.values()) for per in self.tamper.values()),
            "tamper": [{"rule": rule, "attempts": sum(per.values()),
                        "processes": dict(sorted(per.items(), key=lambda kv: (-kv[1], kv[0])))}
                       for rule, per in sorted(self.tamper.items())],
        }
