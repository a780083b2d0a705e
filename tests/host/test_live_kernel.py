"""status, the catalogue and the readers against this machine's kernel.

Every expected value is read here from the kernel by other means (util-linux
unshare + mount, bpftool, dmesg, zcat), never typed in.
"""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
from pathlib import Path

from lockdownctl.btf import find_func_id, read_lockdown_enum
from lockdownctl.reasons import catalogue
from tests.conftest import lockdownctl
from tests.host.conftest import require, require_root, require_tool


def _securityfs_by_hand() -> dict[str, str]:
    """Read securityfs the way an administrator would, in a private namespace."""
    unshare = require_tool("unshare")
    script = ("mountpoint -q /sys/kernel/security || mount -t securityfs securityfs /sys/kernel/security; "
              "cat /sys/kernel/security/lockdown; echo ---; cat /sys/kernel/security/lsm")
    out = subprocess.run([unshare, "--mount", "--propagation", "private", "sh", "-c", script],
                         capture_output=True, text=True, check=True).stdout
    lockdown, lsm = out.split("---\n")
    return {"lockdown": lockdown.strip(), "lsm": lsm.strip()}


def _mountinfo() -> str:
    return Path("/proc/self/mountinfo").read_text()


def test_status_agrees_with_securityfs() -> None:
    require_root()
    truth = _securityfs_by_hand()
    level = re.search(r"\[(\w+)\]", truth["lockdown"])
    assert level is not None
    before = _mountinfo()
    run = lockdownctl("status", "--json")
    assert _mountinfo() == before, "status changed the host's mount table"
    data = run.json()["data"]
    assert run.code == 0
    assert data["level"] == level.group(1)
    assert data["level_read_from"] == "securityfs"
    assert data["lsm"]["active"] == truth["lsm"].split(",")
    assert data["lsm"]["lockdown_active"] == ("lockdown" in truth["lsm"].split(","))


def test_status_source_matches_kernel_log_and_config() -> None:
    require_root()
    dmesg = subprocess.run([require_tool("dmesg")], capture_output=True, text=True, check=True).stdout
    sets = re.findall(r"Kernel is locked down from (.+?); see man", dmesg)
    require(bool(sets), "the kernel log no longer holds the 'Kernel is locked down from' line")
    data = lockdownctl("status", "--json").json()["data"]
    assert any(sets[-1] in e["text"] for e in data["source"]["evidence"])
    if Path("/proc/config.gz").exists():
        config = gzip.decompress(Path("/proc/config.gz").read_bytes()).decode()
        forced = re.findall(r"^CONFIG_LOCK_DOWN_KERNEL_FORCE_(INTEGRITY|CONFIDENTIALITY)=y$", config, re.M)
        assert data["forced_by_kconfig"] == (forced[0].lower() if forced else None)
        if sets[-1] == "Kernel configuration":
            assert data["source"]["kind"] == "kconfig"
            assert data["source"]["detail"] == f"CONFIG_LOCK_DOWN_KERNEL_FORCE_{forced[0]}=y"


def test_expect_follows_the_real_level() -> None:
    require_root()
    level = re.search(r"\[(\w+)\]", _securityfs_by_hand()["lockdown"])
    assert level is not None
    order = ["none", "integrity", "confidentiality"]
    for expect in order:
        run = lockdownctl("status", "--expect", expect)
        assert run.code == (0 if order.index(level.group(1)) >= order.index(expect) else 1)


def test_bpf_lsm_verdict_agrees_with_bpftool() -> None:
    """bpftool's own probe and our trial load must agree on LSM programs."""
    require_root()
    probe = subprocess.run([require_tool("bpftool"), "feature", "probe", "kernel"],
                           capture_output=True, text=True, check=False).stdout
    line = next((ln for ln in probe.splitlines() if "program_type lsm " in ln), None)
    require(line is not None, "bpftool does not report program_type lsm")
    assert line is not None
    data = lockdownctl("status", "--json").json()["data"]["bpf_lsm"]
    if "NOT available" in line:
        assert data["trial_load"] == "refused" and data["usable"] is False
        assert data["errno"] and data["fix"]
    else:
        assert data["trial_load"] == "ok"


def test_bpf_lsm_refusal_is_reported_in_text() -> None:
    require_root()
    data = lockdownctl("status", "--json").json()["data"]["bpf_lsm"]
    require(data["trial_load"] == "refused", "this kernel accepts LSM programs: no refusal path to see")
    run = lockdownctl("status")
    assert f"listed, but the kernel refuses LSM programs: {data['errno']} at load" in run.out


def _bpftool_enum() -> list[tuple[str, int]]:
    raw = subprocess.run([require_tool("bpftool"), "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "raw"],
                         capture_output=True, text=True, check=True).stdout
    block = raw.split("ENUM 'lockdown_reason'", 1)[1].split("\n[", 1)[0]
    return [(m.group(1), int(m.group(2))) for m in re.finditer(r"'(LOCKDOWN_\w+)' val=(-?\d+)", block)]


def test_btf_reader_agrees_with_bpftool() -> None:
    require(Path("/sys/kernel/btf/vmlinux").exists(), "no /sys/kernel/btf/vmlinux")
    enum = read_lockdown_enum()
    assert enum is not None
    assert enum.members == _bpftool_enum()


def test_catalogue_knows_every_reason_of_this_kernel() -> None:
    require(Path("/sys/kernel/btf/vmlinux").exists(), "no /sys/kernel/btf/vmlinux")
    members = dict(_bpftool_enum())
    cat = catalogue()
    assert cat.from_btf and cat.unknown == ()
    for reason in cat.reasons:
        if reason.on_kernel:
            assert members[reason.enum] == reason.value
            expected = "integrity" if reason.value < members["LOCKDOWN_INTEGRITY_MAX"] else "confidentiality"
            assert reason.level == expected


def test_func_id_agrees_with_bpftool() -> None:
    require(Path("/sys/kernel/btf/vmlinux").exists(), "no /sys/kernel/btf/vmlinux")
    raw = subprocess.run([require_tool("bpftool"), "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "raw"],
                         capture_output=True, text=True, check=True).stdout
    match = re.search(r"^\[(\d+)\] FUNC 'bpf_lsm_locked_down'", raw, re.M)
    require(match is not None, "no bpf_lsm_locked_down in this kernel's BTF (no BPF LSM)")
    assert match is not None
    data = Path("/sys/kernel/btf/vmlinux").read_bytes()
    assert find_func_id(data, "/sys/kernel/btf/vmlinux", "bpf_lsm_locked_down") == int(match.group(1))


def test_explain_covers_every_reason_of_this_kernel() -> None:
    require(Path("/sys/kernel/btf/vmlinux").exists(), "no /sys/kernel/btf/vmlinux")
    for name, _value in _bpftool_enum():
        if name.endswith("_MAX") or name == "LOCKDOWN_NONE":
            continue
        run = lockdownctl("explain", name)
        assert run.code == 0 and "on this kernel" in run.out.splitlines()[0], name


def test_status_without_root_says_what_it_could_not_read(tmp_path: Path) -> None:
    require_root()
    require(not Path("/sys/kernel/security/lockdown").exists(), "securityfs is mounted on this host")
    # A copy of the interpreter's environment is not reachable for nobody when it
    # lives under /root; run the module from a world-readable path instead.
    probe = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            os.path.realpath(sys.executable), "-c", "pass"], capture_output=True, check=False)
    require(probe.returncode == 0, "the test interpreter is not executable by an unprivileged user")
    run = lockdownctl("status", "--json", user="65534")
    assert run.code == 0, run.err
    data = run.json()["data"]
    assert data["level"] is None or data["level_read_from"] == "inferred"
    assert any("needs root" in n for n in data["notes"])
    assert data["bpf_lsm"]["trial_load"] == "not-tried"
