"""The Ansible collection on this machine's kernel (root): read-only.

``lockdownctl_info`` with ``enforcer`` and ``check`` runs in check mode
against the real host and must say what ``lockdownctl status --json`` and
``enforce status --json`` say; ``policy_state: absent`` (check mode) decides
from the same ``enforce status``. The ``lockdownctl`` module's policy step runs
only where the enforcer cannot load (``enforce status``: ``can_load`` false,
as on this host, whose kernel refuses LSM programs): the tool refuses before
loading anything, and the task must fail with its exit code 3 and message.
The boot level is never touched here (tests/unit/test_ansible.py covers it on
scratch roots; tests/boot reboots real images).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import REPO, lockdownctl
from tests.host.conftest import require, require_root
from tests.unit.test_ansible import executable, run_playbook, without_timings


def test_info_on_the_live_host_and_a_policy_the_kernel_refuses(tmp_path: Path) -> None:
    require_root()
    exe = executable()
    live = lockdownctl("enforce", "status", "--json").json()["data"]
    can_load = bool(live.get("can_load") or live.get("loaded"))
    tasks: list[dict[str, Any]] = [
        {"name": "info", "lockdownctl.lockdown.lockdownctl_info": {"executable": exe, "enforcer": True, "check": True},
         "register": "info", "check_mode": True},
        {"name": "absent", "lockdownctl.lockdown.lockdownctl": {"executable": exe, "policy_state": "absent"},
         "register": "absent", "check_mode": True, "diff": True},
    ]
    if not can_load:  # never load an enforcer on this machine: only where the tool refuses before loading
        tasks.append({"name": "policy", "register": "policy", "ignore_errors": True,
                      "lockdownctl.lockdown.lockdownctl": {"executable": exe,
                                                          "policy": str(REPO / "examples/integrity.yaml")}})
    results, text = run_playbook(tmp_path, tasks, [t["register"] for t in tasks])
    info = results["info"]
    status = lockdownctl("status", "--json")
    assert info["status"] == status.json()["data"] and info["status_code"] == status.code
    assert info["enforcer"] == lockdownctl("enforce", "status", "--json").json()["data"]
    check = lockdownctl("check", "--json")
    assert without_timings(info["check"]) == without_timings(check.json()["data"])
    assert info["changed"] is False and not info.get("failed")
    absent = results["absent"]  # decided from enforce status: nothing loaded is nothing to remove
    assert absent["enforcer"]["live"] == info["enforcer"]
    assert absent["changed"] is bool(live.get("loaded"))
    assert absent["enforcer"]["action"] == ("planned" if live.get("loaded") else "absent")
    require(not can_load, "the enforcer can load here: the refusal case is not run on this machine")
    policy = results["policy"]
    ref = lockdownctl("enforce", "apply", str(REPO / "examples/integrity.yaml"), "--json")
    assert ref.code == 3 and policy["failed"] is True and policy["rc"] == 3
    assert policy["msg"] == "lockdownctl enforce apply exited 3: " + ref.json()["errors"][0]["message"]
    assert "Traceback" not in text
