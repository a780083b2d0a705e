r"""The shell subset of /etc/default/grub and grub.d (boot/shell.py).

Property: the variables after sourcing, or a one-line InputError
(Unmodelled) for what the model does not cover; a value marked exact was
assigned without a command substitution (`` ` `` or ``$(``). (Not: "holds no
``$(`` unless the input does": ``X=$\(`` is the text ``$(``, as in sh.)
Inputs up to 8 KiB.
"""

from __future__ import annotations

from _common import Bad, instrumented, main, text

with instrumented():
    from lockdownctl.boot.shell import parse_value, scan, source


def one(data: bytes) -> None:
    src = text(data)
    env, inexact = source(src, "/etc/default/grub")
    last = {a.name: a for a in scan(src, "/etc/default/grub")}  # the assignment each value is from
    for a in scan(src, "/etc/default/grub", strict=False):
        parse_value(a.raw)
    for name in env:
        if name not in inexact and any(kind == "cmd" for kind, _ in parse_value(last[name].raw).parts):
            raise Bad(f"{name}: exact, yet its value runs a command: {last[name].raw[:80]!r}")


if __name__ == "__main__":
    main(one)
