"""Can the enforcer run here? The one decision, for every verb.

``status`` shows it, ``enforce apply`` and ``check --measure`` refuse with
exit 3 when it says no, ``audit`` reports it as an enforcer prerequisite and
``enforce status`` only suggests ``enforce apply`` when it says yes. The
deciding fact is the trial load (host/bpf_syscall.py): a kernel that lists
bpf among its LSMs may still refuse LSM programs.
"""

from __future__ import annotations

from ..btf import VMLINUX_BTF
from ..errors import FeatureMissing

TYPE_CHECKING = False  # on status's start-up path (benchmarks/startup.py)
if TYPE_CHECKING:
    from ..host.kconfig import KConfig
    from ..root import Root
    from .types import BpfLsm, Trial


def decide(root: Root, config: KConfig | None, lsm: list[str] | None, trial: Trial | None) -> BpfLsm:
    """The BPF LSM section of the status document from what was read.

    ``trial`` is None when no trial load ran (not the running system, or a
    caller that did not ask for one): then the BPF LSM is never "usable"."""
    from ..host.bpf_syscall import SYS_BPF, machine

    arch = machine(root)
    config_on = None if config is None else config.get("CONFIG_BPF_LSM") == "y"
    listed = None if lsm is None else "bpf" in lsm
    btf = root.exists(VMLINUX_BTF)
    if trial is None or not root.live:
        trial = {"result": "not-tried", "errno": None,
                 "detail": "not the running system" if not root.live else "prerequisites missing"}
    fix = ""
    if config_on is False:
        fix = "the kernel is built without CONFIG_BPF_LSM: use a kernel that has it"
    elif listed is False:
        fix = f"BPF LSM is not active: add bpf to lsm= (active now: {','.join(lsm or [])})"
    elif not btf and root.live:  # a root without the file says nothing about its kernel
        fix = f"the kernel has no BTF (/{VMLINUX_BTF}): needs CONFIG_DEBUG_INFO_BTF"
    elif arch is not None and arch not in SYS_BPF:
        fix = f"no bpf(2) number known for architecture {arch}: lockdownctl cannot try a BPF LSM program here"
    elif trial["result"] == "refused":
        fix = ("the kernel lists bpf but refuses LSM programs: the enforcer cannot run on this kernel "
               "(check for a kernel built without BPF trampolines or a policy blocking them)")
    return {
        "usable": trial["result"] == "ok" and bool(listed) and btf and config_on is not False,
        "config": config_on,
        "listed": listed,
        "btf": btf,
        "trial_load": trial["result"],
        "errno": trial["errno"],
        "detail": trial["detail"],
        "fix": fix,
        "arch": arch,
        "bpf_syscall": SYS_BPF.get(arch or ""),
    }


def bpf_lsm_state(root: Root) -> BpfLsm:
    """Read what :func:`decide` needs (kernel config, LSM list, the trial load
    on the running system) and decide."""
    from ..host.kconfig import read_kconfig
    from ..host.kmsg import LogLine
    from ..host.securityfs import parse_securityfs
    from .kernel import kernel_side, start_status
    from .lsm import lsm_state

    kernel = start_status(root.path).result() if root.live else kernel_side(root)
    config = read_kconfig(root, [])
    log = [LogLine(s, t, n) for s, t, n in kernel["log"]] if "log" in kernel else None
    lsm = lsm_state(parse_securityfs(kernel["securityfs"], root).lsm, log, None, config)
    return decide(root, config, lsm["active"], kernel.get("trial"))


def why_not(bpf: BpfLsm) -> str:
    """One sentence: why the enforcer cannot run (``bpf`` not usable)."""
    detail = bpf["fix"] or bpf["detail"] or "unknown"
    if bpf["trial_load"] == "refused" and bpf["listed"]:
        detail = (f"the kernel lists bpf among its LSMs but refuses LSM programs ({bpf['errno']} at load); "
                  "the enforcer cannot run on this kernel")
    return f"BPF LSM is not usable: {detail}"


def require_bpf_lsm(root: Root) -> BpfLsm:
    """Exit 3 with the precise reason when the enforcer cannot run on ``root``."""
    bpf = bpf_lsm_state(root)
    if not bpf["usable"]:
        raise FeatureMissing(why_not(bpf))
    return bpf
