"""kexec and kdump.

Kernel: kernel/kexec.c kexec_load_check() refuses kexec_load() outright with
LOCKDOWN_KEXEC; kernel/kexec_file.c kimage_validate_signature() refuses
kexec_file_load() of an image whose signature does not verify.
"""

from __future__ import annotations

import re

from ..host.modules import read_conf_lines
from .common import tool_findings
from .engine import Context, Evidence, Finding, exception_yaml

NAME = "kexec"
SYMPTOM = (
    "kexec_load failed: Operation not permitted; kexec reboots fall back to a full reboot, "
    "and kdump cannot load its crash kernel (crash dumps are silently not captured)"
)

_KEXEC_RE = re.compile(r"(^|/|\s)kexec\s+(-l|--load)\b(?!.*\s-s\b)")


def _kv(ctx: Context, rel: str) -> dict[str, tuple[str, str]]:
    out = {}
    for line in read_conf_lines(ctx.root, rel):
        key, sep, value = line.text.partition("=")
        if sep:
            out[key.strip()] = (value.strip().strip("\"'"), line.where)
    return out


def detect(ctx: Context) -> list[Finding]:
    out: list[Finding] = []
    kexec_policy = exception_yaml(["kexec"], exe="/usr/sbin/kexec")

    def add(confidence: str, title: str, ev: list[Evidence], remedy: str = "") -> None:
        out.append(ctx.finding(NAME, "kexec", confidence, title, ev, SYMPTOM, remedy, kexec_policy))

    conf = _kv(ctx, "etc/default/kexec")
    if conf.get("LOAD_KEXEC", ("", ""))[0].lower() in ("true", "yes", "1"):
        value, where = conf["LOAD_KEXEC"]
        add(
            "breaks",
            "kexec-tools loads a kernel for kexec reboots",
            [Evidence("file", where, f"LOAD_KEXEC={value}")],
            "set LOAD_KEXEC=false, or make sure kexec uses kexec_file_load (kexec -s) with a signed kernel",
        )
    loaded = ctx.root.read_text("sys/kernel/kexec_loaded")
    if isinstance(loaded, str) and loaded.strip() == "1":
        add(
            "likely",
            "a kexec kernel is loaded now",
            [Evidence("sysfs", ctx.root.display("sys/kernel/kexec_loaded"), "1")],
        )
    crash_loaded = ctx.root.read_text("sys/kernel/kexec_crash_loaded")
    kdump_ev = []
    if isinstance(crash_loaded, str) and crash_loaded.strip() == "1":
        kdump_ev.append(Evidence("sysfs", ctx.root.display("sys/kernel/kexec_crash_loaded"), "1"))
    cmdline = ctx.cmdline
    if cmdline is not None and cmdline.values("crashkernel"):
        kdump_ev.append(Evidence("cmdline", cmdline.path, f"crashkernel={cmdline.last('crashkernel')}"))
    for rel in ("etc/default/kdump-tools", "etc/sysconfig/kdump", "etc/kdump.conf"):
        kv = _kv(ctx, rel)
        if kv.get("USE_KDUMP", ("1", ""))[0] in ("0", "false", "no") and rel.endswith("kdump-tools"):
            continue
        for key in ("USE_KDUMP", "KDUMP_KEXEC_ARGS", "KDUMP_KERNEL"):
            if key in kv:
                kdump_ev.append(Evidence("file", kv[key][1], f"{key}={kv[key][0]}"))
        args = kv.get("KDUMP_KEXEC_ARGS", ("", ""))[0]
        if kdump_ev and rel.endswith("kdump-tools") and "-s" not in args.split():
            kdump_ev.append(Evidence("file", ctx.root.display(rel), "KDUMP_KEXEC_ARGS has no -s: kexec_load is used"))
    for unit in ctx.units:
        if unit.name in ("kdump.service", "kdump-tools.service") and unit.enabled_by:
            kdump_ev.append(Evidence("unit", unit.enabled_by, f"{unit.name} is enabled"))
    if kdump_ev:
        uses_load = any("no -s" in e.text for e in kdump_ev)
        add(
            "breaks" if uses_load or len(kdump_ev) > 1 else "likely",
            "kdump is configured",
            kdump_ev,
            'load the crash kernel with kexec_file_load (kexec -s, KDUMP_KEXEC_ARGS="-s") and a kernel signed '
            "by a trusted key",
        )
    out += tool_findings(ctx, NAME, "kexec", _KEXEC_RE, "kexec -l", SYMPTOM)
    return out
