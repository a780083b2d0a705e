"""``check --measure``: what the enforcer would deny at a level, measured.

A private, unpinned copy of the enforcer runs in audit mode; nothing is
denied and nothing outlives the call.
"""

from __future__ import annotations

import time
from typing import Any

from ..policy import Policy
from ..reasons import Catalogue
from ..root import Root
from ..state.bpf_lsm import require_bpf_lsm
from . import libbpf
from .abi import LD_COUNT_AUDITED
from .decode import EventDecoder
from .enforcer import PROGRAM, Enforcer, require_root
from .resolve import resolve


def measure(level: str, seconds: float, cat: Catalogue) -> dict[str, Any]:
    """Run a private, unpinned copy of the enforcer in audit mode with the
    ``level`` profile for ``seconds`` and aggregate what it would have denied.

    Nothing is denied and nothing outlives the call (the link is detached on
    the way out), and an enforcer already pinned keeps running beside it.
    Ctrl-C ends the measurement early: the result then says ``interrupted``
    and how many seconds were measured, and holds what was seen until then.
    """
    require_root()
    require_bpf_lsm(Root("/"))
    policy = Policy(source="check --measure", profile=level, mode="audit")
    enforcer = Enforcer.load()
    seen: dict[tuple[str, str, str], int] = {}
    decoder = EventDecoder(cat)
    events = 0
    interrupted = False
    elapsed = 0.0

    def on_event(raw: bytes) -> None:
        nonlocal events
        events += 1
        e = decoder.decode(raw)
        key = (e["comm"] or "", e["exe"] or e["exe_id"], e["reason"] or str(e["reason_value"]))
        seen[key] = seen.get(key, 0) + 1

    try:
        enforcer.write_policy(resolve(policy, cat))
        enforcer.link = libbpf.attach(enforcer.obj.program(PROGRAM))  # type: ignore[union-attr]
        ring = libbpf.RingBuffer(enforcer.fds["events"], on_event)
        start = time.monotonic()
        try:
            end = start + seconds
            try:
                while (left := end - time.monotonic()) > 0:
                    ring.poll(int(min(left, 0.2) * 1000) + 1)
            except KeyboardInterrupt:  # Ctrl-C ends the measurement early; what was seen still counts
                interrupted = True
            elapsed = time.monotonic() - start
            libbpf.link_release(enforcer.link, keep_attached=False)  # detach before the last read
            enforcer.link = None
            ring.consume()
        finally:
            ring.close()
        per_reason, drops = enforcer.counters()
    finally:
        if enforcer.link is not None:
            libbpf.link_release(enforcer.link, keep_attached=False)
            enforcer.link = None
        enforcer.close()
    audited = sum(c[LD_COUNT_AUDITED] for c in per_reason)
    return {
        # seconds: how long it really measured (less than asked when interrupted by Ctrl-C)
        "seconds": round(elapsed, 1) if interrupted else seconds, "requested": seconds,
        "interrupted": interrupted, "events": events, "drops": drops, "audited": audited,
        # exe: a path when /proc resolved it while the process lived, else None
        # (the device:inode identity stays in exe_id)
        "observations": [{"comm": comm, "exe": exe if exe.startswith("/") else None, "exe_id": exe,
                          "reason": reason, "count": count}
                         for (comm, exe, reason), count in sorted(seen.items())],
    }
