"""/proc/self/mountinfo: where each file system is mounted in our namespace.

The one parser of it (proc(5): ``ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS
[OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS``). The optional fields end at
``-``; the mount point escapes space, tab, newline and backslash as octal
(show_mountinfo() -> seq_path_root() with " \\t\\n\\\\" in fs/proc_namespace.c).
"""

from __future__ import annotations

MOUNTINFO = "/proc/self/mountinfo"


def _unescape(field: str) -> str:
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse(text: str) -> list[tuple[str, str]]:
    """(mount point, file system type) per well-formed line, in mount order."""
    out = []
    for line in text.splitlines():
        fields = line.split()
        try:
            sep = fields.index("-", 6)
            out.append((_unescape(fields[4]), fields[sep + 1]))
        except (ValueError, IndexError):
            continue  # not a mountinfo line: skipped, never guessed
    return out


def mounts() -> list[tuple[str, str]]:
    """Our namespace's mounts; empty when /proc is not mounted."""
    try:
        with open(MOUNTINFO, encoding="utf-8", errors="surrogateescape") as fh:
            return parse(fh.read())
    except OSError:
        return []


def is_mounted(target: str, fstype: str) -> bool:
    """Whether ``fstype`` is mounted at ``target``."""
    return (target, fstype) in mounts()


def mount_point(fstype: str) -> str | None:
    """Where ``fstype`` is first mounted (e.g. cgroup2: not always /sys/fs/cgroup)."""
    return next((point for point, kind in mounts() if kind == fstype), None)


def fstype_at(path: str) -> str | None:
    """The file system type of the mount holding ``path`` (the deepest mount
    point above it, after symlinks); None when no mount is known."""
    import os

    real = os.path.realpath(path)
    best, kind = "", None
    for point, fstype in mounts():
        if (real == point or real.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, kind = point, fstype
    return kind
