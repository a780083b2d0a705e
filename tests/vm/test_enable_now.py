"""`lockdownctl enable LEVEL --now` in a lockdown=none guest: raises the level
through securityfs; asking for the same or a lower level is refused.

A securityfs write cannot be undone until reboot, and the guest's other tests
(which share the boot) expect level none: ``one_way(step=3)`` runs it after
them, and after the seal tests (steps 1 and 2), whatever the files are called.
"""

from __future__ import annotations

import pytest

from tests.conftest import lockdownctl_inproc as lockdownctl

from .runner import Target


@pytest.mark.guest(kernel="6.12", level="none")
@pytest.mark.one_way(step=3, why="raises the kernel's lockdown level until reboot")
def test_enable_now_raises_then_refuses_lowering(guest_target: Target) -> None:
    # Each command reads the full status first (slow under TCG): two runs only;
    # the refusal of the same level is covered in tests/unit/test_boot.py.
    # --force: this boot's earlier tests loaded an unsigned module (taint E),
    # which the readiness check rightly reports as breaking; not what this tests.
    up = lockdownctl("enable", "confidentiality", "--now", "--force", "--json")
    assert up.code == 0, up.err
    data = up.json()["data"]
    assert data["kernel"] == {"level": "none", "forced_by_kconfig": None, "lockdown_lsm_active": True}
    assert data["now"]["from"] == "none" and data["now"]["written"] is True
    assert data["now"]["after"] == "none integrity [confidentiality]"

    down = lockdownctl("enable", "integrity", "--now", "--force", "--json")
    assert down.code == 1, down.err
    refused = down.json()["data"]["now"]["refused"]
    assert "would lower it from confidentiality" in refused and "only go up until reboot" in refused
