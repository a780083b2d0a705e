"""Is the BPF LSM usable for the enforcer on this kernel?

A kernel can list ``bpf`` among its active LSMs and still refuse LSM
programs (this project's own build host returns EPERM at load), so, like
systemd before it uses BPF LSM, we decide by loading a minimal program on
the ``locked_down`` hook. Loading without attaching changes nothing.
"""

from __future__ import annotations

import errno
import os

# r0 = 0; exit  (BPF_ALU64|BPF_MOV|BPF_K, BPF_JMP|BPF_EXIT)
_RETURN_ZERO = [(0xB7, 0, 0, 0), (0x95, 0, 0, 0)]
VMLINUX_BTF = "/sys/kernel/btf/vmlinux"
BOOT_ID = "/proc/sys/kernel/random/boot_id"
CACHE_DIR = "/run/lockdownctl"
CACHE = CACHE_DIR + "/btf-ids"


def _cache_key() -> str | None:
    try:
        with open(BOOT_ID) as fh:
            return f"{fh.read().strip()}:{os.stat(VMLINUX_BTF).st_size}"
    except OSError:
        return None


def _cached_ids(key: str) -> dict[str, int]:
    """The cache file: the key on the first line, then "hook id" lines
    (plain text: json would cost the import of re at every start)."""
    try:
        with open(CACHE) as fh:
            first, *rest = fh.read().splitlines()
        if first != key:
            return {}
        return {hook: int(value) for hook, value in (line.split() for line in rest)}
    except (OSError, ValueError):
        return {}


def cached_lsm_btf_id(hook: str) -> int:
    """BTF id of ``bpf_lsm_<hook>``, cached in /run for the current boot.

    libbpf parses all of vmlinux BTF (about 10 ms) to find one id; the id
    cannot change before the next boot, and /run is emptied at boot, so the
    cache is keyed by boot id and BTF size and never trusted across boots.
    """
    key = _cache_key()
    ids = _cached_ids(key) if key else {}
    if isinstance(ids.get(hook), int):
        return ids[hook]
    from . import libbpf

    btf_id = libbpf.find_vmlinux_btf_id(hook, libbpf.BPF_LSM_MAC)
    if key:
        ids[hook] = btf_id
        try:
            os.makedirs(CACHE_DIR, mode=0o700, exist_ok=True)
            tmp = f"{CACHE}.{os.getpid()}"
            with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
                fh.write(key + "\n" + "".join(f"{h} {i}\n" for h, i in ids.items()))
            os.replace(tmp, CACHE)
        except OSError:
            pass  # a read-only /run only costs the next run the lookup again
    return btf_id


BPF_PROG_TYPE_LSM = 29  # include/uapi/linux/bpf.h
BPF_LSM_MAC = 27
SYS_BPF = 321  # x86_64
BPF_PROG_LOAD = 5


def _prog_load_lsm(btf_id: int) -> int:
    """BPF_PROG_LOAD of the two-instruction program, straight through bpf(2).

    The enforcer goes through libbpf (libbpf.py); this probe runs on every
    ``status`` and only needs one syscall, and loading libbpf.so costs more
    than everything else it does (about 2 ms). The layout is the head of
    union bpf_attr for BPF_PROG_LOAD (include/uapi/linux/bpf.h, stable ABI);
    the kernel zero-fills the fields after it.
    """
    import ctypes

    class ProgLoadAttr(ctypes.Structure):
        _fields_ = [
            ("prog_type", ctypes.c_uint32), ("insn_cnt", ctypes.c_uint32), ("insns", ctypes.c_uint64),
            ("license", ctypes.c_uint64), ("log_level", ctypes.c_uint32), ("log_size", ctypes.c_uint32),
            ("log_buf", ctypes.c_uint64), ("kern_version", ctypes.c_uint32), ("prog_flags", ctypes.c_uint32),
            ("prog_name", ctypes.c_char * 16), ("prog_ifindex", ctypes.c_uint32),
            ("expected_attach_type", ctypes.c_uint32), ("prog_btf_fd", ctypes.c_uint32),
            ("func_info_rec_size", ctypes.c_uint32), ("func_info", ctypes.c_uint64),
            ("func_info_cnt", ctypes.c_uint32), ("line_info_rec_size", ctypes.c_uint32),
            ("line_info", ctypes.c_uint64), ("line_info_cnt", ctypes.c_uint32), ("attach_btf_id", ctypes.c_uint32),
        ]

    insns = (ctypes.c_uint64 * len(_RETURN_ZERO))(*(_encode(i) for i in _RETURN_ZERO))
    license = ctypes.create_string_buffer(b"GPL")
    attr = ProgLoadAttr(prog_type=BPF_PROG_TYPE_LSM, insn_cnt=len(_RETURN_ZERO),
                        insns=ctypes.addressof(insns), license=ctypes.addressof(license),
                        prog_name=b"ldctl_probe", expected_attach_type=BPF_LSM_MAC, attach_btf_id=btf_id)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    fd = libc.syscall(ctypes.c_long(SYS_BPF), ctypes.c_long(BPF_PROG_LOAD), ctypes.byref(attr),
                      ctypes.c_uint(ctypes.sizeof(attr)))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(fd)


def _encode(insn: tuple[int, int, int, int]) -> int:
    """struct bpf_insn as a little-endian u64: code, regs, off (s16), imm (s32)."""
    code, regs, off, imm = insn
    return code | (regs << 8) | ((off & 0xFFFF) << 16) | ((imm & 0xFFFFFFFF) << 32)


def trial_load() -> dict[str, str | None]:
    """Load (never attach) ``lsm/locked_down`` returning 0; close it at once.

    Returns {"result": ok|refused|not-tried, "errno": name or None, "detail": text}.
    """
    if os.geteuid() != 0:
        return {"result": "not-tried", "errno": None, "detail": "loading a BPF LSM program needs root"}
    try:
        btf_id = cached_lsm_btf_id("locked_down")
    except OSError as exc:
        name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        return {"result": "refused", "errno": name, "detail": f"no bpf_lsm_locked_down in vmlinux BTF: {exc}"}
    try:
        fd = _prog_load_lsm(btf_id)
    except OSError as exc:
        name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        return {"result": "refused", "errno": name, "detail": f"the kernel refuses LSM programs: {name} at load"}
    os.close(fd)
    return {"result": "ok", "errno": None, "detail": "a minimal lsm/locked_down program loaded"}
