"""klog/parser.py as it was before its marker tests and the denial search
were bounded in C (main at e1e8e21): the reference for
tests/unit/test_lexer_differential.py."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from lockdownctl.events import Event
from lockdownctl.host.kmsg import parse_log_line
from lockdownctl.klog import SYSRQ_LIFT, level_set
from lockdownctl.reasons import TABLE, Reason, reason_from_phrase

RAW_MAX = 4096  # printk records are at most 1024 bytes; more is not a kernel line
MAX_LINE = 1 << 20  # a longer "line" is scanned in its first MiB only

# Every line this parser turns into an event contains one of these (the
# level-set, AVC, rate-limit and tracing lines all contain "down").
MARKERS = ("down", "tracefs", "rejected")
BYTE_MARKERS = tuple(m.encode() for m in MARKERS)
# journald stores non-UTF-8 messages as byte arrays (spacing differs between versions)
JSON_ARRAY_MESSAGES = ('"MESSAGE":[', '"MESSAGE": [', '"MESSAGE" : [')
# A line with one of these that matches no dialect is reported as "unparsed".
LOOKS_LIKE_LOCKDOWN = ("Lockdown", "locked down", "due to lockdown", "tclass=lockdown", "lockdown_reason",
                       "lockdown_is_locked_down")
# A denial: security/lockdown/lockdown.c lockdown_is_locked_down() (reasons.DENIAL_FORMAT), the
# pre-5.4 __kernel_is_locked_down() (no comm before 2018), SUSE's "Lockdown early:", and any
# ending ("; see man kernel_lockdown.7", Debian's "; see https://wiki.debian.org/SecureBoot").
DENIAL_MARK = "Lockdown"

_LEVEL = {r.id: r.level for r in TABLE}

_DENIAL = re.compile(r"Lockdown( early)?: (.*?) is restricted")
_AVC = re.compile(r"avc:\s+(denied|granted)\s+\{\s*([^}]*?)\s*\}")
_AVC_FIELD = re.compile(r'(\w+)=("[^"]*"|\S+)')
_TRACEFS = re.compile(r"Could not create tracefs '([^']*)' entry")
_TRACER = re.compile(r"Can not register tracer (\S+) due to lockdown")
_MODULE = re.compile(r"(?:(\S+): )?[Ll]oading of (unsigned module|module with \S.*?) is rejected")
_SUPPRESSED = re.compile(r"(\S+): (\d+) callbacks suppressed")
_DMESG_X = re.compile(r"[a-z]+ *:[a-z]+ *: ")
_HEX = re.compile(r"(?:[0-9A-F]{2})+")

# Reason ids of the side effects (messages that are not "Lockdown:" lines).
SIDE_EFFECTS = {
    "kernel is locked down, ignoring table override": "acpi_tables",  # drivers/acpi/tables.c
    'Kernel is locked down, parameter "unrestricted" ignored': "xen_user_actions",  # drivers/xen/privcmd.c
}
TRACING_SIDE_EFFECT = "tracefs"  # kernel/trace/trace.c: every "... due to lockdown" message
MODULE_SIDE_EFFECT = "module_signature"  # module_sig_check() with enforcement on


def candidate(line: str) -> bool:
    """The cheap test every line passes before any parsing."""
    return "down" in line or "tracefs" in line or "rejected" in line


def _iso(seconds: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, tz=UTC).isoformat()


def _int(text: object) -> int | None:
    try:
        return int(text)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        return None


def split_prefix(line: str) -> tuple[float | None, str | None, int | None, str]:
    """(seconds since boot, wall time, caller pid, message) of one text line."""
    wall = None
    pid = None
    # The kernel pads the stamp with spaces; str.strip() and isdigit() would also pass
    # other Unicode blanks and digits ("\x1c3.3", "²") that float() refuses.
    if (line[:1] == "[" and (close := line.find("]", 1, 24)) > 0  # dmesg: the common case, fast
            and (stamp := line[1:close].strip(" ")).isascii() and stamp.replace(".", "", 1).isdigit()):
        seconds: float | None = float(stamp)
        text = line[close + 1 :]
        text = text[1:] if text[:1] == " " else text
        if text[:1] != "[":
            return seconds, None, None, text
        return _caller(seconds, None, None, text)
    rec = parse_log_line(line)
    if rec is None:  # a kmsg continuation line (" KEY=value"): keep it as text
        return None, None, None, line
    seconds, text = rec.seconds, rec.text
    if seconds is not None:
        if ";" in line and "caller=T" in line[: line.find(";")]:
            pid = _int(line[line.find("caller=T") + 8 : line.find(";")])
    elif line.startswith("["):  # dmesg -T: [Sat Nov 22 10:00:01 2025] text
        close = line.find("]")
        if 0 < close < 40:
            from datetime import datetime

            try:
                wall = datetime.strptime(line[1:close].strip(), "%a %b %d %H:%M:%S %Y").isoformat()
                text = line[close + 1 :].lstrip(" ")
            except ValueError:
                pass
    elif (m := _DMESG_X.match(line)) is not None:  # dmesg -x: "kern  :notice: [ 1.2] ..."
        sub = parse_log_line(line[m.end() :])
        if sub is not None:
            seconds, text = sub.seconds, sub.text
    else:
        head, sep, rest = line.partition(" kernel: ")
        # syslog / journalctl short: "<stamp> <host> kernel: ...": the head has no ": "
        # (else " kernel: " is inside the message, and the text before it is the message).
        if sep and len(head) < 80 and ": " not in head:
            if head[:4].isdigit():  # RFC 3339 stamp
                wall = head.split(" ", 1)[0]
            sub = parse_log_line(rest)
            if sub is not None:
                seconds, text = sub.seconds, sub.text
    return _caller(seconds, wall, pid, text)


def _caller(seconds: float | None, wall: str | None, pid: int | None,
            text: str) -> tuple[float | None, str | None, int | None, str]:
    if text.startswith("["):  # printk caller id (CONFIG_PRINTK_CALLER): "[ T1234] "
        close = text.find("]")
        inner = text[1:close].strip() if 0 < close < 16 else ""
        if inner[:1] in ("T", "C") and inner[1:].isdigit():
            if inner[0] == "T":
                pid = int(inner[1:])
            text = text[close + 1 :].lstrip(" ")
    return seconds, wall, pid, text


def _journal(line: str) -> tuple[float | None, str | None, str] | None:
    """(seconds since boot, wall time, message) of a ``journalctl -o json`` object."""
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    message = obj.get("MESSAGE")
    if isinstance(message, list):
        try:
            message = bytes(message).decode("utf-8", "replace")
        except (TypeError, ValueError):
            return None
    if not isinstance(message, str):
        return None
    mono = _int(obj.get("_SOURCE_MONOTONIC_TIMESTAMP"))
    if mono is None:
        mono = _int(obj.get("__MONOTONIC_TIMESTAMP"))
    real = _int(obj.get("__REALTIME_TIMESTAMP"))
    wall = None
    if real is not None:
        try:
            wall = _iso(real / 1e6)
        except (OverflowError, OSError, ValueError):
            wall = None
    return (mono / 1e6 if mono is not None else None), wall, message


def parse_line(line: str, source: str = "file", lineno: int | None = None) -> Event | None:
    """The event in one log line, or None if the line is not about lockdown."""
    if not candidate(line) and not ('"MESSAGE"' in line and any(m in line for m in JSON_ARRAY_MESSAGES)):
        return None
    raw = line[:RAW_MAX].rstrip("\r\n")
    wall = None
    pid = None
    if raw.startswith("{") and (journal := _journal(line)) is not None:
        seconds, wall, text = journal
        if not candidate(text):
            return None
        text = raw = _window(text)
    else:
        seconds, wall, pid, text = split_prefix(raw)
        if len(line) > RAW_MAX and not candidate(text):  # the marker is further on
            text = raw = _window(line)
        elif len(text) < len(raw) and any(m in raw[: len(raw) - len(text)] for m in LOOKS_LIKE_LOCKDOWN):
            # What was taken for a prefix holds lockdown text: a damaged line; never drop it.
            seconds, wall, pid, text = None, None, None, raw
    # Logs repeat the same messages (the same tool denied again and again):
    # classify each distinct message text once.
    template = _CACHE.get(text, _MISSING)
    if template is _MISSING:
        event = classify(text, "", "", None)
        template = None if event is None else event.__dict__
        if len(_CACHE) >= CACHE_SIZE:
            _CACHE.clear()
        _CACHE[text] = template
    if template is None:
        return None
    fields = dict(template)  # type: ignore[call-overload]
    fields["source"] = source
    fields["time"] = seconds
    fields["wall_time"] = wall
    if fields["pid"] is None:
        fields["pid"] = pid
    fields["raw"] = raw
    fields["lineno"] = lineno
    return Event.from_fields(fields)


CACHE_SIZE = 4096
_MISSING = object()
_CACHE: dict[str, object] = {}


def _window(text: str) -> str:
    """At most RAW_MAX characters around the first marker: no kernel record is
    longer, and regular expressions never see more (no quadratic blow-up)."""
    if len(text) <= RAW_MAX:
        return text
    hits = [p for p in (text.find(m) for m in MARKERS) if p >= 0]
    start = max(0, min(hits, default=0) - RAW_MAX // 2)
    return text[start : start + RAW_MAX]


def split_denial(body: str) -> tuple[str | None, str, tuple[Reason, bool] | None]:
    """(comm, what, (reason, pre-5.4 phrase?)) of the text between ``Lockdown: `` and ``
    is restricted``. No catalogue phrase contains ": ", a comm may: the first split after
    which the rest is a known phrase wins; an unknown phrase splits at the first ": "."""
    found = reason_from_phrase(body)
    if found is not None:  # pre-5.4 lines without a comm
        return None, body, found
    pos = body.find(": ")
    while pos >= 0:
        found = reason_from_phrase(body[pos + 2 :])
        if found is not None:
            return body[:pos], body[pos + 2 :], found
        pos = body.find(": ", pos + 1)
    if ": " in body:
        comm, what = body.split(": ", 1)
        return comm, what, None
    return None, body, None


def _denial(match: re.Match[str], raw: str, source: str, lineno: int | None, seconds: float | None,
            wall: str | None, pid: int | None) -> Event:
    comm, what, found = split_denial(match.group(2))
    reason = found[0].id if found else None
    # The pre-5.4 series capitalised some phrases the LSM prints in lower case ("Direct PCI access").
    old = (found[1] or what.strip() != found[0].log) if found else False
    dialect = "suse-early" if match.group(1) else "pre-5.4" if old or comm is None else "upstream"
    return Event("denial", source, dialect, raw, time=seconds, wall_time=wall, comm=comm, pid=pid,
                 reason=reason, what=what, level=_LEVEL.get(reason) if reason else None, verdict="denied",
                 lineno=lineno)


def _avc(text: str, raw: str, source: str, lineno: int | None, seconds: float | None, wall: str | None,
         pid: int | None) -> Event | None:
    match = _AVC.search(text)
    if match is None:
        return None
    fields: dict[str, str] = {}
    for key, value in _AVC_FIELD.findall(text[match.end() :]):
        if value.startswith('"'):
            value = value[1:-1]
        elif key in ("comm", "lockdown_reason") and _HEX.fullmatch(value):  # audit hex-encodes odd strings
            value = bytes.fromhex(value).decode("utf-8", "replace")
        fields.setdefault(key, value)
    if fields.get("tclass") != "lockdown":
        return None
    found = reason_from_phrase(fields.get("lockdown_reason", ""))
    reason = found[0].id if found else None
    perm = match.group(2).split()[0] if match.group(2).split() else ""
    level = perm if perm in ("integrity", "confidentiality") else (_LEVEL.get(reason) if reason else None)
    verdict = "audited" if match.group(1) == "granted" or fields.get("permissive") == "1" else "denied"
    return Event("denial", source, "selinux-avc", raw, time=seconds, wall_time=wall, comm=fields.get("comm"),
                 pid=_int(fields.get("pid")) if "pid" in fields else pid, reason=reason,
                 what=fields.get("lockdown_reason"), level=level, verdict=verdict, lineno=lineno)


def classify(text: str, raw: str, source: str = "file", lineno: int | None = None, seconds: float | None = None,
             wall: str | None = None, pid: int | None = None) -> Event | None:
    """The event in one message (the text after the log line's prefixes)."""
    if DENIAL_MARK in text and (match := _DENIAL.search(text)) is not None:
        return _denial(match, raw, source, lineno, seconds, wall, pid)
    if "locked down" in text or SYSRQ_LIFT in text:
        if (found := level_set(text)) is not None:
            where, _kind, level = found
            return Event("level-set", source, "level-set", raw, time=seconds, wall_time=wall, where=where,
                         level=level, lineno=lineno)
        for message, reason in SIDE_EFFECTS.items():
            if message in text:
                return Event("denial", source, "side-effect", raw, time=seconds, wall_time=wall, pid=pid,
                             reason=reason, level=_LEVEL.get(reason), verdict="denied", lineno=lineno)
    if "due to lockdown" in text:
        tracer = _TRACER.search(text)
        return Event("denial", source, "side-effect", raw, time=seconds, wall_time=wall, pid=pid,
                     reason=TRACING_SIDE_EFFECT, what=tracer.group(1) if tracer else None,
                     level=_LEVEL[TRACING_SIDE_EFFECT], verdict="denied", lineno=lineno)
    if ("tclass=lockdown" in text or "lockdown_reason" in text) and (
            event := _avc(text, raw, source, lineno, seconds, wall, pid)) is not None:
        return event
    if "callbacks suppressed" in text and (match := _SUPPRESSED.search(text)) is not None:
        func = match.group(1)
        if "lockdown" in func or "locked_down" in func:
            return Event("ratelimit", source, "ratelimit", raw, time=seconds, wall_time=wall, what=func,
                         suppressed=int(match.group(2)), lineno=lineno)
    if "tracefs" in text and (match := _TRACEFS.search(text)) is not None:
        return Event("denial", source, "side-effect", raw, time=seconds, wall_time=wall, pid=pid,
                     reason=TRACING_SIDE_EFFECT, what=match.group(1), level=_LEVEL[TRACING_SIDE_EFFECT],
                     verdict="denied", lineno=lineno)
    if "is rejected" in text and (match := _MODULE.search(text)) is not None:
        return Event("denial", source, "side-effect", raw, time=seconds, wall_time=wall, pid=pid,
                     reason=MODULE_SIDE_EFFECT, what=match.group(1) or match.group(2),
                     level=_LEVEL[MODULE_SIDE_EFFECT], verdict="denied", lineno=lineno)
    if any(marker in text for marker in LOOKS_LIKE_LOCKDOWN):
        return Event("unparsed", source, None, raw, time=seconds, wall_time=wall, lineno=lineno)
    return None


def classify_message(text: str, source: str = "kernel log", lineno: int | None = None,
                     seconds: float | None = None) -> Event | None:
    """The event in one message as a kernel-log reader delivers it (host.kmsg.LogLine.text:
    no prefix), read like :func:`parse_line` reads a line: at most RAW_MAX characters."""
    if not candidate(text):
        return None
    text = _window(text)
    return classify(text, text, source, lineno, seconds)


def scan_block(data: bytes, end: int, source: str, first_lineno: int | None,
               json_lines: bool = False) -> tuple[list[Event], int]:
    """Events in ``data[:end]`` (whole lines), and how many newlines it holds.

    Finds marker hits with ``bytes.find`` over the block and decodes only
    those lines; ``first_lineno`` is the number of the block's first line
    (None: do not number).
    """
    spans: dict[int, int] = {}
    markers = (*BYTE_MARKERS, *(m.encode() for m in JSON_ARRAY_MESSAGES)) if json_lines else BYTE_MARKERS
    for marker in markers:
        pos = data.find(marker, 0, end)
        while pos >= 0:
            start = data.rfind(b"\n", 0, pos) + 1
            stop = data.find(b"\n", pos, end)
            if stop < 0:
                stop = end
            spans[start] = stop
            pos = data.find(marker, stop, end)
    events: list[Event] = []
    counted = 0
    line = first_lineno or 0
    for start in sorted(spans):
        line += data.count(b"\n", counted, start)
        counted = start
        stop = min(spans[start], start + MAX_LINE)
        text = data[start:stop].decode("utf-8", "replace")
        event = parse_line(text, source, line if first_lineno is not None else None)
        if event is not None:
            events.append(event)
    return events, line - (first_lineno or 0) + data.count(b"\n", counted, end)


def parse_text(text: str, source: str = "file") -> Iterator[Event]:
    """Events of a whole log given as text (numbered from 1)."""
    for number, line in enumerate(text.splitlines(), 1):
        event = parse_line(line, source, number)
        if event is not None:
            yield event
