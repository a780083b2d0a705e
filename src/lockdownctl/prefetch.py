"""Start ``status`` on the live system early, in a child process.

The CLI calls this before it even imports argparse. The child imports what it
needs itself and collects the whole status (securityfs in a private mount
namespace, kernel log, BPF trial load, files), while the parent parses the
arguments and prepares the output: on two cores the two halves overlap
(``status`` must start fast: benchmarks/startup.py).
"""

from __future__ import annotations

from .root import Child, Root

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def start_status(root_path: str = "/", bpf_trial: bool = True) -> Child:
    """``bpf_trial`` False: no trial load of a BPF program (audit and check
    report on the kernel without loading anything)."""

    def work() -> dict[str, Any]:
        from .status import collect

        return collect(Root(root_path), in_child=True, bpf_trial=bpf_trial)

    return Child(work)
