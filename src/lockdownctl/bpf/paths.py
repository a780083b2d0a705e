"""Where the enforcer lives on a running system (light: status reads these)."""

PIN_DIR = "/sys/fs/bpf/lockdownctl"
LINK_PIN = "link"
STATE_DIR = "/run/lockdownctl"
STATE = STATE_DIR + "/enforcer.json"


def enforcer_brief() -> dict[str, object]:
    """Whether the enforcer is loaded and, if so, what it enforces (from its state file)."""
    import os

    if not os.path.exists(os.path.join(PIN_DIR, LINK_PIN)):
        return {"loaded": False}
    out: dict[str, object] = {"loaded": True, "pin_dir": PIN_DIR}
    try:
        import json

        with open(STATE, encoding="utf-8") as fh:
            state = json.load(fh)
        for key in ("profile", "mode", "policy_file", "policy_id", "sealed", "sealed_at"):
            if key in state:
                out[key] = state[key]
    except (OSError, ValueError):
        out["note"] = f"{STATE} not readable: see lockdownctl enforce status"
    return out
