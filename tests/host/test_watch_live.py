"""watch against this machine's own kernel log, compared with what dmesg prints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from tests.conftest import REPO, lockdownctl
from tests.host.conftest import require, require_root, require_tool


def _dmesg() -> list[str]:
    dmesg = require_tool("dmesg")
    proc = subprocess.run([dmesg], capture_output=True, text=True, check=False)
    require(proc.returncode == 0, f"dmesg cannot read the kernel log: {proc.stderr.strip()}")
    return proc.stdout.splitlines()


def test_watch_finds_the_level_set_line_dmesg_shows() -> None:
    require_root()
    lines = _dmesg()
    truth = [line.split("Kernel is locked down from ", 1)[1].split(";", 1)[0]
             for line in lines if "Kernel is locked down from " in line]
    require(bool(truth), "this kernel's log has no 'Kernel is locked down from' line (not locked down, or rotated)")
    run = lockdownctl("watch", "--json", "--summary")
    assert "Traceback" not in run.err
    data = run.json()["data"]
    assert [c["where"] for c in data["level_changes"]] == truth
    denials = [line for line in lines if "Lockdown: " in line and " is restricted" in line]
    # The ring buffer may have gained lines between the two reads, never lost them.
    assert data["denials"] >= len(denials)


def test_watch_reads_dmesg_output_like_the_kernel_log() -> None:
    require_root()
    lines = _dmesg()
    proc = subprocess.run([sys.executable, "-m", "lockdownctl", "watch", "--json", "--summary", "-"],
                          input="\n".join(lines) + "\n", capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    data = json.loads(proc.stdout)["data"]
    assert data["lines"] == len(lines)
    assert [c["lineno"] for c in data["level_changes"]] == [
        n for n, line in enumerate(lines, 1) if "Kernel is locked down from " in line]


def test_follow_kmsg_stops_cleanly_on_sigint() -> None:
    require_root()
    require(os.path.exists("/dev/kmsg"), "no /dev/kmsg")
    # A test run started in the background (`... &` in a script) inherits
    # SIGINT ignored, and an ignored SIGINT stays ignored across exec (as it
    # should for a background job): the watcher gets the default disposition,
    # as a foreground command has.
    proc = subprocess.Popen([sys.executable, "-m", "lockdownctl", "watch", "--follow", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO / "src")},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        time.sleep(2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert b"Traceback" not in err, err
    envelope = json.loads(out.splitlines()[-1])
    assert envelope["command"] == "watch" and envelope["data"]["interrupted"] is True
