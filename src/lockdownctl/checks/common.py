"""Helpers shared by detectors: units, scripts and packages that name a tool."""

from __future__ import annotations

import re
import shlex

from ..host.modules import ConfLine, read_conf_lines
from ..host.systemd import Setting, Unit
from .engine import Context, Evidence, Finding, exception_yaml

# Where administrators put commands that run at boot or periodically.
SCRIPT_FILES = ("etc/rc.local", "etc/crontab")
SCRIPT_DIRS = (
    "etc/cron.d",
    "etc/cron.hourly",
    "etc/cron.daily",
    "etc/cron.weekly",
    "etc/cron.monthly",
    "etc/network/if-up.d",
    "usr/lib/systemd/system-sleep",
    "lib/systemd/system-sleep",
)


def unit_hits(ctx: Context, pattern: re.Pattern[str]) -> list[tuple[Unit, Setting]]:
    """Exec lines of units that match ``pattern``."""
    return [(u, s) for u in ctx.units for s in u.exec_lines() if pattern.search(s.value)]


def unit_evidence(unit: Unit, setting: Setting) -> list[Evidence]:
    ev = [Evidence("unit", setting.where, setting.text)]
    if unit.enabled_by:
        ev.append(Evidence("unit", unit.enabled_by, f"{unit.name} is enabled"))
    return ev


def exec_path(value: str) -> str:
    """The program of an Exec= value (prefixes @-:+! stripped)."""
    try:
        words = shlex.split(value)
    except ValueError:
        words = value.split()
    while words and words[0] in ("/usr/bin/env", "env", "sudo"):
        words = words[1:]
    return words[0].lstrip("@-:+!") if words else ""


def script_lines(ctx: Context) -> list[ConfLine]:
    out = []
    for rel in SCRIPT_FILES:
        out += read_conf_lines(ctx.root, rel)
    for d in SCRIPT_DIRS:
        for name in ctx.root.listdir(d):
            if not ctx.root.is_dir(f"{d}/{name}"):
                out += read_conf_lines(ctx.root, f"{d}/{name}")
    return out


def script_hits(ctx: Context, pattern: re.Pattern[str]) -> list[ConfLine]:
    return [line for line in script_lines(ctx) if pattern.search(line.text)]


def tool_findings(
    ctx: Context,
    detector: str,
    reason: str,
    pattern: re.Pattern[str],
    what: str,
    symptom: str,
    remedy: str = "",
    requires: tuple[str, ...] = (),
) -> list[Finding]:
    """Units (enabled: breaks; installed only: likely) and boot/cron scripts
    (breaks) that run ``pattern``."""
    out = []
    for unit, setting in unit_hits(ctx, pattern):
        exe = exec_path(setting.value)
        out.append(
            ctx.finding(
                detector,
                reason,
                "breaks" if unit.enabled_by else "likely",
                f"{unit.name} runs {what}" + ("" if unit.enabled_by else " (unit not enabled)"),
                unit_evidence(unit, setting),
                symptom,
                remedy,
                exception_yaml([reason], exe=exe) if exe.startswith("/") else None,
                requires,
                unit=unit.name,
                exe=exe,
            )
        )
    for line in script_hits(ctx, pattern):
        out.append(
            ctx.finding(
                detector,
                reason,
                "breaks",
                f"{line.path} runs {what}",
                [Evidence("file", line.where, line.text)],
                symptom,
                remedy,
                None,
                requires,
            )
        )
    return out


def package_findings(ctx: Context, detector: str, table: dict[str, tuple[str, str, str]]) -> list[Finding]:
    """Installed packages known to use a guarded operation: likely (installed, use not seen).

    ``table``: package -> (reason, program path, what it does that breaks).
    """
    out = []
    for package, (reason, exe, symptom) in table.items():
        ev = ctx.package_evidence(package)
        if ev is None:
            continue
        out.append(
            ctx.finding(
                detector,
                reason,
                "likely",
                f"package {package} installed",
                [ev],
                symptom,
                policy=exception_yaml([reason], exe=exe) if exe else None,
                package=package,
                exe=exe,
            )
        )
    return out


def proc_findings(
    ctx: Context,
    detector: str,
    reason: str,
    match: re.Pattern[str],
    what: str,
    symptom: str,
    write_only: bool = False,
    requires: tuple[str, ...] = (),
) -> list[Finding]:
    """Processes that hold ``match`` open or mapped: breaks (they use it now)."""
    out = []
    for hit in ctx.proc_hits:
        if not match.search(hit.path):
            continue
        if write_only and hit.access == "r":
            continue
        mode = f" ({hit.access})" if hit.access else ""
        out.append(
            ctx.finding(
                detector,
                reason,
                "breaks",
                f"{hit.comm or hit.exe} (pid {hit.pid}) has {hit.path} {'open' if hit.via == 'fd' else 'mapped'}",
                [Evidence("process", hit.where, f"{hit.path}{mode}; pid {hit.pid} {hit.comm} exe {hit.exe}")],
                symptom.format(what=what),
                policy=exception_yaml([reason], exe=hit.exe) if hit.exe else None,
                requires=requires,
                pid=hit.pid,
                comm=hit.comm,
                exe=hit.exe,
                path=hit.path,
            )
        )
    return out
