"""``lockdownctl disable``: remove lockdown= from the boot setup (and the boot unit).

Parsing and dispatch only: the work is lockdownctl.boot (imported lazily).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

    from ..output import Result, Style

ONE_SHOT = True  # bounded work, then exit: no cyclic GC needed (cli.entry)

HELP = "remove lockdown= from the boot setup (the running kernel keeps its level until reboot)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan (a diff of every file, the commands) and change nothing")
    parser.add_argument("--unit", action="store_true",
                        help="remove the securityfs boot unit instead of editing the kernel command line")


def run(args: argparse.Namespace) -> Result:
    from ..boot import run as boot_run
    from ..output import Result
    from ..root import Root

    root = Root(args.root)
    data: dict[str, Any] = boot_run.execute(root, None, dry_run=args.dry_run, use_unit=args.unit)
    warnings: list[str] = []
    for setup in data["setups"]:
        warnings += setup["warnings"]
    if root.live:
        warnings.append("the running kernel keeps its current lockdown level until reboot (levels only go up)")
    return Result("disable", data, render, data["exit_code"], warnings)


def render(data: dict[str, Any], s: Style) -> str:
    from ..boot.render import render as boot_render

    return boot_render(data, s)
