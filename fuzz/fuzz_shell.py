"""The shell subset of /etc/default/grub and grub.d (boot/shell.py).

Property: the variables after sourcing, or a one-line InputError
(Unmodelled) for what the model does not cover; a value marked exact holds
no command substitution (`` ` `` or ``$(``) from the input. Inputs up to 8 KiB.
"""

from __future__ import annotations

from _common import Bad, instrumented, main, text

with instrumented():
    from lockdownctl.boot.shell import parse_value, scan, source


def one(data: bytes) -> None:
    src = text(data)
    env, inexact = source(src, "/etc/default/grub")
    for a in scan(src, "/etc/default/grub", strict=False):
        parse_value(a.raw)
    for name, value in env.items():
        if name not in inexact and ("$(" in value or "`" in value) and ("$(" not in src and "`" not in src):
            raise Bad(f"{name}: a substitution appeared from nowhere: {value[:80]!r}")


if __name__ == "__main__":
    main(one)
