"""The seal, tampered with as root in lockdown=none guests of both kernels.

Each route below is a way root could lower an enforced policy, tried with real
tools (bpftool, rm, mv, umount, mount, kill, a ctypes bpf() call, lockdownctl
itself). The policy denies tracefs to a test cgroup only, so the guest keeps
working; "guarded" opens a tracefs file from that cgroup.

- ``test_unsealed_route``: without the seal, each route works (the tool
  succeeds) and the ones marked ``lowers`` really lower the policy: the
  guarded open succeeds afterwards. This proves the harness, not only the seal.
  Link detach (bpftool, ctypes by id and by pin) skips where the kernel
  cannot detach LSM links at all (EOPNOTSUPP: Debian's 6.1, 6.12 and 7.3);
  sealed, the link fd itself is refused (EPERM) before that question arises.
  ``sysctl kernel.ftrace_enabled=0`` skips likewise where the kernel no longer
  honours it (EOPNOTSUPP: Debian's 7.3).
- ``test_sealed_route``: after ``apply --seal``, each route fails and the
  guarded open is still denied; and every refusal left a trace (issue #20):
  the tools run under strace, and the seal's tamper events (read with
  ``lockdownctl enforce events --json``) are exactly strace's failed-with-EPERM
  system calls, one event each, with the attacker's pid and comm and the
  rule that refused it. Routes run in this process (ctypes) make one refused
  call each. ``test_tamper_counters_equal_events`` closes the books: the
  seal's per-rule counters equal the events delivered (plus drops).

The sealed suite runs twice per family, against both kinds of seal (issue #19):

- level ``none``: ``apply --seal`` (unsigned): the policy maps are frozen and
  BPF_F_RDONLY_PROG, and the seal refuses writable fds to them;
- level ``integrity``: ``apply --seal --signed-by CERT`` (user keyring), the
  signed seal test_signed.py makes in that boot (or the same one made here if
  that file is not selected), with the guarded policy installed by a signed
  ``enforce update`` (a bundle carries no scope, so tracefs is denied to every
  process, the guarded one included). The gate must write the policy maps, so
  the policy map is neither frozen nor BPF_F_RDONLY_PROG, and the seal refuses
  *every* new fd to the maps the gate writes instead. Same routes, same
  expectations; SIGNED_DIFFERS names, per route, what protects the policy
  differently there and why. At integrity the kernel itself leaves tracefs
  open, so the guarded open still shows the enforcer's policy alone.
  No boot is added: the integrity boots existed (test_signed.py), and they
  already carried a signed seal.

A sealed guest cannot be unsealed, so every test that needs the seal is
marked ``one_way(step=2)``: tests/vm/conftest.py runs it after every ordinary
test of the boot (the unsealed routes included), after test_signed.py's
``step=1`` (which makes the integrity boot's signed seal, and at level none
finds this file's seal and skips), and before test_enable_now.py's ``step=3``,
which raises the kernel's level (at confidentiality the kernel itself would
deny tracefs, and the guarded open would prove nothing) and still works on a
sealed guest.
"""

from __future__ import annotations

import ctypes
import json
import mmap
import os
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from lockdownctl.bpf import abi, libbpf
from lockdownctl.bpf import enforcer as engine
from lockdownctl.state.pins import LINK_PIN
from lockdownctl.state.pins import PIN_DIR as PIN_DIR_NAME
from tests.conftest import lockdownctl_inproc as lockdownctl
from tests.vm.test_enforcer import cgroup2_root

PIN_DIR = Path(PIN_DIR_NAME)
LINK = PIN_DIR / LINK_PIN
TRACEFS_FILE = "/sys/kernel/tracing/trace"
BPFTOOL = "/usr/sbin/bpftool"
MOVED = "/sys/fs/bpf/ldctl-moved"
# enum bpf_cmd / bpf_prog_type / bpf_attach_type (include/uapi/linux/bpf.h)
BPF_OBJ_GET, BPF_RAW_TRACEPOINT_OPEN, BPF_LINK_GET_FD_BY_ID, BPF_LINK_DETACH = 7, 17, 30, 34
BPF_PROG_TYPE_TRACING, BPF_MODIFY_RETURN, BPF_TRACE_ITER = 26, 26, 28
SYS_BPF = 321  # x86-64
RETURN_0 = [(0xB7, 0, 0, 0), (0x95, 0, 0, 0)]  # r0 = 0; exit


CGROUP = "/ldctl-seal-test"


def guarded() -> str:
    """Open the tracefs file from the test cgroup: "denied" while the policy holds."""
    procs = cgroup2_root() / CGROUP.lstrip("/") / "cgroup.procs"
    out = subprocess.run(["/usr/bin/head", "-c", "1", TRACEFS_FILE], capture_output=True, text=True,
                         preexec_fn=lambda: procs.write_text(str(os.getpid())), check=False)
    if out.returncode == 0:
        return "ok"
    assert "Operation not permitted" in out.stderr, out.stderr
    return "denied"


def guarded_soon() -> str:
    """The kernel frees a released link, and so detaches its program, after an RCU grace period."""
    for _ in range(50):
        if guarded() == "ok":
            return "ok"
        time.sleep(0.1)
    return "denied"


LAST_ERROR: list[str] = [""]  # what the last refused attempt said
STRACE = "/usr/bin/strace"
# While set (sealed routes): tools run under strace, and each refused system call
# (EPERM) is appended as (pid, comm, syscall): the kernel's own view of the attempts.
REFUSED: list[tuple[int, str, str]] | None = None


def sh(*cmd: str) -> bool:
    """Run a real tool; True when it succeeded."""
    if REFUSED is None:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    else:
        log = Path("/tmp/ldctl-strace.log")
        done = subprocess.run([STRACE, "-f", "-qq", "-Z", "-o", str(log), *cmd], capture_output=True, text=True,
                              check=False)
        comm = Path(cmd[0]).name[:15]
        for line in log.read_text().splitlines():
            pid, _, call = line.partition(" ")
            if call.rstrip().endswith("EPERM (Operation not permitted)"):
                REFUSED.append((int(pid), comm, call.split("(")[0]))
    print(f"$ {' '.join(cmd)} -> {done.returncode} {done.stdout.strip()[:200]} {done.stderr.strip()[:200]}")
    LAST_ERROR[0] = done.stderr
    return done.returncode == 0


# --- raw bpf(2), as an attacker would call it -------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.syscall.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_uint]


def bpf(cmd: int, attr: bytes) -> int:
    buf = ctypes.create_string_buffer(attr, 144)
    ret = int(_libc.syscall(SYS_BPF, cmd, buf, 144))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"bpf({cmd}): {os.strerror(err)}")
    return ret


def obj_get(path: str, flags: int = 0) -> int:
    name = ctypes.create_string_buffer(path.encode())
    return bpf(BPF_OBJ_GET, struct.pack("QII", ctypes.addressof(name), 0, flags))


def attempt(fn: Callable[[], object]) -> bool:
    try:
        fn()
    except OSError as exc:
        print(f"refused: {exc}")
        LAST_ERROR[0] = str(exc)
        return False
    return True


# --- the routes ---------------------------------------------------------------------


@dataclass
class Ids:
    link: int
    policy_map: int
    policy_size: int
    slot: int


def enforcer_ids() -> Ids:
    link = json.loads(subprocess.run([BPFTOOL, "-j", "link", "show", "pinned", str(LINK)], capture_output=True,
                                     text=True, check=True).stdout)
    pmap = json.loads(subprocess.run([BPFTOOL, "-j", "map", "show", "pinned", str(PIN_DIR / "policy")],
                                     capture_output=True, text=True, check=True).stdout)
    status = lockdownctl("enforce", "status", "--json").json()["data"]
    return Ids(link["id"], pmap["id"], pmap["bytes_value"], status["generation"] & 1)


def zeros(n: int) -> list[str]:
    return ["0"] * n


def ctypes_link_detach(ids: Ids) -> bool:
    def go() -> None:
        fd = bpf(BPF_LINK_GET_FD_BY_ID, struct.pack("III", ids.link, 0, 0))
        try:
            bpf(BPF_LINK_DETACH, struct.pack("I", fd))
        finally:
            os.close(fd)

    return attempt(go)


def ctypes_pin_detach(ids: Ids) -> bool:
    def go() -> None:
        fd = obj_get(str(LINK))
        try:
            bpf(BPF_LINK_DETACH, struct.pack("I", fd))
        finally:
            os.close(fd)

    return attempt(go)


def mmap_write(ids: Ids) -> bool:
    def go() -> None:
        fd = obj_get(str(PIN_DIR / "policy"))
        try:
            with mmap.mmap(fd, mmap.PAGESIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE) as mem:
                off = abi.LdPolicy.verdict.offset
                mem[off: off + 2 * abi.LD_MAX_REASONS] = bytes(2 * abi.LD_MAX_REASONS)  # all allow
        finally:
            os.close(fd)

    return attempt(go)


def bpf_holders() -> list[int]:
    """Processes other than this one with a BPF object open."""
    holders = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            fds = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        if any(f.startswith("anon_inode:bpf") for f in fds):
            holders.append(int(pid))
    return holders


def kill_loader(ids: Ids) -> bool:
    """Kill -9 every process that holds one of our BPF objects (an events follower)."""
    follower = subprocess.Popen([sys.executable, "-m", "lockdownctl", "enforce", "events", "--follow"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={**os.environ, "PYTHONPATH": str(Path(engine.HERE).parents[1])})
    try:
        for _ in range(900):  # a Python start under TCG takes seconds
            if follower.pid in bpf_holders() or follower.poll() is not None:
                break
            time.sleep(0.1)
        holders = bpf_holders()
        print(f"holders: {holders}, follower {follower.pid}")
        return follower.pid in holders and all(sh("kill", "-9", str(pid)) for pid in holders)
    finally:
        follower.kill()
        follower.wait(timeout=60)


def load_only(prog_type: int, attach: int, target: str) -> Callable[[Ids], bool]:
    def go(ids: Ids) -> bool:
        def load() -> None:
            btf_id = libbpf.find_vmlinux_btf_id(target, attach)
            os.close(libbpf.prog_load(prog_type, "ldctl_t_tamper", RETURN_0, expected_attach_type=attach,
                                      attach_btf_id=btf_id))

        return attempt(load)

    return go


def lsm_allow_all(ids: Ids) -> bool:
    """A second LSM program on locked_down that allows everything, attached while we look."""
    def go() -> None:
        btf_id = libbpf.find_vmlinux_btf_id("locked_down", libbpf.BPF_LSM_MAC)
        prog = libbpf.prog_load(libbpf.BPF_PROG_TYPE_LSM, "ldctl_t_allow", RETURN_0,
                                expected_attach_type=libbpf.BPF_LSM_MAC, attach_btf_id=btf_id)
        try:
            link = bpf(BPF_RAW_TRACEPOINT_OPEN, struct.pack("QI", 0, prog))
            try:
                assert guarded() == "denied", "an allow-all LSM program undid a denial"
            finally:
                os.close(link)
        finally:
            os.close(prog)

    return attempt(go)


def remove(ids: Ids) -> bool:
    run = lockdownctl("enforce", "remove")
    LAST_ERROR[0] = run.err
    return run.code == 0


def reapply_lower(ids: Ids) -> bool:
    path = Path("/tmp/ldctl-seal-lower.yaml")
    path.write_text(f"version: 1\nprofile: none\nscope:\n  cgroup: {CGROUP}\nreasons:\n  tracefs: allow\n")
    run = lockdownctl("enforce", "apply", str(path))
    LAST_ERROR[0] = run.err
    return run.code == 0


@dataclass
class Route:
    name: str
    run: Callable[[Ids], bool]
    lowers: bool = True  # without the seal, does this route lower the policy?
    unsealed: bool = True  # False: trying it without the seal would break the guest


ROUTES = [
    Route("bpftool-link-detach-id", lambda i: sh(BPFTOOL, "link", "detach", "id", str(i.link))),
    Route("bpftool-link-detach-pinned", lambda i: sh(BPFTOOL, "link", "detach", "pinned", str(LINK))),
    Route("ctypes-link-detach-by-id", ctypes_link_detach),
    Route("ctypes-link-detach-by-pin", ctypes_pin_detach),
    Route("rm-link-pin", lambda i: sh("rm", "-f", str(LINK))),
    Route("rm-rf-pin-dir", lambda i: sh("rm", "-rf", str(PIN_DIR))),
    Route("mv-link-pin-then-rm", lambda i: sh("mv", str(LINK), MOVED) and sh("rm", "-f", MOVED)),
    Route("mv-pin-dir-then-rm", lambda i: sh("mv", str(PIN_DIR), MOVED) and sh("rm", "-rf", MOVED)),
    Route("bpftool-map-update-pinned", lambda i: sh(BPFTOOL, "map", "update", "pinned", str(PIN_DIR / "policy"),
                                                    "key", *zeros(4), "value", *zeros(i.policy_size))),
    Route("bpftool-map-update-id", lambda i: sh(BPFTOOL, "map", "update", "id", str(i.policy_map),
                                                "key", *zeros(4), "value", *zeros(i.policy_size))),
    Route("bpftool-map-delete-scope", lambda i: sh(BPFTOOL, "map", "delete", "pinned", str(PIN_DIR / "scope_cgroup"),
                                                   "key", str(i.slot), "0", "0", "0")),
    Route("mmap-write-policy", mmap_write),
    Route("umount-bpffs", lambda i: sh("umount", engine.BPFFS)),
    Route("umount-lazy-sysfs", lambda i: sh("umount", "-l", "/sys"), unsealed=False),
    Route("mount-over-pin-dir", lambda i: sh("mount", "-t", "tmpfs", "ldctl-over", str(PIN_DIR)), lowers=False),
    Route("mount-over-bpffs", lambda i: sh("mount", "-t", "tmpfs", "ldctl-over", engine.BPFFS), lowers=False),
    Route("sysctl-ftrace-disabled", lambda i: sh("sysctl", "-w", "kernel.ftrace_enabled=0")),
    Route("kill-9-holders", kill_loader, lowers=False),
    Route("load-fmod-ret-security_locked_down",
          load_only(BPF_PROG_TYPE_TRACING, BPF_MODIFY_RETURN, "security_locked_down"), lowers=False),
    Route("load-map-elem-iterator", load_only(BPF_PROG_TYPE_TRACING, BPF_TRACE_ITER, "bpf_map_elem"), lowers=False),
    Route("lsm-program-allowing-all", lsm_allow_all, lowers=False),
    Route("enforce-remove", remove),
    Route("enforce-apply-lower", reapply_lower),
]
# Routes that never lower the policy either way (lowers=False) are kept to show
# what the seal refuses anyway (mounts, fmod_ret, iterators) or that a route is
# closed by design (no loader to kill; a later LSM program cannot undo a denial).
# Expected to pass both ways: a new LSM program may load and attach while sealed.
ALLOWED_SEALED = {"lsm-program-allowing-all", "kill-9-holders"}


def write_policy(path: Path, seal: bool = False) -> str:
    path.write_text(f"version: 1\nprofile: none\nscope:\n  cgroup: {CGROUP}\nreasons:\n  tracefs: deny\n"
                    + ("seal: true\n" if seal else ""))
    return str(path)


@pytest.fixture(scope="module")
def cgroup() -> str:
    (cgroup2_root() / CGROUP.lstrip("/")).mkdir(exist_ok=True)
    return CGROUP


def fstype_at(path: str) -> str | None:
    """File system type of the top mount at ``path`` (None: nothing mounted there)."""
    found = None
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == path:
            found = fields[fields.index("-") + 1]
    return found


def restore() -> None:
    """Undo what an unsealed route left behind: ftrace off, over-mounts, the bpffs, pins."""
    if Path("/proc/sys/kernel/ftrace_enabled").read_text().strip() != "1":
        sh("sysctl", "-w", "kernel.ftrace_enabled=1")
    for path in (str(PIN_DIR), engine.BPFFS):
        while fstype_at(path) == "tmpfs" and sh("umount", path):
            pass
    if fstype_at(engine.BPFFS) != "bpf":
        sh("mount", "-t", "bpf", "bpf", engine.BPFFS)
    lockdownctl("enforce", "remove")
    sh("rm", "-rf", MOVED, str(PIN_DIR))


@pytest.mark.guest(kernel="all", level="none")
@pytest.mark.parametrize("route", [r for r in ROUTES if r.unsealed], ids=lambda r: r.name)
def test_unsealed_route(route: Route, cgroup: str, tmp_path: Path) -> None:
    try:
        run = lockdownctl("enforce", "apply", write_policy(tmp_path / "p.yaml"), "--json")
        assert run.code == 0, run.err
        assert guarded() == "denied"
        ids = enforcer_ids()
        ok = route.run(ids)
        if not ok and "detach" in route.name and "not supported" in LAST_ERROR[0]:
            pytest.skip(f"this kernel cannot detach LSM links (BPF_LINK_DETACH: {LAST_ERROR[0].strip()}): "
                        "not a route here")
        if not ok and route.name == "sysctl-ftrace-disabled" and "not supported" in LAST_ERROR[0]:
            # Debian's 7.3: EOPNOTSUPP, and dmesg says "The ftrace_enabled file is deprecated
            # and no longer disables ftrace". The seal still refuses the write (sealed route).
            pytest.skip(f"this kernel ignores kernel.ftrace_enabled ({LAST_ERROR[0].strip()}): not a route here")
        assert ok, f"{route.name} failed without the seal: the harness is broken"
        if route.lowers:
            assert guarded_soon() == "ok", f"{route.name} succeeded but did not lower the policy"
        else:
            assert guarded() == "denied"
    finally:
        restore()


SEALED: dict[str, object] = {}
SEALS = pytest.mark.one_way(step=2, why="seals the enforcer until reboot (after test_signed.py's signed seal)")
# Where the sealed suite runs: unsigned at none, signed at integrity (module docstring).
BOTH_SEALS = pytest.mark.guest(kernel="all", level=["none", "integrity"])
SIGNED_LEVEL = "integrity"
# The policy the signed variant guards, installed through the gate: unscoped (bundles carry no scope).
SIGNED_POLICY = "version: 1\nprofile: none\nreasons:\n  tracefs: deny\n"
# Per route, how a signed seal protects the policy differently (same route, same expected refusal and rule):
SIGNED_DIFFERS = {
    "bpftool-map-update-pinned": "the policy map is not frozen (the gate writes it, and libbpf's writable mmap of "
                                 "a .bss map makes BPF_MAP_FREEZE fail with EBUSY): the seal's refusal of the fd "
                                 "is the only barrier, no longer backed by the freeze",
    "bpftool-map-update-id": "as bpftool-map-update-pinned: the fd by id is the barrier, no freeze behind it",
    "bpftool-map-delete-scope": "scope_cgroup is frozen in both; under a signed seal a read-only fd is refused too",
    "mmap-write-policy": "the policy map is not frozen: a writable mapping would be granted by the map itself, so "
                         "the seal's refusal of the fd is what stops it",
    "load-map-elem-iterator": "an iterator would write through any fd; the signed seal also refuses read-only fds "
                              "to the maps the gate writes, so it could not name them either",
    "enforce-apply-lower": "refused by lockdownctl as sealed; the one way to change a signed seal's policy is "
                           "enforce update with a newer bundle signed by the pinned key (test_signed.py)",
}


def signed_variant() -> bool:
    """In a guest of the signed variant's level (module-scoped fixtures cannot see guest_target)."""
    return os.environ.get("LOCKDOWNCTL_GUEST_LEVEL") == SIGNED_LEVEL


@pytest.fixture(scope="module")
def sealed(cgroup: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Apply --seal once (one way: every later test in this guest sees it); signed at integrity."""
    if not SEALED and signed_variant():
        SEALED.update(signed_seal(tmp_path_factory))
    if not SEALED:
        restore()
        policy = write_policy(tmp_path_factory.mktemp("seal") / "p.yaml")
        # Sealing an enforcer already running replaces it by a sealed load (see test_seal_applies).
        assert lockdownctl("enforce", "apply", policy).code == 0
        SEALED["unsealed_prog_ids"] = our_prog_ids()
        run = lockdownctl("enforce", "apply", policy, "--seal", "--json")
        assert run.code == 0, run.err
        env = run.json()
        # bpftool can no longer open the link pin (that is the seal): the ids come from apply
        protected = env["data"]["seal"]["protected"]
        generation = lockdownctl("enforce", "status", "--json").json()["data"]["generation"]
        ids = Ids(protected["link_ids"][0], protected["map_ids"][0], ctypes.sizeof(abi.LdPolicy), generation & 1)
        SEALED.update(env["data"], warnings=env["warnings"], ids=ids)
    return SEALED


def signed_seal(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The boot's signed seal (test_signed.py's), guarding SIGNED_POLICY installed by a signed update."""
    from lockdownctl.bpf import gate
    from tests.vm.test_signed import signed_seal as make_signed_seal

    state = make_signed_seal(tmp_path_factory)
    tmp, owner = state["tmp"], state["owner"]
    version = gate.read_info().version + 1
    (tmp / "tamper.yaml").write_text(SIGNED_POLICY)
    run = lockdownctl("policy", "sign", str(tmp / "tamper.yaml"), "--key", owner[0], "--cert", owner[1],
                      "--version", str(version), "-o", str(tmp / "tamper.bundle"))
    assert run.code == 0, run.err
    run = lockdownctl("enforce", "update", str(tmp / "tamper.bundle"), "--json")
    assert run.code == 0, run.err
    assert gate.read_info().version == version
    applied = state["applied"]
    status = lockdownctl("enforce", "status", "--json").json()["data"]
    assert status["sealed"] and status["signed"]["version"] == version and status["scoped"] is False
    assert status["verdicts"]["tracefs"] == "deny"
    protected = applied["seal"]["protected"]
    # This seal's earlier refusals (test_signed.py's) were consumed or are pending: drain
    # them, and count from here (test_tamper_counters_equal_events).
    assert lockdownctl("enforce", "events", "--json").code == 0
    baseline = lockdownctl("enforce", "status", "--json").json()["data"]["tamper"]["by_rule"]
    ids = Ids(protected["link_ids"][0], protected["map_ids"][0], ctypes.sizeof(abi.LdPolicy),
              status["generation"] & 1)
    return {**applied, "ids": ids, "signed_version": version, "tamper_baseline": baseline}


def our_prog_ids() -> set[int]:
    """Ids of the enforcer's programs (program fds stay available when sealed)."""
    out = subprocess.run([BPFTOOL, "-j", "prog", "show"], capture_output=True, text=True, check=True).stdout
    return {p["id"] for p in json.loads(out) if p.get("name") == "ldctl_locked_down"}


@pytest.mark.guest(kernel="all", level="none")
@SEALS
def test_seal_applies(sealed: dict[str, object]) -> None:
    seal = sealed["seal"]
    assert isinstance(seal, dict) and len(seal["pins"]) == 10
    assert sealed["action"] == "replaced"
    for _ in range(50):  # the unsealed program is freed after an RCU grace period
        now = our_prog_ids()
        if len(now) == 1:
            break
        time.sleep(0.1)
    assert len(now) == 1 and not now & sealed["unsealed_prog_ids"]  # type: ignore[operator]
    assert any("root can change the kernel through them" in w for w in sealed["warnings"])  # type: ignore[attr-defined]
    assert guarded() == "denied"
    status = lockdownctl("enforce", "status", "--json")
    assert status.code == 0, status.err
    data = status.json()["data"]
    assert data["sealed"] is True and data["sealed_at"].endswith("Z") and data["verdicts"]["tracefs"] == "deny"
    assert "Sealed:     until reboot, since " in lockdownctl("enforce", "status").out
    overall = lockdownctl("status", "--json").json()["data"]["enforcer"]
    assert overall["sealed"] is True and overall["sealed_at"] == data["sealed_at"]


# The seal's rule (bpf/seal.py RULES) that refuses each route's system calls.
RULE = {
    "bpftool-link-detach-id": {"link-fd-by-id"},
    "bpftool-link-detach-pinned": {"link-pin-writable-open"},
    "ctypes-link-detach-by-id": {"link-fd-by-id"},
    "ctypes-link-detach-by-pin": {"link-pin-writable-open"},
    "rm-link-pin": {"pin-unlink"},
    "rm-rf-pin-dir": {"pin-unlink", "pin-rmdir"},
    "mv-link-pin-then-rm": {"pin-rename"},
    "mv-pin-dir-then-rm": {"pin-rename"},
    "bpftool-map-update-pinned": {"map-writable-fd"},
    "bpftool-map-update-id": {"map-writable-fd"},
    "bpftool-map-delete-scope": {"map-writable-fd"},
    "mmap-write-policy": {"map-writable-fd"},
    "umount-bpffs": {"umount"},
    "umount-lazy-sysfs": {"umount"},
    # util-linux mount uses the new mount API where it can (fsmount + move_mount)
    "mount-over-pin-dir": {"mount-over-bpffs", "move-mount-onto-bpffs"},
    "mount-over-bpffs": {"mount-over-bpffs", "move-mount-onto-bpffs"},
    "sysctl-ftrace-disabled": {"sysctl-ftrace-enabled"},
    "load-fmod-ret-security_locked_down": {"prog-load-fmod-ret"},
    "load-map-elem-iterator": {"prog-load-map-elem-iter"},
}
# Refused by lockdownctl itself before any system call reaches the seal: nothing to record.
REFUSED_BY_LOCKDOWNCTL = {"enforce-remove", "enforce-apply-lower"}
TALLY: dict[str, int] = {}  # tamper events delivered since the seal, per rule


def tamper_events() -> list[dict[str, object]]:
    """Consume the seal's buffered events through the CLI (and count them in TALLY)."""
    run = lockdownctl("enforce", "events", "--json")
    assert run.code == 0, run.err
    found = [e for e in run.json()["data"]["events"] if e["kind"] == "tamper"]
    for e in found:
        TALLY[str(e["rule"])] = TALLY.get(str(e["rule"]), 0) + 1
    return found


def self_comm() -> str:
    return Path("/proc/self/comm").read_text().strip()


@BOTH_SEALS
@SEALS
@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.name)
def test_sealed_route(route: Route, sealed: dict[str, object]) -> None:
    global REFUSED
    ids = sealed["ids"]
    assert isinstance(ids, Ids)
    tamper_events()  # what earlier tests left
    REFUSED = []
    try:
        ok = route.run(ids)
        refused = REFUSED
    finally:
        REFUSED = None
    print(f"{route.name}: {'succeeded' if ok else 'refused: ' + LAST_ERROR[0].strip()}")
    if "signed_version" in sealed and route.name in SIGNED_DIFFERS:
        print(f"  signed seal: {SIGNED_DIFFERS[route.name]}")
    if route.name in ALLOWED_SEALED:
        assert ok, f"{route.name} is harmless and should still work on a sealed machine"
    else:
        assert not ok, f"{route.name} succeeded on a sealed policy"
    assert guarded() == "denied", f"{route.name} lowered a sealed policy"
    assert LINK.exists()
    # The trace: one event per refused system call, from the attacker, by the right rule.
    events = tamper_events()
    for e in events:
        print(f"  tamper: {e['rule']} by {e['comm']}[{e['pid']}] exe {e['exe']} ({e['object']})")
    if route.name in ALLOWED_SEALED or route.name in REFUSED_BY_LOCKDOWNCTL:
        assert events == [], f"{route.name} was not refused by the seal, yet it recorded {events}"
        return
    assert {e["rule"] for e in events} <= RULE[route.name], events
    if refused:  # tools under strace: the events are exactly the EPERM system calls, pid by pid
        assert sorted((e["pid"], e["comm"]) for e in events) == sorted((pid, comm) for pid, comm, _ in refused), \
            (events, refused)
    else:  # a ctypes call in this process: exactly one
        assert [(e["pid"], e["tid"], e["comm"]) for e in events] == [(os.getpid(), threading.get_native_id(),
                                                                      self_comm())], events
    # The executable's identity is recorded (a cgroup/sysctl program cannot see the task). Its path is
    # named only while the process lives and its identity matches: the tools have exited, and under the
    # guest's overlay root the kernel records the file below the overlay, so it may stay unnamed here.
    for e in events:
        assert (e["exe_id"] is None) is (e["rule"] == "sysctl-ftrace-enabled"), e
        assert e["exe"] in (None, os.path.realpath(sys.executable)), e
    assert all(e["uid"] == 0 and e["cgroup"] is not None for e in events)


@BOTH_SEALS
@SEALS
def test_sealed_refusals_are_explained(sealed: dict[str, object], tmp_path: Path) -> None:
    run = lockdownctl("enforce", "remove")
    assert run.code == 1 and "policy is sealed until reboot" in run.err and run.err.count("\n") == 1
    tighter = tmp_path / "tighter.yaml"
    tighter.write_text(f"version: 1\nprofile: none\nscope:\n  cgroup: {CGROUP}\nreasons:\n  tracefs: deny\n"
                       "  kcore: deny\n")
    run = lockdownctl("enforce", "apply", str(tighter), "--json")  # tighten-only: refused too
    assert run.code == 1 and run.json()["errors"][0]["code"] == "sealed"
    assert "policy is sealed until reboot" in run.json()["errors"][0]["message"]


@BOTH_SEALS
@SEALS
def test_the_seal_protects_itself(sealed: dict[str, object]) -> None:
    seal = sealed["seal"]
    assert isinstance(seal, dict)
    for link_id in seal["protected"]["seal_link_ids"]:
        assert not sh(BPFTOOL, "link", "detach", "id", str(link_id))
    for pin in seal["pins"]:
        assert not sh("rm", "-f", pin)
        assert not ctypes_pin_detach_path(pin)
    if "signed_version" in sealed:  # the gate's link: detached by id or by its pin, neither works
        from lockdownctl.bpf import gate

        gate_link = os.path.join(PIN_DIR, gate.LINK)
        assert gate_link in seal["pins"] or Path(gate_link).exists()
        for link_id in seal["protected"]["link_ids"]:
            assert not sh(BPFTOOL, "link", "detach", "id", str(link_id))
        assert not sh("rm", "-f", gate_link) and not ctypes_pin_detach_path(gate_link)
        assert Path(gate_link).exists()
    assert guarded() == "denied"
    assert sh("umount", str(PIN_DIR)) is False  # nothing mounted there, and the bpffs stays


def ctypes_pin_detach_path(pin: str) -> bool:
    def go() -> None:
        fd = obj_get(pin)
        try:
            bpf(BPF_LINK_DETACH, struct.pack("I", fd))
        finally:
            os.close(fd)

    return attempt(go)


@BOTH_SEALS
@SEALS
def test_the_seal_protects_its_tamper_record(sealed: dict[str, object]) -> None:
    """The counters take no writable fd (refused and recorded) and no update; the ring buffer's
    records cannot be mapped writable (the kernel's own rule for ring buffers)."""
    tamper_events()
    counters = str(PIN_DIR / "seal-tamper_counters")
    assert not attempt(lambda: os.close(obj_get(counters)))
    events = tamper_events()
    assert [e["rule"] for e in events] == ["map-writable-fd"] and events[0]["pid"] == os.getpid()
    assert not sh(BPFTOOL, "map", "update", "pinned", counters, "key", *zeros(4), "value", *zeros(8))
    # watch --enforcer shows (and consumes) the attempt, counts it in its summary and exits 1
    run = lockdownctl("watch", "--enforcer", "--json")
    lines = [json.loads(line) for line in run.out.splitlines()]
    seen = [e for e in lines[:-1] if e["kind"] == "tamper"]
    for e in seen:
        TALLY[e["what"]] = TALLY.get(e["what"], 0) + 1
    assert seen and {(e["what"], e["comm"], e["dialect"]) for e in seen} == {("map-writable-fd", "bpftool", "seal")}
    assert lines[-1]["data"]["tamper_attempts"] == len(seen) and run.code == 1
    fd = obj_get(str(PIN_DIR / "seal-tamper_events"))  # allowed: a reader writes its consumer position
    try:
        with pytest.raises(OSError):  # the producer page and the records: read-only to user space
            mmap.mmap(fd, mmap.PAGESIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=mmap.PAGESIZE)
    finally:
        os.close(fd)


@BOTH_SEALS
@SEALS
def test_tamper_counters_equal_events(sealed: dict[str, object]) -> None:
    """Every refusal since the seal was delivered as an event (or counted as dropped): the seal's
    counters, read by ``enforce status``, equal the events this module consumed, rule by rule
    (signed variant: counters since the fixture drained the seal's earlier events). Also shows
    that lockdownctl's own reads (status, events, metrics) ask for no fd the seal refuses."""
    tamper_events()
    status = lockdownctl("enforce", "status", "--json").json()["data"]
    tamper = status["tamper"]
    assert tamper["dropped"] == 0
    before = sealed.get("tamper_baseline") or {}  # signed variant: the seal predates this module
    assert isinstance(before, dict)
    counted = {rule: n - before.get(rule, 0) for rule, n in tamper["by_rule"].items() if n - before.get(rule, 0)}
    assert counted == TALLY and sum(TALLY.values()) > 20, (counted, TALLY)
    samples = lockdownctl("metrics", "--json").json()["data"]["samples"]
    exported = {s["labels"]["rule"]: s["value"] for s in samples if s["name"] == "lockdownctl_tamper_attempts_total"}
    assert exported == {rule: float(n) for rule, n in tamper["by_rule"].items()}
    assert [s["value"] for s in samples if s["name"] == "lockdownctl_tamper_events_dropped_total"] == [0.0]
    assert "Tamper attempts: " in lockdownctl("enforce", "status").out
