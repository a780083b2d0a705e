"""kernelstub's JSON configuration on a Pop!_OS fixture root
(boot/kernelstub.py), then enable/disable planned (see _boot.py for the
property). Size cap 64 KiB."""

from __future__ import annotations

from _boot import plan_with
from _common import main


def one(data: bytes) -> None:
    plan_with("popos22-kernelstub", "etc/kernelstub/configuration", data)


if __name__ == "__main__":
    main(one)
