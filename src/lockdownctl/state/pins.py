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

    from ..fsio import Reservation

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


# Room taken for what only loading tells (the proof, the seal, the signed gate's data).
STATE_SLACK = 8192


def reserve_state(draft: dict[str, Any]) -> Reservation:
    """Room for the state file, taken before ``enforce apply`` changes the kernel:
    a full or read-only /run fails here (exit 74), with nothing loaded or changed,
    instead of after the change, with a state file naming the previous policy."""
    import json

    from ..errors import OutputError
    from ..fsio import Reservation

    try:
        os.makedirs(STATE_DIR, mode=0o700, exist_ok=True)
        _remove_strays()
        return Reservation(STATE, len(json.dumps(draft, indent=1)) + STATE_SLACK)
    except OSError as exc:
        raise OutputError(f"{STATE}: cannot write: {exc.strerror or exc}: nothing was loaded or changed "
                          f"(make room in {STATE_DIR}, or make it writable, and apply again)") from None


def _remove_strays() -> None:
    """Temp files of applies that were killed, or could not give their room back."""
    import contextlib

    prefix = "." + os.path.basename(STATE) + "."
    for name in os.listdir(STATE_DIR):
        if name.startswith(prefix) and name.endswith(".lockdownctl"):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(STATE_DIR, name))


def save_state(state: dict[str, Any], room: Reservation | None = None) -> None:
    """Replace the state file (the old state or the new one, whole: never a half-written
    file), in the room :func:`reserve_state` took if given."""
    import json

    text = json.dumps(state, indent=1)
    if room is not None:
        room.commit(text)
        return
    from ..fsio import atomic_write

    os.makedirs(STATE_DIR, mode=0o700, exist_ok=True)
    atomic_write(STATE, text)


def remove_state() -> None:
    """Forget the state (best effort: one left behind on a read-only /run describes
    nothing: nothing pinned, or :func:`state_of` finds it names another policy)."""
    import contextlib

    with contextlib.suppress(OSError):
        os.unlink(STATE)


def state_of(policy_id: str) -> tuple[dict[str, Any], str | None]:
    """The state file if it describes the policy the kernel runs (``policy_id``, as
    ``enforce apply`` writes it); else ({}, why): a state that could not be saved must
    not pass for the running policy's (fail closed)."""
    state = load_state()
    if state is None:
        return {}, f"{STATE} missing or unreadable: the running policy's file and profile are unknown"
    if state.get("policy_id") != policy_id:
        return {}, _unsaved(state, policy_id)
    return state, None


def _unsaved(state: dict[str, Any], policy_id: str) -> str:
    return (f"{STATE} names policy {state.get('policy_id')}, the kernel runs {policy_id} "
            "(its state was not saved): apply the policy again")


# Where struct ld_policy (lockdown.h; bpf/abi.py LdPolicy, not imported: status's start-up
# path) keeps policy_id, at the start of the policy map's value; tests/unit/test_state_room.py.
POLICY_ID_OFFSET = 8
GATE_INFO = "gate-info"  # bpf/gate.py INFO: pinned when the seal is signed (not imported: start-up path)


def running_policy_id() -> str | None:
    """The policy id the loaded enforcer runs, from its policy map (a read-only fd, which
    a seal grants), as ``enforce apply`` writes it; None when it cannot be read."""
    import sys

    from ..host.bpf_syscall import lookup_pinned

    value = lookup_pinned(os.path.join(PIN_DIR, "policy"), 0)
    if value is None or len(value) < POLICY_ID_OFFSET + 8:
        return None
    return f"{int.from_bytes(value[POLICY_ID_OFFSET:POLICY_ID_OFFSET + 8], sys.byteorder):016x}"


def enforcer_brief() -> dict[str, object]:
    """Whether the enforcer is loaded and, if so, what it enforces (from its state file)."""
    if not pinned():
        return {"loaded": False}
    out: dict[str, object] = {"loaded": True, "pin_dir": PIN_DIR}
    state = load_state()
    if state is None:
        out["note"] = f"{STATE} not readable: see lockdownctl enforce status"
        return out
    # Fail closed: a state an apply could not save names the previous policy. (Signed
    # updates change the running policy without it, and a signed seal refuses these fds.)
    signed = state.get("signed") or os.path.exists(os.path.join(PIN_DIR, GATE_INFO))
    running = None if signed else running_policy_id()
    if running is not None and running != state.get("policy_id"):
        out["policy_id"] = running
        out["note"] = _unsaved(state, running)
        return out
    for key in ("profile", "mode", "policy_file", "policy_id", "sealed", "sealed_at"):
        if key in state:
            out[key] = state[key]
    return out
