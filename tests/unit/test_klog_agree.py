"""explain, watch and check read every kernel-log line the same way.

There is one recogniser of lockdown lines (klog.parser.classify); this test
feeds every line of every file in tests/data/klog through the three verbs'
own entry points and requires the same answer: (kind, reason, level, comm)
for denials (side effects and SELinux records included), (kind, level,
where) for level-set lines, the count for rate-limit notices, and nothing
for lines that are not about lockdown.

- watch: ``klog.parser.parse_line`` on the raw line (what ``watch FILE`` runs);
- explain: ``cli.explain.run`` with the raw line as its argument;
- check: the kernel-log detector (``checks.kernel_log.detect``) on a context
  whose kernel log is that line's message, as the kernel-log reader delivers
  it (``host.kmsg.LogLine``: the text after the dmesg/syslog/journal prefix).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from lockdownctl.checks import kernel_log
from lockdownctl.checks.engine import Context
from lockdownctl.cli import explain
from lockdownctl.errors import InputError
from lockdownctl.host.kmsg import LogLine
from lockdownctl.klog import LSM_INIT, level_answer, parser, ratelimit_answer
from lockdownctl.reasons import merge
from lockdownctl.root import Root
from tests.conftest import DATA

KLOG = DATA / "klog"
LINES = [(f"{case.name}:{n}", line) for case in sorted(KLOG.iterdir()) if (case / "dmesg.txt").is_file()
         for n, line in enumerate((case / "dmesg.txt").read_text(errors="replace").splitlines(), 1)]
Answer = tuple[Any, ...] | None


def _watch(line: str) -> Answer:
    event = parser.parse_line(line, "file", 1)
    if event is None:
        return None
    if event.kind == "denial":
        return ("denial", event.reason, event.level, event.comm or None)
    if event.kind == "level-set":
        return ("level-set", event.where, event.level)
    if event.kind == "ratelimit":
        return ("ratelimit", event.suppressed)
    return ("unparsed",)


def _explain(line: str, root: Path) -> Answer:
    args = argparse.Namespace(reason=line, btf=None, root=str(root))
    try:
        data = explain.run(args).data
    except InputError as exc:
        if "does not understand" in exc.message:
            return ("unparsed",)
        if "a lockdown reason lockdownctl does not know" in exc.message:
            comm = exc.message.split("(comm ", 1)[1][1:-2] if "(comm " in exc.message else None
            return ("denial", None, None, comm)
        assert "unknown lockdown reason" in exc.message, exc.message
        return None
    got = data["line"]
    if got["kind"] == "denial":
        assert data["reason"]["id"] == got["reason"]
        return ("denial", got["reason"], got["level"], got["comm"])
    if got["kind"] == "level-set":
        assert got["answer"] == level_answer(got["where"], got["level"])
        return ("level-set", got["where"], got["level"])
    if got["kind"] == "ratelimit":
        assert got["answer"] == ratelimit_answer(got["suppressed"], got["what"])
        return ("ratelimit", got["suppressed"])
    return (got["kind"],)  # lsm-init: not a watch event


def _check(line: str, root: Path) -> Answer:
    seconds, _wall, _pid, text = parser.split_prefix(line)
    if text.startswith("{") and (journal := parser._journal(text)) is not None:
        seconds, _wall, text = journal
    ctx = Context(Root(root), "confidentiality", merge(None), {})  # type: ignore[typeddict-item]
    ctx.__dict__["log"] = [LogLine(seconds, text, 1)]  # what read_kernel_log() hands the detectors
    findings = kernel_log.detect(ctx)
    assert len(findings) <= 1
    if findings:
        f = findings[0]
        return ("denial", f.reason, f.level, f.subject.get("comm"))
    notes = [n for n in ctx.notes if n.startswith(ctx.log_path)]
    if not notes:
        return None
    note = notes[0].split(": ", 1)[1]
    if note.startswith("this kernel was locked down") or note.startswith("lockdown was lifted"):
        event = parser.classify_message(text)
        assert event is not None and note == level_answer(event.where or "", event.level)
        return ("level-set", event.where, event.level)
    if note.startswith("the kernel suppressed"):
        return ("ratelimit", int(note.split()[3]))
    if note.startswith("a lockdown line lockdownctl does not understand ("):
        event = parser.classify_message(text)
        assert event is not None and event.kind == "denial" and event.reason is None
        return ("denial", None, None, event.comm)
    assert note.startswith("a lockdown line lockdownctl does not understand"), note
    return ("unparsed",)


CASES = sorted(p.name for p in KLOG.iterdir() if (p / "dmesg.txt").is_file())


@pytest.mark.parametrize("case", CASES)
def test_three_verbs_agree(case: str, tmp_path: Path) -> None:
    for where, line in LINES:
        if not where.startswith(case + ":"):
            continue
        watch = _watch(line)
        got = _explain(line, tmp_path)
        if got == ("lsm-init",):  # explain also reads the LSM list (status's line); watch reports no event
            assert watch is None and LSM_INIT in line, where
        else:
            assert got == watch, where
        if watch is not None and watch[0] == "denial" and watch[1] is None:
            assert _check(line, tmp_path) == ("denial", None, None, watch[3]), where
        else:
            assert _check(line, tmp_path) == watch, where


def test_the_corpus_covers_every_kind() -> None:
    kinds = {a[0] for _, line in LINES if (a := _watch(line)) is not None}
    assert kinds == {"denial", "level-set", "ratelimit", "unparsed"}
    assert len(LINES) > 500


# --- explain on the lines users paste ---------------------------------------------------

@pytest.mark.parametrize(("line", "answer"), [
    ("Kernel is locked down from EFI Secure Boot mode; see man kernel_lockdown.7",
     "this kernel was locked down to integrity by Secure Boot"),
    ("[    0.000000] Kernel is locked down from EFI secure boot; see https://wiki.debian.org/SecureBoot",
     "this kernel was locked down to integrity by Secure Boot"),
    ("Kernel is locked down from command line; see man kernel_lockdown.7",
     "this kernel was locked down by lockdown= on the kernel command line"),
    ("lockdown_is_locked_down: 27 callbacks suppressed", "the kernel suppressed 27 lockdown messages"),
])
def test_explain_answers_level_set_and_rate_limit_lines(line: str, answer: str, tmp_path: Path) -> None:
    from tests.conftest import lockdownctl

    run = lockdownctl("explain", line, "--root", str(tmp_path))
    assert run.code == 0 and run.out.startswith(answer), run.out + run.err
    data = json.loads(lockdownctl("explain", "--json", line, "--root", str(tmp_path)).out)["data"]
    assert data["reason"] is None and data["line"]["answer"].startswith(answer)


@pytest.mark.parametrize(("line", "reason", "what"), [
    ("Could not create tracefs 'kprobe_events' entry", "tracefs", "a side effect of a lockdown denial"),
    ("crc7: loading of unsigned module is rejected", "module_signature", "a side effect of a lockdown denial"),
    ("ACPI: kernel is locked down, ignoring table override", "acpi_tables", "a side effect of a lockdown denial"),
    ('audit: type=1400 audit(1.2:3): avc:  denied  { integrity } for  pid=2 comm="flashrom" '
     'lockdown_reason="/dev/mem,kmem,port" tclass=lockdown permissive=0', "dev_mem", "an SELinux lockdown record"),
    ("Lockdown: a: b: /proc/kcore access is restricted; see man kernel_lockdown.7", "kcore",
     "a lockdown denial (upstream dialect), process 'a: b'"),
])
def test_explain_names_the_reason_of_side_effects(line: str, reason: str, what: str, tmp_path: Path) -> None:
    from tests.conftest import lockdownctl

    run = lockdownctl("explain", line, "--root", str(tmp_path))
    assert run.code == 0 and run.out.startswith(f"{reason} (LOCKDOWN_{reason.upper()}"), run.out + run.err
    assert f"This line:    {what}" in run.out


def test_explain_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    from tests.conftest import lockdownctl

    run = lockdownctl("explain", "devmem", "--root", str(tmp_path))
    assert run.code == 2 and "(did you mean 'dev_mem'?)" in run.err
    run = lockdownctl("explain", "Lockdown: x: use of quantum entanglement is restricted", "--root", str(tmp_path))
    assert run.code == 2 and "'use of quantum entanglement', a lockdown reason lockdownctl does not know" in run.err
    run = lockdownctl("explain", "Lockdown: xx", "--root", str(tmp_path))
    assert run.code == 2 and "does not understand" in run.err


def test_check_reads_a_huge_log_line_in_bounded_time(tmp_path: Path) -> None:
    """A message of 1 MiB of "Lockdown: " with no end made the denial expression quadratic."""
    import time

    ctx = Context(Root(tmp_path), "confidentiality", merge(None), {})  # type: ignore[typeddict-item]
    ctx.__dict__["log"] = [LogLine(1.0, "Lockdown: " * 100_000, 1)]
    start = time.perf_counter()
    assert kernel_log.detect(ctx) == []
    assert time.perf_counter() - start < 5
    assert any("does not understand" in n for n in ctx.notes)
