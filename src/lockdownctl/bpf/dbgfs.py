"""Path exceptions: one debugfs file exempted from the enforcer's debugfs
denial, and whether this kernel can honour one.

The kernel checks LOCKDOWN_DEBUGFS inside the debugfs proxy ``open``
(fs/debugfs/file.c debugfs_locked_down()), after the ``file_open`` LSM hook
and with only the reason passed to ``locked_down``. lockdown.bpf.c carries
the file from one hook to the other in task storage (``ldctl_file_open``
marks the thread, ``ldctl_locked_down`` consumes the mark). That needs:

- the kernel's own level at ``none``: at ``integrity`` the lockdown LSM,
  which runs first, denies debugfs before any BPF program is asked, and
  LSM hooks stop at the first denial, so nothing can exempt a file;
- the ``file_open`` and ``inode_setattr`` LSM hooks and BPF task storage
  (``bpf_task_storage_get``), read from the kernel's BTF.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..btf import VMLINUX_BTF, find_func_id
from ..errors import InputError
from ..levels import level_rank
from ..reasons import DEBUGFS_REASON
from . import hooks

if TYPE_CHECKING:
    from ..policy import Policy
    from ..reasons import Catalogue
    from ..root import Root

TASK_STORAGE_HELPER = "bpf_task_storage_get"  # kernel/bpf/bpf_task_storage.c (v5.11)
PROGRAMS = ("ldctl_file_open", "ldctl_inode_setattr")


def has_paths(policy: Policy) -> bool:
    return any(exc.kind == "path" for exc in policy.exceptions)


def btf_problem(data: bytes, source: str) -> str:
    """Why this kernel's BTF lacks what path exceptions need ('' when it has it all)."""
    try:
        kernel = hooks.kernel_hooks(data, source)
        task_storage = find_func_id(data, source, TASK_STORAGE_HELPER)
    except InputError as exc:
        return str(exc)
    variant = hooks.VARIANTS["lockdown"][0]
    missing = [m for p in variant.programs if p.name in PROGRAMS and (m := hooks.mismatch(p, kernel.get(p.hook)))]
    if task_storage is None:
        missing.append(f"no BPF task storage ({TASK_STORAGE_HELPER} is not in {source})")
    return "; ".join(missing)


def problem(policy: Policy, cat: Catalogue, kernel_level: str | None, root: Root) -> str:
    """Why ``policy``'s path exceptions cannot work on this kernel: '' when they
    can or there are none. ``enforce apply`` refuses with it (exit 3)."""
    if not has_paths(policy):
        return ""
    lines = ", ".join(str(exc.line) for exc in policy.exceptions if exc.kind == "path")
    head = f"{policy.source}:{lines}: path exceptions cannot work here: "
    reason = cat.get(DEBUGFS_REASON)
    if kernel_level is None:
        return head + ("the kernel's lockdown level cannot be read (securityfs): they need the kernel at "
                       "none, where the enforcer is the whole policy")
    if kernel_level != "none" and level_rank(reason.level) <= level_rank(kernel_level):
        return head + (f"the kernel itself is at {kernel_level} and its lockdown LSM denies {DEBUGFS_REASON} "
                       "before any BPF program is asked, so no file can be exempted (boot without lockdown= "
                       "and let the enforcer's profile be the whole policy)")
    path = root.display(VMLINUX_BTF)
    try:
        with open(root / VMLINUX_BTF, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        return head + f"{path}: cannot read the kernel's BTF ({exc.strerror})"
    why = btf_problem(data, path)
    return head + why if why else ""
