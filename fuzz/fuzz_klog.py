"""Kernel log lines in every dialect (klog/parser.py), line by line and as a block.

Property: every line (shorter than RAW_MAX, not journal JSON) that carries
a lockdown marker (``LOOKS_LIKE_LOCKDOWN``) yields an event (a known
dialect, or kind "unparsed": counted, never dropped as if it were not about
lockdown); no exception. Inputs up to 16 KiB (past RAW_MAX).
"""

from __future__ import annotations

from _common import Bad, instrumented, main, text

with instrumented():
    from lockdownctl.klog.parser import LOOKS_LIKE_LOCKDOWN, RAW_MAX, parse_line, scan_block


def one(data: bytes) -> None:
    for line in text(data).splitlines():
        event = parse_line(line, "file", 1)
        if (event is None and len(line) < RAW_MAX and not line.startswith("{")
                and any(m in line for m in LOOKS_LIKE_LOCKDOWN)):
            raise Bad(f"a lockdown line was dropped: {line[:200]!r}")
        if event is not None and event.kind not in ("denial", "level-set", "ratelimit", "unparsed"):
            raise Bad(f"unknown kind {event.kind!r}")
    scan_block(data, len(data), "file", 1, json_lines=data[:1] == b"{")


if __name__ == "__main__":
    main(one)
