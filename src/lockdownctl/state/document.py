"""The status document: the lockdown level, why it is what it is, and what can enforce more.

The kernel sets the level in a fixed order and only ever raises it
(lock_kernel_down() refuses a level that is not higher): the kconfig-forced
level at LSM init, then ``lockdown=`` from the command line, then the distro
Secure Boot patch in setup_arch(), then writes to securityfs at run time. So
the source of the current level is the first of these that reached it; the
kernel log line ``Kernel is locked down from <where>`` says so directly and
wins when it can be read.

The result is the JSON document itself (plain dicts, documented in
lockdownctl(8)); on the live system the kernel-side reads (securityfs, the
kernel log, the BPF trial load) run in a child process in parallel with the
file reads, which keeps ``status`` fast (benchmarks/startup.py).
"""

from __future__ import annotations

import os

from ..btf import VMLINUX_BTF
from ..host.cmdline import Cmdline, read_cmdline
from ..host.efivars import SecureBoot, read_secure_boot
from ..host.kconfig import KConfig, read_kconfig
from ..host.kmsg import KMSG, LogLine
from ..host.securityfs import parse_securityfs
from ..kfacts import FORCE_OPTIONS, SECURE_BOOT_LEVEL, SECURE_BOOT_OPTIONS
from ..klog import level_sets
from ..levels import LEVELS, level_rank
from ..root import Root, Unreadable
from .bpf_lsm import decide
from .kernel import kernel_side, start_status
from .lsm import lsm_state

TYPE_CHECKING = False  # on status's start-up path (benchmarks/startup.py)
if TYPE_CHECKING:
    from typing import Any

    from ..root import Child
    from .types import Evidence, Source, Status

SOURCE_TEXT = {
    "kconfig": "forced by kernel configuration",
    "cmdline": "set on the kernel command line",
    "secure_boot": "set by the distribution's Secure Boot patch",
    "securityfs": "raised at run time through securityfs",
    "none": "not locked down",
    "unknown": "source unknown",
}


def evidence(where: str, text: str) -> Evidence:
    return {"where": where, "text": text}


def source(kind: str, detail: str, ev: list[Evidence] | None = None) -> Source:
    return {"kind": kind, "detail": detail, "evidence": ev or []}


def _candidates(config: KConfig | None, cmdline: Cmdline | None, sb: SecureBoot) -> list[tuple[str, Source]]:
    """(level, source) pairs from static configuration, in the kernel's order."""
    out: list[tuple[str, Source]] = []
    if config is not None:
        for option, level in FORCE_OPTIONS:
            if config.get(option) == "y":
                out.append((level, source("kconfig", f"{option}=y", [evidence(config.where(option), f"{option}=y")])))
    if cmdline is not None and cmdline.lockdown:
        text = f"lockdown={cmdline.lockdown}"
        out.append((cmdline.lockdown, source("cmdline", text, [evidence(cmdline.path, text)])))
    if sb.state == "enabled" and config is not None:
        for option in SECURE_BOOT_OPTIONS:
            if config.get(option) == "y":
                ev = [evidence(config.where(option), f"{option}=y")] + [evidence("efivars", e) for e in sb.evidence]
                out.append((SECURE_BOOT_LEVEL, source("secure_boot", f"Secure Boot on and {option}=y", ev)))
                break
    return out


def _where(line: LogLine, log_path: str) -> str:
    if line.lineno:
        return f"{log_path}:{line.lineno}"
    if line.seconds is not None:
        return f"{log_path} [{line.seconds:.6f}]"
    return log_path


def _source(level: str | None, log: list[LogLine] | None, log_path: str,
            candidates: list[tuple[str, Source]]) -> Source:
    sets = level_sets(log or [])
    if sets:
        last = sets[-1]
        src = source(last.kind, f"kernel log: locked down from {last.where}",
                     [evidence(_where(last.line, log_path), last.line.text)])
        for lvl, cand in candidates:  # add the configuration that explains the line
            if cand["kind"] == last.kind and (level is None or lvl == level):
                src["detail"] = cand["detail"]
                src["evidence"] += cand["evidence"]
        return src
    if level == "none":
        return source("none", "no lockdown source is configured")
    for lvl, cand in candidates:
        if lvl == level:
            return cand
    if level is not None and all(level_rank(lvl) < level_rank(level) for lvl, _ in candidates):
        return source("securityfs", f"{level} is higher than any boot-time setting: raised through "
                      "/sys/kernel/security/lockdown at run time")
    return source("unknown", "no kernel log and no configuration explains the level")


def read_status(root: Root, started: Child | None = None, bpf_trial: bool = True) -> Status:
    """The ``data`` of ``lockdownctl status --json``.

    On the live system the kernel-side reads run in a child process (see
    state/kernel.py), which may already have been ``started`` by the CLI; the
    files are read here meanwhile.
    """
    child = (started or start_status(root.path, bpf_trial)) if root.live else None
    files = read_files(root)  # meanwhile
    return assemble(root, files, child.result() if child is not None else kernel_side(root))


class Files:
    """What status reads from files: command line, kernel config, EFI variables."""

    def __init__(self, cmdline: Cmdline | None, config: KConfig | None, sb: SecureBoot, notes: list[str]) -> None:
        self.cmdline = cmdline
        self.config = config
        self.sb = sb
        self.notes = notes


def read_files(root: Root) -> Files:
    notes: list[str] = []
    cmdline_r = read_cmdline(root)
    cmdline = cmdline_r if isinstance(cmdline_r, Cmdline) else None
    if isinstance(cmdline_r, Unreadable):
        notes.append(f"{cmdline_r.path}: {cmdline_r.why}")
    if cmdline and cmdline.lockdown_invalid:
        notes.append(f"{cmdline.path}: ignored by the kernel: " +
                     ", ".join(f"lockdown={v}" for v in cmdline.lockdown_invalid))
    config = read_kconfig(root, notes)
    sb = read_secure_boot(root)
    notes += sb.notes
    return Files(cmdline, config, sb, notes)


def assemble(root: Root, files: Files, kernel: dict[str, Any]) -> Status:
    """The status document from the files and the kernel-side reads."""
    cmdline, config, sb, notes = files.cmdline, files.config, files.sb, list(files.notes)
    sfs = parse_securityfs(kernel["securityfs"], root)
    notes[:0] = sfs.notes
    log = [LogLine(s, t, n) for s, t, n in kernel["log"]] if "log" in kernel else None
    if "log_error" in kernel:
        notes.append(kernel["log_error"])

    candidates = _candidates(config, cmdline, sb)
    lsm = lsm_state(sfs.lsm, log, cmdline, config)
    level, read_from = sfs.level, "securityfs" if sfs.level else ""
    if sfs.lockdown_file is False:
        level, read_from = "none", "securityfs"
        notes.append("securityfs has no lockdown file: the kernel is built without the lockdown LSM")
    elif level is None and candidates:
        level = max((lvl for lvl, _ in candidates), key=level_rank)
        read_from = "inferred"
        notes.append(f"level inferred from boot configuration ({level}); securityfs was not read")
    if lsm["lockdown_active"] is False and level not in (None, "none"):
        notes.append("the lockdown LSM is not in the active LSM list: the level is displayed but not enforced")
    forced = None
    if config is not None:
        forced = next((lvl for opt, lvl in FORCE_OPTIONS if config.get(opt) == "y"), None)
    raise_to = [lvl for lvl in (sfs.offered or list(LEVELS)) if level and level_rank(lvl) > level_rank(level)]
    can_raise = None
    if level is not None and lsm["lockdown_active"] is not None:
        can_raise = lsm["lockdown_active"] and bool(raise_to)
    return {
        "level": level,
        "level_read_from": read_from,
        "source": _source(level, log, "kernel log" if root.live else root.display(KMSG), candidates),
        "offered": sfs.offered,
        "forced_by_kconfig": forced,
        "can_raise": can_raise,
        "raise_to": raise_to if can_raise else [],
        "lsm": lsm,
        "secure_boot": sb.to_dict(),  # type: ignore[typeddict-item]
        "bpf_lsm": decide(root, config, lsm["active"], kernel.get("trial")),
        "enforcer": kernel.get("enforcer", {"loaded": None}),  # None: not the running system
        "kernel": {"release": root.osrelease(), "btf": root.exists(VMLINUX_BTF),
                   "config": config.path if config else None, "euid": os.geteuid() if root.live else None},
        "notes": notes,
    }
