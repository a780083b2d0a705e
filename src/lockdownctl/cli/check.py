"""``lockdownctl check --level LEVEL``: what will break at a lockdown level, with evidence."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import EXIT_FINDINGS, EXIT_INTERRUPTED, EXIT_OK, EXIT_UNDECIDED, InputError
from ..levels import LEVELS

if TYPE_CHECKING:
    import argparse
    from typing import Any

    from ..output import Result, Style


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"--measure: not a number of seconds: {text!r}") from None
    if value <= 0:
        raise InputError(f"--measure: must be more than 0 seconds: {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--level",
        choices=LEVELS[1:],
        default="integrity",
        help="the level to check readiness for: integrity (default) or confidentiality",
    )
    parser.add_argument(
        "--measure",
        metavar="SECONDS",
        type=_seconds,
        help="also run the enforcer in audit mode for SECONDS (nothing is denied) and report "
        "every operation the level would have refused, by process (needs root and the BPF LSM)",
    )


def run(args: argparse.Namespace) -> Result:
    from ..checks import check
    from ..output import Result
    from ..root import Root

    root = Root(args.root)
    if args.measure is not None and not root.live:
        raise InputError("--measure watches the running kernel: it cannot be combined with --root")
    data = check(root, args.level)
    if args.measure is not None:
        from ..checks.engine import merge_observed
        from ..reasons import catalogue

        cat = catalogue()
        measured = _measure(args, cat)
        merge_observed(data, measured["observations"], cat, f"enforcer audit, {measured['seconds']:g} s")
        data["measured"] = {k: v for k, v in measured.items() if k != "observations"}
        if measured["drops"]:
            data["measured"]["note"] = ("the ring buffer was full at times: counts are lower bounds "
                                        f"({measured['drops']} events dropped)")
        if measured["interrupted"]:
            _interrupted(data, args)
    code = EXIT_FINDINGS if data["summary"]["breaks"] else EXIT_UNDECIDED if data["verdict"] == "unknown" else EXIT_OK
    if data.get("measured", {}).get("interrupted") and not data["summary"]["breaks"]:
        code = EXIT_INTERRUPTED  # a measurement cut short found nothing: no verdict
    return Result("check", data, render, code)


def _interrupted(data: dict[str, Any], args: argparse.Namespace) -> None:
    """Ctrl-C during --measure: what was seen is reported (a denial seen is
    seen), but a cut-short measurement that saw nothing is no "ready": the
    verdict becomes unknown and the command ends with 130 (lockdownctl(8))."""
    from ..output.progress import Progress

    m = data["measured"]
    Progress("check").interrupted(
        f"measured for {m['seconds']:g} of {m['requested']:g} s: {m['events']} event"
        f"{'s' if m['events'] != 1 else ''}, {data['summary']['breaks']} finding"
        f"{'s' if data['summary']['breaks'] != 1 else ''} that break; the audit copy is detached", m["seconds"])
    if not data["summary"]["breaks"]:
        data["verdict"] = "unknown"
    data["notes"].append(f"check --measure was interrupted after {m['seconds']:g} of {m['requested']:g} s: "
                         "the measured part is partial")


def _measure(args: argparse.Namespace, cat: Any) -> dict[str, Any]:
    """bpf.measure with the time left on a terminal's standard error. Ctrl-C
    ends the measurement (measure() detaches the audit copy and returns what it
    saw: see _interrupted); a Ctrl-C outside the poll loop (loading, a second
    one during clean-up) is one line and 130, like any interrupted command."""
    from ..bpf.enforcer import require_root
    from ..bpf.measure import measure
    from ..output.progress import Interrupted, Progress, countdown
    from ..root import Root
    from ..state.bpf_lsm import require_bpf_lsm

    # measure() refuses these too; asked first so that a refusal is not preceded by a countdown.
    require_root()
    require_bpf_lsm(Root("/"))
    progress = Progress("check")
    try:
        with countdown(progress, args.measure, f"measuring what lockdown={args.level} would deny"):
            return measure(args.level, args.measure, cat)
    except KeyboardInterrupt:
        progress.interrupted(f"measured for {progress.elapsed():.1f} of {args.measure:g} s; the enforcer's audit "
                             "copy is detached, and an interrupted measurement gives no readiness verdict")
        raise Interrupted from None


def render(data: dict[str, Any], s: Style) -> str:
    cur = data["current"]
    lines = [
        f"Readiness for lockdown={s.bold(data['target'])} "
        f"(now: {cur['level'] or 'unknown'}; kernel {data['kernel']['release'] or 'unknown'})"
    ]
    for p in data["preconditions"]:
        if p["holds"] and p["id"] not in ("secure-boot",):
            lines.append(s.dim(f"  precondition: {p['effect']}"))
    marks = {"breaks": s.bad("BREAKS"), "likely": s.warn("LIKELY"), "info": s.dim("INFO  ")}
    for f in data["findings"]:
        lines.append("")
        lines.append(f"{marks[f['confidence']]}  {f['reason']} ({f['level']}): {f['title']}")
        for e in f["evidence"]:
            lines.append(f"    evidence:  {e['where']}: {e['text']}")
        lines.append(f"    you see:   {f['symptom']}")
        lines.append(f"    remedy:    {f['remedy']}")
        if f["policy"]:
            lines.append(f"    keep it:   {f['policy']}")
            if f.get("exposes"):
                lines.append(f"    exposes:   {f['exposes']}")
        if f.get("note"):
            lines.append(s.dim(f"    note:      {f['note']}"))
    if data["suppressed"]:
        lines.append("")
        lines.append(
            s.dim(
                f"{len(data['suppressed'])} finding(s) cannot occur on this kernel "
                "(see --json 'suppressed'): " + "; ".join(sorted({f["note"] for f in data["suppressed"]}))
            )
        )
    for note in data["notes"]:
        lines.append(s.dim(f"note: {note}"))
    if data["not_read"] and data["verdict"] != "unknown":
        lines.append(s.dim(f"note: not read (findings from them are missing): {', '.join(data['not_read'])}"))
    sm = data["summary"]
    if data["verdict"] == "unknown":
        lines.append("")
        lines.append(s.bad("nothing could be checked: no " + ", no ".join(data["not_read"])))
        lines.append(f"{sm['breaks']} breaks, {sm['likely']} likely, {sm['info']} info: "
                     f"{s.bad('unknown')} (not a readiness verdict)")
        return s.fit(lines)
    verdict = {"not-ready": s.bad("not ready"), "ready": s.good("ready"),
               "check-likely": s.warn("check the likely ones")}[data["verdict"]]
    lines.append("")
    lines.append(f"{sm['breaks']} breaks, {sm['likely']} likely, {sm['info']} info: {verdict}")
    return s.fit(lines)
