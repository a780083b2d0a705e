"""check --measure in a guest: what a running process does is reported as observed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
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


def _interrupt_measure(after: float) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    """check --measure 60, Ctrl-C (SIGINT) after ``after`` seconds of measuring."""
    proc = subprocess.Popen([sys.executable, "-m", "lockdownctl", "check", "--level", "integrity",
                             "--measure", "60", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            # a suite started in the background inherits SIGINT ignored
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        # check's static part runs first: over a minute under TCG on a busy host (6.12)
        deadline = time.monotonic() + 300
        while not Path("/sys/fs/bpf").exists() or not _measuring(proc.pid):
            assert time.monotonic() < deadline and proc.poll() is None, "the audit copy never attached"
            time.sleep(0.2)
        time.sleep(after)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, json.loads(out), err.decode()


def _measuring(pid: int) -> bool:
    """The process holds a BPF link (the audit copy is attached)."""
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        return any(os.readlink(fd) == "anon_inode:bpf_link" for fd in fd_dir.iterdir())
    except OSError:
        return False


@pytest.mark.guest(kernel="all", level="none")
def test_ctrl_c_reports_what_was_measured() -> None:
    loop = subprocess.Popen(["sh", "-c", "while :; do head -c 1 /dev/port >/dev/null; sleep 0.2; done"])
    try:
        code, doc, err = _interrupt_measure(3)
    finally:
        loop.kill()
        loop.wait()
    data = doc["data"]
    assert code == 1, err  # a denial seen is a finding, interrupted or not
    assert data["measured"]["interrupted"] is True and data["measured"]["requested"] == 60
    assert 2 <= data["measured"]["seconds"] < 60, data["measured"]
    assert any(f["reason"] == "dev_mem" and f["subject"]["comm"] == "head"
               for f in data["findings"] if f.get("source") == "observed"), data["findings"]
    assert data["verdict"] == "not-ready"
    assert "lockdownctl check: interrupted after " in err and "measured for" in err, err
    assert "Traceback" not in err, err
    # detached, nothing pinned, nothing denied
    assert not _measuring(os.getpid())
    assert not Path("/sys/fs/bpf/lockdownctl").exists()
    assert subprocess.run(["head", "-c", "1", "/dev/port"], capture_output=True).returncode == 0


@pytest.mark.guest(kernel="all", level="none")
def test_ctrl_c_with_nothing_seen_is_no_verdict() -> None:
    code, doc, err = _interrupt_measure(2)
    data = doc["data"]
    observed = [f for f in data["findings"] if f.get("source") == "observed"]
    assert not observed, observed  # a quiet guest: nothing did what integrity denies
    assert data["measured"]["interrupted"] is True
    breaks = data["summary"]["breaks"]
    # static findings that break decide not-ready on their own; otherwise no verdict
    assert (code, data["verdict"]) == ((1, "not-ready") if breaks else (130, "unknown")), (code, err)
    assert "measured for" in err and "Traceback" not in err, err
