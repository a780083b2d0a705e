"""EFI variables and boot_params (host/efivars.py) as read under a root.

The input is split in three at 0xff bytes: SecureBoot, SetupMode and
MokSBStateRT (efivarfs layout: 4-byte attributes, then the value).
Property: a state or a one-line InputError; "enabled" only when SecureBoot's
value byte is 1, SetupMode's is not 1 and MokSBStateRT's is not 1.
"""

from __future__ import annotations

import functools

from _common import Bad, instrumented, main, write

with instrumented():
    from lockdownctl.host.efivars import EFI_GLOBAL, EFIVARS, SHIM_LOCK, read_secure_boot
    from lockdownctl.root import Root

NAMES = (("SecureBoot", EFI_GLOBAL), ("SetupMode", EFI_GLOBAL), ("MokSBStateRT", SHIM_LOCK))


BASE = write("efi/.keep", b"").rsplit("/", 1)[0]
PATHS = [write(f"efi/{EFIVARS}/{name}-{guid}", b"") for name, guid in NAMES]  # directories made once
ROOT = Root(BASE)
ROOT.resolve = functools.lru_cache(maxsize=None)(ROOT.resolve)  # type: ignore[method-assign]  # no link changes


def one(data: bytes) -> None:
    parts = data.split(b"\xff", 2)
    parts += [b""] * (3 - len(parts))
    for path, value in zip(PATHS, parts, strict=True):  # three small files in RAM (/dev/shm)
        with open(path, "wb") as fh:
            fh.write(value)
    sb = read_secure_boot(ROOT)
    if sb.state == "enabled" and not (parts[0][4:5] == b"\x01" and parts[1][4:5] != b"\x01"
                                      and parts[2][4:5] != b"\x01"):
        raise Bad(f"Secure Boot 'enabled' from {parts!r}")


if __name__ == "__main__":
    main(one)
