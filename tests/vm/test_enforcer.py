"""The enforcer in real kernels (guests): scope, audit, exceptions, re-apply, remove, events.

Each test loads the enforcer, scoped to a cgroup of its own where it denies,
and removes it at the end even when it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import lockdownctl_inproc as lockdownctl

TRACEFS_FILE = "/sys/kernel/tracing/trace"
# For the one test that needs a process alive while its event is read.
OPEN_SCRIPT = ("import sys\ntry:\n    open(sys.argv[1]).close()\n    print('ok')\n"
               "except OSError as e:\n    print(e.errno)\n")
HEAD = "/usr/bin/head"  # starts fast under TCG, unlike python


def cgroup2_root() -> Path:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[fields.index("-") + 1] == "cgroup2":
            return Path(fields[4])
    pytest.fail("no cgroup2 mount in the guest")


@pytest.fixture
def cgroup() -> Iterator[str]:
    """A fresh cgroup (path relative to the cgroup2 root) for the test's own processes."""
    name = f"ldctl-test-{os.getpid()}-{time.monotonic_ns()}"
    path = cgroup2_root() / name
    path.mkdir()
    yield "/" + name
    for _ in range(50):  # our children have exited; the cgroup empties shortly after
        try:
            path.rmdir()
            break
        except OSError:
            time.sleep(0.1)


@pytest.fixture
def enforcer() -> Iterator[None]:
    """Remove the enforcer after the test, whatever happened."""
    yield
    run = lockdownctl("enforce", "remove")
    assert run.code == 0, run.err
    assert not Path("/sys/fs/bpf/lockdownctl").exists()


def write_policy(tmp: Path, text: str) -> str:
    path = tmp / "policy.yaml"
    path.write_text(text)
    return str(path)


def apply(policy: str, *extra: str) -> dict[str, Any]:
    run = lockdownctl("enforce", "apply", policy, "--json", *extra)
    assert run.code == 0, run.err or run.out
    data: dict[str, Any] = run.json()["data"]
    return data


def open_in(cgroup: str | None, path: str, exe: str = HEAD) -> str:
    """Read a byte of ``path`` with ``exe`` (head, or a copy of it) in a new
    process inside ``cgroup``: "ok", or "denied" with the error head printed."""
    procs = cgroup2_root() / cgroup.lstrip("/") / "cgroup.procs" if cgroup else None

    def enter() -> None:
        if procs is not None:
            procs.write_text(str(os.getpid()))

    out = subprocess.run([exe, "-c", "1", path], capture_output=True, text=True, preexec_fn=enter, check=False)
    if out.returncode == 0:
        return "ok"
    assert "Operation not permitted" in out.stderr, out.stderr
    return "denied"


def events() -> list[dict[str, Any]]:
    run = lockdownctl("enforce", "events", "--json")
    assert run.code == 0, run.err
    found: list[dict[str, Any]] = run.json()["data"]["events"]
    return found


def scoped_policy(cgroup: str, reasons: str, extra: str = "") -> str:
    return f"version: 1\nprofile: none\nscope:\n  cgroup: {cgroup}\nreasons:\n{reasons}{extra}"


@pytest.mark.guest(kernel="all", level="none")
def test_scope_denies_tracefs_inside_the_cgroup_only(cgroup: str, enforcer: None, tmp_path: Path) -> None:
    assert open_in(cgroup, TRACEFS_FILE) == "ok"  # before: allowed
    data = apply(write_policy(tmp_path, scoped_policy(cgroup, "  tracefs: deny\n")))
    assert data["action"] == "loaded"
    assert open_in(cgroup, TRACEFS_FILE) == "denied"  # EPERM inside
    assert open_in(None, TRACEFS_FILE) == "ok"  # outside: the same file opens
    denials = [e for e in events() if e["reason"] == "tracefs"]
    assert len(denials) == 1 and denials[0]["verdict"] == "denied" and denials[0]["cgroup"] == cgroup
    status = lockdownctl("enforce", "status", "--json").json()["data"]
    assert status["loaded"] and status["counters"]["tracefs"]["denied"] == 1 and status["ring_buffer_drops"] == 0
    brief = lockdownctl("status", "--json").json()["data"]["enforcer"]  # `status` shows it too
    assert brief["loaded"] and brief["profile"] == "none" and brief["mode"] == "enforce"


@pytest.mark.guest(kernel="all", level="integrity")
def test_adds_confidentiality_denials_on_an_integrity_kernel(cgroup: str, enforcer: None, tmp_path: Path) -> None:
    # /proc/kcore is confidentiality-class: this kernel allows it, our policy denies it in the cgroup.
    assert open_in(cgroup, "/proc/kcore") == "ok"
    apply(write_policy(tmp_path, scoped_policy(cgroup, "  kcore: deny\n")))
    assert open_in(cgroup, "/proc/kcore") == "denied"
    assert open_in(None, "/proc/kcore") == "ok"
    assert [e["reason"] for e in events()] == ["kcore"]


@pytest.mark.guest(kernel="all", level="confidentiality")
def test_loads_on_a_confidentiality_kernel(enforcer: None, tmp_path: Path) -> None:
    # No bpf_probe_read*() in the program: it must load where lockdown forbids them.
    data = apply(write_policy(tmp_path, "version: 1\nprofile: confidentiality\n"))
    assert data["action"] == "loaded"
    status = lockdownctl("enforce", "status", "--json").json()["data"]
    assert status["loaded"] and status["verdicts"]["kcore"] == "deny" and status["verdicts"]["tracefs"] == "deny"


@pytest.mark.guest(kernel="all", level="none")
def test_audit_mode_allows_and_records(cgroup: str, enforcer: None, tmp_path: Path) -> None:
    apply(write_policy(tmp_path, scoped_policy(cgroup, "  tracefs: deny\n")), "--audit")
    assert open_in(cgroup, TRACEFS_FILE) == "ok"
    audited = events()
    assert [(e["reason"], e["verdict"]) for e in audited] == [("tracefs", "audited")]
    assert audited[0]["comm"] == "head"


@pytest.mark.guest(kernel="all", level="none")
def test_exception_by_executable(cgroup: str, enforcer: None, tmp_path: Path) -> None:
    # The copy lives on a tmpfs of its own, so its (device, inode) is unique.
    mnt = Path(tempfile.mkdtemp())
    subprocess.run(["mount", "-t", "tmpfs", "ldctl-test", str(mnt)], check=True)
    try:
        allowed = mnt / "ldctl-head"
        shutil.copy2(HEAD, allowed)
        policy = scoped_policy(cgroup, "  tracefs: deny\n",
                               f"exceptions:\n  - name: copied-cat\n    exe: {allowed}\n    allow: [tracefs]\n")
        apply(write_policy(tmp_path, policy))
        assert open_in(cgroup, TRACEFS_FILE, exe=str(allowed)) == "ok"
        assert open_in(cgroup, TRACEFS_FILE) == "denied"  # the original head: not excepted
        assert open_in(cgroup, TRACEFS_FILE) == "denied"
        denied = events()
        assert [e["comm"] for e in denied] == ["head", "head"]
        st = os.stat(HEAD)
        assert all(e["exe_id"].endswith(f":{st.st_ino}") for e in denied)
        status = lockdownctl("enforce", "status", "--json").json()["data"]
        assert status["counters"]["tracefs"] == {"denied": 2, "audited": 0, "excepted": 1}
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
        mnt.rmdir()


@pytest.mark.guest(kernel="all", level="none")
def test_watch_shows_enforcer_events_with_the_kernel_log(cgroup: str, enforcer: None, tmp_path: Path) -> None:
    apply(write_policy(tmp_path, scoped_policy(cgroup, "  tracefs: deny\n")))
    assert open_in(cgroup, TRACEFS_FILE) == "denied"
    run = lockdownctl("watch", "--enforcer", "--json")
    records = [json.loads(line) for line in run.out.splitlines()]
    ours = [r for r in records[:-1] if r.get("source") == "enforcer"]
    assert [(r["reason"], r["verdict"], r["comm"]) for r in ours] == [("tracefs", "denied", "head")]
    summary = records[-1]["data"]  # the envelope comes last
    assert summary["inputs"][-1] == "enforcer" and len(summary["inputs"]) == 2  # the kernel log and ours
    assert summary["denials"] >= 1


@pytest.mark.guest(kernel="all", level="none")
def test_events_carry_pid_and_executable(cgroup: str, enforcer: None, tmp_path: Path) -> None:
    apply(write_policy(tmp_path, scoped_policy(cgroup, "  tracefs: deny\n")))
    procs = cgroup2_root() / cgroup.lstrip("/") / "cgroup.procs"
    # A process that stays alive until its event is read, so /proc/PID/exe resolves. Its
    # python is a copy on the results directory (9p, one file system): in vng guests /usr is
    # an overlay of a 9p lower and a tmpfs upper, where stat(2) gives a non-directory the lower
    # layer's pseudo device, not the overlay's super block that the kernel's exe_file is on,
    # so decode.py's (dev, ino) match cannot name an executable there (seen on 6.1, 6.12, 7.3).
    exe = Path(os.environ["LOCKDOWNCTL_GUEST_RESULTS"]) / "ldctl-python"
    shutil.copy2(os.path.realpath(sys.executable), exe)
    child = subprocess.Popen(
        [str(exe), "-c", OPEN_SCRIPT + "sys.stdout.flush()\nsys.stdin.read()\n", TRACEFS_FILE],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONHOME": sys.base_prefix},
        preexec_fn=lambda: procs.write_text(str(os.getpid())))
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "1"  # EPERM
        (event,) = events()
        assert event["pid"] == child.pid
        assert event["exe"] == str(exe), event
        assert event["uid"] == 0 and event["reason"] == "tracefs" and event["level"] == "confidentiality"
    finally:
        child.communicate("")
        exe.unlink()


@pytest.mark.guest(kernel="all", level="none")
def test_reapply_never_allows_what_both_policies_deny(cgroup: str, enforcer: None, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, scoped_policy(cgroup, "  tracefs: deny\n"))
    apply(policy)
    procs = cgroup2_root() / cgroup.lstrip("/") / "cgroup.procs"
    # Opens in a loop until SIGTERM, then reports how many got through.
    loop = ("import signal, sys\nstop = False\ndef end(*_):\n    global stop\n    stop = True\n"
            "signal.signal(signal.SIGTERM, end)\nok = tries = 0\nprint('ready', flush=True)\n"
            "while not stop:\n    tries += 1\n    try:\n        open(sys.argv[1]).close()\n"
            "        ok += 1\n    except OSError:\n        pass\nprint(ok, tries)\n")
    child = subprocess.Popen([sys.executable, "-c", loop, TRACEFS_FILE], stdout=subprocess.PIPE,
                             text=True, preexec_fn=lambda: procs.write_text(str(os.getpid())))
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    others = ["kcore", "debugfs", "msr", "kprobes", "perf"]
    for i in range(5):  # each apply changes the policy, tracefs stays denied throughout
        extra = "".join(f"  {r}: deny\n" for r in others[: i % len(others) + 1])
        write_policy(tmp_path, scoped_policy(cgroup, "  tracefs: deny\n" + extra))
        assert apply(policy)["action"] == "updated"
    assert apply(policy)["action"] == "unchanged"  # idempotent
    child.terminate()
    ok, tries = map(int, child.communicate()[0].split())
    assert tries > 100 and ok == 0, f"{ok} of {tries} opens got through during re-apply"


@pytest.mark.guest(kernel="all", level="none")
def test_remove_leaves_nothing_behind(cgroup: str, tmp_path: Path) -> None:
    def bpftool(*args: str) -> list[dict[str, Any]]:
        out = subprocess.run(["bpftool", "-j", *args], capture_output=True, text=True, check=True).stdout
        found: list[dict[str, Any]] = json.loads(out or "[]")
        return found

    apply(write_policy(tmp_path, scoped_policy(cgroup, "  tracefs: deny\n")))
    assert any(p.get("name") == "ldctl_locked_down" for p in bpftool("prog", "show"))
    run = lockdownctl("enforce", "remove", "--json")
    assert run.code == 0
    assert not Path("/sys/fs/bpf/lockdownctl").exists()

    def leftovers() -> list[str]:
        progs = [p["name"] for p in bpftool("prog", "show") if p.get("name") == "ldctl_locked_down"]
        maps = [m["name"] for m in bpftool("map", "show") if m.get("name") in ("exe_exceptions", "counters", "events")]
        return progs + maps

    # The kernel frees a released link, its program and maps asynchronously (RCU).
    for _ in range(100):
        if not leftovers():
            break
        time.sleep(0.1)
    assert leftovers() == []
    assert open_in(cgroup, TRACEFS_FILE) == "ok"


@pytest.mark.guest(kernel="all", level="none")
def test_every_denial_is_an_event_or_a_counted_drop(cgroup: str, enforcer: None, tmp_path: Path) -> None:
    apply(write_policy(tmp_path, scoped_policy(cgroup, "  tracefs: deny\n")))
    procs = cgroup2_root() / cgroup.lstrip("/") / "cgroup.procs"
    loop = ("import sys\nfor _ in range(int(sys.argv[2])):\n    try:\n        open(sys.argv[1])\n"
            "    except OSError:\n        pass\n")
    subprocess.run([sys.executable, "-c", loop, TRACEFS_FILE, "3000"], check=True,
                   preexec_fn=lambda: procs.write_text(str(os.getpid())))
    got = len(events())
    status = lockdownctl("enforce", "status", "--json").json()["data"]
    assert status["counters"]["tracefs"]["denied"] == 3000
    assert got + status["ring_buffer_drops"] == 3000


@pytest.mark.guest(kernel="all", level="none")
def test_bad_policy_is_refused_and_nothing_is_loaded(tmp_path: Path) -> None:
    run = lockdownctl("enforce", "apply", write_policy(tmp_path, "version: 1\nreasons:\n  tracefz: deny\n"))
    assert run.code == 2 and "unknown lockdown reason 'tracefz'" in run.err and ":3:" in run.err
    assert not Path("/sys/fs/bpf/lockdownctl").exists()
