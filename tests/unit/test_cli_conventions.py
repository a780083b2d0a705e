"""Everyday command-line conventions (issue #18 part 6), on the real executable:
``--color`` and NO_COLOR (no-color.org), progress only on a terminal's standard
error, Ctrl-C summaries and exit codes, tables that fit the terminal, JSON
lines with ``--follow``. A terminal is a real pseudo-terminal (os.openpty),
never a mock."""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from lockdownctl.cli import VERBS, verb_parser
from tests.conftest import REPO, ROOTS

ESC = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
STATUS_ROOT = str(ROOTS / "host-6.18-kconfig-integrity")
DENIAL = "[    2.000000] Lockdown: late: use of kprobes is restricted; see man kernel_lockdown.7\n"


def _env(extra: dict[str, str | None]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS", "LINES", "TERM")}
    env["PYTHONPATH"] = str(REPO / "src")
    env["TERM"] = "xterm-256color"
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _pty(columns: int = 100) -> tuple[int, int]:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    return master, slave


class Term:
    """A real child process whose standard output and/or standard error is a
    pseudo-terminal (each its own, to tell them apart) or a pipe."""

    def __init__(self, args: list[str], env: dict[str, str | None] | None = None, stdout_tty: bool = True,
                 stderr_tty: bool = True, stdin: int = subprocess.DEVNULL) -> None:
        self.fds: dict[str, int] = {}
        self.buf = {"out": b"", "err": b""}
        slaves = []
        streams: dict[str, int] = {}
        for name, tty in (("out", stdout_tty), ("err", stderr_tty)):
            if tty:
                master, slave = _pty()
                slaves.append(slave)
                streams[name] = slave
            else:
                master, slave = os.pipe()
                master, slave = master, slave
                slaves.append(slave)
                streams[name] = slave
            self.fds[name] = master
        self.proc = subprocess.Popen([sys.executable, "-m", "lockdownctl", *args], stdin=stdin,
                                     stdout=streams["out"], stderr=streams["err"], env=_env(env or {}),
                                     # A suite started in the background inherits SIGINT
                                     # ignored, and the tool rightly keeps an ignored SIGINT.
                                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        for slave in slaves:
            os.close(slave)

    def _pump(self, timeout: float) -> bool:
        open_fds = [fd for fd in self.fds.values() if fd >= 0]
        if not open_fds:
            return False
        ready, _, _ = select.select(open_fds, [], [], timeout)
        for fd in ready:
            name = "out" if fd == self.fds["out"] else "err"
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the pty's other side is closed
                chunk = b""
            if chunk:
                self.buf[name] += chunk
            else:
                os.close(fd)
                self.fds[name] = -1
        return True

    def wait_for(self, name: str, needle: bytes, timeout: float = 30) -> None:
        end = time.monotonic() + timeout
        while needle not in self.buf[name]:
            left = end - time.monotonic()
            if left <= 0 or not self._pump(left):
                raise AssertionError(f"{needle!r} not on std{name} within {timeout} s: {self.buf}")

    def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        end = time.monotonic() + timeout
        while any(fd >= 0 for fd in self.fds.values()) and time.monotonic() < end:
            self._pump(max(0.0, end - time.monotonic()))
        code = self.proc.wait(timeout=max(1.0, end - time.monotonic()))
        return code, self.text("out"), self.text("err")

    def text(self, name: str) -> str:
        return self.buf[name].decode().replace("\r\n", "\n")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for fd in self.fds.values():
            if fd >= 0:
                os.close(fd)


def term(args: list[str], **kwargs: object) -> tuple[int, str, str]:
    t = Term(args, **kwargs)  # type: ignore[arg-type]
    try:
        return t.finish()
    finally:
        t.close()


# --- colour ------------------------------------------------------------------------

def _expect_colour(flag: str | None, no_color: str | None, tty: bool, term_name: str) -> bool:
    if flag == "always":
        return True  # an explicit flag overrides NO_COLOR and TERM (no-color.org)
    if flag == "never":
        return False
    return tty and not no_color and term_name != "dumb"  # an empty NO_COLOR is as if unset


@pytest.mark.parametrize("term_name", ["xterm-256color", "dumb"])
@pytest.mark.parametrize("tty", [True, False], ids=["tty", "pipe"])
@pytest.mark.parametrize("no_color", [None, "", "1"], ids=["unset", "empty", "set"])
@pytest.mark.parametrize("flag", [None, "auto", "always", "never"])
def test_colour_matrix(flag: str | None, no_color: str | None, tty: bool, term_name: str) -> None:
    args = ["status", "--root", STATUS_ROOT] + ([f"--color={flag}"] if flag else [])
    code, out, err = term(args, env={"NO_COLOR": no_color, "TERM": term_name}, stdout_tty=tty)
    assert code == 0, err
    assert "Lockdown:" in out
    assert bool(ESC.search(out)) == _expect_colour(flag, no_color, tty, term_name), out


def test_colour_never_reaches_json() -> None:
    code, out, _err = term(["status", "--root", STATUS_ROOT, "--json", "--color=always"])
    assert code == 0 and not ESC.search(out)
    assert json.loads(out)["command"] == "status"


def test_colour_is_refused_with_another_word() -> None:
    code, out, err = term(["status", "--root", STATUS_ROOT, "--color=yes"], stdout_tty=False, stderr_tty=False)
    assert code == 2 and out == "" and "--color" in err and "Traceback" not in err


def _parsers(verb: str) -> list[argparse.ArgumentParser]:
    parsers = [verb_parser(verb)]
    for parser in parsers:
        for action in parser._actions:
            parsers.extend(getattr(action, "_name_parser_map", {}).values())
    return parsers


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_every_verb_takes_color(verb: str) -> None:
    """Every verb, and every action of the verbs that have actions, takes --color."""
    leaves = [p for p in _parsers(verb) if not any(getattr(a, "_name_parser_map", None) for a in p._actions)]
    assert leaves
    for parser in leaves:
        assert "--color" in {o for a in parser._actions for o in a.option_strings}, parser.prog


def test_check_colours_only_with_always_into_a_pipe() -> None:
    """A verb that renders through its own code (check) honours the flag too."""
    root = str(REPO / "tests/data/check/kgdb/negative")
    _, plain, _ = term(["check", "--root", root], stdout_tty=False)
    _, forced, _ = term(["check", "--root", root, "--color=always"], stdout_tty=False)
    assert not ESC.search(plain) and ESC.search(forced)
    assert ESC.sub("", forced) == plain


# --- tables that fit ---------------------------------------------------------------

def _cells(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def _column_text(lines: list[str], starts: list[int]) -> list[str]:
    """Each column's text, top to bottom, without blanks, cut from the lines at
    the header's column offsets: equal to the unwrapped table's only when every
    character stayed in its column (aligned) and none was lost."""
    bounds = [*starts, 10_000]
    return ["".join(line[bounds[i]:bounds[i + 1]].replace(" ", "") for line in lines)
            for i in range(len(starts))]


def _whole_columns(lines: list[str]) -> list[str]:
    rows = [_cells(ln) for ln in lines]
    assert all(len(r) == len(rows[0]) for r in rows)
    return ["".join(r[i].replace(" ", "") for r in rows) for i in range(len(rows[0]))]


def _starts(header: str) -> list[int]:
    return [0] + [m.end() for m in re.finditer(r"\S\s{2,}(?=\S)", header)]


@pytest.mark.parametrize("columns", [60, 80, 200])
def test_explain_table_fits_the_terminal(columns: int) -> None:
    code, whole, _ = term(["explain", "--color=never"], stdout_tty=False, env={"COLUMNS": str(columns)})
    assert code == 0
    code, fitted, err = term(["explain", "--color=never"], env={"COLUMNS": str(columns)})
    assert code == 0, err
    table = [ln for ln in fitted.splitlines() if ln and not ln.startswith(("note:", "lockdownctl "))]
    assert max(len(ln) for ln in fitted.splitlines()) <= columns
    natural = [ln for ln in whole.splitlines() if ln and not ln.startswith(("note:", "lockdownctl "))]
    if columns >= max(len(ln) for ln in natural):
        assert fitted == whole  # room enough: nothing wrapped
        return
    # Aligned: every character sits in its column (the header's offsets) and none is lost.
    assert _column_text(table, _starts(table[0])) == _whole_columns(natural)


def test_a_pipe_gets_whole_lines_whatever_COLUMNS_says() -> None:
    code, out, _ = term(["explain", "--color=never"], stdout_tty=False, env={"COLUMNS": "60"})
    assert code == 0
    assert max(len(ln) for ln in out.splitlines()) > 100  # the log strings are not wrapped
    assert all(len(_cells(ln)) == 5 for ln in out.splitlines()[:29] if ln)  # one line per reason


VERDICTS = ("OK ", "FAIL ", "WARN ", "SKIP ")


def test_audit_evidence_wraps_in_its_column(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("CONFIG_SECURITY_LOCKDOWN_LSM=y\nCONFIG_KPROBES=y\nCONFIG_MODULE_SIG=y\n")
    args = ["audit", "--config", str(config), "--target", "confidentiality", "--color=never"]
    _, whole, _ = term(args, stdout_tty=False)
    _, fitted, err = term(args, env={"COLUMNS": "72"})
    assert "Traceback" not in err
    assert max(len(ln) for ln in whole.splitlines()) > 72
    lines = fitted.splitlines()
    first = next(i for i, ln in enumerate(lines) if ln.startswith("VERDICT"))
    end = next(i for i in range(first + 1, len(lines)) if not lines[i].startswith((" ", *VERDICTS)))
    table = lines[first:end]
    assert all(len(ln) <= 72 for ln in lines), lines  # the table and the lines around it
    starts = _starts(table[0])
    continued = [ln for ln in table[1:] if ln.startswith(" ")]
    assert continued  # something did wrap
    for ln in continued:  # wrapped text starts exactly at a column's start: alignment kept
        assert len(ln) - len(ln.lstrip()) in starts, (ln, starts)
    whole_lines = whole.splitlines()
    wfirst = next(i for i, ln in enumerate(whole_lines) if ln.startswith("VERDICT"))
    wend = next(i for i in range(wfirst + 1, len(whole_lines)) if not whole_lines[i].startswith(VERDICTS))
    assert _column_text(table, starts) == _whole_columns(whole_lines[wfirst:wend])


# --- following: progress, Ctrl-C, JSON lines ------------------------------------------

def _wait_read_to_end(pid: int, path: Path, timeout: float = 30) -> None:
    """Until the process's open file description of ``path`` is at its end
    (/proc/PID/fdinfo pos), i.e. everything appended was read."""
    end = time.monotonic() + timeout
    size = path.stat().st_size
    while time.monotonic() < end:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") != str(path):
                    continue
                pos = int(Path(f"/proc/{pid}/fdinfo/{fd}").read_text().split("pos:")[1].split()[0])
            except (OSError, IndexError, ValueError):
                continue
            if pos >= size:
                time.sleep(0.3)  # read(2) returned; let the line be parsed and counted
                return
        time.sleep(0.05)
    raise AssertionError(f"{path} was not read to its end")


def _follow(tmp_path: Path, args: list[str], **kwargs: object) -> tuple[Term, Path]:
    log = tmp_path / "kern.log"
    log.write_text("[    1.000000] hello\n")
    return Term(["watch", "--follow", *args, str(log)], **kwargs), log  # type: ignore[arg-type]


def test_watch_follow_says_what_it_watches_on_a_terminal_and_summarises_ctrl_c(tmp_path: Path) -> None:
    t, log = _follow(tmp_path, ["--color=never"])
    try:
        t.wait_for("err", b"(Ctrl-C to stop)")
        assert str(log).encode() in t.buf["err"] and t.buf["out"] == b""  # the banner is not output
        with log.open("a") as fh:
            fh.write(DENIAL)
        t.wait_for("out", b"late")
        t.proc.send_signal(signal.SIGINT)
        code, out, err = t.finish()
    finally:
        t.close()
    assert code == 1  # the summary's code: a denial was seen (a follower ends normally on Ctrl-C)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    summary = [ln for ln in ESC.sub("", err).splitlines() if "interrupted after" in ln]
    assert len(summary) == 1
    assert re.fullmatch(r"lockdownctl watch: interrupted after \d+\.\d s: 2 lines read, 1 denial, "
                        r"0 side effects, 0 level changes", summary[0]), summary
    assert "Summary: 1 denial" in out and "(Ctrl-C" not in out


def test_watch_follow_is_quiet_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    t, log = _follow(tmp_path, ["--color=never"], stderr_tty=False)
    try:
        time.sleep(1.5)  # the banner would have been written at once
        with log.open("a") as fh:
            fh.write(DENIAL)
        t.wait_for("out", b"late")
        t._pump(0.2)
        assert t.buf["err"] == b""  # no progress on a pipe
        t.proc.send_signal(signal.SIGINT)
        code, _out, err = t.finish()
    finally:
        t.close()
    # after Ctrl-C the one-line summary goes to standard error whatever it is
    assert code == 1 and err.startswith("lockdownctl watch: interrupted after ") and err.count("\n") == 1


def test_watch_follow_without_denials_exits_0_on_ctrl_c(tmp_path: Path) -> None:
    t, log = _follow(tmp_path, ["--color=never"])
    try:
        t.wait_for("err", b"(Ctrl-C to stop)")
        with log.open("a") as fh:
            fh.write("[    0.000000] Kernel is locked down from command line; see man kernel_lockdown.7\n")
        t.wait_for("out", b"LEVEL")
        t.proc.send_signal(signal.SIGINT)
        code, out, err = t.finish()
    finally:
        t.close()
    assert code == 0, (out, err)
    assert "2 lines read, 0 denials, 0 side effects, 1 level change" in err
    assert "Summary: 0 denials" in out


@pytest.mark.parametrize("extra", [[], ["--summary"]])
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_json_follow_is_json_lines_only(tmp_path: Path, extra: list[str], stop: int) -> None:
    t, log = _follow(tmp_path, ["--json", *extra], stdout_tty=False, stderr_tty=True)
    try:
        t.wait_for("err", b"(Ctrl-C to stop)")  # progress: standard error, a terminal
        with log.open("a") as fh:
            fh.write(DENIAL)
        if not extra:  # each line is flushed as it is written, before the stream ends
            t.wait_for("out", b"\n")
            assert json.loads(t.buf["out"].decode().splitlines()[0])["comm"] == "late"
        else:  # nothing is printed before the end: wait until the whole file was read
            _wait_read_to_end(t.proc.pid, log)
        t.proc.send_signal(stop)
        code, out, err = t.finish()
    finally:
        t.close()
    assert code == 1 and "Traceback" not in err
    lines = out.splitlines()
    objects = [json.loads(line) for line in lines]  # every line alone is one JSON object
    assert all(isinstance(o, dict) for o in objects)
    assert objects[-1]["command"] == "watch" and objects[-1]["data"]["denials"] == 1
    assert objects[-1]["data"]["interrupted"] is True
    assert len(objects) == (1 if extra else 2)


def test_json_follow_error_is_one_line() -> None:
    code, out, err = term(["watch", "--follow", "--json", "--events", "/dev/null"], stdout_tty=False)
    assert code == 2 and "--events cannot be merged with --follow" in err
    assert len(out.splitlines()) == 1 and json.loads(out)["status"] == "error"


# --- check --measure -------------------------------------------------------------------

def _bpf_lsm_usable() -> bool:
    if os.geteuid() != 0:
        return False
    from lockdownctl.root import Root
    from lockdownctl.state.bpf_lsm import bpf_lsm_state

    return bool(bpf_lsm_state(Root("/"))["usable"])


def test_check_measure_refusal_shows_no_countdown() -> None:
    """Where the enforcer cannot run (this build host: EPERM), the refusal comes
    alone: no countdown for a measurement that never starts."""
    if _bpf_lsm_usable():
        pytest.skip("the BPF LSM runs here: see the interrupt test below")
    code, out, err = term(["check", "--measure", "5", "--root", "/"], stdout_tty=False)
    assert code in (3, 4) and out == ""
    assert "left of" not in err and err.count("\n") == 1 and err.startswith("lockdownctl: error: ")


@pytest.mark.skipif(not _bpf_lsm_usable(), reason="needs root and a kernel that runs BPF LSM programs")
def test_check_measure_counts_down_and_ctrl_c_exits_130() -> None:
    t = Term(["check", "--measure", "30"], stdout_tty=False)
    try:
        t.wait_for("err", b"s left of 30 s (Ctrl-C stops)")
        t.proc.send_signal(signal.SIGINT)
        code, out, err = t.finish()
    finally:
        t.close()
    assert code == 130 and out == "" and "Traceback" not in err
    assert re.search(r"lockdownctl check: interrupted after \d+\.\d s: measured for \d+\.\d of 30 s", err)


@pytest.mark.parametrize("args", [["check", "--root", str(REPO / "tests/data/check/hardware/positive")],
                                  ["explain", "kexec"]])
def test_long_lines_wrap_on_a_terminal_only(args: list[str]) -> None:
    """check's evidence/you see/remedy lines and explain REASON's fields wrap at
    word boundaries under their label on a terminal; a pipe gets them whole."""
    code_pipe, whole, _ = term([*args, "--color=never"], stdout_tty=False, env={"COLUMNS": "80"})
    code_tty, fitted, err = term([*args, "--color=never"], env={"COLUMNS": "80"})
    assert code_pipe == code_tty and "Traceback" not in err
    assert max(len(ln) for ln in whole.splitlines()) > 80
    assert max(len(ln) for ln in fitted.splitlines()) <= 80
    assert re.sub(r"\s", "", fitted) == re.sub(r"\s", "", whole)  # only the line breaks differ
    labelled = [ln for ln in whole.splitlines() if re.match(r"\s+(you see|remedy|What breaks|Guards):", ln)]
    assert labelled
    # Each whole line is its fitted lines joined; the continuations start under the
    # text after the line's label ("    remedy:    ", "  Guards:       ", "BREAKS  ").
    fitted_lines = iter(ESC.sub("", fitted).splitlines())
    for line in ESC.sub("", whole).splitlines():
        label = re.match(r"\s*(?:[A-Za-z][\w ]{0,16}:\s+|[A-Z][A-Z-]+\s{2,})?", line)
        assert label is not None
        pieces = [next(fitted_lines)]
        while len(re.sub(r"\s", "", "".join(pieces))) < len(re.sub(r"\s", "", line)):
            pieces.append(next(fitted_lines))
        assert re.sub(r"\s", "", "".join(pieces)) == re.sub(r"\s", "", line)
        assert pieces[0].startswith(label.group().rstrip())
        for piece in pieces[1:]:
            assert len(piece) - len(piece.lstrip()) == label.end(), (line, pieces)


def _wait_blocked_in_read(pid: int, timeout: float = 30) -> None:
    """Until the process sleeps in read(0, ...) (/proc/PID/syscall: number, then
    the first argument), so that SIGINT reaches the verb, not the interpreter's start-up."""
    read_nr = {"x86_64": "0", "aarch64": "63"}.get(os.uname().machine)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            fields = Path(f"/proc/{pid}/syscall").read_text().split()
        except OSError:
            fields = []
        if read_nr is None and len(fields) > 1:
            time.sleep(3)  # no syscall number known here: give start-up time
            return
        if fields[:2] == [read_nr, "0x0"]:
            return
        time.sleep(0.05)
    raise AssertionError("the command never waited on standard input")


def test_ctrl_c_anywhere_else_is_one_line_and_130() -> None:
    """A verb that does not report its own interruption (policy validate - waiting
    on standard input): one line, exit 130 as a shell reports SIGINT, no traceback."""
    t = Term(["policy", "validate", "-"], stdout_tty=False, stdin=subprocess.PIPE)
    try:
        _wait_blocked_in_read(t.proc.pid)
        t.proc.send_signal(signal.SIGINT)
        code, out, err = t.finish()
    finally:
        if t.proc.stdin:
            t.proc.stdin.close()
        t.close()
    assert code == 130 and out == ""
    assert ESC.sub("", err).strip() == "lockdownctl policy: interrupted before it finished", err


@pytest.mark.parametrize("columns", [60, 200])
def test_watch_summary_fits_the_terminal(columns: int) -> None:
    log = str(REPO / "tests/data/klog/logind-probes/dmesg.txt")
    args = ["watch", "--summary", "--color=never", log]
    _, whole, _ = term(args, stdout_tty=False, env={"COLUMNS": str(columns)})
    _, fitted, err = term(args, env={"COLUMNS": str(columns)})
    assert "Traceback" not in err and "REASON" in fitted
    assert max(len(ln) for ln in fitted.splitlines()) <= columns
    assert max(len(ln) for ln in whole.splitlines()) > 100  # the pipe's lines are whole
    lines = fitted.splitlines()
    first = next(i for i, ln in enumerate(lines) if ln.startswith("REASON"))
    end = next(i for i in range(first, len(lines)) if not lines[i].strip())
    wlines = whole.splitlines()
    wfirst = next(i for i, ln in enumerate(wlines) if ln.startswith("REASON"))
    wend = next(i for i in range(wfirst, len(wlines)) if not wlines[i].strip())
    # The header's own words may break at 60 columns: the offsets are the first body line's.
    body = next(ln for ln in lines[first + 1:end] if ln.startswith("hibernation"))
    assert _column_text(lines[first:end], _starts(body)) == _whole_columns(wlines[wfirst:wend])
    # the lines around the table: only their line breaks differ
    assert re.sub(r"\s", "", "".join(lines[:first] + lines[end:])) == \
        re.sub(r"\s", "", "".join(wlines[:wfirst] + wlines[wend:]))


def test_a_dumb_terminal_gets_progress_without_escapes(tmp_path: Path) -> None:
    """TERM=dumb cannot erase a line: the banner and the Ctrl-C line come as plain lines."""
    t, log = _follow(tmp_path, [], env={"TERM": "dumb"})
    try:
        t.wait_for("err", b"(Ctrl-C to stop)")
        with log.open("a") as fh:
            fh.write(DENIAL)
        t.wait_for("out", b"late")
        t.proc.send_signal(signal.SIGINT)
        code, out, err = t.finish()
    finally:
        t.close()
    assert code == 1 and "\x1b" not in err and "\x1b" not in out
    assert [ln.split(":")[0] for ln in err.splitlines()] == ["lockdownctl watch", "lockdownctl watch"]
    assert "interrupted after" in err.splitlines()[1]
