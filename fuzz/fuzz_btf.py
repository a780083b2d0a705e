"""BTF blobs (btf.py: /sys/kernel/btf/vmlinux, ``--btf``).

Property: the lockdown enum and a function id, or None, or a one-line
InputError; an enum is reported only with a lockdown reason list whose values
are the integers the blob holds (no negative or duplicate positions).
"""

from __future__ import annotations

from _common import Bad, instrumented, main

with instrumented():
    from lockdownctl.btf import find_func_id, parse_lockdown_enum


def one(data: bytes) -> None:
    found = parse_lockdown_enum(data, "vmlinux.btf")
    if found is not None:
        for name, value in found.reasons():
            if found.level_of(value) is None or not name:
                raise Bad(f"reason {name!r}={value} without a level")
    find_func_id(data, "vmlinux.btf", "security_locked_down")


if __name__ == "__main__":
    main(one)
