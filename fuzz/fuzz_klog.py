"""Kernel log lines in every dialect (klog/parser.py), line by line and as a block.

Property: every line (shorter than RAW_MAX, not journal JSON) that carries
a lockdown marker (``LOOKS_LIKE_LOCKDOWN``) yields an event (a known
dialect, or kind "unparsed": counted, never dropped as if it were not about
lockdown); no exception. Inputs up to 16 KiB (past RAW_MAX).
"""

from __future__ import annotations

import re

from _common import REFERENCE, Bad, instrumented, main, text

with instrumented():
    from lockdownctl.klog.parser import LOOKS_LIKE_LOCKDOWN, MARKERS, RAW_MAX, parse_line, scan_block

# parse_line() returns None for a line with none of its markers (nor a journal
# "MESSAGE"), first thing: such lines are passed over in C here, so the inputs
# per second go to the lines the parser reads (every LOOKS_LIKE_LOCKDOWN marker
# contains "down", so the property holds for them).
MAYBE = re.compile("|".join(map(re.escape, (*MARKERS, '"MESSAGE"'))))
LOOKS = re.compile("|".join(map(re.escape, LOOKS_LIKE_LOCKDOWN)))
assert all(MAYBE.search(m) for m in LOOKS_LIKE_LOCKDOWN)


def one(data: bytes) -> None:
    for line in filter(MAYBE.search, text(data).splitlines()):
        event = parse_line(line, "file", 1)
        if (event is None and len(line) < RAW_MAX and not line.startswith("{")
                and LOOKS.search(line) is not None):
            raise Bad(f"a lockdown line was dropped: {line[:200]!r}")
        if event is not None and event.kind not in ("denial", "level-set", "ratelimit", "unparsed"):
            raise Bad(f"unknown kind {event.kind!r}")
    scan_block(data, len(data), "file", 1, json_lines=data[:1] == b"{")


def one_as_before(data: bytes) -> None:
    """The target as it was (every line through parse_line, markers tested in Python),
    for benchmarks/parsers.py --fuzz (LOCKDOWNCTL_FUZZ_REFERENCE=1)."""
    for line in text(data).splitlines():
        event = parse_line(line, "file", 1)
        if (event is None and len(line) < RAW_MAX and not line.startswith("{")
                and any(m in line for m in LOOKS_LIKE_LOCKDOWN)):
            raise Bad(f"a lockdown line was dropped: {line[:200]!r}")
        if event is not None and event.kind not in ("denial", "level-set", "ratelimit", "unparsed"):
            raise Bad(f"unknown kind {event.kind!r}")
    scan_block(data, len(data), "file", 1, json_lines=data[:1] == b"{")


if __name__ == "__main__":
    main(one_as_before if REFERENCE else one)
