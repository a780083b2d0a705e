"""policy validate and enforce apply --dry-run resolve what enforce apply
resolves (users, scope cgroup, exception exe/cgroup), below --root."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import REPO, lockdownctl

LAPTOP = REPO / "examples" / "laptop.yaml"


def _root(tmp_path: Path, *files: str) -> Path:
    root = tmp_path / "root"
    for rel in ("etc/passwd", "sys/fs/cgroup/system.slice/x.service/cgroup.procs", *files):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n"
                                if rel == "etc/passwd" else "")
    return root


def _policy(tmp_path: Path, body: str) -> str:
    path = tmp_path / "p.yaml"
    path.write_text("version: 1\nprofile: integrity\n" + body)
    return str(path)


def test_an_exception_for_a_program_not_installed_is_skipped_with_a_warning(tmp_path: Path) -> None:
    root = _root(tmp_path)
    run = lockdownctl("policy", "validate", str(LAPTOP), "--root", str(root), "--json")
    assert run.code == 0
    data = run.json()
    assert data["data"]["skipped"] == [f"{LAPTOP}:10: exception undervolt skipped: /usr/bin/intel-undervolt "
                                       "is not installed"]
    # the skip is a warning; the others are the protection analysis's (#20)
    assert data["warnings"][: len(data["data"]["skipped"])] == data["data"]["skipped"]
    assert set(data["warnings"][1:]) == set(data["data"]["protection"]["warnings"])
    text = lockdownctl("policy", "validate", str(LAPTOP), "--root", str(root))
    assert "1 exception(s), 1 skipped (not installed)" in text.out
    assert "warning: " in text.err and "intel-undervolt is not installed" in text.err


def test_an_installed_program_is_not_skipped(tmp_path: Path) -> None:
    root = _root(tmp_path, "usr/bin/intel-undervolt")
    run = lockdownctl("policy", "validate", str(LAPTOP), "--root", str(root), "--json")
    data = run.json()
    # no skip warning; what remains is the protection analysis's own (msr to intel-undervolt, #20)
    assert run.code == 0 and data["data"]["skipped"] == []
    assert set(data.get("warnings", [])) == set(data["data"]["protection"]["warnings"])


def test_an_unknown_user_is_an_error_with_file_and_line(tmp_path: Path) -> None:
    root = _root(tmp_path)
    policy = _policy(tmp_path, "exceptions:\n  - uid: nosuchuser\n    allow: [msr]\n")
    for verb in (["policy", "validate"], ["enforce", "apply", "--dry-run"]):
        run = lockdownctl(*verb, policy, "--root", str(root))
        assert run.code == 2, (verb, run.err)
        assert f"{policy}:4: no such user 'nosuchuser' in {root}/etc/passwd" in run.err
    ok = _policy(tmp_path, "exceptions:\n  - uid: alice\n    allow: [msr]\n")
    assert lockdownctl("policy", "validate", ok, "--root", str(root)).code == 0


def test_a_missing_scope_cgroup_is_an_error_with_file_and_line(tmp_path: Path) -> None:
    root = _root(tmp_path)
    policy = _policy(tmp_path, "scope:\n  cgroup: /nonexistent.slice\n")
    for verb in (["policy", "validate"], ["enforce", "apply", "--dry-run"]):
        run = lockdownctl(*verb, policy, "--root", str(root))
        assert run.code == 2
        assert f"{policy}:4: scope: cgroup /nonexistent.slice does not exist" in run.err
    ok = _policy(tmp_path, "scope:\n  cgroup: /system.slice\n")
    assert lockdownctl("enforce", "apply", "--dry-run", ok, "--root", str(root)).code == 0


def test_a_missing_exception_cgroup_is_an_error(tmp_path: Path) -> None:
    root = _root(tmp_path)
    policy = _policy(tmp_path, "exceptions:\n  - cgroup: /gone.slice\n    allow: [msr]\n")
    run = lockdownctl("policy", "validate", policy, "--root", str(root))
    assert run.code == 2 and f"{policy}:4: cgroup /gone.slice does not exist" in run.err


def test_apply_outside_dry_run_refuses_a_root(tmp_path: Path) -> None:
    run = lockdownctl("enforce", "apply", str(LAPTOP), "--root", str(_root(tmp_path)))
    assert run.code == 2 and "--root only with --dry-run" in run.err
