"""Every crash the fuzzers (fuzz/) found, as a regression test.

Each input is the minimal form of what atheris reported; the comment names
the target and what went wrong before the fix.
"""

from __future__ import annotations

import pytest

from lockdownctl.host.kmsg import parse_log_line
from lockdownctl.klog.parser import parse_line, split_prefix
from lockdownctl.root import mounts


@pytest.mark.parametrize("stamp", ["   \x1c3.300000", "²", "1\u00a0.5", "٣.5"])
def test_klog_stamp_with_unicode_blank_or_digit(stamp: str) -> None:
    # fuzz_klog: str.strip()/isdigit() passed these, float() raised ValueError (a traceback).
    line = f"[{stamp}] Lockdown: x: use of kprobes is restricted; see man kernel_lockdown.7"
    event = parse_line(line)
    assert event is not None and event.kind == "denial" and event.reason == "kprobes"
    assert split_prefix(f"[{stamp}] hello")[0] is None


@pytest.mark.parametrize("line", ["<6>[²] hello", "6,1,²,-;hello", "[1.²] hello"])
def test_kmsg_record_with_unicode_digits(line: str) -> None:
    # fuzz_klog: int("²") / float("1.²") raised ValueError out of parse_log_line.
    rec = parse_log_line(line)
    assert rec is not None and rec.seconds is None


def test_kmsg_semicolon_in_message_is_not_a_record_header() -> None:
    # fuzz_klog: "restricted; see man" split as a kmsg header -> the denial was dropped
    # (0 denials reported for a log that has one).
    line = "6,612,1234567,-+Lockdown: bpftrace: use of kprobes is restricted; see man kernel_lockdown.7"
    event = parse_line(line)
    assert event is not None and event.kind == "denial" and event.reason == "kprobes"
    good = parse_log_line("6,612,1234567,-,caller=T42;Lockdown: x: use of kprobes is restricted")
    assert good is not None and good.seconds == 1.234567


@pytest.mark.parametrize("text", ["-", "1 2 3 4 5 6 -", "a b c d e f - ", "36 25 0:32 / /x rw - \n"])
def test_mountinfo_damaged_lines_are_skipped(text: str) -> None:
    # fuzz_mountinfo: the old inline parsers (root.is_mounted, bpf cgroup2_mount) raised
    # ValueError/IndexError on a line without the "-" separator or the type after it.
    assert mounts(text) == []


def test_mountinfo_reads_point_and_type() -> None:
    line = "36 25 0:32 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw\n"
    spaced = r"40 25 0:33 / /mnt/a\040b rw - tmpfs tmpfs rw" + "\n"
    assert mounts(line + spaced) == [("/sys/fs/cgroup", "cgroup2"), ("/mnt/a b", "tmpfs")]
