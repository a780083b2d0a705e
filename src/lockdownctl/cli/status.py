"""``lockdownctl status``: level, why, whether it is enforced, Secure Boot, BPF LSM."""

from __future__ import annotations

import os

from ..errors import EXIT_FINDINGS, EXIT_OK
from ..levels import LEVELS, level_rank

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from ..output import Result, Style
    from ..root import Child


ONE_SHOT = True  # bounded work, then exit: no cyclic GC needed (cli.entry)

# The start-up goal (benchmarks/startup.py: status within 2.5x a bare
# interpreter) binds these modules only: every lockdownctl module ``status``
# imports. They import none of SLOW_IMPORTS at run time (``TYPE_CHECKING =
# False`` stands in for typing's); every other module is ordinary Python.
# tests/unit/test_startup_path.py checks both lists with python -X importtime.
SLOW_IMPORTS = ("re", "argparse", "json", "enum", "typing", "dataclasses", "pathlib")
STARTUP_MODULES = (
    "lockdownctl", "lockdownctl.errors", "lockdownctl.levels", "lockdownctl.root", "lockdownctl.mountinfo",
    "lockdownctl.btf", "lockdownctl.cli", "lockdownctl.cli.fastargs", "lockdownctl.cli.status",
    "lockdownctl.output", "lockdownctl.output.jsontext", "lockdownctl.klog", "lockdownctl.host",
    "lockdownctl.host.cmdline", "lockdownctl.host.efivars", "lockdownctl.host.kconfig", "lockdownctl.host.kmsg",
    "lockdownctl.host.securityfs", "lockdownctl.host.bpf_syscall", "lockdownctl.state",
    "lockdownctl.state.bpf_lsm", "lockdownctl.state.document", "lockdownctl.state.kernel",
    "lockdownctl.state.lsm", "lockdownctl.kfacts",
)
# What the child process adds on the running system (kernel-side reads).
CHILD_MODULES = ("lockdownctl.libc", "lockdownctl.state.pins")


def prefetch(argv: list[str]) -> Child | None:
    """Start the live kernel-side reads before argparse runs (see state/kernel.py).

    Only for the running system: with --root elsewhere, or for --help, nothing starts.
    """
    if "-h" in argv or "--help" in argv:
        return None
    root = "/"
    for i, arg in enumerate(argv):
        if arg.startswith("--root="):
            root = arg.split("=", 1)[1]
        elif arg == "--root" and i + 1 < len(argv):
            root = argv[i + 1]
    if os.path.realpath(root) != "/":
        return None
    from ..state.kernel import start_status

    return start_status()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--expect", metavar="LEVEL", choices=LEVELS,
                        help="exit 1 unless the level is at least LEVEL (none, integrity, confidentiality)")
    parser.add_argument("--format", choices=("text", "nfd"), default="text",
                        help="nfd: Node Feature Discovery's local feature file (labels) instead of the report")
    parser.add_argument("--output", metavar="FILE",
                        help="with --format nfd: write FILE atomically, e.g. "
                        "/etc/kubernetes/node-feature-discovery/features.d/lockdown")
    parser.add_argument("--dry-run", action="store_true", help="with --output: print what would be written")


def run(args: argparse.Namespace) -> Result:
    from ..output import Result
    from ..root import Root
    from ..state.document import read_status

    if args.format != "nfd" and (args.output or args.dry_run):
        from ..errors import InputError

        raise InputError("status: --output and --dry-run go with --format nfd")
    root = Root(args.root)
    data = read_status(root, args.prefetched if root.live else None)
    if not root.live and args.prefetched is not None:
        args.prefetched.discard()
    code = EXIT_OK
    if args.expect:
        met = data["level"] is not None and level_rank(data["level"]) >= level_rank(args.expect)
        data["expect"] = {"level": args.expect, "met": met}
        code = EXIT_OK if met else EXIT_FINDINGS
    if args.format == "nfd":
        from ..nfd import result

        return result(root, dict(data), args.output, args.dry_run, code)
    return Result("status", data, render, code)


def _secure_boot_text(sb: dict[str, Any]) -> str:
    state = sb["state"]
    return {
        "not-efi": "not an EFI boot",
        "enabled": "enabled",
        "disabled": "disabled",
        "setup-mode": "off (firmware in Setup Mode)",
        "validation-disabled": "off (shim validation disabled: MokSBStateRT=1)",
    }.get(state, "unknown")


def _bpf_text(bpf: dict[str, Any], s: Style) -> str:
    if bpf["usable"]:
        return s.good("usable") + " (a minimal lsm/locked_down program loaded)"
    if bpf["listed"] and bpf["trial_load"] == "refused":
        return s.warn(f"listed, but the kernel refuses LSM programs: {bpf['errno']} at load")
    if bpf["trial_load"] == "not-tried" and bpf["listed"]:
        return f"listed; trial load not tried ({bpf['detail']})"
    if bpf["listed"] is None and not bpf["fix"]:
        return "unknown (the LSM list could not be read)"
    return s.warn("not usable")


def render(data: dict[str, Any], s: Style) -> str:
    level = data["level"] or "unknown"
    source = data["source"]
    from ..state.document import SOURCE_TEXT

    why = SOURCE_TEXT.get(source["kind"], source["kind"])
    if source["kind"] not in ("none", "unknown"):
        why += f" ({source['detail']})"
    colour = s.good if level in LEVELS[1:] else s.warn
    lines = [f"Lockdown:      {colour(s.bold(level))}, {why}"]
    if data["level_read_from"] == "inferred":
        lines.append("               (inferred: securityfs could not be read)")
    for i, ev in enumerate(source["evidence"]):
        lines.append(f"{'  evidence:' if i == 0 else '':15}{ev['where']}: {ev['text']}")
    lsm = data["lsm"]
    if lsm["lockdown_active"] is None:
        lsm_text = "unknown (LSM list not readable)"
    elif lsm["lockdown_active"]:
        lsm_text = s.good("active") + f" (LSMs: {','.join(lsm['active'])})"
    else:
        lsm_text = s.bad("NOT active") + f": the level is not enforced (LSMs: {','.join(lsm['active'])})"
    lines.append(f"Lockdown LSM:  {lsm_text}")
    if data["can_raise"]:
        lines.append(f"Can raise:     yes, to {' or '.join(data['raise_to'])} (one way until reboot)")
    elif data["can_raise"] is False:
        lines.append("Can raise:     no" + (" (already at the highest level)" if level == "confidentiality" else ""))
    if data["forced_by_kconfig"]:
        lines.append(f"Forced:        kernel configuration forces at least {data['forced_by_kconfig']}")
    lines.append(f"Secure Boot:   {_secure_boot_text(data['secure_boot'])}")
    bpf = data["bpf_lsm"]
    lines.append(f"BPF LSM:       {_bpf_text(bpf, s)}")
    if bpf["fix"]:
        lines.append(f"               {bpf['fix']}")
    enf = data.get("enforcer") or {}
    if enf.get("loaded"):
        mode = f"profile {enf.get('profile', '?')}, mode {enf.get('mode', '?')}"
        sealed = f", sealed until reboot, since {enf.get('sealed_at') or '?'}" if enf.get("sealed") else ""
        lines.append(f"Enforcer:      {s.good('loaded')} ({mode}{sealed}; {enf.get('policy_file', '?')})")
        if enf.get("note"):  # its state file unreadable, or naming another policy than the kernel runs
            lines.append(f"               {s.warn(enf['note'])}")
    elif enf.get("loaded") is False:
        lines.append("Enforcer:      not loaded")
    if "expect" in data:
        ok = data["expect"]["met"]
        verdict = s.good("met") if ok else s.bad("NOT met")
        lines.append(f"Expected:      at least {data['expect']['level']}: {verdict}")
    for note in data["notes"]:
        lines.append(s.dim(f"note: {note}"))
    return "\n".join(lines)
