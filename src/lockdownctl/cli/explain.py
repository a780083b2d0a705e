"""``lockdownctl explain [REASON|LINE]``: the kernel_lockdown.7 page, from the catalogue.

A pasted kernel log line is read by the recogniser ``watch`` and ``check``
use (klog.parser): a denial in any dialect names its reason, a level-set
line says who locked the kernel down and at which level, a side effect or
SELinux record names the reason it stands for, a rate-limit notice says
that counts are lower bounds.
"""

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
                        help="a reason id (dev_mem), enum name (LOCKDOWN_DEV_MEM), the reason's kernel string, "
                        "or a pasted kernel log line about lockdown (a denial in any dialect, a level-set "
                        "line, a side effect, an SELinux record, a rate-limit notice)")
    parser.add_argument("--btf", metavar="FILE", help="read the reason enum from this BTF file "
                        "instead of the running kernel's")


def _reason_dict(reason: Any) -> dict[str, Any]:
    from dataclasses import asdict

    from ..protection import checked_in_text, exposure

    out = asdict(reason)
    out["enum"] = reason.enum
    out["exposes"] = exposure(reason)  # what allowing it lets root defeat (the bypass graph)
    out["checked_where"] = checked_in_text(reason)
    return out


def line_answer(event: Any) -> str:
    """One sentence for a level-set or rate-limit line (the recogniser's Event)."""
    from ..klog import level_answer, ratelimit_answer

    if event.kind == "ratelimit":
        return ratelimit_answer(event.suppressed, event.what)
    return level_answer(event.where or "", event.level)


def _from_line(text: str, cat: Any) -> tuple[Any, dict[str, Any]] | None:
    """(reason or None, what the line says) of a pasted log line, None if it is not about lockdown."""
    from ..klog import lsm_list
    from ..klog.parser import parse_line

    event = parse_line(text, "argument")
    if event is None:
        names = lsm_list(text)
        if names is None:
            return None
        active = "lockdown" in names
        return None, {"kind": "lsm-init", "lsm": names, "answer": "the lockdown LSM was initialised at boot"
                      if active else "the lockdown LSM is not in the list initialised at boot: no level is enforced"}
    line = {"kind": event.kind, "dialect": event.dialect, "comm": event.comm, "reason": event.reason,
            "level": event.level, "where": event.where, "what": event.what, "verdict": event.verdict,
            "suppressed": event.suppressed}
    if event.kind == "unparsed":
        raise InputError("this line looks like a lockdown message, but lockdownctl does not understand it: "
                         f"{text[:200]!r}")
    if event.kind == "denial":
        if event.reason is None:
            what = (event.what or "")[:120]
            raise InputError(f"the kernel denied {what!r}, a lockdown reason lockdownctl does not know"
                             + (f" (comm {event.comm!r})" if event.comm else ""))
        return cat.find(event.reason), line
    line["answer"] = line_answer(event)
    return None, line


def run(args: argparse.Namespace) -> Result:
    from ..reasons import catalogue, reason_from_phrase, suggest

    cat = catalogue(args.btf, root=Root(args.root).path)
    kernel = {"btf": cat.from_btf, "source": cat.kernel.source if cat.kernel else None,
              "unknown": [{"enum": n, "value": v, "level": lvl} for n, v, lvl in cat.unknown]}
    if args.reason is None:
        return Result("explain", {"kernel": kernel, "reasons": [_reason_dict(r) for r in cat.reasons]}, render_table)
    reason = cat.find(args.reason)
    line: dict[str, Any] | None = None
    if reason is None and (phrase := reason_from_phrase(args.reason)) is not None:
        reason = cat.find(phrase[0].id)
    if reason is None:
        found = _from_line(args.reason, cat)
        if found is not None:
            reason, line = found
    if reason is None and line is None:
        ids = [r.id for r in cat.reasons]
        raise InputError(f"unknown lockdown reason {args.reason[:80]!r}{suggest(args.reason, ids)}: give an id ("
                         + ", ".join(ids) + "), an enum name or a kernel log line")
    data: dict[str, Any] = {"kernel": kernel, "reason": _reason_dict(reason) if reason else None}
    if line is not None:
        data["line"] = line
    return Result("explain", data, render_one)


def _on_kernel(r: dict[str, Any], kernel: dict[str, Any]) -> str:
    if not kernel["btf"]:
        return "?"
    return f"yes ({r['value']})" if r["on_kernel"] else "no"


def _if_allowed(r: dict[str, Any]) -> str:
    """What root can defeat when the reason is allowed (catalogue ``defeats``), short."""
    if "integrity" in r["defeats"]:
        return "everything (kernel write)"
    return "confidentiality (kernel read)" if r["defeats"] else "nothing else"


def render_table(data: dict[str, Any], s: Style) -> str:
    kernel = data["kernel"]
    rows = [[r["id"], r["level"], r["log"], _on_kernel(r, kernel), _if_allowed(r)] for r in data["reasons"]]
    out = [table(rows, ["REASON", "LEVEL", "KERNEL LOG STRING", "ON THIS KERNEL", "ALLOWING IT DEFEATS"],
                 s.width, free=(2, 4))]
    if not kernel["btf"]:
        out.append(s.dim("note: no kernel BTF: levels and values are mainline's, not this kernel's"))
    for u in kernel["unknown"]:
        out.append(s.warn(f"note: this kernel has {u['enum']} ({u['value']}, {u['level']}), "
                          "which lockdownctl does not know yet"))
    out.append(s.dim("lockdownctl explain REASON gives the details of one reason"))
    return "\n".join(out)


def _denied_at(level: str) -> str:
    return "integrity and confidentiality" if level == "integrity" else "confidentiality only"


def _line_text(line: dict[str, Any]) -> str:
    """What a pasted denial line is (the reason itself follows)."""
    if line["dialect"] == "side-effect":
        what = "a side effect of a lockdown denial" + (f" ({line['what']})" if line["what"] else "")
    elif line["dialect"] == "selinux-avc":
        what = f"an SELinux lockdown record ({line['verdict']})"
    else:
        what = f"a lockdown denial ({line['dialect']} dialect)"
    return what + (f", process {line['comm']!r}" if line["comm"] else "")


def render_one(data: dict[str, Any], s: Style) -> str:
    from ..reasons import denial_line

    line = data.get("line")
    r = data["reason"]
    if r is None:  # a level-set, rate-limit or LSM line: one answer
        return s.bold(line["answer"]) if line else ""
    kernel = data["kernel"]
    where = "not on this kernel" if kernel["btf"] and not r["on_kernel"] else (
        f"value {r['value']} on this kernel" if kernel["btf"] else "mainline value " + str(r["value"]))
    lines = [
        f"{s.bold(r['id'])} ({r['enum']}, {where})",
        f"  Level:        {r['level']} (denied at {_denied_at(r['level'])})",
        f"  Kernel log:   {denial_line(r['id'], '<process>')}",
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
    lines.append(f"  Allowing it:  {r['exposes']}")
    if r["checked_where"]:
        lines.append(f"  Checked:      {r['checked_where']}")
    if line:
        lines.append(f"  This line:    {_line_text(line)}")
    return s.fit(lines)
