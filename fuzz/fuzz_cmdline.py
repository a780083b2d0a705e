"""The kernel command line (host/cmdline.py: /proc/cmdline, audit --cmdline).

Property: a Cmdline or a one-line InputError; the lockdown= the parser
reports is one the text holds (never a level read from nowhere); quotes are
removed only where the kernel's next_arg() removes them.
"""

from __future__ import annotations

from _common import Bad, instrumented, main, text

with instrumented():
    from lockdownctl.host.cmdline import parse_cmdline


def one(data: bytes) -> None:
    raw = text(data)
    cmdline = parse_cmdline(raw, "/proc/cmdline")
    level = cmdline.lockdown
    if level is not None and ("lockdown" not in raw.replace("-", "_") or level not in raw):
        raise Bad(f"lockdown={level} reported, not in the input")
    cmdline.lsm, cmdline.sig_enforce, cmdline.lockdown_invalid  # noqa: B018 (the properties parse too)


if __name__ == "__main__":
    main(one)
