"""Dynamic debug under lockdown (#20, "Exemptions that are sound"), in real kernels.

- kernel at ``integrity``: /proc/dynamic_debug/control works (a pr_debug site
  enabled through it prints in the kernel log) while the kernel denies its
  debugfs twin, /sys/kernel/debug/dynamic_debug/control, with its own log
  line; the enforcer refuses a path exception there (exit 3).
- kernel at ``none``, the enforcer denying debugfs with a path exception for
  the debugfs control file: that file opens and works, any other debugfs file
  is denied with an event naming it, the exemption serves one open only (not
  the same thread's next open, not another thread racing it), and it
  survives a re-apply (the two-slot generation switch).
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lockdownctl.reasons import DEBUGFS_MOUNT, DEBUGFS_UNGATED_TWIN, denial_line
from tests.conftest import lockdownctl_inproc as lockdownctl
from tests.vm.test_enforcer import apply, cgroup, cgroup2_root, enforcer, events, write_policy

__all__ = ["cgroup", "enforcer"]  # fixtures, imported for this module's tests

CONTROL = DEBUGFS_MOUNT + "/dynamic_debug/control"
PROC_CONTROL = DEBUGFS_UNGATED_TWIN[CONTROL]
# A pr_debug site user space can reach without side effects: finit_module(2) prints
# "finit_module: fd=%d, uargs=%p, flags=%i" after its capability check, before it
# looks at the fd (kernel/module/main.c, 6.1 to 7.3), so fd -1 prints and fails (EBADF).
SITE = "file kernel/module/main.c format finit_module"
SYS_finit_module = 313  # x86_64


def debugfs() -> None:
    if not os.path.exists(CONTROL):
        subprocess.run(["mount", "-t", "debugfs", "debugfs", DEBUGFS_MOUNT], check=True)


def dmesg() -> str:
    return subprocess.run(["dmesg"], capture_output=True, text=True, check=True).stdout


def finit_module_bad_fd() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.syscall(SYS_finit_module, -1, b"", 0) == -1 and ctypes.get_errno() == 9  # EBADF


def site_flags() -> str:
    """The flags of the finit_module pr_debug site, from the procfs control file."""
    for line in Path(PROC_CONTROL).read_text().splitlines():
        if line.startswith("kernel/module/main.c:") and '"finit_module: fd=' in line:
            return line.split(" =", 1)[1].split()[0]
    pytest.fail(f"no finit_module pr_debug site in {PROC_CONTROL}")


def other_debugfs_file() -> str:
    """A debugfs file with a write bit (so every open is checked), not the control file."""
    for name in sorted(os.listdir(DEBUGFS_MOUNT)):
        path = os.path.join(DEBUGFS_MOUNT, name)
        if os.path.isfile(path) and os.stat(path).st_mode & 0o222 and os.stat(path).st_mode & 0o444:
            return path
    pytest.fail(f"no writable debugfs file at the top of {DEBUGFS_MOUNT}")


@pytest.fixture
def site_off() -> Iterator[None]:
    yield
    Path(PROC_CONTROL).write_text(SITE + " -p\n")


@pytest.mark.guest(kernel="all", level="integrity")
def test_proc_control_works_where_the_kernel_denies_debugfs(site_off: None) -> None:
    debugfs()
    assert site_flags() == "_"
    Path(PROC_CONTROL).write_text(SITE + " +p\n")  # no lockdown check on the procfs twin
    assert site_flags() == "p"
    finit_module_bad_fd()
    assert "finit_module: fd=-1" in dmesg()  # the site now prints

    # The debugfs twin: the kernel's own lockdown denies every open (its mode has a write bit).
    expected = denial_line("debugfs", comm=Path("/proc/self/comm").read_text().strip())
    for _attempt in range(2):  # the kernel rate-limits its lockdown lines (5 s)
        before = dmesg().count(expected)
        with pytest.raises(PermissionError):
            open(CONTROL).close()
        if dmesg().count(expected) > before:
            break
        time.sleep(5.5)
    else:
        pytest.fail(f"the kernel did not log {expected!r}")


@pytest.mark.guest(kernel="all", level="integrity")
def test_path_exception_is_refused_where_the_kernel_denies_debugfs(tmp_path: Path) -> None:
    debugfs()
    policy = write_policy(tmp_path, POLICY.format(extra=""))
    run = lockdownctl("enforce", "apply", policy)
    assert run.code == 3 and "the kernel itself is at integrity" in run.err and ":6" in run.err, run.err
    assert not Path("/sys/fs/bpf/lockdownctl").exists()
    check = lockdownctl("policy", "validate", policy)
    assert check.code == 0 and "would refuse this policy here (exit 3)" in check.err


POLICY = """version: 1
profile: none
reasons:
  debugfs: deny
{extra}exceptions:
  - name: dyndbg
    path: /sys/kernel/debug/dynamic_debug/control
    allow: [debugfs]
"""

# Run in the test's cgroup: each step's outcome as JSON ("ok" or the errno name).
STEPS = r"""
import ctypes, errno, json, os, sys, threading
control, other, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
def try_(fn):
    try:
        fn()
        return "ok"
    except OSError as exc:
        return errno.errorcode[exc.errno]
def write_control(text):
    with open(control, "w") as fh:
        fh.write(text)
out = {}
out["control_write"] = try_(lambda: write_control("file kernel/module/main.c format finit_module +p\n"))
out["other_after_control"] = try_(lambda: open(other).close())
out["control_again"] = try_(lambda: open(control).close())
out["chmod_after_control"] = try_(lambda: (open(control).close(), os.chmod(other, os.stat(other).st_mode)))
out["control_after_chmod"] = try_(lambda: open(control).close())
# Racing threads: one opens the exempt file, the other another file, at the same time.
got = {"control": [], "other": []}
def loop(path, key):
    for _ in range(rounds):
        got[key].append(try_(lambda: open(path).close()))
threads = [threading.Thread(target=loop, args=(control, "control")),
           threading.Thread(target=loop, args=(other, "other"))]
for t in threads: t.start()
for t in threads: t.join()
out["race"] = {k: sorted(set(v)) for k, v in got.items()}
out["race_counts"] = {k: len(v) for k, v in got.items()}
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall(313, -1, b"", 0)
print(json.dumps(out))
"""


def run_steps(cgroup: str, other: str, rounds: int = 200) -> dict[str, Any]:
    procs = cgroup2_root() / cgroup.lstrip("/") / "cgroup.procs"
    run = subprocess.run([sys.executable, "-c", STEPS, CONTROL, other, str(rounds)], capture_output=True, text=True,
                         preexec_fn=lambda: procs.write_text(str(os.getpid())), check=True)
    result: dict[str, Any] = json.loads(run.stdout)
    return result


def scoped(cgroup: str, extra: str = "") -> str:
    return POLICY.format(extra=extra).replace("profile: none\n", f"profile: none\nscope:\n  cgroup: {cgroup}\n")


def check_steps(result: dict[str, Any], rounds: int = 200) -> None:
    assert result["control_write"] == "ok"  # the exempt file opens for writing and the write works
    assert result["other_after_control"] == "EPERM"  # the mark served one open, not this one
    assert result["control_again"] == "ok"
    assert result["chmod_after_control"] == "EPERM"  # chmod is checked too; no mark left to borrow
    assert result["control_after_chmod"] == "ok"
    assert result["race"] == {"control": ["ok"], "other": ["EPERM"]}, result["race"]
    assert result["race_counts"] == {"control": rounds, "other": rounds}


@pytest.mark.guest(kernel="all", level="none")
def test_path_exception_exempts_one_debugfs_file(cgroup: str, enforcer: None, site_off: None,
                                                tmp_path: Path) -> None:
    debugfs()
    other = other_debugfs_file()
    data = apply(write_policy(tmp_path, scoped(cgroup)))
    assert data["action"] == "loaded"
    st = os.stat(CONTROL)
    assert [p["path"] for p in data["paths"]] == [CONTROL]
    assert data["paths"][0]["file_id"].endswith(f":{st.st_ino}")
    result = run_steps(cgroup, other)
    check_steps(result)
    assert site_flags() == "p"  # the write through the exempt file took effect
    assert "finit_module: fd=-1" in dmesg()

    found = events()
    denied = [e for e in found if e["reason"] == "debugfs"]
    # other_after_control, the chmod, and the racing thread's opens; each names its file
    assert len(denied) == 2 + 200 and all(e["verdict"] == "denied" for e in denied)
    files = [e["file"] for e in denied]
    # chmod has no open before it, so its event names no file; every open's names its file
    assert files.count(None) == 1 and set(files) == {None, other}, set(files)
    assert denied[0]["file"] == other and denied[0]["file_id"].endswith(f":{os.stat(other).st_ino}")
    status = lockdownctl("enforce", "status", "--json").json()["data"]
    # control_write, control_again, the open before chmod, control_after_chmod, 200 racing opens
    assert status["counters"]["debugfs"] == {"denied": 202, "audited": 0, "excepted": 204}
    assert status["exceptions"]["path"] == 1

    # Outside the scope nothing is denied; the enforcer's own opens are not marked there.
    open(other).close()  # outside the scope: allowed


@pytest.mark.guest(kernel="all", level="none")
def test_path_exception_survives_reapply(cgroup: str, enforcer: None, site_off: None, tmp_path: Path) -> None:
    debugfs()
    other = other_debugfs_file()
    policy = write_policy(tmp_path, scoped(cgroup))
    first = apply(policy)
    gen = lockdownctl("enforce", "status", "--json").json()["data"]["generation"]
    write_policy(tmp_path, scoped(cgroup, extra="  kcore: deny\n"))  # the other slot now
    second = apply(policy)
    assert (first["action"], second["action"]) == ("loaded", "updated")
    status = lockdownctl("enforce", "status", "--json").json()["data"]
    assert status["generation"] == gen + 1 and status["exceptions"]["path"] == 1
    check_steps(run_steps(cgroup, other, rounds=50), rounds=50)
    write_policy(tmp_path, scoped(cgroup))  # and back to the first slot
    assert apply(policy)["action"] == "updated"
    check_steps(run_steps(cgroup, other, rounds=50), rounds=50)
    # A policy without the exception: the control file is denied like any other.
    write_policy(tmp_path, scoped(cgroup).split("exceptions:")[0])
    assert apply(policy)["action"] == "updated"
    assert run_steps(cgroup, other, rounds=5)["control_write"] == "EPERM"


# fanotify(7): a listener that denies every open of one file (FAN_OPEN_PERM), so that
# an open fails after the file_open hook has marked the thread and before debugfs's
# own check consumes the mark.
FAN_CLOEXEC, FAN_CLASS_CONTENT, FAN_MARK_ADD, FAN_OPEN_PERM, FAN_DENY = 0x1, 0x4, 0x1, 0x10000, 0x2
AT_FDCWD = -100
EVENT = struct.Struct("IBBHQii")  # struct fanotify_event_metadata


def deny_opens(path: str, stop: threading.Event) -> tuple[threading.Thread, list[int]]:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int, ctypes.c_char_p]
    fd = libc.fanotify_init(FAN_CLOEXEC | FAN_CLASS_CONTENT, os.O_RDONLY)
    if fd < 0:
        pytest.skip(f"fanotify_init: {os.strerror(ctypes.get_errno())}")
    if libc.fanotify_mark(fd, FAN_MARK_ADD, FAN_OPEN_PERM, AT_FDCWD, path.encode()) < 0:
        os.close(fd)
        pytest.skip(f"fanotify_mark FAN_OPEN_PERM on {path}: {os.strerror(ctypes.get_errno())}")
    denied: list[int] = []

    def serve() -> None:
        try:
            while not stop.is_set():
                if not select.select([fd], [], [], 0.2)[0]:
                    continue
                buf = os.read(fd, 4096)
                for off in range(0, len(buf), EVENT.size):
                    _len, _vers, _res, _mlen, _mask, efd, pid = EVENT.unpack_from(buf, off)
                    os.write(fd, struct.pack("iI", efd, FAN_DENY))
                    denied.append(pid)
                    os.close(efd)
        finally:
            os.close(fd)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread, denied


FAILED_OPEN = r"""
import errno, os, sys
control, other = sys.argv[1], sys.argv[2]
def try_(fn):
    try:
        fn()
        return "ok"
    except OSError as exc:
        return errno.errorcode[exc.errno]
mode = os.stat(other).st_mode
print(try_(lambda: open(control, "w").close()), try_(lambda: os.chmod(other, mode)))
"""


@pytest.mark.guest(kernel="all", level="none")
def test_a_mark_left_by_a_failed_open_serves_no_chmod(cgroup: str, enforcer: None, tmp_path: Path) -> None:
    debugfs()
    other = other_debugfs_file()
    apply(write_policy(tmp_path, scoped(cgroup)))
    stop = threading.Event()
    thread, denied = deny_opens(CONTROL, stop)
    procs = cgroup2_root() / cgroup.lstrip("/") / "cgroup.procs"
    try:
        run = subprocess.run([sys.executable, "-c", FAILED_OPEN, CONTROL, other], capture_output=True, text=True,
                             preexec_fn=lambda: procs.write_text(str(os.getpid())), check=True)
    finally:
        stop.set()
        thread.join()
    opened, chmod = run.stdout.split()
    if opened == "ok":
        pytest.skip("this kernel sends no fanotify permission event for a debugfs open")
    # fanotify refused the open after file_open marked the thread; the chmod that
    # follows is checked for debugfs with no open before it: inode_setattr cleared the mark.
    assert (opened, chmod, len(denied)) == ("EPERM", "EPERM", 1)
    assert [e["file"] for e in events() if e["reason"] == "debugfs"] == [None]
