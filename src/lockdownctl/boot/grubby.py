"""GRUB 2 with BLS entries, edited by grubby (Fedora, RHEL 8+, CentOS, Alma; docs/kernel-facts.md 3.4).

The command line of each installed kernel is the ``options`` line of its
``/boot/loader/entries/*.conf``; on RHEL 8 entries say ``$kernelopts`` and the
value lives in ``/boot/grub2/grubenv``, which only grubby may edit. New
kernels take their options from ``/etc/kernel/cmdline`` when present, and
``grub2-mkconfig --update-bls-cmdline`` rewrites every entry from
``GRUB_CMDLINE_LINUX``: so the token goes into all three, and
``grubby --update-kernel=ALL --args=lockdown=…`` runs last (it also covers grubenv).
"""

from __future__ import annotations

from ..root import Root
from . import entries, grub, tokens
from .engine import Change, Check, Command, Detection, SetupPlan, View

ID = "grubby"
TITLE = "GRUB 2 + BLS entries (grubby)"
BLS_DIR = "boot/loader/entries"
KERNEL_CMDLINE = "etc/kernel/cmdline"
GRUBENV = "boot/grub2/grubenv"


def detect(root: Root) -> Detection:
    view = View(root)
    files = entries.entry_files(view, (BLS_DIR,))
    grubby = view.has_program("grubby")
    text = view.read(grub.DEFAULTS) or ""
    bls = grub._bls_enabled(text, root.display(grub.DEFAULTS)) if text else False
    if files and (grubby or bls):
        why = (f"{root.display(BLS_DIR)} has {len(files)} entries and "
               + (f"grubby is installed ({grubby})" if grubby else "GRUB_ENABLE_BLSCFG=true"))
        return Detection(ID, True, why, [root.display(f) for f in files])
    if not files:
        return Detection(ID, False, f"no BLS entries in {root.display(BLS_DIR)}")
    return Detection(ID, False, "BLS entries but neither grubby nor GRUB_ENABLE_BLSCFG=true")


def _entries(view: View) -> list[str]:
    return entries.entry_files(view, (BLS_DIR,))


def plan(view: View, level: str | None) -> SetupPlan:
    result = SetupPlan(ID, TITLE)
    files = _entries(view)
    result.changes = entries.plan_entries(view, files, level, "options line of the BLS entry")
    text = view.read(KERNEL_CMDLINE)
    if text is not None:
        new = tokens.set_token(text, level)
        if new != text:
            result.changes.append(Change(KERNEL_CMDLINE, text, new, "new kernels take their options from it"))
    if view.exists(grub.DEFAULTS):
        changes, notes = grub.plan_defaults(view, level, use_dropin=False)
        for c in changes:
            c.why = "grub2-mkconfig --update-bls-cmdline rewrites entries from GRUB_CMDLINE_LINUX"
        result.changes += changes
        result.notes += notes
    kernelopts = [f for f in files if entries.uses_kernelopts(view.read(f) or "")]
    env_bad = [c for c in _verify_grubenv(view, level) if not c.ok] if kernelopts else []
    if result.changes or env_bad:
        arg = [f"--args=lockdown={level}"] if level else ["--remove-args=lockdown"]
        result.commands.append(Command(["grubby", "--update-kernel=ALL", *arg],
                                       "the supported way to change every entry (and grubenv's kernelopts)"))
    if kernelopts:
        result.notes.append(f"{len(kernelopts)} entries use $kernelopts from {view.display(GRUBENV)}: "
                            "grubby changes it (never edited by hand)")
    if level and (warning := grub.password_warning(view)):
        result.warnings.append(warning)
    return result


def present(view: View) -> list[tuple[str, str]]:
    files = _entries(view)
    out = entries.present(view, files)
    text = view.read(KERNEL_CMDLINE)
    if text is not None:
        out += tokens.line_levels(text, view.display(KERNEL_CMDLINE))
    if any(entries.uses_kernelopts(view.read(f) or "") for f in files):
        for where, v in tokens.line_levels(view.read(GRUBENV) or "", view.display(GRUBENV), joined=False):
            out.append((f"{where} (kernelopts)", v))
    if view.exists(grub.DEFAULTS):
        out += grub.present_defaults(view)
    return out


def _verify_grubenv(view: View, level: str | None) -> list[Check]:
    text = view.read(GRUBENV)
    if text is None:
        return []
    for line in text.splitlines():
        if line.startswith("kernelopts="):
            value = line.partition("=")[2]
            problem = tokens.has_exactly(value, level, GRUBENV)
            return [Check(view.display(GRUBENV), problem is None, problem or "kernelopts: " + value)]
    return []


def verify(view: View, level: str | None) -> list[Check]:
    out = entries.verify_entries(view, _entries(view), level)
    text = view.read(KERNEL_CMDLINE)
    if text is not None:
        problem = tokens.has_exactly(text, level, KERNEL_CMDLINE)
        out.append(Check(view.display(KERNEL_CMDLINE), problem is None, problem or text.strip()))
    if view.exists(grub.DEFAULTS):
        out += grub.verify_defaults(view, level)
    return out


def verify_generated(view: View, level: str | None) -> list[Check]:
    files = _entries(view)
    if any(entries.uses_kernelopts(view.read(f) or "") for f in files):
        return _verify_grubenv(view, level)
    return []
