"""The fuzzers' CI variant: every target in fuzz/ for a fixed few inputs.

``fuzz/run-all --short`` runs each atheris target (coverage-guided, seeded
from tests/data) for 400 inputs; a parser regression that raises anything but
the project's one-line error, hangs or gives an unsupported verdict fails here.
The long runs (1,000,000 inputs per target) are ``fuzz/run-all`` outside CI.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytest.importorskip("atheris")

TARGETS = sorted(p.stem.removeprefix("fuzz_") for p in (REPO / "fuzz").glob("fuzz_*.py"))


def test_every_parser_has_a_target() -> None:
    runner = (REPO / "fuzz" / "run-all").read_text()
    listed = re.findall(r'^    "(\w+)": \(', runner, re.M)
    assert sorted(listed) == TARGETS and len(TARGETS) >= 16


def test_short_run_finds_no_crash(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(REPO / "fuzz" / "run-all"), "--short", "--work", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    rows = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s+[\d.]+\s+0$", proc.stdout, re.M)}
    assert sorted(rows) == TARGETS, proc.stdout
    assert all(n >= 400 for n in rows.values()), rows
