"""check --measure in a guest: what a running process does is reported as observed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import lockdownctl_inproc as lockdownctl


@pytest.mark.guest(kernel="all", level="none")
def test_measure_reports_a_running_dev_port_reader() -> None:
    # A loop that reads /dev/port (allowed at none, refused at integrity).
    loop = subprocess.Popen(["sh", "-c", "while :; do head -c 1 /dev/port >/dev/null; sleep 0.2; done"])
    try:
        run = lockdownctl("check", "--level", "integrity", "--measure", "5", "--json")
    finally:
        loop.kill()
        loop.wait()
    assert run.code == 1, run.err  # something breaks
    data = run.json()["data"]
    observed = [f for f in data["findings"] if f.get("source") == "observed"]
    heads = [f for f in observed if f["reason"] == "dev_mem" and f["subject"]["comm"] == "head"]
    assert heads, (data["measured"], [(f["reason"], f["subject"], f.get("count")) for f in observed])
    assert heads[0]["count"] >= 1 and heads[0]["confidence"] == "breaks"
    assert data["measured"]["audited"] == data["measured"]["events"] + data["measured"]["drops"]
    # nothing stays loaded and nothing was denied
    assert not Path("/sys/fs/bpf/lockdownctl").exists()
    assert subprocess.run(["head", "-c", "1", "/dev/port"], capture_output=True).returncode == 0
