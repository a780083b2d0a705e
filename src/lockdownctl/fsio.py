"""Writing a file so that a crash leaves the old contents or the new, never a mix.

One writer for every file lockdownctl replaces: boot configuration, its
backups and manifest (boot/engine.py) and the enforcer's state file
(state/pins.py). tests/unit/test_crash_consistency.py kills writers at every
fsync, rename and unlink.
"""

from __future__ import annotations

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
