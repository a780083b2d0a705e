"""Unified kernel images: the command line is the ``.cmdline`` PE section (docs/kernel-facts.md 3.4).

With Secure Boot on, systemd-stub ignores a command line from the loader, so
the only persistent ways are: rebuild the image with the token (kernel-install
with ``layout=uki`` reads ``/etc/kernel/cmdline``; mkinitcpio reads it too),
then re-sign it; or the securityfs unit (``--unit``). The ``.cmdline`` of
every installed image is read with pefile and verified.
"""

from __future__ import annotations

from ..host.uki import uki_cmdline
from ..root import Root
from . import kernel_install, tokens
from .engine import Check, Command, Detection, SetupPlan, View

ID = "uki"
TITLE = "unified kernel images (.cmdline section)"
UKI_DIRS = ("efi/EFI/Linux", "boot/EFI/Linux", "boot/efi/EFI/Linux")
MKINITCPIO_PRESETS = "etc/mkinitcpio.d"


def images(view: View) -> list[str]:
    out = []
    for d in UKI_DIRS:
        out += [f"{d}/{n}" for n in view.listdir(d) if n.lower().endswith(".efi")]
    return out


def detect(root: Root) -> Detection:
    view = View(root)
    found = images(view)
    if kernel_install.layout(view) == "uki":
        return Detection(ID, True, "kernel-install layout=uki", [root.display(f) for f in found])
    if found:
        return Detection(ID, True, f"{len(found)} unified kernel images in EFI/Linux",
                         [root.display(f) for f in found])
    return Detection(ID, False, "no unified kernel images (" + ", ".join("/" + d for d in UKI_DIRS) + ")")


def _rebuilder(view: View) -> str | None:
    if kernel_install.layout(view) == "uki" and view.has_program("kernel-install"):
        return "kernel-install"
    if view.isdir(MKINITCPIO_PRESETS) and view.has_program("mkinitcpio"):
        return "mkinitcpio"
    return None


def present(view: View) -> list[tuple[str, str]]:
    """What a rebuild replaces: the source command line and every image's .cmdline."""
    if _rebuilder(view) is None:
        return []  # nothing can be rebuilt, so nothing is changed
    out = kernel_install.present_cmdline(view)
    for rel in images(view):
        data = view.read_bytes(rel)
        cmdline = uki_cmdline(data, view.display(rel)) if data is not None else None
        if cmdline is not None:
            out += [(f"{view.display(rel)} (.cmdline)", v) for v in tokens.lockdown_values(cmdline, rel)]
    return out


def plan(view: View, level: str | None) -> SetupPlan:
    result = SetupPlan(ID, TITLE)
    tool = _rebuilder(view)
    if tool is None:
        result.problem = ("the command line is built into the images and no rebuild source was found "
                          "(kernel-install layout=uki, mkinitcpio): rebuild them with "
                          f"'ukify build --cmdline=\"... lockdown={level or 'LEVEL'}\"' and re-sign, "
                          "or use --unit (raise the level through securityfs at boot)")
        return result
    if not kernel_install.plan_kernel_cmdline(view, level, result):
        return result
    stale = [c for c in verify_generated(view, level) if not c.ok]
    if result.changes or stale:
        if tool == "kernel-install":
            result.commands += kernel_install.install_commands(view, "rebuild the unified kernel image")
        else:
            result.commands.append(Command(["mkinitcpio", "-P"], "rebuild the unified kernel images"))
        result.warnings.append("with Secure Boot, re-sign the rebuilt images (e.g. sbctl sign-all) unless the "
                               "build signs them")
    return result


def verify(view: View, level: str | None) -> list[Check]:
    if _rebuilder(view) is None:
        return []
    text = view.read(kernel_install.KERNEL_CMDLINE)
    problem = tokens.has_exactly(text or "", level, kernel_install.KERNEL_CMDLINE)
    return [Check(view.display(kernel_install.KERNEL_CMDLINE), problem is None, problem or (text or "").strip())]


def verify_generated(view: View, level: str | None) -> list[Check]:
    out = []
    for rel in images(view):
        data = view.read_bytes(rel)
        if data is None:
            continue
        cmdline = uki_cmdline(data, view.display(rel))
        if cmdline is None:
            out.append(Check(view.display(rel), False, "no .cmdline section"))
            continue
        problem = tokens.has_exactly(cmdline, level, rel)
        out.append(Check(view.display(rel) + " (.cmdline)", problem is None, problem or cmdline.strip()))
    return out
