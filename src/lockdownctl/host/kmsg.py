"""The kernel log: the live ring buffer, or a saved log in a fixture root.

Live: syslog(2) SYSLOG_ACTION_READ_ALL returns the whole buffer in one call
(``<pri>[seconds] text`` lines), where ``/dev/kmsg`` needs one read() per
record; both need CAP_SYSLOG unless kernel.dmesg_restrict is 0. ``/dev/kmsg``
(``pri,seq,usec,flags;text``, Documentation/ABI/testing/dev-kmsg) is the
fallback. A fixture root holds either format, or plain ``dmesg`` output, in a
regular file at ``dev/kmsg``.
"""

from __future__ import annotations

import errno
import os
import stat

from ..root import Root, Unreadable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

KMSG = "dev/kmsg"
SYSLOG_ACTION_READ_ALL = 3
SYSLOG_ACTION_SIZE_BUFFER = 10


class LogLine:
    __slots__ = ("lineno", "seconds", "text")

    def __init__(self, seconds: float | None, text: str, lineno: int = 0) -> None:
        self.seconds = seconds  # since boot
        self.text = text
        self.lineno = lineno  # line in a saved log (0 for live records)

    def __repr__(self) -> str:
        return f"LogLine({self.seconds!r}, {self.text!r}, {self.lineno})"


def parse_log_line(line: str, lineno: int = 0) -> LogLine | None:
    """One kmsg record (``pri,seq,usec,flags;text``), syslog(2) or dmesg line
    (``<pri>[  seconds] text``, both parts optional); None for kmsg
    continuation lines. str methods, not regular expressions: the live path
    runs on every ``status``."""
    if line.startswith(" "):  # kmsg dictionary continuation (" SUBSYSTEM=...")
        return None
    head, sep, text = line.partition(";")
    # A record's prefix has no blank (flags, caller=T1): "...restricted; see man" in a
    # damaged record is message text. ASCII digits only: int() refuses "²", isdigit() not.
    if sep and " " not in head and head.isascii():
        fields = head.split(",")
        if len(fields) >= 4 and fields[0].isdigit() and fields[1].isdigit() and fields[2].isdigit():
            return LogLine(int(fields[2]) / 1e6, text, lineno)
    rest = line
    if rest.startswith("<") and (close := rest.find(">")) > 1 and rest[1:close].isdigit():
        rest = rest[close + 1 :]
    if rest.startswith("[") and (close := rest.find("]")) > 0:
        stamp = rest[1:close].strip(" ")
        whole, dot, frac = stamp.partition(".")
        if dot and stamp.isascii() and whole.isdigit() and frac.isdigit():
            text = rest[close + 1 :]
            return LogLine(float(stamp), text[1:] if text.startswith(" ") else text, lineno)
    return LogLine(None, line, lineno)


def parse_log(text: str, numbered: bool = True, want: Callable[[str], bool] | None = None) -> list[LogLine]:
    """Parse a saved log; ``numbered`` keeps line numbers (for evidence in
    files); ``want`` keeps only the lines it accepts (tested before parsing)."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if want is not None and not want(line):
            continue
        if (parsed := parse_log_line(line, number if numbered else 0)) is not None:
            out.append(parsed)
    return out


def _read_kmsg_device(path: str, want: Callable[[str], bool] | None) -> list[LogLine]:
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
            if want is not None and not want(line):
                continue
            if (parsed := parse_log_line(line)) is not None:
                out.append(parsed)
    finally:
        os.close(fd)
    return out


def read_syslog(want: Callable[[str], bool] | None = None) -> list[LogLine] | None:
    """The live ring buffer through syslog(2); None when the kernel refuses."""
    import ctypes

    from .. import libc

    try:
        size = libc.klogctl(SYSLOG_ACTION_SIZE_BUFFER, None, 0)
        if size <= 0:
            return None
        buf = ctypes.create_string_buffer(size)
        got = libc.klogctl(SYSLOG_ACTION_READ_ALL, buf, size)
    except OSError:  # EPERM under dmesg_restrict without CAP_SYSLOG: read /dev/kmsg instead
        return None
    return parse_log(buf.raw[:got].decode("utf-8", "replace"), numbered=False, want=want)


def read_kernel_log(root: Root, want: Callable[[str], bool] | None = None) -> list[LogLine] | Unreadable | None:
    """The kernel log, optionally only the lines ``want`` accepts."""
    if root.live and (lines := read_syslog(want)) is not None:
        return lines
    path = root / KMSG
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        return Unreadable(str(path), exc.strerror or str(exc))
    try:
        if stat.S_ISCHR(mode):
            return _read_kmsg_device(str(path), want)
        data = root.read_bytes(KMSG)
    except OSError as exc:
        return Unreadable(str(path), exc.strerror or str(exc))
    if not isinstance(data, bytes):
        return data
    return parse_log(data.decode("utf-8", "replace"), want=want)
