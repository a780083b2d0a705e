"""The securityfs boot unit: raise the level early at every boot (``--unit``).

For command lines that cannot be edited (signed unified kernel images,
immutable images) or as a belt-and-braces addition: a systemd oneshot that
writes the level to ``/sys/kernel/security/lockdown`` after
systemd-modules-load.service (so modules configured to load at boot still
can), before sysinit.target. Its text is ``packaging/lockdownctl-lockdown@.service``
(a unit test keeps the two identical); the instance is the level.
Cons (docs/kernel-facts.md 3.4): anything that runs before it is not covered, and
like every securityfs write it cannot be undone until reboot.
"""

from __future__ import annotations

from ..root import Root
from .engine import Change, Check, Command, Detection, SetupPlan, View

ID = "unit"
TITLE = "securityfs boot unit (systemd oneshot)"
NAME = "lockdownctl-lockdown@.service"
UNIT_DIR = "etc/systemd/system"
WANTS = "etc/systemd/system/sysinit.target.wants"
UNIT_TEXT = """\
# lockdownctl: raise kernel lockdown through securityfs at boot.
# Instance = level: systemctl enable lockdownctl-lockdown@integrity.service
# (or @confidentiality). Installed by `lockdownctl enable LEVEL --unit`.
[Unit]
Description=Raise kernel lockdown to %i (lockdownctl)
Documentation=man:lockdownctl(8) man:kernel_lockdown(7)
DefaultDependencies=no
After=systemd-modules-load.service
Before=sysinit.target shutdown.target
Conflicts=shutdown.target
# Assert, not Condition: a kernel without the lockdown file fails the unit
# (lockdown was asked for and cannot be had) instead of skipping it silently.
AssertPathExists=/sys/kernel/security/lockdown

[Service]
Type=oneshot
RemainAfterExit=yes
# Writing a level that is not higher than the current one fails (EPERM):
# nothing to do when the kernel is already at %i or above.
ExecStart=/bin/sh -c 'grep -qE "\\\\[(%i|confidentiality)\\\\]" /sys/kernel/security/lockdown || echo %i > /sys/kernel/security/lockdown'
ExecStartPost=/bin/grep -qE "\\\\[(%i|confidentiality)\\\\]" /sys/kernel/security/lockdown
# Hardening (systemd-analyze security): the write needs no capability (the
# file is root's, mode 0600; lockdown_write() checks none) and /sys stays
# writable (no ProtectKernelTunables=). No PrivateTmp=, ProtectSystem=,
# ProtectHome=: systemd calls them inappropriate before sysinit.target (file
# systems may not be mounted yet), and PrivateTmp= would order this unit after
# the /tmp and /var/tmp mounts.
CapabilityBoundingSet=
AmbientCapabilities=
NoNewPrivileges=yes
PrivateNetwork=yes
PrivateDevices=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
ProcSubset=pid
RestrictAddressFamilies=AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
UMask=0077

[Install]
WantedBy=sysinit.target
"""


def instance(level: str) -> str:
    return NAME.replace("@", f"@{level}")


def detect(root: Root) -> Detection:
    if root.exists("usr/lib/systemd/systemd") or root.exists("lib/systemd/systemd"):
        return Detection(ID, True, "systemd is installed: the unit can be used (--unit)")
    return Detection(ID, False, "systemd not found below the root")


def enabled(view: View) -> list[str]:
    """Levels whose instance is enabled."""
    prefix, suffix = NAME.split("@")
    return [n[len(prefix) + 1 : -len(suffix)] for n in view.listdir(WANTS)
            if n.startswith(prefix + "@") and n.endswith(suffix) and n != NAME]


def present(view: View) -> list[tuple[str, str]]:
    """Levels the boot unit raises to (enabled instances)."""
    return [(view.display(f"{WANTS}/{instance(lv)}"), lv) for lv in enabled(view)]


def _systemctl(view: View, *args: str) -> list[str]:
    root = [] if view.root.live else [f"--root={view.root.path}"]
    return ["systemctl", *root, *args]


def plan(view: View, level: str | None) -> SetupPlan:
    result = SetupPlan(ID, TITLE)
    rel = f"{UNIT_DIR}/{NAME}"
    old = view.read(rel)
    for other in enabled(view):
        if other != level:
            result.commands.append(Command(_systemctl(view, "disable", instance(other)),
                                           "stop raising the level to " + other + " at boot"))
    if level is None:
        if old is not None:
            result.changes.append(Change(rel, old, None, "the unit is no longer used"))
        result.notes.append("a level raised through securityfs stays until reboot")
        return result
    if old != UNIT_TEXT:
        result.changes.append(Change(rel, old, UNIT_TEXT, "raises the level at boot, after modules load"))
    if level not in enabled(view):
        result.commands.append(Command(_systemctl(view, "enable", instance(level)), "run it at every boot"))
    return result


def verify(view: View, level: str | None) -> list[Check]:
    rel = f"{UNIT_DIR}/{NAME}"
    text = view.read(rel)
    planned = rel in view.overlay  # a dry run checks the plan: nothing is on disk yet
    if level is None:
        gone = "would remove" if planned else "not installed"
        return [Check(view.display(rel), text is None, gone if text is None else "still installed")]
    there = "would install" if planned else "installed"
    return [Check(view.display(rel), text == UNIT_TEXT, there if text == UNIT_TEXT else "missing or changed")]


def verify_generated(view: View, level: str | None) -> list[Check]:
    on = enabled(view)
    want = [level] if level else []
    return [Check(view.display(WANTS), sorted(on) == want,
                  "enabled: " + (", ".join(instance(lv) for lv in on) or "none"))]
