"""One decision "can the enforcer run here" (state/bpf_lsm.py), used by every verb."""

from __future__ import annotations

from typing import Any

import pytest

from lockdownctl.audit.checks import checks
from lockdownctl.audit.engine import evaluate
from lockdownctl.audit.inputs import AuditFacts, Inputs, live_runtime
from lockdownctl.cli.enforce import _render_status
from lockdownctl.output import Style
from lockdownctl.root import Root
from lockdownctl.state.bpf_lsm import decide, why_not
from lockdownctl.state.document import read_status
from tests.conftest import ROOTS

HOST = ROOTS / "host-6.18-kconfig-integrity"
REFUSED: dict[str, Any] = {"usable": False, "config": True, "listed": True, "btf": True, "trial_load": "refused",
                           "errno": "EPERM", "detail": "the kernel refuses LSM programs: EPERM at load", "fix": "x"}


def _loads_verdict(status: Any) -> tuple[str, str]:
    inputs = Inputs(config=None, cmdline=None, sysctl=None, runtime=live_runtime(status), status=status)
    check = next(c for c in checks("integrity") if c.id == "enforcer_bpf_lsm_loads")
    [(_c, outcome, verdict)] = evaluate([check], AuditFacts(inputs), "integrity")
    return verdict, outcome.text


def test_audit_does_not_pass_the_enforcer_where_the_trial_load_is_refused() -> None:
    status = read_status(Root(HOST))
    status["bpf_lsm"] = dict(REFUSED)  # type: ignore[typeddict-item]
    verdict, text = _loads_verdict(status)
    assert verdict == "warn"
    assert "refuses LSM programs (EPERM at load)" in text


def test_audit_skips_the_trial_on_a_root_that_is_not_running() -> None:
    # a fixture cannot be asked: no verdict either way
    assert _loads_verdict(read_status(Root(HOST)))[0] == "skip"


def test_a_root_never_gets_a_usable_verdict() -> None:
    ok = {"result": "ok", "errno": None, "detail": "loaded"}
    bpf = decide(Root(HOST), None, ["lockdown", "bpf"], ok)  # type: ignore[arg-type]
    assert bpf["usable"] is False and bpf["trial_load"] == "not-tried"


@pytest.mark.parametrize(("can_load", "hint"), [(True, True), (False, False)])
def test_enforce_status_suggests_apply_only_where_it_can_work(can_load: bool, hint: bool) -> None:
    data = {"loaded": False, "can_load": can_load, "why_not": None if can_load else why_not(REFUSED)}  # type: ignore[arg-type]
    text = _render_status(data, Style(False))
    assert ("enforce apply FILE" in text) is hint
    if not can_load:
        assert "cannot be loaded here: BPF LSM is not usable: the kernel lists bpf" in text
