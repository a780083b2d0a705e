"""kernel-install's /etc/kernel/cmdline on a systemd-boot fixture root
(boot/kernel_install.py), then enable/disable planned (see _boot.py for the
property). Inputs up to 8 KiB (fuzz/run-all)."""

from __future__ import annotations

from _boot import Fixture
from _common import main

FIXTURE = Fixture("arch-systemd-boot", "etc/kernel/cmdline", "systemd-boot")

def one(data: bytes) -> None:
    FIXTURE.plan(data)


if __name__ == "__main__":
    main(one)
