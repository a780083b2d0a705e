"""Put the reference parsers in place of the fast ones (before anything imports
their names): what ``LOCKDOWNCTL_FUZZ_REFERENCE=1`` does to a fuzz target, so
benchmarks/parsers.py --fuzz can run both under atheris side by side."""

from __future__ import annotations

import importlib

# module -> the functions other modules import from it
REPLACED = {  # in import order: a module that imports names from another comes after it
    "lockdownctl.host.cmdline": ("tests.unit.reference.cmdline", ("split_args", "split_cmdline")),
    "lockdownctl.boot.tokens": ("tests.unit.reference.cmdline", ("strip_tokens",)),
    "lockdownctl.boot.entries": ("tests.unit.reference.cmdline", ("options",)),
    "lockdownctl.boot.shell": ("tests.unit.reference.shell", ("scan", "parse_value", "quoted_inner", "source")),
    "lockdownctl.klog.parser": ("tests.unit.reference.klog_parser", ("parse_line", "scan_block", "classify",
                                                                     "classify_message", "parse_text")),
}


def install() -> list[str]:
    """Patch every module in REPLACED; the names patched."""
    done = []
    for target, (reference, names) in REPLACED.items():
        mod, ref = importlib.import_module(target), importlib.import_module(reference)
        for name in names:
            setattr(mod, name, getattr(ref, name))
            done.append(f"{target}.{name}")
    return done
