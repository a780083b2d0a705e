"""audit on this machine's kernel: the level and its source, read here by other means."""

from __future__ import annotations

import gzip
import re
import subprocess
from pathlib import Path

from tests.conftest import lockdownctl
from tests.host.conftest import require, require_root, require_tool


def _level_by_hand() -> str:
    unshare = require_tool("unshare")
    script = ("mountpoint -q /sys/kernel/security || mount -t securityfs securityfs /sys/kernel/security; "
              "cat /sys/kernel/security/lockdown")
    out = subprocess.run([unshare, "--mount", "--propagation", "private", "sh", "-c", script],
                         capture_output=True, text=True, check=True).stdout
    match = re.search(r"\[(\w+)\]", out)
    assert match is not None, out
    return match.group(1)


def _config() -> str:
    require(Path("/proc/config.gz").exists(), "no /proc/config.gz on this kernel")
    return gzip.decompress(Path("/proc/config.gz").read_bytes()).decode()


def test_audit_says_how_integrity_is_set_and_does_not_fail_what_it_covers() -> None:
    require_root()
    level = _level_by_hand()
    forced = re.findall(r"^CONFIG_LOCK_DOWN_KERNEL_FORCE_(INTEGRITY|CONFIDENTIALITY)=y$", _config(), re.M)
    require(level in ("integrity", "confidentiality"), f"this kernel is at {level}: nothing is covered")
    before = Path("/proc/self/mountinfo").read_text()
    run = lockdownctl("audit", "--json", "--target", "integrity")
    assert Path("/proc/self/mountinfo").read_text() == before, "audit changed the host's mount table"
    data = run.json()["data"]
    assert data["lockdown"]["level"] == level
    if forced:
        assert data["lockdown"]["source"] == "kconfig"
        assert data["lockdown"]["detail"] == f"CONFIG_LOCK_DOWN_KERNEL_FORCE_{forced[0]}=y"
    verdicts = {c["id"]: c for c in data["checks"]}
    assert verdicts["lockdown_level"]["verdict"] == "ok"
    # Every check that the level stands in for passes, whatever the build left in (DEVMEM, DEBUG_FS...).
    for check in data["checks"]:
        leaves = [leaf for leaf in check["leaves"] if leaf["source"] == "runtime" and leaf["name"] == "level"]
        if leaves and leaves[0]["expected"] == "at least integrity":
            assert check["verdict"] == "ok", check["id"]
    # ...and the text report names the kernel configuration as the source.
    text = lockdownctl("audit").out
    assert "forced by kernel configuration" in text if forced else level in text
    assert run.code == (1 if data["summary"]["fail"] else 0)


def test_audit_reads_live_sysctls_like_sysctl() -> None:
    sysctl = require_tool("sysctl")
    data = lockdownctl("audit", "--json", "--show", "all").json()["data"]
    for check in data["checks"]:
        for leaf in check["leaves"]:
            if leaf["source"] == "sysctl" and leaf["actual"] is not None:
                truth = subprocess.run([sysctl, "-n", leaf["name"]], capture_output=True, text=True,
                                       check=True).stdout.strip()
                assert leaf["actual"] == truth, leaf
