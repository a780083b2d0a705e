"""``lockdownctl metrics`` with the enforcer loaded in a real kernel (guest): the
decision counters and the policy come from its maps, as ``enforce status`` reads them."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import lockdownctl_inproc as lockdownctl
from tests.vm.test_enforcer import TRACEFS_FILE, apply, cgroup, enforcer, open_in, scoped_policy, write_policy

__all__ = ["cgroup", "enforcer"]  # fixtures used below


@pytest.mark.guest(kernel="6.12", level="none")
def test_metrics_read_the_enforcers_maps(cgroup: str, enforcer: None, tmp_path: Path) -> None:
    data = apply(write_policy(tmp_path, scoped_policy(cgroup, "  tracefs: deny\n  kcore: audit\n")))
    assert open_in(cgroup, TRACEFS_FILE) == "denied"
    assert open_in(cgroup, TRACEFS_FILE) == "denied"
    assert open_in(cgroup, "/proc/kcore") == "ok"  # audited
    run = lockdownctl("metrics")
    assert run.code == 0, run.err
    m = {(s.name, tuple(sorted(s.labels.items()))): s.value
         for f in text_string_to_metric_families(run.out) for s in f.samples}
    status = lockdownctl("enforce", "status", "--json").json()["data"]
    for reason in ("tracefs", "kcore"):
        for verdict in ("denied", "audited", "excepted"):
            key = ("lockdownctl_decisions_total", (("reason", reason), ("verdict", verdict)))
            assert m[key] == status["counters"].get(reason, {}).get(verdict, 0), key
    assert m[("lockdownctl_decisions_total", (("reason", "tracefs"), ("verdict", "denied")))] == 2.0
    assert m[("lockdownctl_decisions_total", (("reason", "kcore"), ("verdict", "audited")))] == 1.0
    assert m[("lockdownctl_events_dropped_total", ())] == status["ring_buffer_drops"] == 0
    assert m[("lockdownctl_enforcer_loaded", ())] == 1.0 and m[("lockdownctl_enforcer_sealed", ())] == 0.0
    info = [labels for name, labels in m if name == "lockdownctl_policy_info"]
    assert len(info) == 1 and dict(info[0])["policy_id"] == data["policy_id"]
    assert m[("lockdownctl_known", (("concept", "decisions"),))] == 1.0
    nfd = lockdownctl("status", "--format", "nfd")
    assert "feature.node.kubernetes.io/lockdown.enforcer-loaded=true\n" in nfd.out
    assert "feature.node.kubernetes.io/lockdown.enforcer-sealed=false\n" in nfd.out
