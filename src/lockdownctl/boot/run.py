"""``enable`` / ``disable`` end to end: safety, detection, plan, apply, verify.

Which setups are edited: every detected one that holds a kernel command line,
except where one supersedes another (rpm-ostree owns its BLS entries,
kernelstub owns its systemd-boot entries, grubby's plan includes
/etc/default/grub). ``--unit`` uses the securityfs boot unit instead of the
command line.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..errors import EXIT_FEATURE, EXIT_FINDINGS, EXIT_OK, InputError, NeedsRoot
from ..levels import LEVELS, level_rank
from ..root import Root
from . import engine, grub, grubby, kernel_install, kernelstub, rpm_ostree, uki, unit
from .engine import Check, Detection, SetupPlan, View

SETUPS: tuple[ModuleType, ...] = (rpm_ostree, kernelstub, grubby, grub, kernel_install, uki)
SUPERSEDES = {
    "rpm-ostree": {"grubby", "grub", "systemd-boot", "uki", "kernelstub"},
    "kernelstub": {"systemd-boot"},
    "grubby": {"grub", "systemd-boot"},
}

if TYPE_CHECKING:
    from ..state.types import Status


def detect(root: Root) -> list[Detection]:
    return [m.detect(root) for m in (*SETUPS, unit)]


def choose(detections: list[Detection], use_unit: bool) -> list[ModuleType]:
    if use_unit:
        return [unit]
    found = {d.setup for d in detections if d.found and d.setup != unit.ID}
    dropped = set().union(*(SUPERSEDES.get(s, set()) for s in found))
    return [m for m in SETUPS if m.ID in found and m.ID not in dropped]


def _verify(module: ModuleType, view: View, level: str | None, generated: bool) -> list[Check]:
    checks: list[Check] = module.verify(view, level)
    if generated and hasattr(module, "verify_generated"):
        checks += module.verify_generated(view, level)
    return checks


def safety(root: Root, level: str, force: bool) -> dict[str, Any]:
    """What the running kernel (or the root's) says about enabling ``level``."""
    from ..state.document import read_status

    status = read_status(root)
    out: dict[str, Any] = {"status": status, "refused": None, "exit_code": EXIT_OK, "warnings": [],
                           "readiness": readiness(root, level, force, status)}
    forced = status.get("forced_by_kconfig")
    lsm = status["lsm"]
    if forced and level_rank(forced) >= level_rank(level):
        out["refused"] = (f"the kernel configuration already forces {forced} (CONFIG_LOCK_DOWN_KERNEL_FORCE_"
                          f"{forced.upper()}=y): lockdown={level} would change nothing")
        out["exit_code"] = EXIT_FINDINGS
    elif lsm["lockdown_active"] is False:
        active = lsm["active"] or []
        fix = ",".join(["lockdown", *[n for n in active if n != "lockdown"]])
        out["refused"] = ("the lockdown LSM is not active (active LSMs: " + ",".join(active) + "): lockdown= "
                          f"would be ignored. Fix: add lockdown to lsm= on the kernel command line "
                          f"(lsm={fix}), or remove an lsm= that leaves it out")
        out["exit_code"] = EXIT_FEATURE
    elif lsm["lockdown_active"] is None:
        out["warnings"].append("could not confirm that the lockdown LSM is active (LSM list not readable: "
                               "run as root, or check /sys/kernel/security/lsm after reboot)")
    if out["refused"] is None and out["readiness"]["breaks"] and not force:
        out["refused"] = ("readiness check: " + "; ".join(out["readiness"]["breaks"][:5])
                          + f" would break at {level} (lockdownctl check --level {level}); --force to go ahead")
        out["exit_code"] = EXIT_FINDINGS
    return out


def readiness(root: Root, level: str, force: bool, status: Status | None = None) -> dict[str, Any]:
    """Run ``lockdownctl check --level LEVEL`` (lockdownctl.checks.check).

    A check that could read no evidence has no verdict: it is reported as
    not checked (with what it missed), never as "0 findings"."""
    from ..checks import check

    report = check(root, level, state=status)
    if report.get("verdict") == "unknown":
        missing = ", ".join(report.get("not_read", [])) or "no evidence"
        return {"checked": False, "breaks": [],
                "detail": f"readiness unknown: lockdownctl check --level {level} could read nothing ({missing})"}
    findings = report.get("findings", [])
    breaks = [f"{f['title']} ({f['reason']})" for f in findings if f.get("confidence") == "breaks"]
    detail = (f"lockdownctl check --level {level}: {len(findings)} findings, {len(breaks)} that break"
              + (" (--force: going ahead)" if breaks and force else ""))
    return {"checked": True, "breaks": breaks, "detail": detail}


def higher(modules: list[ModuleType], view: View, level: str) -> dict[str, list[tuple[str, str]]]:
    """Setup id -> (where, value) of every lockdown= above ``level`` that its plan would replace.

    The kernel keeps the highest lockdown= it is given (lock_kernel_down()
    only raises), so a token is lowered only when a higher one is taken away.
    """
    out: dict[str, list[tuple[str, str]]] = {}
    for module in modules:
        found = [(where, v) for where, v in module.present(view)
                 if v in LEVELS[1:] and level_rank(v) > level_rank(level)]
        if found:
            out[module.ID] = found
    return out


def lowering_refusal(level: str, found: list[tuple[str, str]]) -> str:
    top = max((v for _, v in found), key=level_rank)
    shown = "; ".join(f"{where} has lockdown={v}" for where, v in found[:3])
    more = f" (and {len(found) - 3} more)" if len(found) > 3 else ""
    return (f"enable {level} would lower the boot level: {shown}{more}. Like --now, enable only raises: "
            f"'lockdownctl enable {top}' keeps {top} everywhere, --force lowers it to {level}, "
            "'lockdownctl disable' removes every lockdown=")


def execute(root: Root, level: str | None, *, dry_run: bool, use_unit: bool, force: bool = False,
            status_safety: dict[str, Any] | None = None) -> dict[str, Any]:
    """Detect, plan every chosen setup, apply unless dry_run, verify.

    ``enable`` (a level) never lowers a higher lockdown= already in a boot
    entry or variable unless ``force``: it is refused, nothing planned.
    """
    recovered, pending = _recover(root, dry_run)
    detections = detect(root)
    chosen = choose(detections, use_unit)
    data: dict[str, Any] = {
        "recovered": recovered,
        "pending": pending,
        "action": "enable" if level else "disable",
        "level": level,
        "root": root.path,
        "dry_run": dry_run,
        "detected": [d.__dict__ for d in detections],
        "setups": [],
        "changed": False,
        "applied": None,
        "verified": None,
        "exit_code": EXIT_OK,
        "problems": [],
        "lowers": [],
    }
    if not chosen:
        data["problems"].append("no boot setup with an editable kernel command line was found (see detected); "
                                + ("use --unit to raise the level at boot through securityfs" if level else
                                   "there is no lockdown= to remove (--unit removes the securityfs boot unit)"))
        data["exit_code"] = EXIT_FINDINGS
        return data
    view = View(root)
    above = higher(chosen, view, level) if level else {}
    data["lowers"] = [{"setup": s, "where": w, "level": v} for s, found in above.items() for w, v in found]
    if above and not force:
        data["refused"] = lowering_refusal(str(level), [f for found in above.values() for f in found])
        data["exit_code"] = EXIT_FINDINGS
        return data
    plans: list[tuple[ModuleType, SetupPlan]] = []
    for module in chosen:
        plan: SetupPlan = module.plan(view, level)
        plan.warnings[:0] = [f"--force: lowers {where} from lockdown={v} to lockdown={level}"
                             for where, v in above.get(module.ID, [])]
        plans.append((module, plan))
        view = view.with_changes(plan.changes)
    for module, plan in plans:  # the planned contents must verify before anything is written
        bad = [c for c in _verify(module, view, level, False) if not c.ok] if not plan.problem else []
        if bad:
            raise InputError(f"{bad[0].where}: the planned change would not verify ({bad[0].detail}): "
                             "nothing written")
    usable = [(m, p) for m, p in plans if not p.problem]
    data["problems"] += [f"{p.title}: {p.problem}" for _, p in plans if p.problem]
    changes = [c for _, p in usable for c in p.changes]
    commands = [c for _, p in usable for c in p.commands]
    data["changed"] = bool(changes or commands)
    run_commands = root.live and not dry_run
    if not dry_run and data["changed"]:
        if root.live and os.geteuid() != 0:
            raise NeedsRoot("changing the boot configuration needs root (--dry-run shows the plan)")
        backup = engine.new_backup_dir(root) if changes else None
        meta = {"action": data["action"], "level": level, "setups": [m.ID for m, _ in usable],
                "commands": [c.argv for c in commands]}
        files = (engine.write_changes(root, changes, backup, meta, complete=not (commands and run_commands))
                 if backup else [])
        ran = [engine.run_command(c) for c in commands] if run_commands else []
        if backup and commands and run_commands:  # (killed before this: the next run undoes and redoes it)
            engine.mark_complete(root, backup)
        data["applied"] = {"backup": root.display(backup) if backup else None, "files": files, "commands": ran,
                           "commands_not_run": [] if run_commands else [c.text for c in commands]}
        if any(r["exit_status"] != 0 for r in ran):
            data["problems"] += [f"{r['text']}: exit status {r['exit_status']}: {r['output'][-300:]}"
                                 for r in ran if r["exit_status"] != 0]
    after = View(root) if not dry_run else view
    all_ok = True
    for module, plan in plans:
        entry = plan.to_dict()
        if not plan.problem:
            checks = _verify(module, after, level, generated=run_commands or not plan.commands)
            entry["verify"] = engine.check_dicts(checks)
            all_ok = all_ok and all(c.ok for c in checks)
        data["setups"].append(entry)
    data["verified"] = all_ok and not data["problems"]
    if data["problems"] or (not dry_run and not all_ok):
        data["exit_code"] = EXIT_FINDINGS
    return data


def _recover(root: Root, dry_run: bool) -> tuple[list[str], list[str]]:
    """(what was undone, what a dry run would undo) of runs killed mid-change (engine.recover)."""
    if not dry_run:
        return engine.recover(root), []
    return [], [root.display(rel) for rel, m in engine.manifests(root) if m.get("state") == "pending"]


def _regenerates(argv: list[str]) -> bool:
    """A command that rebuilds what the boot loader reads from the files (update-grub,
    kernel-install add), not one that edits the command line itself (grubby --args=lockdown=)."""
    return not any("lockdown" in arg for arg in argv)


def rollback(root: Root, *, dry_run: bool, force: bool) -> dict[str, Any]:
    """Put back the files the last ``enable`` changed, from its backup, verified by hash.

    Refused when a file changed since that enable (someone edited it, or a
    later disable did) unless ``force``; a backup whose hash does not match
    its manifest is never used. The enable's regeneration commands run again
    afterwards (update-grub, kernel-install add); a command that edited the
    command line itself (grubby --args, kernelstub -a, rpm-ostree kargs,
    systemctl enable) is not undone by files: it is named, with the command
    that undoes it.
    """
    recovered, pending = _recover(root, dry_run)
    data: dict[str, Any] = {"action": "rollback", "level": None, "root": root.path, "dry_run": dry_run,
                            "recovered": recovered, "pending": pending, "setups": [], "changed": False,
                            "applied": None, "verified": None, "exit_code": EXIT_OK, "problems": [],
                            "lowers": [], "of": None}
    enables = [(rel, m) for rel, m in engine.manifests(root) if m.get("action") == "enable"
               and m.get("state") in ("complete", "rolled-back")]
    if not enables:
        data["refused"] = (f"nothing to roll back: no backup of an enable under {root.display(engine.BACKUP_DIR)} "
                           "(enable keeps one per run; 'lockdownctl disable' removes lockdown= instead)")
        data["exit_code"] = EXIT_FINDINGS
        return data
    rel, manifest = enables[-1]
    data["of"] = {"backup": root.display(rel), "level": manifest.get("level"), "state": manifest["state"]}
    plan = SetupPlan("rollback", f"Roll back enable {manifest.get('level')} ({root.display(rel)})")
    changed_since: list[str] = []
    for entry in manifest["files"]:
        target = str(entry["path"]).lstrip("/")
        current = engine._read_now(root / target)
        now = engine.sha256(current)
        if now == entry["old_sha256"]:
            continue  # already as before the enable (an earlier rollback, or put back by hand)
        if now != entry["new_sha256"]:
            changed_since.append(root.display(target))
        old: bytes | None = None
        if entry["backup"] is not None:
            old = engine._read_now(root / str(entry["backup"]).lstrip("/"))
            if old is None or engine.sha256(old) != entry["old_sha256"]:
                raise InputError(f"{root.display(str(entry['backup']))}: backup missing or not what the manifest "
                                 "recorded (SHA-256 differs): nothing restored")
        try:
            plan.changes.append(engine.Change(target, None if current is None else current.decode("utf-8"),
                                              None if old is None else old.decode("utf-8"),
                                              f"as before enable {manifest.get('level')}",
                                              int(entry.get("mode") or 0o644)))
        except UnicodeDecodeError:
            raise InputError(f"{root.display(target)}: not text: cannot roll back") from None
    if changed_since and not force:
        data["refused"] = ("changed since the enable being rolled back (" + ", ".join(changed_since[:5])
                           + "): rolling back would discard those changes; --dry-run shows them, --force "
                           "restores anyway")
        data["exit_code"] = EXIT_FINDINGS
        return data
    plan.warnings += [f"--force: discards the changes made since the enable to {p}" for p in changed_since]
    argvs = [list(map(str, a)) for a in manifest.get("commands") or []]
    if plan.changes:
        plan.commands = [engine.Command(a, "regenerate what the boot loader reads") for a in argvs
                         if _regenerates(a)]
    plan.warnings += [f"'{engine.Command(a, '').text}' changed the boot entries itself, not through a file: "
                      "the rollback does not undo it ('lockdownctl disable' removes lockdown=)"
                      for a in argvs if not _regenerates(a)]
    data["changed"] = bool(plan.changes)
    run_commands = root.live and not dry_run
    if not dry_run and plan.changes:
        if root.live and os.geteuid() != 0:
            raise NeedsRoot("restoring the boot configuration needs root (--dry-run shows the plan)")
        backup = engine.new_backup_dir(root)
        meta = {"action": "rollback", "level": manifest.get("level"), "of": rel,
                "commands": [c.argv for c in plan.commands]}
        files = engine.write_changes(root, plan.changes, backup, meta,
                                     complete=not (plan.commands and run_commands))
        ran = [engine.run_command(c) for c in plan.commands] if run_commands else []
        if plan.commands and run_commands:
            engine.mark_complete(root, backup)
        data["applied"] = {"backup": root.display(backup), "files": files, "commands": ran,
                           "commands_not_run": [] if run_commands else [c.text for c in plan.commands]}
        data["problems"] += [f"{r['text']}: exit status {r['exit_status']}: {r['output'][-300:]}"
                             for r in ran if r["exit_status"] != 0]
    if not dry_run and manifest["state"] != "rolled-back":
        manifest["state"] = "rolled-back"
        engine._write_manifest(root / rel, manifest)
    entry_dict = plan.to_dict()
    checks = []
    for entry in manifest["files"]:
        target = str(entry["path"]).lstrip("/")
        want = entry["old_sha256"]
        if dry_run:
            change = next((c for c in plan.changes if c.rel == target), None)
            have = engine.sha256(None if change is None or change.new is None else change.new.encode()) \
                if change else engine.sha256(engine._read_now(root / target))
        else:
            have = engine.sha256(engine._read_now(root / target))
        checks.append(Check(root.display(target), have == want,
                            "as before the enable" if have == want else "differs from before the enable"))
    entry_dict["verify"] = engine.check_dicts(checks)
    data["setups"].append(entry_dict)
    data["verified"] = all(c.ok for c in checks) and not data["problems"]
    if not data["verified"]:
        data["exit_code"] = EXIT_FINDINGS
    return data
