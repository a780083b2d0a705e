"""rpm-ostree / bootc systems (Fedora Silverblue, CoreOS; docs/kernel-facts.md 3.4).

The command line belongs to the deployment: ``rpm-ostree kargs`` makes a new
one carrying the change (the ostree entries under /boot/loader/entries are
generated and must not be edited). Nothing is written by lockdownctl; the
current entries show whether a change is needed.
"""

from __future__ import annotations

from ..root import Root
from . import entries, tokens
from .engine import Check, Command, Detection, SetupPlan, View

ID = "rpm-ostree"
TITLE = "rpm-ostree (kargs of the deployment)"
MARKERS = ("run/ostree-booted", "ostree/repo")


def detect(root: Root) -> Detection:
    view = View(root)
    marker = next((m for m in MARKERS if view.exists(m)), None)
    tool = view.has_program("rpm-ostree")
    if marker and tool:
        return Detection(ID, True, f"{root.display(marker)} and {tool}: an rpm-ostree system",
                         [root.display(f) for f in _entries(view)])
    return Detection(ID, False, "not an rpm-ostree system (no /run/ostree-booted or no rpm-ostree)")


def _entries(view: View) -> list[str]:
    return entries.entry_files(view, ("boot/loader/entries",), "ostree-")


def present(view: View) -> list[tuple[str, str]]:
    return entries.present(view, _entries(view))


def plan(view: View, level: str | None) -> SetupPlan:
    result = SetupPlan(ID, TITLE)
    current: list[str] = []
    files = _entries(view)
    for rel in files:
        for value in tokens.lockdown_values(entries.options(view.read(rel) or ""), rel):
            if value not in current:
                current.append(value)
    delete = [f"--delete-if-present=lockdown={v}" for v in current if v != level]
    append = [f"--append-if-missing=lockdown={level}"] if level else []
    if delete or (level and (not files or any(not c.ok for c in verify_generated(view, level)))):
        result.commands.append(Command(["rpm-ostree", "kargs", *delete, *append],
                                       "a new deployment with the changed kernel arguments (reboot to use it)"))
    result.notes.append("rpm-ostree stages a new deployment: the change takes effect at the next boot")
    return result


def verify(view: View, level: str | None) -> list[Check]:
    return []


def verify_generated(view: View, level: str | None) -> list[Check]:
    return entries.verify_entries(view, _entries(view), level)
