"""The active LSM list: from securityfs, else from the kernel log's
``LSM: initializing lsm=`` line (security/security.c ordered_lsm_init())."""

from __future__ import annotations

TYPE_CHECKING = False  # on status's start-up path (benchmarks/startup.py)
if TYPE_CHECKING:
    from ..host.cmdline import Cmdline
    from ..host.kconfig import KConfig
    from ..host.kmsg import LogLine
    from .types import Lsm

_LSM_INIT = "LSM: initializing lsm="


def lsm_state(active: list[str] | None, log: list[LogLine] | None, cmdline: Cmdline | None,
              config: KConfig | None) -> Lsm:
    how = "securityfs" if active is not None else ""
    if active is None and log:
        for line in log:
            if _LSM_INIT in line.text:
                active = [n for n in line.text.split(_LSM_INIT, 1)[1].strip().split(",") if n]
                how = "kernel log"
    return {
        "active": active,
        "how": how,
        "lockdown_active": None if active is None else "lockdown" in active,
        "cmdline_lsm": cmdline.lsm if cmdline else None,
        "config_lsm": config.get("CONFIG_LSM") if config else None,
    }
