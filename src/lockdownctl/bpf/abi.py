"""The enforcer's ABI: ctypes mirrors of lockdown.h, and the kernel's dev_t.

tests/unit/test_bpf_abi.py compiles the header and compares every size,
offset and constant with these mirrors.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

from ..policy import TASK_COMM_LEN

# Mirrors of lockdown.h (tests/unit/test_bpf_abi.py compiles the header and
# compares every size and offset).
LD_MAX_REASONS = 64
LD_ALLOW, LD_DENY, LD_AUDIT = 0, 1, 2
LD_COUNT_DENIED, LD_COUNT_AUDITED, LD_COUNT_EXCEPTED, LD_NCOUNTERS = 0, 1, 2, 3
LD_COUNTER_DROPS = LD_MAX_REASONS * LD_NCOUNTERS
LD_COMM_LEN = TASK_COMM_LEN  # comm[TASK_COMM_LEN], NUL included
VERDICT_CODES = {"allow": LD_ALLOW, "deny": LD_DENY, "audit": LD_AUDIT}
LD_MARK_TTL_NS = 100_000_000  # a file_open mark older than this serves no check

# Pin name -> map name in the object (".bss" holds `struct ld_policy policy`).
MAPS = {
    "policy": ".bss",
    "exe_exceptions": "exe_exceptions",
    "cgroup_exceptions": "cgroup_exceptions",
    "uid_exceptions": "uid_exceptions",
    "comm_exceptions": "comm_exceptions",
    "path_exceptions": "path_exceptions",
    "task_marks": "task_marks",
    "scope_cgroup": "scope_cgroup",
    "counters": "counters",
    "events": "events",
    "proof": ".data.proof",
}
# Pins an enforcer pinned by an older lockdownctl may lack (it stays usable).
OPTIONAL_PINS = ("proof",)
# The maps whose contents are the policy: the program only reads them
# (BPF_F_RDONLY_PROG, so no other program can write them either), and the
# seal freezes them (seal.py). task_marks is written by the programs alone
# (file_open marks, locked_down consumes): freezing it and refusing writable
# fds to it keep user space from forging a mark on a sealed enforcer.
POLICY_MAPS = ("policy", "exe_exceptions", "cgroup_exceptions", "uid_exceptions", "comm_exceptions",
               "path_exceptions", "scope_cgroup", "task_marks")
PROGRAM_WRITTEN = ("task_marks",)  # never BPF_F_RDONLY_PROG


class LdPolicy(ctypes.Structure):
    _fields_ = [
        ("gen", ctypes.c_uint32),
        ("sealed", ctypes.c_uint32),
        ("policy_id", ctypes.c_uint64),
        ("audit", ctypes.c_uint8 * 2),
        ("scoped", ctypes.c_uint8 * 2),
        ("paths", ctypes.c_uint8 * 2),
        ("pad", ctypes.c_uint8 * 2),
        ("verdict", (ctypes.c_uint8 * LD_MAX_REASONS) * 2),
    ]


class LdProof(ctypes.Structure):
    _fields_ = [("tgid", ctypes.c_uint32), ("pad", ctypes.c_uint32), ("hits", ctypes.c_uint64)]


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
        ("file_ino", ctypes.c_uint64),
        ("file_dev", ctypes.c_uint32),
        ("pad2", ctypes.c_uint32),
    ]


class LdMark(ctypes.Structure):
    _fields_ = [
        ("ino", ctypes.c_uint64),
        ("dev", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
        ("pid_tgid", ctypes.c_uint64),
        ("time_ns", ctypes.c_uint64),
        ("allow", ctypes.c_uint64),
        ("reasons", ctypes.c_uint64),
    ]


# Mirrors of gate.h: the signed policy bundle and the gate's state (gate.bpf.c).
LD_GATE_MAGIC = 0x4253444C
LD_GATE_FORMAT = 1
LD_GATE_MAX_EXC = 32
LD_GATE_MAX_SIG = 1024
LD_GATE_MAX_PREFIX = 256
LD_GATE_COUNTERS = 16
# Why the gate refused: index -> (name, errno name the update fails with).
GATE_REASONS = {
    0: ("accepted", ""),
    1: ("format", "EBADMSG"),
    2: ("signer", "EKEYREJECTED"),
    3: ("signature", "EKEYREJECTED"),
    4: ("stale", "ESTALE"),
    5: ("host", "EBADMSG"),
    6: ("reasons", "EBADMSG"),
    7: ("nokey", "ENOKEY"),
    8: ("busy", "EBUSY"),
    9: ("fault", "EFAULT"),
    10: ("write", "EIO"),
}


class LdGateExe(ctypes.Structure):
    _fields_ = [("dev", ctypes.c_uint32), ("pad", ctypes.c_uint32), ("ino", ctypes.c_uint64),
                ("mask", ctypes.c_uint64)]


class LdGateId(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("mask", ctypes.c_uint64)]


class LdGateComm(ctypes.Structure):
    _fields_ = [("comm", ctypes.c_char * LD_COMM_LEN), ("mask", ctypes.c_uint64)]


class LdGatePayload(ctypes.Structure):
    _fields_ = [
        ("magic", ctypes.c_uint32),
        ("format", ctypes.c_uint32),
        ("version", ctypes.c_uint64),
        ("host_id", ctypes.c_uint64),
        ("reasons_id", ctypes.c_uint64),
        ("policy_id", ctypes.c_uint64),
        ("audit", ctypes.c_uint8),
        ("pad", ctypes.c_uint8 * 3),
        ("n_exe", ctypes.c_uint32),
        ("n_cgroup", ctypes.c_uint32),
        ("n_uid", ctypes.c_uint32),
        ("n_comm", ctypes.c_uint32),
        ("pad2", ctypes.c_uint32),
        ("verdict", ctypes.c_uint8 * LD_MAX_REASONS),
        ("exe", LdGateExe * LD_GATE_MAX_EXC),
        ("cgroup", LdGateId * LD_GATE_MAX_EXC),
        ("uid", LdGateId * LD_GATE_MAX_EXC),
        ("comm", LdGateComm * LD_GATE_MAX_EXC),
    ]


class LdGateBundle(ctypes.Structure):
    _fields_ = [
        ("magic", ctypes.c_uint32),
        ("sig_len", ctypes.c_uint32),
        ("payload", LdGatePayload),
        ("sig", ctypes.c_uint8 * LD_GATE_MAX_SIG),
    ]


class LdGateConfig(ctypes.Structure):
    _fields_ = [
        ("host_id", ctypes.c_uint64),
        ("reasons_id", ctypes.c_uint64),
        ("keyring", ctypes.c_uint64),
        ("system", ctypes.c_uint32),
        ("prefix_len", ctypes.c_uint32),
        ("sig_len", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
        ("prefix", ctypes.c_uint8 * LD_GATE_MAX_PREFIX),
    ]


class LdGateState(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint64), ("busy", ctypes.c_uint32), ("pad", ctypes.c_uint32)]


class LdGateInfo(ctypes.Structure):
    _fields_ = [
        ("policy", LdPolicy),
        ("version", ctypes.c_uint64),
        ("accepted", ctypes.c_uint64),
        ("n_exc", ctypes.c_uint32 * 5),
        ("pad", ctypes.c_uint32),
        ("refused", ctypes.c_uint64 * LD_GATE_COUNTERS),
    ]


class LdGateEvent(ctypes.Structure):
    _fields_ = [
        ("time_ns", ctypes.c_uint64),
        ("version", ctypes.c_uint64),
        ("current", ctypes.c_uint64),
        ("pid", ctypes.c_uint32),
        ("uid", ctypes.c_uint32),
        ("why", ctypes.c_uint32),
        ("err", ctypes.c_int32),
        ("comm", ctypes.c_char * LD_COMM_LEN),
    ]


# Exception kind -> (pin name, key type)
EXCEPTION_MAPS: dict[str, tuple[str, type[ctypes.Structure]]] = {
    "exe": ("exe_exceptions", LdExeKey),
    "cgroup": ("cgroup_exceptions", LdIdKey),
    "uid": ("uid_exceptions", LdIdKey),
    "comm": ("comm_exceptions", LdCommKey),
    "path": ("path_exceptions", LdExeKey),  # plus {slot, 0, 0}: the reasons a mark is for (lockdown.h)
}




def map_key(kind: str, slot: int, ident: Any) -> ctypes.Structure:
    """The exception map key of ``kind`` for ``ident`` (see resolve.Resolved)."""
    if kind in ("exe", "path"):
        return LdExeKey(slot, ident[0], ident[1])
    if kind == "comm":
        return LdCommKey(slot, ident)
    return LdIdKey(slot, 0, ident)


# The kernel's internal dev_t (include/linux/kdev_t.h MKDEV: major << MINORBITS |
# minor), the form the enforcer reads from inode->i_sb->s_dev; user space's
# st_dev packs major and minor differently (glibc's makedev).
MINORBITS = 20
MINORMASK = (1 << MINORBITS) - 1


def kernel_dev(st_dev: int) -> int:
    """stat()'s st_dev as the kernel's internal dev_t."""
    return (os.major(st_dev) << MINORBITS) | os.minor(st_dev)


def dev_text(kdev: int) -> str:
    """The kernel's internal dev_t as MAJOR:MINOR."""
    return f"{kdev >> MINORBITS}:{kdev & MINORMASK}"
