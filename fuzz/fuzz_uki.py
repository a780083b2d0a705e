"""Unified kernel images, PE files (host/uki.py, pefile underneath).

Property: the .cmdline text, None (no such section) or a one-line
InputError; pefile's own exceptions never reach the user.
"""

from __future__ import annotations

from _common import instrumented, main

with instrumented():
    from lockdownctl.host.uki import uki_cmdline


def one(data: bytes) -> None:
    uki_cmdline(data, "linux.efi")


if __name__ == "__main__":
    main(one)
