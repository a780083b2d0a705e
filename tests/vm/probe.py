"""Perform each operation kernel lockdown guards and report what the kernel said.

Run as root inside a guest: ``python -m tests.vm.probe [--module FILE]``;
prints one JSON object: operation -> {"reason": id, "ok": bool, "errno": name}.
Each operation is chosen to hit its security_locked_down() call and do
nothing else of consequence (no memory is mapped or written, an invalid MSR
index, a PCI config write past the end of config space, a module that is
unloaded again). Used by the enforcer's fidelity tests: the same probe under
the enforcer's profile on a lockdown=none kernel and under the kernel's own
mode must agree operation by operation.
"""

from __future__ import annotations

import ctypes
import errno
import glob
import json
import lzma
import os
import struct
import sys
from collections.abc import Callable

LIBC = ctypes.CDLL(None, use_errno=True)
SYS_KEXEC_LOAD = 246  # x86_64
SYS_FINIT_MODULE = 313
SYS_DELETE_MODULE = 176
SIGNATURE_MARKER = b"~Module signature appended~\n"


def _errno_name(err: int) -> str:
    return errno.errorcode.get(err, str(err))


def _syscall_ok(ret: int) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def op_open(path: str, flags: int = os.O_RDONLY) -> Callable[[], None]:
    def run() -> None:
        os.close(os.open(path, flags))
    return run


def op_ioperm() -> None:
    _syscall_ok(LIBC.ioperm(0x80, 1, 1))


def op_iopl() -> None:
    _syscall_ok(LIBC.iopl(3))
    LIBC.iopl(0)


def op_kexec_load() -> None:
    # No segments, no flags: "unload the current image" once permitted.
    _syscall_ok(LIBC.syscall(SYS_KEXEC_LOAD, ctypes.c_ulong(0), ctypes.c_ulong(0), None, ctypes.c_ulong(0)))


def op_hibernation() -> None:
    # hibernation_available() decides whether "disk" is offered.
    with open("/sys/power/state") as fh:
        if "disk" not in fh.read().split():
            raise OSError(errno.EPERM, "disk is not offered in /sys/power/state")


def op_pci_config_write() -> None:
    # pci_write_config() asks lockdown first; the write puts back the value
    # already in the Interrupt Line register (0x3c) of the first device.
    device = sorted(glob.glob("/sys/bus/pci/devices/*/config"))[0]
    fd = os.open(device, os.O_RDWR)
    try:
        os.pwrite(fd, os.pread(fd, 1, 0x3C), 0x3C)
    finally:
        os.close(fd)


def op_msr_write() -> None:
    # msr_write() asks lockdown before the write; the index is invalid, so an
    # allowed write fails with EIO from the #GP, which counts as "allowed".
    if not os.path.exists("/dev/cpu/0/msr"):
        os.system("modprobe msr >/dev/null 2>&1")
    fd = os.open("/dev/cpu/0/msr", os.O_WRONLY)
    try:
        os.pwrite(fd, struct.pack("<Q", 0), 0xC0DE0000)
    except OSError as exc:
        if exc.errno != errno.EIO:
            raise
    finally:
        os.close(fd)


def op_kprobe_event() -> None:
    fd = os.open("/sys/kernel/tracing/kprobe_events", os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, b"p:ldctl_probe/probe do_nanosleep\n")
        os.write(fd, b"-:ldctl_probe/probe\n")
    finally:
        os.close(fd)


def _bpf_load(insns: list[tuple[int, int, int, int]]) -> None:
    from lockdownctl.bpf import libbpf

    os.close(libbpf.prog_load(2, "ldctl_probe", insns))  # BPF_PROG_TYPE_KPROBE, loaded, never attached


def op_bpf_read_kernel() -> None:
    # r1 = fp - 8; r2 = 8; r3 = 0; call bpf_probe_read_kernel (113); r0 = 0; exit
    _bpf_load([(0xBF, 0xA1, 0, 0), (0x07, 0x01, 0, -8), (0xB7, 0x02, 0, 8), (0xB7, 0x03, 0, 0),
               (0x85, 0, 0, 113), (0xB7, 0, 0, 0), (0x95, 0, 0, 0)])


def op_bpf_write_user() -> None:
    # *(u64 *)(fp - 8) = 0; r1 = 0; r2 = fp - 8; r3 = 8; call bpf_probe_write_user (36); r0 = 0; exit
    _bpf_load([(0x7A, 0x0A, -8, 0), (0xB7, 0x01, 0, 0), (0xBF, 0xA2, 0, 0), (0x07, 0x02, 0, -8),
               (0xB7, 0x03, 0, 8), (0x85, 0, 0, 36), (0xB7, 0, 0, 0), (0x95, 0, 0, 0)])


def unsigned_module(source: str, out: str) -> str:
    """A copy of a real module of this kernel with its appended signature cut off."""
    with open(source, "rb") as fh:
        data = fh.read()
    if source.endswith(".xz"):
        data = lzma.decompress(data)
    if data.endswith(SIGNATURE_MARKER):
        sig_len = struct.unpack(">I", data[-len(SIGNATURE_MARKER) - 4 : -len(SIGNATURE_MARKER)])[0]
        data = data[: -(len(SIGNATURE_MARKER) + 12 + sig_len)]
    with open(out, "wb") as fh:
        fh.write(data)
    return out


def op_module(path: str, name: str) -> Callable[[], None]:
    def run() -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            _syscall_ok(LIBC.syscall(SYS_FINIT_MODULE, fd, b"", 0))
        finally:
            os.close(fd)
        _syscall_ok(LIBC.syscall(SYS_DELETE_MODULE, name.encode(), os.O_NONBLOCK))
    return run


def operations(module: str | None) -> dict[str, tuple[str, Callable[[], None]]]:
    ops: dict[str, tuple[str, Callable[[], None]]] = {
        "open /dev/mem": ("dev_mem", op_open("/dev/mem")),
        "open /dev/port": ("dev_mem", op_open("/dev/port")),
        "ioperm": ("ioport", op_ioperm),
        "iopl": ("ioport", op_iopl),
        "kexec_load": ("kexec", op_kexec_load),
        "hibernation available": ("hibernation", op_hibernation),
        "PCI config write": ("pci_access", op_pci_config_write),
        "MSR write": ("msr", op_msr_write),
        "debugfs open for write": ("debugfs", op_open("/sys/kernel/debug/clear_warn_once", os.O_WRONLY)),
        "bpf_probe_write_user": ("bpf_write_user", op_bpf_write_user),
        "open /proc/kcore": ("kcore", op_open("/proc/kcore")),
        "open tracefs file": ("tracefs", op_open("/sys/kernel/tracing/trace")),
        "kprobe event": ("kprobes", op_kprobe_event),
        "bpf_probe_read_kernel": ("bpf_read_kernel", op_bpf_read_kernel),
    }
    if module:
        name = os.path.basename(module).split(".")[0].replace("-", "_")
        ops["unsigned module"] = ("module_signature", op_module(module, name))
    return ops


def probe(module: str | None = None) -> dict[str, dict[str, object]]:
    results: dict[str, dict[str, object]] = {}
    for op, (reason, run) in operations(module).items():
        try:
            run()
            results[op] = {"reason": reason, "ok": True, "errno": None}
        except OSError as exc:
            results[op] = {"reason": reason, "ok": False, "errno": _errno_name(exc.errno or 0)}
    return results


if __name__ == "__main__":
    module = sys.argv[sys.argv.index("--module") + 1] if "--module" in sys.argv else None
    print(json.dumps(probe(module)))
