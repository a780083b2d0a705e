"""Secure Boot on and off, as the firmware, the kernel and mokutil see them, against what the
installed lockdownctl says (status, status --expect, check, enable --dry-run)."""

from __future__ import annotations

import re

import pytest

from .machine import BootResult, securityfs_level

pytestmark = pytest.mark.boot

# The distribution patch's own line (Debian 6.1: "EFI Secure Boot", not "EFI Secure Boot mode").
SB_LOCKDOWN_LINE = re.compile(r"Kernel is locked down from EFI Secure Boot")
EFIVAR_SECURE_BOOT = re.compile(r"SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c: (\d)")


def test_install_puts_lockdownctl_on_path(boot_tier) -> None:
    """scripts/install.sh on a real Debian 12, offline, from a copy of the checkout."""
    boot = boot_tier.layer().run().boot(1)
    assert boot.record("install").rc == 0, boot.text("test.log")
    assert boot.record("which").out.strip() == "/usr/local/bin/lockdownctl"
    version = boot.record("version")
    assert version.rc == 0
    import tomllib

    from .machine import REPO

    expected = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert version.out.split() == ["lockdownctl", expected]


def mokutil_sb(boot: BootResult) -> str:
    first = boot.record("mokutil").out.splitlines()[0]  # "SecureBoot enabled" / "SecureBoot disabled"
    assert first.startswith("SecureBoot "), first
    return first.split()[1]


def test_secure_boot_on(boot_run) -> None:
    run = boot_run("status.sh", secure_boot=True)
    run.check(boots=1)
    boot = run.boot(1)
    kernel_level = securityfs_level(boot.record("securityfs").out)
    # The kernel's own view first: Secure Boot locked it down at integrity, and said so.
    assert kernel_level == "integrity"
    assert SB_LOCKDOWN_LINE.search(boot.dmesg), "no Secure Boot lockdown line in the kernel log"
    assert not any(p.startswith("lockdown=") for p in boot.cmdline)
    assert mokutil_sb(boot) == "enabled"

    status = boot.record("status_json")
    assert status.rc == 0, status.err
    data = status.json()["data"]
    assert data["level"] == kernel_level
    assert data["level_read_from"] == "securityfs"
    assert data["source"]["kind"] == "secure_boot"
    evidence = [e["text"] for e in data["source"]["evidence"]]
    assert any(SB_LOCKDOWN_LINE.search(t) for t in evidence), evidence
    efivars = [e for e in data["source"]["evidence"] if e["where"] == "efivars"]
    assert any(EFIVAR_SECURE_BOOT.search(e["text"]) and e["text"].endswith(": 1") for e in efivars), efivars
    assert data["secure_boot"]["state"] == mokutil_sb(boot)
    text = boot.record("status").out
    assert "integrity, set by the distribution's Secure Boot patch" in text

    expect = boot.record("expect_integrity")
    assert expect.rc == 0, expect.out
    assert expect.json()["data"]["expect"]["met"] is True

    check = boot.record("check")
    assert check.rc in (0, 1), check.err  # 1: something breaks at confidentiality (hibernation)
    current = check.json()["data"]["current"]
    assert current["secure_boot"] == mokutil_sb(boot) == "enabled"
    assert current["level"] == kernel_level


def test_secure_boot_off(boot_run) -> None:
    run = boot_run("status.sh", secure_boot=False)
    run.check(boots=1)
    boot = run.boot(1)
    assert securityfs_level(boot.record("securityfs").out) == "none"
    assert not SB_LOCKDOWN_LINE.search(boot.dmesg)
    assert mokutil_sb(boot) == "disabled"

    data = boot.record("status_json").json()["data"]
    assert data["level"] == "none"
    assert data["source"]["kind"] == "none"
    # OVMF's plain variable store has no keys enrolled: Secure Boot off, firmware in Setup Mode.
    assert data["secure_boot"]["state"] == mokutil_sb(boot) == "disabled"
    assert data["secure_boot"]["secure_boot"] is False
    assert data["secure_boot"]["setup_mode"] is ("Platform is in Setup Mode" in boot.record("mokutil").out)
    assert data["can_raise"] is True
    assert "confidentiality" in data["raise_to"]

    expect = boot.record("expect_integrity")
    assert expect.rc == 1
    assert expect.json()["data"]["expect"]["met"] is False

    assert boot.record("check").json()["data"]["current"]["secure_boot"] == mokutil_sb(boot)
    # enable is offered: a plan through GRUB, not a refusal.
    enable = boot.record("enable_dry")
    assert enable.rc == 0, enable.out + enable.err
    plan = enable.json()["data"]
    assert "refused" not in plan
    assert "etc/default/grub.d/" in enable.out
