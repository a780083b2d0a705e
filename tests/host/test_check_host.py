"""`lockdownctl check` on this machine: findings carry evidence that the test
confirms by reading the same objects itself.

The test plants one real trigger it owns: a process holding
/sys/kernel/tracing/trace_pipe open, with tracefs mounted in that process's
own private mount namespace (util-linux unshare), so the host's mount table
is never touched. Under confidentiality that open is refused.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

from tests.conftest import lockdownctl
from tests.host.conftest import require, require_root, require_tool


def _tracing_user() -> subprocess.Popen[bytes]:
    unshare = require_tool("unshare")
    proc = subprocess.Popen(
        [
            unshare,
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            "mount -t tracefs tracefs /sys/kernel/tracing && exec sleep 120 3</sys/kernel/tracing/trace_pipe",
        ]
    )
    for _ in range(100):  # wait until the exec happened and fd 3 is there
        try:
            if os.readlink(f"/proc/{proc.pid}/fd/3") == "/sys/kernel/tracing/trace_pipe":
                return proc
        except OSError:
            pass
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    require(False, "could not start a tracefs user in a private mount namespace")
    raise AssertionError("unreachable")


def _mountinfo() -> str:
    return Path("/proc/self/mountinfo").read_text()


def test_check_confidentiality_on_this_machine() -> None:
    require_root()
    require(Path("/sys/kernel/tracing").is_dir(), "no /sys/kernel/tracing mount point")
    before = _mountinfo()
    proc = _tracing_user()
    try:
        run = lockdownctl("check", "--level", "confidentiality", "--json")
    finally:
        proc.kill()
        proc.wait()
    assert _mountinfo() == before, "check changed the host's mount table"
    env = run.json()
    assert env["command"] == "check" and run.code in (0, 1), run.err
    data = env["data"]
    assert data["findings"], "no findings on this machine"
    for f in data["findings"]:
        assert f["evidence"] and all(e["where"] and e["text"] for e in f["evidence"]), f

    # The planted tracefs user, found through /proc/PID/fd/3.
    ours = [f for f in data["findings"] if f["subject"].get("pid") == proc.pid]
    assert ours, [f["title"] for f in data["findings"]]
    f = ours[0]
    assert (f["reason"], f["confidence"], f["level"]) == ("tracefs", "breaks", "confidentiality")
    assert f["evidence"][0]["where"] == f"/proc/{proc.pid}/fd/3"
    assert f["subject"]["exe"] == os.path.realpath(require_tool("sleep"))

    # Every package finding names a package dpkg says is installed, at that line.
    status = Path("/var/lib/dpkg/status").read_text().splitlines()
    for f in data["findings"]:
        for e in f["evidence"]:
            if e["kind"] == "package":
                line = int(e["where"].rsplit(":", 1)[1])
                assert status[line - 1] == f"Package: {e['text'].split()[0]}"
    # Level as securityfs says, and compiled-out features as /proc/config.gz says.
    dmesg = subprocess.run([require_tool("dmesg")], capture_output=True, text=True, check=True).stdout
    if m := re.search(r"Kernel is locked down from (.+?); see man", dmesg):
        assert data["current"]["level"] in ("integrity", "confidentiality"), m.group(1)
    if Path("/proc/config.gz").exists():
        import gzip

        config = gzip.decompress(Path("/proc/config.gz").read_bytes()).decode()
        hibernation_off = "CONFIG_HIBERNATION=y" not in config
        assert any(p["id"] == "compiled-out:hibernation" for p in data["preconditions"]) == hibernation_off


def test_check_text_on_this_machine() -> None:
    require_root()
    run = lockdownctl("check", "--level", "confidentiality")
    assert run.code in (0, 1) and "Traceback" not in run.err
    assert re.search(r"^\d+ breaks, \d+ likely, \d+ info: ", run.out, re.M)
