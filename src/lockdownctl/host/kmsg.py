"""The kernel log: ``/dev/kmsg`` records, or a saved log in a fixture root.

``/dev/kmsg`` returns one record per read() (``pri,seq,usec,flags;text``,
Documentation/ABI/testing/dev-kmsg); a fixture root may hold the same
format or plain ``dmesg`` output in a regular file at ``dev/kmsg``.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from dataclasses import dataclass

from ..root import Root, Unreadable

KMSG = "dev/kmsg"
_KMSG_RECORD = re.compile(r"^(\d+),(\d+),(\d+),[^;]*;(.*)$")
_DMESG = re.compile(r"^\[\s*(\d+\.\d+)\]\s?(.*)$")


@dataclass(frozen=True)
class LogLine:
    seconds: float | None  # since boot
    text: str
    lineno: int = 0  # line in a saved log (0 for live records)


def parse_log_line(line: str, lineno: int = 0) -> LogLine | None:
    """One kmsg record or dmesg line; None for kmsg continuation lines."""
    if line.startswith(" "):  # kmsg dictionary continuation (" SUBSYSTEM=...")
        return None
    if match := _KMSG_RECORD.match(line):
        return LogLine(int(match.group(3)) / 1e6, match.group(4), lineno)
    if match := _DMESG.match(line):
        return LogLine(float(match.group(1)), match.group(2), lineno)
    return LogLine(None, line, lineno)


def parse_log(text: str) -> list[LogLine]:
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if (parsed := parse_log_line(line, number)) is not None:
            out.append(parsed)
    return out


def _read_kmsg_device(path: str) -> list[LogLine]:
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    out = []
    try:
        while True:
            try:
                record = os.read(fd, 8192)
            except OSError as exc:
                if exc.errno == errno.EAGAIN:
                    break
                if exc.errno == errno.EPIPE:  # overwritten while reading: go on
                    continue
                raise
            if not record:
                break
            line = record.decode("utf-8", "replace").split("\n", 1)[0]
            if (parsed := parse_log_line(line)) is not None:
                out.append(parsed)
    finally:
        os.close(fd)
    return out


def read_kernel_log(root: Root) -> list[LogLine] | Unreadable | None:
    path = root / KMSG
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        return Unreadable(str(path), exc.strerror or str(exc))
    try:
        if stat.S_ISCHR(mode):
            return _read_kmsg_device(str(path))
        data = root.read_bytes(KMSG)
    except OSError as exc:
        return Unreadable(str(path), exc.strerror or str(exc))
    if not isinstance(data, bytes):
        return data
    return parse_log(data.decode("utf-8", "replace"))
