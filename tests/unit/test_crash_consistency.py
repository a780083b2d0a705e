"""Crash consistency of enable / disable and enable --rollback on every boot setup.

A run is killed at every step that changes the disk (each rename, fsync and
unlink: a forked child dies with os._exit there, as kill -9 would: no handler
runs); a file is changed by someone else between plan and apply; a backup is
damaged. After each: every file is its old or its new contents, byte for byte;
a pending manifest names backups that are complete; the next run converges;
``enable --rollback`` restores the configuration before the last enable.
The same with real signals, a full disk and a read-only file system:
tests/host/test_crash_consistency.py.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lockdownctl.boot import engine
from lockdownctl.boot.run import execute, rollback
from lockdownctl.errors import InputError
from lockdownctl.root import Root
from tests.conftest import DATA, lockdownctl

BOOT = DATA / "boot"
# fixture -> level that changes files there (the two with confidentiality already: lowered, --force)
FIXTURES = {"debian12-grub-cloud": "integrity", "fedora39-bls": "integrity", "rhel8-bls-kernelopts": "integrity",
            "arch-systemd-boot": "integrity", "popos22-kernelstub": "integrity",
            "uki-kernel-install": "integrity"}
STEPS = ("rename", "replace", "fsync", "unlink")


def scratch(tmp_path: Path, name: str) -> Path:
    dest = tmp_path / name
    shutil.copytree(BOOT / name, dest, symlinks=True)
    return dest


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not str(p.relative_to(root)).startswith("var/lib/lockdownctl")}


UNIT = "unit:uki-signed-only"  # --unit: the securityfs boot unit's files instead of the command line


def enable(root: Path, level: str | None, use_unit: bool = False) -> dict[str, Any]:
    return execute(Root(str(root)), level, dry_run=False, use_unit=use_unit, force=True)


def die_at(n: int, fn: Callable[[], object]) -> int:
    """Run ``fn`` in a child that dies (exit 137, no cleanup) at the n-th rename/replace/fsync/unlink; its status."""
    pid = os.fork()
    if pid == 0:  # child
        count = [0]
        for name in STEPS:
            real = getattr(os, name)

            def step(*args: Any, _real: Any = real, **kw: Any) -> Any:
                count[0] += 1
                if count[0] == n:
                    os._exit(137)
                return _real(*args, **kw)
            setattr(os, name, step)
        try:
            fn()
        except BaseException:
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def manifests(root: Path) -> list[dict[str, Any]]:
    base = root / engine.BACKUP_DIR
    return [json.loads((d / "manifest.json").read_text()) for d in sorted(base.iterdir())
            if (d / "manifest.json").exists()] if base.is_dir() else []


def temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*.lockdownctl") if "var/lib/lockdownctl" not in str(p)]


def assert_old_or_new(root: Path, old: dict[str, bytes], new: dict[str, bytes]) -> None:
    # A killed write may leave its temporary file (".NAME.XXXX.lockdownctl": no boot loader
    # or grub.d glob reads a dot file); the next run removes it.
    temps = {str(p.relative_to(root)) for p in temporaries(root)}
    now = {k: v for k, v in tree(root).items() if k not in temps}
    for rel in set(old) | set(new) | set(now):
        assert now.get(rel) in (old.get(rel), new.get(rel)), f"{rel}: neither old nor new"


@pytest.mark.parametrize("name", [*sorted(FIXTURES), UNIT])
@pytest.mark.parametrize("action", ["enable", "disable"])
def test_killed_at_every_step(name: str, action: str, tmp_path: Path) -> None:
    use_unit = name.startswith("unit:")
    name = name.removeprefix("unit:")
    level = FIXTURES.get(name, "integrity")

    def apply(root: Path, level: str | None) -> dict[str, Any]:
        return enable(root, level, use_unit)
    pristine = scratch(tmp_path / "p", name)
    if action == "disable":  # disable undoes an enable: start from the enabled tree
        apply(pristine, level)
        shutil.rmtree(pristine / "var")
    want_level = level if action == "enable" else None
    old = tree(pristine)
    done = scratch(tmp_path / "d", name) if action == "enable" else None
    if done is None:
        done = tmp_path / "d" / name
        shutil.copytree(pristine, done, symlinks=True)
    apply(done, want_level)
    new = tree(done)
    assert new != old
    n = 1
    while True:
        root = tmp_path / f"k{n}" / name
        shutil.copytree(pristine, root, symlinks=True)
        status = die_at(n, lambda r=root: apply(r, want_level))  # type: ignore[misc]
        assert status in (0, 137), status
        assert_old_or_new(root, old, new)
        for m in manifests(root):  # a journaled run's backups are all there, as recorded
            for f in m["files"]:
                if f["backup"] and m["state"] == "pending":
                    data = (root / f["backup"].lstrip("/")).read_bytes()
                    assert engine.sha256(data) == f["old_sha256"]
        # the next run converges to the new configuration
        again = apply(root, want_level)
        assert again["verified"] is True and tree(root) == new, (n, again)
        assert not [m for m in manifests(root) if m["state"] == "pending"] and not temporaries(root)
        if action == "enable":  # and the last enable rolls back to the old one
            undo = rollback(Root(str(root)), dry_run=False, force=False)
            assert undo["verified"] is True and tree(root) == old, (n, undo)
        shutil.rmtree(tmp_path / f"k{n}")
        if status == 0:
            break
        n += 1
    assert n > 3  # every backup, the manifest and every file were steps


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_rollback_restores_exactly_and_converges(name: str, tmp_path: Path) -> None:
    root = scratch(tmp_path, name)
    before = tree(root)
    assert enable(root, FIXTURES[name])["verified"] is True
    after = tree(root)
    preview = rollback(Root(str(root)), dry_run=True, force=False)
    assert tree(root) == after and preview["changed"] and preview["verified"] is True
    assert all(c["diff"] for s in preview["setups"] for c in s["changes"])
    undo = rollback(Root(str(root)), dry_run=False, force=False)
    assert undo["verified"] is True and tree(root) == before
    twice = rollback(Root(str(root)), dry_run=False, force=False)
    assert twice["changed"] is False and twice["verified"] is True and tree(root) == before


def test_rollback_cli_dry_run_diff_refusal_and_force(tmp_path: Path) -> None:
    root = scratch(tmp_path, "fedora39-bls")
    before = tree(root)
    assert lockdownctl("enable", "integrity", "--root", str(root)).code == 0
    run = lockdownctl("enable", "--rollback", "--dry-run", "--root", str(root))
    assert run.code == 0 and "-options" in run.out and "dry run: nothing changed" in run.out
    entry = next((root / "boot/loader/entries").glob("*6.6.9*"))
    entry.write_text(entry.read_text() + "# edited by hand\n")
    run = lockdownctl("enable", "--rollback", "--root", str(root), "--json")
    data = run.json()["data"]
    assert run.code == 1 and "changed since the enable" in data["refused"] and entry.name in data["refused"]
    run = lockdownctl("enable", "--rollback", "--force", "--root", str(root))
    assert run.code == 0 and tree(root) == before, run.out + run.err
    assert lockdownctl("enable", "--rollback", "integrity", "--root", str(root)).code == 2
    assert lockdownctl("enable", "--root", str(root)).code == 2


def test_rollback_without_backup_is_refused(tmp_path: Path) -> None:
    root = scratch(tmp_path, "arch-systemd-boot")
    run = lockdownctl("enable", "--rollback", "--root", str(root))
    assert run.code == 1 and "nothing to roll back" in run.out


def test_rollback_refuses_a_damaged_backup(tmp_path: Path) -> None:
    root = scratch(tmp_path, "arch-systemd-boot")
    enable(root, "integrity")
    after = tree(root)
    (m,) = manifests(root)
    backup = next(f["backup"] for f in m["files"] if f["backup"])
    (root / backup.lstrip("/")).write_text("damaged\n")
    with pytest.raises(InputError, match="backup missing or not what the manifest recorded"):
        rollback(Root(str(root)), dry_run=False, force=True)
    assert tree(root) == after


def test_file_changed_between_plan_and_apply(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = scratch(tmp_path, "fedora39-bls")
    real = engine.write_changes

    def someone_writes_first(r: Root, changes: list[engine.Change], *args: Any, **kw: Any) -> Any:
        path = Path(r / changes[-1].rel)
        path.write_text(path.read_text() + "# another program\n")
        return real(r, changes, *args, **kw)
    monkeypatch.setattr(engine, "write_changes", someone_writes_first)
    before = tree(root)
    with pytest.raises(InputError, match="changed since it was read"):
        enable(root, "integrity")
    monkeypatch.undo()
    now = tree(root)
    changed = [k for k in before if before[k] != now[k]]
    assert len(changed) == 1 and now[changed[0]].endswith(b"# another program\n")  # only theirs
    assert manifests(root) == []
    assert enable(root, "integrity")["verified"] is True  # a new plan from what is there now


def test_interrupted_dry_run_says_pending(tmp_path: Path) -> None:
    pristine = scratch(tmp_path / "p", "fedora39-bls")
    for n in range(1, 60):  # the first step after which a pending manifest is on disk
        root = tmp_path / f"k{n}"
        shutil.copytree(pristine, root, symlinks=True)
        assert die_at(n, lambda r=root: enable(r, "integrity")) == 137  # type: ignore[misc]
        if [m for m in manifests(root) if m["state"] == "pending"]:
            break
    preview = execute(Root(str(root)), "integrity", dry_run=True, use_unit=False, force=True)
    assert preview["pending"] and not preview["recovered"]
    done = enable(root, "integrity")
    assert done["recovered"] and done["verified"] is True


def test_enforcer_state_file_is_old_or_new(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """enforce apply's state file (state/pins.py save_state): a write that fails half-way
    (RLIMIT_FSIZE: EFBIG after 64 bytes) keeps the old file whole and leaves no temporary."""
    import resource
    import signal

    from lockdownctl.state import pins as bpf_engine

    state = tmp_path / "enforcer.json"
    monkeypatch.setattr(bpf_engine, "STATE_DIR", str(tmp_path))
    monkeypatch.setattr(bpf_engine, "STATE", str(state))
    bpf_engine.save_state({"generation": 1})
    old = state.read_bytes()

    def big_write() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))
        bpf_engine.save_state({"generation": 2, "policy": "x" * 4096})
    assert die_at(10**6, big_write) == 1  # OSError (EFBIG) raised: the child reports failure
    assert state.read_bytes() == old and [p.name for p in tmp_path.iterdir()] == ["enforcer.json"]
    for n in (1, 2):  # killed at the fsync, then at the rename
        assert die_at(n, lambda: bpf_engine.save_state({"generation": 3})) == 137
        assert json.loads(state.read_text()) in ({"generation": 1}, {"generation": 3})
