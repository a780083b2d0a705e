"""The enforcer: load lockdown.bpf.o, attach it to the locked_down LSM hook,
pin it under /sys/fs/bpf/lockdownctl, write the policy into its maps, read its
counters, remove it; and :func:`apply`, the whole ``enforce apply``
transaction: parse -> resolve -> load or update -> seal -> state file.

All libbpf calls go through libbpf.py. The compiled object is committed
(lockdown.bpf.o, rebuilt bit for bit by scripts/build-bpf.sh and checked by
tests/host/test_enforcer_host.py): a security tool should install without a
compiler toolchain, and a reproducible object proves what it runs.
"""

from __future__ import annotations

import ctypes
import datetime
import errno
import mmap
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import libc
from ..errors import FeatureMissing, LockdownctlError, NeedsRoot
from ..mountinfo import is_mounted
from ..state.pins import LINK_PIN, PIN_DIR, pinned, remove_state
from . import libbpf
from .abi import (
    EXCEPTION_MAPS,
    LD_COUNTER_DROPS,
    LD_MAX_REASONS,
    LD_NCOUNTERS,
    MAPS,
    OPTIONAL_PINS,
    PROGRAM_WRITTEN,
    VERDICT_CODES,
    LdExeKey,
    LdPolicy,
    map_key,
)
from .abi import POLICY_MAPS as POLICY_MAPS
from .resolve import Resolved
from .resolve import cgroup2_mount as cgroup2_mount

if TYPE_CHECKING:
    from ..state.types import BpfLsm

HERE = os.path.dirname(os.path.abspath(__file__))
OBJECT = os.path.join(HERE, "lockdown.bpf.o")
PROGRAM = "ldctl_locked_down"
# Program -> the pin of its link. file_open and inode_setattr carry a debugfs
# file from its open to the lockdown check (path exceptions, lockdown.bpf.c);
# they return at once while the policy has none.
LINK_PINS = {PROGRAM: LINK_PIN, "ldctl_file_open": LINK_PIN + "-file_open",
             "ldctl_inode_setattr": LINK_PIN + "-inode_setattr"}
BPFFS = "/sys/fs/bpf"
# Where an enforcer that replaces the loaded one is pinned first (bpf/apply.py _load_new);
# no dot: bpffs refuses names with dots (kernel/bpf/inode.c bpf_lookup(), EPERM).
STAGING_DIR = PIN_DIR + "-new"


def ensure_bpffs() -> bool:
    """Mount bpffs at /sys/fs/bpf when it is not (pins need it); True if we mounted it.

    This changes the host's mounts on purpose: pinned objects must outlive
    this process, so they need the real bpffs, as systemd mounts it at boot.
    """
    if is_mounted(BPFFS, "bpf"):
        return False
    try:
        libc.mount("bpf", BPFFS, "bpf", 0)
    except OSError as exc:
        raise FeatureMissing(f"cannot mount bpffs at {BPFFS}: {os.strerror(exc.errno or 0)}") from None
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


class Enforcer:
    """An open enforcer: map fds by pin name, and (when just loaded) the object and link."""

    def __init__(self, fds: dict[str, int], obj: libbpf.Object | None = None) -> None:
        self.fds = fds
        self.obj = obj
        self.link: int | None = None
        self.policy_by_update = False  # .bss not mappable writable (a sealed load): see _PolicyByUpdate

    # --- lifecycle ------------------------------------------------------------

    @classmethod
    def load(cls, sealed: bool = False, signed: bool = False) -> Enforcer:
        """Open and load the object (not attached yet).

        ``sealed``: the policy map too is BPF_F_RDONLY_PROG (no program may
        write it), which the kernel pairs with no writable mapping: the policy
        is then written with map updates, before attach only (seal.py).
        ``signed``: no policy map is BPF_F_RDONLY_PROG, so the signed-update
        gate (gate.py) can write them; the seal then refuses every fd to them."""
        def prepare(obj: libbpf.Object) -> None:
            if signed:
                return
            for pin in POLICY_MAPS:
                # fd arrays take no access flags (programs cannot write them); the
                # policy .bss is written through a writable mapping unless sealed.
                if pin != "scope_cgroup" and pin not in PROGRAM_WRITTEN and (sealed or pin != "policy"):
                    libbpf.map_add_flags(obj.map(MAPS[pin]), libbpf.BPF_F_RDONLY_PROG)

        obj = load_object(OBJECT, "the enforcer's BPF LSM program", prepare,
                          "lockdownctl status shows why (BPF LSM section)")
        fds = {pin: libbpf.map_fd(obj.map(name)) for pin, name in MAPS.items()}
        enforcer = cls(fds, obj)
        enforcer.policy_by_update = sealed and not signed
        return enforcer

    @classmethod
    def open_pinned(cls) -> Enforcer | None:
        """The loaded enforcer's maps, from their pins; None when it is not loaded."""
        if not pinned():
            return None
        from .seal import seal_pins

        # Sealed, the policy maps grant read-only fds only, and asking for a
        # writable one is a tamper attempt the seal records: ask for what it grants.
        sealed = bool(seal_pins())
        # A signed seal refuses every fd to the policy maps, and records each attempt as
        # tampering: ask for none (the gate's mirror stands in for them; gate.py).
        if sealed:
            from . import gate

            signed = gate.pinned()
        else:
            signed = False
        fds = {}
        for pin in MAPS:
            path = os.path.join(PIN_DIR, pin)
            if signed and pin in POLICY_MAPS:
                continue
            try:
                if sealed and pin in POLICY_MAPS:
                    fds[pin] = libbpf.obj_get_readonly(path)
                    continue
                try:
                    fds[pin] = libbpf.obj_get(path)
                except PermissionError:  # sealed: the policy maps grant read-only fds only
                    fds[pin] = libbpf.obj_get_readonly(path)
            except PermissionError:
                from . import gate

                if gate.pinned():  # a signed seal grants no fd at all: read the gate's mirror
                    continue
                for fd in fds.values():
                    os.close(fd)
                raise LockdownctlError(f"{PIN_DIR}/{pin}: permission denied: the pinned enforcer is "
                                       "incomplete") from None
            except FileNotFoundError:
                if pin in OPTIONAL_PINS:
                    continue
                for fd in fds.values():
                    os.close(fd)
                raise LockdownctlError(f"{PIN_DIR}/{pin}: not found: the pinned enforcer is incomplete "
                                       "(lockdownctl enforce remove cleans it up)") from None
            except OSError as exc:
                for fd in fds.values():
                    os.close(fd)
                raise LockdownctlError(f"{PIN_DIR}/{pin}: {exc.strerror}: the pinned enforcer is incomplete "
                                       "(lockdownctl enforce remove cleans it up)") from None
        return cls(fds)

    def attach_and_pin(self, directory: str = PIN_DIR) -> bool:
        """Attach to the hook and pin maps, then the link, in ``directory``; undo
        everything on failure. Returns whether bpffs had to be mounted."""
        assert self.obj is not None
        self.link = libbpf.attach(self.obj.program(PROGRAM))
        mounted = False
        pinned_paths: list[str] = []
        others: list[tuple[str, int]] = []
        try:
            for prog in LINK_PINS:
                if prog != PROGRAM:
                    others.append((LINK_PINS[prog], libbpf.attach(self.obj.program(prog))))
            mounted = ensure_bpffs()
            os.makedirs(directory, mode=0o700, exist_ok=True)
            for pin, name in MAPS.items():
                path = os.path.join(directory, pin)
                libbpf.map_pin(self.obj.map(name), path)
                pinned_paths.append(path)
            for pin, link in others:  # before the main link's pin, which says "loaded"
                path = os.path.join(directory, pin)
                libbpf.link_pin(link, path)
                pinned_paths.append(path)
            path = os.path.join(directory, LINK_PIN)
            libbpf.link_pin(self.link, path)
            pinned_paths.append(path)
        except (OSError, LockdownctlError):
            for path in pinned_paths:
                os.unlink(path)
            if os.path.isdir(directory):
                os.rmdir(directory)
            for _pin, link in others:
                libbpf.link_release(link, keep_attached=False)
            libbpf.link_release(self.link, keep_attached=False)
            self.link = None
            raise
        for _pin, link in others:
            libbpf.link_release(link, keep_attached=True)  # the pins keep them attached
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
        if "policy" not in self.fds:  # a signed seal: the gate's mirror (gate.py)
            from . import gate

            mirror = gate.read_info().policy
            slot = mirror.gen & 1
            return {"gen": mirror.gen, "slot": slot, "policy_id": mirror.policy_id, "sealed": mirror.sealed,
                    "audit": bool(mirror.audit[slot]), "scoped": bool(mirror.scoped[slot]),
                    "table": list(mirror.verdict[slot])}
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
                    libbpf.map_update(fd, map_key(kind, new, ident), ctypes.c_uint64(mask))
            paths = resolved.exceptions.get("path", [])
            if paths:  # {slot, 0, 0}: the reasons a file_open mark is for (lockdown.h)
                libbpf.map_update(self.fds["path_exceptions"], LdExeKey(new, 0, 0),
                                  ctypes.c_uint64(resolved.mark_reasons))
            if resolved.scope:
                cg = os.open(resolved.scope, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    libbpf.map_update(self.fds["scope_cgroup"], ctypes.c_uint32(new), ctypes.c_uint32(cg))
                finally:
                    os.close(cg)
            pol.scoped[new] = 1 if resolved.scope else 0
            pol.audit[new] = 1 if resolved.audit else 0
            pol.paths[new] = 1 if paths else 0
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
        if any(name not in self.fds for name, _k in EXCEPTION_MAPS.values()):
            from . import gate

            return dict(zip(gate.KINDS, (int(n) for n in gate.read_info().n_exc), strict=True))
        slot = self.read_policy()["slot"]
        return {kind: sum(1 for k in libbpf.map_keys(self.fds[name], key_type)
                          if k.slot == slot and (kind != "path" or k.ino))  # not the {slot, 0, 0} entry
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


def unpin_dir(directory: str) -> list[str]:
    """Unpin everything in ``directory`` and remove it: a link's pin is its last
    reference, so its program detaches and the maps are freed."""
    removed = []
    if os.path.isdir(directory):
        # The link first: its program detaches at once, so a kill half-way leaves maps
        # without a link (nothing enforced from here, not pinned()), never a link without maps.
        for name in sorted(os.listdir(directory), key=lambda n: (n != LINK_PIN, n)):
            path = os.path.join(directory, name)
            os.unlink(path)
            removed.append(path)
        os.rmdir(directory)
        removed.append(directory)
    return removed


def remove_pins() -> list[str]:
    """Unpin the enforcer (and one a killed ``apply`` left in STAGING_DIR) and forget its state."""
    removed = unpin_dir(STAGING_DIR) + unpin_dir(PIN_DIR)
    remove_state()
    return removed


def iso(seconds: int) -> str:
    """Unix seconds as UTC ISO 8601 (the seal's time in status and state)."""
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe(bpf_lsm: BpfLsm | None = None) -> dict[str, Any]:
    """``enforce status``: the loaded enforcer, its policy and counters (root
    only); when none is loaded, whether one can be (state/bpf_lsm.py)."""
    from ..reasons import catalogue
    from ..root import Root
    from ..state import pins
    from ..state.bpf_lsm import bpf_lsm_state, why_not
    from . import seal

    enforcer = Enforcer.open_pinned()
    if enforcer is None:  # whether one can be: the decision status made, or made now
        bpf = bpf_lsm or bpf_lsm_state(Root("/"))
        return {"loaded": False, "can_load": bpf["usable"], "why_not": None if bpf["usable"] else why_not(bpf)}
    try:
        live = enforcer.read_policy()
        per_reason, drops = enforcer.counters()
        exceptions = enforcer.exceptions()
    finally:
        enforcer.close()
    cat = catalogue()
    by_value = {r.value: r.id for r in cat.reasons if r.value is not None}
    names = {code: name for name, code in VERDICT_CODES.items()}
    table = {by_value[v]: names.get(code, str(code)) for v, code in enumerate(live["table"]) if v in by_value}
    counters = {by_value.get(v, str(v)): {"denied": c[0], "audited": c[1], "excepted": c[2]}
                for v, c in enumerate(per_reason) if any(c)}
    from . import gate

    signed = gate.describe() if gate.pinned() else None
    # Only a state file that names the running policy describes it (fail closed); signed
    # updates change the running policy without it (gate.describe() reports them).
    state, state_note = ((pins.load_state() or {}), None) if signed else pins.state_of(f"{live['policy_id']:016x}")
    paths = [{**entry, "stale": stale_path(entry)} for entry in state.get("paths", []) if isinstance(entry, dict)]
    return {"signed": signed,
        "loaded": True, "pin_dir": pins.PIN_DIR, "generation": live["gen"],
        "policy_id": f"{live['policy_id']:016x}",
        "mode": "audit" if live["audit"] else "enforce", "scoped": live["scoped"], "sealed": bool(live["sealed"]),
        "sealed_at": iso(live["sealed"]) if live["sealed"] else None,
        "profile": state.get("profile"), "policy_file": state.get("policy_file"), "verdicts": table,
        "exceptions": exceptions, "counters": counters, "ring_buffer_drops": drops, "paths": paths,
        "tamper": _tamper(seal),  # refusals per rule since the seal; None when not sealed
        "state_note": state_note,  # why profile, policy_file and paths are unknown (None: from the state file)
    }


def stale_path(entry: dict[str, Any]) -> str | None:
    """Why a path exception no longer matches its file (re-created since apply:
    a new inode, denied until the policy is applied again); None when it does."""
    from .abi import dev_text, kernel_dev

    try:
        st = os.stat(str(entry.get("path")))
    except OSError as exc:
        return f"{entry.get('path')}: {exc.strerror}"
    now = f"{dev_text(kernel_dev(st.st_dev))}:{st.st_ino}"
    if entry.get("file_id") and now != entry["file_id"]:
        return f"{entry['path']} is now {now}, the policy matches {entry['file_id']}: apply it again"
    return None


def _tamper(seal: Any) -> dict[str, Any] | None:
    try:
        return seal.tamper_counters()  # type: ignore[no-any-return]
    except OSError as exc:  # unknown, never zero
        return {"by_rule": None, "dropped": None, "error": f"seal-tamper_counters: {exc.strerror or exc}"}
