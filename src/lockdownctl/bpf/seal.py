"""The seal: after ``lockdownctl enforce apply --seal`` nobody, root included,
can lower the enforced policy until reboot.

How each way of lowering it is closed (tests/vm/test_seal.py tries each):

- writing the policy maps (syscall update/delete, a writable mmap):
  BPF_MAP_FREEZE, the kernel's own one-way switch;
- writing them from a BPF program: BPF_F_RDONLY_PROG, set at load by the
  enforcer (enforcer.py), and no map-element iterator programs (which write
  map values regardless of it) may load;
- a writable fd to a policy map, by id or by pin: the ``bpf_map`` hook;
- detaching or updating a link (ours or the enforcer's): that needs an fd to
  the link; by id the ``bpf`` hook refuses BPF_LINK_GET_FD_BY_ID, by pin
  ``inode_permission`` refuses the writable open BPF_OBJ_GET needs for links
  (Debian's 6.1 and 6.12 cannot detach or update LSM links at all:
  EOPNOTSUPP; the fd is refused for kernels that can);
- removing or renaming the pins (the link's pin is its last reference):
  ``inode_unlink``, ``inode_rmdir``, ``inode_rename`` on the pin directory;
- unmounting bpffs (frees the pins), or lazily a mount it hangs from:
  ``sb_umount``; mounting over it or remounting it: ``sb_mount``,
  ``move_mount``;
- a program that changes a hook's return value: fmod_ret (BPF_MODIFY_RETURN)
  and freplace (BPF_PROG_TYPE_EXT) programs may not load. New BPF LSM
  programs may: on one hook the first non-zero return ends the chain (the
  trampoline skips the rest), so they can add denials, never undo ours;
- ``sysctl kernel.ftrace_enabled=0``, which turns every BPF trampoline (so
  every BPF LSM program) into a nop: a cgroup/sysctl program on the root
  cgroup refuses that write;
- killing the loader: there is none; the pins hold everything;
- ``lockdownctl enforce remove`` and ``apply``: refused ("policy is sealed
  until reboot"): a frozen policy cannot be changed, not even tightened.

The seal's own objects are protected the same way: their link ids, map ids
and pin inodes are written into the seal's .bss (BPF_F_RDONLY_PROG), which
is then frozen. The enforcer's are known before the seal loads and are in
its .rodata (``const volatile struct ld_seal_config cfg``).

Every refusal leaves a trace (issue #20): the program that refuses counts it
per rule (``tamper_counters``, pinned as ``seal-tamper_counters``, frozen
after load and protected like the policy maps: no writable fd) and records
who tried and what (``tamper_events``, a ring buffer pinned as
``seal-tamper_events``; user space can consume its records, never write
them: the kernel maps the data pages read-only). RULES names them;
``lockdownctl enforce events``, ``watch --enforcer`` and ``metrics`` show
them. The counters are the tally: a record the ring buffer had no room for
(or that a reader consumed) is still counted, and a lost record is counted
as a drop.
"""

from __future__ import annotations

import ctypes
import os
import time
from dataclasses import dataclass
from typing import Any

from ..errors import LockdownctlError
from ..host.bpf_syscall import BPF_TRACE_ITER
from ..state.pins import PIN_DIR
from . import enforcer as engine  # the enforcer (bpf/enforcer.py)
from . import hooks, libbpf
from .abi import kernel_dev

PIN_PREFIX = "seal-"  # pins of the seal's links, next to the enforcer's in PIN_DIR
SYSCTL_PROGRAM = "ldctl_seal_sysctl"  # cgroup/sysctl: attached to the root cgroup, not by section

# Mirrors of seal.h (tests/unit/test_bpf_abi.py compares sizes and offsets).
LD_SEAL_MAX = 16
LD_SEAL_MAX_DEVS = 4
LD_SEAL_COMM_LEN = 16


@dataclass(frozen=True)
class Rule:
    name: str  # label value in events and metrics (bounded: one per rule)
    hook: str  # the LSM hook (or cgroup/sysctl) that refuses
    route: str  # what was tried, for people
    object: str  # what ld_tamper_event.object holds


# Index = LD_SEAL_RULE_* in seal.h (tests/unit/test_bpf_abi.py compares them).
RULES = (
    Rule("link-fd-by-id", "bpf", "an fd to a protected link by id (to detach or update it)", "link id"),
    Rule("prog-load-freplace", "bpf", "loading a freplace (BPF_PROG_TYPE_EXT) program", "attach BTF id"),
    Rule("prog-load-fmod-ret", "bpf", "loading an fmod_ret (BPF_MODIFY_RETURN) program", "attach BTF id"),
    Rule("prog-load-map-elem-iter", "bpf", "loading a map-element iterator (writes map values)", "attach BTF id"),
    Rule("map-writable-fd", "bpf_map", "a writable fd to a protected map", "map id"),
    Rule("link-pin-writable-open", "inode_permission", "opening a link's pin for writing (BPF_OBJ_GET)",
         "inode"),
    Rule("pin-unlink", "inode_unlink", "removing a pin", "inode"),
    Rule("pin-rmdir", "inode_rmdir", "removing the pin directory", "inode"),
    Rule("pin-rename", "inode_rename", "renaming a pin or the pin directory", "inode"),
    Rule("umount", "sb_umount", "unmounting the bpffs or a mount it hangs from", "device"),
    Rule("mount-over-bpffs", "sb_mount", "mounting onto or remounting the bpffs", "device"),
    Rule("move-mount-onto-bpffs", "move_mount", "moving a mount onto the bpffs", "device"),
    Rule("sysctl-ftrace-enabled", "cgroup/sysctl", "writing kernel.ftrace_enabled (would stop every trampoline)",
         "-"),
    Rule("map-any-fd", "bpf_map", "any fd, read-only too, to a map the gate writes (signed seal)", "map id"),
)
LD_SEAL_NRULES = len(RULES)
LD_SEAL_COUNTER_DROPS = LD_SEAL_NRULES
EVENTS_MAP, COUNTERS_MAP = "tamper_events", "tamper_counters"  # pinned as PIN_PREFIX + name


class LdSealConfig(ctypes.Structure):
    _fields_ = [
        ("bpffs_dev", ctypes.c_uint32),
        ("map_elem_iter_btf_id", ctypes.c_uint32),
        ("pin_dir_ino", ctypes.c_uint64),
        ("mount_devs", ctypes.c_uint32 * LD_SEAL_MAX_DEVS),
        ("link_ids", ctypes.c_uint32 * LD_SEAL_MAX),
        ("map_ids", ctypes.c_uint32 * LD_SEAL_MAX),
        ("link_pin_inos", ctypes.c_uint64 * LD_SEAL_MAX),
        ("any_fd_map_ids", ctypes.c_uint32 * LD_SEAL_MAX),
    ]


class LdSealSelf(ctypes.Structure):
    _fields_ = [
        ("sealed_at", ctypes.c_uint64),
        ("link_ids", ctypes.c_uint32 * LD_SEAL_MAX),
        ("map_ids", ctypes.c_uint32 * LD_SEAL_MAX),
        ("link_pin_inos", ctypes.c_uint64 * LD_SEAL_MAX),
    ]


class LdTamperEvent(ctypes.Structure):
    _fields_ = [
        ("time_ns", ctypes.c_uint64),
        ("cgroup_id", ctypes.c_uint64),
        ("exe_ino", ctypes.c_uint64),
        ("object", ctypes.c_uint64),
        ("exe_dev", ctypes.c_uint32),
        ("pid", ctypes.c_uint32),
        ("tid", ctypes.c_uint32),
        ("uid", ctypes.c_uint32),
        ("rule", ctypes.c_uint32),
        ("detail", ctypes.c_uint32),
        ("comm", ctypes.c_char * LD_SEAL_COMM_LEN),
    ]


class Sealed(LockdownctlError):
    """A change to a sealed policy (exit 1, like lowering the kernel's own level)."""

    code = "sealed"
    exit_code = 1

    def __init__(self, since: int) -> None:
        when = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(since)) if since else "an earlier apply"
        super().__init__(f"policy is sealed until reboot (sealed since {when})")
        self.since = since


def seal_pins() -> list[str]:
    if not os.path.isdir(PIN_DIR):
        return []
    return sorted(n for n in os.listdir(PIN_DIR) if n.startswith(PIN_PREFIX))


def sealed_since(enforcer: engine.Enforcer) -> int:
    """Unix time of the seal (0: not sealed). Seal pins without the mark (a
    seal that failed half-way) count as sealed too: the policy is frozen."""
    since = int(enforcer.read_policy()["sealed"])
    if not since and seal_pins():
        since = int(os.stat(os.path.join(PIN_DIR, seal_pins()[0])).st_mtime) or 1
    return since


def interrupted(enforcer: engine.Enforcer) -> bool:
    """A seal an ``enforce apply --seal`` did not finish (killed, or its proof failed):
    the running enforcer's policy is frozen and marked sealed, and none of the seal's
    own programs is pinned yet, so nothing protects its pins. Re-running the same
    apply --seal proves and seals it (bpf/apply.py); another policy is refused."""
    from . import gate

    return bool(enforcer.read_policy()["sealed"]) and not seal_pins() and not gate.pinned()


def refuse_if_sealed(enforcer: engine.Enforcer) -> None:
    since = sealed_since(enforcer)
    if since:
        raise Sealed(since)


def _mount_devs() -> list[int]:
    """kernel dev_t of bpffs and of every mount above it (/sys, /): unmounting
    any of them (lazily) would take the pins away."""
    devs: list[int] = []
    path = engine.BPFFS
    while True:
        dev = kernel_dev(os.stat(path).st_dev)
        if dev not in devs:
            devs.append(dev)
        if path == "/":
            break
        path = os.path.dirname(path)
    if len(devs) > LD_SEAL_MAX_DEVS:
        raise LockdownctlError(f"{engine.BPFFS} hangs from {len(devs)} mounts; the seal protects at most "
                               f"{LD_SEAL_MAX_DEVS}")
    return devs


def _config(enforcer: engine.Enforcer, gate: Any = None) -> LdSealConfig:
    cfg = LdSealConfig()
    for i, pin in enumerate(engine.LINK_PINS.values()):  # locked_down's, then file_open's and inode_setattr's
        link_path = os.path.join(PIN_DIR, pin)
        fd = libbpf.obj_get(link_path)
        try:
            cfg.link_ids[i] = libbpf.link_info(fd).id
        finally:
            os.close(fd)
        cfg.link_pin_inos[i] = os.stat(link_path).st_ino
    for i, pin in enumerate(engine.POLICY_MAPS):
        cfg.map_ids[i] = libbpf.map_info(enforcer.fds[pin]).id
    st = os.stat(PIN_DIR)
    cfg.bpffs_dev = kernel_dev(st.st_dev)
    cfg.pin_dir_ino = st.st_ino
    for i, dev in enumerate(_mount_devs()):
        cfg.mount_devs[i] = dev
    if gate is not None:  # a signed seal (gate.py): the gate's link, and no fd at all to what it writes
        gate_slot = len(engine.LINK_PINS)  # after the enforcer's links (locked_down, file_open, inode_setattr)
        cfg.link_ids[gate_slot] = gate.link_id
        cfg.link_pin_inos[gate_slot] = gate.link_pin_ino
        ids = [libbpf.map_info(enforcer.fds[pin]).id for pin in engine.POLICY_MAPS] + gate.any_fd_map_ids
        for i, map_id in enumerate(ids):
            cfg.any_fd_map_ids[i] = map_id
    try:
        cfg.map_elem_iter_btf_id = libbpf.find_vmlinux_btf_id("bpf_map_elem", BPF_TRACE_ITER)
    except OSError:
        cfg.map_elem_iter_btf_id = 0  # a kernel without map iterators: nothing to refuse
    return cfg


def _open(cfg: LdSealConfig) -> libbpf.Object:
    def prepare(obj: libbpf.Object) -> None:
        libbpf.set_global(obj, ".rodata", "cfg", cfg)
        libbpf.map_add_flags(obj.map(".bss"), libbpf.BPF_F_RDONLY_PROG)

    # The build whose `bpf` hook arguments match this kernel's (hooks.py).
    return engine.load_object(hooks.object_path("seal"), "the seal's BPF LSM programs", prepare,
                              "nothing was changed")


def check_loadable() -> None:
    """Load (never attach) the seal with an empty configuration: the kernel's
    verdict before anything one-way happens."""
    _open(LdSealConfig()).close()


def freeze(enforcer: engine.Enforcer, signed: bool = False) -> int:
    """Mark a loaded, not yet attached enforcer sealed (now) and freeze its
    policy maps: from here on its policy cannot change. Returns the time.

    ``signed``: the policy (.bss) map stays unfrozen: libbpf holds a writable
    mapping of it while the object is open, which BPF_MAP_FREEZE refuses
    (EBUSY); the gate writes it from BPF, and the signed seal refuses every
    fd to it, so no system call can reach it either."""
    since = int(time.time())
    enforcer.mark_sealed(since)
    for pin in engine.POLICY_MAPS:
        if not (signed and pin == "policy"):
            libbpf.map_freeze(enforcer.fds[pin])
    return since


def seal(enforcer: engine.Enforcer, gate: Any = None) -> dict[str, Any]:
    """Load and attach the seal over the pinned, frozen enforcer ``enforcer``
    (and the signed-update ``gate``, a gate.Loaded, if any). One way."""
    cfg = _config(enforcer, gate)
    obj = _open(cfg)
    try:
        own = LdSealSelf(sealed_at=time.time_ns())
        own.map_ids[0] = libbpf.map_info(libbpf.map_fd(obj.map(".bss"))).id
        own.map_ids[1] = libbpf.map_info(libbpf.map_fd(obj.map(".rodata"))).id
        # The tally of tamper attempts: only the program writes it (frozen for
        # the syscall side, and no writable fd: the bpf_map rule). The ring
        # buffer is not in map_ids: a reader needs its consumer page writable.
        counters = libbpf.map_fd(obj.map(COUNTERS_MAP))
        libbpf.map_freeze(counters)
        own.map_ids[2] = libbpf.map_info(counters).id
        map_pins = []
        for name in (EVENTS_MAP, COUNTERS_MAP):
            path = os.path.join(PIN_DIR, PIN_PREFIX + name)
            libbpf.map_pin(obj.map(name), path)
            map_pins.append(path)
        pins = []
        root_cgroup = os.open(engine.cgroup2_mount(), os.O_RDONLY | os.O_DIRECTORY)
        try:
            links = [(name, libbpf.attach_cgroup(prog, root_cgroup) if name == SYSCTL_PROGRAM
                      else libbpf.attach(prog)) for name, prog in libbpf.programs(obj)]
        finally:
            os.close(root_cgroup)
        for i, (name, link) in enumerate(links):
            path = os.path.join(PIN_DIR, PIN_PREFIX + name.removeprefix("ldctl_seal_"))
            try:
                libbpf.link_pin(link, path)
                own.link_ids[i] = libbpf.link_info(libbpf.link_fd(link)).id
            finally:
                libbpf.link_release(link, keep_attached=True)
            own.link_pin_inos[i] = os.stat(path).st_ino
            pins.append(path)
        bss = libbpf.map_fd(obj.map(".bss"))
        libbpf.map_update(bss, ctypes.c_uint32(0), own)
        libbpf.map_freeze(bss)
    finally:
        obj.close()
    return {"sealed_at": int(enforcer.read_policy()["sealed"]), "pins": pins, "map_pins": map_pins,
            "protected": {"link_ids": [i for i in cfg.link_ids if i], "map_ids": [i for i in cfg.map_ids if i],
                          "seal_link_ids": [i for i in own.link_ids if i]}}


# --- tamper attempts (read side) ---------------------------------------------------


def tamper_pin(name: str) -> str:
    return os.path.join(PIN_DIR, PIN_PREFIX + name)


def open_events() -> int | None:
    """A readable fd to the seal's ring buffer (None: no seal, or a seal from
    before tamper events). Writable on purpose: a ring-buffer reader writes its
    consumer position; the records themselves are mapped read-only."""
    path = tamper_pin(EVENTS_MAP)
    return libbpf.obj_get(path) if os.path.exists(path) else None


def tamper_counters() -> dict[str, Any] | None:
    """Refusals per rule and lost records since the seal (None: no seal with
    tamper counters). Opened read-only: a writable fd is itself refused (and
    would be recorded as a tamper attempt)."""
    path = tamper_pin(COUNTERS_MAP)
    if not os.path.exists(path):
        return None
    fd = libbpf.obj_get_readonly(path)
    try:
        ncpu = libbpf.num_possible_cpus()
        values = (ctypes.c_uint64 * ncpu)()

        def total(index: int) -> int:
            libbpf.map_lookup(fd, ctypes.c_uint32(index), values)
            return sum(values)

        return {"by_rule": {rule.name: total(i) for i, rule in enumerate(RULES)},
                "dropped": total(LD_SEAL_COUNTER_DROPS)}
    finally:
        os.close(fd)
