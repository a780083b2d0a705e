"""The kernel log: denials already happening, read by the one recogniser of
lockdown lines (``klog.parser.classify``, the one ``watch`` and ``explain``
use): ``Lockdown: <comm>: <what> is restricted`` in every dialect
(security/lockdown/lockdown.c lockdown_is_locked_down()), the side effects
that mean a denial (tracefs entries not created, unsigned modules rejected,
ACPI table overrides ignored) and SELinux AVC records of class lockdown.
Counts are lower bounds (the notice is rate-limited or printed once,
docs/kernel-facts.md 0.2).
"""

from __future__ import annotations

from ..events import Event
from ..klog import level_answer, ratelimit_answer
from ..klog.parser import classify_message
from ..klog.summary import PROBES
from .engine import Context, Evidence, Finding, exception_yaml

NAME = "kernel-log"


def events(ctx: Context) -> list[tuple[Event, Evidence]]:
    """Every lockdown event in the kernel log, with the evidence that cites its line."""
    out = []
    for line in ctx.log:
        event = classify_message(line.text, "kernel log", line.lineno or None, line.seconds)
        if event is not None:
            out.append((event, ctx.log_evidence(line)))
    return out


def _who(comm: str, event: Event) -> str:
    if event.dialect == "side-effect":
        return "the kernel reported a side effect:" if not comm else f"{comm} was affected:"
    verb = "audited (SELinux permissive) for" if event.verdict == "audited" else "denied"
    return f"{comm or 'the kernel'} was {verb}"


def detect(ctx: Context) -> list[Finding]:
    groups: dict[tuple[str, str, str], list[tuple[Event, Evidence]]] = {}
    for event, evidence in events(ctx):
        if event.kind == "ratelimit":
            ctx.notes.append(f"{evidence.where}: {ratelimit_answer(event.suppressed, event.what)}")
        elif event.kind == "level-set":
            ctx.notes.append(f"{evidence.where}: {level_answer(event.where or '', event.level)}")
        elif event.kind == "unparsed" or (event.kind == "denial" and event.reason is None):
            what = f" ({event.what!r})" if event.what else ""
            ctx.notes.append(f"{evidence.where}: a lockdown line lockdownctl does not understand{what}: "
                             f"{event.raw}")
        elif event.kind == "denial":
            assert event.reason is not None
            groups.setdefault((event.reason, event.comm or "", event.dialect or ""), []).append((event, evidence))
    out = []
    for (reason_id, comm, _dialect), hits in groups.items():
        first = hits[0][0]
        ev = [e for _, e in hits]
        reason = ctx.reason(reason_id)
        kernel_thread = comm.startswith(("swapper", "kworker")) or not comm
        probe = PROBES.get((reason_id, comm))
        if probe is not None:  # a question, not a failure: no breakage and no exception to propose
            out.append(ctx.finding(
                NAME, reason_id, "info",
                f"{comm} probed whether {reason.log} is possible ({len(ev)} log line{'s' if len(ev) > 1 else ''})",
                ev[:5], "noise in the kernel log; the probe itself breaks nothing", probe,
                comm=comm, count=len(ev), dialect=first.dialect, verdict=first.verdict))
            continue
        out.append(
            ctx.finding(
                NAME,
                reason_id,
                "breaks",
                f"{_who(comm, first)} {reason.log} ({len(ev)} log line{'s' if len(ev) > 1 else ''})",
                ev[:5],
                f"already denied at the current level: {reason.breaks}",
                policy=None if kernel_thread else exception_yaml([reason_id], name=comm, exe=f"<path of {comm}>"),
                comm=comm,
                count=len(ev),
                dialect=first.dialect,
                verdict=first.verdict,
            )
        )
    return out
