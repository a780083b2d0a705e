"""``lockdownctl enable integrity|confidentiality``: persistent lockdown= through the boot setup.

Parsing and dispatch only: the work is lockdownctl.boot (imported lazily).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

    from ..output import Result, Style

ONE_SHOT = True  # bounded work, then exit: no cyclic GC needed (cli.entry)

HELP = "turn lockdown on at boot through the detected boot setup (or now, through securityfs)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("level", nargs="?", choices=("integrity", "confidentiality"), metavar="LEVEL",
                        help="integrity or confidentiality (lockdown=none is never written)")
    parser.add_argument("--rollback", action="store_true",
                        help="undo the last enable instead: put back every file it changed from its backup "
                        "(/var/lib/lockdownctl/backup, checked against the SHA-256 in its manifest) and run the "
                        "same regeneration commands; refused when a file changed since (--force restores anyway)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan (a diff of every file, the commands) and change nothing")
    parser.add_argument("--force", action="store_true",
                        help="go ahead although the readiness check finds something that breaks at LEVEL, "
                        "or although a boot entry or variable already has a higher lockdown= (which this "
                        "then lowers to LEVEL); with --rollback, although a file changed since the enable")
    parser.add_argument("--now", action="store_true",
                        help="raise the running kernel through /sys/kernel/security/lockdown instead "
                        "(one way until reboot); with --unit, also install the boot unit")
    parser.add_argument("--unit", action="store_true",
                        help="install and enable the securityfs boot unit (lockdownctl-lockdown@LEVEL.service) "
                        "instead of editing the kernel command line (for unified kernel images and "
                        "immutable command lines)")


def run(args: argparse.Namespace) -> Result:
    from ..boot import run as boot_run
    from ..errors import InputError
    from ..output import Result
    from ..root import Root

    root = Root(args.root)
    if args.rollback:
        if args.level or args.now or args.unit:
            raise InputError("enable --rollback takes no LEVEL, --now or --unit: it undoes the last enable")
        undo = boot_run.rollback(root, dry_run=args.dry_run, force=args.force)
        return Result("enable", undo, render, undo["exit_code"],
                      [w for setup in undo["setups"] for w in setup["warnings"]])
    if args.level is None:
        raise InputError("enable: LEVEL is required (integrity or confidentiality), or --rollback")
    safety = boot_run.safety(root, args.level, args.force)
    status = safety.pop("status")
    data: dict[str, Any] = {
        "action": "enable",
        "level": args.level,
        "kernel": {"level": status["level"], "forced_by_kconfig": status["forced_by_kconfig"],
                   "lockdown_lsm_active": status["lsm"]["lockdown_active"]},
        "safety": safety,
    }
    warnings = list(safety["warnings"])
    if not safety["readiness"]["checked"]:
        warnings.append(safety["readiness"]["detail"])
    if safety["refused"]:
        data["refused"] = safety["refused"]
        return Result("enable", data, render, safety["exit_code"], warnings)
    code = 0
    if args.now:
        from ..boot.now import raise_now

        data["now"] = raise_now(root, args.level, status, args.dry_run)
        if data["now"]["refused"] or (not args.dry_run and not data["now"]["written"]):
            code = 1
        if not args.unit:
            return Result("enable", data, render, code, warnings)
    result = boot_run.execute(root, args.level, dry_run=args.dry_run, use_unit=args.unit, force=args.force)
    data.update({k: v for k, v in result.items() if k not in ("action", "level")})
    for setup in result["setups"]:
        warnings += setup["warnings"]
    return Result("enable", data, render, max(code, result["exit_code"]), warnings)


def render(data: dict[str, Any], s: Style) -> str:
    from ..boot.render import render as boot_render

    return boot_render(data, s)
