"""kernel-install's /etc/kernel/cmdline on a systemd-boot fixture root
(boot/kernel_install.py), then enable/disable planned (see _boot.py for the
property). Size cap 64 KiB."""

from __future__ import annotations

from _boot import plan_with
from _common import main


def one(data: bytes) -> None:
    plan_with("arch-systemd-boot", "etc/kernel/cmdline", data)


if __name__ == "__main__":
    main(one)
