"""libc through ctypes: one handle and one errno check (drgn's way).

Every libc call lockdownctl makes (mount, unshare, syscall, klogctl) is
declared here once with its argument types; :func:`_check` turns the C
convention (-1 and errno) into OSError, so no caller reads errno itself.
ctypes is imported only when a call is made: ``status`` reaches these only in
its child process.
"""

from __future__ import annotations

import ctypes
import os

TYPE_CHECKING = False  # typing costs start-up time: status's child calls this module
if TYPE_CHECKING:
    from typing import Any

_HANDLE: list[ctypes.CDLL] = []


def _check(ret: int, func: Any, args: tuple[Any, ...]) -> int:
    """ctypes errcheck: -1 means failure with errno set (man 3 errno)."""
    if ret == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{func.__name__}: {os.strerror(err)}")
    return ret


def handle() -> ctypes.CDLL:
    """The process's libc with the prototypes lockdownctl uses."""
    if not _HANDLE:
        lib = ctypes.CDLL(None, use_errno=True)
        lib.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
        lib.unshare.argtypes = [ctypes.c_int]
        lib.klogctl.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.syscall.restype = ctypes.c_long
        for func in (lib.mount, lib.unshare, lib.klogctl, lib.syscall):
            func.errcheck = _check  # type: ignore[assignment]
        _HANDLE.append(lib)
    return _HANDLE[0]


def mount(source: str | None, target: str, fstype: str | None, flags: int) -> None:
    """mount(2) without data; OSError with the kernel's errno on failure."""
    handle().mount(source.encode() if source else None, target.encode(), fstype.encode() if fstype else None,
                   flags, None)


def unshare(flags: int) -> None:
    handle().unshare(flags)


def klogctl(action: int, buf: ctypes.Array[ctypes.c_char] | None, size: int) -> int:
    """syslog(2) (glibc's klogctl): the byte count, or OSError."""
    return int(handle().klogctl(action, buf, size))


def syscall(number: int, *args: Any) -> int:
    """A raw system call (for bpf(2), which glibc does not wrap): its return value, or OSError."""
    return int(handle().syscall(ctypes.c_long(number), *args))
