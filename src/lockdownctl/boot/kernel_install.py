"""systemd-boot with kernel-install (Type #1 entries; docs/kernel-facts.md 3.4).

``/etc/kernel/cmdline`` holds the *whole* command line that kernel-install
writes into each entry (root=, rd.luks…): when it is missing, kernel-install
falls back to ``/usr/lib/kernel/cmdline``, then to ``/proc/cmdline``, so a new
``/etc/kernel/cmdline`` is made from that same source (never from scratch,
which would drop root= and make the system unbootable). The existing entries
in the ESP get the token too, and ``kernel-install add`` re-creates them for
every installed kernel.
"""

from __future__ import annotations

from ..host.cmdline import split_cmdline
from ..root import Root
from . import entries, tokens
from .engine import Change, Check, Command, Detection, SetupPlan, View

ID = "systemd-boot"
TITLE = "systemd-boot + kernel-install (/etc/kernel/cmdline)"
KERNEL_CMDLINE = "etc/kernel/cmdline"
VENDOR_CMDLINE = "usr/lib/kernel/cmdline"
INSTALL_CONF = ("etc/kernel/install.conf", "usr/lib/kernel/install.conf")
LOADER_CONFS = ("efi/loader/loader.conf", "boot/loader/loader.conf", "boot/efi/loader/loader.conf")
# Added by boot loaders, not part of what the kernel should get again.
LOADER_KEYS = ("BOOT_IMAGE", "initrd")


def loader_conf(view: View) -> str | None:
    return next((rel for rel in LOADER_CONFS if view.exists(rel)), None)


def layout(view: View) -> str | None:
    for rel in INSTALL_CONF:
        text = view.read(rel)
        for line in (text or "").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "layout":
                return value.strip().strip('"')
    return None


def detect(root: Root) -> Detection:
    view = View(root)
    conf = loader_conf(view)
    if layout(view) == "uki":
        return Detection(ID, False, "kernel-install builds unified kernel images here (layout=uki): see uki")
    if conf:
        return Detection(ID, True, f"{root.display(conf)} exists (systemd-boot's configuration)",
                         [root.display(conf)] + ([root.display(KERNEL_CMDLINE)] if view.exists(KERNEL_CMDLINE)
                                                 else []))
    if view.exists(KERNEL_CMDLINE) and layout(view) == "bls":
        return Detection(ID, True, f"{root.display(KERNEL_CMDLINE)} exists and kernel-install layout=bls",
                         [root.display(KERNEL_CMDLINE)])
    return Detection(ID, False, "no systemd-boot loader.conf (" + ", ".join("/" + c for c in LOADER_CONFS) + ")")


def base_cmdline(view: View) -> tuple[str, str] | None:
    """(text, where it came from) for a new /etc/kernel/cmdline, as kernel-install would fall back."""
    text = view.read(VENDOR_CMDLINE)
    if text is not None:
        return text, view.display(VENDOR_CMDLINE)
    proc = view.read("proc/cmdline")
    if proc is None:
        return None
    keep = []
    for tok in proc.split():
        key = tok.split("=", 1)[0]
        if key not in LOADER_KEYS:
            keep.append(tok)
    split_cmdline(proc, view.display("proc/cmdline"))  # refuse malformed input before using it
    return " ".join(keep) + "\n", view.display("proc/cmdline")


def plan_kernel_cmdline(view: View, level: str | None, result: SetupPlan) -> bool:
    """Set the token in /etc/kernel/cmdline; False when there is nothing safe to start from."""
    text = view.read(KERNEL_CMDLINE)
    if text is None:
        if level is None:
            return True
        base = base_cmdline(view)
        if base is None:
            result.problem = (f"{view.display(KERNEL_CMDLINE)} does not exist and neither "
                              f"{view.display(VENDOR_CMDLINE)} nor /proc/cmdline can be read to create it "
                              "(a command line without root= would not boot): create it first")
            return False
        new = tokens.set_token(base[0], level)
        result.changes.append(Change(KERNEL_CMDLINE, None, new, f"created from {base[1]} (kernel-install's "
                                     "fallback), plus the token", 0o644))
        return True
    new = tokens.set_token(text, level)
    if new != text:
        result.changes.append(Change(KERNEL_CMDLINE, text, new, "kernel-install writes it into every entry"))
    return True


def kernels(view: View) -> list[tuple[str, str]]:
    """(version, image path) of every installed kernel."""
    out = []
    for ver in view.listdir("usr/lib/modules"):
        if view.exists(f"usr/lib/modules/{ver}/vmlinuz"):
            out.append((ver, f"/usr/lib/modules/{ver}/vmlinuz"))
        elif view.exists(f"boot/vmlinuz-{ver}"):
            out.append((ver, f"/boot/vmlinuz-{ver}"))
    return out


def install_commands(view: View, why: str) -> list[Command]:
    found = kernels(view)
    if not found:
        return [Command(["kernel-install", "add", "$(uname -r)", "/usr/lib/modules/$(uname -r)/vmlinuz"],
                        why + " (no installed kernel found below the root: run it for each kernel)")]
    return [Command(["kernel-install", "add", ver, image], why) for ver, image in found]


def editor_warning(view: View) -> str | None:
    conf = loader_conf(view)
    if conf is None:
        return None
    editor = None
    for line in (view.read(conf) or "").splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "editor":
            editor = words[1].lower()
    if editor in ("no", "false", "0", "off"):
        return None
    said = f"'editor {editor}'" if editor else "no 'editor' line (the default is yes)"
    return (f"{view.display(conf)} has {said}: anyone at the console can edit the entry and remove lockdown= "
            "at boot; add 'editor no'")


def _entries(view: View) -> list[str]:
    return entries.entry_files(view, entries.ENTRY_DIRS)


def present_cmdline(view: View) -> list[tuple[str, str]]:
    """lockdown= in /etc/kernel/cmdline, or in what a new one would be made from."""
    text = view.read(KERNEL_CMDLINE)
    if text is not None:
        return tokens.line_levels(text, view.display(KERNEL_CMDLINE))
    base = base_cmdline(view)
    return tokens.line_levels(base[0], base[1]) if base else []


def present(view: View) -> list[tuple[str, str]]:
    return present_cmdline(view) + entries.present(view, _entries(view))


def plan(view: View, level: str | None) -> SetupPlan:
    result = SetupPlan(ID, TITLE)
    if not plan_kernel_cmdline(view, level, result):
        return result
    result.changes += entries.plan_entries(view, _entries(view), level, "options line of the installed entry")
    if result.changes:
        result.commands += install_commands(view, "re-create the entry from /etc/kernel/cmdline")
    if level and (warning := editor_warning(view)):
        result.warnings.append(warning)
    return result


def verify(view: View, level: str | None) -> list[Check]:
    out = []
    text = view.read(KERNEL_CMDLINE)
    if text is not None:
        problem = tokens.has_exactly(text, level, KERNEL_CMDLINE)
        out.append(Check(view.display(KERNEL_CMDLINE), problem is None, problem or text.strip()))
    elif level:
        out.append(Check(view.display(KERNEL_CMDLINE), False, "missing"))
    return out + entries.verify_entries(view, _entries(view), level)
