"""The facts an audit reads: kernel config, command line, sysctls, the running kernel.

Live (no file options): everything through :class:`~lockdownctl.root.Root`
(``--root``), the running level and LSM list from lockdownctl.state.document.
Offline (any of ``--config``, ``--cmdline``, ``--uki``, ``--sysctl``): only
the files given; the runtime ``level`` and ``lsm`` facts are then what the
configuration and command line imply (``derive_lsm``, ``derive_level``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import InputError
from ..host.cmdline import Cmdline, parse_cmdline, read_cmdline
from ..host.kconfig import KConfig, kconfig_from_bytes, read_kconfig
from ..host.uki import uki_cmdline
from ..infile import looks_like_path, read_bytes, read_text
from ..levels import level_rank
from ..root import Root, Unreadable
from ..state.bpf_lsm import why_not
from .checks import FORCE, SECURE_BOOT_OPTIONS
from .engine import Observation

_SYSCTL_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/@*+-]*")
_CONFIG_ASSIGN = re.compile(r"^(?:(CONFIG_\w+)=|# (CONFIG_\w+) is not set$)", re.M)

if TYPE_CHECKING:
    from ..state.types import Status


def duplicate_options(config: KConfig) -> None:
    """InputError naming file and line of the first option assigned twice.

    Kconfig keeps the last assignment, so a duplicate hides what the file
    seems to say; audit refuses such a file (status reads the last value).
    """
    first: dict[str, int] = {}
    body = config.text[1:]
    for number, line in enumerate(body.splitlines(), 1):
        match = _CONFIG_ASSIGN.match(line)
        if not match:
            continue
        name = match.group(1) or match.group(2)
        if name in first:
            raise InputError(f"{config.path}:{number}: {name} assigned again (first on line {first[name]})")
        first[name] = number


def load_config(path: str) -> KConfig:
    """A config file, plain or gzip-compressed (``/proc/config.gz``)."""
    config = kconfig_from_bytes(read_bytes(path, "kernel config"), path)
    duplicate_options(config)
    return config


def load_cmdline(arg: str) -> Cmdline:
    """``--cmdline``: a file holding the command line, or the command line itself.

    An argument that names a file or has the shape of a path is a file: a
    mistyped file name must be an error, not a command line that says nothing
    (infile.looks_like_path)."""
    if looks_like_path(arg):
        return parse_cmdline(read_text(arg, "command-line file"), arg)
    return parse_cmdline(arg, "--cmdline")


def load_uki(path: str) -> Cmdline:
    """The ``.cmdline`` section of a unified kernel image (a PE file).

    systemd-stub passes that section to the kernel and, with Secure Boot on,
    ignores whatever the boot loader passes (systemd-stub(7)).
    """
    text = uki_cmdline(read_bytes(path, "unified kernel image"), path)
    if text is not None:
        return parse_cmdline(text, f"{path}:.cmdline")
    raise InputError(f"{path}: no .cmdline section: not a unified kernel image with an embedded command line")


class SysctlFile:
    """``sysctl -a`` output: ``key = value`` lines."""

    def __init__(self, path: str, values: dict[str, tuple[str, int]]) -> None:
        self.path = path
        self.values = values

    def get(self, name: str) -> Observation | None:
        if name in self.values:
            value, line = self.values[name]
            return Observation(value, f"{self.path}:{line}")
        return Observation(None, self.path)


def load_sysctl(path: str) -> SysctlFile:
    text = read_text(path, "sysctl -a output file")
    values: dict[str, tuple[str, int]] = {}
    previous = ""
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        # sysctl -a as non-root prints "sysctl: permission denied on key ..." lines: not values.
        if not stripped or stripped.startswith(("sysctl: ", "#")):
            continue
        key, sep, value = stripped.partition(" =")
        if not sep or not _SYSCTL_KEY.fullmatch(key):
            raise InputError(f"{path}:{number}: not a 'key = value' line of sysctl -a: {stripped[:60]!r}")
        if key == previous:  # a multi-line value (kernel.core_modes): sysctl prints one line each
            values[key] = (values[key][0] + "\n" + value.strip(), values[key][1])
            continue
        if key in values:
            raise InputError(f"{path}:{number}: {key} given again (first on line {values[key][1]})")
        values[key] = (value.strip(), number)
        previous = key
    if not values:
        raise InputError(f"{path}: no 'key = value' lines: not the output of sysctl -a")
    return SysctlFile(path, values)


class LiveSysctl:
    """Sysctls read one by one from /proc/sys through the root."""

    def __init__(self, root: Root) -> None:
        self.root = root

    def get(self, name: str) -> Observation | None:
        rel = "proc/sys/" + name.replace(".", "/")
        text = self.root.read_text(rel)
        if isinstance(text, Unreadable):
            return None
        return Observation(None if text is None else text.strip(), self.root.display(rel))


@dataclass
class Inputs:
    config: KConfig | None
    cmdline: Cmdline | None
    sysctl: SysctlFile | LiveSysctl | None
    runtime: dict[str, Observation] | None  # None: offline
    describe: dict[str, str | None] = field(default_factory=dict)  # input -> where it came from
    status: Status | None = None  # status document (state/document.py) of a live audit
    notes: list[str] = field(default_factory=list)


class AuditFacts:
    """engine.Facts over the inputs, with Kconfig assignments optionally laid over them."""

    def __init__(self, inputs: Inputs, assignments: dict[str, str] | None = None) -> None:
        self.inputs = inputs
        self.assignments = assignments or {}
        # a kernel built from a fragment has not run yet: its runtime facts are derived
        self.runtime = None if assignments is not None else inputs.runtime

    def with_assignments(self, assignments: dict[str, str]) -> AuditFacts:
        return AuditFacts(self.inputs, dict(assignments))

    def lookup(self, source: str, name: str) -> Observation | None:
        if source == "kconfig":
            if name in self.assignments:
                return Observation(self.assignments[name], "Kconfig fragment")
            config = self.inputs.config
            if config is None:
                return None
            return Observation(config.get(name), config.where(name))
        if source == "cmdline":
            cmdline = self.inputs.cmdline
            if cmdline is None:
                return None
            if name == "lockdown":  # the kernel keeps the highest valid lockdown= (lock_kernel_down())
                return Observation(cmdline.lockdown, cmdline.path)
            values = cmdline.values(name)
            return Observation(None if not values else (values[-1] or ""), cmdline.path)
        if source == "sysctl":
            return None if self.inputs.sysctl is None else self.inputs.sysctl.get(name)
        if self.runtime is not None and name in self.runtime:
            return self.runtime[name]
        if name == "lsm":
            return derive_lsm(self)
        if name == "level":
            return derive_level(self)[0]
        return None


def _names(value: str | None) -> list[str]:
    return [n for n in (value or "").split(",") if n]


def derive_lsm(facts: AuditFacts) -> Observation | None:
    """The LSM list a kernel built with this config would start with this command line.

    security/security.c: lsm= replaces CONFIG_LSM; an early LSM (lockdown with
    CONFIG_SECURITY_LOCKDOWN_LSM_EARLY) starts whatever the list says; an LSM
    that is not built is skipped.
    """
    built = facts.lookup("kconfig", "SECURITY_LOCKDOWN_LSM")
    if built is None:
        return None
    cmd = facts.lookup("cmdline", "lsm")
    if cmd is not None and cmd.value is not None:
        names, where = _names(cmd.value), f"lsm= in {cmd.where}"
    else:
        conf = facts.lookup("kconfig", "LSM")
        names, where = _names(conf.value if conf else None), f"CONFIG_LSM ({conf.where if conf else '?'})"
    for name, option in (("lockdown", "SECURITY_LOCKDOWN_LSM"), ("bpf", "BPF_LSM")):
        obs = facts.lookup("kconfig", option)
        if name in names and (obs is None or obs.value != "y"):
            names.remove(name)
    early = facts.lookup("kconfig", "SECURITY_LOCKDOWN_LSM_EARLY")
    if built.value == "y" and early is not None and early.value == "y" and "lockdown" not in names:
        names.insert(0, "lockdown")
        where += " and CONFIG_SECURITY_LOCKDOWN_LSM_EARLY=y"
    return Observation(",".join(names), "implied by " + where)


def derive_level(facts: AuditFacts) -> tuple[Observation | None, str, str]:
    """(level, source kind, detail) that this config and command line enforce at boot."""
    lsm = facts.lookup("runtime", "lsm")
    if lsm is None:
        cmdline = facts.inputs.cmdline
        if cmdline is not None and cmdline.lockdown is None and "none" in cmdline.lockdown_invalid:
            # The user asked for no lockdown. lockdown_param() ignores "none", so
            # only a Kconfig-forced level or the distro Secure Boot patch could
            # still lock: neither is in evidence, and a failure must not hinge
            # on an input that was not given.
            detail = (f"lockdown=none on the command line ({cmdline.path}) and no kernel configuration "
                      "that forces a level")
            return Observation("none", detail), "cmdline", detail
        return None, "unknown", "no kernel configuration"
    if "lockdown" not in _names(lsm.value):
        detail = f"the lockdown LSM is not active ({lsm.where})"
        return Observation("none", detail), "lsm-inactive", detail
    found: list[tuple[str, str, str]] = []
    for lvl, option in FORCE.items():
        obs = facts.lookup("kconfig", option)
        if obs is not None and obs.value == "y":
            found.append((lvl, "kconfig", f"{option}=y ({obs.where})"))
    cmd = facts.lookup("cmdline", "lockdown")
    if cmd is not None and cmd.value:
        found.append((cmd.value, "cmdline", f"lockdown={cmd.value} ({cmd.where})"))
    if found:
        lvl, kind, detail = max(found, key=lambda f: level_rank(f[0]))
        return Observation(lvl, detail), kind, detail
    detail = "no CONFIG_LOCK_DOWN_KERNEL_FORCE_* and no lockdown="
    for option in SECURE_BOOT_OPTIONS:
        obs = facts.lookup("kconfig", option)
        if obs is not None and obs.value == "y":
            detail += f" (integrity only when booted with Secure Boot: {option}=y)"
            break
    return Observation("none", detail), "none", detail


def live_runtime(status: Status) -> dict[str, Observation]:
    """Runtime facts from status document (state/document.py) (securityfs, kernel log, efivars)."""
    out: dict[str, Observation] = {}
    lsm = status["lsm"]
    if lsm["active"] is not None:
        how = "/sys/kernel/security/lsm" if lsm["how"] == "securityfs" else lsm["how"]
        out["lsm"] = Observation(",".join(lsm["active"]), how)
    if status["level"] is not None and status["level_read_from"] == "securityfs":
        where = "/sys/kernel/security/lockdown"
        source = status["source"]
        if source["kind"] not in ("none", "unknown"):
            where += f", {source['detail']}"
        if lsm["lockdown_active"] is False:
            out["level"] = Observation("none", f"{where} shows {status['level']}, but lockdown is not an "
                                       "active LSM")
        else:
            out["level"] = Observation(status["level"], where)
    sb = status["secure_boot"]
    out["secure_boot"] = Observation(sb["state"], "efivars")
    bpf = status["bpf_lsm"]
    if bpf["usable"]:
        out["bpf_lsm"] = Observation("usable", f"trial load: {bpf['detail']}")
    elif bpf["trial_load"] == "refused" or bpf["config"] is False or bpf["listed"] is False:
        # known not to run (a trial that was not tried, or a file absent from a root, decides nothing)
        out["bpf_lsm"] = Observation("not-usable", why_not(bpf).removeprefix("BPF LSM is not usable: "))
    return out


def gather(root_path: str, config: str | None, cmdline: str | None, uki: str | None,
           sysctl: str | None) -> Inputs:
    if cmdline is not None and uki is not None:
        raise InputError("--cmdline and --uki both give the command line: use one")
    if any(x is not None for x in (config, cmdline, uki, sysctl)):
        cmd = load_cmdline(cmdline) if cmdline is not None else load_uki(uki) if uki is not None else None
        inputs = Inputs(config=load_config(config) if config is not None else None, cmdline=cmd,
                        sysctl=load_sysctl(sysctl) if sysctl is not None else None, runtime=None)
        inputs.describe = {"config": config, "cmdline": cmd.path if cmd else None, "sysctl": sysctl,
                           "runtime": None}
        return inputs
    root = Root(root_path)
    notes: list[str] = []
    kconfig = read_kconfig(root, notes)
    if kconfig is not None:
        duplicate_options(kconfig)
    cmd_r = read_cmdline(root)
    if isinstance(cmd_r, Unreadable):
        notes.append(f"{cmd_r.path}: {cmd_r.why}")
    live_cmd = cmd_r if isinstance(cmd_r, Cmdline) else None
    from ..state.document import read_status

    # The BPF LSM trial load (load, never attach: nothing changes) is the one
    # answer to "can the enforcer run here" that status and enforce give too.
    status = read_status(root)
    notes += [n for n in status["notes"] if n not in notes]
    inputs = Inputs(config=kconfig, cmdline=live_cmd, sysctl=LiveSysctl(root), runtime=live_runtime(status),
                    status=status, notes=notes)
    inputs.describe = {"config": kconfig.path if kconfig else None, "cmdline": live_cmd.path if live_cmd else None,
                       "sysctl": root.display("proc/sys"), "runtime": "securityfs" if root.live else root.path}
    return inputs
