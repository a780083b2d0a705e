"""bpf(2) without libbpf: the UAPI constants, the syscall number per
architecture, and the BPF LSM trial load.

A kernel can list ``bpf`` among its active LSMs and still refuse LSM
programs (this project's own build host returns EPERM at load), so, like
systemd before it uses BPF LSM, lockdownctl decides by loading a minimal
program on the ``locked_down`` hook. Loading without attaching changes
nothing. This runs on every ``status`` (in its child process), where loading
libbpf.so would cost more than everything else (about 2 ms): so one raw
BPF_PROG_LOAD, with the hook's BTF id found by lockdownctl.btf and cached in
/run for the boot. The enforcer itself goes through libbpf (bpf/libbpf.py),
which takes its constants from here.
"""

from __future__ import annotations

import errno
import os

from ..btf import VMLINUX_BTF

TYPE_CHECKING = False  # on status's start-up path (benchmarks/startup.py)
if TYPE_CHECKING:
    from ..root import Root

# include/uapi/linux/bpf.h (stable ABI): the one home of these numbers.
BPF_MAP_LOOKUP_ELEM = 1  # enum bpf_cmd
BPF_PROG_LOAD = 5
BPF_OBJ_GET = 7
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_PROG_TYPE_LSM = 29  # enum bpf_prog_type
BPF_LSM_MAC = 27  # enum bpf_attach_type
BPF_TRACE_ITER = 28  # enum bpf_attach_type
BPF_F_RDONLY = 1 << 3  # file_flags of BPF_OBJ_GET: a read-only fd
BPF_F_RDONLY_PROG = 1 << 7  # map_flags: programs may read, never write

# __NR_bpf per architecture (uname -m), from the kernel's syscall tables:
# arch/x86/entry/syscalls/syscall_64.tbl; scripts/syscall.tbl, the generic
# table (arm64, riscv64, loongarch64); arch/powerpc/kernel/syscalls/syscall.tbl;
# arch/s390/kernel/syscalls/syscall.tbl. tests/unit/test_bpf_syscall.py
# checks each against those tables (tests/data/syscalls). An architecture
# not listed is never guessed: the trial load is "not-tried".
SYS_BPF = {
    "x86_64": 321,
    "aarch64": 280,
    "riscv64": 280,
    "loongarch64": 280,
    "ppc64le": 361,
    "ppc64": 361,
    "s390x": 351,
}
ARCH = "proc/sys/kernel/arch"  # the kernel's utsname machine (sysctl kernel.arch)


def machine(root: Root) -> str | None:
    """``uname -m`` of the kernel ``root`` describes; None when unknown."""
    text = root.read_text(ARCH)
    if isinstance(text, str) and text.strip():
        return text.strip()
    return os.uname().machine if root.live else None

# r0 = 0; exit  (BPF_ALU64|BPF_MOV|BPF_K, BPF_JMP|BPF_EXIT)
_RETURN_ZERO = [(0xB7, 0, 0, 0), (0x95, 0, 0, 0)]
BOOT_ID = "/proc/sys/kernel/random/boot_id"
CACHE_DIR = "/run/lockdownctl"
CACHE = CACHE_DIR + "/btf-ids"


def _cache_key() -> str | None:
    try:
        with open(BOOT_ID) as fh:
            return f"{fh.read().strip()}:{os.stat('/' + VMLINUX_BTF).st_size}"
    except OSError:
        return None


def _cached_ids(key: str) -> dict[str, int]:
    """The cache file: the key on the first line, then "function id" lines."""
    try:
        with open(CACHE) as fh:
            first, *rest = fh.read().splitlines()
        if first != key:
            return {}
        return {name: int(value) for name, value in (line.split() for line in rest)}
    except (OSError, ValueError):
        return {}


def cached_func_btf_id(name: str) -> int:
    """BTF id of the vmlinux function ``name``, cached in /run for the current boot.

    The id cannot change before the next boot, and /run is emptied at boot,
    so the cache is keyed by boot id and BTF size and never trusted across
    boots. OSError (ENOENT) when vmlinux BTF has no such function."""
    key = _cache_key()
    ids = _cached_ids(key) if key else {}
    if isinstance(ids.get(name), int):
        return ids[name]
    from ..btf import find_func_id
    from ..errors import InputError

    try:
        with open("/" + VMLINUX_BTF, "rb") as fh:
            found = find_func_id(fh.read(), "/" + VMLINUX_BTF, name)
    except InputError as exc:
        raise OSError(errno.EINVAL, exc.message) from None
    if found is None:
        raise OSError(errno.ENOENT, f"no {name} in /{VMLINUX_BTF}")
    if key:
        ids[name] = found
        try:
            os.makedirs(CACHE_DIR, mode=0o700, exist_ok=True)
            tmp = f"{CACHE}.{os.getpid()}"
            with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
                fh.write(key + "\n" + "".join(f"{n} {i}\n" for n, i in ids.items()))
            os.replace(tmp, CACHE)
        except OSError:
            pass  # a read-only /run only costs the next run the lookup again
    return found


def encode_insn(insn: tuple[int, int, int, int]) -> int:
    """struct bpf_insn as a little-endian u64: code, regs, off (s16), imm (s32)."""
    code, regs, off, imm = insn
    return code | (regs << 8) | ((off & 0xFFFF) << 16) | ((imm & 0xFFFFFFFF) << 32)


def prog_load_lsm(btf_id: int, machine: str) -> int:
    """BPF_PROG_LOAD of the two-instruction program, straight through bpf(2).

    The layout is the head of union bpf_attr for BPF_PROG_LOAD; the kernel
    zero-fills the fields after it. Returns the program fd; OSError."""
    import ctypes

    from .. import libc

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

    insns = (ctypes.c_uint64 * len(_RETURN_ZERO))(*(encode_insn(i) for i in _RETURN_ZERO))
    license = ctypes.create_string_buffer(b"GPL")
    attr = ProgLoadAttr(prog_type=BPF_PROG_TYPE_LSM, insn_cnt=len(_RETURN_ZERO),
                        insns=ctypes.addressof(insns), license=ctypes.addressof(license),
                        prog_name=b"ldctl_probe", expected_attach_type=BPF_LSM_MAC, attach_btf_id=btf_id)
    return libc.syscall(SYS_BPF[machine], ctypes.c_long(BPF_PROG_LOAD), ctypes.byref(attr),
                        ctypes.c_uint(ctypes.sizeof(attr)))


def trial_load(machine: str | None = None) -> dict[str, str | None]:
    """Load (never attach) ``lsm/locked_down`` returning 0; close it at once.

    ``machine``: ``uname -m`` (the running kernel's by default). Returns
    {"result": ok|refused|not-tried, "errno": name or None, "detail": text}.
    """
    machine = machine or os.uname().machine
    if machine not in SYS_BPF:
        return {"result": "not-tried", "errno": None,
                "detail": f"no bpf(2) number known for architecture {machine}"}
    if os.geteuid() != 0:
        return {"result": "not-tried", "errno": None, "detail": "loading a BPF LSM program needs root"}
    try:
        btf_id = cached_func_btf_id("bpf_lsm_locked_down")
    except OSError as exc:
        name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        return {"result": "refused", "errno": name, "detail": f"no bpf_lsm_locked_down in vmlinux BTF: {exc}"}
    try:
        fd = prog_load_lsm(btf_id, machine)
    except OSError as exc:
        name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        return {"result": "refused", "errno": name, "detail": f"the kernel refuses LSM programs: {name} at load"}
    os.close(fd)
    return {"result": "ok", "errno": None, "detail": "a minimal lsm/locked_down program loaded"}


def lookup_pinned(path: str, key: int) -> bytes | None:
    """The value at u32 ``key`` of the map pinned at ``path``, through a read-only fd
    (which a seal still grants); None when it cannot be read or the key is not a u32.
    Raw bpf(2), like the trial load: ``status`` reports the running policy with it."""
    import ctypes

    from .. import libc

    nr = SYS_BPF.get(os.uname().machine)
    if nr is None:
        return None
    u32, u64 = ctypes.c_uint32, ctypes.c_uint64

    class ObjGet(ctypes.Structure):
        _fields_ = [("pathname", u64), ("bpf_fd", u32), ("file_flags", u32)]

    class InfoByFd(ctypes.Structure):
        _fields_ = [("bpf_fd", u32), ("info_len", u32), ("info", u64)]

    class Lookup(ctypes.Structure):
        _fields_ = [("map_fd", u32), ("pad", u32), ("key", u64), ("value", u64), ("flags", u64)]

    def bpf(cmd: int, attr: ctypes.Structure) -> int:
        return libc.syscall(nr, ctypes.c_long(cmd), ctypes.byref(attr), ctypes.c_uint(ctypes.sizeof(attr)))

    name = ctypes.create_string_buffer(path.encode())
    try:
        fd = bpf(BPF_OBJ_GET, ObjGet(pathname=ctypes.addressof(name), file_flags=BPF_F_RDONLY))
    except OSError:
        return None
    try:
        info = (u32 * 20)()  # the head of struct bpf_map_info: type, id, key_size, value_size, ...
        bpf(BPF_OBJ_GET_INFO_BY_FD, InfoByFd(bpf_fd=fd, info_len=ctypes.sizeof(info), info=ctypes.addressof(info)))
        if info[2] != 4:
            return None
        want, value = u32(key), ctypes.create_string_buffer(info[3])  # the kernel writes value_size bytes
        bpf(BPF_MAP_LOOKUP_ELEM, Lookup(map_fd=fd, key=ctypes.addressof(want), value=ctypes.addressof(value)))
    except OSError:
        return None
    finally:
        os.close(fd)
    return value.raw
