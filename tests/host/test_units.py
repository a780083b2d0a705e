"""The shipped systemd units, checked by systemd's own tools (systemd-analyze).

Each unit is verified inside a scratch root that holds this host's unit files
(so sysinit.target, systemd-modules-load.service... are the real ones) and the
real programs the units run; ``--man=no`` because the man pages are not
installed on a build host.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.host.conftest import require, require_tool

PACKAGING = REPO / "packaging"
ENFORCE = "lockdownctl-enforce.service"
UNIT_SUFFIXES = (".service", ".timer", ".path")
# Every unit shipped (a template as one instance).
UNITS = sorted(p.name.replace("@.", "@integrity.") for p in PACKAGING.iterdir() if p.name.endswith(UNIT_SUFFIXES))


def _launcher(root: Path) -> None:
    """/usr/bin/lockdownctl below root: a launcher of this checkout, as the package installs one."""
    path = root / "usr/bin/lockdownctl"
    path.write_text(f"#!{sys.executable}\nfrom lockdownctl.cli import entry\nentry()\n")
    path.chmod(0o755)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    analyze = require_tool("systemd-analyze")
    assert analyze
    system = Path("/usr/lib/systemd/system")
    require(system.is_dir(), "no /usr/lib/systemd/system on this host")
    (tmp_path / "usr/lib/systemd").mkdir(parents=True)
    shutil.copytree(system, tmp_path / "usr/lib/systemd/system", symlinks=True)
    (tmp_path / "usr/bin").mkdir(parents=True, exist_ok=True)
    for link in ("bin", "sbin"):  # Debian 12: merged /usr
        (tmp_path / link).symlink_to("usr/bin")
    for prog in ("sh", "grep", "mkdir"):
        shutil.copy2(os.path.realpath(shutil.which(prog) or f"/usr/bin/{prog}"), tmp_path / "usr/bin" / prog)
    _launcher(tmp_path)
    units = tmp_path / "etc/systemd/system"
    units.mkdir(parents=True)
    for unit in PACKAGING.iterdir():
        if unit.name.endswith(UNIT_SUFFIXES):
            shutil.copy2(unit, units)
    return tmp_path


def analyze(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", *args, f"--root={root}"], capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.mark.parametrize("unit", UNITS)
def test_verify_clean(root: Path, unit: str) -> None:
    proc = analyze(root, "verify", "--man=no", unit)
    assert proc.returncode == 0 and not proc.stdout.strip() and not proc.stderr.strip(), proc.stderr


def test_verify_finds_a_missing_command(root: Path) -> None:
    """The check above is not vacuous: without the command, verify fails."""
    (root / "usr/bin/lockdownctl").unlink()
    proc = analyze(root, "verify", "--man=no", ENFORCE)
    assert proc.returncode != 0 and "/usr/bin/lockdownctl is not executable" in proc.stderr


def test_enforce_unit_enabled_in_sysinit(root: Path) -> None:
    """Enabled as its [Install] says, the whole sysinit.target transaction still verifies."""
    wants = root / "etc/systemd/system/sysinit.target.wants"
    wants.mkdir()
    (wants / ENFORCE).symlink_to(f"../{ENFORCE}")
    proc = analyze(root, "verify", "--man=no", "sysinit.target")
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr


def _settings(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).extend(value.split())
    return out


def test_enforce_unit_ordering() -> None:
    """Before modules-load.d and sysinit.target; nothing that stops or undoes it; failures are failures."""
    s = _settings(PACKAGING / ENFORCE)
    assert s["DefaultDependencies"] == ["no"]
    assert {"sysinit.target", "systemd-modules-load.service"} <= set(s["Before"])
    assert "sys-fs-bpf.mount" in s["After"]
    assert "systemd-modules-load.service" not in s.get("After", [])
    assert s["RemainAfterExit"] == ["yes"] and s["Type"] == ["oneshot"]
    assert "ExecStop" not in s and "Conflicts" not in s  # a sealed policy outlives the unit
    # The only skip is the absent policy file: a broken policy or BPF LSM must fail the unit.
    assert [k for k in s if k.startswith(("Condition", "Assert"))] == ["ConditionPathExists"]
    assert s["ExecStart"] == ["/usr/bin/lockdownctl", "enforce", "apply", "/etc/lockdownctl/policy.yaml"]
    assert not any(cmd.startswith("-") for cmd in s["ExecStart"])  # '-' would ignore the exit status


def _exposure(root: Path, unit: str) -> float:
    proc = analyze(root, "security", "--offline=true", unit)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", proc.stdout + proc.stderr)
    assert match, proc.stdout + proc.stderr
    return float(match.group(1))


def test_lockdown_unit_hardened(root: Path) -> None:
    """The securityfs unit scored 9.5 UNSAFE with no hardening (new-user walkthrough, section 4)."""
    assert _exposure(root, "lockdownctl-lockdown@integrity.service") <= 2.0
    s = _settings(PACKAGING / "lockdownctl-lockdown@.service")
    # Its one job is a write below /sys: nothing may make /sys read-only.
    assert "ProtectKernelTunables" not in s and "ProtectSystem" not in s
    # No lockdown file: the unit fails rather than being skipped as if all were well.
    assert s["AssertPathExists"] == ["/sys/kernel/security/lockdown"] and "ConditionPathExists" not in s


def _exec_start(tmp: Path, policy_text: str) -> subprocess.CompletedProcess[str]:
    """The unit's own ExecStart= line, with this checkout's command and a policy in tmp."""
    argv = _settings(PACKAGING / ENFORCE)["ExecStart"]
    assert argv[0] == "/usr/bin/lockdownctl" and argv[-1] == "/etc/lockdownctl/policy.yaml"
    policy = tmp / "policy.yaml"
    policy.write_text(policy_text)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run([sys.executable, "-m", "lockdownctl", *argv[1:-1], str(policy)], capture_output=True,
                          text=True, timeout=120, env=env, check=False)


def test_enforce_unit_fails_on_a_broken_policy(tmp_path: Path) -> None:
    """systemd marks a oneshot failed on a non-zero exit: a policy that does not parse is exit 2."""
    proc = _exec_start(tmp_path, "version: 1\nprofile: integrity\nreasons:\n  no_such_reason: deny\n")
    assert proc.returncode == 2 and "no_such_reason" in proc.stderr, proc.stderr


def test_enforce_unit_fails_without_a_usable_bpf_lsm(tmp_path: Path) -> None:
    """On this kernel (bpf listed, LSM programs refused) the unit fails with exit 3, never a silent skip."""
    require(os.geteuid() == 0, "needs root")
    probe = subprocess.run(["bpftool", "feature", "probe", "kernel"], capture_output=True, text=True,
                           check=False).stdout if shutil.which("bpftool") else ""
    require("eBPF program_type lsm is NOT available" in probe,
            "this kernel accepts LSM programs: the failure path cannot be shown here")
    proc = _exec_start(tmp_path, "version: 1\nprofile: integrity\n")
    assert proc.returncode == 3 and "BPF LSM is not usable" in proc.stderr, proc.stderr
