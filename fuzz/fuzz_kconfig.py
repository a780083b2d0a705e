"""Kernel configs, plain and gzip (host/kconfig.py: /proc/config.gz, /boot/config-*).

Property: a KConfig or a one-line InputError naming the file and line;
a config is only accepted when it has CONFIG_ lines. The first byte picks
plain or gzip-compressed, so the parser behind the decompressor is reached too.
"""

from __future__ import annotations

import zlib

from _common import Bad, instrumented, main

with instrumented():
    from lockdownctl.host.kconfig import kconfig_from_bytes


def one(data: bytes) -> None:
    if data[:1] == b"\x01":  # the rest, gzip-framed (wbits 16+)
        comp = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        data = comp.compress(data[1:]) + comp.flush()
    config = kconfig_from_bytes(data, "/proc/config.gz")
    if "CONFIG_" not in config.text:
        raise Bad("a config without CONFIG_ lines was accepted")


if __name__ == "__main__":
    main(one)
