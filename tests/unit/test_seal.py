"""The seal's decisions that need no kernel: what `apply --seal` warns about,
and the refusal every change to a sealed policy gets."""

from __future__ import annotations

from pathlib import Path

from lockdownctl.bpf.apply import _seal_warnings
from lockdownctl.bpf.seal import Sealed
from lockdownctl.btf import parse_lockdown_enum
from lockdownctl.policy import load_policy, verdicts
from lockdownctl.reasons import merge
from tests.conftest import host_btf_bytes

HOST = merge(parse_lockdown_enum(host_btf_bytes(), "host"))


def warnings_for(tmp_path: Path, text: str, level: str | None) -> list[str]:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    policy = load_policy(str(path), HOST)
    return _seal_warnings(policy, verdicts(policy, HOST), level, HOST)


def test_seal_at_none_warns_about_every_integrity_reason_left_open(tmp_path: Path) -> None:
    (warning,) = warnings_for(tmp_path, "version: 1\nprofile: none\nreasons:\n  tracefs: deny\n  msr: deny\n", "none")
    assert "root can change the kernel through them and so undo the seal" in warning
    assert "module_signature" in warning and "dev_mem" in warning and "msr," not in warning


def test_seal_of_an_integrity_policy_warns_only_when_scoped(tmp_path: Path) -> None:
    assert warnings_for(tmp_path, "version: 1\nprofile: integrity\n", "none") == []
    (warning,) = warnings_for(tmp_path, "version: 1\nprofile: integrity\nscope:\n  cgroup: /x\n", "none")
    assert "scoped to cgroup /x" in warning


def test_seal_on_a_locked_down_kernel_needs_no_warning(tmp_path: Path) -> None:
    assert warnings_for(tmp_path, "version: 1\nprofile: none\n", "integrity") == []


def test_seal_in_audit_mode_says_it_denies_nothing(tmp_path: Path) -> None:
    out = warnings_for(tmp_path, "version: 1\nprofile: integrity\nmode: audit\n", None)
    assert any("audit mode" in w for w in out)


def test_refusal_is_one_line_with_exit_1() -> None:
    err = Sealed(1_700_000_000)
    assert err.exit_code == 1 and err.code == "sealed"
    assert err.message.startswith("policy is sealed until reboot (sealed since 2023-11-")
    assert "\n" not in err.message
