"""kernelstub (Pop!_OS with systemd-boot; docs/kernel-facts.md 3.4).

kernelstub keeps the options in ``/etc/kernelstub/configuration`` (JSON, the
administrator's list under ``user.kernel_options``) and writes them into
``<ESP>/loader/entries/Pop_OS-*.conf`` on every kernel update, so editing the
entry alone would be undone: both are edited, and ``kernelstub -a`` /
``kernelstub -d`` run on the live system (they keep the list as written here
and regenerate the entry).
"""

from __future__ import annotations

import json

from ..errors import InputError
from ..root import Root
from . import entries, tokens
from .engine import Change, Check, Command, Detection, SetupPlan, View

ID = "kernelstub"
TITLE = "kernelstub (/etc/kernelstub/configuration)"
CONFIG = "etc/kernelstub/configuration"
PREFIX = "Pop_OS-"


def detect(root: Root) -> Detection:
    if root.exists(CONFIG):
        return Detection(ID, True, f"{root.display(CONFIG)} exists", [root.display(CONFIG)])
    return Detection(ID, False, f"{root.display(CONFIG)} not found")


def _load(view: View) -> tuple[str, dict[str, object]]:
    text = view.read(CONFIG) or ""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{view.display(CONFIG)}:{exc.lineno}: not JSON: {exc.msg}") from None
    user = data.get("user") if isinstance(data, dict) else None
    if not isinstance(user, dict) or not isinstance(user.get("kernel_options"), list) or not all(
            isinstance(o, str) for o in user["kernel_options"]):
        raise InputError(f"{view.display(CONFIG)}:1: no user.kernel_options list of strings")
    return text, data


def _options(data: dict[str, object]) -> list[str]:
    user = data["user"]
    assert isinstance(user, dict)
    opts: list[str] = user["kernel_options"]
    return opts


def _entries(view: View) -> list[str]:
    return entries.entry_files(view, entries.ENTRY_DIRS, PREFIX)


def present(view: View) -> list[tuple[str, str]]:
    _, data = _load(view)
    where = f"{view.display(CONFIG)} (user.kernel_options)"
    out = [(where, v) for o in _options(data) for v in tokens.lockdown_values(o, where)]
    return out + entries.present(view, _entries(view))


def plan(view: View, level: str | None) -> SetupPlan:
    result = SetupPlan(ID, TITLE)
    text, data = _load(view)
    old = _options(data)
    stale = [o for o in old if tokens.is_lockdown(o) and o != f"lockdown={level}"]
    new = [o for o in old if not tokens.is_lockdown(o)] + ([f"lockdown={level}"] if level else [])
    if new != old:
        user = data["user"]
        assert isinstance(user, dict)
        user["kernel_options"] = new
        result.changes.append(Change(CONFIG, text, json.dumps(data, indent=2) + "\n",
                                     "user.kernel_options: kernelstub writes them into the entry"))
    result.changes += entries.plan_entries(view, _entries(view), level, "options line of kernelstub's entry")
    if result.changes:
        if stale:
            result.commands.append(Command(["kernelstub", "-d", " ".join(stale)], "drop the old token"))
        if level:
            result.commands.append(Command(["kernelstub", "-a", f"lockdown={level}"],
                                           "regenerate the entry with the token"))
    return result


def verify(view: View, level: str | None) -> list[Check]:
    _, data = _load(view)
    opts = " ".join(_options(data))
    problem = tokens.has_exactly(opts, level, CONFIG)
    out = [Check(view.display(CONFIG) + " (user.kernel_options)", problem is None, problem or opts)]
    return out + entries.verify_entries(view, _entries(view), level)
