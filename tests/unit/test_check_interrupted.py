"""check --measure cut short by Ctrl-C: what was seen is reported, but a
partial measurement that saw nothing is never a "ready" (the measurement
itself needs root and a BPF LSM: tests/vm/test_check_measure.py)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from lockdownctl.checks import check
from lockdownctl.checks.engine import merge_observed
from lockdownctl.cli.check import _interrupted
from lockdownctl.reasons import catalogue
from lockdownctl.root import Root

ROOTS = Path(__file__).resolve().parents[1] / "data" / "roots"


def _report(observations: list[dict[str, Any]]) -> dict[str, Any]:
    reports = (check(Root(str(p)), "integrity") for p in sorted(ROOTS.iterdir()) if p.is_dir())
    data = next((r for r in reports if r["verdict"] == "ready"), None)
    assert data is not None, "a fixture root that is ready for integrity"
    merge_observed(data, observations, catalogue(), "enforcer audit, 3 s")
    data["measured"] = {"seconds": 3.2, "requested": 60, "interrupted": True, "events": len(observations),
                        "drops": 0, "audited": len(observations)}
    return data


def test_nothing_seen_is_no_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    data = _report([])
    _interrupted(data, argparse.Namespace())
    assert data["verdict"] == "unknown"
    assert any("interrupted after 3.2 of 60 s" in n for n in data["notes"])
    assert capsys.readouterr().err == ("lockdownctl check: interrupted after 3.2 s: measured for 3.2 of 60 s: "
                                       "0 events, 0 findings that break; the audit copy is detached\n")


def test_a_denial_seen_stays_a_finding(capsys: pytest.CaptureFixture[str]) -> None:
    data = _report([{"comm": "head", "exe": "/usr/bin/head", "reason": "dev_mem", "count": 4}])
    _interrupted(data, argparse.Namespace())
    assert data["verdict"] == "not-ready" and data["summary"]["breaks"] == 1
    assert "1 event, 1 finding that break" in capsys.readouterr().err
