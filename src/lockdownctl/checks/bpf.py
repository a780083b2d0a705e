"""BPF agents: loaded programs that read kernel memory with probe-read helpers.

Kernel: kernel/trace/bpf_trace.c bpf_tracing_func_proto() and
kernel/bpf/helpers.c bpf_base_func_proto() withhold bpf_probe_read_kernel(_str)
and the legacy bpf_probe_read(_str) under LOCKDOWN_BPF_READ_KERNEL
(confidentiality), so the verifier rejects programs that call them; and
bpf_get_probe_write_proto() withholds bpf_probe_write_user
(LOCKDOWN_BPF_WRITE_USER, integrity).

Which helpers a loaded program calls is only visible from its instructions
(BPF_OBJ_GET_INFO_BY_FD); without reading them, tracing program types
(kprobe, tracepoint, perf_event, raw_tracepoint) are "likely" and the
known agents' units "breaks".
"""

from __future__ import annotations

import re

from ..host.procfs import fdinfo
from .common import exec_path, package_findings, unit_evidence, unit_hits
from .engine import Context, Evidence, Finding, exception_yaml

NAME = "bpf"
SYMPTOM = (
    "the verifier rejects the agent's programs ('unknown func bpf_probe_read_kernel#113', 'program of this "
    "type cannot use helper bpf_probe_read#4'): the agent fails to start or crash-loops"
)
# include/uapi/linux/bpf.h enum bpf_prog_type: the tracing types that reach probe-read helpers
TRACING_TYPES = {
    "2": "kprobe",
    "5": "tracepoint",
    "7": "perf_event",
    "17": "raw_tracepoint",
    "26": "tracing",
    "kprobe": "kprobe",
    "tracepoint": "tracepoint",
    "perf_event": "perf_event",
    "raw_tracepoint": "raw_tracepoint",
    "tracing": "tracing",
}
AGENTS = re.compile(
    r"(^|[/\s])(falco|tetragon|tracee|sysdig|kubearmor|pixie|parca-agent|bpftrace|"
    r"opentelemetry-ebpf|otelcol-ebpf|datadog-agent|system-probe|pyroscope|beyla|kepler)(\s|$|-)"
)
PACKAGES = {
    "falco": ("bpf_read_kernel", "/usr/bin/falco", SYMPTOM),
    "tetragon": ("bpf_read_kernel", "/usr/local/bin/tetragon", SYMPTOM),
    "tracee": ("bpf_read_kernel", "/usr/bin/tracee", SYMPTOM),
    "sysdig": ("bpf_read_kernel", "/usr/bin/sysdig", SYMPTOM),
    "bpftrace": ("bpf_read_kernel", "/usr/bin/bpftrace", SYMPTOM),
    "bpfcc-tools": ("bpf_read_kernel", "", SYMPTOM),
    "datadog-agent": ("bpf_read_kernel", "/opt/datadog-agent/embedded/bin/system-probe", SYMPTOM),
}


def detect(ctx: Context) -> list[Finding]:
    out: list[Finding] = []
    by_exe: dict[tuple[int, str], list[str]] = {}
    where: dict[tuple[int, str], Evidence] = {}
    for hit in ctx.proc_hits:
        if hit.path != "anon_inode:bpf-prog" or hit.fd is None:
            continue
        info = fdinfo(ctx.root, hit.pid, hit.fd)
        kind = TRACING_TYPES.get(info.get("prog_type", ""))
        if kind is None:
            continue
        key = (hit.pid, hit.exe)
        by_exe.setdefault(key, []).append(f"{kind} prog {info.get('prog_id', '?')} tag {info.get('prog_tag', '?')}")
        where.setdefault(
            key,
            Evidence(
                "process",
                f"/proc/{hit.pid}/fdinfo/{hit.fd}",
                f"prog_type {info.get('prog_type')} prog_id {info.get('prog_id', '?')}; "
                f"pid {hit.pid} {hit.comm} exe {hit.exe}",
            ),
        )
    for (pid, exe), progs in by_exe.items():
        comm = next(h.comm for h in ctx.proc_hits if h.pid == pid)
        out.append(
            ctx.finding(
                NAME,
                "bpf_read_kernel",
                "likely",
                f"{comm} (pid {pid}) holds {len(progs)} tracing BPF program(s)",
                [where[(pid, exe)], Evidence("process", f"/proc/{pid}/fd", "; ".join(progs[:5]))],
                SYMPTOM + " (if its programs call probe-read helpers, as BPF_CORE_READ does)",
                policy=exception_yaml(["bpf_read_kernel"], exe=exe) if exe else None,
                pid=pid,
                exe=exe,
                programs=len(progs),
            )
        )
    for unit, setting in unit_hits(ctx, AGENTS):
        out.append(
            ctx.finding(
                NAME,
                "bpf_read_kernel",
                "breaks" if unit.enabled_by else "likely",
                f"BPF agent unit {unit.name}" + ("" if unit.enabled_by else " (not enabled)"),
                unit_evidence(unit, setting),
                SYMPTOM,
                policy=_agent_exception(unit.name, exec_path(setting.value)),
                unit=unit.name,
            )
        )
    pinned = ctx.root.listdir("sys/fs/bpf")
    if pinned:
        out.append(
            ctx.finding(
                NAME,
                "bpf_read_kernel",
                "info",
                f"pinned BPF objects: {', '.join(pinned[:8])}",
                [Evidence("sysfs", ctx.root.display("sys/fs/bpf"), " ".join(pinned[:20]))],
                SYMPTOM + " (programs reloaded after a reboot are checked again by the verifier)",
            )
        )
    out += package_findings(ctx, NAME, PACKAGES)
    return out


def _agent_exception(unit: str, exe: str) -> str:
    """The narrowest exception for an agent run by ``unit``: its executable when the
    unit names one (the kernel matches the file), else the unit's cgroup, which any
    root process can join (protection.WIDENS)."""
    allow = ["bpf_read_kernel", "kprobes", "tracefs"]
    if exe.startswith("/"):
        return exception_yaml(allow, exe=exe, name=unit.removesuffix(".service"))
    return exception_yaml(allow, cgroup=f"/system.slice/{unit}")
