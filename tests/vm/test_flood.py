"""A denial flood against the enforcer (guests, every kernel family).

Many processes open a tracefs file as fast as they can while the enforcer
denies it (then audits it) and ``enforce events --follow`` reads the ring
buffer (tests/vm/flood.py does the work, benchmarks/flood.py prints its
figures). Afterwards:

- every attempt got EPERM (audit mode: every attempt succeeded), counted by
  the producers themselves;
- the enforcer's counters for the reason equal the attempts, and
  counters == events delivered + ring-buffer drops, exactly, per reason and
  verdict; nothing is left in the ring buffer;
- the follower caught up, stopped cleanly on SIGTERM and its own account
  (delivered, dropped) agrees;
- the kernel log holds no splat.

The count: 1,000,000, as on real hardware, where it takes about 10 s. The
VM tier runs under TCG (an emulated CPU); with round-robin TCG the flood
itself took 16 to 40 s per family here (benchmarks/flood.py, README), so
each test claims 300 s of its boot's hang guard. LOCKDOWNCTL_FLOOD_COUNT
changes the count.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.vm.flood import flood
from tests.vm.splat import find_splats

COUNT = int(os.environ.get("LOCKDOWNCTL_FLOOD_COUNT", "1000000"))
PROCS = 8


def check(result: dict[str, object], audit: bool) -> None:
    if "LOCKDOWNCTL_GUEST_RESULTS" in os.environ:  # the figures, for the README
        name = f"flood-{'audit' if audit else 'enforce'}.json"
        (Path(os.environ["LOCKDOWNCTL_GUEST_RESULTS"]) / name).write_text(json.dumps(result))
    n = COUNT + 1  # the flood and the sentinel denial that shows the follower is reading
    producers = result["producers"]
    assert isinstance(producers, dict)
    if audit:
        assert producers == {**producers, "eperm": 0, "ok": COUNT, "other": 0}, producers
    else:  # the enforcer kept denying: every attempt got EPERM
        assert producers == {**producers, "eperm": COUNT, "ok": 0, "other": 0}, producers
    verdict = "audited" if audit else "denied"
    value = str(result["reason_value"])
    expected = {"denied": 0, "audited": 0, "excepted": 0, verdict: n}
    assert result["counters"] == {value: expected}, result["counters"]
    drops, delivered = result["drops"], result["delivered"]
    assert isinstance(drops, int) and isinstance(delivered, dict)
    assert set(delivered) <= {f"tracefs/{verdict}"}, delivered  # no event of another reason or verdict
    assert delivered.get(f"tracefs/{verdict}", 0) + drops == n, (delivered, drops)  # exact accounting
    assert result["left_in_ring"] == 0 and result["caught_up"] is True, result
    assert result["follower_exit"] == 0 and result["unterminated"] == "", result
    envelope = result["follower_envelope"]
    assert isinstance(envelope, dict) and envelope["status"] == "ok", envelope
    assert envelope["data"] == {"delivered": result["delivered_total"], "dropped": drops}, envelope
    dmesg = subprocess.run(["dmesg"], capture_output=True, text=True, check=True).stdout
    assert find_splats(dmesg) == []


@pytest.mark.guest(kernel="all", level="none", seconds=300)
def test_denial_flood_is_counted_exactly() -> None:
    check(flood(COUNT, PROCS, audit=False), audit=False)


@pytest.mark.guest(kernel="all", level="none", seconds=300)
def test_audit_flood_is_counted_exactly() -> None:
    check(flood(COUNT, PROCS, audit=True), audit=True)
