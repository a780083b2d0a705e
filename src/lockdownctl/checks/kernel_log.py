"""The kernel log: denials already happening (``Lockdown: <comm>: <what> is
restricted``), printed by security/lockdown/lockdown.c
lockdown_is_locked_down() for every reason. Counts are lower bounds (the
notice is rate-limited or printed once, kernel-facts.md 0.2).
"""

from __future__ import annotations

from ..reasons import DENIAL_RE, reason_from_line
from .engine import Context, Evidence, Finding, exception_yaml

NAME = "kernel-log"


def detect(ctx: Context) -> list[Finding]:
    groups: dict[tuple[str, str], list[Evidence]] = {}
    for line in ctx.log:
        if "Lockdown" not in line.text or "is restricted" not in line.text:
            continue
        reason = reason_from_line(line.text)
        if reason is None:
            continue
        match = DENIAL_RE.search(line.text)
        comm = (match.group("comm") or "") if match else ""
        groups.setdefault((reason.id, comm), []).append(ctx.log_evidence(line))
    out = []
    for (reason_id, comm), ev in groups.items():
        kernel_thread = comm.startswith(("swapper", "kworker")) or not comm
        out.append(
            ctx.finding(
                NAME,
                reason_id,
                "breaks",
                f"{comm or 'the kernel'} was denied {ctx.reason(reason_id).log} "
                f"({len(ev)} log line{'s' if len(ev) > 1 else ''})",
                ev[:5],
                f"already denied at the current level: {ctx.reason(reason_id).breaks}",
                policy=None if kernel_thread else exception_yaml([reason_id], name=comm, exe=f"<path of {comm}>"),
                comm=comm,
                count=len(ev),
            )
        )
    return out
