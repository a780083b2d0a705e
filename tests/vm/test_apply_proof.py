"""`enforce apply` proves the program runs (issue #18): the calls the enforcer's
program counted for the applier (lockdown.h struct ld_proof) before and after
apply itself makes the kernel ask security_locked_down() (bpf/apply.py ``prove``).

The proof is checked for being real by making it fail on a real kernel, no mock:

- ``kernel.ftrace_enabled=0`` turns every BPF trampoline into a nop: the program
  is attached and the hook is called, but the program does not run (6.1, 6.12;
  Debian's 7.3 no longer honours the sysctl: skipped there);
- in a mount namespace where /dev/null is bound over /proc/kcore and tracefs's
  trace_marker (as container runtimes mask /proc/kcore), apply's triggers open
  without the kernel asking lockdown: nothing calls the hook, so nothing is proven.

In both, apply exits 3, says why, carries the run counts in its JSON, and
leaves the policy attached (fail closed: see bpf/apply.py). The proof counts for
the applier's own process only, and leaves the program's hot path as it found it.

A policy scoped to a cgroup that excludes the applier still proves: the
program runs for every task and decides scope itself.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lockdownctl.bpf import enforcer as engine
from lockdownctl.bpf import libbpf
from lockdownctl.bpf.abi import LdProof
from lockdownctl.state.pins import PIN_DIR, STATE
from tests.conftest import lockdownctl_inproc as lockdownctl
from tests.vm.test_enforcer import cgroup, enforcer, scoped_policy, write_policy

__all__ = ["cgroup", "enforcer"]  # fixtures

ENV = {**os.environ, "PYTHONPATH": str(Path(engine.HERE).parents[1])}


def check_proof(proof: dict[str, Any]) -> None:
    assert proof["method"] == "call-count"
    assert proof["verified"] is (proof["calls_after"] > proof["calls_before"])
    assert proof["triggers"], proof


@pytest.mark.guest(kernel="all", level="none")
def test_apply_proves_the_program_runs(cgroup: str, enforcer: None, tmp_path: Path) -> None:
    run = lockdownctl("enforce", "apply", write_policy(tmp_path, scoped_policy(cgroup, "  tracefs: deny\n")), "--json")
    assert run.code == 0, run.err
    proof = run.json()["data"]["proof"]
    check_proof(proof)
    assert proof["verified"] and proof["triggers"][0]["reason"] == "kcore"  # allowed by this policy: tried first
    assert proof["triggers"][0]["result"] == "opened"
    # the state file keeps the evidence; the text says it
    assert json.loads(Path(STATE).read_text())["proof"]["verified"] is True
    again = lockdownctl("enforce", "apply", write_policy(tmp_path, scoped_policy(cgroup, "  tracefs: deny\n")))
    assert again.code == 0, again.err
    assert "Proof:      the program runs: calls counted for this process 0 -> 1" in again.out, again.out
    # and the program counts for nobody once apply is done: the tgid is back to 0
    fd = libbpf.obj_get(os.path.join(PIN_DIR, "proof"))
    try:
        got = LdProof()
        assert libbpf.map_lookup(fd, ctypes.c_uint32(0), got)
        assert got.tgid == 0, (got.tgid, got.hits)
    finally:
        os.close(fd)


@pytest.mark.guest(kernel="all", level="none")
def test_scope_excluding_the_applier_still_proves(cgroup: str, enforcer: None, tmp_path: Path) -> None:
    """Both triggers' reasons denied, but only inside the cgroup: the applier's opens succeed
    and the program, which ran to decide that, counts them."""
    policy = write_policy(tmp_path, scoped_policy(cgroup, "  tracefs: deny\n  kcore: deny\n"))
    run = lockdownctl("enforce", "apply", policy, "--json")
    assert run.code == 0, run.err
    proof = run.json()["data"]["proof"]
    check_proof(proof)
    assert proof["verified"] and proof["triggers"][0]["result"] == "opened"
    assert [e for e in lockdownctl("enforce", "events", "--json").json()["data"]["events"]] == []


def failed_apply(run: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    print(run.stdout[-2000:], run.stderr[-2000:])
    assert run.returncode == 3, (run.returncode, run.stderr)
    env = json.loads(run.stdout)
    assert env["exit_code"] == 3 and env["status"] != "ok"
    proof: dict[str, Any] = env["data"]["proof"]
    check_proof(proof)
    assert not proof["verified"] and proof["calls_after"] == proof["calls_before"]
    assert any("NOT proven to run" in w and "stays attached" in w for w in env["warnings"]), env["warnings"]
    return proof


def still_attached() -> None:
    """Fail closed: the policy stays attached and the state says it is unproven."""
    assert (Path(engine.BPFFS) / "lockdownctl" / "link").exists()
    status = lockdownctl("enforce", "status", "--json").json()["data"]
    assert status["loaded"] is True
    assert json.loads(Path(STATE).read_text())["proof"]["verified"] is False


@pytest.fixture
def ftrace_off() -> Iterator[None]:
    if subprocess.run(["sysctl", "-w", "kernel.ftrace_enabled=0"], capture_output=True, text=True).returncode:
        pytest.skip("this kernel ignores kernel.ftrace_enabled (Debian's 7.3: deprecated, EOPNOTSUPP)")
    try:
        yield
    finally:
        subprocess.run(["sysctl", "-w", "kernel.ftrace_enabled=1"], check=True)


@pytest.mark.guest(kernel="all", level="none")
def test_proof_fails_with_trampolines_off(cgroup: str, enforcer: None, ftrace_off: None, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, scoped_policy(cgroup, "  tracefs: deny\n"))
    run = subprocess.run([sys.executable, "-m", "lockdownctl", "enforce", "apply", policy, "--json"],
                         capture_output=True, text=True, check=False, env=ENV)
    proof = failed_apply(run)
    assert proof["triggers"][0]["result"] == "opened"  # the hook was called; the program did not run
    still_attached()


@pytest.mark.guest(kernel="all", level="none")
def test_proof_fails_when_no_trigger_reaches_the_hook(cgroup: str, enforcer: None, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, scoped_policy(cgroup, "  tracefs: deny\n"))
    script = ("mount --make-rprivate / && mount --bind /dev/null /proc/kcore && "
              "mount --bind /dev/null /sys/kernel/tracing/trace_marker && "
              f'exec "{sys.executable}" -m lockdownctl enforce apply "{policy}" --json')
    run = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, check=False, env=ENV)
    proof = failed_apply(run)
    assert [t["result"] for t in proof["triggers"]] == ["opened", "opened"]  # /dev/null: no lockdown question
    still_attached()


@pytest.mark.guest(kernel="all", level="confidentiality")
def test_confidentiality_kernel_needs_no_proof(enforcer: None, tmp_path: Path) -> None:
    """At confidentiality the kernel denies every reason before any LSM program is asked."""
    run = lockdownctl("enforce", "apply", write_policy(tmp_path, "version: 1\nprofile: confidentiality\n"), "--json")
    assert run.code == 0, run.err
    proof = run.json()["data"]["proof"]
    assert proof == {"verified": True, "method": "kernel-level", "kernel_level": "confidentiality",
                     "note": proof["note"]} and "never asked" in proof["note"]
