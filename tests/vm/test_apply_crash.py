"""Crash consistency of ``enforce apply`` in real kernels (guests): kill -9 at every step.

The writer is a forked copy of this test process running ``enforce apply``
in-process (no interpreter start under TCG), traced with ``strace -p`` and
killed by the kernel with ``--inject=SYSCALL:signal=KILL:when=N``: strace
sends SIGKILL at the call's entry, so the call never runs and the kill leaves
exactly what every earlier call did. The policies are scoped to a cgroup of
the test's own and deny one reason each: OLD tracefs, NEW kcore (both allowed
by an integrity kernel, so only the enforcer decides). After each kill:

- the running policy is the old one or the new one, never neither and never
  a mix: an open of each guarded file inside the cgroup tells which;
- re-running the same command converges (the new policy, exit 0), and so
  does going back (applying the old one again).

Where to kill (``points()``, from one traced run of the same command from the
same state). Two kills leave the same state when no call between them changed
anything that outlives the writer, so the sweep kills once before each call
that does, and only there:

- files and directories (bpffs pins, the state file): mkdir, rmdir, unlink,
  rename, an open that creates or truncates a file, write, pwrite64,
  ftruncate, fallocate, fchmod, mount;
- a BPF object that outlives the writer: pinning it (BPF_OBJ_PIN); updating,
  deleting or freezing elements of a map, or detaching a link, through an fd
  that refers to a pinned object (opened by BPF_OBJ_GET, or pinned earlier in
  the run; dups followed); a legacy BPF_PROG_ATTACH;
- the policy switch, a store into the mmap'd policy map (no system call): the
  clock_nanosleep of the grace period that follows it, when that mapping is of
  a pinned map.

Not kill points, from what the code and the kernel do: a call that failed in
the traced run (mkdir of an existing directory, which libbpf makes before
every pin; a delete of an absent key): it changed nothing. BPF_PROG_LOAD,
BPF_MAP_CREATE and updates, freezes and the switch of maps only this process
holds (a new enforcer before its pins, the seal's check load): the kernel
frees them with the writer's last fd. BPF_LINK_CREATE and
BPF_RAW_TRACEPOINT_OPEN: the program runs while the writer lives, but an
unpinned link is detached when its last fd closes, so after the kill it is as
if never made. Reads change nothing, nor does an open for writing that
neither creates nor truncates (the proof's trigger, tracefs's trace_marker,
is opened and closed). fsync only makes a change durable across a power
loss, which a kill is not: the page cache already holds it. The mount of
bpffs happens only in a boot's first apply: the sweep runs after a warm-up
apply (as every later apply sees the boot), and a kill at that mount leaves
the boot as it was.

The warm-up also makes the writer's run repeatable: each writer is forked
from this process, which has by then imported everything, filled libbpf's
probe cache and mounted bpffs, so every writer makes the same calls in the
same order, and each kill checks (``killed_at``) that the call the kernel
stopped is the one the traced run named. (Tracing a cold first run was the
first-load sweep's failure: its ``mount #1`` never came again.)

Three transactions, each an ordinary test of the integrity boots (none seals
the boot), and the one-way end of the third:

- the first load (old = nothing loaded);
- a re-apply that updates the loaded enforcer in place (the other generation);
- ``--seal`` over a loaded unsealed enforcer, which replaces it by a new,
  frozen one: pinned beside the old one (``/sys/fs/bpf/lockdownctl-new``),
  then the old one's pins go, link first. Every kill up to and including the
  one at the unlink of the old link's pin: the old enforcer still runs, with
  the new one pinned and attached beside it or partly pinned (its union with
  the old: "both"); re-running without --seal drops the staged one and
  updates the old one in place, so nothing is sealed. To save a load per kill
  the sweep seals old and new in turn: each kill's convergence leaves the
  policy it sealed running unsealed, which the next kill replaces by the
  other one. A kill after that unlink leaves the frozen enforcer running
  alone, which lockdownctl treats as sealed though the seal's own programs
  are not attached yet: one way until reboot, and each integrity or none
  boot already has its one seal (test_signed.py's, test_seal.py's), so the
  sweep stops there, and runs the kill at that unlink last.

The one-way part, once per boot where no other test seals (the
confidentiality boots of 6.1 and 7.3, ``one_way(step=1)``; the kernel there
denies both guarded reasons itself, so what runs is read from the kernel:
the link's program and the policy map it reads): killed at the unlink after
the old link's, the frozen enforcer runs alone from the staging pins,
unsealed, and re-running the same ``apply --seal`` finishes the move and the
seal ("resumed"). Before bpf/apply.py resumed it, the re-run was refused as
sealed: nothing converged, and nothing protected the pins. From the code,
every kill from there to the seal's first pin leaves that enforcer (in the
staging pins or moved) and the same resumption; a kill inside the seal
itself (a seal half pinned) is not covered: it counts as sealed, refused.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lockdownctl.bpf import abi, libbpf
from lockdownctl.bpf.enforcer import STAGING_DIR as STAGING
from lockdownctl.state.pins import PIN_DIR as PIN
from tests.conftest import lockdownctl_inproc as lockdownctl
from tests.vm.test_enforcer import cgroup2_root, open_in, scoped_policy

OLD_FILE, NEW_FILE = "/sys/kernel/tracing/trace", "/proc/kcore"
FILE_CALLS = ("mount", "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "rename", "renameat", "renameat2",
              "fchmod", "write", "pwrite64", "ftruncate", "fallocate", "openat")
MAP_WRITES = ("BPF_MAP_UPDATE_ELEM", "BPF_MAP_DELETE_ELEM", "BPF_MAP_FREEZE", "BPF_LINK_DETACH", "BPF_LINK_UPDATE")
NEW_FDS = ("BPF_MAP_CREATE", "BPF_PROG_LOAD", "BPF_LINK_CREATE", "BPF_RAW_TRACEPOINT_OPEN", "BPF_BTF_LOAD")
STATES = {(True, False): "old", (False, True): "new", (False, False): "nothing", (True, True): "both"}
CALL = re.compile(r"^([a-z0-9_]+)\((.*)")
RESULT = re.compile(r"\)\s+=\s+(-?\d+|\?)")


@dataclass(frozen=True)
class Point:
    name: str  # the system call
    when: int  # its ordinal among the writer's calls of that name (strace's when=N)
    what: str  # its signature: the BPF command and the paths it names

    def __str__(self) -> str:
        return f"{self.name} #{self.when} ({self.what})"


def signature(name: str, args: str) -> str:
    cmd = args.split(",", 1)[0] if name == "bpf" else ""
    if name in ("write", "pwrite64"):  # data differs per run (times, counts); the file was named at its open
        return ""
    # mkstemp's random part of the state file's temporary name differs per run
    paths = [re.sub(r"\.enforcer\.json\.[^.\"]+\.lockdownctl", ".enforcer.json.*.lockdownctl", p)
             for p in re.findall(r'"([^"]*)"', args)]
    return " ".join([cmd, *paths]).strip()


def calls(trace: Path) -> Iterator[tuple[str, str, str | None]]:
    """(name, arguments, result) per system call strace wrote (one thread; None: killed in it)."""
    for line in trace.read_text().splitlines():
        m = CALL.match(line)
        if m is None:
            continue  # +++ exited/killed +++, --- signals ---
        results = RESULT.findall(line)
        yield m.group(1), m.group(2), results[-1] if results and not line.endswith("<unfinished ...>") else None


def pinned_fd(args: str, key: str, kept: dict[int, bool]) -> bool:
    m = re.search(rf"\b{key}=(\d+)", args)
    return m is not None and kept.get(int(m.group(1)), False)


def points(trace: Path) -> list[Point]:
    """The kill points of a traced run (module docstring): the calls that changed
    something that outlives the writer."""
    kept: dict[int, bool] = {}  # fd -> refers to a pinned BPF object
    shared_map = False  # the last writable shared mapping is of a pinned map
    seen: dict[str, int] = {}
    out = []
    for name, args, result in calls(trace):
        seen[name] = seen.get(name, 0) + 1
        ok = result not in (None, "?") and not result.startswith("-")
        ret = int(result) if ok and result is not None else None

        change = False
        if name == "bpf":
            cmd = args.split(",", 1)[0]
            if cmd == "BPF_OBJ_PIN":
                change = ok
                if ok and (m := re.search(r"\bbpf_fd=(\d+)", args)):
                    kept[int(m.group(1))] = True
            elif cmd == "BPF_OBJ_GET" and ret is not None:
                kept[ret] = True
            elif cmd in NEW_FDS and ret is not None:
                kept[ret] = False
            elif cmd in MAP_WRITES:
                change = ok and (pinned_fd(args, "map_fd", kept) or pinned_fd(args, "link_fd", kept))
            elif cmd == "BPF_PROG_ATTACH":
                change = ok
        elif name == "close":
            if m := re.match(r"(\d+)", args):
                kept.pop(int(m.group(1)), None)
        elif name in ("dup", "dup2", "dup3", "fcntl") and ret is not None:
            m = re.match(r"(\d+)", args)
            if m and (name != "fcntl" or "F_DUPFD" in args):
                kept[ret] = kept.get(int(m.group(1)), False)
        elif name == "mmap":
            fields = [f.strip() for f in args.split(",")]
            if len(fields) >= 5 and "MAP_SHARED" in fields[3] and "PROT_WRITE" in fields[2]:
                shared_map = fields[4].isdigit() and kept.get(int(fields[4]), False)
        elif name == "clock_nanosleep":
            change = shared_map  # the switch was the store before it
        elif name == "openat":  # only creating or truncating a file changes it; writes are their own points
            change = ok and any(f in args for f in ("O_CREAT", "O_TRUNC"))
        elif name == "write":  # not standard output or error (redirected in-process anyway)
            change = ok and not args.startswith(("1,", "2,"))
        elif name in FILE_CALLS:
            change = ok
        if change:
            out.append(Point(name, seen[name], signature(name, args)))
    return out


def killed_at(trace: Path) -> Point | None:
    """The call a traced writer was killed in: its last, unfinished (None: it finished it)."""
    seen: dict[str, int] = {}
    last = None
    for name, args, result in calls(trace):
        seen[name] = seen.get(name, 0) + 1
        last = Point(name, seen[name], signature(name, args)) if result in (None, "?") else None
    return last


def tail(trace: Path) -> str:
    return "\n".join(trace.read_text().splitlines()[-4:])


@pytest.fixture(scope="module")
def cgroup() -> Iterator[str]:
    name = f"ldctl-crash-{os.getpid()}"
    path = cgroup2_root() / name
    path.mkdir(exist_ok=True)
    yield "/" + name
    for _ in range(50):  # our children have exited; the cgroup empties shortly after
        try:
            path.rmdir()
            break
        except OSError:
            time.sleep(0.1)


@pytest.fixture(scope="module")
def policies(cgroup: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("policies")
    out = {}
    for name, reason in (("old", "tracefs"), ("new", "kcore")):
        (d / f"{name}.yaml").write_text(scoped_policy(cgroup, f"  {reason}: deny\n"))
        out[name] = str(d / f"{name}.yaml")
    return out


def running(cgroup: str) -> str:
    """Which policy the kernel enforces in the cgroup: old, new, nothing or both."""
    return STATES[(open_in(cgroup, OLD_FILE) == "denied", open_in(cgroup, NEW_FILE) == "denied")]


def apply(policy: str, *extra: str) -> None:
    run = lockdownctl("enforce", "apply", policy, *extra)
    assert run.code == 0, run.err or run.out


def remove() -> None:
    run = lockdownctl("enforce", "remove")
    assert run.code == 0, run.err


def forked_apply(args: list[str], strace_args: list[str]) -> int:
    """``lockdownctl ARGS`` in a forked child traced by strace from its first
    step; returns its wait status."""
    strace = shutil.which("strace")
    assert strace is not None
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the writer: wait until traced, run, exit with its code
        try:
            os.close(go_w)
            os.read(go_r, 1)
            os._exit(lockdownctl(*args).code)
        finally:
            os._exit(70)
    os.close(go_r)
    tracer = subprocess.Popen([strace, "-qq", "-p", str(pid), *strace_args], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if "\nTracerPid:\t0\n" not in Path(f"/proc/{pid}/status").read_text():
                break
            time.sleep(0.05)
        else:
            pytest.fail("strace did not attach to the writer")
        os.write(go_w, b"x")
        os.close(go_w)
        _, status = os.waitpid(pid, 0)
    finally:
        tracer.wait(timeout=120)
    return status


def killed(status: int) -> bool:
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == 9


@dataclass
class Sweep:
    """One transaction killed at each of its points; the i-th run (0: the traced one)
    goes from ``before(i)`` to ``after(i)``."""

    args: Callable[[int], list[str]]  # the writer's command line
    before: Callable[[int], str]
    after: Callable[[int], str]
    setup: Callable[[int], None]  # brings the guest to before(i)
    converge: Callable[[int, str], None]  # re-runs after the i-th kill (or the traced run) and checks
    allowed: tuple[str, ...] = ()  # what a kill may leave besides before and after
    until: str | None = None  # kill the traced run at the first of these calls (one way after it)

    def run(self, cgroup: str, tmp_path: Path, last: Callable[[Point], bool] | None = None) -> list[Point]:
        """Trace the writer once, then kill it at every point (with ``until``: up to
        and including the traced run's own kill, which ``last`` must accept)."""
        trace = tmp_path / "trace"
        self.setup(0)
        kill = [f"--inject={self.until}:signal=KILL:when=1"] if self.until else []
        status = forked_apply(self.args(0), ["-s", "256", "-o", str(trace), *kill])
        found = points(trace)
        if self.until:
            end = killed_at(trace)
            assert killed(status) and end is not None and last is not None and last(end), (status, tail(trace))
            found.append(end)
        else:
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        self.converge(0, "after the traced run")
        assert any(p.name == "bpf" for p in found), [str(p) for p in found]
        started = time.monotonic()
        for i, point in enumerate(found, 1):
            self.setup(i)
            before = running(cgroup)
            what = f"killed at {point}"
            assert before == self.before(i), f"{what}: {before} ran before it, not {self.before(i)}"
            status = forked_apply(self.args(i), ["-s", "256", "-o", str(trace),
                                                 f"--inject={point.name}:signal=KILL:when={point.when}"])
            assert killed(status), (what, status)
            assert killed_at(trace) == point, f"{what}: the writer was killed in {killed_at(trace)}: {tail(trace)}"
            state = running(cgroup)
            assert state in (before, self.after(i), *self.allowed), f"{what}: the kernel enforces {state}"
            self.converge(i, what)
        took = time.monotonic() - started
        print(f"{len(found)} kills in {took:.1f} s ({took / len(found):.1f} s each): {', '.join(map(str, found))}")
        return found


def converge_to(cgroup: str, policy: str, state: str, what: str) -> None:
    apply(policy)
    now = running(cgroup)
    assert now == state, f"{what}: re-running left {now}"


@pytest.mark.guest(kernel="all", level="integrity", seconds=600)  # 114-139 s measured under TCG
def test_first_load_killed_at_every_step(cgroup: str, policies: dict[str, str], tmp_path: Path) -> None:
    remove()
    apply(policies["new"])  # the warm-up (module docstring): bpffs mounted, caches filled
    try:
        found = Sweep(args=lambda _i: ["enforce", "apply", policies["new"]], before=lambda _i: "nothing",
                      after=lambda _i: "new", setup=lambda _i: remove(),
                      converge=lambda _i, what: converge_to(cgroup, policies["new"], "new", what),
                      ).run(cgroup, tmp_path)
        assert sum(p.what.startswith("BPF_OBJ_PIN") for p in found) >= 12, [str(p) for p in found]
    finally:
        remove()


@pytest.mark.guest(kernel="all", level="integrity", seconds=240)  # 37-45 s measured
def test_reapply_killed_at_every_step(cgroup: str, policies: dict[str, str], tmp_path: Path) -> None:
    """From old to new in place; after each kill re-running converges to new, and
    going back to old does too, whatever the state file says (the next kill's start)."""
    def converge(_i: int, what: str) -> None:
        converge_to(cgroup, policies["new"], "new", what)
        converge_to(cgroup, policies["old"], "old", f"{what}, then back to old")

    remove()
    apply(policies["new"])
    apply(policies["old"])  # the warm-up: loaded, then updated in place
    try:
        found = Sweep(args=lambda _i: ["enforce", "apply", policies["new"]], before=lambda _i: "old",
                      after=lambda _i: "new", setup=lambda _i: None, converge=converge).run(cgroup, tmp_path)
        assert "clock_nanosleep" in [p.name for p in found], [str(p) for p in found]  # the switch
    finally:
        remove()


@pytest.mark.guest(kernel="all", level="integrity", seconds=600)  # 130-298 s measured (busy host)
def test_seal_replacement_killed_until_the_seal_holds(cgroup: str, policies: dict[str, str], tmp_path: Path) -> None:
    """--seal over a loaded unsealed enforcer: every kill up to the unlink of the old
    link's pin, the traced run's own kill (module docstring); never seals the boot."""
    names = ("old", "new")

    def target(i: int) -> str:  # sealed in turn: the traced run (0) and odd kills seal new
        return names[(i + 1) % 2]

    def converge(i: int, what: str) -> None:
        # unsealed: drops the staged enforcer, updates the old one in place
        converge_to(cgroup, policies[target(i)], target(i), what)
        status = lockdownctl("enforce", "status", "--json").json()["data"]
        assert status["loaded"] and not status["sealed"], f"{what}: {status}"
        assert not os.path.exists(STAGING), f"{what}: {STAGING} left"

    def last(point: Point) -> bool:  # the old one's link pin, which keeps it running, goes first
        return point.name in ("unlink", "unlinkat") and point.what.endswith(f"{PIN}/link")

    remove()
    apply(policies["new"])
    apply(policies["old"])  # the warm-up, and the traced run's start: old runs, unsealed
    # converge's status imports modules the writers would import otherwise: before the trace
    assert lockdownctl("enforce", "status", "--json").code == 0
    try:
        found = Sweep(args=lambda i: ["enforce", "apply", policies[target(i)], "--seal"],
                      before=lambda i: names[i % 2], after=target, setup=lambda _i: None, converge=converge,
                      allowed=("both",), until="unlink,unlinkat").run(cgroup, tmp_path, last)
        assert sum(p.what.startswith("BPF_OBJ_PIN") for p in found) >= 12, [str(p) for p in found]
    finally:
        if lockdownctl("enforce", "remove").code != 0:
            pytest.fail("a kill left a sealed enforcer")


def bpftool(*args: str) -> Any:
    return json.loads(subprocess.run(["/usr/sbin/bpftool", "-j", *args], capture_output=True, text=True,
                                     check=True).stdout)


def pinned_policy(directory: str) -> abi.LdPolicy:
    fd = libbpf.obj_get_readonly(f"{directory}/policy")
    try:
        policy = abi.LdPolicy()
        assert libbpf.map_lookup(fd, ctypes.c_uint32(0), policy)
        return policy
    finally:
        os.close(fd)


# One way: a boot of a family whose boot has no other seal (at integrity test_signed.py
# seals, at none test_seal.py, at confidentiality on 6.12 test_ansible_guest.py). The
# kernel at confidentiality denies both guarded reasons itself, so the kernel's own
# view names what runs: the attached link's program and the policy map it reads.
@pytest.mark.guest(kernel=["6.1", "7.3"], level="confidentiality", seconds=300)  # 26 s measured
@pytest.mark.one_way(step=1, why="seals the enforcer until reboot")
def test_seal_killed_after_the_old_one_went_is_finished_by_rerunning(policies: dict[str, str], tmp_path: Path) -> None:
    """--seal over an unsealed enforcer killed just after the old one's link pin went
    (the unlink after it): the new, frozen enforcer runs alone from the staging pins,
    unsealed; re-running the same command finishes the move and the seal."""
    remove()
    apply(policies["new"])
    apply(policies["old"])  # the warm-up; old runs, unsealed
    new_id = lockdownctl("enforce", "apply", policies["new"], "--seal", "--dry-run", "--json").json()["data"]
    trace = tmp_path / "trace"
    status = forked_apply(["enforce", "apply", policies["new"], "--seal"],
                          ["-s", "256", "-o", str(trace), "--inject=unlink,unlinkat:signal=KILL:when=2"])
    unlinks = [(args, result) for name, args, result in calls(trace) if name in ("unlink", "unlinkat")]
    assert killed(status) and len(unlinks) == 2, tail(trace)
    assert f'"{PIN}/link"' in unlinks[0][0] and unlinks[0][1] == "0", unlinks  # the old one detached
    assert f'"{PIN}/' in unlinks[1][0] and unlinks[1][1] in (None, "?"), unlinks  # killed in the next
    # What runs: the one ldctl_locked_down link is the staged one, its program reads the staged
    # policy map, which holds the new policy, frozen and marked sealed.
    assert not os.path.exists(f"{PIN}/link") and os.path.exists(f"{STAGING}/link")
    progs = {p["id"]: p for p in bpftool("prog", "show") if p.get("name") == "ldctl_locked_down"}
    links = [ln for ln in bpftool("link", "show") if ln.get("prog_id") in progs]
    staged = bpftool("link", "show", "pinned", f"{STAGING}/link")
    assert [ln["id"] for ln in links] == [staged["id"]], links
    assert bpftool("map", "show", "pinned", f"{STAGING}/policy")["id"] in progs[staged["prog_id"]]["map_ids"]
    frozen = pinned_policy(STAGING)
    assert f"{frozen.policy_id:016x}" == new_id["policy_id"] and frozen.sealed, (frozen.policy_id, frozen.sealed)

    run = lockdownctl("enforce", "apply", policies["new"], "--seal", "--json")  # re-running converges
    assert run.code == 0, run.err or run.out
    data = run.json()["data"]
    assert data["action"] == "resumed" and data["seal"]["pins"] and data["proof"]["verified"], data
    assert not os.path.exists(STAGING) and pinned_policy(PIN).policy_id == frozen.policy_id
    status_ = lockdownctl("enforce", "status", "--json").json()["data"]
    assert status_["loaded"] and status_["sealed"] and status_["policy_id"] == new_id["policy_id"], status_
    assert status_["verdicts"]["kcore"] == "deny" and status_["tamper"] is not None, status_
    assert lockdownctl("status", "--json").json()["data"]["enforcer"]["sealed"] is True  # the state file
    for again in (["enforce", "apply", policies["old"], "--seal"], ["enforce", "apply", policies["old"]],
                  ["enforce", "remove"]):
        refused = lockdownctl(*again)
        assert refused.code == 1 and "sealed" in refused.err, (again, refused.err)
    assert lockdownctl("enforce", "apply", policies["new"], "--seal").code == 1  # sealed whole now: one way
