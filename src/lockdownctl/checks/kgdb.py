"""kgdb/kdb: memory writes (integrity) and reads (confidentiality).

Kernel: kernel/debug/kdb/kdb_main.c kdb_check_for_lockdown() and
kernel/debug/debug_core.c kgdb_cpu_enter() (LOCKDOWN_DBG_WRITE_KERNEL,
LOCKDOWN_DBG_READ_KERNEL). Informational: kgdb is a developer's tool.
"""

from __future__ import annotations

from .engine import Context, Evidence, Finding

NAME = "kgdb"
KEYS = ("kgdboc", "kgdbwait", "kgdbdbgp", "kgdbcon", "kgdboc_earlycon", "ekgdboc")


def detect(ctx: Context) -> list[Finding]:
    ev: list[Evidence] = []
    cmdline = ctx.cmdline
    if cmdline is not None:
        ev += [
            Evidence("cmdline", cmdline.path, f"{k}={v}" if v is not None else k)
            for k, v in cmdline.params
            if k in KEYS
        ]
    value = ctx.root.read_text("sys/module/kgdboc/parameters/kgdboc")
    if isinstance(value, str) and value.strip():
        ev.append(Evidence("sysfs", ctx.root.display("sys/module/kgdboc/parameters/kgdboc"), value.strip()))
    if not ev:
        return []
    return [
        ctx.finding(
            NAME,
            "dbg_write_kernel",
            "info",
            "kgdb is configured: kdb memory writes will be refused",
            ev,
            "kdb memory-write commands fail",
            requires=("CONFIG_KGDB",),
        ),
        ctx.finding(
            NAME,
            "dbg_read_kernel",
            "info",
            "kgdb is configured: kdb memory reads will be refused",
            ev,
            "kdb memory-read commands fail",
            requires=("CONFIG_KGDB",),
        ),
    ]
