"""Boot Loader Specification Type #1 entries (``loader/entries/*.conf``).

Shared by the grubby (Fedora/RHEL), systemd-boot + kernel-install and
kernelstub setups: an entry is ``key value`` lines; the kernel command line
is the ``options`` lines, joined with spaces.
"""

from __future__ import annotations

import re

from . import tokens
from .engine import Change, Check, View

ENTRY_DIRS = ("boot/loader/entries", "efi/loader/entries", "boot/efi/loader/entries")


def entry_files(view: View, dirs: tuple[str, ...] = ENTRY_DIRS, prefix: str = "") -> list[str]:
    out = []
    for d in dirs:
        out += [f"{d}/{n}" for n in view.listdir(d) if n.endswith(".conf") and n.startswith(prefix)]
    return out


# An options line: "options" as its first word, then at least one more (\s is
# str.split()'s whitespace); the group is the rest, stripped. Greedy, so linear.
_OPTIONS = re.compile(r"\s*options\s+(\S(?:.*\S)?)\s*", re.S)


def options(text: str) -> str:
    return " ".join(m.group(1) for m in filter(None, map(_OPTIONS.fullmatch, text.splitlines())))


def uses_kernelopts(text: str) -> bool:
    return "$kernelopts" in options(text)


def edit(text: str, level: str | None) -> str:
    """The entry with exactly one lockdown=level on its last options line."""
    lines = text.splitlines(keepends=True)
    idx = [i for i, line in enumerate(lines) if line.split(None, 1)[:1] == ["options"]]
    for i in idx:
        key, _, rest = lines[i].partition("options")
        lines[i] = key + "options" + tokens.strip_tokens(rest)
    if level is None:
        return "".join(lines)
    if idx:
        i = idx[-1]
        lines[i] = tokens.set_token(lines[i], level)
    else:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines.append(f"options lockdown={level}\n")
    return "".join(lines)


def plan_entries(view: View, files: list[str], level: str | None, why: str) -> list[Change]:
    out = []
    for rel in files:
        text = view.read(rel) or ""
        if uses_kernelopts(text):
            continue  # options come from grubenv's kernelopts: grubby edits that
        new = edit(text, level)
        if new != text:
            out.append(Change(rel, text, new, why))
    return out


def verify_entries(view: View, files: list[str], level: str | None) -> list[Check]:
    out = []
    for rel in files:
        text = view.read(rel) or ""
        if uses_kernelopts(text):
            continue
        problem = tokens.has_exactly(options(text), level, rel)
        out.append(Check(view.display(rel), problem is None, problem or "options: " + options(text)))
    return out


def present(view: View, files: list[str]) -> list[tuple[str, str]]:
    """(where, value) of every lockdown= on the options lines of ``files``."""
    out = []
    for rel in files:
        text = view.read(rel) or ""
        if not uses_kernelopts(text):
            out += [(f"{where} (options)", v) for where, v in tokens.line_levels(text, view.display(rel), "options")]
    return out
