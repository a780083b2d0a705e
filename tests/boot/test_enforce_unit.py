"""The boot-time unit (packaging/lockdownctl-enforce.service) in a real boot: the policy in
/etc/lockdownctl/policy.yaml is applied before sysinit.target and systemd-modules-load.service,
and a service started by multi-user.target is denied by it. Without Secure Boot (level none),
so a refused /dev/mem read is the enforcer's answer and not integrity mode's."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.boot


def props(text: str) -> dict[str, str]:
    """`systemctl show -p A,B UNIT` output as a dict."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_policy_applied_before_sysinit_and_denies_a_service(boot_run) -> None:
    run = boot_run("enforce_unit.sh", secure_boot=False)
    run.check(boots=2)
    first, second = run.boot(1), run.boot(2)
    assert first.level == second.level == "none"  # the kernel's own lockdown never changed
    assert second.record("lockdown").out.strip() == "[none] integrity confidentiality"

    # Before the unit: the probe reads /dev/mem (nothing else refuses it on this kernel).
    assert first.record("devmem_before").rc == 0, first.record("devmem_before").err
    assert first.record("probe_boot1_result").out.startswith("read 1 byte"), first.record("probe_boot1_result").out
    verify = first.record("verify")
    assert verify.rc == 0 and "lockdownctl-enforce" not in verify.err and "devmem-probe" not in verify.err, \
        first.record("execstart").out + verify.out + verify.err
    assert first.record("enable").rc == 0, first.record("enable").err
    # The package enabled the unit and points it at its own command.
    assert first.record("preset").out.strip() == "enabled", first.record("preset").out
    execstart = props(first.record("execstart").out)
    assert execstart["FragmentPath"] in ("/lib/systemd/system/lockdownctl-enforce.service",
                                         "/usr/lib/systemd/system/lockdownctl-enforce.service"), execstart
    assert "path=/usr/bin/lockdownctl " in execstart["ExecStart"], execstart

    # After the reboot: the enforcer is loaded, from the policy file, by the unit.
    status = second.record("enforce_status")
    assert status.rc == 0, status.out + status.err
    data = status.json()["data"]
    assert data["loaded"] is True and data["mode"] == "enforce", data
    assert data["policy_file"] == "/etc/lockdownctl/policy.yaml" and data["profile"] == "integrity", data
    assert data["verdicts"]["dev_mem"] == "deny", data["verdicts"]
    pins = second.record("pins")
    assert pins.rc == 0 and pins.out.strip(), pins.err
    assert " bpf " in second.record("bpffs").out, second.record("bpffs").out

    unit = props(second.record("unit").out)
    assert (unit["ActiveState"], unit["SubState"], unit["Result"], unit["ExecMainStatus"]) == \
        ("active", "exited", "success", "0"), unit | {"journal": second.record("unit_journal").out}

    # systemd's own clock: the unit was active (the policy attached) before sysinit.target was
    # reached and before systemd-modules-load.service started.
    sysinit = props(second.record("sysinit").out)
    modules = props(second.record("modules_load").out)
    evidence = (f"unit {unit}\nsysinit {sysinit}\nmodules-load {modules}\n"
                f"journal:\n{second.record('order_journal').out}")
    enforced_at = int(unit["ActiveEnterTimestampMonotonic"])
    assert 0 < enforced_at < int(sysinit["ActiveEnterTimestampMonotonic"]), evidence
    assert modules["ConditionResult"] == "yes", evidence  # it ran, so the order below means something
    assert enforced_at <= int(modules["InactiveExitTimestampMonotonic"]), evidence
    # The journal says the same: the unit finished before "Reached target ... System Initialization".
    order = second.record("order_journal").out.splitlines()
    finished = [i for i, line in enumerate(order)
                if re.search(r"Finished (lockdownctl-enforce\.service|Apply the lockdownctl)", line)]
    reached = [i for i, line in enumerate(order)
               if re.search(r"Reached target (sysinit\.target|System Initialization)", line)]
    assert finished and reached and finished[0] < reached[0], evidence
    # ... and lockdownctl's own "loaded and attached" line, logged by the unit, came before it.
    attached = re.search(r"^\[\s*([\d.]+)\] .*Enforcer:\s+loaded and attached", second.record("unit_journal").out, re.M)
    assert attached, second.record("unit_journal").out
    assert float(attached.group(1)) * 1e6 < int(sysinit["ActiveEnterTimestampMonotonic"]), evidence

    # The multi-user service started after the policy and its read was refused by it.
    probe = props(second.record("probe_unit").out)
    assert probe["ActiveState"] == "active" and probe["Result"] == "success", probe
    assert int(probe["InactiveExitTimestampMonotonic"]) > enforced_at, (probe, unit)
    outcome = second.record("probe_result").out
    assert outcome.startswith("Operation not permitted (errno 1)"), outcome
    probe_pid = int(re.search(r"^pid (\d+)$", outcome, re.M).group(1))  # type: ignore[union-attr]
    assert data["counters"]["dev_mem"]["denied"] >= 1, data["counters"]
    events = second.record("events")
    assert events.rc == 0, events.err
    mine = [e for e in events.json()["data"]["events"] if e.get("pid") == probe_pid]
    assert mine, events.out
    assert mine[0]["reason"] == "dev_mem" and mine[0]["verdict"] == "denied", mine
    assert mine[0]["comm"] == "devmem-probe", mine  # the service's own process, named by the kernel
    # The kernel's clock of the denial (bpf_ktime_get_ns, CLOCK_MONOTONIC like systemd's) lies
    # inside the probe unit's activation.
    denied_at = mine[0]["time"] * 1e6
    assert int(probe["InactiveExitTimestampMonotonic"]) <= denied_at <= int(probe["ActiveEnterTimestampMonotonic"]), \
        (mine, probe)
