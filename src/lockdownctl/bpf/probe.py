"""Is the BPF LSM usable for the enforcer on this kernel?

A kernel can list ``bpf`` among its active LSMs and still refuse LSM
programs (this project's own build host returns EPERM at load), so, like
systemd before it uses BPF LSM, we decide by loading a minimal program on
the ``locked_down`` hook. Loading without attaching changes nothing.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field

from . import libbpf

# r0 = 0; exit  (BPF_ALU64|BPF_MOV|BPF_K, BPF_JMP|BPF_EXIT)
_RETURN_ZERO = [(0xB7, 0, 0, 0), (0x95, 0, 0, 0)]


@dataclass
class TrialLoad:
    result: str  # ok | refused | not-tried
    errno: str | None = None
    detail: str = ""
    notes: list[str] = field(default_factory=list)


def trial_load() -> TrialLoad:
    """Load (never attach) ``lsm/locked_down`` returning 0; close it at once."""
    if os.geteuid() != 0:
        return TrialLoad("not-tried", detail="loading a BPF LSM program needs root")
    try:
        btf_id = libbpf.find_vmlinux_btf_id("locked_down", libbpf.BPF_LSM_MAC)
    except OSError as exc:
        return TrialLoad("refused", errno.errorcode.get(exc.errno or 0),
                         f"no bpf_lsm_locked_down in vmlinux BTF: {exc}")
    try:
        fd = libbpf.prog_load(libbpf.BPF_PROG_TYPE_LSM, "ldctl_probe", _RETURN_ZERO,
                              expected_attach_type=libbpf.BPF_LSM_MAC, attach_btf_id=btf_id)
    except OSError as exc:
        name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        return TrialLoad("refused", name, f"the kernel refuses LSM programs: {name} at load")
    os.close(fd)
    return TrialLoad("ok", detail="a minimal lsm/locked_down program loaded")
