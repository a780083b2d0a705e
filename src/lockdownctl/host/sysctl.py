"""sysctl values under /proc/sys, and the kernel taint mask decoded."""

from __future__ import annotations

from ..root import Root, Unreadable

# Documentation/admin-guide/tainted-kernels.rst: bit -> (letter, meaning)
TAINT_BITS = {
    0: ("P", "proprietary module loaded"),
    1: ("F", "module force-loaded"),
    8: ("A", "ACPI table overridden"),
    12: ("O", "out-of-tree module loaded"),
    13: ("E", "unsigned module loaded"),
    15: ("K", "kernel live-patched"),
}


def sysctl_rel(name: str) -> str:
    return "proc/sys/" + name.replace(".", "/")


def read_sysctl(root: Root, name: str) -> str | Unreadable | None:
    value = root.read_text(sysctl_rel(name))
    return value.strip() if isinstance(value, str) else value


def read_tainted(root: Root) -> int | None:
    value = read_sysctl(root, "kernel.tainted")
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def taint_letters(mask: int) -> dict[str, str]:
    """Letters of the lockdown-relevant bits set in ``mask``."""
    return {letter: text for bit, (letter, text) in TAINT_BITS.items() if mask >> bit & 1}
