"""Where ``watch`` reads events from: a file or stdin, /dev/kmsg, the journal, saved events.

Each source is an iterator of :class:`~lockdownctl.events.Event`; ``--follow``
sources block for new lines until :class:`Stop` is raised (by the SIGINT /
SIGTERM handler in ``cli/watch.py``).
"""

from __future__ import annotations

import errno
import json
import os
import stat
import time
from collections.abc import Iterator

from ..errors import FeatureMissing, InputError, NeedsRoot
from ..events import Event
from ..host.kmsg import KMSG, read_kernel_log
from ..root import Root, Unreadable
from .parser import (
    JSON_ARRAY_MESSAGES,
    MARKERS,
    MAX_LINE,
    RAW_MAX,
    candidate,
    classify,
    parse_line,
    scan_block,
    split_prefix,
)

CHUNK = 1 << 22
POLL_SECONDS = 0.25  # --follow on a regular file: how often to look for more


class Stop(Exception):
    """Raised by the signal handler to end a --follow loop cleanly."""


class Counter:
    """Lines read by a source (for the summary); None when it cannot know."""

    def __init__(self) -> None:
        self.lines: int | None = 0
        self.lost = 0  # /dev/kmsg records overwritten before we read them
        self.bytes: int | None = None  # bytes of a file or stdin (0: an empty source); None: not counted


SNIFF_BYTES = 1 << 20  # a kernel log shows its format in its first MiB
SNIFF_LINES = 4096


def known_line(line: str) -> bool:
    """Whether a line has the shape of a kernel-log line in a format watch
    reads: a timestamp prefix (dmesg, dmesg -T, -x, /dev/kmsg records, syslog)
    or a journalctl -o json object with a MESSAGE."""
    if line.startswith("{"):
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):
            return False
        return isinstance(obj, dict) and "MESSAGE" in obj
    seconds, wall, _pid, _text = split_prefix(line[:RAW_MAX])
    if seconds is not None or wall is not None:
        return True
    # classic syslog and journalctl's short format: "Dec  6 17:00:01 host kernel: ..."
    # (split_prefix takes the message, but has no time to give without a printk stamp)
    head, sep, _rest = line.partition(" kernel: ")
    return bool(sep) and len(head) < 80 and head[:3] in _MONTHS and head[3:4] == " "


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class Sniffer:
    """Decides, from the head of a file or stream, whether it is a kernel log
    at all: "0 denials" is a verdict only about a log that was understood."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.head = bytearray()
        self.total = 0
        self.recognised = False

    def feed(self, buf: bytes) -> None:
        self.total += len(buf)
        if not self.recognised and len(self.head) < SNIFF_BYTES:
            self.head += buf[: SNIFF_BYTES - len(self.head)]

    def judge(self, events: int) -> None:
        """InputError unless the input is empty, held a lockdown event, or has
        at least one line in a known format."""
        if self.total == 0 or events or self.recognised:
            return
        lines = bytes(self.head).split(b"\n")[:SNIFF_LINES]
        for raw in lines:
            if known_line(raw.decode("utf-8", "replace").rstrip("\r")):
                self.recognised = True
                return
        head = bytes(self.head)
        try:
            head.decode("utf-8")
            bad = -1
        except UnicodeDecodeError as exc:  # (a character cut at the end of the head is not binary)
            bad = exc.start if exc.start < len(head) - 3 else -1
        nul = head.find(b"\0")
        if nul >= 0 and (bad < 0 or nul < bad):
            raise InputError(f"{self.name}: not text: NUL byte at byte {nul}: not a kernel log")
        if bad >= 0:
            raise InputError(f"{self.name}: not text: invalid UTF-8 at byte {bad}: not a kernel log")
        lines = [line for line in lines if line.strip()]
        count = len(lines) if len(head) < SNIFF_BYTES else f"the first {len(lines)}"
        raise InputError(f"{self.name}: not a kernel log: none of {count} line(s) has the form of "
                         "dmesg, dmesg -T, /dev/kmsg, syslog or journalctl -o json lines")


def read_fd(fd: int, source: str, counter: Counter, follow: bool = False, name: str | None = None) -> Iterator[Event]:
    """Events of a byte stream (file or pipe), chunk by chunk; ``name`` (the
    path, ``-``) is what messages call it. Not a kernel log: InputError."""
    name = name or source
    sniffer = Sniffer(name)
    counter.bytes = 0
    events = 0
    carry = b""
    skipping = False  # inside a line longer than MAX_LINE: drop until its end
    lineno = 1
    first = True
    json_lines = False
    while True:
        try:
            buf = os.read(fd, CHUNK)
        except OSError as exc:
            raise InputError(f"{name}: read error: {exc.strerror}") from None
        if not buf:
            if follow:
                if sniffer.total and not sniffer.recognised:  # judge what came so far, once
                    sniffer.judge(events)
                    sniffer.recognised = True
                time.sleep(POLL_SECONDS)
                continue
            break
        sniffer.feed(buf)
        counter.bytes = sniffer.total
        if first:
            json_lines = b'"MESSAGE":' in buf  # journal JSON: also find byte-array messages
            first = False
        if skipping:
            nl = buf.find(b"\n")
            if nl < 0:
                continue
            buf = buf[nl + 1 :]
            skipping = False
            lineno += 1
        data = carry + buf if carry else buf
        end = data.rfind(b"\n") + 1
        if end == 0:
            carry = data
            if len(carry) > MAX_LINE:  # scan what we have as one line, skip its rest
                found, _ = scan_block(carry, len(carry), source, lineno, json_lines)
                events += len(found)
                yield from found
                carry = b""
                skipping = True
            continue
        found, newlines = scan_block(data, end, source, lineno, json_lines)
        lineno += newlines
        counter.lines = lineno - 1
        events += len(found)
        yield from found
        carry = data[end:]
    if carry:
        found, _ = scan_block(carry, len(carry), source, lineno, json_lines)
        events += len(found)
        yield from found
    if carry or skipping:  # a last line without a newline (of any length) is a line
        lineno += 1
    counter.lines = lineno - 1
    sniffer.judge(events)


# grep -F finds all markers in one pass (several times faster than a Python
# bytes.find pass per marker); byte-array journal messages are markers too.
GREP_PATTERNS = (*MARKERS, *JSON_ARRAY_MESSAGES)


def grep_prefilter(fd: int, source: str, name: str) -> Iterator[Event] | None:
    """Events of a regular file whose candidate lines ``grep -a -n -F`` selected
    (it reads ``fd`` as its stdin); None when there is no grep."""
    import shutil
    import subprocess

    grep = shutil.which("grep")
    if grep is None:
        return None
    cmd = [grep, "-a", "-n", "-F"]
    for pattern in GREP_PATTERNS:
        cmd += ["-e", pattern]
    proc = subprocess.Popen(cmd, stdin=fd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def events() -> Iterator[Event]:
        assert proc.stdout is not None and proc.stderr is not None
        try:
            for line in proc.stdout:
                number, _, text = line.partition(b":")
                text = text.removesuffix(b"\n")[:MAX_LINE]
                event = parse_line(text.decode("utf-8", "replace"), source, int(number))
                if event is not None:
                    yield event
            err = proc.stderr.read().decode("utf-8", "replace").strip()
            if proc.wait() > 1:  # 1: nothing matched
                raise InputError(f"{name}: grep failed: {err.splitlines()[0] if err else proc.returncode}")
        finally:
            if proc.poll() is None:  # we started it: end it by its pid
                proc.kill()
                proc.wait()

    return events()


def read_path(path: str, counter: Counter, follow: bool = False, source: str = "file",
              prefilter: bool = True) -> Iterator[Event]:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a log file") from None
    except OSError as exc:  # a file named on the command line: exit 2 like every reader, root or not
        raise InputError(f"{path}: cannot read: {exc.strerror or 'I/O error'}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):  # open(2) of a directory succeeds; its read fails
            raise InputError(f"{path}: is a directory, not a log file")
        fast = None
        if prefilter and not follow and stat.S_ISREG(mode):
            fast = grep_prefilter(fd, source, path)
        if fast is not None:
            counter.lines = None  # grep does not count the lines it skips
            sniffer = Sniffer(path)
            try:
                sniffer.feed(os.pread(fd, SNIFF_BYTES, 0))
            except OSError as exc:
                raise InputError(f"{path}: read error: {exc.strerror}") from None
            counter.bytes = sniffer.total = os.fstat(fd).st_size
            events = 0
            for event in fast:
                events += 1
                yield event
            sniffer.judge(events)
        else:
            yield from read_fd(fd, source, counter, follow, name=path)
    finally:
        os.close(fd)


def _kmsg_refused(path: str, why: str) -> Exception:
    if os.geteuid() != 0:
        return NeedsRoot(f"{path}: {why}: reading the kernel log needs root or CAP_SYSLOG "
                         "(kernel.dmesg_restrict=1)")
    return InputError(f"{path}: {why}")


def read_kmsg(root: Root, counter: Counter, follow: bool, since_boot: bool) -> Iterator[Event]:
    """The kernel ring buffer: everything since boot, or (``follow``) new records."""
    path = root / KMSG
    if not root.live and os.path.isfile(path):  # a saved log in a fixture root: any format
        yield from read_path(path, counter, follow, "kmsg")
        return
    if not follow:
        lines = read_kernel_log(root, want=candidate)
        if lines is None:
            raise FeatureMissing(f"{path}: no kernel log (no /dev/kmsg)")
        if isinstance(lines, Unreadable):
            raise _kmsg_refused(lines.path, lines.why)
        counter.lines = None
        for rec in lines:
            event = classify(rec.text, rec.text, "kmsg", rec.lineno or None, rec.seconds)
            if event is not None:
                yield event
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise FeatureMissing(f"{path}: no kernel log (no /dev/kmsg)") from None
    except OSError as exc:
        raise _kmsg_refused(path, exc.strerror or str(exc)) from None
    counter.lines = None
    try:
        if not since_boot:
            os.lseek(fd, 0, os.SEEK_END)  # /dev/kmsg: SEEK_END = after the newest record
        expect = -1  # the sequence number of the next record
        while True:
            try:
                record = os.read(fd, 8192)
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # overwritten before we read them: the next record's
                    continue  # sequence number says how many (one EPIPE stands for any number)
                raise InputError(f"{path}: read error: {exc.strerror}") from None
            if not record:
                break
            seq = record_seq(record)
            if seq is not None:
                if expect >= 0 and seq > expect:
                    counter.lost += seq - expect
                expect = seq + 1
            event = parse_line(record.decode("utf-8", "replace").split("\n", 1)[0], "kmsg")
            if event is not None:
                yield event
    finally:
        os.close(fd)


def record_seq(record: bytes) -> int | None:
    """The sequence number of a /dev/kmsg record (``pri,seq,usec,flags;text``), None if damaged."""
    fields = record[:64].split(b";", 1)[0].split(b",")
    if len(fields) >= 3 and fields[1].isdigit():
        return int(fields[1])
    return None


def journal_command(root: Root, follow: bool, since_boot: bool) -> list[str]:
    """The journalctl command line, or FeatureMissing when there is no journal."""
    import shutil

    exe = shutil.which("journalctl")
    if exe is None:
        raise FeatureMissing("journalctl not found: no systemd journal on this system")
    cmd = [exe, "-k", "-o", "json", "--no-pager"]
    if root.live:
        if not os.path.exists("/run/systemd/journal") and not os.path.isdir("/var/log/journal"):
            raise FeatureMissing("journald is not running (no /run/systemd/journal) and "
                                 "/var/log/journal does not exist")
    else:
        directory = root / "var/log/journal"
        if not os.path.isdir(directory):
            raise FeatureMissing(f"{directory}: no journal in this root")
        cmd.append(f"--directory={directory}")
    if follow:
        cmd += ["-f", "-n", "all" if since_boot else "0"]
    return cmd


def _no_kernel_messages(err: str) -> FeatureMissing:
    # journalctl says "No journal files were found." (or nothing at all, exit 0)
    # when there is no journal: that is not a clean journal (lockdownctl(8): exit 3).
    said = f" ({err.splitlines()[0]})" if err else ""
    return FeatureMissing(f"journal: journalctl -k printed no kernel messages{said}: no journal to read "
                          "(read the kernel log without --journal, or a saved log as FILE)")


def journal_has_kernel_messages(root: Root) -> None:
    """FeatureMissing unless the journal holds at least one kernel message
    (before --follow, which would otherwise wait on nothing)."""
    import subprocess

    cmd = [*journal_command(root, False, False), "-n", "1"]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FeatureMissing(f"journalctl -k failed: {getattr(exc, 'strerror', None) or 'timed out'}") from None
    err = proc.stderr.decode("utf-8", "replace").strip()
    if proc.returncode != 0:
        raise FeatureMissing(f"journalctl -k failed: {err.splitlines()[0] if err else proc.returncode}")
    if not proc.stdout.strip():
        raise _no_kernel_messages(err)


def read_journal(root: Root, counter: Counter, follow: bool, since_boot: bool) -> Iterator[Event]:
    import subprocess

    if follow:
        journal_has_kernel_messages(root)
    cmd = journal_command(root, follow, since_boot)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    lines = 0
    try:
        for line in proc.stdout:
            lines += 1
            counter.lines = lines
            event = parse_line(line.decode("utf-8", "replace"), "journal", None)
            if event is not None:
                yield event
        err = proc.stderr.read().decode("utf-8", "replace").strip()
        if proc.wait() != 0:
            first = err.splitlines()[0] if err else f"exit status {proc.returncode}"
            raise FeatureMissing(f"journalctl -k failed: {first}")
        if lines == 0 and not follow:
            raise _no_kernel_messages(err)
    finally:
        if proc.poll() is None:  # we started it: end it by its pid
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def read_events(path: str) -> list[Event]:
    """Saved events: JSON lines of Event dicts (``watch --json``, ``enforce events
    --follow --json``; envelope lines are skipped), or one JSON document holding
    a list of them (``enforce events --json``)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_events(data, path)


def parse_events(data: bytes, path: str) -> list[Event]:
    """The events in ``data``, the contents of ``path`` (see read_events)."""
    text = data.decode("utf-8", "replace")
    try:  # one JSON document: an envelope ({"data": {"events": [...]}}) or a list of events
        whole = json.loads(text)
    except ValueError:
        whole = None
    if isinstance(whole, dict) and isinstance(whole.get("data"), dict):
        whole = whole["data"].get("events")
    if isinstance(whole, list):
        try:
            return [Event.from_dict(item) for item in whole]
        except (ValueError, TypeError) as exc:
            raise InputError(f"{path}: {exc}") from None
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:  # its msg and column, not Python's whole sentence
            raise InputError(f"{path}:{number}: not a JSON event: {exc.msg} at column {exc.colno}") from None
        except ValueError:  # e.g. a number too long to convert
            raise InputError(f"{path}:{number}: not a JSON event") from None
        if isinstance(obj, dict) and "lockdownctl" in obj:
            continue
        try:
            out.append(Event.from_dict(obj))
        except (ValueError, TypeError) as exc:
            raise InputError(f"{path}:{number}: {exc}") from None
    return out
