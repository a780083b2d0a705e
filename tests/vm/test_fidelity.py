"""Fidelity: the enforcer's profiles deny exactly what the kernel's own modes deny.

The same probe (tests/vm/probe.py) runs
- in a lockdown=none guest: with nothing enforced (baseline), then under the
  enforcer's `integrity` and `confidentiality` profiles (examples/*.yaml);
- in guests of the same kernel booted with lockdown=integrity and
  lockdown=confidentiality, with nothing of ours loaded.
A host-side test then compares them operation by operation: the expected
side is what the kernel did in the same test run, never a typed-in table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.conftest import lockdownctl_inproc as lockdownctl

from .conftest import RUNS
from .runner import KERNELS, Target

MODULE_CANDIDATES = ("crc-itu-t", "crc7", "crc8", "crc16")


def unsigned_module(tmp: Path) -> str | None:
    """An unsigned copy of a small, unloaded module of the running kernel."""
    from tests.vm.probe import unsigned_module as strip

    base = Path("/lib/modules") / os.uname().release / "kernel" / "lib"
    for name in MODULE_CANDIDATES:
        if Path("/sys/module", name.replace("-", "_")).exists():
            continue
        # lib/ up to 6.14, lib/crc/ since the CRC code moved there (Debian's 7.3)
        for where in (base, base / "crc"):
            for suffix in (".ko", ".ko.xz"):
                if (where / (name + suffix)).exists():
                    return strip(str(where / (name + suffix)), str(tmp / f"{name}.ko"))
    return None


def run_probe(module: str | None) -> dict[str, dict[str, object]]:
    argv = [sys.executable, "-m", "tests.vm.probe"] + (["--module", module] if module else [])
    out = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    result: dict[str, dict[str, object]] = json.loads(out.stdout)
    return result


@pytest.mark.guest(kernel="all", level=["integrity", "confidentiality"])
def test_probe_kernel_mode(guest_capture: Path, tmp_path: Path) -> None:
    """The kernel's own mode, as booted: what the enforcer must reproduce."""
    results = run_probe(unsigned_module(tmp_path))
    (guest_capture / "probe-kernel.json").write_text(json.dumps(results, indent=1))
    assert not results["open /dev/mem"]["ok"]  # sanity: this kernel is locked down


@pytest.mark.guest(kernel="all", level="none")
def test_probe_enforcer_profiles(guest_capture: Path, tmp_path: Path) -> None:
    module = unsigned_module(tmp_path)
    baseline = run_probe(module)
    (guest_capture / "probe-baseline.json").write_text(json.dumps(baseline, indent=1))
    for profile in ("integrity", "confidentiality"):
        run = lockdownctl("enforce", "apply", str(REPO / "examples" / f"{profile}.yaml"))
        try:
            assert run.code == 0, run.err
            results = run_probe(module)
            events = lockdownctl("enforce", "events", "--json").json()["data"]["events"]
        finally:
            removed = lockdownctl("enforce", "remove")
            assert removed.code == 0, removed.err
        (guest_capture / f"probe-enforcer-{profile}.json").write_text(json.dumps(results, indent=1))
        # Each operation the profile refused (and that works unlocked) was logged as a
        # denial: of its own reason, or of the one that gates the way to it (a kprobe
        # event is written through tracefs, whose open is refused first).
        logged = {e["reason"] for e in events if e["verdict"] == "denied"}
        refused = {str(r["reason"]) for op, r in results.items() if not r["ok"] and baseline[op]["ok"]}
        gated_by = {"kprobes": "tracefs"}
        missing = {r for r in refused if r not in logged and gated_by.get(r) not in logged}
        assert not missing, f"{profile}: refused but not logged: {missing}"
    assert run_probe(module) == baseline  # nothing left enforcing


def boot_capture(request: pytest.FixtureRequest, target: Target, name: str) -> dict[str, Any]:
    """A JSON file a guest test of ``target`` wrote to its capture directory
    (boots that guest now if this session has not yet)."""
    if os.environ.get("LOCKDOWNCTL_IN_GUEST") == "1":
        pytest.skip("compares guests: runs on the host")
    boot = request.config.stash[RUNS].get(target, request.session)
    if boot.unavailable:
        message = f"VM guest {target.name} cannot run here: {boot.unavailable}"
        if os.environ.get("LOCKDOWNCTL_REQUIRE_VM") == "1":
            pytest.fail(message + " (LOCKDOWNCTL_REQUIRE_VM=1)")
        pytest.skip(message)
    assert boot.result is not None
    path = boot.result.results / "capture" / name
    if not path.exists():
        pytest.fail(f"guest {target.name} wrote no {name}: its probe test did not run or failed "
                    f"(select tests/vm/test_fidelity.py whole; results in {boot.result.results})")
    result: dict[str, Any] = json.loads(path.read_text())
    return result


@pytest.mark.parametrize("level", ["integrity", "confidentiality"])
@pytest.mark.parametrize("kernel", list(KERNELS))
def test_enforcer_profile_matches_kernel_mode(request: pytest.FixtureRequest, kernel: str, level: str) -> None:
    kernel_side = boot_capture(request, Target(kernel, level), "probe-kernel.json")
    baseline = boot_capture(request, Target(kernel, "none"), "probe-baseline.json")
    ours = boot_capture(request, Target(kernel, "none"), f"probe-enforcer-{level}.json")
    assert set(ours) == set(kernel_side)
    differ = {op: (ours[op], kernel_side[op]) for op in ours if ours[op]["ok"] != kernel_side[op]["ok"]}
    assert not differ, f"enforcer profile {level} differs from lockdown={level} on {kernel}: {differ}"
    # The comparison means something only where the operation works unlocked.
    testable = [op for op, r in baseline.items() if r["ok"]]
    assert len(testable) >= 10, f"too few operations work on the unlocked kernel: {baseline}"
    assert all(not kernel_side[op]["ok"] for op in testable if kernel_side[op]["reason"] in
               ("dev_mem", "kexec", "msr", "module_signature")), "the locked kernel allowed an integrity operation"
