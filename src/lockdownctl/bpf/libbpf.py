"""The single ctypes boundary to the system libbpf (``libbpf.so.1``).

Nothing else in lockdownctl calls libbpf. libbpf 1.x reports failure as a
negative return value or NULL with errno set; :func:`_check` turns that into
OSError so callers see one error type.
"""

from __future__ import annotations

import ctypes
import os
from typing import TYPE_CHECKING

from ..errors import FeatureMissing
from ..host.bpf_syscall import BPF_F_RDONLY, BPF_F_RDONLY_PROG, BPF_LSM_MAC, BPF_PROG_TYPE_LSM

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["BPF_F_RDONLY", "BPF_F_RDONLY_PROG", "BPF_LSM_MAC", "BPF_PROG_TYPE_LSM"]  # UAPI: host/bpf_syscall.py

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
# ring_buffer_sample_fn: int (*)(void *ctx, void *data, size_t size)
SAMPLE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)

_P = ctypes.c_void_p
_I = ctypes.c_int
_S = ctypes.c_char_p
# name: (restype, argtypes); pointers are opaque (c_void_p).
_SIGNATURES: dict[str, tuple[object, list[object]]] = {
    "bpf_object__open_file": (_P, [_S, _P]),
    "bpf_object__load": (_I, [_P]),
    "bpf_object__close": (None, [_P]),
    "bpf_object__find_map_by_name": (_P, [_P, _S]),
    "bpf_object__find_program_by_name": (_P, [_P, _S]),
    "bpf_map__set_max_entries": (_I, [_P, ctypes.c_uint32]),
    "bpf_map__fd": (_I, [_P]),
    "bpf_map__pin": (_I, [_P, _S]),
    "bpf_map__value_size": (ctypes.c_uint32, [_P]),
    "bpf_program__attach": (_P, [_P]),
    "bpf_link__pin": (_I, [_P, _S]),
    "bpf_link__fd": (_I, [_P]),
    "bpf_link__disconnect": (None, [_P]),
    "bpf_link__destroy": (_I, [_P]),
    "bpf_obj_get": (_I, [_S]),
    "bpf_map_update_elem": (_I, [_I, _P, _P, ctypes.c_uint64]),
    "bpf_map_lookup_elem": (_I, [_I, _P, _P]),
    "bpf_map_delete_elem": (_I, [_I, _P]),
    "bpf_map_get_next_key": (_I, [_I, _P, _P]),
    "bpf_map_freeze": (_I, [_I]),
    "bpf_obj_get_info_by_fd": (_I, [_I, _P, ctypes.POINTER(ctypes.c_uint32)]),
    "ring_buffer__new": (_P, [_I, SAMPLE_FN, _P, _P]),
    "ring_buffer__poll": (_I, [_P, _I]),
    "ring_buffer__consume": (_I, [_P]),
    "ring_buffer__free": (None, [_P]),
    "libbpf_num_possible_cpus": (_I, []),
    # the seal (seal.py)
    "bpf_map__map_flags": (ctypes.c_uint32, [_P]),
    "bpf_map__set_map_flags": (_I, [_P, ctypes.c_uint32]),
    "bpf_map__initial_value": (_P, [_P, ctypes.POINTER(ctypes.c_size_t)]),
    "bpf_object__btf": (_P, [_P]),
    "btf__find_by_name_kind": (_I, [_P, _S, ctypes.c_uint32]),
    "btf__type_by_id": (_P, [_P, ctypes.c_uint32]),
    "btf__name_by_offset": (_S, [_P, ctypes.c_uint32]),
    "bpf_object__next_program": (_P, [_P, _P]),
    "bpf_program__name": (_S, [_P]),
    "bpf_obj_get_opts": (_I, [_S, _P]),
    "bpf_program__attach_cgroup": (_P, [_P, _I]),
    # the gate (gate.py)
    "bpf_map__reuse_fd": (_I, [_P, _I]),
}


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
    for name, (restype, argtypes) in _SIGNATURES.items():
        fn = getattr(so, name)
        fn.restype = restype
        fn.argtypes = argtypes
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


# --- object API (the enforcer) -------------------------------------------------


def _ptr(ret: int | None, what: str) -> int:
    """libbpf 1.x returns NULL and sets errno on failure."""
    if not ret:
        err = ctypes.get_errno() or 22
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


class Object:
    """A BPF object file: open, size maps, load, find maps and programs."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.ptr = _ptr(lib().bpf_object__open_file(path.encode(), None), f"open {path}")

    def map(self, name: str) -> int:
        return _ptr(lib().bpf_object__find_map_by_name(self.ptr, name.encode()), f"map {name} in {self.path}")

    def program(self, name: str) -> int:
        return _ptr(lib().bpf_object__find_program_by_name(self.ptr, name.encode()), f"program {name}")

    def load(self) -> None:
        _check(lib().bpf_object__load(self.ptr), f"load {self.path}")

    def close(self) -> None:
        if self.ptr:
            lib().bpf_object__close(self.ptr)
            self.ptr = 0


def map_set_max_entries(map_ptr: int, entries: int) -> None:
    _check(lib().bpf_map__set_max_entries(map_ptr, entries), "set max_entries")


def map_fd(map_ptr: int) -> int:
    return _check(lib().bpf_map__fd(map_ptr), "map fd")


def map_pin(map_ptr: int, path: str) -> None:
    _check(lib().bpf_map__pin(map_ptr, path.encode()), f"pin {path}")


def attach(prog_ptr: int) -> int:
    """Attach by the program's section (lsm/<hook>); returns the bpf_link."""
    return _ptr(lib().bpf_program__attach(prog_ptr), "attach")


def attach_cgroup(prog_ptr: int, cgroup_fd: int) -> int:
    """Attach a cgroup program (e.g. cgroup/sysctl) to a cgroup through a link; returns the bpf_link."""
    return _ptr(lib().bpf_program__attach_cgroup(prog_ptr, cgroup_fd), "attach to cgroup")


def link_pin(link: int, path: str) -> None:
    _check(lib().bpf_link__pin(link, path.encode()), f"pin {path}")


def link_fd(link: int) -> int:
    return _check(lib().bpf_link__fd(link), "link fd")


def link_release(link: int, keep_attached: bool) -> None:
    """Free libbpf's link object; with keep_attached the kernel link (held by
    its pin) survives this process.

    A disconnected link is freed without closing its fd (bpf_link__destroy
    only closes it through detach), so we close the fd ourselves: otherwise
    the kernel link, its program and maps live as long as this process.
    """
    if keep_attached:
        fd = lib().bpf_link__fd(link)
        lib().bpf_link__disconnect(link)
        lib().bpf_link__destroy(link)
        if fd >= 0:
            os.close(fd)
    else:
        lib().bpf_link__destroy(link)


def obj_get(path: str) -> int:
    return _check(lib().bpf_obj_get(path.encode()), f"open pinned {path}")


def map_update(fd: int, key: ctypes._CData, value: ctypes._CData, flags: int = 0) -> None:
    _check(lib().bpf_map_update_elem(fd, ctypes.byref(key), ctypes.byref(value), flags), "map update")


def map_lookup(fd: int, key: ctypes._CData, value: ctypes._CData) -> bool:
    """Fill ``value``; False when the key is absent."""
    ret = lib().bpf_map_lookup_elem(fd, ctypes.byref(key), ctypes.byref(value))
    if ret < 0:
        err = ctypes.get_errno() or -ret
        if err == 2:  # ENOENT
            return False
        raise OSError(err, f"map lookup: {os.strerror(err)}")
    return True


def map_delete(fd: int, key: ctypes._CData) -> None:
    _check(lib().bpf_map_delete_elem(fd, ctypes.byref(key)), "map delete")


def map_keys(fd: int, key_type: type[ctypes.Structure]) -> list[ctypes.Structure]:
    keys: list[ctypes.Structure] = []
    current: ctypes.Structure | None = None
    while True:
        nxt = key_type()
        ret = lib().bpf_map_get_next_key(fd, ctypes.byref(current) if current is not None else None,
                                          ctypes.byref(nxt))
        if ret < 0:
            break
        keys.append(nxt)
        current = nxt
    return keys


def map_freeze(fd: int) -> None:
    _check(lib().bpf_map_freeze(fd), "BPF_MAP_FREEZE")


def num_possible_cpus() -> int:
    return _check(lib().libbpf_num_possible_cpus(), "possible CPUs")


class BpfMapInfo(ctypes.Structure):
    """The head of struct bpf_map_info (include/uapi/linux/bpf.h)."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("key_size", ctypes.c_uint32),
        ("value_size", ctypes.c_uint32),
        ("max_entries", ctypes.c_uint32),
        ("map_flags", ctypes.c_uint32),
        ("name", ctypes.c_char * 16),
    ]


def map_info(fd: int) -> BpfMapInfo:
    info = BpfMapInfo()
    size = ctypes.c_uint32(ctypes.sizeof(info))
    _check(lib().bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size)), "map info")
    return info


class RingBuffer:
    """libbpf's ring_buffer over one map fd, calling ``callback(bytes)``.

    An exception in the callback (a closed pipe, ^C, a full disk) cannot cross
    the C frames of libbpf: ctypes would print it and carry on with the next
    record. So the callback stops libbpf (a negative return ends the poll with
    the record consumed) and :meth:`poll` / :meth:`consume` raise it.
    """

    def __init__(self, fd: int, callback: Callable[[bytes], None]) -> None:
        self._error: BaseException | None = None

        def sample(_ctx: int | None, data: int | None, size: int) -> int:
            try:
                callback(ctypes.string_at(data or 0, size))
            except BaseException as exc:  # re-raised by poll/consume
                self._error = exc
                return -1
            return 0

        self._sample = SAMPLE_FN(sample)  # must outlive the ring buffer
        self.ptr = _ptr(lib().ring_buffer__new(fd, self._sample, None, None), "ring_buffer__new")

    def _raise_callback_error(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    def poll(self, timeout_ms: int) -> int:
        ret: int = lib().ring_buffer__poll(self.ptr, timeout_ms)
        self._raise_callback_error()
        if ret < 0 and -ret != 4:  # EINTR: a signal, the caller decides
            raise OSError(-ret, f"ring_buffer__poll: {os.strerror(-ret)}")
        return max(ret, 0)

    def consume(self) -> int:
        ret = int(lib().ring_buffer__consume(self.ptr))
        self._raise_callback_error()
        return max(ret, 0)

    def close(self) -> None:
        if self.ptr:
            lib().ring_buffer__free(self.ptr)
            self.ptr = 0


# --- the seal (seal.py) ----------------------------------------------------------

BTF_KIND_VAR = 14
BTF_KIND_DATASEC = 15


class ObjGetOpts(ctypes.Structure):
    """struct bpf_obj_get_opts (libbpf 1.0)."""

    _fields_ = [("sz", ctypes.c_size_t), ("file_flags", ctypes.c_uint32), ("pad", ctypes.c_uint32)]


def obj_get_readonly(path: str) -> int:
    """A read-only fd on a pinned object (what a sealed map still grants)."""
    opts = ObjGetOpts(sz=ctypes.sizeof(ObjGetOpts), file_flags=BPF_F_RDONLY)
    return _check(lib().bpf_obj_get_opts(path.encode(), ctypes.byref(opts)), f"open pinned {path} read-only")


def map_add_flags(map_ptr: int, flags: int) -> None:
    """Before load: add map_flags (e.g. BPF_F_RDONLY_PROG) to what the object declares."""
    _check(lib().bpf_map__set_map_flags(map_ptr, lib().bpf_map__map_flags(map_ptr) | flags), "set map flags")


class _BtfType(ctypes.Structure):
    _fields_ = [("name_off", ctypes.c_uint32), ("info", ctypes.c_uint32), ("size", ctypes.c_uint32)]


class _VarSecinfo(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint32), ("offset", ctypes.c_uint32), ("size", ctypes.c_uint32)]


def set_global(obj: Object, section: str, var: str, value: ctypes.Structure) -> None:
    """Before load: write ``value`` over the variable ``var`` of a data section
    (".rodata" for const volatile globals), at the offset the object's BTF
    DATASEC gives for it."""
    so = lib()
    btf = _ptr(so.bpf_object__btf(obj.ptr), f"BTF of {obj.path}")
    sec_id = _check(so.btf__find_by_name_kind(btf, section.encode(), BTF_KIND_DATASEC), f"{section} in BTF")
    sec = ctypes.cast(_ptr(so.btf__type_by_id(btf, sec_id), section), ctypes.POINTER(_BtfType))
    vlen = sec[0].info & 0xFFFF
    infos = ctypes.cast(ctypes.addressof(sec.contents) + ctypes.sizeof(_BtfType), ctypes.POINTER(_VarSecinfo))
    for i in range(vlen):
        t = ctypes.cast(_ptr(so.btf__type_by_id(btf, infos[i].type), var), ctypes.POINTER(_BtfType))
        if so.btf__name_by_offset(btf, t[0].name_off) == var.encode():
            if infos[i].size != ctypes.sizeof(value):
                raise OSError(22, f"{section} {var} is {infos[i].size} bytes, expected {ctypes.sizeof(value)}")
            size = ctypes.c_size_t(0)
            buf = _ptr(so.bpf_map__initial_value(obj.map(section), ctypes.byref(size)), f"{section} data")
            if infos[i].offset + infos[i].size > size.value:
                raise OSError(22, f"{section} {var} lies outside its section")
            ctypes.memmove(buf + infos[i].offset, ctypes.byref(value), ctypes.sizeof(value))
            return
    raise OSError(2, f"no variable {var} in {section} of {obj.path}")


def programs(obj: Object) -> list[tuple[str, int]]:
    """(name, pointer) of every program in the object."""
    out: list[tuple[str, int]] = []
    prog = lib().bpf_object__next_program(obj.ptr, None)
    while prog:
        out.append((lib().bpf_program__name(prog).decode(), prog))
        prog = lib().bpf_object__next_program(obj.ptr, prog)
    return out


class BpfLinkInfo(ctypes.Structure):
    """The head of struct bpf_link_info."""

    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32), ("prog_id", ctypes.c_uint32),
                ("pad", ctypes.c_uint8 * 52)]


def link_info(fd: int) -> BpfLinkInfo:
    info = BpfLinkInfo()
    size = ctypes.c_uint32(ctypes.sizeof(info))
    _check(lib().bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size)), "link info")
    return info


def map_reuse_fd(map_ptr: int, fd: int) -> None:
    """Before load: make the object's map ``map_ptr`` this existing map (the
    gate writes the enforcer's own policy maps)."""
    _check(lib().bpf_map__reuse_fd(map_ptr, fd), "reuse a map fd")
