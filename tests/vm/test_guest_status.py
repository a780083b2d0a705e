"""`lockdownctl status` and the reason catalogue against real kernels at every level.

These run inside the guests (see conftest.py); on the host each reports its
guest's result. The guest was booted with ``lockdown=<level>`` (nothing for
none) and ``lsm=lockdown,capability,yama,bpf``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import lockdownctl

from .runner import Target

pytestmark = pytest.mark.guest(kernel="all", level="all")

SECURITYFS_LOCKDOWN = Path("/sys/kernel/security/lockdown")


@pytest.fixture(scope="module")
def status_run(guest_capture: Path) -> tuple[int, str, str]:
    run = lockdownctl("status", "--json")
    if run.code == 0:  # kept for the unit tier (tests/data/guests/, LOCKDOWNCTL_CAPTURE=1), unedited
        (guest_capture / "status.json").write_text(run.out)
    return run.code, run.out, run.err


@pytest.fixture
def status(status_run: tuple[int, str, str]) -> dict[str, Any]:
    code, out, err = status_run
    assert code == 0, f"lockdownctl status --json exited {code}: {err}"
    envelope: dict[str, Any] = json.loads(out)
    return envelope


def test_status_envelope(status: dict[str, Any]) -> None:
    assert {k: status[k] for k in ("lockdownctl", "command", "status", "exit_code", "errors")} == {
        "lockdownctl": 1,
        "command": "status",
        "status": "ok",
        "exit_code": 0,
        "errors": [],
    }
    assert isinstance(status["data"], dict)


def test_status_level_and_source(status: dict[str, Any], guest_target: Target) -> None:
    data = status["data"]
    assert data["level"] == guest_target.level
    assert data["source"]["kind"] == ("none" if guest_target.level == "none" else "cmdline")


def test_status_lsm(status: dict[str, Any]) -> None:
    active = status["data"]["lsm"]["active"]
    assert "lockdown" in active and "bpf" in active, active
    # BPF_LSM=y and bpf in lsm=: a trial lsm/locked_down program must load at every level.
    assert status["data"]["bpf_lsm"]["usable"] is True, status["data"]["bpf_lsm"]


def test_securityfs_agrees(status: dict[str, Any], guest_target: Target) -> None:
    text = SECURITYFS_LOCKDOWN.read_text()
    match = re.search(r"\[(\w+)\]", text)
    assert match is not None, text
    assert match.group(1) == status["data"]["level"] == guest_target.level


def test_catalogue_knows_every_btf_reason() -> None:
    from lockdownctl.btf import read_lockdown_enum
    from lockdownctl.reasons import catalogue

    kernel = read_lockdown_enum()
    assert kernel is not None, "the guest kernel's BTF has no enum lockdown_reason"
    cat = catalogue()
    assert list(cat.unknown) == [], f"BTF members missing from the built-in table: {cat.unknown}"
    markers = {"LOCKDOWN_NONE", "LOCKDOWN_INTEGRITY_MAX", "LOCKDOWN_CONFIDENTIALITY_MAX"}
    btf_reasons = {name: value for name, value in kernel.members if name not in markers}
    on_kernel = {r.enum: r for r in cat.reasons if r.on_kernel}
    assert set(on_kernel) == set(btf_reasons)
    for name, value in btf_reasons.items():
        # Levels from positions, as lockdown_is_locked_down() compares: below INTEGRITY_MAX
        # is denied from integrity on, between the two markers only at confidentiality.
        level = "integrity" if value < kernel.integrity_max else "confidentiality"
        assert value < kernel.confidentiality_max
        assert (on_kernel[name].value, on_kernel[name].level) == (value, level), name


def test_builtin_table_levels_match_kernel(tmp_path: Path) -> None:
    """The table's own (mainline) levels, used when a host has no BTF, agree with this kernel."""
    from lockdownctl.reasons import catalogue

    from_btf = {r.id: r.level for r in catalogue().reasons if r.on_kernel}
    table = {r.id: r.level for r in catalogue(root=tmp_path).reasons}  # tmp_path: a root without BTF
    assert {i: table[i] for i in from_btf} == from_btf
