"""The audit catalogue itself, the rules file and the audit command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from lockdownctl.audit.checks import checks
from lockdownctl.audit.engine import ALL_REASONS, Cond, Expect
from lockdownctl.reasons import TABLE, merge
from tests.conftest import DATA, ROOTS, lockdownctl

K61 = str(DATA / "kconfig" / "config-6.1.0-56-amd64")
K618 = str(DATA / "kconfig" / "config-6.18.44-fc-v657")


@pytest.mark.parametrize("target", ["integrity", "confidentiality"])
def test_catalogue_is_valid(target: str) -> None:
    book = merge(None)
    ids = [c.id for c in checks(target)]
    assert len(ids) == len(set(ids))
    for check in checks(target):
        for rid in check.reasons:
            assert rid == ALL_REASONS or book.find(rid) is not None, (check.id, rid)
        for leaf in check.cond.leaves():
            assert isinstance(leaf, Cond)
            Expect.parse(leaf.expect.text)  # every expected value parses again from its text
        assert "/" in check.effect or "." in check.effect, f"{check.id}: effect names no kernel file"


def test_catalogue_covers_the_issue_list() -> None:
    names = {leaf.name for t in ("integrity", "confidentiality") for c in checks(t) for leaf in c.cond.leaves()}
    for option in ("SECURITY_LOCKDOWN_LSM", "LSM", "SECURITY_LOCKDOWN_LSM_EARLY", "LOCK_DOWN_KERNEL_FORCE_INTEGRITY",
                   "LOCK_DOWN_KERNEL_FORCE_CONFIDENTIALITY", "LOCK_DOWN_IN_EFI_SECURE_BOOT",
                   "EFI_SECURE_BOOT_LOCK_DOWN", "ALLOW_LOCKDOWN_LIFT_BY_SYSRQ", "DEVMEM", "STRICT_DEVMEM",
                   "IO_STRICT_DEVMEM", "DEVKMEM", "DEVPORT", "KEXEC", "KEXEC_FILE", "KEXEC_SIG", "HIBERNATION",
                   "PROC_KCORE", "X86_MSR", "X86_IOPL_IOPERM", "ACPI_CUSTOM_METHOD", "ACPI_TABLE_UPGRADE",
                   "EFI_TEST", "MMIOTRACE", "DEBUG_FS", "KPROBES", "BPF_SYSCALL", "MODULE_SIG", "MODULE_SIG_FORCE",
                   "MODULES", "BPF_LSM", "DEBUG_INFO_BTF"):
        assert "CONFIG_" + option in names, option
    for other in ("debugfs", "module.sig_enforce", "kernel.kexec_load_disabled", "kernel.modules_disabled",
                  "kernel.unprivileged_bpf_disabled", "kernel.perf_event_paranoid", "kernel.kptr_restrict",
                  "kernel.dmesg_restrict", "kernel.sysrq", "level", "lsm"):
        assert other in names, other
    level = next(c for c in checks("integrity") if c.id == "lockdown_level")
    assert "# CONFIG_LOCK_DOWN_KERNEL_FORCE_NONE is not set" in level.fix  # the Kconfig choice's default


def test_every_integrity_reason_with_an_equivalent_is_satisfied_by_the_level() -> None:
    """An equivalent check of an integrity reason must pass at integrity (no FAIL for /dev/mem there)."""
    level_reasons = {r.id: r.level for r in TABLE}
    for check in checks("integrity"):
        if check.group != "equivalent" or check.id in ("module_sig", "kexec_sig"):
            continue
        leaves = {(leaf.source, leaf.name, leaf.expect.text) for leaf in check.cond.leaves()}
        lvl = max((level_reasons[r] for r in check.reasons), key=["integrity", "confidentiality"].index)
        assert ("runtime", "level", f"at least {lvl}") in leaves, check.id


RULES = """\
version: 1
skip: [strict_devmem]
override:
  sysctl_kptr_restrict: {expected: "== 2", advisory: false, level: integrity}
checks:
  - id: site_no_debugfs
    title: no debugfs at all
    any_of:
      - {source: kconfig, name: CONFIG_DEBUG_FS, expected: is not set}
      - {source: cmdline, name: debugfs, expected: "off"}
    reasons: [debugfs]
    effect: fs/debugfs/inode.c debugfs_kernel()
"""


def test_rules_add_override_skip(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    args = ["audit", "--json", "--config", K618, "--cmdline", "quiet", "--sysctl",
            str(DATA / "audit" / "sysctl-host-6.18.txt")]
    before = {c["id"]: c for c in lockdownctl(*args).json()["data"]["checks"]}
    run = lockdownctl(*args, "--rules", str(rules))
    after = {c["id"]: c for c in run.json()["data"]["checks"]}
    assert "strict_devmem" in before and "strict_devmem" not in after
    assert "sysctl_kptr_restrict" not in before  # confidentiality-only by default
    assert after["sysctl_kptr_restrict"]["verdict"] == "fail" and after["sysctl_kptr_restrict"]["rule"] == (
        "sysctl kernel.kptr_restrict == 2")
    assert after["site_no_debugfs"]["verdict"] == "fail" and after["site_no_debugfs"]["group"] == "site"
    assert run.code == 1 and lockdownctl(*args).code == 0


def test_threshold_and_show() -> None:
    args = ["audit", "--json", "--config", K61, "--cmdline", "quiet"]
    data = lockdownctl(*args).json()["data"]
    fails = data["summary"]["fail"]
    assert fails > 2
    assert lockdownctl(*args, "--threshold", str(fails - 1)).code == 1
    assert lockdownctl(*args, "--threshold", str(fails)).code == 0
    shown = lockdownctl(*args, "--show", "fail").json()["data"]["checks"]
    assert {c["verdict"] for c in shown} == {"fail", "warn"}
    assert {c["verdict"] for c in lockdownctl(*args, "--show", "ok").json()["data"]["checks"]} == {"ok"}
    assert lockdownctl("audit", "--threshold", "-1", "--config", K61).code == 2


def test_fragment_makes_the_build_pass(tmp_path: Path) -> None:
    """Append the fragment to the config, as merge_config.sh would, and audit again."""
    run = lockdownctl("audit", "--fragment", "--config", K61, "--target", "confidentiality")
    assert run.code == 0 and "CONFIG_LOCK_DOWN_KERNEL_FORCE_CONFIDENTIALITY=y" in run.out
    merged = tmp_path / "config"
    fragment = {line.split("=")[0] if "=" in line else line.split()[1]: line
                for line in run.out.splitlines() if line.startswith(("CONFIG_", "# CONFIG_"))}
    lines = []
    for line in Path(K61).read_text().splitlines():
        key = line.split("=")[0] if line.startswith("CONFIG_") else line.split()[1] if line.startswith(
            "# CONFIG_") and line.endswith("is not set") else None
        lines.append(fragment.pop(key) if key in fragment else line)
    merged.write_text("\n".join([*lines, *fragment.values()]) + "\n")
    again = lockdownctl("audit", "--json", "--config", str(merged), "--cmdline", "quiet", "--target",
                        "confidentiality")
    assert again.code == 0, [c["id"] for c in again.json()["data"]["checks"] if c["verdict"] == "fail"]
    assert again.json()["data"]["lockdown"]["source"] == "kconfig"


def test_live_root_fixture_reads_through_root() -> None:
    """--root: a fixture root is audited like a live system (no offline options)."""
    run = lockdownctl("audit", "--json", "--root", str(ROOTS / "host-6.18-kconfig-integrity"))
    data = run.json()["data"]
    assert data["lockdown"]["level"] == "integrity" and data["lockdown"]["source"] == "kconfig"
    assert run.code == 0, [c["id"] for c in data["checks"] if c["verdict"] == "fail"]


def test_lsm_drops_lockdown_fixture() -> None:
    run = lockdownctl("audit", "--json", "--root", str(ROOTS / "lsm-drops-lockdown"))
    data = run.json()["data"]
    verdicts = {c["id"]: c["verdict"] for c in data["checks"]}
    assert run.code == 1 and verdicts["lsm_lists_lockdown"] == "fail" and verdicts["lockdown_level"] == "fail"
