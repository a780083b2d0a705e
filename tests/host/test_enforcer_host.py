"""The enforcer on this machine: the committed object, and the refusal path.

This kernel lists bpf among its LSMs but refuses LSM programs (EPERM at
load), so the enforcer itself is tested in VM guests (tests/vm); here we
check that `enforce apply` says exactly why it cannot run, exits 3 and
leaves nothing behind.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from lockdownctl.bpf import hooks
from lockdownctl.state import pins as paths
from tests.conftest import REPO, lockdownctl
from tests.host.conftest import require, require_root, require_tool


def _lsm_programs_refused() -> bool:
    probe = subprocess.run([require_tool("bpftool"), "feature", "probe", "kernel"],
                           capture_output=True, text=True, check=False).stdout
    return "eBPF program_type lsm is NOT available" in probe


def _our_programs() -> list[str]:
    out = subprocess.run([require_tool("bpftool"), "-j", "prog", "show"], capture_output=True, text=True,
                         check=True).stdout
    return [p["name"] for p in json.loads(out or "[]") if p.get("name", "").startswith("ldctl")]


def test_committed_object_rebuilds_identically(tmp_path: Path) -> None:
    require(shutil.which("clang") is not None, "clang not installed (scripts/test.sh installs it)")
    subprocess.run([str(REPO / "scripts" / "build-bpf.sh"), str(tmp_path)], check=True)
    # Every variant of the enforcer and the seal (hooks.VARIANTS), and nothing else.
    names = sorted(v.object for variants in hooks.VARIANTS.values() for v in variants)
    assert sorted(p.name for p in tmp_path.glob("*.bpf.o")) == names
    for name in names:
        committed = Path(hooks.HERE) / name
        assert (tmp_path / name).read_bytes() == committed.read_bytes(), (
            f"src/lockdownctl/bpf/{name} is not what its source builds to: run scripts/build-bpf.sh")


def test_apply_is_refused_with_the_reason_and_leaves_nothing(tmp_path: Path) -> None:
    require_root()
    require(_lsm_programs_refused(), "this kernel accepts LSM programs: no refusal path to test here "
            "(the enforcer is tested in guests)")
    before = Path("/proc/self/mountinfo").read_text()
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\nprofile: confidentiality\n")
    run = lockdownctl("enforce", "apply", str(policy))
    assert run.code == 3, run.err
    assert run.err.strip() == ("lockdownctl: error: BPF LSM is not usable: the kernel lists bpf among its LSMs but "
                               "refuses LSM programs (EPERM at load); the enforcer cannot run on this kernel")
    assert Path("/proc/self/mountinfo").read_text() == before  # bpffs not mounted, nothing pinned
    assert not Path(paths.PIN_DIR).exists() and not Path(paths.STATE).exists()
    assert _our_programs() == []


def test_apply_refused_as_json(tmp_path: Path) -> None:
    require_root()
    require(_lsm_programs_refused(), "this kernel accepts LSM programs")
    run = lockdownctl("enforce", "apply", str(REPO / "examples" / "integrity.yaml"), "--json")
    env = run.json()
    assert run.code == 3 and env["exit_code"] == 3 and env["errors"][0]["code"] == "feature-missing"


def test_status_of_an_enforcer_that_is_not_loaded() -> None:
    require_root()
    run = lockdownctl("enforce", "status", "--json")
    data = run.json()["data"]
    assert run.code == 0 and data["loaded"] is False
    assert data["can_load"] is (not _lsm_programs_refused())  # bpftool's answer is the trial load's
    assert lockdownctl("status", "--json").json()["data"]["enforcer"] == {"loaded": False}
    assert lockdownctl("enforce", "remove").out.strip() == "not loaded: nothing to remove"


def test_check_measure_is_refused_with_the_reason() -> None:
    require_root()
    require(_lsm_programs_refused(), "this kernel accepts LSM programs")
    run = lockdownctl("check", "--measure", "1", "--level", "confidentiality")
    assert run.code == 3
    assert "BPF LSM is not usable" in run.err and "refuses LSM programs" in run.err
    assert _our_programs() == [] and not Path(paths.PIN_DIR).exists()


def test_seal_dry_run_says_so_and_changes_nothing(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\nprofile: integrity\nseal: true\n")
    run = lockdownctl("enforce", "apply", str(policy), "--dry-run")
    assert run.code == 0, run.err
    assert "Sealed:     would be sealed until reboot" in run.out
    run = lockdownctl("enforce", "apply", str(policy), "--dry-run", "--seal", "--json")
    assert run.code == 0 and run.json()["data"]["policy"]["seal"] is True
    assert not Path(paths.PIN_DIR).exists()
