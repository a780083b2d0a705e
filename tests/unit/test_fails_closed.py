"""Fail closed: no verb gives a verdict (pass, ready, 0 denials, valid,
verified, would enforce) that its evidence did not earn.

The first part states each defect of issue 14 that was fixed (every test
failed on the main branch before): audit of nothing, check of an empty root,
watch of garbage, an empty source or a missing journal, and the messages that
showed Python reprs. The second part feeds every verb empty, missing,
garbage, truncated and wrong-type inputs (files, stdin, --root trees) and
requires a documented exit code, no traceback and no verdict of "all clear".
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from lockdownctl.errors import EXIT_FEATURE, EXIT_FINDINGS, EXIT_INPUT, EXIT_OK, EXIT_ROOT
from tests.conftest import DATA, Run, lockdownctl

# The documented codes (README, lockdownctl(8)), stated here as users read them.
EXIT_UNDECIDED = 5
EXIT_OUTPUT = 74
DOCUMENTED = {EXIT_OK, EXIT_FINDINGS, EXIT_INPUT, EXIT_FEATURE, EXIT_ROOT, EXIT_UNDECIDED, EXIT_OUTPUT}


def _no_traceback(run: Run) -> None:
    assert "Traceback" not in run.err and "internal error" not in run.err, run.err


# --- audit ------------------------------------------------------------------------------


def test_audit_of_an_empty_root_is_undecided_not_pass(tmp_path: Path) -> None:
    run = lockdownctl("audit", "--root", str(tmp_path))
    assert run.code == EXIT_UNDECIDED, run.out
    assert "PASS" not in run.out and "UNDECIDED" in run.out and "kernel config" in run.out
    env = lockdownctl("audit", "--root", str(tmp_path), "--json").json()
    assert env["status"] == "undecided" and env["exit_code"] == EXIT_UNDECIDED
    assert env["data"]["summary"]["passed"] is False and env["data"]["summary"]["decided"] == 0
    assert "kconfig" in {m["source"] for m in env["data"]["missing_inputs"]}


def test_audit_of_a_command_line_without_lockdown_is_undecided() -> None:
    run = lockdownctl("audit", "--cmdline", "quiet splash")
    assert run.code == EXIT_UNDECIDED and "PASS" not in run.out


def test_audit_lockdown_none_on_the_command_line_fails_whatever_is_missing() -> None:
    run = lockdownctl("audit", "--cmdline", "quiet lockdown=none", "--json")
    env = run.json()
    assert run.code == EXIT_FINDINGS and env["status"] == "findings"
    level = next(c for c in env["data"]["checks"] if c["id"] == "lockdown_level")
    assert level["verdict"] == "fail" and "lockdown=none" in level["evidence"]
    assert env["data"]["lockdown"]["level"] == "none"


def test_audit_lockdown_none_is_overridden_by_a_config_that_forces_a_level() -> None:
    """lockdown_param() ignores "none": a Kconfig-forced level stands (a decided pass)."""
    run = lockdownctl("audit", "--config", str(DATA / "kconfig/config-6.18.44-fc-v657"), "--cmdline",
                      "quiet lockdown=none", "--json")
    level = next(c for c in run.json()["data"]["checks"] if c["id"] == "lockdown_level")
    assert level["verdict"] == "ok"


@pytest.mark.parametrize("arg", ["/boot/cmdline-typo.txt", "./cmdline.txt", "sub/dir/cmdline"])
def test_audit_cmdline_that_looks_like_a_path_is_read_as_a_file(arg: str, tmp_path: Path) -> None:
    run = lockdownctl("audit", "--cmdline", str(tmp_path / arg) if arg.startswith("sub") else arg)
    assert run.code == EXIT_INPUT and "no such file" in run.err, run.err


def test_audit_cmdline_directory_is_an_error_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = lockdownctl("audit", "--cmdline", str(tmp_path))
    assert run.code == EXIT_INPUT and f"{tmp_path}: is a directory" in run.err
    monkeypatch.chdir(tmp_path)  # a bare name that exists is a file too
    (tmp_path / "adir").mkdir()
    run = lockdownctl("audit", "--cmdline", "adir")
    assert run.code == EXIT_INPUT and "adir: is a directory" in run.err


def test_audit_cmdline_with_root_device_is_still_a_command_line() -> None:
    run = lockdownctl("audit", "--cmdline", "BOOT_IMAGE=/boot/vmlinuz root=/dev/sda1 ro lockdown=integrity",
                      "--json")
    assert run.json()["data"]["inputs"]["cmdline"] == "--cmdline"


@pytest.mark.parametrize("option", ["--sysctl", "--config", "--uki", "--rules", "--cmdline"])
def test_audit_file_options_say_directory_and_never_show_python_text(option: str, tmp_path: Path) -> None:
    run = lockdownctl("audit", option, str(tmp_path))
    assert run.code == EXIT_INPUT and f"{tmp_path}: is a directory" in run.err, run.err
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\xfe\xff" + os.urandom(2000))
    run = lockdownctl("audit", option, str(garbage))
    assert run.code == EXIT_INPUT, run.err
    assert "codec" not in run.err and "Errno" not in run.err and "'utf-8'" not in run.err, run.err


def test_audit_unreadable_file_message_has_no_python_repr(tmp_path: Path) -> None:
    path = tmp_path / "unreadable"
    path.write_text("quiet\n")
    path.chmod(0)
    run = lockdownctl("audit", "--cmdline", str(path), user="65534")
    assert run.code == EXIT_INPUT and "Permission denied" in run.err
    assert "Errno" not in run.err and "'" not in run.err, run.err


# --- check ------------------------------------------------------------------------------


def test_check_of_an_empty_root_is_unknown_not_ready(tmp_path: Path) -> None:
    run = lockdownctl("check", "--root", str(tmp_path))
    assert run.code == EXIT_UNDECIDED, run.out
    assert not re.search(r"\bready\b", run.out.replace("not a readiness", "")) and "unknown" in run.out
    env = lockdownctl("check", "--root", str(tmp_path), "--json").json()
    assert env["status"] == "undecided" and env["data"]["verdict"] == "unknown"
    assert "kernel release" in env["data"]["not_read"] and "process table" in env["data"]["not_read"]


def test_check_of_a_root_with_only_a_release_is_unknown(tmp_path: Path) -> None:
    (tmp_path / "proc/sys/kernel").mkdir(parents=True)
    (tmp_path / "proc/sys/kernel/osrelease").write_text("6.1.0-56-amd64\n")
    assert lockdownctl("check", "--root", str(tmp_path)).code == EXIT_UNDECIDED


def test_check_of_the_running_system_has_evidence() -> None:
    env = lockdownctl("check", "--json").json()
    assert env["data"]["verdict"] != "unknown" and env["data"]["evidence"]["kernel release"]
