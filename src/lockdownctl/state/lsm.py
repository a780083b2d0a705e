"""The active LSM list: from securityfs, else from the kernel log's
``LSM: initializing lsm=`` line (its grammar: klog.lsm_list)."""

from __future__ import annotations

from ..klog import lsm_list

TYPE_CHECKING = False  # on status's start-up path (benchmarks/startup.py)
if TYPE_CHECKING:
    from ..host.cmdline import Cmdline
    from ..host.kconfig import KConfig
    from ..host.kmsg import LogLine
    from .types import Lsm


def lsm_state(active: list[str] | None, log: list[LogLine] | None, cmdline: Cmdline | None,
              config: KConfig | None) -> Lsm:
    how = "securityfs" if active is not None else ""
    if active is None and log:
        for line in log:
            if (names := lsm_list(line.text)) is not None:
                active = names
                how = "kernel log"
    return {
        "active": active,
        "how": how,
        "lockdown_active": None if active is None else "lockdown" in active,
        "cmdline_lsm": cmdline.lsm if cmdline else None,
        "config_lsm": config.get("CONFIG_LSM") if config else None,
    }
