"""Bad input: one line naming the file, exit 2, never a traceback."""

from __future__ import annotations

import pytest

from tests.conftest import ROOTS, lockdownctl

BAD = ROOTS / "malformed"
# root -> (verb, the file the error must name, what it must say)
CASES = {
    "efivar-short": ("status", "sys/firmware/efi/efivars/SecureBoot-", "truncated EFI variable: 3 bytes"),
    "cmdline-garbage": ("status", "proc/cmdline", "malformed command line"),
    "config-gz-broken": ("status", "proc/config.gz", "broken gzip data"),
    "btf-bad-magic": ("explain", "sys/kernel/btf/vmlinux", "bad magic 0x9feb"),
    "lockdown-file-garbage": ("status", "sys/kernel/security/lockdown", "malformed lockdown file"),
    "boot-params-truncated": ("status", "sys/kernel/boot_params/data", "truncated boot_params: 100 bytes"),
    "kconfig-not-a-config": ("status", "boot/config-6.1.0-56-amd64:2", "not a kernel config line"),
}


def test_every_malformed_root_has_a_case() -> None:
    assert {p.name for p in BAD.iterdir()} == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_input(name: str) -> None:
    verb, where, what = CASES[name]
    run = lockdownctl(verb, "--root", str(BAD / name))
    assert run.code == 2
    assert run.out == ""
    lines = run.err.splitlines()
    assert len(lines) == 1, run.err
    assert lines[0].startswith(f"lockdownctl: error: {BAD / name}/{where}")
    assert what in lines[0]
    assert "Traceback" not in run.err


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_input_json(name: str) -> None:
    verb, where, _ = CASES[name]
    run = lockdownctl(verb, "--json", "--root", str(BAD / name))
    env = run.json()
    assert run.code == 2 and env["exit_code"] == 2 and env["status"] == "error" and env["data"] is None
    assert env["errors"][0]["code"] == "input" and where in env["errors"][0]["message"]


def test_missing_files_are_unknown_not_errors(tmp_path) -> None:
    run = lockdownctl("status", "--json", "--root", str(tmp_path))
    assert run.code == 0
    data = run.json()["data"]
    assert data["level"] is None and data["source"]["kind"] == "unknown"
    assert any("kernel configuration not found" in n for n in data["notes"])
