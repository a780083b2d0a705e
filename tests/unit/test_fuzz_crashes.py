"""Every crash the fuzzers (fuzz/) found, as a regression test.

Each input is the minimal form of what atheris reported; the comment names
the target and what went wrong before the fix.
"""

from __future__ import annotations

import base64

import pytest

from lockdownctl.btf import parse_lockdown_enum
from lockdownctl.errors import InputError
from lockdownctl.host.cmdline import parse_cmdline, split_cmdline
from lockdownctl.host.kmsg import parse_log_line
from lockdownctl.klog.parser import parse_line, split_prefix
from lockdownctl.mountinfo import parse as mounts


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
    # ValueError/IndexError on a line without the "-" separator or the type after it
    # (main since moved them into one parser, mountinfo.parse; this keeps it honest).
    assert mounts(text) == []


def test_mountinfo_reads_point_and_type() -> None:
    line = "36 25 0:32 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw\n"
    spaced = r"40 25 0:33 / /mnt/a\040b rw - tmpfs tmpfs rw" + "\n"
    assert mounts(line + spaced) == [("/sys/fs/cgroup", "cgroup2"), ("/mnt/a b", "tmpfs")]


@pytest.mark.parametrize(("raw", "params"), [
    # fuzz_cmdline: every quote was dropped, so loc""kdown=integrity read as lockdown=integrity
    # (a level the kernel never sees). lib/cmdline.c next_arg() removes a quote only at the
    # start of the argument or of its value, and the matching one at its end.
    ('loc""kdown=integrity', [('loc""kdown', "integrity")]),
    ('"lockdown=integrity"', [("lockdown", "integrity")]),
    ('lockdown="integrity"', [("lockdown", "integrity")]),
    ('lockdown=integ"rity"', [("lockdown", 'integ"rity"')]),
    ('dyndbg="file x +p" lockdown=confidentiality', [("dyndbg", "file x +p"), ("lockdown", "confidentiality")]),
    ("=a=b", [("=a", "b")]),
    ("quiet -- lockdown=integrity", [("quiet", None)]),
])
def test_cmdline_quotes_as_the_kernel_splits(raw: str, params: list[tuple[str, str | None]]) -> None:
    assert split_cmdline(raw, "p") == params


def test_cmdline_quote_inside_a_name_is_no_lockdown() -> None:
    assert parse_cmdline('quiet loc""kdown=integrity').lockdown is None


# fuzz_btf: an enum lockdown_reason member with an empty name was a "reason" with no id.
BTF_EMPTY_MEMBER = base64.b64decode(
    "n+sBABgAAAAAAAAANAAAADQAAAB8AAAAAQAAAAUAAAYEAAAAEQAAAAAAAAAfAAAAAQAAADkAAAACAAAAUAAAAAMAAABfAAAABAAAAABsb2Nr"
    "ZG93bl9yZWFzb24ATE9DS0RPV05fTk9ORQBMT0NLRE9XTl9NT0RVTEVfU0lHTkFUVVJFAExPQ0tET1dOX0lOVEVHUklUWV9NQVgAAAEAAAAF"
    "AAAGBAAAAEUATE9DS0RPV05fQ09ORklERU5USUFMSVRZX01BWAA=")


def test_btf_enum_member_without_a_name_is_corrupt() -> None:
    with pytest.raises(InputError, match="not an identifier"):
        parse_lockdown_enum(BTF_EMPTY_MEMBER, "vmlinux")


def test_dmesg_x_line_with_kernel_colon_in_the_message_keeps_its_lockdown_text() -> None:
    # fuzz_klog: " kernel: " inside a dmesg -x message was taken for a syslog prefix and
    # everything before it (the "Lockdown:" text) was dropped.
    event = parse_line("kern  :notice: [   40.000000] Lockdown: kexec# kernel: linux-image-6.12")
    assert event is not None and event.kind == "unparsed" and event.time == 40.0
    syslog = parse_line("Nov 22 10:00:01 host kernel: [ 1.0] Lockdown: x: use of kprobes is restricted")
    assert syslog is not None and syslog.reason == "kprobes" and syslog.time == 1.0


@pytest.mark.parametrize("text", ["version: 1\n!? kprobes: audit\n", "version: !foo 1\n"])
def test_policy_unknown_yaml_tag_is_an_input_error(text: str) -> None:
    # fuzz_policy: PyYAML's ConstructorError escaped (a traceback, exit 70).
    from lockdownctl.policy import parse_policy
    from lockdownctl.reasons import merge

    with pytest.raises(InputError, match=r"^p:\d: .*tag '!") as info:
        parse_policy(text, "p", merge(None))
    assert "\n" not in info.value.message


def test_error_quoting_a_multi_line_shell_value_is_one_line() -> None:
    # fuzz_shell: the Unmodelled error quoted a value that spans lines: a multi-line "one line".
    from lockdownctl.boot.shell import source

    with pytest.raises(InputError, match=r"^g:1: X=") as info:
        source('X=$$(sed x)"\nY=1\n"\n', "g")
    assert "\n" not in info.value.message and "\\n" in info.value.message


def test_lockdown_text_in_what_looked_like_a_prefix_is_not_dropped() -> None:
    # fuzz_klog: a damaged kmsg record whose "syslog head" held "Lockdown": the text after
    # " kernel: " was classified alone and the line dropped.
    line = "5,\ufffd613,1234,ell;Lockdown kerneOkt 22 15:57:08 Zuse2016 kernel: secureboot: Secure boot enabled"
    event = parse_line(line)
    assert event is not None and event.kind == "unparsed"
