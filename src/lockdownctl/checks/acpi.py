"""ACPI table overrides: initrd table upgrade, configfs tables, custom_method,
acpi_rsdp= and efivar_ssdt=.

Kernel: drivers/acpi/tables.c acpi_table_upgrade() ("ACPI: kernel is locked
down, ignoring table override"), drivers/acpi/osl.c acpi_os_get_root_pointer(),
drivers/acpi/acpi_configfs.c, drivers/acpi/custom_method.c cm_write(), all
LOCKDOWN_ACPI_TABLES. An override taints the kernel with A (bit 8).
"""

from __future__ import annotations

import re

from ..host.modules import read_conf_lines
from ..host.sysctl import read_tainted, sysctl_rel
from .engine import Context, Evidence, Finding

NAME = "acpi"
SYMPTOM = (
    "the table override is ignored at boot ('ACPI: kernel is locked down, ignoring table override'): "
    "the fix it carried (sleep, sensors, fans) silently stops working"
)
LOG = re.compile(r"ACPI: (Override \[|Table Upgrade: override|DSDT ACPI table found in initrd)")


def detect(ctx: Context) -> list[Finding]:
    out: list[Finding] = []

    def add(confidence: str, title: str, ev: list[Evidence]) -> None:
        out.append(ctx.finding(NAME, "acpi_tables", confidence, title, ev, SYMPTOM))

    mask = read_tainted(ctx.root)
    if mask is not None and mask >> 8 & 1:
        add(
            "breaks",
            "an ACPI table was overridden this boot (taint A)",
            [Evidence("sysctl", ctx.root.display(sysctl_rel("kernel.tainted")), f"{mask} (bit 8, A, set)")],
        )
    lines = [ctx.log_evidence(line) for line in ctx.log if LOG.search(line.text)]
    if lines:
        add("breaks", "the kernel log shows an ACPI table override", lines[:5])
    cmdline = ctx.cmdline
    if cmdline is not None:
        for key in ("acpi_rsdp", "efivar_ssdt"):
            for value in cmdline.values(key):
                add(
                    "breaks",
                    f"{key}= on the kernel command line",
                    [Evidence("cmdline", cmdline.path, f"{key}={value}")],
                )
    tables = ctx.root.listdir("sys/kernel/config/acpi/table")
    if tables:
        add(
            "breaks",
            f"ACPI tables loaded through configfs: {', '.join(tables)}",
            [Evidence("sysfs", ctx.root.display("sys/kernel/config/acpi/table"), " ".join(tables))],
        )
    for rel, pattern in (
        ("etc/mkinitcpio.conf", r"^HOOKS.*\bacpi_override\b"),
        ("etc/default/grub", r"acpi_override|\.aml\b|acpi_rsdp="),
    ):
        for line in read_conf_lines(ctx.root, rel):
            if re.search(pattern, line.text):
                add(
                    "likely",
                    f"{rel.rsplit('/', 1)[1]} adds an ACPI override",
                    [Evidence("file", line.where, line.text)],
                )
    for name in ctx.root.listdir("etc/dracut.conf.d"):
        for line in read_conf_lines(ctx.root, f"etc/dracut.conf.d/{name}"):
            if re.search(r"acpi_override\s*=\s*\"?yes|acpi_table_dir", line.text):
                add("likely", "dracut adds ACPI tables to the initrd", [Evidence("file", line.where, line.text)])
    for name in ctx.root.listdir("boot"):
        if name.startswith("acpi_override"):
            add(
                "likely",
                f"ACPI override archive /boot/{name}",
                [Evidence("file", ctx.root.display(f"boot/{name}"), name)],
            )
    return out
