"""/proc/self/mountinfo (mountinfo.py parse(): private mounts, the enforcer's cgroup v2 mount).

Property: a list of (mount point, type) pairs, never an exception; only
lines with the proc(5) shape count (a "-" separator after the six fixed
fields, a type after it), so a damaged line never names a mount.
"""

from __future__ import annotations

from _common import Bad, instrumented, main, text

with instrumented():
    from lockdownctl.mountinfo import parse as mounts


def one(data: bytes) -> None:
    src = text(data)
    for point, fstype in mounts(src):
        if not fstype or " " in fstype or fstype not in src:
            raise Bad(f"type {fstype!r} for {point!r}")


if __name__ == "__main__":
    main(one)
