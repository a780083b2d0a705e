"""The check engine: runs detectors over a Root, applies the preconditions,
and builds the readiness report. Knows nothing about any one area: the
detectors (one module per area, registered in ``checks/__init__.py``) know
what to look for, the reason catalogue knows what each reason means.

A finding is static (seen in files, processes, the kernel log) or
``observed`` (measured by the enforcer in audit mode: process, executable,
reason, count; see :func:`merge_observed`). Both have the same shape.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ..host.cmdline import Cmdline, read_cmdline
from ..host.kconfig import KConfig, read_kconfig
from ..host.kmsg import LogLine, read_kernel_log
from ..host.modules import ConfLine, read_modprobe
from ..host.packages import DPKG_STATUS, Packages, read_packages
from ..host.procfs import ProcHit, pids, scan
from ..host.systemd import Unit, read_units
from ..levels import LEVELS, level_rank
from ..reasons import Catalogue, Reason
from ..root import Root, Unreadable

CONFIDENCE = ("breaks", "likely", "info")

if TYPE_CHECKING:
    from ..state.types import Status


@dataclass
class Evidence:
    kind: str  # file | process | module | log | kconfig | cmdline | package | sysfs | efivar | unit
    where: str  # "path:line", "/proc/PID/fd/N", "/dev/kmsg [12.3]", ...
    text: str  # the line, the target, the value

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "where": self.where, "text": self.text}


@dataclass
class Finding:
    detector: str
    reason: str  # catalogue id
    level: str  # the lowest level at which the kernel denies ``reason``
    confidence: str  # breaks | likely | info
    title: str
    evidence: list[Evidence]
    symptom: str  # what the user will see
    remedy: str
    policy: str | None  # enforcer policy snippet (docs/design.md section 3) that keeps it working
    subject: dict[str, Any] = field(default_factory=dict)  # pid, exe, module, unit, path...
    requires: tuple[str, ...] = ()  # kconfig options (any of) without which it cannot occur
    source: str = "static"  # static | observed
    count: int | None = None  # observed: denials counted
    note: str = ""  # why the engine changed it (precondition)
    exposes: str = ""  # what the proposed ``policy`` lets root defeat (protection.exposure)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "detector": self.detector,
            "reason": self.reason,
            "level": self.level,
            "confidence": self.confidence,
            "title": self.title,
            "evidence": [e.to_dict() for e in self.evidence],
            "symptom": self.symptom,
            "remedy": self.remedy,
            "policy": self.policy,
            "subject": self.subject,
            "source": self.source,
        }
        if self.count is not None:
            out["count"] = self.count
        if self.note:
            out["note"] = self.note
        if self.exposes:
            out["exposes"] = self.exposes
        return out


Detector = Callable[["Context"], Iterable[Finding]]

_NAME_RE = re.compile(r"[^a-z0-9_-]+")


def policy_name(text: str) -> str:
    return _NAME_RE.sub("-", os.path.basename(text).lower()).strip("-") or "exception"


def exception_yaml(allow: Iterable[str], exe: str = "", cgroup: str = "", name: str = "") -> str:
    """``exceptions: [{name: x, exe: /usr/bin/x, allow: [msr]}]`` (docs/design.md section 3)."""
    who = f"exe: {exe}" if exe else f"cgroup: {cgroup}"
    return f"exceptions: [{{name: {name or policy_name(exe or cgroup)}, {who}, allow: [{', '.join(allow)}]}}]"


def path_exception_yaml(path: str, allow: str, name: str = "") -> str:
    """A path exception: one debugfs file for any opener (kernel at none; lockdownctl-policy(5))."""
    return f"exceptions: [{{name: {name or policy_name(path)}, path: {path}, allow: [{allow}]}}]"


def reason_yaml(reason: str, verdict: str = "allow") -> str:
    """A per-reason override, for what no single program owns (boot-time resume)."""
    return f"reasons: {{{reason}: {verdict}}}"


def proposal(reason: Reason, policy: str | None) -> tuple[str | None, str]:
    """A detector's proposed policy snippet, checked against the bypass graph: (the
    snippet to offer, what it exposes). Exceptions are by executable or cgroup only
    (``exception_yaml``): comm and uid exceptions are every root process's. A reason
    the kernel never checks in the requesting program cannot be excepted per program:
    the per-reason override is proposed instead, and says so."""
    from ..protection import checked_in_text, exposure, path_exposure

    if policy is None:
        return None, ""
    if ", path: " in policy:
        return policy, path_exposure(policy.split(", path: ", 1)[1].split(",", 1)[0])
    exposes = exposure(reason)
    if policy.startswith("exceptions:") and reason.checked_in == "elsewhere":
        return reason_yaml(reason.id), f"{exposes}; {checked_in_text(reason)}"
    if policy.startswith("exceptions:") and reason.checked_in == "partly":
        exposes += f"; {checked_in_text(reason)}"
    return policy, exposes


class Context:
    """What detectors read, each piece read once and on first use."""

    def __init__(self, root: Root, target: str, catalogue: Catalogue, state: Status) -> None:
        self.root = root
        self.target = target
        self.catalogue = catalogue
        self.state = state  # status.read_status() data: level, lsm, secure_boot...
        self.notes: list[str] = []
        self.log_read = False  # the kernel log was there and readable (an empty list is then evidence)

    # --- shared readings -----------------------------------------------------

    @cached_property
    def release(self) -> str | None:
        return self.root.osrelease()

    @cached_property
    def kconfig(self) -> KConfig | None:
        return read_kconfig(self.root, self.notes)

    @cached_property
    def cmdline(self) -> Cmdline | None:
        value = read_cmdline(self.root)
        return value if isinstance(value, Cmdline) else None

    @cached_property
    def log(self) -> list[LogLine]:
        lines = read_kernel_log(self.root)
        if isinstance(lines, Unreadable):
            self.notes.append(f"{lines.path}: {lines.why} (kernel log not read: log evidence missing)")
            return []
        self.log_read = lines is not None
        return lines or []

    @property
    def log_path(self) -> str:
        return "kernel log" if self.root.live else self.root.display("dev/kmsg")

    def log_where(self, line: LogLine) -> str:
        if line.lineno:
            return f"{self.log_path}:{line.lineno}"
        return f"{self.log_path} [{line.seconds:.6f}]" if line.seconds is not None else self.log_path

    def log_evidence(self, line: LogLine) -> Evidence:
        return Evidence("log", self.log_where(line), line.text)

    @cached_property
    def packages(self) -> Packages | None:
        return read_packages(self.root)

    @cached_property
    def units(self) -> list[Unit]:
        return read_units(self.root)

    @cached_property
    def modprobe(self) -> list[ConfLine]:
        return read_modprobe(self.root)

    @cached_property
    def proc_hits(self) -> list[ProcHit]:
        """One pass over /proc for every object any detector asks about."""
        return scan(self.root, interesting_path)

    def config(self, option: str) -> str | None:
        """``y``/``m``/value, ``""`` when the config says not set, None when no config was read."""
        if self.kconfig is None:
            return None
        return self.kconfig.get(option) or ""

    # --- building findings ---------------------------------------------------

    def reason(self, reason_id: str) -> Reason:
        return self.catalogue.get(reason_id)

    def finding(
        self,
        detector: str,
        reason_id: str,
        confidence: str,
        title: str,
        evidence: list[Evidence],
        symptom: str,
        remedy: str = "",
        policy: str | None = None,
        requires: tuple[str, ...] = (),
        **subject: Any,
    ) -> Finding:
        reason = self.reason(reason_id)
        assert confidence in CONFIDENCE, confidence
        policy, exposes = proposal(reason, policy)
        return Finding(
            detector,
            reason.id,
            reason.level,
            confidence,
            title,
            evidence,
            symptom,
            remedy or reason.remedy,
            policy,
            {k: v for k, v in subject.items() if v not in (None, "")},
            requires,
            exposes=exposes,
        )

    def package_evidence(self, name: str) -> Evidence | None:
        if self.packages is None or self.packages.get(name) is None:
            return None
        version = self.packages.installed[name][0]
        return Evidence("package", self.packages.where(name), f"{name} {version} installed")


# Objects whose users break (docs/kernel-facts.md 2.3); matched against fd and map targets.
_PROC_RE = re.compile(
    r"^(/dev/(mem|kmem|port|snapshot|efi_test)$|/dev/cpu/\d+/msr$|/proc/kcore$|/proc/bus/pci/"
    r"|/sys/(bus/pci/devices|devices/pci)[^ ]*/(resource\d+(_wc)?|config)$"
    r"|/sys/kernel/(debug|tracing)(/|$)|anon_inode:(bpf-prog|bpf_link|\[perf_event\]))"
)


def interesting_path(path: str) -> bool:
    return _PROC_RE.match(path) is not None


# --- the engine ----------------------------------------------------------------


def evidence_read(ctx: Context) -> dict[str, str | None]:
    """What the detectors could read: evidence name -> where it was read (None: not read).

    A readiness verdict stands on these: without the kernel release and at
    least one of the others (an empty or unmounted --root), no detector saw
    anything and "0 breaks" would say nothing."""
    root = ctx.root
    _ = ctx.log  # read once (cached) so that log_read is known
    config = ctx.kconfig
    no_modules = config is not None and config.get("CONFIG_MODULES") == "n"
    return {
        "kernel release": root.display("proc/sys/kernel/osrelease") if ctx.release else None,
        "process table": root.display("proc") if pids(root) else None,
        "kernel config": ctx.kconfig.path if ctx.kconfig else None,
        "kernel log": ctx.log_path if ctx.log_read else None,
        "kernel command line": ctx.cmdline.path if ctx.cmdline else None,
        "loaded modules": root.display("proc/modules") if root.exists("proc/modules")
        else f"none ({config.where('CONFIG_MODULES')})" if config is not None and no_modules else None,
        "package database": root.display(DPKG_STATUS) if ctx.packages is not None else None,
        "service units": "systemd unit directories" if ctx.units else None,
    }


def decided(evidence: dict[str, str | None]) -> bool:
    return evidence["kernel release"] is not None and any(
        where is not None for name, where in evidence.items() if name != "kernel release")


def _rank_key(f: Finding) -> tuple[int, int, str, str]:
    return (CONFIDENCE.index(f.confidence), level_rank(f.level), f.reason, f.title)


def run_detectors(
    ctx: Context, detectors: Iterable[tuple[str, Detector]]
) -> tuple[list[Finding], list[dict[str, Any]]]:
    findings: list[Finding] = []
    ran = []
    for name, detect in detectors:
        start = time.perf_counter()
        got = list(detect(ctx))
        findings += got
        ran.append({"name": name, "findings": len(got), "seconds": round(time.perf_counter() - start, 4)})
    return findings, ran


def build_report(
    ctx: Context,
    findings: list[Finding],
    ran: list[dict[str, Any]],
    preconditions: list[dict[str, Any]],
    suppress: Callable[[Finding], str],
    downgrade: Callable[[Finding], str],
) -> dict[str, Any]:
    """Filter to the target level, apply preconditions, sort, count."""
    target_rank = level_rank(ctx.target)
    current = ctx.state.get("level")
    kept: list[Finding] = []
    suppressed: list[Finding] = []
    for f in findings:
        if level_rank(f.level) > target_rank:
            continue
        why = suppress(f)
        if why:
            f.note = why
            suppressed.append(f)
            continue
        why = downgrade(f)
        if why and f.confidence != "info":
            f.confidence, f.note = "info", why
        kept.append(f)
    kept.sort(key=_rank_key)
    suppressed.sort(key=_rank_key)
    summary = {c: sum(1 for f in kept if f.confidence == c) for c in CONFIDENCE}
    already = current in LEVELS and level_rank(current) >= target_rank
    evidence = evidence_read(ctx)
    return {
        "verdict": verdict(summary, evidence),
        "target": ctx.target,
        "current": {
            "level": current,
            "source": (ctx.state.get("source") or {}).get("kind"),
            "lockdown_lsm_active": (ctx.state.get("lsm") or {}).get("lockdown_active"),
            "secure_boot": (ctx.state.get("secure_boot") or {}).get("state"),
            "already_at_target": already,
        },
        "kernel": {
            "release": ctx.release,
            "config": ctx.kconfig.path if ctx.kconfig else None,
            "reasons_from_btf": ctx.catalogue.from_btf,
        },
        "preconditions": preconditions,
        "summary": summary,
        "findings": [f.to_dict() for f in kept],
        "suppressed": [f.to_dict() for f in suppressed],
        "detectors": ran,
        "evidence": evidence,
        "not_read": [name for name, where in evidence.items() if where is None],
        "notes": ctx.notes,
    }


def verdict(summary: dict[str, int], evidence: dict[str, str | None]) -> str:
    """not-ready | check-likely | ready, or unknown when the detectors read nothing."""
    if summary["breaks"]:
        return "not-ready"
    if not decided(evidence):
        return "unknown"
    return "check-likely" if summary["likely"] else "ready"


def merge_observed(
    report: dict[str, Any], observations: Iterable[dict[str, Any]], catalogue: Catalogue, where: str
) -> dict[str, Any]:
    """Merge measured denials into a report as ``observed`` findings.

    ``observations``: what the enforcer counted in audit mode, one dict per
    (process, executable, reason): ``{"comm", "exe", "reason", "count"}``.
    Each becomes a ``breaks`` finding (the kernel would have refused it),
    with the enforcer's event stream named as evidence. Used by
    ``check --measure`` once the enforcer (bpf/) exists.
    """
    target_rank = level_rank(report["target"])
    for obs in observations:
        reason = catalogue.get(obs["reason"])
        if level_rank(reason.level) > target_rank:
            continue
        exe = obs.get("exe") or ""
        policy, exposes = proposal(reason, exception_yaml([reason.id], exe=exe) if exe else None)
        f = Finding(
            "measured",
            reason.id,
            reason.level,
            "breaks",
            f"{obs.get('comm') or exe} was seen doing what {reason.id} denies ({obs['count']} times)",
            [Evidence("observed", where, f"{obs.get('comm', '')} {exe}: {reason.log} x{obs['count']}")],
            f"at {report['target']}: {reason.breaks}",
            reason.remedy,
            policy,
            {"comm": obs.get("comm"), "exe": exe},
            source="observed",
            count=int(obs["count"]),
            exposes=exposes,
        )
        report["findings"].append(f.to_dict())
    report["summary"] = {c: sum(1 for f in report["findings"] if f["confidence"] == c) for c in CONFIDENCE}
    if "evidence" in report:
        report["verdict"] = verdict(report["summary"], report["evidence"])
    return report
