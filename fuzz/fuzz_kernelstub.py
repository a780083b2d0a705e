"""kernelstub's JSON configuration on a Pop!_OS fixture root
(boot/kernelstub.py), then enable/disable planned (see _boot.py for the
property). Inputs up to 8 KiB (fuzz/run-all)."""

from __future__ import annotations

from _boot import Fixture
from _common import main

FIXTURE = Fixture("popos22-kernelstub", "etc/kernelstub/configuration", "kernelstub")

def one(data: bytes) -> None:
    FIXTURE.plan(data)


if __name__ == "__main__":
    main(one)
