"""The VM tier's splat checker against its golden cases (tests/vm/splat_cases)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.vm.splat import ALLOWED, PATTERNS, allowed_reason, find_splats, main

CASES = Path(__file__).resolve().parent.parent / "vm" / "splat_cases"
CASE_NAMES = sorted(p.name for p in CASES.iterdir() if p.is_dir())


def test_cases_cover_clean_and_dirty() -> None:
    expected = {name: (CASES / name / "expected.txt").read_text() for name in CASE_NAMES}
    assert sum(1 for text in expected.values() if not text) >= 1
    assert sum(1 for text in expected.values() if text) >= 3


@pytest.mark.parametrize("case", CASE_NAMES)
def test_golden_case(case: str) -> None:
    dmesg = (CASES / case / "dmesg.txt").read_text()
    expected = (CASES / case / "expected.txt").read_text().splitlines()
    assert find_splats(dmesg) == expected


def test_planted_warning_in_clean_dmesg_is_caught() -> None:
    lines = (CASES / "clean-6.12-confidentiality" / "dmesg.txt").read_text().splitlines()
    planted = "[   13.500000] WARNING: CPU: 0 PID: 1 at security/lockdown/lockdown.c:63 lockdown_is_locked_down+0x40"
    lines.insert(len(lines) // 2, planted)
    assert find_splats("\n".join(lines)) == [planted]


@pytest.mark.parametrize(
    "line",
    [
        "[    1.000000] BUG: scheduling while atomic: swapper/0/1/0x00000002",
        "<4>[    1.000000] WARNING: CPU: 0 PID: 1 at mm/page_alloc.c:4455 __alloc_pages+0x2c8/0x330",
        "kernel BUG at mm/slub.c:435!",  # dmesg -t: no timestamp
        "[    2.000000] watchdog: BUG: soft lockup - CPU#0 stuck for 26s! [python3:412]",
        "[    3.000000] general protection fault, probably for non-canonical address 0xdead: 0000 [#1] SMP",
        "[    4.000000] ---[ end Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b ]---",
    ],
)
def test_reported(line: str) -> None:
    assert find_splats(line) == [line]


@pytest.mark.parametrize(
    "line",
    [
        '[    0.852571] PCI: Using host bridge windows from ACPI; if necessary, use "pci=nocrs" and report a bug',
        "[    0.171706] RCU Tasks Trace: Setting shift to 1 and lim to 1 rcu_task_cb_adjust=1",
        "[    0.000000] Command line: console=ttyS0 panic=-1 oops=panic warning: BUG: KASAN",
        "[    0.075571] Kernel command line: console=ttyS0 Oops WARNING: general protection fault",
    ],
)
def test_not_reported(line: str) -> None:
    assert find_splats(line) == []


def test_allow_list_entries_are_each_exercised() -> None:
    # Every entry must be needed by some golden case, or it is a hole nobody tests.
    lines = [
        line
        for case in CASE_NAMES
        for line in (CASES / case / "dmesg.txt").read_text().splitlines()
        if any(p.search(line) for p in PATTERNS)
    ]
    used = {allowed_reason(line) for line in lines}
    assert {why for _, why in ALLOWED} <= used


def test_header_lines_are_skipped() -> None:
    assert find_splats("# produced by: a WARNING: in the provenance header\n[    1.0] fine") == []


def test_cli_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(CASES / "clean-6.12-confidentiality" / "dmesg.txt")]) == 0
    assert main([str(CASES / "warning-call-trace" / "dmesg.txt")]) == 1
    assert "WARNING: CPU: 1 PID: 412" in capsys.readouterr().out


def test_guest_splats_reads_the_console_where_dmesg_wrapped() -> None:
    from tests.vm.splat import guest_splats

    warning = "[   12.500000] WARNING: CPU: 1 PID: 77 at kernel/bpf/trampoline.c:42 bpf_trampoline_update+0x1/0x2"
    dmesg = "[   30.000000] flood line\n" * 3  # the ring after a flood: the warning is gone
    console = ("[    0.000000] Linux version 6.12\n" + warning + "\nvirtme: waiting for virtiofsd\n"
               "tests/vm/x.py::t WARNING: a test's own output, not a kernel line\n" + dmesg)
    assert guest_splats(console, dmesg) == [warning]
    assert guest_splats(console, dmesg + warning + "\n") == [warning]  # in both: reported once
    assert guest_splats(console, None) == [warning, "tests/vm/x.py::t WARNING: a test's own output, not a kernel "
                                           "line"]  # no dmesg saved (panic, hang): the whole console
    assert guest_splats(console.replace("WARNING", "warning"), dmesg) == []
