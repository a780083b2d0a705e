"""``lockdownctl explain [REASON]``: the kernel_lockdown.7 page, from the catalogue."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import InputError
from ..output import Result, Style, table
from ..root import Root

if TYPE_CHECKING:
    import argparse
    from typing import Any

ONE_SHOT = True  # bounded work, then exit: no cyclic GC needed (cli.entry)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reason", nargs="?", metavar="REASON",
                        help="a reason id (dev_mem), enum name (LOCKDOWN_DEV_MEM) or a pasted "
                        "kernel log line ('Lockdown: fwupd: /dev/mem,kmem,port is restricted; ...')")
    parser.add_argument("--btf", metavar="FILE", help="read the reason enum from this BTF file "
                        "instead of the running kernel's")


def _reason_dict(reason: Any) -> dict[str, Any]:
    from dataclasses import asdict

    out = asdict(reason)
    out["enum"] = reason.enum
    return out


def run(args: argparse.Namespace) -> Result:
    from ..reasons import catalogue, reason_from_line

    cat = catalogue(args.btf, root=Root(args.root).path)
    kernel = {"btf": cat.from_btf, "source": cat.kernel.source if cat.kernel else None,
              "unknown": [{"enum": n, "value": v, "level": lvl} for n, v, lvl in cat.unknown]}
    if args.reason is None:
        data = {"kernel": kernel, "reasons": [_reason_dict(r) for r in cat.reasons]}
        return Result("explain", data, render_table)
    reason = cat.find(args.reason)
    if reason is None:
        from_line = reason_from_line(args.reason)
        reason = cat.find(from_line.id) if from_line else None
    if reason is None:
        raise InputError(f"unknown lockdown reason {args.reason!r}: give an id ("
                         + ", ".join(r.id for r in cat.reasons)
                         + "), an enum name or a kernel log line")
    data = {"kernel": kernel, "reason": _reason_dict(reason)}
    return Result("explain", data, render_one)


def _on_kernel(r: dict[str, Any], kernel: dict[str, Any]) -> str:
    if not kernel["btf"]:
        return "?"
    return f"yes ({r['value']})" if r["on_kernel"] else "no"


def render_table(data: dict[str, Any], s: Style) -> str:
    kernel = data["kernel"]
    rows = [[r["id"], r["level"], r["log"], _on_kernel(r, kernel)] for r in data["reasons"]]
    out = [table(rows, ["REASON", "LEVEL", "KERNEL LOG STRING", "ON THIS KERNEL"])]
    if not kernel["btf"]:
        out.append(s.dim("note: no kernel BTF: levels and values are mainline's, not this kernel's"))
    for u in kernel["unknown"]:
        out.append(s.warn(f"note: this kernel has {u['enum']} ({u['value']}, {u['level']}), "
                          "which lockdownctl does not know yet"))
    out.append(s.dim("lockdownctl explain REASON gives the details of one reason"))
    return "\n".join(out)


def _denied_at(level: str) -> str:
    return "integrity and confidentiality" if level == "integrity" else "confidentiality only"


def render_one(data: dict[str, Any], s: Style) -> str:
    r = data["reason"]
    kernel = data["kernel"]
    where = "not on this kernel" if kernel["btf"] and not r["on_kernel"] else (
        f"value {r['value']} on this kernel" if kernel["btf"] else "mainline value " + str(r["value"]))
    lines = [
        f"{s.bold(r['id'])} ({r['enum']}, {where})",
        f"  Level:        {r['level']} (denied at {_denied_at(r['level'])})",
        f"  Kernel log:   Lockdown: <process>: {r['log']} is restricted; see man kernel_lockdown.7",
        f"  Guards:       {r['guards']}",
        f"  What breaks:  {r['breaks']}",
        f"  What to do:   {r['remedy']}",
        f"  Kernel code:  {r['call_sites']}",
        f"  Since:        Linux {r['since']}",
    ]
    if r["added_by"]:
        lines.append(f"  Added by:     {r['added_by']}")
    if r["arch"]:
        lines.append(f"  Platform:     {r['arch']} only")
    return "\n".join(lines)
