"""Root: the one way lockdownctl reads the host.

Every host path is read through a :class:`Root` (default ``/``), so every
reader works on a fixture tree (``--root``) exactly as on the live system.
Pseudo file systems that may not be mounted (securityfs, tracefs, bpffs) are
reached on the live system by :func:`in_private_mounts`, which mounts them in
a child process inside its own mount namespace: the host's mount table is
never changed (design.md section 5).
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError


@dataclass(frozen=True)
class Unreadable:
    """A file that exists but could not be read, and why (for the report)."""

    path: str
    why: str


class Root:
    def __init__(self, path: str | Path = "/") -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise InputError(f"{self.path}: --root is not a directory")

    @property
    def live(self) -> bool:
        """True when this is the running system's own root."""
        return self.path.resolve() == Path("/")

    def __truediv__(self, rel: str) -> Path:
        return self.path / rel.lstrip("/")

    def display(self, rel: str) -> str:
        """The path as users should see it in messages."""
        return str(self / rel)

    def read_bytes(self, rel: str) -> bytes | Unreadable | None:
        """File contents; None when absent; Unreadable when present but refused."""
        path = self / rel
        try:
            with open(path, "rb") as fh:
                return fh.read()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            return Unreadable(str(path), exc.strerror or str(exc))

    def read_text(self, rel: str) -> str | Unreadable | None:
        data = self.read_bytes(rel)
        if isinstance(data, bytes):
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"{self / rel}: not text: invalid UTF-8 at byte {exc.start}") from None
        return data

    def exists(self, rel: str) -> bool:
        return (self / rel).exists()

    def listdir(self, rel: str) -> list[str]:
        try:
            return sorted(os.listdir(self / rel))
        except OSError:
            return []

    def osrelease(self) -> str | None:
        """``uname -r`` of the kernel this root describes."""
        text = self.read_text("proc/sys/kernel/osrelease")
        if isinstance(text, str) and text.strip():
            return text.strip()
        return os.uname().release if self.live else None


# --- private mount namespace -------------------------------------------------

CLONE_NEWNS = 0x00020000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REC = 0x4000
MS_PRIVATE = 1 << 18

# Pseudo file systems a reader may need, and where the kernel expects them.
PSEUDO_FS = {
    "securityfs": "/sys/kernel/security",
    "tracefs": "/sys/kernel/tracing",
    "bpf": "/sys/fs/bpf",
    "debugfs": "/sys/kernel/debug",
    "efivarfs": "/sys/firmware/efi/efivars",
}


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
    libc.unshare.argtypes = [ctypes.c_int]
    return libc


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def is_mounted(target: str, fstype: str) -> bool:
    """Whether ``fstype`` is mounted at ``target`` in our own namespace."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as fh:
            for line in fh:
                fields = line.split()
                sep = fields.index("-")
                if fields[4] == target and fields[sep + 1] == fstype:
                    return True
    except (OSError, ValueError, IndexError):
        pass
    return False


def in_private_mounts(fstypes: list[str], fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in a child with ``fstypes`` mounted in a private namespace.

    The child unshares its mount namespace, makes every mount private (so
    nothing propagates back to the host), mounts what is missing read-only,
    runs ``fn`` and sends its JSON-able result back through a pipe. Needs
    CAP_SYS_ADMIN; raises OSError with the child's errno otherwise.
    """
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into the caller's stack
        os.close(rfd)
        payload: dict[str, Any]
        try:
            libc = _libc()
            _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
            _check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
            for fstype in fstypes:
                target = PSEUDO_FS[fstype]
                if not is_mounted(target, fstype):
                    flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
                    if fstype != "bpf":
                        flags |= MS_RDONLY
                    _check(libc.mount(fstype.encode(), target.encode(), fstype.encode(), flags, None),
                           f"mount -t {fstype} {target}")
            payload = {"ok": fn()}
        except OSError as exc:
            payload = {"errno": exc.errno or errno.EIO, "error": str(exc)}
        except BaseException as exc:  # report, never unwind into the parent's code
            payload = {"errno": errno.EIO, "error": f"{type(exc).__name__}: {exc}"}
        try:
            os.write(wfd, json.dumps(payload).encode())
        finally:
            os._exit(0)
    os.close(wfd)
    chunks = []
    while chunk := os.read(rfd, 65536):
        chunks.append(chunk)
    os.close(rfd)
    os.waitpid(pid, 0)
    result = json.loads(b"".join(chunks) or b'{"errno": 5, "error": "child died"}')
    if "ok" in result:
        return result["ok"]
    raise OSError(result["errno"], result["error"])
