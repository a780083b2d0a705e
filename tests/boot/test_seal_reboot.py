"""`enforce apply --seal`: the policy outlives every process and unit of the project and ends at
reboot, as the kernel's own lockdown does. Without Secure Boot (level none), so that a refused
/dev/mem open is the enforcer's answer and not integrity mode's."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.boot


def test_seal_survives_kill_and_ends_at_reboot(boot_run) -> None:
    run = boot_run("seal.sh", secure_boot=False)
    run.check(boots=2)
    first, second = run.boot(1), run.boot(2)
    assert first.level == second.level == "none"  # the kernel's own lockdown never changed

    assert first.record("devmem_before").rc == 0, first.record("devmem_before").err
    apply = first.record("apply")
    assert apply.rc == 0, apply.out + apply.err
    assert apply.json()["data"]["seal"]
    sealed = first.record("devmem_sealed")
    assert sealed.rc == 1 and "Operation not permitted" in sealed.err, sealed.err

    # The project was running (a unit and a watcher), then nothing of it was.
    assert "lockdownctl-events.service" in first.record("units").out
    running = first.record("running").out
    assert "enforce events --follow" in running and "watch --follow" in running, running
    assert first.record("stop").rc == 0
    assert first.record("left").out.strip() == ""
    remove = first.record("remove")
    assert remove.rc != 0 and "sealed until reboot" in remove.out + remove.err
    after = first.record("devmem_after_kill")
    assert after.rc == 1 and "Operation not permitted" in after.err, after.err
    state = first.record("status_after_kill").json()["data"]
    assert state["sealed"] is True
    assert state["counters"]["dev_mem"]["denied"] >= 2  # the enforcer's own count of the refusals above

    # The seal ends at reboot.
    assert second.record("devmem_after_reboot").rc == 0, second.record("devmem_after_reboot").err
    assert second.record("enforce_status").json()["data"]["loaded"] is False
