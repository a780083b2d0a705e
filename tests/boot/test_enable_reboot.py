"""`enable confidentiality` through GRUB (/etc/default/grub and a grub.d drop-in), update-grub and
a real reboot through shim and GRUB; then `disable` and another reboot. Every verdict is the
kernel's own: securityfs, /proc/cmdline and the kernel log of the boot that followed."""

from __future__ import annotations

import pytest

from .machine import BootResult

pytestmark = pytest.mark.boot

CMDLINE_LINE = "Kernel is locked down from command line"


def lockdown_params(boot: BootResult) -> list[str]:
    return [p for p in boot.cmdline if p.startswith("lockdown=")]


def test_enable_reboot_expect_disable_reboot(boot_run) -> None:
    run = boot_run("enable.sh", secure_boot=True)
    run.check(boots=3)
    first, second, third = run.boot(1), run.boot(2), run.boot(3)

    # Boot 1: Secure Boot gave integrity; enable + update-grub.
    assert first.level == "integrity"
    assert first.record("site_grub").rc == 0
    enable = first.record("enable")
    assert enable.rc == 0, enable.out + enable.err
    assert "boottest.site=1" in first.record("grub_cfg").out  # the site drop-in was in effect

    # Boot 2: the kernel booted at confidentiality from its command line, which GRUB built
    # from what enable wrote.
    assert second.level == "confidentiality", f"kernel level {second.level}; cmdline {second.cmdline}"
    assert lockdown_params(second) == ["lockdown=confidentiality"]
    assert "boottest.site=1" in second.cmdline  # the other drop-in survived
    assert CMDLINE_LINE in second.dmesg
    expect = second.record("expect")
    assert expect.rc == 0, expect.out
    data = expect.json()["data"]
    assert data["level"] == second.level
    assert data["source"]["kind"] == "cmdline"
    assert data["expect"]["met"] is True
    disable = second.record("disable")
    assert disable.rc == 0, disable.out + disable.err
    assert "lockdown=" not in second.record("grub_cfg").out

    # Boot 3: back to where Secure Boot alone puts it.
    assert third.level == first.level == "integrity"
    assert lockdown_params(third) == []
    assert "boottest.site=1" in third.cmdline
    assert CMDLINE_LINE not in third.dmesg
    assert third.record("status_json").json()["data"]["source"]["kind"] == "secure_boot"
    assert third.record("expect_confidentiality").rc == 1
