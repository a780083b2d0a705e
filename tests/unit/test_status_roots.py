"""``lockdownctl status --root`` on fixture roots modelled on real systems."""

from __future__ import annotations

from pathlib import Path

import pytest

from lockdownctl.root import Root
from lockdownctl.state.document import read_status
from tests.conftest import ROOTS, lockdownctl

# root: (level, how it was read, source kind, Secure Boot state, lockdown LSM active)
CASES = {
    "debian12-6.1-sb-integrity": ("integrity", "securityfs", "secure_boot", "enabled", True),
    "debian12-6.12-none": ("none", "securityfs", "none", "disabled", True),
    "debian12-6.12-cmdline-confidentiality": ("confidentiality", "securityfs", "cmdline", "not-efi", True),
    "debian12-6.1-securityfs-confidentiality": ("confidentiality", "securityfs", "securityfs", "enabled", True),
    "debian12-6.1-mok-validation-disabled": ("none", "securityfs", "none", "validation-disabled", True),
    # no /sys/firmware and no boot_params captured: how they booted is unknown
    "securityfs-absent-cmdline-integrity": ("integrity", "inferred", "cmdline", "unknown", None),
    "lsm-drops-lockdown": ("integrity", "securityfs", "cmdline", "unknown", False),
    "host-6.18-kconfig-integrity": ("integrity", "securityfs", "kconfig", "not-efi", True),
}


def test_every_fixture_root_has_a_case() -> None:
    roots = {p.name for p in ROOTS.iterdir() if p.is_dir() and p.name != "malformed"}
    assert roots == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_status_of_fixture_root(name: str) -> None:
    level, read_from, kind, sb, lockdown_active = CASES[name]
    status = read_status(Root(ROOTS / name))
    assert status["level"] == level
    assert status["level_read_from"] == read_from
    assert status["source"]["kind"] == kind
    assert status["secure_boot"]["state"] == sb
    assert status["lsm"]["lockdown_active"] is lockdown_active
    assert status["bpf_lsm"]["trial_load"] == "not-tried"  # never on a fixture
    assert status["enforcer"] == {"loaded": None}  # only the running system has one
    if kind not in ("none", "unknown"):
        assert status["source"]["evidence"], "a source needs evidence"


def test_kconfig_forced_host_says_why() -> None:
    status = read_status(Root(ROOTS / "host-6.18-kconfig-integrity"))
    assert status["forced_by_kconfig"] == "integrity"
    assert status["source"]["detail"] == "CONFIG_LOCK_DOWN_KERNEL_FORCE_INTEGRITY=y"
    texts = [e["text"] for e in status["source"]["evidence"]]
    assert "Kernel is locked down from Kernel configuration; see man kernel_lockdown.7" in texts
    assert status["can_raise"] and status["raise_to"] == ["confidentiality"]
    assert status["lsm"]["active"] == ["lockdown", "capability", "landlock", "bpf"]
    assert status["bpf_lsm"]["listed"] and status["bpf_lsm"]["config"]


def test_secure_boot_source_cites_config_and_efivars() -> None:
    status = read_status(Root(ROOTS / "debian12-6.1-sb-integrity"))
    where = [e["where"] for e in status["source"]["evidence"]]
    assert any(w.endswith("config-6.1.0-56-amd64:9762") for w in where)
    assert any("SecureBoot-8be4df61" in e["text"] for e in status["source"]["evidence"])
    assert status["secure_boot"]["boot_params"] == "enabled"


def test_lsm_dropped_is_reported_not_enforced() -> None:
    status = read_status(Root(ROOTS / "lsm-drops-lockdown"))
    assert status["lsm"]["cmdline_lsm"] == ["capability", "yama", "apparmor", "bpf"]
    assert status["can_raise"] is False
    assert any("not enforced" in n for n in status["notes"])
    run = lockdownctl("status", "--root", str(ROOTS / "lsm-drops-lockdown"))
    assert "NOT active" in run.out


def test_inferred_level_is_labelled() -> None:
    run = lockdownctl("status", "--root", str(ROOTS / "securityfs-absent-cmdline-integrity"))
    assert run.code == 0
    assert "inferred" in run.out


@pytest.mark.parametrize(
    ("name", "expect", "code"),
    [("debian12-6.12-none", "integrity", 1), ("debian12-6.1-sb-integrity", "integrity", 0),
     ("debian12-6.1-sb-integrity", "confidentiality", 1), ("debian12-6.12-cmdline-confidentiality", "integrity", 0),
     ("debian12-6.12-none", "none", 0)],
)
def test_expect(name: str, expect: str, code: int) -> None:
    run = lockdownctl("status", "--json", "--root", str(ROOTS / name), "--expect", expect)
    assert run.code == code
    env = run.json()
    assert env["exit_code"] == code and env["status"] == ("ok" if code == 0 else "findings")
    assert env["data"]["expect"] == {"level": expect, "met": code == 0}


def test_json_envelope_shape() -> None:
    run = lockdownctl("status", "--json", "--root", str(ROOTS / "debian12-6.1-sb-integrity"))
    env = run.json()
    assert set(env) == {"lockdownctl", "command", "status", "exit_code", "data", "errors"}
    assert env["lockdownctl"] == 1 and env["command"] == "status" and env["errors"] == []
    assert env["data"]["level"] == "integrity" and env["data"]["source"]["kind"] == "secure_boot"


def test_text_has_no_colour_when_piped() -> None:
    run = lockdownctl("status", "--root", str(ROOTS / "debian12-6.12-none"))
    assert "\033[" not in run.out
    assert run.out.startswith("Lockdown:      none, not locked down")


def test_root_must_be_a_directory(tmp_path: Path) -> None:
    run = lockdownctl("status", "--root", str(tmp_path / "nope"))
    assert run.code == 2
    assert run.err.strip() == f"lockdownctl: error: {tmp_path / 'nope'}: --root is not a directory"


def test_an_empty_root_is_unknown_not_a_verdict(tmp_path: Path) -> None:
    # issue #14 item 3: absent evidence is "unknown", never "not an EFI boot"
    status = read_status(Root(tmp_path))
    assert status["secure_boot"]["state"] == "unknown" and status["secure_boot"]["efi"] is None
    assert status["bpf_lsm"]["fix"] == "" and status["bpf_lsm"]["usable"] is False
    text = lockdownctl("status", "--root", str(tmp_path)).out
    assert "Secure Boot:   unknown" in text and "not an EFI boot" not in text
    assert "no BTF" not in text


@pytest.mark.parametrize(("evidence", "state"), [
    ("sys/firmware/acpi/tables/DSDT", "not-efi"),  # sysfs's firmware directory, without efi/
    ("sys/firmware/efi/runtime", "unknown"),  # EFI, variables not readable
    ("sys/kernel/boot_params/data", "not-efi"),  # the x86 EFI stub never ran (secure_boot unset)
])
def test_what_counts_as_evidence_of_the_boot(tmp_path: Path, evidence: str, state: str) -> None:
    path = tmp_path / evidence
    path.parent.mkdir(parents=True)
    path.write_bytes(bytes(4096))
    assert read_status(Root(tmp_path))["secure_boot"]["state"] == state
