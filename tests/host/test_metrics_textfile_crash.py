"""Crash consistency of ``lockdownctl metrics --textfile`` (needs root, strace, unshare).

node_exporter's textfile collector reads every ``*.prom`` file of its
directory at each scrape: a half-written file is a failed scrape or, worse,
wrong numbers. The convention is a temp file in the same directory, then a
rename. Checked here with real failures, in the style of
tests/host/test_crash_consistency.py:

- kill -9 by the kernel at every system call from the first one that touches
  the directory to the end (``strace --inject=SYSCALL:signal=KILL:when=N``;
  before that nothing touches it), over an old file and with none;
- a full disk: the directory on a small tmpfs in a private mount namespace
  (``unshare -m``), every amount of free space from none to enough;
- a read-only file system.

After each: ``lockdownctl.prom`` is the old file byte for byte or a complete
new one, never partial; no other ``*.prom`` file exists; a failed run says so
in one line (exit 74), never a traceback; the next run converges, and leaves
no temp file behind at all (strays of killed runs are removed).
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
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO, ROOTS
from tests.host.conftest import require_root, require_tool

ENV = {**os.environ, "PYTHONPATH": str(REPO / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
OLD_ROOT = ROOTS / "debian12-6.1-sb-integrity"  # the file already there
NEW_ROOT = ROOTS / "debian12-6.12-none"  # what the run under test writes
PROM = "lockdownctl.prom"
STAMP = b"lockdownctl_last_run_timestamp_seconds "  # the only sample that differs between two runs


def metrics(directory: Path, root: Path, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, sys.executable, "-m", "lockdownctl", "metrics", "--root", str(root),
                           "--textfile", str(directory)], capture_output=True, text=True, env=ENV, timeout=300,
                          check=False)


def normal(data: bytes) -> bytes:
    """The exposition without the time of the run."""
    return b"\n".join(line for line in data.split(b"\n") if not line.startswith(STAMP))


def complete(data: bytes) -> bool:
    try:
        families = list(text_string_to_metric_families(data.decode()))
    except (ValueError, UnicodeDecodeError):
        return False
    return data.endswith(b"\n") and bool(families)


@pytest.fixture(scope="module")
def expected(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """(an old file's bytes, the new file's contents without its time stamp)."""
    out = tmp_path_factory.mktemp("reference")
    assert metrics(out, NEW_ROOT).returncode == 0
    new = (out / PROM).read_bytes()
    assert metrics(out, OLD_ROOT).returncode == 0
    old = (out / PROM).read_bytes()
    assert normal(old) != normal(new) and complete(old) and complete(new)
    return old, normal(new)


def kill_points(directory: Path, strace: str, tmp_path: Path) -> list[tuple[str, int]]:
    """(syscall, its ordinal in the whole run) for every call from the first one
    that names ``directory`` to the end, from one traced run."""
    trace = tmp_path / "trace"
    assert metrics(directory, NEW_ROOT, (strace, "-qq", "-o", str(trace))).returncode == 0
    lines = [line for line in trace.read_text().splitlines() if "(" in line and not line.startswith(("---", "+++"))]
    seen: dict[str, int] = {}
    points = []
    started = False
    for number, line in enumerate(lines):
        name = line.split("(", 1)[0]
        seen[name] = seen.get(name, 0) + 1
        started = started or (number > 0 and str(directory) in line)  # line 0 is execve with the arguments
        if started and name != "exit_group":
            points.append((name, seen[name]))
    assert any(name == "rename" for name, _ in points), points
    return points


def check_directory(directory: Path, old: bytes | None, new: bytes, what: str) -> None:
    names = sorted(os.listdir(directory))
    assert [n for n in names if n.endswith(".prom")] == ([PROM] if old is not None or PROM in names else []), \
        (what, names)  # node_exporter reads *.prom: only ours, never a temp file
    if PROM in names:
        data = (directory / PROM).read_bytes()
        assert data == old or (normal(data) == new and complete(data)), f"{what}: {PROM} is neither old nor new"


@pytest.mark.parametrize("with_old", [True, False], ids=["over-old-file", "first-write"])
def test_sigkill_at_every_syscall(with_old: bool, expected: tuple[bytes, bytes], tmp_path: Path) -> None:
    strace = require_tool("strace")
    old, new = expected
    directory = tmp_path / "textfile"
    directory.mkdir()
    points = kill_points(directory, strace, tmp_path)
    assert len(points) >= 10, points
    for name, when in points:
        for entry in directory.iterdir():
            entry.unlink()
        if with_old:
            (directory / PROM).write_bytes(old)
        inject = f"--inject={name}:signal=KILL:when={when}"
        run = metrics(directory, NEW_ROOT, (strace, "-qq", "-o", "/dev/null", inject))
        what = f"killed at {name} #{when}"
        assert run.returncode in (-9, 128 + 9), (what, run.returncode, run.stderr[-2000:])  # the kill landed
        check_directory(directory, old if with_old else None, new, what)
        again = metrics(directory, NEW_ROOT)
        assert again.returncode == 0, (what, again.stderr[-2000:])
        assert os.listdir(directory) == [PROM], (what, os.listdir(directory))  # converged: no stray left
        assert normal((directory / PROM).read_bytes()) == new, what


DRIVER = textwrap.dedent("""
    import json, os, subprocess, sys
    mnt, old_root, new_root, mode = sys.argv[1:5]
    def sh(*a):
        subprocess.run(a, check=True)
    def metrics(root):
        p = subprocess.run([sys.executable, "-m", "lockdownctl", "metrics", "--root", root, "--textfile", d],
                           capture_output=True, text=True)
        return {"code": p.returncode, "err": p.stderr[-3000:]}
    def snapshot():
        return {n: open(os.path.join(d, n), "rb").read().decode("latin-1") for n in sorted(os.listdir(d))}
    sh("mount", "--make-rprivate", "/")
    sh("mount", "-t", "tmpfs", "-o", "size=64k,nr_inodes=64", "tmpfs", mnt)
    d = os.path.join(mnt, "textfile")
    os.mkdir(d)
    results = []
    if mode == "full":
        for free_kib in range(0, 16):
            for n in os.listdir(d):
                os.unlink(os.path.join(d, n))
            assert metrics(old_root)["code"] == 0
            old = snapshot()
            filler = os.path.join(mnt, "filler")
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            try:  # fill the disk, then give back free_kib
                while True:
                    os.write(fd, b"x" * 1024)
            except OSError:
                pass
            os.close(fd)
            os.truncate(filler, max(0, os.path.getsize(filler) - free_kib * 1024))
            first = metrics(new_root)
            during = snapshot()
            os.unlink(filler)
            again = metrics(new_root)
            results.append({"free_kib": free_kib, "old": old, "first": first, "during": during, "again": again,
                            "after": snapshot()})
    else:
        assert metrics(old_root)["code"] == 0
        old = snapshot()
        sh("mount", "-o", "remount,ro", mnt)
        first = metrics(new_root)
        during = snapshot()
        sh("mount", "-o", "remount,rw", mnt)
        again = metrics(new_root)
        results.append({"old": old, "first": first, "during": during, "again": again, "after": snapshot()})
    print(json.dumps(results))
""")


def in_namespace(tmp_path: Path, mode: str) -> list[dict[str, object]]:
    require_root()
    unshare = require_tool("unshare")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.run([unshare, "-m", sys.executable, "-c", DRIVER, str(mnt), str(OLD_ROOT), str(NEW_ROOT), mode],
                          capture_output=True, text=True, env=ENV, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not any(line.split()[4] == str(mnt) for line in Path("/proc/self/mountinfo").read_text().splitlines())
    results: list[dict[str, object]] = json.loads(proc.stdout)
    return results


def check_result(r: dict[str, object], new: bytes, what: str) -> None:
    first, again = r["first"], r["again"]
    old, during, after = r["old"], r["during"], r["after"]
    assert isinstance(first, dict) and isinstance(again, dict)
    assert isinstance(old, dict) and isinstance(during, dict) and isinstance(after, dict)
    assert first["code"] in (0, 74), (what, first)
    if first["code"] == 74:  # one line naming the file, never a traceback
        assert first["err"].count("\n") == 1 and f"{PROM}: cannot write" in first["err"], (what, first)
        assert during == old, (what, sorted(during))  # nothing changed, no temp file left behind
    else:
        assert list(during) == [PROM] and normal(during[PROM].encode("latin-1")) == new, what
    assert again["code"] == 0 and list(after) == [PROM], (what, again, sorted(after))
    assert normal(after[PROM].encode("latin-1")) == new, what


def test_full_disk_at_every_amount_of_free_space(expected: tuple[bytes, bytes], tmp_path: Path) -> None:
    results = in_namespace(tmp_path, "full")
    codes = [r["first"]["code"] for r in results]  # type: ignore[index]
    assert 74 in codes and 0 in codes, codes  # some amounts fail, enough succeeds
    for r in results:
        check_result(r, expected[1], f"{r['free_kib']} KiB free")


def test_read_only_file_system(expected: tuple[bytes, bytes], tmp_path: Path) -> None:
    (r,) = in_namespace(tmp_path, "ro")
    assert r["first"]["code"] == 74, r["first"]  # type: ignore[index]
    check_result(r, expected[1], "read-only")


def test_strays_of_older_writers_are_removed(tmp_path: Path) -> None:
    """prometheus_client's own temp name (lockdownctl.prom.PID.TID, what earlier
    versions left when killed) is cleaned up too; other files are not touched."""
    directory = tmp_path / "textfile"
    directory.mkdir()
    keep = ["node.prom", "lockdownctl.prom.bak", ".lockdownctl.prom.notes"]
    for name in ["lockdownctl.prom.1234.139852451930176", ".lockdownctl.prom.ab12cd.lockdownctl", *keep]:
        (directory / name).write_text("x")
    assert metrics(directory, NEW_ROOT).returncode == 0
    assert sorted(os.listdir(directory)) == sorted([PROM, *keep])
    shutil.rmtree(directory)
