"""Root: the one way lockdownctl reads the host.

Every host path is read through a :class:`Root` (default ``/``), so every
reader works on a fixture tree (``--root``) exactly as on the live system.
Pseudo file systems that may not be mounted (securityfs, tracefs, bpffs) are
reached on the live system by :func:`in_private_mounts`, which mounts them in
a child process inside its own mount namespace: the host's mount table is
never changed (docs/design.md section 5).

Every path of a root other than ``/`` is resolved inside it, as
openat2(RESOLVE_IN_ROOT) and systemd's ``--root`` (chase()) resolve it: an
absolute symlink starts again at the root and ``..`` stops there, so a link
in an image (``proc/config.gz -> /proc/config.gz``) never reaches the host's
files, and a write through a symlink (``etc/default/grub``) lands on the
link's target inside the root.

Plain ``os.path`` strings and classes (no pathlib, no dataclasses): ``status``
must start fast (benchmarks/startup.py).
"""

from __future__ import annotations

import errno
import marshal
import os

from .errors import InputError, LockdownctlError
from .mountinfo import mounts

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class Unreadable:
    """A file that exists but could not be read, and why (for the report)."""

    __slots__ = ("path", "why")

    def __init__(self, path: str, why: str) -> None:
        self.path = path
        self.why = why

    def __repr__(self) -> str:
        return f"Unreadable({self.path!r}, {self.why!r})"


MAXSYMLINKS = 40  # the kernel's limit on links followed in one lookup (include/linux/namei.h)


class Root:
    def __init__(self, path: str | os.PathLike[str] = "/") -> None:
        self.path = os.fspath(path)
        if not os.path.isdir(self.path):
            raise InputError(f"{self.path}: --root is not a directory")
        self.live = os.path.realpath(self.path) == "/"

    def __truediv__(self, rel: str) -> str:
        """The host path of ``rel``, resolved inside the root (see :meth:`resolve`).

        A symlink loop is an InputError naming the path (there is no file to give)."""
        try:
            return self.resolve(rel)
        except OSError as exc:
            raise InputError(f"{self.display(rel)}: {exc.strerror}") from None

    def resolve(self, rel: str, follow: bool = True) -> str:
        """``rel`` with every symlink followed inside the root; OSError(ELOOP) on a loop.

        Components are resolved one by one from the root, as the kernel does
        for openat2(RESOLVE_IN_ROOT): an absolute target restarts at the root,
        ``..`` never climbs above it. A component that is absent or not a
        directory is kept as written (the open that follows reports it).
        ``follow`` False leaves the last component unresolved (readlink).
        The result is below ``self.path`` as given, so os.path.relpath()
        against it works. The live root ``/`` needs none of this.
        """
        if self.live:
            return os.path.join(self.path, rel.lstrip("/"))
        done: list[str] = []
        todo = rel.split("/")[::-1]  # a stack: the next component is last
        links = 0
        while todo:
            name = todo.pop()
            if name in ("", "."):
                continue
            if name == "..":
                if done:
                    done.pop()
                continue
            if not follow and not any(n not in ("", ".") for n in todo):
                done.append(name)
                break
            try:
                target = os.readlink(os.path.join(self.path, *done, name))
            except OSError:  # not a link, absent, or below a non-directory
                done.append(name)
                continue
            links += 1
            if links > MAXSYMLINKS:
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), self.display(rel))
            if target.startswith("/"):
                done.clear()
            todo.extend(target.split("/")[::-1])
        return os.path.join(self.path, *done)

    def display(self, rel: str) -> str:
        """The path as users should see it in messages (as written, links not followed)."""
        return os.path.join(self.path, rel.lstrip("/"))

    def read_bytes(self, rel: str) -> bytes | Unreadable | None:
        """File contents; None when absent; Unreadable when present but refused."""
        try:
            with open(self.resolve(rel), "rb") as fh:
                return fh.read()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            return Unreadable(self.display(rel), exc.strerror or str(exc))

    def read_text(self, rel: str) -> str | Unreadable | None:
        data = self.read_bytes(rel)
        if isinstance(data, bytes):
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"{self.display(rel)}: not text: invalid UTF-8 at byte {exc.start}") from None
        return data

    def exists(self, rel: str) -> bool:
        try:
            return os.path.exists(self.resolve(rel))
        except OSError:
            return False

    def listdir(self, rel: str) -> list[str]:
        try:
            return sorted(os.listdir(self.resolve(rel)))
        except OSError:
            return []

    def readlink(self, rel: str) -> str | None:
        """A symlink's target as stored (never followed: /proc/PID/fd links
        name objects of the host, and fixture links may dangle)."""
        try:
            return os.readlink(self.resolve(rel, follow=False))
        except OSError:
            return None

    def is_dir(self, rel: str) -> bool:
        try:
            return os.path.isdir(self.resolve(rel))
        except OSError:
            return False

    def osrelease(self) -> str | None:
        """``uname -r`` of the kernel this root describes."""
        text = self.read_text("proc/sys/kernel/osrelease")
        if isinstance(text, str) and text.strip():
            release = text.strip()
            # It names directories (/lib/modules/RELEASE, /boot/config-RELEASE):
            # one printable word without a slash, as utsname's release is.
            if not release.isprintable() or any(c.isspace() or c == "/" for c in release):
                raise InputError(f"{self.display('proc/sys/kernel/osrelease')}: malformed kernel release {release!r}")
            return release
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


def private_mounts(fstypes: list[str], writable: tuple[str, ...] = ()) -> None:
    """In the calling process: unshare the mount namespace, make it private,
    mount what is missing (read-only unless listed in ``writable``). Only ever
    called in a child process."""
    from . import libc

    what = "unshare(CLONE_NEWNS)"
    try:
        libc.unshare(CLONE_NEWNS)
        what = "mount --make-rprivate /"
        libc.mount(None, "/", None, MS_REC | MS_PRIVATE)
        mounted = mounts()
        for fstype in fstypes:
            target = PSEUDO_FS[fstype]
            if (target, fstype) not in mounted:
                what = f"mount -t {fstype} {target}"
                flags = MS_NOSUID | MS_NODEV | MS_NOEXEC | (0 if fstype == "bpf" or fstype in writable else MS_RDONLY)
                libc.mount(fstype, target, fstype, flags)
    except OSError as exc:  # the call that failed, as the user would type it
        raise OSError(exc.errno, f"{what}: {os.strerror(exc.errno or 0)}") from None


class Child:
    """``fn`` running in a forked child; :meth:`result` collects its value.

    The value travels through a pipe with marshal (built in, so the child
    needs no import for it): plain dicts, lists, strings and numbers.

    Lets a reader work in parallel with the parent (status forks one child for
    the kernel-side reads while the parent reads files) and lets the child
    change its mount namespace without touching the parent's.
    """

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._rfd, wfd = os.pipe()
        self._pid = os.fork()
        if self._pid == 0:  # child: never return into the caller's stack
            os.close(self._rfd)
            payload: dict[str, Any]
            try:
                payload = {"ok": fn()}
            except LockdownctlError as exc:  # re-raised as the same class in the parent
                payload = {"error_class": type(exc).__name__, "message": exc.message}
            except OSError as exc:
                payload = {"errno": exc.errno or 5, "error": str(exc)}
            except BaseException as exc:  # report, never unwind into the parent's code
                payload = {"errno": 5, "error": f"{type(exc).__name__}: {exc}"}
            try:
                data = marshal.dumps(payload)
                while data:
                    data = data[os.write(wfd, data) :]
            finally:
                os._exit(0)
        os.close(wfd)

    def discard(self) -> None:
        """Wait for the child and drop its result (the command ended early)."""
        try:  # noqa: SIM105 (contextlib costs start-up time)
            self.result()
        except OSError:
            pass

    def result(self) -> Any:
        chunks = []
        while chunk := os.read(self._rfd, 65536):
            chunks.append(chunk)
        os.close(self._rfd)
        os.waitpid(self._pid, 0)
        try:
            result = marshal.loads(b"".join(chunks))
        except (EOFError, ValueError, TypeError):
            result = {"errno": 5, "error": "child process died"}
        if "ok" in result:
            return result["ok"]
        if "error_class" in result:
            from . import errors

            raise getattr(errors, result["error_class"], LockdownctlError)(result["message"])
        raise OSError(result["errno"], result["error"])


def in_private_mounts(fstypes: list[str], fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in a child with ``fstypes`` mounted in a private namespace.

    Needs CAP_SYS_ADMIN; raises OSError with the child's errno otherwise.
    """

    def run() -> Any:
        private_mounts(fstypes)
        return fn()

    return Child(run).result()
