"""GRUB defaults (boot/grub.py): /etc/default/grub of a Debian fixture root,
sourced with its grub.d drop-ins, then enable/disable planned (see _boot.py
for the property). Size cap 64 KiB."""

from __future__ import annotations

from _boot import plan_with
from _common import main


def one(data: bytes) -> None:
    plan_with("debian12-grub-cloud", "etc/default/grub", data)


if __name__ == "__main__":
    main(one)
