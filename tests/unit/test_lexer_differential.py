"""The fast parsers against their one-step-per-character originals.

Fuzzing (#21) runs instrumented bytecode, so the parsers of outside input do
their per-character work in ``re`` and str methods (C). Their originals are
kept in tests/unit/reference; here both read the same inputs and must give the
same result, or the same error with the same message (file and line): every
file under tests/data the parser reads (the fuzz seeds of fuzz/run-all), every
string in tests/unit/test_fuzz_crashes.py (the crashes the fuzzers found), and
generated inputs over the characters each grammar gives a meaning.

The one allowed difference: where an original raised RecursionError (a
traceback: "$(" and '"' nested a thousand deep), the fast one answers.
"""

from __future__ import annotations

import ast
import glob
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lockdownctl.boot import entries, shell, tokens
from lockdownctl.errors import InputError
from lockdownctl.host import cmdline
from lockdownctl.klog import parser as klog
from tests.conftest import DATA, REPO
from tests.unit.reference import cmdline as ref_cmdline
from tests.unit.reference import klog_parser as ref_klog
from tests.unit.reference import shell as ref_shell

SETTINGS = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    """("ok", result) or ("error", class name, message)."""
    try:
        return "ok", call()
    except InputError as exc:
        return "error", (type(exc).__name__, exc.message)


def same(fast: Callable[..., Any], reference: Callable[..., Any], *args: Any) -> Any:
    """Both on ``args``: the same result or the same error (class, message); the outcome."""
    try:
        expected = outcome(lambda: reference(*args))
    except RecursionError:
        return outcome(lambda: fast(*args))  # the original's traceback; the fast one must answer
    got = outcome(lambda: fast(*args))
    assert got == expected, args
    return got


def data_files(*patterns: str) -> list[str]:
    return sorted(p for pattern in patterns for p in glob.glob(str(DATA / pattern)) if not p.endswith("/"))


def read(path: str) -> str:
    with open(path, "rb") as fh:
        return fh.read().decode("utf-8", "replace")


def crash_strings() -> list[str]:
    """Every string constant of tests/unit/test_fuzz_crashes.py (inputs and expected values alike)."""
    tree = ast.parse((REPO / "tests" / "unit" / "test_fuzz_crashes.py").read_text())
    return sorted({n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)})


# --- boot/shell.py --------------------------------------------------------------

SHELL_FILES = data_files("boot/*/etc/default/grub", "boot/*/etc/default/grub.d/*", "boot/*/etc/kernel/cmdline",
                         "boot/*/boot/loader/entries/*.conf", "boot/*/boot/grub2/grubenv",
                         "boot/*/etc/kernelstub/configuration", "grub-mkconfig/*", "grub-mkconfig/*/*")


def shell_all(text: str, positions: int = 200) -> None:
    """Every entry point of shell.py on ``text``, fast and reference alike."""
    for strict in (True, False):
        got = same(shell.scan, ref_shell.scan, text, "f.cfg", strict)
        if got[0] == "ok":
            for a in got[1]:
                same(shell.parse_value, ref_shell.parse_value, a.raw)
                assert shell.quoted_inner(a.raw) == ref_shell.quoted_inner(a.raw)
    same(shell.source, ref_shell.source, text, "f.cfg", {"A": "x"}, {"B"})
    same(shell.parse_value, ref_shell.parse_value, text)
    assert shell.quoted_inner(text) == ref_shell.quoted_inner(text)
    for pos, ch in enumerate(text[:positions]):  # the skippers from every place they can start
        if ch in "'\"":
            same(shell._skip_quoted, ref_shell._skip_quoted, text, pos, "p")
        if ch == "`":
            same(shell._skip_subst, ref_shell._skip_subst, text, pos, "p")
        if text.startswith("$(", pos):
            same(shell._skip_subst, ref_shell._skip_subst, text, pos + 1, "p")
        same(shell._word_end, ref_shell._word_end, text, pos, "p")


def test_shell_files_read_alike() -> None:
    assert len(SHELL_FILES) >= 10
    for path in SHELL_FILES:
        shell_all(read(path))


def test_shell_fuzz_crashes_read_alike() -> None:
    for text in crash_strings():
        shell_all(text)


SHELL_ALPHABET = "'\"\\$`(){}~:;&|<># \t\n=aAZz_09-!@*?.,/"
shell_text = st.text(SHELL_ALPHABET, max_size=60)
assignment = st.builds(lambda name, value, sep: f"{name}={value}{sep}", st.sampled_from(["GRUB_X", "A", "_b1", "1x"]),
                       shell_text, st.sampled_from(["\n", ";", " ", "\n# c\n", "\\\n"]))


@SETTINGS
@given(shell_text)
def test_shell_generated_text_reads_alike(text: str) -> None:
    shell_all(text)


@SETTINGS
@given(st.lists(st.one_of(assignment, st.sampled_from(["export ", "export A\n", "if x\n", "echo $(\n", "\n"])),
                max_size=6))
def test_shell_generated_files_read_alike(parts: list[str]) -> None:
    shell_all("".join(parts))


def nested(depth: int) -> Iterator[str]:
    yield 'X="' + '$("' * depth + '")' * depth + '"\n'
    yield 'X="' + '$("' * depth
    yield "X=$(" + "(" * depth + ")" * depth + ")\n"
    yield 'X="$(' + "'a'\"" * depth


@pytest.mark.parametrize("depth", [1, 3, 50, 400, 2000])
def test_shell_deep_nesting_reads_alike(depth: int) -> None:
    for text in nested(depth):
        shell_all(text, positions=0)


# --- klog/parser.py -------------------------------------------------------------

KLOG_FILES = data_files("klog/*/*", "audit/*.log", "audit/*/*.log", "check/*/*.log")


def event_fields(event: Any) -> Any:
    return None if event is None else event.__dict__


def klog_all(text: str) -> None:
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        assert event_fields(klog.parse_line(line, "file", number)) == event_fields(
            ref_klog.parse_line(line, "file", number))
        if klog.candidate(line):  # (others are None at the first test in both)
            line = line[: 2 * klog.RAW_MAX]  # as its callers window it (the original took seconds on a
            # 200 KB line of "Lockdown: ": test_klog_many_markers_read_alike has that, shorter)
            assert event_fields(klog.classify(line, line)) == event_fields(ref_klog.classify(line, line))
            assert event_fields(klog.classify_message(line)) == event_fields(ref_klog.classify_message(line))
    data = text.encode("utf-8", "surrogatepass")
    for json_lines in (False, True):
        fast, fast_n = klog.scan_block(data, len(data), "file", 1, json_lines)
        ref, ref_n = ref_klog.scan_block(data, len(data), "file", 1, json_lines)
        assert (list(map(event_fields, fast)), fast_n) == (list(map(event_fields, ref)), ref_n)


def test_klog_files_read_alike() -> None:
    assert len(KLOG_FILES) >= 20
    for path in KLOG_FILES:
        klog_all(read(path))


def test_klog_fuzz_crashes_read_alike() -> None:
    for text in crash_strings():
        klog_all(text)


KLOG_PIECES = st.sampled_from(["Lockdown: ", "Lockdown early: ", " is restricted", "; see man kernel_lockdown.7",
                               "use of kprobes", "bpftrace: ", "[    1.5] ", "6,12,345,-;", "<5>", " kernel: ",
                               "Kernel is locked down from command line", "locked down", "due to lockdown",
                               "tclass=lockdown ", 'lockdown_reason="use of kprobes" ', "avc:  denied  { integrity } ",
                               "lockdown_is_locked_down: 3 callbacks suppressed", ": ", " ", "\n", "x", "[T12] "])


@SETTINGS
@given(st.lists(st.one_of(KLOG_PIECES, st.text(max_size=4)), max_size=12))
def test_klog_generated_lines_read_alike(pieces: list[str]) -> None:
    klog_all("".join(pieces))


@pytest.mark.parametrize("n", [1, 10, 400])
def test_klog_many_markers_read_alike(n: int) -> None:
    # the denial search once ran from every "Lockdown: " to the end of the line
    for line in ("Lockdown: " * n, "x is restricted " + "Lockdown: a: " * n, "Lockdown: " * n + "b is restricted",
                 "[ 1.0] Lockdown: " * n + "\n" + "Lockdown early: x: y is restricted " * n):
        klog_all(line)


# --- host/cmdline.py, boot/tokens.py, boot/entries.py ----------------------------

CMDLINE_FILES = data_files("audit/cmdline-*", "roots/*/proc/cmdline", "boot/*/etc/kernel/cmdline",
                           "boot/*/boot/loader/entries/*.conf", "boot/*/efi/loader/entries/*.conf",
                           "boot/*/boot/efi/loader/entries/*.conf", "boot/*/etc/default/grub",
                           "boot/*/boot/grub2/grubenv", "boot/*/etc/kernelstub/configuration")


def cmdline_all(text: str) -> None:
    same(cmdline.split_args, ref_cmdline.split_args, text, "p")
    for line in text.splitlines()[:50]:
        same(cmdline.split_args, ref_cmdline.split_args, line, "p")
    assert tokens.strip_tokens(text) == ref_cmdline.strip_tokens(text)
    assert entries.options(text) == ref_cmdline.options(text)


def test_cmdline_files_read_alike() -> None:
    assert len(CMDLINE_FILES) >= 10
    for path in CMDLINE_FILES:
        cmdline_all(read(path))


def test_cmdline_fuzz_crashes_read_alike() -> None:
    for text in crash_strings():
        cmdline_all(text)


CMDLINE_PIECES = st.sampled_from(["lockdown=integrity", "xlockdown=a", "lock", "down=",
                                  "lockdown=", '"', "=", " ", "\t", "\n", "\r", "--", "options",
                                  "options ", " options\t", "quiet", "a", '"lockdown=none"', "\x01", "\u00a0", "\x1c",
                                  "\u2028", "\x0b"])


@SETTINGS
@given(st.lists(st.one_of(CMDLINE_PIECES, st.text(max_size=3)), max_size=16))
def test_cmdline_generated_read_alike(pieces: list[str]) -> None:
    cmdline_all("".join(pieces))


def test_shell_kept_results_are_copies() -> None:
    # shell.py keeps the last scans and values (one plan reads a file several times):
    # a caller that changes what it got must not change what the next caller gets.
    text = 'GRUB_CMDLINE_LINUX="quiet $X"\n'
    first = shell.scan(text, "a")
    first.clear()
    assert [a.name for a in shell.scan(text, "b")] == ["GRUB_CMDLINE_LINUX"]
    value = shell.parse_value('"quiet $X"')
    value.parts.clear()
    value.unmodelled = "changed"
    assert shell.parse_value('"quiet $X"') == ref_shell.parse_value('"quiet $X"')
    for path in ("a", "b", "a"):  # errors are kept per file: each names its own
        with pytest.raises(InputError, match=f"^{path}:1: unbalanced"):
            shell.scan('X="a', path)
    for _ in range(2):
        with pytest.raises(shell.Unmodelled, match=r"^a:2: the command 'echo'"):
            shell.scan("X=1\necho", "a")
