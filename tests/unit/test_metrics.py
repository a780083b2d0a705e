"""``lockdownctl metrics`` on fixture roots: the exposition, parsed back by
prometheus_client's own parser, says what ``status --json`` says; what was not
read is absent (and ``lockdownctl_known`` 0), never a reassuring 0."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOTS, lockdownctl

FIXTURES = sorted(p.name for p in ROOTS.iterdir() if p.is_dir() and p.name != "malformed")


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@pytest.mark.parametrize("name", FIXTURES)
def test_metrics_agree_with_status(name: str) -> None:
    root = str(ROOTS / name)
    run = lockdownctl("metrics", "--root", root)
    assert run.code == 0, run.err
    m = parse(run.out)
    status = lockdownctl("status", "--json", "--root", root).json()["data"]
    level = status["level"]
    for lvl in ("none", "integrity", "confidentiality"):
        assert value(m, "lockdownctl_lockdown_level", level=lvl) == (1.0 if lvl == level else 0.0)
    assert value(m, "lockdownctl_lockdown_source_info", source=status["source"]["kind"]) == 1.0
    active = status["lsm"]["lockdown_active"]
    assert value(m, "lockdownctl_lockdown_lsm_active") == (None if active is None else float(active))
    sb = status["secure_boot"]["state"]
    # a root that captured no firmware state has Secure Boot unknown: absent, never 0
    assert value(m, "lockdownctl_secure_boot_enabled") == (None if sb == "unknown" else float(sb == "enabled"))
    # Not the running system: no enforcer, no counters, and they say so.
    assert value(m, "lockdownctl_enforcer_loaded") is None
    assert value(m, "lockdownctl_known", concept="enforcer") == 0.0
    assert value(m, "lockdownctl_known", concept="level") == 1.0
    assert value(m, "lockdownctl_build_info", version=lockdownctl("--version").out.split()[1]) == 1.0


def test_unknown_is_absent_not_zero(tmp_path: Path) -> None:
    """An empty root: nothing readable, so no level, no Secure Boot verdict, no denial count."""
    run = lockdownctl("metrics", "--root", str(tmp_path))
    assert run.code == 0, run.err
    m = parse(run.out)
    names = {name for name, _labels in m}
    for absent in ("lockdownctl_lockdown_level", "lockdownctl_lockdown_source_info",
                   "lockdownctl_lockdown_lsm_active", "lockdownctl_kernel_log_denials",
                   "lockdownctl_module_signing_enforced", "lockdownctl_enforcer_loaded"):
        assert absent not in names
    for concept in ("level", "source", "lsm", "module_signing", "kernel_log", "enforcer"):
        assert value(m, "lockdownctl_known", concept=concept) == 0.0
    assert value(m, "lockdownctl_enforcer_expected") == 0.0


def test_kernel_log_denials_by_reason(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(ROOTS / "debian12-6.1-sb-integrity", root)
    (root / "dev").mkdir(exist_ok=True)
    (root / "dev/kmsg").write_text(
        "[   12.000000] Lockdown: modprobe: unsigned module loading is restricted; see man kernel_lockdown.7\n"
        "[   13.000000] Lockdown: modprobe: unsigned module loading is restricted; see man kernel_lockdown.7\n"
        "[   14.000000] Lockdown: dd: /dev/mem,kmem,port is restricted; see man kernel_lockdown.7\n")
    m = parse(lockdownctl("metrics", "--root", str(root)).out)
    denials = {dict(labels)["reason"]: v for (name, labels), v in m.items() if name == "lockdownctl_kernel_log_denials"}
    watch = lockdownctl("watch", "--json", "--summary", str(root / "dev/kmsg")).json()
    by_reason = {r["reason"]: r["denials"] for r in watch["data"]["by_reason"]}
    assert denials == {k: float(v) for k, v in by_reason.items()} and sum(denials.values()) == 3.0
    assert "pid" not in run_labels(m) and "comm" not in run_labels(m)


def run_labels(m: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> set[str]:
    return {k for _name, labels in m for k, _v in labels}


def test_boot_policy_sets_expected(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(ROOTS / "debian12-6.12-none", root)
    (root / "etc/lockdownctl").mkdir(parents=True)
    (root / "etc/lockdownctl/policy.yaml").write_text("version: 1\nprofile: integrity\n")
    assert value(parse(lockdownctl("metrics", "--root", str(root)).out), "lockdownctl_enforcer_expected") == 1.0


def test_textfile_written_atomically(tmp_path: Path) -> None:
    root = str(ROOTS / "debian12-6.12-none")
    run = lockdownctl("metrics", "--root", root, "--textfile", str(tmp_path))
    assert run.code == 0 and run.out.strip() == f"wrote {tmp_path}/lockdownctl.prom", run.err
    assert os.listdir(tmp_path) == ["lockdownctl.prom"]  # no temp file left behind
    text = (tmp_path / "lockdownctl.prom").read_text()
    assert text.endswith("\n") and value(parse(text), "lockdownctl_lockdown_level", level="none") == 1.0


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    run = lockdownctl("metrics", "--root", str(ROOTS / "debian12-6.12-none"), "--textfile", str(tmp_path),
                      "--dry-run")
    assert run.code == 0 and run.out.startswith(f"# would write {tmp_path}/lockdownctl.prom")
    assert os.listdir(tmp_path) == []


def test_textfile_not_writable_is_exit_74(tmp_path: Path) -> None:
    run = lockdownctl("metrics", "--root", str(ROOTS / "debian12-6.12-none"), "--textfile", str(tmp_path / "no"))
    assert run.code == 74 and "not a directory" in run.err and "Traceback" not in run.err
    # /proc takes no new files, not even from root.
    run = lockdownctl("metrics", "--root", str(ROOTS / "debian12-6.12-none"), "--textfile", "/proc")
    assert run.code == 74 and "/proc/lockdownctl.prom: cannot write" in run.err, run.err


def test_json_samples() -> None:
    run = lockdownctl("metrics", "--json", "--root", str(ROOTS / "debian12-6.12-none"))
    data = run.json()["data"]
    assert {"name": "lockdownctl_lockdown_level", "labels": {"level": "none"}, "value": 1.0} in data["samples"]
    assert data["written"] is None


def test_listen_address_is_checked() -> None:
    run = lockdownctl("metrics", "--listen", "localhost", "--root", str(ROOTS / "debian12-6.12-none"))
    assert run.code == 2 and "HOST:PORT" in run.err


def test_enforcer_families_from_its_state() -> None:
    """The loaded enforcer's counters (``enforce status --json`` data) become one counter with
    reason and verdict labels, drops a counter, and the policy an info series."""
    from prometheus_client import CollectorRegistry, generate_latest

    from lockdownctl.metrics import Collector, gather
    from lockdownctl.root import Root

    root = Root(ROOTS / "debian12-6.12-none")
    snap = gather(root)
    state = {"loaded": True, "policy_id": "00000000deadbeef", "mode": "enforce", "profile": "integrity",
             "policy_file": "/nonexistent/policy.yaml", "sealed": True, "ring_buffer_drops": 3,
             "verdicts": {"module_signature": "deny", "dev_mem": "deny", "kcore": "allow"},
             "counters": {"module_signature": {"denied": 5, "audited": 0, "excepted": 1}}}
    snap["enforcer"] = {"known": True, "counters_known": True, "loaded": True, "sealed": True, "state": state,
                        "expected": True}
    reg = CollectorRegistry(auto_describe=False)
    reg.register(Collector(root, snap))
    m = parse(generate_latest(reg).decode())
    assert value(m, "lockdownctl_decisions_total", reason="module_signature", verdict="denied") == 5.0
    assert value(m, "lockdownctl_decisions_total", reason="module_signature", verdict="excepted") == 1.0
    assert value(m, "lockdownctl_decisions_total", reason="dev_mem", verdict="denied") == 0.0
    assert value(m, "lockdownctl_decisions_total", reason="kcore", verdict="denied") is None  # allowed: not counted
    assert value(m, "lockdownctl_events_dropped_total") == 3.0
    assert value(m, "lockdownctl_enforcer_sealed") == 1.0
    assert value(m, "lockdownctl_policy_info", policy_id="00000000deadbeef", policy_file="/nonexistent/policy.yaml",
                 policy_sha256="", profile="integrity", mode="enforce") == 1.0


@pytest.mark.parametrize("name", ["debian12-6.12-none", "debian12-6.1-sb-integrity"])
def test_check_adds_readiness_findings(name: str) -> None:
    """--check: findings per confidence for the next level up, as ``check --json --level`` counts them."""
    root = str(ROOTS / name)
    m = parse(lockdownctl("metrics", "--check", "--root", root).out)
    level = lockdownctl("status", "--json", "--root", root).json()["data"]["level"]
    target = "integrity" if level == "none" else "confidentiality"
    summary = lockdownctl("check", "--json", "--level", target, "--root", root).json()["data"]["summary"]
    for confidence, count in summary.items():
        assert value(m, "lockdownctl_check_findings", target=target, confidence=confidence) == float(count)
    assert value(m, "lockdownctl_known", concept="readiness") == 1.0
    without = parse(lockdownctl("metrics", "--root", root).out)
    assert not any(n == "lockdownctl_check_findings" for n, _ in without)  # opt-in: check costs time
    assert value(without, "lockdownctl_known", concept="readiness") is None
