"""Find kernel splats (warnings, BUGs, oopses, panics) in a guest's dmesg.

    python3 tests/vm/splat.py DMESG...     # exit 1 and print the lines if any file has one

Every line whose message contains one of PATTERNS is reported, except the
lines ALLOWED lists: each is benign text that merely contains a pattern word,
with the reason written next to it. Matching is case-sensitive where the
kernel's own splat text is ("BUG:", "WARNING:", "Oops"), so ordinary words
such as "...and report a bug" (PCI, on every boot) do not match.
Leading "# " header lines (the provenance of captured files) are skipped.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p)
    for p in (
        r"BUG:",  # "BUG: kernel NULL pointer dereference", "BUG: KASAN: ...", "BUG: soft lockup"
        r"kernel BUG at ",  # BUG_ON(): "kernel BUG at mm/slub.c:123!" (no colon after BUG)
        r"WARNING:",  # WARN(): "WARNING: CPU: 0 PID: 1 at file:line func"
        r"Oops",  # "Oops: 0000 [#1]", "Oops: general protection fault" (6.12)
        r"Call Trace",
        r"KASAN",
        r"(?i:general protection fault)",
        r"(?i:kernel panic)",  # "Kernel panic - not syncing: ..."
    )
)

# (pattern on the message, why it is benign). Keep this list short: each entry
# is a hole a real splat could hide in.
ALLOWED: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), why)
    for p, why in (
        (
            r'^(Kernel command line: |Command line: |Unknown kernel command line parameters ")',
            "boot parameters echoed back (vng's base64 command, the results path, --append), not a report",
        ),
        (
            r"^ {4}[A-Za-z_][\w.-]*=\S*$",
            "init's environment echoed under 'Run /init ... with environment:': again boot parameters",
        ),
        (
            r"^(Spectre V2 |RETBleed): WARNING: ",
            "x86 CPU-vulnerability mitigation advice (arch/x86/kernel/cpu/bugs.c pr_err/pr_warn), "
            "depends on the CPU model QEMU emulates",
        ),
        (
            r"^traps: \S+\[\d+\] general protection fault ip:",
            "a user-space process died of SIGSEGV (show_signal); the test that ran it fails on its own",
        ),
    )
)

# "[   12.345678] msg", "<4>[   12.345678] msg" (dmesg -r) or "msg" (dmesg -t).
_PREFIX = re.compile(r"^(<\d+>)?(\[\s*\d+\.\d+\]\s?)?")


def message(line: str) -> str:
    """The kernel message of a dmesg line, without level and timestamp."""
    return line[_PREFIX.match(line).end():]  # type: ignore[union-attr]  # the regex always matches


def allowed_reason(line: str) -> str | None:
    """Why a line that contains a pattern is benign, or None when it is a splat."""
    text = message(line)
    for pattern, why in ALLOWED:
        if pattern.search(text):
            return why
    return None


def find_splats(dmesg: str) -> list[str]:
    """The lines of ``dmesg`` that report a kernel splat, in order."""
    lines = dmesg.splitlines()
    start = 0
    while start < len(lines) and lines[start].startswith("#"):
        start += 1
    return [
        line
        for line in lines[start:]
        if any(p.search(message(line)) for p in PATTERNS) and allowed_reason(line) is None
    ]


_KERNEL_LINE = re.compile(r"^\[\s*\d+\.\d+\]")  # a printk line on the serial console


def guest_splats(console: str, dmesg: str | None) -> list[str]:
    """The splats of one guest run: its saved dmesg's, and the serial console's kernel
    lines that dmesg no longer had (a flood of kernel lines wraps the ring buffer
    before ``dmesg`` is saved; the console printed every line at or above its
    loglevel as it came). Without a saved dmesg (a panic, a hang), the whole console."""
    if dmesg is None:
        return find_splats(console)
    found = find_splats(dmesg)
    seen = set(found)
    kernel_lines = "\n".join(line for line in console.splitlines() if _KERNEL_LINE.match(line))
    return found + [line for line in find_splats(kernel_lines) if line not in seen]


def format_report(splats: list[str]) -> str:
    return "\n".join(f"  {line}" for line in splats)


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: splat.py DMESG...", file=sys.stderr)
        return 2
    found = False
    for name in argv:
        splats = find_splats(Path(name).read_text(errors="replace"))
        if splats:
            found = True
            print(f"{name}: {len(splats)} splat line(s):\n{format_report(splats)}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
