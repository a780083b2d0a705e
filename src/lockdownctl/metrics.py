"""Prometheus metrics: one snapshot of the host, as metric families.

Naming follows Prometheus practice and peers (anchors-2026.md 4.1): one metric
per concept, the variable part (level, reason, verdict) as a label value with
bounded cardinality, never a pid or a process name. What could not be read is
never a 0 that reads "all clear": its metric is absent and
``lockdownctl_known{concept="..."}`` is 0.

Used by ``lockdownctl metrics`` for a node_exporter textfile, an exporter
(``--listen``) or standard output. prometheus_client is imported only here.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from .levels import LEVELS
from .root import Root

if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from prometheus_client.metrics_core import Metric

PREFIX = "lockdownctl_"
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"  # Debian's prometheus-node-exporter
TEXTFILE_NAME = "lockdownctl.prom"
BOOT_POLICY = "etc/lockdownctl/policy.yaml"  # what lockdownctl-enforce.service applies at boot
CONCEPTS = ("level", "source", "lsm", "secure_boot", "bpf_lsm", "module_signing", "enforcer", "decisions",
            "tamper", "kernel_log")
VERDICTS = ("denied", "audited", "excepted")  # the enforcer's counters per reason


def status_document(root: Root) -> dict[str, Any]:
    """The ``status --json`` data: the one call into the state layer."""
    from .state.document import read_status

    return dict(read_status(root))


def enforcer_document(status: dict[str, Any]) -> dict[str, Any]:
    """The ``enforce status --json`` data (the enforcer's maps, read by bpf/enforcer.py; root only):
    the one call into the enforcer's reading code. ``status`` already holds the BPF LSM decision."""
    from .bpf.enforcer import describe

    return describe(status.get("bpf_lsm"))


def enforcer_seen(root: Root, status: dict[str, Any]) -> tuple[bool | None, bool | None]:
    """(loaded, sealed) as ``status`` saw them, None where it could not see.

    Without root, bpffs (mode 0700) hides the pins, and status's "not loaded"
    would be a guess; a loaded enforcer whose state file was unreadable has an
    unknown seal."""
    if not root.live:
        return None, None
    brief = status.get("enforcer") or {}
    loaded = brief.get("loaded")
    if not loaded and os.geteuid() != 0 and not os.access("/sys/fs/bpf", os.X_OK):
        return None, None
    if loaded is None:
        return None, None
    if not loaded:
        return False, False
    return True, (bool(brief["sealed"]) if "sealed" in brief else None)


def _enforcer(root: Root, status: dict[str, Any]) -> dict[str, Any]:
    """Loaded, sealed, policy and counters of the enforcer, with whether each is known."""
    # A policy for boot is there: the enforcer should be loaded (the alert rules compare the two).
    out: dict[str, Any] = {"known": False, "counters_known": False, "why": "",
                           "expected": root.exists(BOOT_POLICY)}
    if not root.live:
        out["why"] = "not the running system"
        return out
    if os.geteuid() != 0:
        loaded, sealed = enforcer_seen(root, status)
        if loaded is not None and sealed is not None:
            out.update(known=True, loaded=loaded, sealed=sealed)
        out["why"] = "the enforcer's counters need root"
        return out
    from .errors import LockdownctlError

    try:
        state = enforcer_document(status)
    except (LockdownctlError, OSError) as exc:
        out["why"] = f"the enforcer's maps could not be read: {getattr(exc, 'message', exc)}"
        return out
    # Not loaded: no decisions to count (known, no series); loaded: its maps were read.
    out.update(known=True, counters_known=True, loaded=bool(state["loaded"]),
               sealed=bool(state.get("sealed")), state=state)
    return out


def check_document(root: Root, target: str) -> dict[str, Any]:
    """The ``check --json --level TARGET`` data (readiness findings): the one call into checks/."""
    from .checks import check

    return check(root, target)


def _readiness(root: Root, status: dict[str, Any]) -> dict[str, Any]:
    """Findings for the next level up: integrity, or confidentiality once at integrity or above."""
    from .errors import LockdownctlError

    target = "confidentiality" if status["level"] in ("integrity", "confidentiality") else "integrity"
    try:
        data = check_document(root, target)
    except LockdownctlError as exc:
        return {"known": False, "why": exc.message}
    return {"known": True, "target": data["target"], "summary": data["summary"]}


def _kernel_log(root: Root) -> dict[str, Any]:
    """Lockdown denials per reason in the kernel log now (a lower bound: rate limits, ring size)."""
    from .errors import LockdownctlError
    from .klog.sources import Counter, read_kmsg
    from .klog.summary import Summary

    summary = Summary()
    try:
        for event in read_kmsg(root, Counter(), follow=False, since_boot=True):
            summary.add(event)
    except LockdownctlError as exc:
        return {"known": False, "why": exc.message}
    data = summary.to_dict()
    by_reason: dict[str, int] = {}
    for entry in data["by_reason"]:
        key = entry["reason"] or "unrecognised"
        by_reason[key] = by_reason.get(key, 0) + entry["denials"]
    return {"known": True, "by_reason": by_reason, "rate_limited": data["rate_limited"]}


def gather(root: Root, readiness: bool = False) -> dict[str, Any]:
    """Everything the metrics say, read once (plain data: --json prints it); ``readiness``
    adds the findings of ``check`` (costs about as much as check itself)."""
    from .modsig import module_signing

    status = status_document(root)
    signing, signing_why = module_signing(root, status)
    return {"time": time.time(), "status": status, "module_signing": signing, "module_signing_why": signing_why,
            "enforcer": _enforcer(root, status), "kernel_log": _kernel_log(root),
            "readiness": _readiness(root, status) if readiness else None}


def _bpf_usable(bpf: dict[str, Any]) -> bool | None:
    """Usable only after a trial load; unusable on any definite obstacle; otherwise unknown."""
    if bpf["usable"]:
        return True
    if bpf["config"] is False or bpf["listed"] is False or not bpf["btf"] or bpf["trial_load"] == "refused":
        return False
    return None


def families(snap: dict[str, Any]) -> list[Metric]:
    """The metric families of one snapshot."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily

    from . import __version__

    st = snap["status"]
    out: list[Metric] = []
    known: dict[str, bool] = {}

    def gauge(name: str, doc: str, value: float | bool | None, concept: str) -> None:
        known[concept] = value is not None
        if value is not None:
            out.append(GaugeMetricFamily(PREFIX + name, doc, value=float(value)))

    level = st["level"]
    known["level"] = level is not None
    if level is not None:
        fam = GaugeMetricFamily(PREFIX + "lockdown_level", "Kernel lockdown level (state set: 1 for the current)",
                                labels=["level"])
        for name in LEVELS:
            fam.add_metric([name], 1.0 if name == level else 0.0)
        out.append(fam)
    source = st["source"]["kind"]
    known["source"] = source != "unknown" and level is not None
    if known["source"]:
        out.append(InfoMetricFamily(PREFIX + "lockdown_source", "What set the lockdown level",
                                    value={"source": source}))
    gauge("lockdown_lsm_active", "1 if the lockdown LSM is active (enforces the level)",
          st["lsm"]["lockdown_active"], "lsm")
    sb_state = st["secure_boot"]["state"]
    sb = {"enabled": True, "disabled": False, "setup-mode": False, "validation-disabled": False,
          "not-efi": False}.get(sb_state)
    gauge("secure_boot_enabled", "1 if UEFI Secure Boot is on and validating", sb, "secure_boot")
    gauge("bpf_lsm_usable", "1 if the kernel runs BPF LSM programs (a trial program loaded)",
          _bpf_usable(st["bpf_lsm"]), "bpf_lsm")
    gauge("module_signing_enforced", "1 if the kernel refuses unsigned modules now", snap["module_signing"],
          "module_signing")

    enf = snap["enforcer"]
    known["enforcer"] = enf["known"]
    if enf["known"]:
        out.append(GaugeMetricFamily(PREFIX + "enforcer_loaded", "1 if the lockdownctl enforcer is attached",
                                     value=float(enf["loaded"])))
        out.append(GaugeMetricFamily(PREFIX + "enforcer_sealed", "1 if its policy is sealed until reboot",
                                     value=float(enf["sealed"])))
    out.append(GaugeMetricFamily(PREFIX + "enforcer_expected",
                                 f"1 if /{BOOT_POLICY} exists (lockdownctl-enforce.service applies it at boot)",
                                 value=float(enf["expected"])))
    known["decisions"] = enf["counters_known"]
    state = enf.get("state")
    if enf["counters_known"] and state and state["loaded"]:
        out.append(_policy_info(state))
        decisions = CounterMetricFamily(PREFIX + "decisions", "Enforcer decisions since it was loaded",
                                        labels=["reason", "verdict"])
        reasons = {r for r, v in state["verdicts"].items() if v != "allow"} | set(state["counters"])
        for reason in sorted(reasons):
            counts = state["counters"].get(reason, {})
            for verdict in VERDICTS:
                decisions.add_metric([reason, verdict], float(counts.get(verdict, 0)))
        out.append(decisions)
        out.append(CounterMetricFamily(PREFIX + "events_dropped", "Enforcer events lost: ring buffer full",
                                       value=float(state["ring_buffer_drops"])))
    # Refused tamper attempts, by the seal's rule (bpf/seal.py RULES: a bounded label set). Known when
    # the counters were read: not sealed means none can be refused (known, no series).
    tamper = state.get("tamper") if enf["counters_known"] and state and state["loaded"] else None
    known["tamper"] = bool(enf["counters_known"]) and (tamper is None or tamper["by_rule"] is not None)
    if tamper is not None and tamper["by_rule"] is not None:
        tamper_fam = CounterMetricFamily(PREFIX + "tamper_attempts",
                                         "Attempts to lower the sealed policy the seal refused", labels=["rule"])
        for rule, count in tamper["by_rule"].items():
            tamper_fam.add_metric([rule], float(count))
        out.append(tamper_fam)
        out.append(CounterMetricFamily(PREFIX + "tamper_events_dropped",
                                       "Tamper attempts counted but not recorded: the seal's ring buffer was full",
                                       value=float(tamper["dropped"])))

    klog = snap["kernel_log"]
    known["kernel_log"] = klog["known"]
    if klog["known"]:
        fam = GaugeMetricFamily(PREFIX + "kernel_log_denials",
                                "Lockdown denials per reason in the kernel log buffer now (a lower bound)",
                                labels=["reason"])
        for reason, count in sorted(klog["by_reason"].items()):
            fam.add_metric([reason], float(count))
        out.append(fam)
        out.append(GaugeMetricFamily(PREFIX + "kernel_log_rate_limited",
                                     "1 if the kernel suppressed lockdown messages (counts are lower bounds)",
                                     value=float(klog["rate_limited"])))

    ready = snap.get("readiness")
    if ready is not None:
        known["readiness"] = ready["known"]
        if ready["known"]:
            fam = GaugeMetricFamily(PREFIX + "check_findings",
                                    "Readiness findings for the next lockdown level (lockdownctl check), by confidence",
                                    labels=["target", "confidence"])
            for confidence, count in ready["summary"].items():
                fam.add_metric([ready["target"], confidence], float(count))
            out.append(fam)

    fam = GaugeMetricFamily(PREFIX + "known", "1 if the concept's metrics were read, 0 if they are absent as unknown",
                            labels=["concept"])
    for concept in (*CONCEPTS, "readiness") if ready is not None else CONCEPTS:
        fam.add_metric([concept], 1.0 if known.get(concept) else 0.0)
    out.append(fam)
    out.append(InfoMetricFamily(PREFIX + "build", "lockdownctl version", value={"version": __version__}))
    out.append(GaugeMetricFamily(PREFIX + "last_run_timestamp_seconds", "When these metrics were read",
                                 value=snap["time"]))
    return out


def _policy_info(state: dict[str, Any]) -> Metric:
    import hashlib

    from prometheus_client.core import InfoMetricFamily

    path = state.get("policy_file") or ""
    sha = ""
    if path:
        try:
            with open(path, "rb") as fh:
                sha = hashlib.sha256(fh.read()).hexdigest()
        except OSError:
            sha = ""  # the file is gone or unreadable: the loaded policy_id still names the content
    return InfoMetricFamily(PREFIX + "policy", "The enforced policy: content id (policy_id, from the kernel), "
                            "its file and that file's sha256 now",
                            value={"policy_id": state["policy_id"], "policy_file": path, "policy_sha256": sha,
                                   "profile": state.get("profile") or "", "mode": state["mode"]})


class Collector:
    """A prometheus_client collector: a fresh snapshot per scrape, or a fixed one."""

    def __init__(self, root: Root, snap: dict[str, Any] | None = None, readiness: bool = False) -> None:
        self.root = root
        self.snap = snap
        self.readiness = readiness

    def collect(self) -> Iterator[Metric]:
        yield from families(self.snap if self.snap is not None else gather(self.root, self.readiness))


def registry(root: Root, snap: dict[str, Any] | None = None, readiness: bool = False) -> Any:
    from prometheus_client import CollectorRegistry

    reg = CollectorRegistry(auto_describe=False)
    reg.register(Collector(root, snap, readiness))
    return reg


def exposition(reg: Any) -> str:
    from prometheus_client import generate_latest

    return str(generate_latest(reg).decode("utf-8"))


def write_textfile(directory: str, reg: Any) -> str:
    """Write DIR/lockdownctl.prom atomically; returns the path.

    fsio.atomic_write: a hidden temp file in DIR (node_exporter reads only
    ``*.prom``), fsync, rename, fsync of DIR, so a kill or a crash leaves the
    old file or the new one, never half of one. prometheus_client's
    write_to_textfile neither syncs nor cleans up after a kill. Writers take
    an exclusive flock on DIR, so temp files found while holding it are
    strays of killed writers: removed, and a re-run converges
    (tests/host/test_metrics_textfile_crash.py)."""
    import contextlib
    import fcntl

    from prometheus_client import generate_latest

    from .fsio import atomic_write

    path = os.path.join(directory, TEXTFILE_NAME)
    data = generate_latest(reg)
    lock = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for name in stray_temp_files(directory):
            with contextlib.suppress(FileNotFoundError):  # gone already
                os.unlink(os.path.join(directory, name))
        atomic_write(path, data, mode=0o644)  # node_exporter runs as its own user
    finally:
        os.close(lock)
    return path


def stray_temp_files(directory: str) -> list[str]:
    """Temp files of killed textfile writers in DIR: fsio.atomic_write's
    (``.lockdownctl.prom.*.lockdownctl``) and older lockdownctl's
    (prometheus_client: ``lockdownctl.prom.PID.TID``)."""
    ours = f".{TEXTFILE_NAME}."
    theirs = f"{TEXTFILE_NAME}."

    def stray(name: str) -> bool:
        if name.startswith(ours):
            return name.endswith(".lockdownctl")
        return name.startswith(theirs) and name[len(theirs) :].replace(".", "", 1).isdigit()

    return sorted(name for name in os.listdir(directory) if stray(name))


def samples(reg: Any) -> list[dict[str, Any]]:
    """The metrics as JSON-able data (--json)."""
    return [{"name": s.name, "labels": dict(s.labels), "value": s.value}
            for fam in reg.collect() for s in fam.samples]
