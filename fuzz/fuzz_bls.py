"""Boot Loader Specification entries (boot/entries.py, boot/grubby.py): one
entry of a Fedora fixture root, then enable/disable planned (see _boot.py for
the property). Inputs up to 8 KiB (fuzz/run-all)."""

from __future__ import annotations

from _boot import Fixture
from _common import main

ENTRY = "boot/loader/entries/f1c3a9e27b4d4e5f8a6b0c2d4e6f8a1b-6.6.9-200.fc39.x86_64.conf"

FIXTURE = Fixture("fedora39-bls", ENTRY, "grubby", without=(
    "etc/default/grub", "etc/kernel/cmdline", ENTRY.replace("6.6.9-200", "0-rescue").replace(".fc39.x86_64", ""),
    ENTRY.replace("6.6.9-200", "6.5.6-300")))


def one(data: bytes) -> None:
    FIXTURE.plan(data)


if __name__ == "__main__":
    main(one)
