"""Every verb gives this host's kernel the same answer to "can the enforcer
run here": the trial load's (state/bpf_lsm.py)."""

from __future__ import annotations

from tests.conftest import REPO, lockdownctl
from tests.host.conftest import require_root


def test_every_verb_agrees_with_the_trial_load() -> None:
    require_root()
    bpf = lockdownctl("status", "--json").json()["data"]["bpf_lsm"]
    assert bpf["trial_load"] in ("ok", "refused")
    audit = lockdownctl("audit", "--json").json()["data"]
    loads = next(c for c in audit["checks"] if c["id"] == "enforcer_bpf_lsm_loads")
    assert loads["verdict"] == ("ok" if bpf["usable"] else "warn")
    enforce = lockdownctl("enforce", "status", "--json").json()["data"]
    if not enforce["loaded"]:
        assert enforce["can_load"] is bpf["usable"]
        text = lockdownctl("enforce", "status").out
        assert ("enforce apply FILE" in text) is bpf["usable"]
    if not bpf["usable"]:
        apply = lockdownctl("enforce", "apply", str(REPO / "examples/integrity.yaml"))
        assert apply.code == 3 and "BPF LSM is not usable" in apply.err
        measure = lockdownctl("check", "--measure", "1")
        assert measure.code == 3 and "BPF LSM is not usable" in measure.err


def test_apply_checks_kernel_support_before_resolving_names(tmp_path: object) -> None:
    require_root()
    bpf = lockdownctl("status", "--json").json()["data"]["bpf_lsm"]
    if bpf["usable"]:
        return  # nothing to order on a kernel that runs the enforcer
    from pathlib import Path

    policy = Path(str(tmp_path)) / "p.yaml"
    policy.write_text("version: 1\nexceptions:\n  - uid: nosuchuser-ldctl\n    allow: [msr]\n")
    run = lockdownctl("enforce", "apply", str(policy))
    assert run.code == 3 and "BPF LSM is not usable" in run.err and "nosuchuser" not in run.err
