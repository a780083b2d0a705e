"""Where the enforcer lives on a running system: its pins and its state file.

The one home of "is the enforcer loaded?" and of the state file
(/run/lockdownctl/enforcer.json: what ``enforce apply`` loaded, for
``status`` and ``enforce status``). Light: status's child reads it.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # on status's start-up path (benchmarks/startup.py)
if TYPE_CHECKING:
    from typing import Any

PIN_DIR = "/sys/fs/bpf/lockdownctl"
LINK_PIN = "link"
STATE_DIR = "/run/lockdownctl"
STATE = STATE_DIR + "/enforcer.json"


def pinned() -> bool:
    """Whether the enforcer is loaded: its link's pin holds it attached."""
    return os.path.exists(os.path.join(PIN_DIR, LINK_PIN))


def load_state() -> dict[str, Any] | None:
    """The state file ``enforce apply`` wrote; None when absent or damaged."""
    import json

    try:
        with open(STATE, encoding="utf-8") as fh:
            state = json.load(fh)
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def save_state(state: dict[str, Any]) -> None:
    import json

    from ..fsio import atomic_write

    os.makedirs(STATE_DIR, mode=0o700, exist_ok=True)
    # the old state or the new one, whole: never a half-written file, no temporary left
    atomic_write(STATE, json.dumps(state, indent=1))


def remove_state() -> None:
    if os.path.exists(STATE):
        os.unlink(STATE)


def enforcer_brief() -> dict[str, object]:
    """Whether the enforcer is loaded and, if so, what it enforces (from its state file)."""
    if not pinned():
        return {"loaded": False}
    out: dict[str, object] = {"loaded": True, "pin_dir": PIN_DIR}
    state = load_state()
    if state is None:
        out["note"] = f"{STATE} not readable: see lockdownctl enforce status"
        return out
    for key in ("profile", "mode", "policy_file", "policy_id", "sealed", "sealed_at"):
        if key in state:
            out[key] = state[key]
    return out
