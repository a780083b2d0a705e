"""Saved events (klog/sources.py parse_events: what ``watch --events FILE``
reads), JSON lines or one JSON document, checked by events.Event.from_dict;
in memory (read_events only reads the file and hands its bytes over).

Property: events or a one-line InputError naming file and line; every event
read back has a known kind and source.
"""

from __future__ import annotations

from _common import Bad, instrumented, main

with instrumented():
    from lockdownctl.events import KINDS, SOURCES
    from lockdownctl.klog.sources import parse_events


def one(data: bytes) -> None:
    for event in parse_events(data, "events.jsonl"):
        if event.kind not in KINDS or event.source not in SOURCES:
            raise Bad(f"an event with kind {event.kind!r}, source {event.source!r}")


if __name__ == "__main__":
    main(one)
