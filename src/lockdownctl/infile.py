"""Files the user names on the command line: read whole, every failure one
line naming the file (never a Python repr or codec text), ``-`` for stdin
where a verb allows it."""

from __future__ import annotations

import os
import sys

from .errors import InputError

STDIN = "-"


def read_bytes(path: str, what: str, stdin: bool = False) -> bytes:
    """The bytes of ``path`` (``what`` names it in messages: "kernel config")."""
    if stdin and path == STDIN:
        try:
            return sys.stdin.buffer.read()
        except (OSError, ValueError, AttributeError) as exc:  # closed or missing stdin
            raise InputError(f"-: cannot read {what} from standard input: "
                             f"{getattr(exc, 'strerror', None) or 'not readable'}") from None
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a {what}") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what}: {exc.strerror or 'I/O error'}") from None


def decode_text(data: bytes, path: str) -> str:
    """UTF-8 text, or one line saying where it stops being text."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not text: invalid UTF-8 at byte {exc.start}") from None


def read_text(path: str, what: str, stdin: bool = False) -> str:
    return decode_text(read_bytes(path, what, stdin), path)


def looks_like_path(arg: str) -> bool:
    """An option that takes a string or a file (``audit --cmdline``): a file
    when it names one, or when it has the shape of a path (a ``/``, no blank,
    no ``=``; a command line with ``root=/dev/sda1`` has an ``=``)."""
    if os.path.lexists(arg):
        return True
    return "/" in arg and "=" not in arg and not any(c.isspace() for c in arg)
