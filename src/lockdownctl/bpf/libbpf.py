"""The single ctypes boundary to the system libbpf (``libbpf.so.1``).

Nothing else in lockdownctl calls libbpf. libbpf 1.x reports failure as a
negative return value or NULL with errno set; :func:`_check` turns that into
OSError so callers see one error type.
"""

from __future__ import annotations

import ctypes
import os

from ..errors import FeatureMissing

BPF_PROG_TYPE_LSM = 29  # enum bpf_prog_type, include/uapi/linux/bpf.h
BPF_LSM_MAC = 27  # enum bpf_attach_type

LIBBPF_SONAME = "libbpf.so.1"


class BpfInsn(ctypes.Structure):
    """struct bpf_insn: code, dst_reg:4, src_reg:4, off, imm."""

    _fields_ = [
        ("code", ctypes.c_uint8),
        ("regs", ctypes.c_uint8),
        ("off", ctypes.c_int16),
        ("imm", ctypes.c_int32),
    ]


class ProgLoadOpts(ctypes.Structure):
    """struct bpf_prog_load_opts of libbpf 1.1 (``sz`` keeps newer libbpf compatible)."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("attempts", ctypes.c_int),
        ("expected_attach_type", ctypes.c_int),
        ("prog_btf_fd", ctypes.c_uint32),
        ("prog_flags", ctypes.c_uint32),
        ("prog_ifindex", ctypes.c_uint32),
        ("kern_version", ctypes.c_uint32),
        ("attach_btf_id", ctypes.c_uint32),
        ("attach_prog_fd", ctypes.c_uint32),
        ("attach_btf_obj_fd", ctypes.c_uint32),
        ("fd_array", ctypes.c_void_p),
        ("func_info", ctypes.c_void_p),
        ("func_info_cnt", ctypes.c_uint32),
        ("func_info_rec_size", ctypes.c_uint32),
        ("line_info", ctypes.c_void_p),
        ("line_info_cnt", ctypes.c_uint32),
        ("line_info_rec_size", ctypes.c_uint32),
        ("log_level", ctypes.c_uint32),
        ("log_size", ctypes.c_uint32),
        ("log_buf", ctypes.c_char_p),
    ]


PRINT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)


_LIB: list[ctypes.CDLL] = []


def lib() -> ctypes.CDLL:
    if _LIB:
        return _LIB[0]
    try:
        so = ctypes.CDLL(LIBBPF_SONAME, use_errno=True)
    except OSError:
        raise FeatureMissing(f"{LIBBPF_SONAME} not found: install it (Debian: apt-get install libbpf1)") from None
    so.bpf_prog_load.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p,
                                 ctypes.POINTER(BpfInsn), ctypes.c_size_t, ctypes.POINTER(ProgLoadOpts)]
    so.bpf_prog_load.restype = ctypes.c_int
    so.libbpf_find_vmlinux_btf_id.argtypes = [ctypes.c_char_p, ctypes.c_int]
    so.libbpf_find_vmlinux_btf_id.restype = ctypes.c_int
    so.libbpf_set_print.argtypes = [PRINT_FN]
    so.libbpf_set_print.restype = ctypes.c_void_p
    so.libbpf_set_print(_QUIET)  # libbpf's own hints (e.g. about ulimit -l) mislead here
    _LIB.append(so)
    return so


def _quiet(level: int, fmt: bytes, args: int) -> int:
    return 0


_QUIET = PRINT_FN(_quiet)  # kept referenced for the life of the process


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno() or -ret
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def find_vmlinux_btf_id(name: str, attach_type: int) -> int:
    """BTF id of the attach target, e.g. ("locked_down", BPF_LSM_MAC) -> bpf_lsm_locked_down."""
    return _check(lib().libbpf_find_vmlinux_btf_id(name.encode(), attach_type), f"find BTF id of {name}")


def prog_load(prog_type: int, name: str, insns: list[tuple[int, int, int, int]],
              expected_attach_type: int = 0, attach_btf_id: int = 0, license: str = "GPL") -> int:
    """Load raw instructions (code, regs, off, imm); returns the program fd."""
    array = (BpfInsn * len(insns))(*(BpfInsn(*insn) for insn in insns))
    opts = ProgLoadOpts(sz=ctypes.sizeof(ProgLoadOpts), attempts=1,
                        expected_attach_type=expected_attach_type, attach_btf_id=attach_btf_id)
    ret = lib().bpf_prog_load(prog_type, name.encode(), license.encode(), array, len(insns), ctypes.byref(opts))
    return _check(ret, f"BPF_PROG_LOAD {name}")
