"""The command line: explain, help, usage errors, colour."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from lockdownctl.output import Style
from lockdownctl.reasons import TABLE
from tests.conftest import ROOTS, lockdownctl

HOST = ROOTS / "host-6.18-kconfig-integrity"


def test_explain_table_with_btf(host_btf: Path) -> None:
    run = lockdownctl("explain", "--json", "--btf", str(host_btf))
    data = run.json()["data"]
    assert data["kernel"]["btf"] is True and data["kernel"]["unknown"] == []
    assert [r["id"] for r in data["reasons"]] == [r.id for r in TABLE]
    assert all(r["on_kernel"] for r in data["reasons"])
    text = lockdownctl("explain", "--btf", str(host_btf)).out
    assert "xen_user_actions      integrity        Xen guest user action                yes (20)" in text


def test_explain_without_btf_says_so(tmp_path: Path) -> None:
    run = lockdownctl("explain", "--root", str(tmp_path))
    assert run.code == 0 and "no kernel BTF" in run.out


@pytest.mark.parametrize(
    "arg",
    ["msr", "LOCKDOWN_MSR", "Lockdown: intel-undervolt: raw MSR access is restricted; see man kernel_lockdown.7",
     "[  101.2] Lockdown: amdctl: raw MSR access is restricted; see man kernel_lockdown.7"],
)
def test_explain_one(arg: str, host_btf: Path) -> None:
    run = lockdownctl("explain", arg, "--btf", str(host_btf))
    assert run.code == 0
    assert run.out.startswith("msr (LOCKDOWN_MSR, value 8 on this kernel)")
    assert "arch/x86/kernel/msr.c" in run.out


def test_explain_unknown_reason() -> None:
    run = lockdownctl("explain", "nonsense", "--root", str(HOST))
    assert run.code == 2 and len(run.err.splitlines()) == 1
    assert "unknown lockdown reason 'nonsense'" in run.err and "dev_mem" in run.err


def test_explain_missing_btf_file(tmp_path: Path) -> None:
    run = lockdownctl("explain", "--btf", str(tmp_path / "none"))
    assert run.code == 2 and f"{tmp_path / 'none'}: no such BTF file" in run.err


@pytest.mark.parametrize("args", [["frobnicate"], ["status", "--expect", "max"], ["status", "--bogus"], []])
def test_usage_errors(args: list[str]) -> None:
    run = lockdownctl(*args)
    assert run.code == 2
    assert "Traceback" not in run.err


def test_usage_error_json() -> None:
    run = lockdownctl("status", "--json", "--expect", "max")
    env = run.json()
    assert env["command"] == "status" and env["errors"][0]["code"] == "input" and env["exit_code"] == 2


@pytest.mark.parametrize("verb", ["status", "explain"])
def test_help(verb: str) -> None:
    run = lockdownctl(verb, "--help")
    assert run.code == 0 and "--json" in run.out and "--root" in run.out


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert Style.for_stream(_Tty()).enabled
    assert not Style.for_stream(io.StringIO()).enabled
    monkeypatch.setenv("NO_COLOR", "1")
    assert not Style.for_stream(_Tty()).enabled
