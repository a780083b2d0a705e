"""Signed policies (#19) in a real boot: the firmware-anchored trust anchors (the tier's MOK in
.secondary_trusted_keys through .machine, a db key in .platform) and the signed policy re-applied
at boot from /etc/lockdownctl by lockdownctl-enforce.service, verified again, with its version as
the floor. guest/signed_boot.sh says what each boot does; /proc/kcore (a confidentiality reason,
left to the BPF LSM at integrity) tells which policy the enforcer holds."""

from __future__ import annotations

import re
from typing import Any

import pytest

from .machine import BootResult, Record

pytestmark = pytest.mark.boot

MOK_CN = "lockdownctl boot-tier MOK"
DB_CN = "lockdownctl boot-tier db"


def props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def keyrings(rec: Record) -> dict[str, str]:
    """`keyctl list` of each system keyring, by name (guest keyrings())."""
    parts = (part.split("\n", 1) for part in rec.out.split("== ")[1:])
    return {head.split()[0]: body for head, body in parts}


def data(rec: Record) -> Any:
    return rec.json()["data"]


def kcore(boot: BootResult, name: str) -> str:
    rec = boot.record(name)
    return "opened" if rec.rc == 0 else rec.err.strip()


DENIED = "Operation not permitted (errno 1)"


def refused(rec: Record, errno_name: str) -> None:
    assert rec.rc == 1 and f"({errno_name})" in rec.out + rec.err, rec.out + rec.err


def gate_events(boot: BootResult, name: str) -> list[dict[str, Any]]:
    """The gate's events `enforce events` read (and consumed from its ring) at that point."""
    rec = boot.record(name)
    assert rec.rc == 0, rec.err
    return [e for e in data(rec)["events"] if e.get("source") == "gate"]


def test_signed_policy_anchored_in_firmware_and_reapplied_at_boot(boot_run) -> None:
    run = boot_run("signed_boot.sh", secure_boot=True, mok=True)
    run.check(boots=3)
    first, second, third = run.boot(1), run.boot(2), run.boot(3)
    assert first.level == second.level == third.level == "integrity"  # Secure Boot's own level
    for n in ("v1", "v2", "v3", "stranger", "db4", "db5"):
        assert first.record(f"sign_{n}").rc == 0, first.record(f"sign_{n}").err

    # The kernel's view: the MOK in .machine, linked into .secondary_trusted_keys; the db key in .platform.
    rings = keyrings(first.record("keyrings"))
    assert MOK_CN in rings[".machine"] and "keyring: .machine" in rings[".secondary_trusted_keys"], rings
    assert DB_CN in rings[".platform"] and MOK_CN not in rings[".platform"], rings

    # --- boot 1: sealed, pinned to the MOK in .secondary_trusted_keys -----------------------
    assert kcore(first, "kcore_before") == "opened"
    apply = first.record("apply")
    assert apply.rc == 0, apply.out + apply.err
    applied = data(apply)
    signed = applied["signed"]
    assert signed["trust"] == "secondary" and signed["secure_boot"] == "enabled", signed
    # The key lockdownctl found in the kernel's keyring is the one keyctl lists there.
    assert signed["kernel_key"].startswith(MOK_CN + ": ") and signed["kernel_key"] in rings[".machine"], signed
    assert applied["bundle"]["state"] == "absent"  # no update yet
    status = data(first.record("status_sealed"))
    assert status["sealed"] and status["signed"]["version"] == 0
    assert status["signed"]["anchor_strength"].startswith("firmware-anchored")
    assert kcore(first, "kcore_sealed") == "opened"  # integrity.yaml leaves kcore open

    refused(first.record("update_stranger"), "EKEYREJECTED")  # signed by a key nobody pinned
    assert kcore(first, "kcore_after_stranger") == "opened"
    v2 = first.record("update_v2")
    assert v2.rc == 0, v2.out + v2.err
    assert data(v2)["active_version"] == 2
    assert data(v2)["persisted"] == "/etc/lockdownctl/policy.bundle"
    assert first.record("saved_v2").rc == 0  # the accepted bytes, kept for the next boot
    assert kcore(first, "kcore_v2") == DENIED  # the kernel now answers with v2's verdict
    events = gate_events(first, "events")
    assert [(e["kind"], e["version"], e["errno"]) for e in events] == \
        [("update-refused", 2, "EKEYREJECTED"), ("update-accepted", 2, None)], events
    assert first.record("verify").rc == 0, first.record("verify").err
    assert "/etc/systemd/system/lockdownctl-enforce.service.d/signed.conf" in first.record("execstart").out

    # --- boot 2: the unit re-applied v2 from disk before sysinit.target ---------------------
    unit = props(second.record("unit").out)
    journal = second.record("unit_journal").out
    assert (unit["ActiveState"], unit["Result"], unit["ExecMainStatus"]) == ("active", "success", "0"), \
        (unit, journal)
    sysinit = int(props(second.record("sysinit").out)["ActiveEnterTimestampMonotonic"])
    assert 0 < int(unit["ActiveEnterTimestampMonotonic"]) < sysinit, (unit, sysinit)
    status = data(second.record("status_boot"))
    assert status["sealed"] and status["signed"]["version"] == 2, status
    assert status["verdicts"]["kcore"] == "deny", status["verdicts"]
    # The kernel verified it again: the gate's own acceptance, by the unit's process, before sysinit.
    boot_events = gate_events(second, "events_boot")
    assert [(e["kind"], e["version"], e["active_version"]) for e in boot_events] == \
        [("update-accepted", 2, 2)], boot_events
    assert boot_events[0]["comm"] == "lockdownctl" and boot_events[0]["time"] * 1e6 < sysinit, boot_events
    assert kcore(second, "kcore_boot") == DENIED
    refused(second.record("update_v1"), "ESTALE")  # older than the floor the boot set
    refused(second.record("update_v2"), "ESTALE")  # equal
    assert kcore(second, "kcore_after_rollback") == DENIED
    v3 = second.record("update_v3")
    assert v3.rc == 0 and data(v3)["active_version"] == 3, v3.out + v3.err
    assert kcore(second, "kcore_v3") == "opened"  # v3 is integrity.yaml again
    assert second.record("saved_v3").rc == 0
    assert [(e["kind"], e["version"], e["errno"]) for e in gate_events(second, "events")] == [
        ("update-refused", 1, "ESTALE"), ("update-refused", 2, "ESTALE"), ("update-accepted", 3, None)]
    tampered = second.record("verify_tampered")
    assert tampered.rc == 1 and "bad signature" in tampered.out + tampered.err, tampered.out + tampered.err

    # --- boot 3: a tampered bundle on disk is never applied; the unit fails loudly ----------
    unit = props(third.record("unit").out)
    journal = third.record("unit_journal").out
    assert (unit["ActiveState"], unit["Result"], unit["ExecMainStatus"]) == ("failed", "exit-code", "1"), \
        (unit, journal)
    assert re.search(r"signed bundle NOT applied: .*policy\.bundle: bad signature", journal), journal
    status = data(third.record("status_boot"))
    # The base policy is sealed in its place, pinned to the db key in .platform, floor 0.
    assert status["sealed"] and status["signed"]["version"] == 0 and status["signed"]["trust"] == "platform", status
    assert status["verdicts"]["kcore"] == "allow", status["verdicts"]
    assert gate_events(third, "events_boot") == []  # never handed to the kernel
    assert kcore(third, "kcore_boot") == "opened"
    # The MOK is not in .platform (keyctl says so): pinning it there is refused before anything loads.
    assert MOK_CN not in keyrings(third.record("keyrings"))[".platform"]
    pin = third.record("pin_mok_platform")
    assert pin.rc == 2 and "keyring holds no key" in pin.out + pin.err, pin.out + pin.err
    # The db key in .platform verifies, in the kernel: the policy changes.
    db5 = third.record("update_db5")
    assert db5.rc == 0 and data(db5)["active_version"] == 5, db5.out + db5.err
    assert kcore(third, "kcore_db5") == DENIED
    refused(third.record("update_mok"), "EKEYREJECTED")  # the MOK's bundle under the db pin
    assert [(e["kind"], e["version"]) for e in gate_events(third, "events")] == \
        [("update-accepted", 5), ("update-refused", 3)]


def test_trust_platform_without_secure_boot(boot_run) -> None:
    """Secure Boot off (Setup Mode), the same keys in the variable store. Debian's 6.1 still loads
    db into .platform ("integrity: Loading X.509 certificate: UEFI:db"), but not the MOK (.machine
    stays empty): --trust platform works and is weak (root can boot any kernel, and write db from
    the OS in Setup Mode), which apply and status say; --trust secondary with the MOK is refused."""
    run = boot_run("signed_nosb.sh", secure_boot=False, mok=True)
    run.check(boots=1)
    boot = run.boot(1)
    assert boot.level == "none"
    mokutil = boot.record("mokutil").out
    assert mokutil.startswith("SecureBoot disabled") and "Setup Mode" in mokutil, mokutil
    assert boot.record("sign_db1").rc == 0, boot.record("sign_db1").err
    # The kernel's view: the db key in .platform, no MOK anywhere.
    rings = keyrings(boot.record("keyrings"))
    assert DB_CN in rings[".platform"], rings
    assert MOK_CN not in rings[".machine"] + rings[".secondary_trusted_keys"], rings
    assert "UEFI:db" in boot.dmesg and "UEFI:MokListRT" not in boot.dmesg
    pin = boot.record("pin_mok_secondary")
    assert pin.rc == 2 and "keyring holds no key" in pin.out + pin.err, pin.out + pin.err

    apply = boot.record("apply")
    assert apply.rc == 0, apply.out + apply.err
    signed = data(apply)["signed"]
    assert signed["secure_boot"] == "disabled" and signed["kernel_key"] in rings[".platform"], signed
    warnings = " ".join(apply.json()["warnings"])
    assert "--trust platform: Secure Boot is disabled" in warnings, warnings
    status = data(boot.record("status"))
    assert status["signed"]["anchor_strength"].startswith("weak: a firmware keyring, but Secure Boot is disabled")
    db1 = boot.record("update_db1")
    assert db1.rc == 0 and data(db1)["active_version"] == 1, db1.out + db1.err  # verified against .platform
    assert boot.record("kcore_before").rc == 0 and boot.record("kcore_after").rc == 1
