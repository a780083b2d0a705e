"""Writing a file so that a crash leaves the old contents or the new, never a mix.

One writer for every file lockdownctl replaces: boot configuration, its
backups and manifest (boot/engine.py) and the enforcer's state file
(state/pins.py). tests/unit/test_crash_consistency.py kills writers at every
fsync, rename and unlink.
"""

from __future__ import annotations

import contextlib
import os
import tempfile


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, text: str | bytes, mode: int = 0o644) -> None:
    """Write ``text`` to ``path``: temp file in the same directory, fsync, rename
    (never half a file: configuration files and their backups alike).

    An existing file keeps its mode and owner.
    """
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    try:
        st: os.stat_result | None = os.stat(path)
    except FileNotFoundError:
        st = None
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".lockdownctl", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode("utf-8") if isinstance(text, str) else text)
            fh.flush()
            os.fchmod(fh.fileno(), (st.st_mode & 0o7777) if st else mode)
            if st is not None and os.geteuid() == 0:
                os.fchown(fh.fileno(), st.st_uid, st.st_gid)
            os.fsync(fh.fileno())
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


class Reservation:
    """Room for a file's next contents, taken before the change those contents record.

    ``enforce apply`` changes the kernel, then saves what it loaded: on a full
    disk the save would fail after the change, leaving a state file that no
    longer says what runs. So the room is taken first (a temp file of ``size``
    bytes beside ``path``, written and synced: the disk is full now or never
    for this file) and :meth:`commit` later overwrites those bytes in place,
    truncates, syncs and renames: no new block is needed unless the contents
    outgrew the room. Nothing replaces ``path`` before :meth:`commit`.
    """

    def __init__(self, path: str, size: int, mode: int = 0o644) -> None:
        self.path = path
        self.size = size
        self.mode = mode
        self.directory = os.path.dirname(path) or "."
        fd, self.tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".lockdownctl",
                                        dir=self.directory)
        self.fd: int | None = fd
        try:
            chunk = b"\n" * min(size, 65536)
            left = size
            while left > 0:  # os.write may write less than asked
                left -= os.write(fd, chunk[:left])
            os.fsync(fd)
        except BaseException:
            self.abort()
            raise

    def commit(self, text: str | bytes) -> None:
        """Replace ``path`` with ``text`` (old or new contents after a crash, never a mix)."""
        fd = self.fd
        assert fd is not None, "commit after abort or commit"
        data = text.encode("utf-8") if isinstance(text, str) else text
        try:
            try:
                st: os.stat_result | None = os.stat(self.path)
            except FileNotFoundError:
                st = None
            done = 0
            while done < len(data):
                done += os.pwrite(fd, data[done:], done)
            os.ftruncate(fd, len(data))
            os.fchmod(fd, (st.st_mode & 0o7777) if st else self.mode)
            if st is not None and os.geteuid() == 0:
                os.fchown(fd, st.st_uid, st.st_gid)
            os.fsync(fd)
            os.rename(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise
        os.close(fd)
        self.fd = None
        self.tmp = ""  # renamed: nothing to give back
        fsync_dir(self.directory)

    def abort(self) -> None:
        """Give the room back (best effort: on a read-only file system the temp file stays)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.tmp:
            with contextlib.suppress(OSError):
                os.unlink(self.tmp)
            self.tmp = ""
