"""Whether the kernel refuses unsigned modules now, and why (for metrics and NFD labels).

The kernel refuses an unsigned module when module_sig_check() (in
kernel/module/signing.c, compiled only with CONFIG_MODULE_SIG) finds
is_module_sig_enforced() true (CONFIG_MODULE_SIG_FORCE=y, module.sig_enforce=1,
or a later write of 1 to the parameter) or when lockdown denies
LOCKDOWN_MODULE_SIGNATURE (any level from integrity up, with the lockdown LSM
active). The running kernel's own answer is the sig_enforce parameter in
sysfs, which exists exactly when CONFIG_MODULE_SIG is built in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .root import Root

if TYPE_CHECKING:
    from typing import Any

SIG_ENFORCE = "sys/module/module/parameters/sig_enforce"


def module_signing(root: Root, status: dict[str, Any]) -> tuple[bool | None, str]:
    """(enforced, why); enforced is None when the evidence was not readable."""
    from .host.cmdline import Cmdline, read_cmdline
    from .host.kconfig import read_kconfig
    from .levels import level_rank

    param = root.read_text(SIG_ENFORCE)
    if isinstance(param, str) and param.strip() in ("Y", "N"):
        sig_param: bool | None = param.strip() == "Y"
    else:
        sig_param = None  # absent (no CONFIG_MODULE_SIG, or not the running system) or unreadable
    if sig_param:
        return True, f"/{SIG_ENFORCE} is Y: unsigned modules are refused whatever the lockdown level"
    config = read_kconfig(root)
    if config is not None and config.get("CONFIG_MODULES") != "y":
        return True, "CONFIG_MODULES is not set: no module can be loaded at all"
    built_in = True if sig_param is False else None  # the parameter exists: CONFIG_MODULE_SIG=y
    if built_in is None and config is not None:
        built_in = config.get("CONFIG_MODULE_SIG") == "y"
    if built_in is None and root.live and root.exists("sys/module/module/parameters"):
        built_in = False  # sysfs lists the module subsystem's parameters, and sig_enforce is not one
    if built_in is False:
        return False, "CONFIG_MODULE_SIG is not set: signatures are never checked, lockdown cannot refuse modules"
    if sig_param is None and config is not None:
        cmdline = read_cmdline(root)
        if config.get("CONFIG_MODULE_SIG_FORCE") == "y":
            return True, "CONFIG_MODULE_SIG_FORCE=y"
        if isinstance(cmdline, Cmdline) and cmdline.sig_enforce:
            return True, "module.sig_enforce=1 on the kernel command line"
    level, active = status.get("level"), status.get("lsm", {}).get("lockdown_active")
    if level in ("integrity", "confidentiality") and active and built_in:
        return True, f"lockdown is at {level}: it refuses modules without a valid signature"
    if level is None or active is None or built_in is None:
        return None, "unknown: the lockdown level, the LSM list or the kernel configuration was not readable"
    if sig_param is False or (config is not None and level_rank(level) < level_rank("integrity")):
        return False, "unsigned modules load: sig_enforce is off and lockdown does not deny them"
    return None, "unknown: neither the sig_enforce parameter nor the kernel configuration was readable"
