"""Readiness checks: what breaks at a lockdown level, with evidence.

``engine.py`` runs detectors and applies ``preconditions.py``; each other
module is one area's detector. :func:`check` is the whole run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..reasons import catalogue
from ..root import Root
from . import acpi, bpf, debug, hardware, hibernation, kernel_log, kexec, kgdb, modules, xfrm
from .engine import Context, Detector, build_report, run_detectors
from .preconditions import evaluate, read_state

if TYPE_CHECKING:
    from ..state.types import Status

DETECTORS: list[tuple[str, Detector]] = [
    (m.NAME, m.detect) for m in (modules, hibernation, kexec, hardware, debug, bpf, acpi, kgdb, xfrm, kernel_log)
]


def check(
    root: Root, level: str, state: Status | None = None, detectors: list[tuple[str, Detector]] | None = None
) -> dict[str, Any]:
    """The ``data`` of ``lockdownctl check --level LEVEL --json``."""
    ctx = Context(root, level, catalogue(root=root.path), state if state is not None else read_state(root))
    findings, ran = run_detectors(ctx, detectors if detectors is not None else DETECTORS)
    preconditions, suppress, downgrade = evaluate(ctx)
    return build_report(ctx, findings, ran, preconditions, suppress, downgrade)
