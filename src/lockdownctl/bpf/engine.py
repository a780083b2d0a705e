"""The enforcer: load lockdown.bpf.o, attach it to the locked_down LSM hook,
pin it under /sys/fs/bpf/lockdownctl, write the policy into its maps, read its
counters and events, remove it.

All libbpf calls go through libbpf.py. The compiled object is committed
(lockdown.bpf.o, rebuilt bit for bit by scripts/build-bpf.sh and checked by
tests/host/test_bpf_build.py): a security tool should install without a
compiler toolchain, and a reproducible object proves what it runs.
"""

from __future__ import annotations

import ctypes
import errno
import json
import mmap
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import FeatureMissing, InputError, LockdownctlError, NeedsRoot
from ..root import Root
from ..state.bpf_lsm import require_bpf_lsm
from ..state.pins import LINK_PIN, PIN_DIR, STATE, STATE_DIR
from . import libbpf

HERE = os.path.dirname(os.path.abspath(__file__))
OBJECT = os.path.join(HERE, "lockdown.bpf.o")
PROGRAM = "ldctl_locked_down"
BPFFS = "/sys/fs/bpf"

# Mirrors of lockdown.h (tests/unit/test_bpf_abi.py compiles the header and
# compares every size and offset).
LD_MAX_REASONS = 64
LD_ALLOW, LD_DENY, LD_AUDIT = 0, 1, 2
LD_COUNT_DENIED, LD_COUNT_AUDITED, LD_COUNT_EXCEPTED, LD_NCOUNTERS = 0, 1, 2, 3
LD_COUNTER_DROPS = LD_MAX_REASONS * LD_NCOUNTERS
LD_COMM_LEN = 16
VERDICT_CODES = {"allow": LD_ALLOW, "deny": LD_DENY, "audit": LD_AUDIT}

# Pin name -> map name in the object (".bss" holds `struct ld_policy policy`).
MAPS = {
    "policy": ".bss",
    "exe_exceptions": "exe_exceptions",
    "cgroup_exceptions": "cgroup_exceptions",
    "uid_exceptions": "uid_exceptions",
    "comm_exceptions": "comm_exceptions",
    "scope_cgroup": "scope_cgroup",
    "counters": "counters",
    "events": "events",
}
# The maps whose contents are the policy: the program only reads them
# (BPF_F_RDONLY_PROG, so no other program can write them either), and the
# seal freezes them (seal.py).
POLICY_MAPS = ("policy", "exe_exceptions", "cgroup_exceptions", "uid_exceptions", "comm_exceptions",
               "scope_cgroup")


class LdPolicy(ctypes.Structure):
    _fields_ = [
        ("gen", ctypes.c_uint32),
        ("sealed", ctypes.c_uint32),
        ("policy_id", ctypes.c_uint64),
        ("audit", ctypes.c_uint8 * 2),
        ("scoped", ctypes.c_uint8 * 2),
        ("pad", ctypes.c_uint8 * 4),
        ("verdict", (ctypes.c_uint8 * LD_MAX_REASONS) * 2),
    ]


class LdExeKey(ctypes.Structure):
    _fields_ = [("slot", ctypes.c_uint32), ("dev", ctypes.c_uint32), ("ino", ctypes.c_uint64)]


class LdIdKey(ctypes.Structure):
    _fields_ = [("slot", ctypes.c_uint32), ("pad", ctypes.c_uint32), ("id", ctypes.c_uint64)]


class LdCommKey(ctypes.Structure):
    _fields_ = [("slot", ctypes.c_uint32), ("comm", ctypes.c_char * LD_COMM_LEN)]


class LdEvent(ctypes.Structure):
    _fields_ = [
        ("time_ns", ctypes.c_uint64),
        ("cgroup_id", ctypes.c_uint64),
        ("exe_ino", ctypes.c_uint64),
        ("exe_dev", ctypes.c_uint32),
        ("pid", ctypes.c_uint32),
        ("tid", ctypes.c_uint32),
        ("uid", ctypes.c_uint32),
        ("reason", ctypes.c_uint32),
        ("verdict", ctypes.c_uint8),
        ("pad", ctypes.c_uint8 * 3),
        ("comm", ctypes.c_char * LD_COMM_LEN),
    ]


# Exception kind -> (pin name, key type)
EXCEPTION_MAPS: dict[str, tuple[str, type[ctypes.Structure]]] = {
    "exe": ("exe_exceptions", LdExeKey),
    "cgroup": ("cgroup_exceptions", LdIdKey),
    "uid": ("uid_exceptions", LdIdKey),
    "comm": ("comm_exceptions", LdCommKey),
}


@dataclass
class Resolved:
    """A policy turned into map contents for one kernel."""

    table: list[int]  # verdict code per reason value
    audit: bool
    scope: str | None  # cgroup directory (absolute path) or None
    exceptions: dict[str, list[tuple[Any, int, str]]] = field(default_factory=dict)  # kind -> (id, mask, label)
    policy_id: int = 0

    def digest(self) -> str:
        return json.dumps([self.table, self.audit, self.scope, sorted(
            (k, str(i), m) for k, entries in self.exceptions.items() for i, m, _ in entries)])


def cgroup2_mount() -> str:
    """Where cgroup v2 is mounted, from mountinfo (it is not always /sys/fs/cgroup)."""
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        for line in fh:
            fields = line.split()
            sep = fields.index("-")
            if fields[sep + 1] == "cgroup2":
                return fields[4]
    raise FeatureMissing("cgroup v2 is not mounted: cgroup scope and cgroup exceptions need it")


def cgroup_dir(path: str) -> str:
    """A cgroup given as a path in the cgroup v2 hierarchy (or as a directory under its mount)."""
    mount = cgroup2_mount()
    full = path if path.startswith(mount + "/") or path == mount else os.path.join(mount, path.lstrip("/"))
    if not os.path.isdir(full):
        raise InputError(f"cgroup {path} does not exist (looked for {full})")
    return full


def resolve(policy: Any, cat: Any) -> Resolved:
    """Turn a validated policy into map contents (stat executables, find cgroup ids, users)."""
    import pwd

    from ..policy import kernel_dev, verdicts

    table = [LD_ALLOW] * LD_MAX_REASONS
    for rid, verdict in verdicts(policy, cat).items():
        value = cat.get(rid).value
        if value is None or value >= LD_MAX_REASONS:
            continue
        table[value] = VERDICT_CODES[verdict]
    out = Resolved(table=table, audit=policy.mode == "audit",
                   scope=cgroup_dir(policy.scope_cgroup) if policy.scope_cgroup else None,
                   policy_id=policy.policy_id)
    for exc in policy.exceptions:
        where = f"{policy.source}:{exc.line}"
        mask = 0
        for rid in exc.allow:
            value = cat.get(rid).value
            if value is not None and value < LD_MAX_REASONS:
                mask |= 1 << value
        label = exc.name or f"{exc.kind} {exc.value}"
        ident: Any
        if exc.kind == "exe":
            try:
                st = os.stat(str(exc.value))
            except OSError as err:
                raise InputError(f"{where}: exe {exc.value}: {err.strerror}") from None
            ident = (kernel_dev(st.st_dev), st.st_ino)
        elif exc.kind == "cgroup":
            try:
                ident = os.stat(cgroup_dir(str(exc.value))).st_ino  # cgroup v2: the id is the inode
            except InputError as err:
                raise InputError(f"{where}: {err.message}") from None
        elif exc.kind == "uid":
            if isinstance(exc.value, int):
                ident = exc.value
            else:
                try:
                    ident = pwd.getpwnam(exc.value).pw_uid
                except KeyError:
                    raise InputError(f"{where}: no such user {exc.value!r}") from None
        else:
            ident = str(exc.value).encode()[: LD_COMM_LEN - 1]
        entries = out.exceptions.setdefault(exc.kind, [])
        for i, (other, other_mask, other_label) in enumerate(entries):
            if other == ident:  # two exceptions for the same subject: allow both sets
                entries[i] = (other, other_mask | mask, f"{other_label}, {label}")
                break
        else:
            entries.append((ident, mask, label))
    return out


def _key(kind: str, slot: int, ident: Any) -> ctypes.Structure:
    if kind == "exe":
        return LdExeKey(slot, ident[0], ident[1])
    if kind == "comm":
        return LdCommKey(slot, ident)
    return LdIdKey(slot, 0, ident)


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
    return libc


def ensure_bpffs() -> bool:
    """Mount bpffs at /sys/fs/bpf when it is not (pins need it); True if we mounted it.

    This changes the host's mounts on purpose: pinned objects must outlive
    this process, so they need the real bpffs, as systemd mounts it at boot.
    """
    from ..root import is_mounted

    if is_mounted(BPFFS, "bpf"):
        return False
    if _libc().mount(b"bpf", BPFFS.encode(), b"bpf", 0, None) != 0:
        err = ctypes.get_errno()
        raise FeatureMissing(f"cannot mount bpffs at {BPFFS}: {os.strerror(err)}")
    return True


def load_object(path: str, what: str, prepare: Callable[[libbpf.Object], None], after: str) -> libbpf.Object:
    """Open a committed BPF object, ``prepare`` it (flags, .rodata), load it.

    Every failure is exit 3 naming what the kernel refused and the errno;
    ``after`` says what the user should know next. Nothing stays open."""
    if not os.path.exists(path):
        raise FeatureMissing(f"{path} is missing: reinstall lockdownctl (scripts/build-bpf.sh rebuilds it)")
    obj = libbpf.Object(path)
    try:
        prepare(obj)
        obj.load()
    except OSError as exc:
        obj.close()
        name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        raise FeatureMissing(f"the kernel refused {what} ({name} at load): {after}") from None
    return obj


def pinned() -> bool:
    return os.path.exists(os.path.join(PIN_DIR, LINK_PIN))


class Enforcer:
    """An open enforcer: map fds by pin name, and (when just loaded) the object and link."""

    def __init__(self, fds: dict[str, int], obj: libbpf.Object | None = None) -> None:
        self.fds = fds
        self.obj = obj
        self.link: int | None = None
        self.policy_by_update = False  # .bss not mappable writable (a sealed load): see _PolicyByUpdate

    # --- lifecycle ------------------------------------------------------------

    @classmethod
    def load(cls, sealed: bool = False) -> Enforcer:
        """Open and load the object (not attached yet).

        ``sealed``: the policy map too is BPF_F_RDONLY_PROG (no program may
        write it), which the kernel pairs with no writable mapping: the policy
        is then written with map updates, before attach only (seal.py)."""
        def prepare(obj: libbpf.Object) -> None:
            for pin in POLICY_MAPS:
                # fd arrays take no access flags (programs cannot write them); the
                # policy .bss is written through a writable mapping unless sealed.
                if pin != "scope_cgroup" and (sealed or pin != "policy"):
                    libbpf.map_add_flags(obj.map(MAPS[pin]), libbpf.BPF_F_RDONLY_PROG)

        obj = load_object(OBJECT, "the enforcer's BPF LSM program", prepare,
                          "lockdownctl status shows why (BPF LSM section)")
        fds = {pin: libbpf.map_fd(obj.map(name)) for pin, name in MAPS.items()}
        enforcer = cls(fds, obj)
        enforcer.policy_by_update = sealed
        return enforcer

    @classmethod
    def open_pinned(cls) -> Enforcer | None:
        if not pinned():
            return None
        fds = {}
        for pin in MAPS:
            path = os.path.join(PIN_DIR, pin)
            try:
                try:
                    fds[pin] = libbpf.obj_get(path)
                except PermissionError:  # sealed: the policy maps grant read-only fds only
                    fds[pin] = libbpf.obj_get_readonly(path)
            except OSError as exc:
                for fd in fds.values():
                    os.close(fd)
                raise LockdownctlError(f"{PIN_DIR}/{pin}: {exc.strerror}: the pinned enforcer is incomplete "
                                       "(lockdownctl enforce remove cleans it up)") from None
        return cls(fds)

    def attach_and_pin(self) -> bool:
        """Attach to the hook and pin link and maps; undo everything on failure.

        Returns whether bpffs had to be mounted."""
        assert self.obj is not None
        self.link = libbpf.attach(self.obj.program(PROGRAM))
        mounted = False
        pinned_paths: list[str] = []
        try:
            mounted = ensure_bpffs()
            os.makedirs(PIN_DIR, mode=0o700, exist_ok=True)
            for pin, name in MAPS.items():
                path = os.path.join(PIN_DIR, pin)
                libbpf.map_pin(self.obj.map(name), path)
                pinned_paths.append(path)
            path = os.path.join(PIN_DIR, LINK_PIN)
            libbpf.link_pin(self.link, path)
            pinned_paths.append(path)
        except (OSError, LockdownctlError):
            for path in pinned_paths:
                os.unlink(path)
            if os.path.isdir(PIN_DIR):
                os.rmdir(PIN_DIR)
            libbpf.link_release(self.link, keep_attached=False)
            self.link = None
            raise
        return mounted

    def close(self) -> None:
        if self.link is not None:
            libbpf.link_release(self.link, keep_attached=True)  # the pin keeps it attached
            self.link = None
        if self.obj is not None:
            self.obj.close()  # closes our map fds too
            self.obj = None
        else:
            for fd in self.fds.values():
                os.close(fd)
        self.fds = {}

    # --- policy -----------------------------------------------------------------

    def _policy_view(self, writable: bool = True) -> tuple[mmap.mmap | _PolicyCopy, LdPolicy]:
        size = libbpf.map_info(self.fds["policy"]).value_size
        if size < ctypes.sizeof(LdPolicy):
            raise LockdownctlError(f"the enforcer's policy map is {size} bytes, expected "
                                   f"{ctypes.sizeof(LdPolicy)}: a different lockdownctl version is loaded")
        length = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE * mmap.PAGESIZE
        if writable and self.policy_by_update:
            view = _PolicyByUpdate(self.fds["policy"])
            return view, view.policy
        if not writable:  # a copy: a sealed map grants read-only fds, which cannot be mapped shared
            copy = _PolicyCopy(self.fds["policy"])
            return copy, copy.policy
        mem = mmap.mmap(self.fds["policy"], length, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        return mem, LdPolicy.from_buffer(mem)

    def read_policy(self) -> dict[str, Any]:
        mem, pol = self._policy_view(writable=False)
        try:
            slot = pol.gen & 1
            return {"gen": pol.gen, "slot": slot, "policy_id": pol.policy_id, "sealed": pol.sealed,
                    "audit": bool(pol.audit[slot]), "scoped": bool(pol.scoped[slot]),
                    "table": list(pol.verdict[slot])}
        finally:
            del pol
            mem.close()

    def write_policy(self, resolved: Resolved) -> None:
        """Write the inactive slot completely, flip the generation, then clear the old slot.

        A hook invocation reads `gen` once and then only its slot, so it sees the
        old or the new policy whole: no reason denied by both is ever allowed.
        """
        mem, pol = self._policy_view()
        try:
            old = pol.gen & 1
            new = 1 - old
            self._clear_slot(new)
            for kind, entries in resolved.exceptions.items():
                fd = self.fds[EXCEPTION_MAPS[kind][0]]
                for ident, mask, _label in entries:
                    libbpf.map_update(fd, _key(kind, new, ident), ctypes.c_uint64(mask))
            if resolved.scope:
                cg = os.open(resolved.scope, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    libbpf.map_update(self.fds["scope_cgroup"], ctypes.c_uint32(new), ctypes.c_uint32(cg))
                finally:
                    os.close(cg)
            pol.scoped[new] = 1 if resolved.scope else 0
            pol.audit[new] = 1 if resolved.audit else 0
            for value, code in enumerate(resolved.table):
                pol.verdict[new][value] = code
            pol.gen = pol.gen + 1  # one aligned 32-bit store: the switch
            pol.policy_id = resolved.policy_id
            # Invocations that read the old generation finish within microseconds
            # (BPF programs run under RCU); give them a grace period before the
            # old slot's exceptions disappear.
            time.sleep(0.02)
            self._clear_slot(old)
        finally:
            del pol
            mem.close()

    def mark_sealed(self, since: int) -> None:
        """Record the seal's time (Unix seconds) in the policy, just before it is frozen."""
        mem, pol = self._policy_view()
        try:
            pol.sealed = since
        finally:
            del pol
            mem.close()

    def _clear_slot(self, slot: int) -> None:
        for fd_name, key_type in EXCEPTION_MAPS.values():
            fd = self.fds[fd_name]
            for key in libbpf.map_keys(fd, key_type):
                if key.slot == slot:
                    libbpf.map_delete(fd, key)
        try:
            libbpf.map_delete(self.fds["scope_cgroup"], ctypes.c_uint32(slot))
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise

    def exceptions(self) -> dict[str, int]:
        """Entries per exception map in the active slot."""
        slot = self.read_policy()["slot"]
        return {kind: sum(1 for k in libbpf.map_keys(self.fds[name], key_type) if k.slot == slot)
                for kind, (name, key_type) in EXCEPTION_MAPS.items()}

    # --- counters ---------------------------------------------------------------

    def counters(self) -> tuple[list[list[int]], int]:
        """([denied, audited, excepted] per reason value, drops), summed over CPUs."""
        ncpu = libbpf.num_possible_cpus()
        values = (ctypes.c_uint64 * ncpu)()
        fd = self.fds["counters"]

        def total(index: int) -> int:
            libbpf.map_lookup(fd, ctypes.c_uint32(index), values)
            return sum(values)

        per_reason = [[total(r * LD_NCOUNTERS + slot) for slot in range(LD_NCOUNTERS)]
                      for r in range(LD_MAX_REASONS)]
        return per_reason, total(LD_COUNTER_DROPS)


def measure(level: str, seconds: float, cat: Any) -> dict[str, Any]:
    """Run a private, unpinned copy of the enforcer in audit mode with the
    ``level`` profile for ``seconds`` and aggregate what it would have denied.

    Nothing is denied and nothing outlives the call (the link is detached on
    the way out), and an enforcer already pinned keeps running beside it.
    """
    from ..policy import Policy
    from .decode import EventDecoder

    require_root()
    require_bpf_lsm(Root("/"))
    policy = Policy(source="check --measure", profile=level, mode="audit")
    enforcer = Enforcer.load()
    seen: dict[tuple[str, str, str], int] = {}
    decoder = EventDecoder(cat)
    events = 0

    def on_event(raw: bytes) -> None:
        nonlocal events
        events += 1
        e = decoder.decode(raw)
        key = (e["comm"] or "", e["exe"] or e["exe_id"], e["reason"] or str(e["reason_value"]))
        seen[key] = seen.get(key, 0) + 1

    try:
        enforcer.write_policy(resolve(policy, cat))
        enforcer.link = libbpf.attach(enforcer.obj.program(PROGRAM))  # type: ignore[union-attr]
        ring = libbpf.RingBuffer(enforcer.fds["events"], on_event)
        try:
            end = time.monotonic() + seconds
            while (left := end - time.monotonic()) > 0:
                ring.poll(int(min(left, 0.2) * 1000) + 1)
            libbpf.link_release(enforcer.link, keep_attached=False)  # detach before the last read
            enforcer.link = None
            ring.consume()
        finally:
            ring.close()
        per_reason, drops = enforcer.counters()
    finally:
        if enforcer.link is not None:
            libbpf.link_release(enforcer.link, keep_attached=False)
            enforcer.link = None
        enforcer.close()
    audited = sum(c[LD_COUNT_AUDITED] for c in per_reason)
    return {
        "seconds": seconds, "events": events, "drops": drops, "audited": audited,
        # exe: a path when /proc resolved it while the process lived, else None
        # (the device:inode identity stays in exe_id)
        "observations": [{"comm": comm, "exe": exe if exe.startswith("/") else None, "exe_id": exe,
                          "reason": reason, "count": count}
                         for (comm, exe, reason), count in sorted(seen.items())],
    }


class _PolicyCopy:
    """The policy read whole with a map lookup (works on a read-only fd)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.policy = LdPolicy()
        libbpf.map_lookup(fd, ctypes.c_uint32(0), self.policy)

    def close(self) -> None:
        pass


class _PolicyByUpdate(_PolicyCopy):
    """The policy of a sealed load, whose map the kernel will not map writable
    (BPF_F_RDONLY_PROG): read whole, written back whole by close(). Not atomic
    for a running program, so only used before attach."""

    def close(self) -> None:
        libbpf.map_update(self.fd, ctypes.c_uint32(0), self.policy)


def require_root() -> None:
    if os.geteuid() != 0:
        raise NeedsRoot("the enforcer needs root (CAP_BPF, CAP_SYS_ADMIN and CAP_MAC_ADMIN)")


def remove_pins() -> list[str]:
    """Unpin everything: the link's pin was its last reference, so the program
    detaches and the maps are freed."""
    removed = []
    if os.path.isdir(PIN_DIR):
        for name in sorted(os.listdir(PIN_DIR)):
            path = os.path.join(PIN_DIR, name)
            os.unlink(path)
            removed.append(path)
        os.rmdir(PIN_DIR)
        removed.append(PIN_DIR)
    if os.path.exists(STATE):
        os.unlink(STATE)
    return removed


def save_state(state: dict[str, Any]) -> None:
    os.makedirs(STATE_DIR, mode=0o700, exist_ok=True)
    tmp = f"{STATE}.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(state, fh, indent=1)
    os.replace(tmp, STATE)


def load_state() -> dict[str, Any] | None:
    try:
        with open(STATE, encoding="utf-8") as fh:
            state: dict[str, Any] = json.load(fh)
            return state
    except (OSError, ValueError):
        return None
