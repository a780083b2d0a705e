"""Crash consistency of enable / disable with real failures (needs root, strace, unshare).

- kill -9 by the kernel at every step: ``strace --inject=SYSCALL:signal=KILL:when=N``
  on each rename, fsync, unlink and write of a real ``lockdownctl enable``, N = 1, 2,
  ... until the run completes;
- a full disk: the root on a small tmpfs in a private mount namespace
  (``unshare -m``), every amount of free space from none to enough;
- a read-only file system: the whole root, and only /etc (backups writable).

After each: every file is its old or its new contents, byte for byte; the
command fails with one line (never a traceback); the next run (space back,
read-write again) converges; ``enable --rollback`` then restores the old tree.
The in-process variant over every setup is tests/unit/test_crash_consistency.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import DATA, REPO
from tests.host.conftest import require_root, require_tool

BOOT = DATA / "boot"
CASES = {"debian12-grub-cloud": "integrity", "fedora39-bls": "integrity"}  # 2 and 4 files changed
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src"), "PYTHONDONTWRITEBYTECODE": "1"}


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not str(p.relative_to(root)).startswith("var/lib/lockdownctl")
            and not (p.name.startswith(".") and p.name.endswith(".lockdownctl"))}


def cli(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, sys.executable, "-m", "lockdownctl", *args], capture_output=True, text=True,
                          env=ENV, timeout=300, check=False)


def old_and_new(tmp_path: Path, name: str, level: str) -> tuple[Path, dict[str, bytes], dict[str, bytes]]:
    pristine = tmp_path / "pristine"
    shutil.copytree(BOOT / name, pristine, symlinks=True)
    done = tmp_path / "done"
    shutil.copytree(pristine, done, symlinks=True)
    assert cli("enable", level, "--force", "--root", str(done)).returncode == 0
    return pristine, tree(pristine), tree(done)


def assert_old_or_new(root: Path, old: dict[str, bytes], new: dict[str, bytes], what: str) -> None:
    now = tree(root)
    for rel in set(old) | set(new) | set(now):
        assert now.get(rel) in (old.get(rel), new.get(rel)), f"{what}: {rel} is neither old nor new"


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("syscalls", ["rename", "fsync", "unlink", "write"])
def test_sigkill_at_every_syscall(name: str, syscalls: str, tmp_path: Path) -> None:
    strace = require_tool("strace")
    level = CASES[name]
    pristine, old, new = old_and_new(tmp_path, name, level)
    n = 1
    while True:
        root = tmp_path / f"k{n}"
        shutil.copytree(pristine, root, symlinks=True)
        run = cli("enable", level, "--force", "--root", str(root),
                  prefix=(strace, "-f", "-qq", "-o", "/dev/null", f"--inject={syscalls}:signal=KILL:when={n}"))
        killed = run.returncode == -9 or run.returncode == 128 + 9
        assert killed or run.returncode == 0, (n, run.returncode, run.stderr[-2000:])
        assert_old_or_new(root, old, new, f"killed at {syscalls} #{n}")
        again = cli("enable", level, "--force", "--root", str(root), "--json")
        assert again.returncode == 0 and tree(root) == new, (n, again.stdout[-2000:], again.stderr[-2000:])
        back = cli("enable", "--rollback", "--root", str(root))
        assert back.returncode == 0 and tree(root) == old, (n, back.stdout[-2000:])
        shutil.rmtree(root)
        if not killed:
            break
        n += 1
    assert n > 1 or syscalls == "unlink"  # every other syscall happens at least once


DRIVER = textwrap.dedent("""
    import json, os, shutil, subprocess, sys
    mnt, src, level, mode = sys.argv[1:5]
    def sh(*a):
        subprocess.run(a, check=True)
    sh("mount", "--make-rprivate", "/")
    sh("mount", "-t", "tmpfs", "-o", "size=2m,nr_inodes=4096", "tmpfs", mnt)
    root = os.path.join(mnt, "root")
    results = []
    def run(*args):
        p = subprocess.run([sys.executable, "-m", "lockdownctl", *args, "--root", root, "--json"],
                           capture_output=True, text=True)
        return {"code": p.returncode, "out": p.stdout[-3000:], "err": p.stderr[-3000:]}
    if mode == "full":
        for free_kib in range(0, 96, 4):
            shutil.rmtree(root, ignore_errors=True)
            shutil.copytree(src, root, symlinks=True)
            filler = os.path.join(mnt, "filler")
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            try:  # fill the disk, then give back free_kib
                while True:
                    os.write(fd, b"x" * 4096)
            except OSError:
                pass
            os.close(fd)
            os.truncate(filler, max(0, os.path.getsize(filler) - free_kib * 1024))
            first = run("enable", level, "--force")
            snapshot = {}
            for d, _, files in os.walk(root):
                for f in files:
                    p = os.path.join(d, f)
                    snapshot[os.path.relpath(p, root)] = open(p, "rb").read().decode("latin-1")
            os.unlink(filler)
            again = run("enable", level, "--force")
            back = run("enable", "--rollback")
            after = {}
            for d, _, files in os.walk(root):
                for f in files:
                    p = os.path.join(d, f)
                    after[os.path.relpath(p, root)] = open(p, "rb").read().decode("latin-1")
            results.append({"free_kib": free_kib, "first": first, "snapshot": snapshot, "again": again,
                            "back": back, "after": after})
    else:
        shutil.copytree(src, root, symlinks=True)
        if mode == "ro-all":
            sh("mount", "-o", "remount,ro", mnt)
        else:  # ro-etc: the backups can be written, the configuration cannot
            sh("mount", "--bind", os.path.join(root, "etc"), os.path.join(root, "etc"))
            sh("mount", "-o", "remount,bind,ro", os.path.join(root, "etc"))
        first = run("enable", level, "--force")
        snapshot = {}
        for d, _, files in os.walk(root):
            for f in files:
                p = os.path.join(d, f)
                snapshot[os.path.relpath(p, root)] = open(p, "rb").read().decode("latin-1")
        if mode == "ro-all":
            sh("mount", "-o", "remount,rw", mnt)
        else:
            sh("umount", os.path.join(root, "etc"))
        again = run("enable", level, "--force")
        back = run("enable", "--rollback")
        after = {}
        for d, _, files in os.walk(root):
            for f in files:
                p = os.path.join(d, f)
                after[os.path.relpath(p, root)] = open(p, "rb").read().decode("latin-1")
        results.append({"first": first, "snapshot": snapshot, "again": again, "back": back, "after": after})
    print(json.dumps(results))
""")


def in_namespace(tmp_path: Path, name: str, mode: str) -> list[dict[str, object]]:
    require_root()
    unshare = require_tool("unshare")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.run([unshare, "-m", sys.executable, "-c", DRIVER, str(mnt), str(BOOT / name), CASES[name],
                           mode], capture_output=True, text=True, env=ENV, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not any(line.split()[4] == str(mnt) for line in Path("/proc/self/mountinfo").read_text().splitlines())
    results: list[dict[str, object]] = json.loads(proc.stdout)
    return results


def _files(snapshot: object) -> dict[str, bytes]:
    assert isinstance(snapshot, dict)
    return {k: v.encode("latin-1") for k, v in snapshot.items()
            if not k.startswith("var/lib/lockdownctl") and not (os.path.basename(k).startswith(".")
                                                                and k.endswith(".lockdownctl"))}


def check_result(r: dict[str, object], old: dict[str, bytes], new: dict[str, bytes], what: str) -> None:
    first, again, back = r["first"], r["again"], r["back"]
    assert isinstance(first, dict) and isinstance(again, dict) and isinstance(back, dict)
    assert first["code"] in (0, 2), (what, first)
    assert "Traceback" not in str(first["err"]), (what, first)
    if first["code"] == 2:
        err = json.loads(str(first["out"]))["errors"]
        assert len(err) == 1 and "\n" not in err[0]["message"], (what, err)
    snap = _files(r["snapshot"])
    for rel in set(old) | set(new) | set(snap):
        assert snap.get(rel) in (old.get(rel), new.get(rel)), f"{what}: {rel} is neither old nor new"
    assert again["code"] == 0, (what, again)
    assert back["code"] == 0 and _files(r["after"]) == old, (what, back)


@pytest.mark.parametrize("name", sorted(CASES))
def test_full_disk_at_every_amount_of_free_space(name: str, tmp_path: Path) -> None:
    _, old, new = old_and_new(tmp_path, name, CASES[name])
    results = in_namespace(tmp_path, name, "full")
    codes = [r["first"]["code"] for r in results]  # type: ignore[index]
    assert 2 in codes and 0 in codes, codes  # some amounts fail, enough succeeds
    for r in results:
        check_result(r, old, new, f"{r['free_kib']} KiB free")


@pytest.mark.parametrize("mode", ["ro-all", "ro-etc"])
def test_read_only_file_system(mode: str, tmp_path: Path) -> None:
    name = "fedora39-bls"
    _, old, new = old_and_new(tmp_path, name, CASES[name])
    (r,) = in_namespace(tmp_path, name, mode)
    assert r["first"]["code"] == 2 and _files(r["snapshot"]) == old, r["first"]  # type: ignore[index]
    check_result(r, old, new, mode)
