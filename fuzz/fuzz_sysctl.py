"""``sysctl -a`` output given to ``audit --sysctl`` (audit/inputs.py load_sysctl).

Property: values or a one-line InputError naming file and line; an input
with no ``key = value`` line is refused, never an empty "all read" result.
"""

from __future__ import annotations

from _common import Bad, instrumented, main, write

with instrumented():
    from lockdownctl.audit.inputs import load_sysctl


def one(data: bytes) -> None:
    result = load_sysctl(write("sysctl.txt", data))
    if not result.values:
        raise Bad("no values, yet no error")


if __name__ == "__main__":
    main(one)
