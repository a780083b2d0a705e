"""Boot Loader Specification entries (boot/entries.py, boot/grubby.py): one
entry of a Fedora fixture root, then enable/disable planned (see _boot.py for
the property). Size cap 64 KiB."""

from __future__ import annotations

from _boot import plan_with
from _common import main

ENTRY = "boot/loader/entries/f1c3a9e27b4d4e5f8a6b0c2d4e6f8a1b-6.6.9-200.fc39.x86_64.conf"


def one(data: bytes) -> None:
    plan_with("fedora39-bls", ENTRY, data)


if __name__ == "__main__":
    main(one)
