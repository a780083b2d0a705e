"""Every crash the fuzzers (fuzz/) found, as a regression test.

Each input is the minimal form of what atheris reported; the comment names
the target and what went wrong before the fix.
"""

from __future__ import annotations

import base64
from pathlib import Path

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


# --- work per input (issue #21: a long input must not cost quadratic time) ---
# Found while profiling the slow fuzz targets. Timed as growth, not as seconds,
# so a loaded machine does not decide: eight times the input takes about eight
# times as long when the work is linear and sixty-four times when it is quadratic.


def test_cmdline_split_of_many_arguments() -> None:
    # host/cmdline.py: split_cmdline copied the rest of the line for every argument
    # (rest = args[i:]): 1 MB of short arguments cost ~10^11 byte copies.
    # Linearity is measured by benchmarks/parsers.py (timing belongs in benchmarks).
    assert len(split_cmdline("a " * 100_000, "cmdline")) == 100_000
    params = split_cmdline("a " * 3 + 'q="x y" lockdown=integrity', "cmdline")
    assert params == [("a", None)] * 3 + [("q", "x y"), ("lockdown", "integrity")]


def test_shell_scan_numbers_many_assignments() -> None:
    # boot/shell.py: every assignment counted the newlines from the start of the
    # file for its line number (quadratic in a long /etc/default/grub).
    from lockdownctl.boot.shell import scan

    # Linearity is measured by benchmarks/parsers.py (timing belongs in benchmarks).
    found = scan('GRUB_X="a b"\n# comment\n' * 1000, "/etc/default/grub")
    assert len(found) == 1000 and found[-1].line == 1999


def test_uki_read_runs_no_full_garbage_collection(monkeypatch: pytest.MonkeyPatch) -> None:
    # host/uki.py: pe.close() on an image parsed from bytes only ran gc.collect()
    # (pefile _close_data): milliseconds per image, most of a UKI read.
    import gc

    from lockdownctl.host.uki import uki_cmdline
    from tests.conftest import DATA

    calls: list[int] = []

    def collect(*_: object) -> int:
        calls.append(1)
        return 0

    monkeypatch.setattr(gc, "collect", collect)
    data = (DATA / "audit" / "uki" / "uki-cmdline.efi").read_bytes()
    assert uki_cmdline(data, "linux.efi")
    assert calls == []


def test_gzip_config_that_inflates_past_the_cap_is_refused_unread() -> None:
    # host/kconfig.py: zlib.decompress() without a limit inflated a 100 KiB
    # /proc/config.gz look-alike to 100 MiB (and a larger one to gigabytes).
    import gzip

    from lockdownctl.host.kconfig import MAX_CONFIG, kconfig_from_bytes

    bomb = gzip.compress(b"CONFIG_A=y\n" * (MAX_CONFIG // 11 + 1000), compresslevel=9)
    assert len(bomb) < MAX_CONFIG // 100
    with pytest.raises(InputError, match="decompresses to more than 16 MiB"):
        kconfig_from_bytes(bomb, "/proc/config.gz")
    with pytest.raises(InputError, match="truncated"):
        kconfig_from_bytes(gzip.compress(b"CONFIG_A=y\n")[:-6], "/proc/config.gz")
    assert "CONFIG_A=y" in kconfig_from_bytes(gzip.compress(b"CONFIG_A=y\n"), "/proc/config.gz").text


def test_strip_tokens_removes_many_tokens() -> None:
    # boot/tokens.py: strip_tokens started its search over after every token it
    # removed (and copied the text each time): quadratic in a file of many lockdown=.
    from lockdownctl.boot.tokens import set_token, strip_tokens

    # Linearity is measured by benchmarks/parsers.py (timing belongs in benchmarks).
    assert set_token("quiet" + " lockdown=integrity" * 1000 + "\n", "none") == "quiet lockdown=none\n"
    assert strip_tokens("  lockdown=a lockdown=b x\nlockdown=c  y") == "  x\ny"


def test_lockdown_after_a_double_dash_on_an_earlier_line_goes_to_init(tmp_path: Path) -> None:
    # fuzz_kernel_install, fuzz_bls: verify() read /etc/kernel/cmdline and a BLS entry's
    # options lines as one command line (the kernel's parameters end at a bare "--"),
    # present() line by line: a lockdown= on a line after "--" counted as a boot level,
    # so disable "verified" a file present() still found a lockdown in, and enable
    # refused to "lower" a level the kernel never sees.
    import shutil

    from lockdownctl.boot import kernel_install, run
    from lockdownctl.boot.engine import View
    from lockdownctl.boot.tokens import line_levels
    from lockdownctl.root import Root
    from tests.conftest import DATA

    assert line_levels("quiet --\nlockdown=confidentiality\n", "cmdline") == []
    assert line_levels("options a --\noptions lockdown=integrity\n", "entry", "options") == []
    assert line_levels("quiet\nlockdown=integrity\n", "cmdline") == [("cmdline:2", "integrity")]
    grubenv = "saved_entry=a -- b\nkernelopts=root=/dev/vda1 lockdown=integrity\n"  # one variable a line
    assert line_levels(grubenv, "grubenv", joined=False) == [("grubenv:2", "integrity")]
    root = tmp_path / "root"
    shutil.copytree(DATA / "boot" / "arch-systemd-boot", root, symlinks=True)
    (root / "etc/kernel/cmdline").write_text("root=/dev/vda1 quiet --\nlockdown=confidentiality\n")
    view = View(Root(root))
    assert kernel_install.present(view) == []
    assert run.higher([kernel_install], view, "integrity") == {}  # what enable refuses on


@pytest.mark.parametrize("text", ['X="' + '$("' * 1500 + '")' * 1500 + '"\n', 'X="' + '$("' * 1500,
                                  "X=$(" + '"$(' * 1500])
def test_shell_deep_nesting_is_an_answer(text: str) -> None:
    # boot/shell.py: "…" and $(…) skipped each other by recursion, so nesting 1,500 deep
    # (4.5 KB of the 8 KiB a fuzz input may have) raised RecursionError, a traceback. Found
    # reading the scanner while moving it to re (#21), not by a fuzz run; now an explicit stack.
    from lockdownctl.boot.shell import scan, source

    try:
        found = scan(text, "/etc/default/grub")
    except InputError as exc:
        assert "unbalanced" in exc.message and exc.message.startswith("/etc/default/grub:1:")
    else:
        assert [a.name for a in found] == ["X"] and source(text, "g")[1] == {"X"}


def test_shell_escaped_paren_after_dollar_is_text() -> None:
    # fuzz_shell (2026-12-07, 418,517 inputs in): the target's property called "$(" in an
    # exact value a substitution "from nowhere" when the input had no "$(", but `$\(` is
    # the text "$(" in sh as in shell.py (so is $X"(" with X=$). The property was wrong,
    # not the parser: it now asks that an exact value's assignment holds no substitution.
    import subprocess
    import sys

    from lockdownctl.boot.shell import source
    from tests.conftest import REPO

    crash = b'_=e""\xe9$\\(='
    text = 'X=e""\u00e9$\\(=\nZ=$\nY=$Z"("\n'
    env, inexact = source(text, "g")
    sh = subprocess.run(["sh", "-c", '. "$0"; printf "%s|%s" "$X" "$Y"', "/dev/stdin"], input=text.encode(),
                        capture_output=True, check=True).stdout.decode()
    assert (f"{env['X']}|{env['Y']}", inexact) == (sh, set()) == ("e\u00e9$(=|$(", set())
    proc = subprocess.run([sys.executable, "-c", "import sys; sys.argv = ['t']; import fuzz_shell; "
                           f"fuzz_shell.one({crash!r})"], cwd=REPO / "fuzz", capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_bare_lockdown_token_is_removed_with_the_others() -> None:
    # fuzz_grub (2026-12-07, 206,450 inputs in; main's parsers did the same): a bare
    # "lockdown" (no "=": the kernel calls it a malformed early option) stayed in an
    # earlier GRUB_CMDLINE_LINUX_DEFAULT, present() reported it as lockdown="", yet enable
    # "verified". enable/disable now remove it with the lockdown= tokens.
    import subprocess
    import sys

    from lockdownctl.boot.tokens import line_levels, strip_tokens
    from tests.conftest import REPO

    assert strip_tokens("quiet lockdown splash lockdownx lockdown=integrity") == "quiet splash lockdownx"
    assert strip_tokens('quiet "lockdown" x') == "quiet x"
    assert line_levels(strip_tokens("quiet lockdown\t=x\n"), "f") == []
    crash = b'GRUB_CMDLINE_LINUX_DEFAULT="quiet lockdown\t=x"\nGRUB_CMDLINE_LINUX_DEFAULT="quiet"\n'
    crash += b"#" * ((1 - len(crash)) % 3)  # the target's length % 3 == 1: enable confidentiality
    proc = subprocess.run([sys.executable, "-c", "import sys; sys.argv = ['t']; import fuzz_grub; "
                           f"fuzz_grub.one({crash!r})"], cwd=REPO / "fuzz", capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.parametrize("value", ['"quiet lockdown$confidentiality"', '"quiet lockdown${X}=none"'])
def test_lockdown_formed_by_an_expansion_is_refused(tmp_path: Path, value: str) -> None:
    # fuzz_grub (2026-12-07, 510,498 inputs in): an overwritten GRUB_CMDLINE_LINUX_DEFAULT
    # held "lockdown$confidentiality"; the textual edit could not cut it, present() read
    # it as a bare "lockdown", yet enable verified (the last assignment was clean).
    import subprocess
    import sys

    from lockdownctl.boot import grub
    from lockdownctl.boot.engine import View
    from lockdownctl.root import Root
    from tests.conftest import REPO

    text = f'GRUB_CMDLINE_LINUX_DEFAULT={value}\nGRUB_CMDLINE_LINUX_DEFAULT="quiet"\n'
    (tmp_path / "etc/default").mkdir(parents=True)
    (tmp_path / "etc/default/grub").write_text(text)
    view = View(Root(str(tmp_path)), [])
    assert grub.present(view)  # what status and disable report: a lockdown parameter
    for level in ("integrity", None):
        with pytest.raises(InputError) as exc:
            grub.plan(view, level)
        assert exc.value.message.startswith(f"{tmp_path}/etc/default/grub:1: GRUB_CMDLINE_LINUX_DEFAULT=")
        assert "variable expansion" in exc.value.message and "\n" not in exc.value.message
    # Quoted so the shell does not expand: a literal token, no lockdown parameter.
    (tmp_path / "etc/default/grub").write_text("GRUB_CMDLINE_LINUX_DEFAULT='quiet lockdown$X'\n")
    assert not grub.present(view) and grub.plan(view, None).changes == []
    crash = (b'GRUB_CMDLINE_LINUX_DEFAULT="quiet lockdown$confidentiality"\n'
             b'GRUB_CMDLINE_LINUX_DEFAULT="quiet lockdown=confideity"\n')
    crash += b"#" * (-len(crash) % 3)  # the target's length % 3 == 0: enable integrity
    proc = subprocess.run([sys.executable, "-c", "import sys; sys.argv = ['t']; import fuzz_grub\n"
                           "from lockdownctl.errors import InputError\n"  # an answer, as _common.run takes it
                           f"try: fuzz_grub.one({crash!r})\nexcept InputError: pass"], cwd=REPO / "fuzz",
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
