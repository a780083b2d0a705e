"""Status: the lockdown level, why it is what it is, and what can enforce more.

The kernel sets the level in a fixed order and only ever raises it
(lock_kernel_down() refuses a level that is not higher): the kconfig-forced
level at LSM init, then ``lockdown=`` from the command line, then the distro
Secure Boot patch in setup_arch(), then writes to securityfs at run time. So
the source of the current level is the first of these that reached it; the
kernel log line ``Kernel is locked down from <where>`` says so directly and
wins when it can be read.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from .host.cmdline import Cmdline, read_cmdline
from .host.efivars import SecureBoot, read_secure_boot
from .host.kconfig import KConfig, read_kconfig
from .host.kmsg import LogLine, read_kernel_log
from .host.securityfs import SecurityFs, read_securityfs
from .klog import level_sets
from .reasons import LEVELS, level_rank
from .root import Root, Unreadable

FORCE_OPTIONS = {
    "integrity": "CONFIG_LOCK_DOWN_KERNEL_FORCE_INTEGRITY",
    "confidentiality": "CONFIG_LOCK_DOWN_KERNEL_FORCE_CONFIDENTIALITY",
}
# The distro patch "efi: Lock down the kernel if booted in secure boot mode"
# under its names over time (kernel-facts.md 3.1); it locks at integrity.
SECURE_BOOT_OPTIONS = ("CONFIG_LOCK_DOWN_IN_EFI_SECURE_BOOT", "CONFIG_EFI_SECURE_BOOT_LOCK_DOWN",
                       "CONFIG_LOCK_DOWN_KERNEL")
SOURCE_TEXT = {
    "kconfig": "forced by kernel configuration",
    "cmdline": "set on the kernel command line",
    "secure_boot": "set by the distribution's Secure Boot patch",
    "securityfs": "raised at run time through securityfs",
    "none": "not locked down",
    "unknown": "source unknown",
}
_LSM_INIT = "LSM: initializing lsm="


@dataclass
class Evidence:
    where: str  # file (and line) or interface
    text: str

    def __str__(self) -> str:
        return f"{self.where}: {self.text}"


@dataclass
class Source:
    kind: str  # kconfig | cmdline | secure_boot | securityfs | none | unknown
    detail: str
    evidence: list[Evidence] = field(default_factory=list)


@dataclass
class LsmState:
    active: list[str] | None
    how: str  # securityfs | kernel log | ""
    lockdown_active: bool | None
    cmdline_lsm: list[str] | None
    config_lsm: str | None


@dataclass
class BpfLsm:
    usable: bool
    config: bool | None  # CONFIG_BPF_LSM
    listed: bool | None  # bpf in the active LSM list
    btf: bool  # /sys/kernel/btf/vmlinux present
    trial_load: str  # ok | refused | not-tried
    errno: str | None
    detail: str
    fix: str


@dataclass
class Status:
    level: str | None
    level_read_from: str  # securityfs | inferred | ""
    source: Source
    offered: list[str]
    forced_by_kconfig: str | None
    can_raise: bool | None
    raise_to: list[str]
    lsm: LsmState
    secure_boot: dict[str, Any]
    bpf_lsm: BpfLsm
    kernel: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _candidates(config: KConfig | None, cmdline: Cmdline | None, sb: SecureBoot) -> list[tuple[str, Source]]:
    """(level, source) pairs from static configuration, in the kernel's order."""
    out: list[tuple[str, Source]] = []
    if config is not None:
        for level, option in FORCE_OPTIONS.items():
            if config.get(option) == "y":
                out.append((level, Source("kconfig", f"{option}=y",
                                          [Evidence(config.where(option), f"{option}=y")])))
    if cmdline is not None and cmdline.lockdown:
        out.append((cmdline.lockdown, Source("cmdline", f"lockdown={cmdline.lockdown}",
                                             [Evidence(cmdline.path, f"lockdown={cmdline.lockdown}")])))
    if sb.state == "enabled" and config is not None:
        for option in SECURE_BOOT_OPTIONS:
            if config.get(option) == "y":
                evidence = [Evidence(config.where(option), f"{option}=y")]
                evidence += [Evidence("efivars", e) for e in sb.evidence]
                out.append(("integrity", Source("secure_boot", f"Secure Boot on and {option}=y", evidence)))
                break
    return out


def _source(level: str | None, log: list[LogLine] | None, log_path: str,
            candidates: list[tuple[str, Source]]) -> Source:
    sets = level_sets(log or [])
    if sets:
        last = sets[-1]
        if last.line.lineno:
            where = f"{log_path}:{last.line.lineno}"
        elif last.line.seconds is not None:
            where = f"{log_path} [{last.line.seconds:.6f}]"
        else:
            where = log_path
        source = Source(last.kind, f"kernel log: locked down from {last.where}", [Evidence(where, last.line.text)])
        for lvl, cand in candidates:  # add the configuration that explains the line
            if cand.kind == last.kind and (level is None or lvl == level):
                source.detail = cand.detail
                source.evidence += cand.evidence
        return source
    if level == "none":
        return Source("none", "no lockdown source is configured")
    for lvl, cand in candidates:
        if lvl == level:
            return cand
    if level is not None and all(level_rank(lvl) < level_rank(level) for lvl, _ in candidates):
        return Source("securityfs", f"{level} is higher than any boot-time setting: raised through "
                      "/sys/kernel/security/lockdown at run time")
    return Source("unknown", "no kernel log and no configuration explains the level")


def _bpf_lsm(root: Root, config: KConfig | None, lsm: list[str] | None) -> BpfLsm:
    from .bpf.probe import trial_load  # ctypes/libbpf only when it is needed

    config_on = None if config is None else config.get("CONFIG_BPF_LSM") == "y"
    listed = None if lsm is None else "bpf" in lsm
    btf = root.exists("sys/kernel/btf/vmlinux")
    if root.live and listed is not False and config_on is not False and btf:
        trial = trial_load()
        result, err, detail = trial.result, trial.errno, trial.detail
    else:
        result, err = "not-tried", None
        detail = "not the running system" if not root.live else "prerequisites missing"
    fix = ""
    if config_on is False:
        fix = "the kernel is built without CONFIG_BPF_LSM: use a kernel that has it"
    elif listed is False:
        active = ",".join(lsm or [])
        fix = f"BPF LSM is not active: add bpf to lsm= (active now: {active})"
    elif not btf:
        fix = "the kernel has no BTF (/sys/kernel/btf/vmlinux): needs CONFIG_DEBUG_INFO_BTF"
    elif result == "refused":
        fix = ("the kernel lists bpf but refuses LSM programs: the enforcer cannot run on this kernel "
               "(check for a kernel built without BPF trampolines or a policy blocking them)")
    usable = result == "ok" and bool(listed) and btf and config_on is not False
    return BpfLsm(usable, config_on, listed, btf, result, err, detail, fix)


def _lsm_state(sfs: SecurityFs, log: list[LogLine] | None, cmdline: Cmdline | None,
               config: KConfig | None) -> LsmState:
    active, how = sfs.lsm, "securityfs" if sfs.lsm is not None else ""
    if active is None and log:
        for line in log:
            if _LSM_INIT in line.text:
                active = [n for n in line.text.split(_LSM_INIT, 1)[1].strip().split(",") if n]
                how = "kernel log"
    return LsmState(
        active=active,
        how=how,
        lockdown_active=None if active is None else "lockdown" in active,
        cmdline_lsm=cmdline.lsm if cmdline else None,
        config_lsm=config.get("CONFIG_LSM") if config else None,
    )


def read_status(root: Root) -> Status:
    notes: list[str] = []
    sfs = read_securityfs(root)
    notes += sfs.notes
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
    log_r = read_kernel_log(root)
    log = log_r if isinstance(log_r, list) else None
    if isinstance(log_r, Unreadable):
        notes.append(f"{log_r.path}: {log_r.why} (kernel log not read)")

    candidates = _candidates(config, cmdline, sb)
    lsm = _lsm_state(sfs, log, cmdline, config)
    level, read_from = sfs.level, "securityfs" if sfs.level else ""
    if sfs.lockdown_file is False:
        level, read_from = "none", "securityfs"
        notes.append("securityfs has no lockdown file: the kernel is built without the lockdown LSM")
    elif level is None and candidates:
        level = max((lvl for lvl, _ in candidates), key=level_rank)
        read_from = "inferred"
        notes.append(f"level inferred from boot configuration ({level}); securityfs was not read")
    source = _source(level, log, root.display("dev/kmsg"), candidates)
    if lsm.lockdown_active is False and level not in (None, "none"):
        notes.append("the lockdown LSM is not in the active LSM list: the level is displayed but not enforced")
    forced = None
    if config is not None:
        forced = next((lvl for lvl, opt in FORCE_OPTIONS.items() if config.get(opt) == "y"), None)
    raise_to = [lvl for lvl in (sfs.offered or list(LEVELS)) if level and level_rank(lvl) > level_rank(level)]
    can_raise = None if level is None or lsm.lockdown_active is None else (lsm.lockdown_active and bool(raise_to))
    btf_present = root.exists("sys/kernel/btf/vmlinux")
    return Status(
        level=level,
        level_read_from=read_from,
        source=source,
        offered=sfs.offered,
        forced_by_kconfig=forced,
        can_raise=can_raise,
        raise_to=raise_to if can_raise else [],
        lsm=lsm,
        secure_boot=asdict(sb),
        bpf_lsm=_bpf_lsm(root, config, lsm.active),
        kernel={"release": root.osrelease(), "btf": btf_present, "config": config.path if config else None,
                "euid": os.geteuid() if root.live else None},
        notes=notes,
    )
