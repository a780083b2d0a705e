"""Saved events (klog/sources.py read_events: ``watch --events FILE``), JSON
lines or one JSON document, checked by events.Event.from_dict.

Property: events or a one-line InputError naming file and line; every event
read back has a known kind and source. Size cap 1 MiB.
"""

from __future__ import annotations

from _common import Bad, instrumented, main, write

with instrumented():
    from lockdownctl.events import KINDS, SOURCES
    from lockdownctl.klog.sources import read_events


def one(data: bytes) -> None:
    for event in read_events(write("events.jsonl", data)):
        if event.kind not in KINDS or event.source not in SOURCES:
            raise Bad(f"an event with kind {event.kind!r}, source {event.source!r}")


if __name__ == "__main__":
    main(one)
