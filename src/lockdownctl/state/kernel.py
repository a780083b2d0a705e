"""The kernel-side reads of the status document, on the live system in a child process.

``lockdownctl status`` starts the child before it even imports argparse. The child imports what it
needs itself and does the kernel-side reads (securityfs in a private mount
namespace, the kernel log, the BPF trial load), while the parent parses the
arguments and reads the files (command line, kernel config, EFI variables):
on two cores the two halves overlap (``status`` must start fast:
benchmarks/startup.py).
"""

from __future__ import annotations

from ..root import Child, Root

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def kernel_side(root: Root, in_child: bool = False, bpf_trial: bool = True) -> dict[str, Any]:
    """securityfs, the kernel log lines status needs, the BPF trial load
    (skipped with ``bpf_trial`` False: ``check`` does not need it) and
    whether the enforcer is loaded.

    Plain data, because on the live system it runs in a child process (which
    may also unshare its mount namespace to mount securityfs). Imports only
    what it uses: the child pays for them, not the parent.
    """
    from ..host.kmsg import read_kernel_log
    from ..host.securityfs import raw_securityfs
    from ..klog import status_relevant
    from ..root import Unreadable

    out: dict[str, Any] = {"securityfs": raw_securityfs(root, in_child)}
    log = read_kernel_log(root, want=status_relevant)
    if isinstance(log, Unreadable):
        out["log_error"] = f"{log.path}: {log.why} (kernel log not read)"
    elif log is not None:
        out["log"] = [[ln.seconds, ln.text, ln.lineno] for ln in log]
    if root.live and bpf_trial:
        from ..host.bpf_syscall import trial_load

        out["trial"] = trial_load()
    if root.live:
        from .pins import enforcer_brief

        out["enforcer"] = enforcer_brief()
    return out


def start_status(root_path: str = "/", bpf_trial: bool = True) -> Child:
    """:func:`kernel_side` of the running system, in a child process."""

    def work() -> dict[str, Any]:
        return kernel_side(Root(root_path), in_child=True, bpf_trial=bpf_trial)

    return Child(work)
