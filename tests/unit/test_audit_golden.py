"""audit on real kernel configurations: golden outputs, and malformed inputs.

The configs are the real Debian 12 and build-host files of tests/data/kconfig;
the command lines are Debian's default boot line with lockdown=/lsm= variants,
this host's /proc/cmdline, and the .cmdline section of a real PE built from
systemd-boot's stub (tests/data/audit/README.md). Regenerate after a reviewed
catalogue change with ``LOCKDOWNCTL_REGEN=1 pytest tests/unit/test_audit_golden.py``
(or ``python -m tests.unit.test_audit_golden``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DATA, lockdownctl

AUDIT = DATA / "audit"
GOLDEN = AUDIT / "golden"
BAD = AUDIT / "malformed"
K61 = "kconfig/config-6.1.0-56-amd64"
K612 = "kconfig/config-6.12.117+deb12-amd64"
K618 = "kconfig/config-6.18.44-fc-v657"
DEBIAN_BOOT = "BOOT_IMAGE=/boot/vmlinuz-{rel} root=UUID=3b3e0f7e-5f0c-4c1e-9d55-0d2b2f4f6a11 ro quiet"

# case -> arguments ({data} = tests/data)
CASES: dict[str, list[str]] = {
    "debian-6.1-default": ["--config", f"{{data}}/{K61}", "--cmdline", DEBIAN_BOOT.format(rel="6.1.0-56-amd64")],
    "debian-6.1-cmdline-integrity": ["--config", f"{{data}}/{K61}", "--cmdline",
                                     DEBIAN_BOOT.format(rel="6.1.0-56-amd64") + " lockdown=integrity"],
    "debian-6.1-lsm-without-lockdown": ["--config", f"{{data}}/{K61}", "--cmdline",
                                        DEBIAN_BOOT.format(rel="6.1.0-56-amd64") + " lsm=apparmor lockdown=integrity"],
    "debian-6.12-default-confidentiality": ["--target", "confidentiality", "--config", f"{{data}}/{K612}",
                                            "--cmdline", DEBIAN_BOOT.format(rel="6.12.117+deb12-amd64")],
    "debian-6.12-cmdline-confidentiality": ["--target", "confidentiality", "--config", f"{{data}}/{K612}",
                                            "--cmdline", DEBIAN_BOOT.format(rel="6.12.117+deb12-amd64")
                                            + " lockdown=confidentiality"],
    "debian-6.12-uki": ["--target", "confidentiality", "--config", f"{{data}}/{K612}",
                        "--uki", "{data}/audit/uki/uki-cmdline.efi"],
    "host-6.18-integrity": ["--config", f"{{data}}/{K618}", "--cmdline", "{data}/audit/cmdline-host-6.18.txt",
                            "--sysctl", "{data}/audit/sysctl-host-6.18.txt"],
    "host-6.18-confidentiality": ["--target", "confidentiality", "--config", f"{{data}}/{K618}", "--cmdline",
                                  "{data}/audit/cmdline-host-6.18.txt", "--sysctl",
                                  "{data}/audit/sysctl-host-6.18.txt"],
    "host-6.18-fragment-confidentiality": ["--target", "confidentiality", "--fragment", "--config",
                                           f"{{data}}/{K618}"],
}


def run_case(name: str) -> tuple[int, Any, str]:
    args = [a.replace("{data}", str(DATA)) for a in CASES[name]]
    run = lockdownctl("audit", "--json", *args)
    text = lockdownctl("audit", *args).out
    envelope = json.loads(run.out.replace(str(DATA), "<data>"))
    return run.code, envelope, text.replace(str(DATA), "<data>")


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str) -> None:
    code, envelope, text = run_case(name)
    if os.environ.get("LOCKDOWNCTL_REGEN") == "1":  # the one switch every golden test reads
        (GOLDEN / name).mkdir(parents=True, exist_ok=True)
        (GOLDEN / name / "expected.json").write_text(json.dumps(envelope, indent=2) + "\n")
        (GOLDEN / name / "expected.txt").write_text(text)
    expected = json.loads((GOLDEN / name / "expected.json").read_text())
    assert envelope == expected
    assert code == envelope["exit_code"]
    assert text == (GOLDEN / name / "expected.txt").read_text()


def test_every_golden_dir_has_a_case() -> None:
    assert {p.name for p in GOLDEN.iterdir()} == set(CASES)


def test_golden_verdicts_that_matter() -> None:
    """The few facts the golden files must never lose, stated by hand."""
    def checks(name: str) -> dict[str, str]:
        data = json.loads((GOLDEN / name / "expected.json").read_text())["data"]
        return {c["id"]: c["verdict"] for c in data["checks"]}

    default = checks("debian-6.1-default")
    assert default["lockdown_level"] == "fail" and default["devmem"] == "fail"
    locked = checks("debian-6.1-cmdline-integrity")
    assert locked["lockdown_level"] == "ok" and locked["devmem"] == "ok" and locked["x86_msr"] == "ok"
    # SECURITY_LOCKDOWN_LSM_EARLY=y: lsm= without lockdown does not switch it off
    assert checks("debian-6.1-lsm-without-lockdown")["lsm_lists_lockdown"] == "ok"
    host = checks("host-6.18-integrity")
    assert host["lockdown_level"] == "ok" and "fail" not in host.values()
    assert checks("host-6.18-confidentiality")["proc_kcore"] == "ok"  # PROC_KCORE is not set
    assert checks("host-6.18-confidentiality")["tracefs"] == "fail"  # FTRACE=y and only integrity


CASES_BAD = {
    "config-bad-line": (["--config"], "config-bad-line:3: not a kernel config line"),
    "config-duplicate": (["--config"], "config-duplicate:7: CONFIG_KEXEC assigned again (first on line 6)"),
    "sysctl-bad-line": (["--sysctl"], "sysctl-bad-line:2: not a 'key = value' line"),
    "sysctl-duplicate": (["--sysctl"], "sysctl-duplicate:3: kernel.kptr_restrict given again (first on line 1)"),
    "rules-duplicate-key.yaml": (["--rules"], "rules-duplicate-key.yaml:5: duplicate key 'x86_msr'"),
    "rules-bad-expected.yaml": (["--rules"], "rules-bad-expected.yaml:6: expected value 'is nt set' does not parse"),
    "rules-unknown-reason.yaml": (["--rules"], "rules-unknown-reason.yaml:7: unknown lockdown reason 'kprobe'"),
    "rules-unknown-check.yaml": (["--rules"], "rules-unknown-check.yaml:2: skip: unknown check 'no_such_check'"),
    "rules-not-yaml.yaml": (["--rules"], "rules-not-yaml.yaml:2: not valid YAML"),
    "rules-nul-character.yaml": (["--rules"],
                                 "rules-nul-character.yaml:3: not valid YAML: character U+0000 is not allowed"),
    "rules-override-combined.yaml": (["--rules"], "rules-override-combined.yaml:3: devmem combines several"),
    "uki-not-pe.efi": (["--uki"], "uki-not-pe.efi: not a PE image (UKI)"),
}


def test_every_malformed_file_has_a_case() -> None:
    assert {p.name for p in BAD.iterdir()} == set(CASES_BAD)


@pytest.mark.parametrize("name", sorted(CASES_BAD))
def test_malformed(name: str) -> None:
    option, message = CASES_BAD[name]
    extra = ["--config", str(DATA / K61)] if option != ["--config"] else []
    run = lockdownctl("audit", *extra, *option, str(BAD / name))
    assert run.code == 2 and run.out == ""
    lines = run.err.splitlines()
    assert len(lines) == 1 and "Traceback" not in run.err
    assert lines[0].startswith(f"lockdownctl: error: {BAD}/") and message in lines[0], lines[0]
    env = lockdownctl("audit", "--json", *extra, *option, str(BAD / name)).json()
    assert env["exit_code"] == 2 and env["errors"][0]["code"] == "input"


def test_uki_without_cmdline_section(tmp_path: Path) -> None:
    """A real PE whose section is renamed: no .cmdline, a clear error."""
    data = (AUDIT / "uki" / "uki-cmdline.efi").read_bytes()
    assert data.count(b".cmdline") >= 1
    bad = tmp_path / "no-cmdline.efi"
    bad.write_bytes(data.replace(b".cmdline", b".notcmdl", 1))
    run = lockdownctl("audit", "--uki", str(bad))
    assert run.code == 2 and f"{bad}: no .cmdline section" in run.err


def regenerate() -> None:
    for name in sorted(CASES):
        _code, envelope, text = run_case(name)
        out = GOLDEN / name
        out.mkdir(parents=True, exist_ok=True)
        (out / "expected.json").write_text(json.dumps(envelope, indent=2) + "\n")
        (out / "expected.txt").write_text(text)
        print(f"{name}: exit {envelope['exit_code']}, {envelope['data']['summary']}", file=sys.stderr)


if __name__ == "__main__":
    regenerate()
