"""benchmarks/watch.py --kmsg-flood: the README rows of tests/vm/test_watch_flood.py's
figures, and exit 1 unless every kernel's accounting is exact."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "benchmarks" / "watch.py"

# As the guest test wrote it on 6.12 (7 Dec 2026).
FIGURES = {"kernel": "6.12.118+deb12-amd64", "seconds": 50.6, "quiet_vmhwm_kib": 13516, "flood_vmhwm_kib": 13284,
           "denials": 83703, "kernel_printed": 30, "kernel_suppressed": 83673, "watcher_printed": 30,
           "watcher_suppressed": 83673, "watcher_lost_records": 0, "recorder_records": 50290,
           "recorder_lost_records": 0, "recorder_gaps": [], "batches": 250, "flood_records": 50250,
           "flood_seconds": 10, "writer_waited_s": 6.664, "recorder_markers": 250, "watcher_markers": 250}


def run(results: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BENCH), "--kmsg-flood", str(results)],
                          capture_output=True, text=True, check=False)


def write(results: Path, kernel: str, **changes: object) -> None:
    (results / f"{kernel}-confidentiality").mkdir(parents=True)
    (results / f"{kernel}-confidentiality" / "watch_flood.json").write_text(json.dumps({**FIGURES, **changes}))


def test_exact_figures_make_a_row_and_exit_0(tmp_path: Path) -> None:
    write(tmp_path, "6.12")
    proc = run(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "| 6.12 | 50,250 (5,025) | 83,703 | 30 + 83,673 | 30 + 83,673 | 0, 0 | 13,516 / 13,284 KiB | 50.6 |" \
        in proc.stdout.splitlines()


def test_a_watcher_short_of_the_kernel_exits_1(tmp_path: Path) -> None:
    write(tmp_path, "6.12")
    write(tmp_path, "7.3", watcher_suppressed=800, watcher_lost_records=66414)  # the first 7.3 run's kind
    proc = run(tmp_path)
    assert proc.returncode == 1
    assert len([line for line in proc.stdout.splitlines() if line.startswith("| 7.3 |")]) == 1


def test_no_figures_is_an_input_error(tmp_path: Path) -> None:
    proc = run(tmp_path)
    assert proc.returncode == 2 and "no */watch_flood.json" in proc.stderr
