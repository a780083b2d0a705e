"""GRUB defaults (boot/grub.py): /etc/default/grub of a Debian fixture root,
sourced with its grub.d drop-ins, then enable/disable planned (see _boot.py
for the property). Inputs up to 8 KiB (fuzz/run-all)."""

from __future__ import annotations

from _boot import Fixture
from _common import main

FIXTURE = Fixture("debian12-grub-cloud", "etc/default/grub", "grub")

def one(data: bytes) -> None:
    FIXTURE.plan(data)


if __name__ == "__main__":
    main(one)
