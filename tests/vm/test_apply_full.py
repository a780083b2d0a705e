"""``enforce apply`` when what it writes cannot be written (guests, integrity).

apply writes two places: the enforcer's pins under bpffs
(/sys/fs/bpf/lockdownctl; a replacement first in /sys/fs/bpf/lockdownctl-new)
and its state file, /run/lockdownctl/enforcer.json (state/pins.py). It takes
the state file's room before it changes the kernel (fsio.Reservation), so a
full or read-only /run/lockdownctl fails first. Here, for the first load
(old = nothing loaded) and a re-apply over a loaded enforcer (old = another
policy, updated in place):

- a tiny tmpfs over /run/lockdownctl, filled up, then given back every amount
  of free space from none, one page (4 KiB: tmpfs allocates whole pages, so
  finer steps change nothing) at a time, until apply succeeds: every page
  count its writes (the room for the state file: the draft plus 8 KiB for
  what only loading tells, then the file written into it; the BTF id cache
  beside it) can stop at; and the same tmpfs with no free inode;
- that tmpfs read-only (``mount -o remount,ro``);
- bpffs read-only (a read-only bind mount over /sys/fs/bpf, as container
  runtimes give one): the kernel refuses to pin there (EROFS from
  filename_create()'s mnt_want_write()) but lets the maps be written, so the
  first load fails and an in-place re-apply succeeds;
- the state file not replaceable after the change (``chattr +i``: rename(2)
  and unlink(2) of an immutable file are EPERM), the one failure the room
  cannot prevent (like a remount read-only in between).

After each: the command exits 0 or 74 with ONE line on standard error naming
the path (never a traceback); the kernel (an open of each guarded file inside
the test's cgroup) runs the old policy or the new one, never neither, and the
new one only when it says so; ``enforce status --json`` never names a policy
file or profile for a policy the kernel does not run; no temp file is left in
/run/lockdownctl; once space returns or the mount is writable, applying again
converges (exit 0, the new policy, its file in status).

Seal: a seal is one way per boot and other tests own each boot's seal, so no
seal is made here. --seal over a loaded enforcer on a read-only
/run/lockdownctl is tried once: it must fail before anything one-way (the
room comes first), leaving the old, unsealed policy that ``enforce remove``
still removes; should it ever seal, this test fails and so do the boot's
later seal tests.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from lockdownctl.mountinfo import is_mounted
from lockdownctl.state import pins
from tests.conftest import Run
from tests.conftest import lockdownctl_inproc as lockdownctl
from tests.vm import test_enforcer
from tests.vm.test_apply_crash import NEW_FILE, OLD_FILE, running
from tests.vm.test_enforcer import scoped_policy

assert (OLD_FILE, NEW_FILE) == ("/sys/kernel/tracing/trace", "/proc/kcore")  # tracefs, kcore: see policies()
cgroup = test_enforcer.cgroup  # the same fixture: a fresh cgroup of the test's own
PAGE = os.sysconf("SC_PAGE_SIZE")
MAX_FREE = 64 * 1024  # the tiny tmpfs: far more than apply needs
BPFFS = "/sys/fs/bpf"


@pytest.fixture
def policies(cgroup: str, tmp_path: Path) -> dict[str, Any]:
    """File and policy id of OLD (denies tracefs) and NEW (kcore), both allowed by an
    integrity kernel, scoped to the test's cgroup: only the enforcer decides, only there."""
    out: dict[str, Any] = {}
    for name, reason in (("old", "tracefs"), ("new", "kcore")):
        path = tmp_path / f"{name}.yaml"
        path.write_text(scoped_policy(cgroup, f"  {reason}: deny\n"))
        dry = lockdownctl("enforce", "apply", str(path), "--dry-run", "--json")
        assert dry.code == 0, dry.err
        out[name] = {"file": str(path), "id": dry.json()["data"]["policy_id"]}
    return out


def apply(policy: str, *extra: str) -> Run:
    return lockdownctl("enforce", "apply", policy, *extra)


def remove() -> None:
    run = lockdownctl("enforce", "remove")
    assert run.code == 0, run.err


@contextmanager
def tiny_run_dir() -> Iterator[Path]:
    """A 64 KiB tmpfs with 8 inodes over /run/lockdownctl (hiding the real one), unmounted after."""
    d = Path(pins.STATE_DIR)
    d.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={MAX_FREE},nr_inodes=8,mode=0700", "ldctl-full", str(d)],
                   check=True)
    try:
        yield d
    finally:
        subprocess.run(["chattr", "-i", pins.STATE], check=False, capture_output=True)
        subprocess.run(["umount", str(d)], check=True)


def fill(d: Path, free: int | None, inodes: bool = False) -> None:
    """Fill ``d``'s tmpfs, then give back ``free`` bytes; ``inodes``: use up every inode instead."""
    if inodes:
        n = 0
        try:
            while True:
                (d / f"inode-{n}").touch()
                n += 1
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
        return
    fd = os.open(d / "filler", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        while True:
            os.write(fd, b"x" * PAGE)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    size = os.path.getsize(d / "filler")
    assert free is not None and free <= size
    os.truncate(d / "filler", size - free)


def unfill(d: Path) -> None:
    for p in d.iterdir():
        if p.name == "filler" or p.name.startswith("inode-"):
            p.unlink()


def status() -> dict[str, Any]:
    run = lockdownctl("enforce", "status", "--json")
    assert run.code == 0, run.err
    data: dict[str, Any] = run.json()["data"]
    return data


def check(run: Run, before: str, cgroup: str, policies: dict[str, Any], where: str, what: str,
          failed_runs: str | None = None) -> str:
    """The one outcome apply may have, and status's account of it; returns what the kernel runs.
    ``failed_runs``: what the kernel runs when apply failed (the old policy unless the
    failure came after the change)."""
    state = running(cgroup)
    if run.code == 0:
        assert state == "new", f"{what}: exit 0 but the kernel enforces {state}"
    else:
        assert run.code == 74, f"{what}: exit {run.code}: {run.err}{run.out}"
        lines = run.err.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"lockdownctl: error: {where}"), (what, run.err)
        assert state == (failed_runs or before), f"{what}: exit 74 and the kernel enforces {state}: {run.err}"
    s = status()
    if state == "nothing":
        assert not s["loaded"], (what, s)
    else:
        assert s["loaded"] and s["policy_id"] == policies[state]["id"], (what, s)
        # fail closed: never another policy's file, profile or paths for the running one
        assert s["policy_file"] in (None, policies[state]["file"]), (what, s)
        assert (s["policy_file"] is None) == (s["state_note"] is not None), (what, s)
    leftovers = [n for n in os.listdir(pins.STATE_DIR)
                 if n not in ("enforcer.json", "btf-ids", "filler") and not n.startswith("inode-")]
    assert leftovers == [], (what, leftovers)
    return state


def converge(cgroup: str, policies: dict[str, Any], what: str) -> None:
    run = apply(policies["new"]["file"])
    assert run.code == 0, (what, run.err)
    assert running(cgroup) == "new", what
    s = status()
    assert s["policy_file"] == policies["new"]["file"] and s["state_note"] is None, (what, s)
    brief = lockdownctl("status", "--json").json()["data"]["enforcer"]
    assert brief["policy_file"] == policies["new"]["file"] and "note" not in brief, (what, brief)


def setup_for(transaction: str, policies: dict[str, Any]) -> str:
    remove()
    if transaction == "first-load":
        return "nothing"
    run = apply(policies["old"]["file"])
    assert run.code == 0, run.err
    return "old"


def record(name: str, figures: dict[str, Any]) -> None:
    """Figures for the report: the guest's results directory (the host keeps it)."""
    out = Path(os.environ["LOCKDOWNCTL_GUEST_RESULTS"]) / "apply_full.json"
    old = json.loads(out.read_text()) if out.exists() else {}
    out.write_text(json.dumps({**old, name: figures}, indent=1))


TRANSACTIONS = ("first-load", "re-apply")


@pytest.mark.guest(kernel="all", level="integrity")
def test_full_run_dir_at_every_amount_of_free_space(cgroup: str, policies: dict[str, Any]) -> None:
    figures: dict[str, Any] = {}
    try:
        with tiny_run_dir() as d:
            for transaction in TRANSACTIONS:
                steps: list[tuple[str, int]] = [("no inode", 0)]
                steps += [(f"{free // 1024} KiB free", free) for free in range(0, MAX_FREE, PAGE)]
                codes = []
                for what, free in steps:
                    unfill(d)
                    before = setup_for(transaction, policies)
                    fill(d, free, inodes=what == "no inode")
                    run = apply(policies["new"]["file"])
                    check(run, before, cgroup, policies, f"{pins.STATE}: cannot write: ", f"{transaction}, {what}")
                    codes.append((what, run.code))
                    unfill(d)
                    converge(cgroup, policies, f"{transaction}, {what}")
                    if run.code == 0:
                        break
                assert codes[0][1] == 74 and codes[1][1] == 74 and codes[-1][1] == 0, (transaction, codes)
                figures[transaction] = {"steps": codes, "state_bytes": os.path.getsize(pins.STATE)}
    finally:
        remove()
    record("full", figures)


@pytest.mark.guest(kernel="all", level="integrity")
def test_read_only_run_dir(cgroup: str, policies: dict[str, Any]) -> None:
    try:
        with tiny_run_dir() as d:
            for transaction in TRANSACTIONS:
                before = setup_for(transaction, policies)
                subprocess.run(["mount", "-o", "remount,ro", str(d)], check=True)
                try:
                    run = apply(policies["new"]["file"])
                    check(run, before, cgroup, policies, f"{pins.STATE}: cannot write: Read-only file system: "
                          "nothing was loaded or changed", f"{transaction}, read-only")
                    assert run.code == 74
                finally:
                    subprocess.run(["mount", "-o", "remount,rw", str(d)], check=True)
                converge(cgroup, policies, f"{transaction}, read-only")
            # --seal fails before anything one-way: the old policy stays, unsealed (see the docstring)
            setup_for("re-apply", policies)
            subprocess.run(["mount", "-o", "remount,ro", str(d)], check=True)
            try:
                run = apply(policies["new"]["file"], "--seal")
                check(run, "old", cgroup, policies, f"{pins.STATE}: cannot write: ", "--seal, read-only")
                assert run.code == 74 and not status()["sealed"]
            finally:
                subprocess.run(["mount", "-o", "remount,rw", str(d)], check=True)
    finally:
        remove()


@pytest.mark.guest(kernel="all", level="integrity")
def test_state_file_not_replaceable_after_the_change(cgroup: str, policies: dict[str, Any]) -> None:
    """The old state file immutable: the room is taken, the kernel switches to the new
    policy, the rename fails: exit 74 saying the new policy runs; status shows the
    kernel's policy id and no policy file (the state names the old one)."""
    try:
        with tiny_run_dir():
            setup_for("re-apply", policies)
            subprocess.run(["chattr", "+i", pins.STATE], check=True)
            try:
                run = apply(policies["new"]["file"])
                check(run, "old", cgroup, policies, f"{pins.STATE}: cannot write: Operation not permitted: the "
                      f"kernel runs policy {policies['new']['id']} (updated) but its state was not saved",
                      "immutable state", failed_runs="new")
                assert run.code == 74
                s = status()
                assert s["policy_file"] is None and s["profile"] is None and policies["old"]["id"] in s["state_note"]
                brief = lockdownctl("status", "--json").json()["data"]["enforcer"]  # `status` reads the kernel too
                assert brief["policy_id"] == policies["new"]["id"] and "policy_file" not in brief, brief
                assert "its state was not saved" in brief["note"], brief
            finally:
                subprocess.run(["chattr", "-i", pins.STATE], check=True)
            converge(cgroup, policies, "immutable state")
    finally:
        remove()


@contextmanager
def read_only_bpffs() -> Iterator[None]:
    """A read-only bind mount over /sys/fs/bpf (the same bpffs), unmounted after."""
    if not is_mounted(BPFFS, "bpf"):
        subprocess.run(["mount", "-t", "bpf", "bpf", BPFFS], check=True)
    subprocess.run(["mount", "--bind", BPFFS, BPFFS], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", BPFFS], check=True)
        yield
    finally:
        subprocess.run(["umount", BPFFS], check=True)


@pytest.mark.guest(kernel="all", level="integrity")
def test_read_only_bpffs(cgroup: str, policies: dict[str, Any]) -> None:
    outcomes: dict[str, int] = {}
    try:
        for transaction in TRANSACTIONS:
            before = setup_for(transaction, policies)
            with read_only_bpffs():
                run = apply(policies["new"]["file"])
                check(run, before, cgroup, policies, f"{pins.PIN_DIR}: cannot write: ", f"{transaction}, ro bpffs")
                outcomes[transaction] = run.code
            converge(cgroup, policies, f"{transaction}, read-only bpffs")
        # Nothing can be pinned: the first load fails whole; the maps of a loaded one are
        # still written through their pins, so a re-apply updates in place.
        assert outcomes == {"first-load": 74, "re-apply": 0}, outcomes
    finally:
        remove()
