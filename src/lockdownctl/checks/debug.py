"""Debug and tracing interfaces: debugfs (integrity), tracefs, kprobes,
/proc/kcore and perf (confidentiality).

Kernel: fs/debugfs/file.c debugfs_locked_down() (LOCKDOWN_DEBUGFS: any file
with a write bit, ioctl or mmap; fs/debugfs/inode.c debugfs_setattr());
fs/tracefs/inode.c tracefs_create_file() and kernel/trace/trace.c
tracing_check_open_get_tr() (LOCKDOWN_TRACEFS); kernel/trace/trace_kprobe.c
__register_trace_kprobe() (LOCKDOWN_KPROBES); fs/proc/kcore.c open_kcore()
(LOCKDOWN_KCORE); kernel/events/core.c perf_event_open() (LOCKDOWN_PERF).
"""

from __future__ import annotations

import os
import re
from typing import Any

from ..mountinfo import is_mounted
from ..reasons import DEBUGFS_TRACING, DEBUGFS_UNGATED_TWIN, denial_line
from ..root import in_private_mounts
from .common import package_findings, proc_findings, tool_findings
from .engine import Context, Evidence, Finding, exception_yaml, path_exception_yaml

NAME = "debug"
# The log lines are built from the catalogue (reasons.denial_line), never typed.
DEBUGFS_SYMPTOM = (
    "opening debugfs files fails with 'Operation not permitted' even as root (files with a write "
    "bit even for reading); log: " + denial_line("debugfs")
)
TRACEFS_SYMPTOM = (
    "tracing stops: tracefs files are not created or refuse to open ('Could not create tracefs' at "
    "boot, 'Operation not permitted' later); log: " + denial_line("tracefs")
)
KPROBES_SYMPTOM = (
    "kprobe registration fails: 'echo: write error: Operation not permitted' on kprobe_events, "
    "bcc/bpftrace 'Failed to attach ... kprobe'; log: " + denial_line("kprobes")
)
KCORE_SYMPTOM = "open of /proc/kcore fails with 'Operation not permitted': crash, drgn -k, gdb on /proc/kcore"
DEBUGFS_PATH = re.compile(r"/sys/kernel/debug(/\S*)?")
DYNDBG, PROC_DYNDBG = next(iter(DEBUGFS_UNGATED_TWIN.items()))  # the seed's example (#20)
TRACING_FILES = ("current_tracer", "kprobe_events", "uprobe_events", "dynamic_events", "set_event", "tracing_on")

PACKAGES = {
    "trace-cmd": ("tracefs", "/usr/bin/trace-cmd", TRACEFS_SYMPTOM),
    "linux-perf": (
        "tracefs",
        "",
        "perf trace, tracepoint events, perf probe (kprobes) and perf --kcore fail; " + TRACEFS_SYMPTOM,
    ),
    "bpftrace": ("kprobes", "/usr/bin/bpftrace", KPROBES_SYMPTOM),
    "bpfcc-tools": ("kprobes", "", KPROBES_SYMPTOM),
    "rasdaemon": ("tracefs", "/usr/sbin/rasdaemon", "rasdaemon cannot enable RAS trace events; " + TRACEFS_SYMPTOM),
    "powertop": ("tracefs", "/usr/sbin/powertop", "powertop loses its tracepoint data; " + TRACEFS_SYMPTOM),
    "rt-tests": ("tracefs", "", TRACEFS_SYMPTOM),
    "crash": ("kcore", "/usr/bin/crash", KCORE_SYMPTOM),
    "drgn": ("kcore", "/usr/bin/drgn", KCORE_SYMPTOM),
    "python3-drgn": ("kcore", "/usr/bin/drgn", KCORE_SYMPTOM),
    "avml": ("kcore", "/usr/bin/avml", KCORE_SYMPTOM),
    "systemtap": ("module_signature", "", "SystemTap's generated modules are unsigned: Required key not available"),
}


def detect(ctx: Context) -> list[Finding]:
    out: list[Finding] = []
    out += _debugfs(ctx)
    out += proc_findings(
        ctx, NAME, "tracefs", re.compile(r"^/sys/kernel/(tracing|debug/tracing)(/|$)"), "tracefs", TRACEFS_SYMPTOM
    )
    out += _tracing_state(ctx)
    out += proc_findings(ctx, NAME, "kcore", re.compile(r"^/proc/kcore$"), "/proc/kcore", KCORE_SYMPTOM)
    out += tool_findings(
        ctx,
        NAME,
        "tracefs",
        re.compile(r"(^|[/\s])(trace-cmd|perf\s+(trace|record\s.*-e))(\s|$)"),
        "a tracing tool",
        TRACEFS_SYMPTOM,
    )
    out += tool_findings(
        ctx,
        NAME,
        "kcore",
        re.compile(r"/proc/kcore|(^|[/\s])(crash|avml|drgn\s+-k)(\s|$)"),
        "a /proc/kcore reader",
        KCORE_SYMPTOM,
    )
    out += package_findings(ctx, NAME, PACKAGES)
    return out


def _debugfs(ctx: Context) -> list[Finding]:
    out = []
    for hit in ctx.proc_hits:
        if hit.path.startswith("/sys/kernel/debug") and not hit.path.startswith(DEBUGFS_TRACING):
            # A read-only fd may be of a 0444 file, which stays readable: likely, not certain.
            out.append(
                ctx.finding(
                    NAME,
                    "debugfs",
                    "breaks" if "w" in hit.access else "likely",
                    f"{hit.comm} (pid {hit.pid}) has {hit.path} open",
                    [Evidence("process", hit.where, f"{hit.path} ({hit.access or '?'}); exe {hit.exe}")],
                    DEBUGFS_SYMPTOM,
                    _dyndbg_remedy(hit.path),
                    # a file with an ungated twin: the sound path exception, not all of debugfs to the program
                    path_exception_yaml(hit.path, "debugfs") if hit.path in DEBUGFS_UNGATED_TWIN
                    else exception_yaml(["debugfs"], exe=hit.exe) if hit.exe else None,
                    pid=hit.pid,
                    exe=hit.exe,
                    path=hit.path,
                )
            )
    from ..host.systemd import read_tmpfiles, read_udev_rules

    for line in read_tmpfiles(ctx.root):
        if len(line.words) > 1 and line.words[1].startswith("/sys/kernel/debug"):
            out.append(
                ctx.finding(
                    NAME,
                    "debugfs",
                    "breaks",
                    f"tmpfiles.d writes {line.words[1]}",
                    [Evidence("file", line.where, line.text)],
                    DEBUGFS_SYMPTOM + "; the setting is lost",
                    _dyndbg_remedy(line.words[1]),
                    None,
                    path=line.words[1],
                )
            )
    for line in read_udev_rules(ctx.root):
        if "/sys/kernel/debug" in line.text:
            out.append(
                ctx.finding(
                    NAME,
                    "debugfs",
                    "breaks",
                    "a udev rule touches debugfs",
                    [Evidence("file", line.where, line.text)],
                    DEBUGFS_SYMPTOM,
                    _dyndbg_remedy(line.text),
                )
            )
    out += tool_findings(
        ctx, NAME, "debugfs", re.compile(r"/sys/kernel/debug(?!/tracing)"), "a debugfs user", DEBUGFS_SYMPTOM
    )
    for line in ctx.modprobe:
        if line.words[:2] == ["options", "ec_sys"] and any(
            w in ("write_support=1", "write_support=Y", "write_support=y") for w in line.words
        ):
            out.append(
                ctx.finding(
                    NAME,
                    "debugfs",
                    "breaks",
                    "ec_sys write_support: EC access through debugfs",
                    [Evidence("file", line.where, line.text)],
                    "tools writing /sys/kernel/debug/ec/ec0/io (fan and battery control: isw, nbfc) "
                    "fail; " + DEBUGFS_SYMPTOM,
                )
            )
    return out


def _dyndbg_remedy(text: str) -> str:
    if "dynamic_debug" in text:
        return (
            f"use {PROC_DYNDBG} (the same control file in procfs, with no lockdown check: it works at every "
            f"level, no policy change) or dyndbg= boot/module parameters instead of {DYNDBG}"
        )
    return ""


def _read_tracing(ctx: Context) -> dict[str, Any] | None:
    """The state of tracefs: a few files and the instances directory."""

    def read(base: str) -> dict[str, Any]:
        out: dict[str, Any] = {"base": base}
        for name in TRACING_FILES:
            text = ctx.root.read_text(f"{base}/{name}")  # InputError names a file that is not text
            if isinstance(text, str):
                out[name] = text[:65536]
        out["instances"] = ctx.root.listdir(f"{base}/instances")  # resolved inside --root
        return out

    for base in ("sys/kernel/tracing", "sys/kernel/debug/tracing"):
        if not ctx.root.live:
            if ctx.root.exists(base + "/current_tracer") or ctx.root.exists(base + "/kprobe_events"):
                return read(base)
            continue
        if is_mounted("/" + base, "tracefs"):
            return read(base)
    if not ctx.root.live:
        return None
    if os.geteuid() != 0:
        ctx.notes.append("tracefs is not mounted and reading it needs root: tracing state not checked")
        return None
    try:
        state: dict[str, Any] = in_private_mounts(["tracefs"], lambda: read("sys/kernel/tracing"))
    except OSError as exc:
        ctx.notes.append(f"tracefs could not be mounted in a private namespace: {exc}")
        return None
    state["how"] = "mounted in a private mount namespace"
    return state


def _tracing_state(ctx: Context) -> list[Finding]:
    state = _read_tracing(ctx)
    if state is None:
        return []
    out = []
    base = "/" + state["base"]

    def ev(name: str, text: str) -> list[Evidence]:
        return [Evidence("tracefs", f"{base}/{name}", text.strip().splitlines()[0][:200] if text.strip() else text)]

    for name, reason, title in (
        ("kprobe_events", "kprobes", "kprobes are registered"),
        ("dynamic_events", "kprobes", "dynamic (k/fprobe) events are registered"),
        ("uprobe_events", "tracefs", "uprobe events are registered"),
    ):
        text = state.get(name, "")
        if text.strip():
            if name == "dynamic_events" and not re.search(r"^[prf]", text, re.M):
                continue
            count = len(text.strip().splitlines())
            out.append(
                ctx.finding(
                    NAME,
                    reason,
                    "breaks",
                    f"{title} ({count})",
                    ev(name, text),
                    KPROBES_SYMPTOM if reason == "kprobes" else TRACEFS_SYMPTOM,
                )
            )
    tracer = state.get("current_tracer", "").strip()
    if tracer and tracer != "nop":
        out.append(
            ctx.finding(
                NAME,
                "tracefs",
                "breaks",
                f"the {tracer} tracer is active",
                ev("current_tracer", tracer),
                TRACEFS_SYMPTOM,
            )
        )
    events = state.get("set_event", "").strip()
    if events:
        out.append(
            ctx.finding(
                NAME,
                "tracefs",
                "breaks",
                f"{len(events.splitlines())} trace events are enabled",
                ev("set_event", events),
                TRACEFS_SYMPTOM,
            )
        )
    if state.get("instances"):
        out.append(
            ctx.finding(
                NAME,
                "tracefs",
                "breaks",
                f"trace instances exist: {', '.join(state['instances'])}",
                [Evidence("tracefs", f"{base}/instances", " ".join(state["instances"]))],
                TRACEFS_SYMPTOM,
            )
        )
    return out
