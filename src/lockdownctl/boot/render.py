"""Text output of enable / disable: what was found, the plan, what happened, the checks."""

from __future__ import annotations

from typing import Any

from ..output import Style


def render(data: dict[str, Any], s: Style) -> str:
    lines: list[str] = []
    rollback = data.get("action") == "rollback"
    what = "enable --rollback" if rollback else f"enable {data['level']}" if data.get("level") else "disable"
    if data.get("refused"):
        return s.bad("refused: ") + str(data["refused"])
    for note in data.get("recovered") or []:
        lines.append(s.dim("recovered: ") + note)
    for rel in data.get("pending") or []:
        lines.append(s.dim("pending: ") + f"{rel} records an interrupted change: a run without --dry-run "
                     "puts its files back first")
    now = data.get("now")
    if now:
        if now["refused"]:
            lines.append(s.bad("refused: ") + now["refused"])
        elif now.get("written"):
            lines.append(s.good("raised: ") + f"{now['from']} -> {now['to']} (securityfs now says: {now['after']})")
        elif now.get("error"):
            lines.append(s.bad("failed: ") + now["error"])
        elif now.get("plan"):
            lines.append("would " + now["plan"])
    readiness = (data.get("safety") or {}).get("readiness")
    if readiness and readiness["checked"]:
        lines.append(s.dim("readiness: " + readiness["detail"]))
    if "setups" not in data:
        return "\n".join(lines)
    if data.get("detected"):
        lines.append(s.bold("Boot setups found:"))
    for d in data.get("detected") or []:
        mark = s.good("yes") if d["found"] else "no "
        lines.append(f"  {mark} {d['setup']:13} {d['why']}")
    for setup in data["setups"]:
        lines.append("")
        lines.append(s.bold(f"== {setup['title']} =="))
        if setup["problem"]:
            lines.append(s.bad("cannot: ") + setup["problem"])
            continue
        for change in setup["changes"]:
            lines.append(f"{change['action']} {change['path']}: {change['why']}")
        for change in setup["changes"]:
            lines.append(change["diff"].rstrip("\n"))
        for cmd in setup["commands"]:
            lines.append(f"command: {cmd['text']}    # {cmd['why']}")
        if not setup["changes"] and not setup["commands"]:
            lines.append("nothing to change")
        for note in setup["notes"]:
            lines.append(s.dim(f"note: {note}"))
        for check in setup.get("verify", []):
            mark = s.good("ok  ") if check["ok"] else s.bad("FAIL")
            lines.append(f"  {mark} {check['where']}: {check['detail']}")
    applied = data.get("applied")
    lines.append("")
    if data["dry_run"] and (data["changed"] or data.get("problems")):
        lines.append(f"dry run: nothing changed ({what})")
    elif data["dry_run"]:
        lines.append(
                     f"nothing to change: the boot setup already matches '{what}'")
    elif applied:
        if applied["backup"]:
            lines.append(f"backup of every changed file: {applied['backup']}")
        for r in applied["commands"]:
            state = "ok" if r["exit_status"] == 0 else f"exit status {r['exit_status']}"
            lines.append(f"ran: {r['text']} ({state})")
        for text in applied["commands_not_run"]:
            lines.append(f"not run (--root is not the running system): {text}")
    elif not data["changed"] and not data.get("problems"):
        lines.append(f"nothing to change: the boot setup already matches '{what}'")
    for problem in data.get("problems", []):
        lines.append(s.bad("problem: ") + problem)
    if rollback and data.get("verified") and not data["dry_run"]:
        lines.append(s.good("verified") + ": every file is as before " + f"enable {data['of']['level']}"
                     + (" (it was already)" if not data["changed"] else ""))
    if data.get("verified") and not data["dry_run"] and data.get("level"):
        lines.append(s.good("verified") + f": after reboot, confirm with: lockdownctl status --expect {data['level']}")
    return "\n".join(lines)
