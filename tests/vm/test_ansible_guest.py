"""The Ansible collection's run-time parts in lockdown=none guests, with real ansible-playbook.

tests/unit/test_ansible.py runs the modules against fixture roots and plans
the enforcer only; here they change a real kernel. Each playbook is the
guest venv's ``ansible-playbook`` (connection local, the guest's lockdownctl)
and registers every task's result; the assertions compare them with the
kernel's and the tool's own view (a real EPERM on /dev/port, ``enforce
events``, ``enforce status``, /sys/kernel/security/lockdown). ansible-core
starts slowly under TCG, so the tasks are batched: five playbooks in all.

- ``test_policy_apply_remove``: apply (changed), again (unchanged),
  ``lockdownctl_info`` shows it loaded, a denial is real, ``policy_state:
  absent`` removes it (changed), again (unchanged).
- ``test_module_seal`` (``one_way(step=2)``: after test_seal.py's and
  test_apply_crash.py's seals, step 1): ``seal: true``; a later ``absent``
  fails with the tool's sealed message and the policy stays. When the guest
  was sealed earlier in this boot (those tests ran), the module's apply is
  refused with the tool's message instead, and the earlier policy stays.
- ``test_module_raises_the_running_level`` (``one_way(step=3)``: after
  test_enable_now.py, step 2): ``level: integrity, now: true`` raises the
  kernel (changed), again (unchanged), lowering fails with the tool's
  refusal. Where test_enable_now.py already raised the kernel to
  confidentiality (6.12 in a full boot), the same playbook proves the
  unchanged and refused halves only.

Only 6.12 (Debian 13's kernel) and 7.3 (the newest hook ABI): the module adds
no kernel-specific code over the tool, whose own guest tests cover 6.1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import lockdownctl_inproc as lockdownctl
from tests.unit.test_ansible import executable, run_playbook
from tests.vm.test_enforcer import cgroup, open_in  # noqa: F401 (cgroup is a fixture)

LOCKDOWN = Path("/sys/kernel/security/lockdown")
KERNELS = ["6.12", "7.3"]
# /dev/port and /dev/mem are both dev_mem (LOCKDOWN_DEV_MEM, "/dev/mem,kmem,port")
DEV = "/dev/port"


def policy(tmp: Path, cgroup_path: str) -> str:
    path = tmp / "policy.yaml"
    path.write_text(f"version: 1\nprofile: none\nscope:\n  cgroup: {cgroup_path}\nreasons:\n  dev_mem: deny\n")
    return str(path)


def enforce_status() -> dict[str, Any]:
    run = lockdownctl("enforce", "status", "--json")
    assert run.code == 0, run.err
    data: dict[str, Any] = run.json()["data"]
    return data


@pytest.fixture
def book(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run tasks as a playbook in a directory of this test; ansible's remote temp there too."""
    monkeypatch.setenv("ANSIBLE_REMOTE_TEMP", str(tmp_path / "remote-tmp"))
    exe = executable()
    count = iter(range(100))

    def run(*tasks: tuple[str, dict[str, Any], dict[str, Any]]) -> dict[str, Any]:
        plays = []
        for name, module, extra in tasks:
            ((mod, params),) = module.items()
            if mod.startswith("lockdownctl"):  # ours: the guest venv's lockdownctl
                mod, params = f"lockdownctl.lockdown.{mod}", {"executable": exe, **params}
            plays.append({"name": name, mod: params, "register": name, "ignore_errors": True, **extra})
        work = tmp_path / f"book{next(count)}"
        work.mkdir()
        results, _text = run_playbook(work, plays, [t[0] for t in tasks])
        return results

    return run


def ld(**params: Any) -> dict[str, Any]:
    return {"lockdownctl": params}


def info() -> dict[str, Any]:
    return {"lockdownctl_info": {"enforcer": True}}


@pytest.mark.guest(kernel=KERNELS, level="none")
def test_policy_apply_remove(book: Any, cgroup: str, tmp_path: Path) -> None:  # noqa: F811
    if enforce_status()["loaded"]:
        pytest.fail("an enforcer is already loaded in this guest: an earlier test did not remove its own")
    pol = policy(tmp_path, cgroup)
    planned = lockdownctl("enforce", "apply", pol, "--dry-run", "--json").json()["data"]["policy_id"]
    assert open_in(cgroup, DEV) == "ok"  # level none: the kernel allows it before the policy
    try:
        r = book(("apply", ld(policy=pol), {"diff": True}), ("again", ld(policy=pol), {}), ("info", info(), {}))
        assert r["apply"]["changed"] is True and r["apply"]["enforcer"]["action"] == "loaded", r["apply"]
        assert r["apply"]["enforcer"]["policy_id"] == planned
        assert r["apply"]["diff"][0]["after"]["policy_id"] == planned
        assert r["again"]["changed"] is False and r["again"]["enforcer"]["action"] == "unchanged", r["again"]
        live = enforce_status()  # the tool's own view equals what lockdownctl_info returned
        assert r["info"]["enforcer"]["loaded"] is True and r["info"]["enforcer"]["policy_id"] == planned
        assert live["loaded"] and live["policy_id"] == planned and live["sealed"] is False
        # the denial is real: EPERM inside the policy's cgroup, for the policy's reason; allowed outside
        assert open_in(cgroup, DEV) == "denied"
        assert open_in(None, DEV) == "ok"
        denials = [e for e in lockdownctl("enforce", "events", "--json").json()["data"]["events"]
                   if e["reason"] == "dev_mem"]
        assert len(denials) == 1 and denials[0]["verdict"] == "denied" and denials[0]["cgroup"] == cgroup
        assert enforce_status()["counters"]["dev_mem"]["denied"] == 1

        r = book(("absent", ld(policy_state="absent"), {"diff": True}), ("absent_again", ld(policy_state="absent"), {}),
                 ("info_after", info(), {}))
        assert r["absent"]["changed"] is True and r["absent"]["enforcer"]["action"] == "removed", r["absent"]
        assert r["absent"]["enforcer"]["live"]["policy_id"] == planned
        assert r["absent_again"]["changed"] is False and r["absent_again"]["enforcer"]["action"] == "absent"
        assert r["info_after"]["enforcer"]["loaded"] is False and enforce_status()["loaded"] is False
        assert open_in(cgroup, DEV) == "ok"  # removed for real
    finally:
        if enforce_status()["loaded"] and not enforce_status()["sealed"]:
            lockdownctl("enforce", "remove")


@pytest.mark.guest(kernel=KERNELS, level="none")
@pytest.mark.one_way(step=2, why="seals the enforcer until reboot")
def test_module_seal(book: Any, cgroup: str, tmp_path: Path) -> None:  # noqa: F811
    before = enforce_status()
    pol = policy(tmp_path, cgroup)
    planned = lockdownctl("enforce", "apply", pol, "--dry-run", "--json").json()["data"]["policy_id"]
    r = book(("seal", ld(policy=pol, seal=True), {}), ("seal_again", ld(policy=pol, seal=True), {}),
             ("absent", ld(policy_state="absent"), {}), ("info", info(), {}))
    live = enforce_status()
    # the tool's own answer to the same removal: refused, the same code and message
    ref = lockdownctl("enforce", "remove", "--json")
    assert ref.code == 1 and ref.json()["errors"][0]["code"] == "sealed"
    message = ref.json()["errors"][0]["message"]
    assert "policy is sealed until reboot" in message
    assert r["absent"]["failed"] is True and r["absent"]["rc"] == 1, r["absent"]
    assert r["absent"]["msg"] == f"lockdownctl enforce remove exited 1: {message}"
    assert r["info"]["enforcer"]["sealed"] is True and r["info"]["enforcer"]["policy_id"] == live["policy_id"]
    if not before["sealed"]:  # this test seals
        assert r["seal"]["changed"] is True and r["seal"]["enforcer"]["action"] in ("loaded", "replaced"), r["seal"]
        assert r["seal_again"]["changed"] is False and r["seal_again"]["enforcer"]["action"] == "unchanged"
        assert live["sealed"] and live["policy_id"] == planned
        assert open_in(cgroup, DEV) == "denied"  # the policy stays, and still denies
    else:  # sealed earlier in this boot: the module's apply is the tool's refusal, the earlier policy stays
        for name in ("seal", "seal_again"):
            assert r[name]["failed"] is True and r[name]["rc"] == 1, r[name]
            assert r[name]["msg"] == f"lockdownctl enforce apply exited 1: {message}"
        assert live["policy_id"] == before["policy_id"] != planned
        assert open_in(cgroup, DEV) == "ok"  # our policy was never loaded


@pytest.mark.guest(kernel=KERNELS, level="none")
@pytest.mark.one_way(step=3, why="raises the kernel's lockdown level until reboot")
def test_module_raises_the_running_level(book: Any) -> None:
    start = lockdownctl("status", "--json").json()["data"]["level"]
    assert start in ("none", "confidentiality"), start  # confidentiality: test_enable_now.py ran first
    # force: this boot's earlier tests may have tainted the kernel (an unsigned module), which the
    # readiness check rightly reports; not what this tests (as in test_enable_now.py)
    read: tuple[str, dict[str, Any], dict[str, Any]] = (
        "read", {"ansible.builtin.command": {"cmd": f"cat {LOCKDOWN}"}}, {})
    r = book(("plan", ld(level="integrity", now=True, force=True), {"check_mode": True, "diff": True}),
             ("up", ld(level="integrity", now=True, force=True), {}), read,
             ("again", ld(level="integrity", now=True, force=True), {}),
             ("to_none", ld(level="none", now=True), {}),
             ("top", ld(level="confidentiality", now=True, force=True), {}),
             ("lower", ld(level="integrity", now=True, force=True), {}))
    final = LOCKDOWN.read_text().strip()
    assert final == "none integrity [confidentiality]"
    if start == "none":
        assert r["plan"]["changed"] is True and r["plan"]["now"]["written"] is False, r["plan"]
        assert r["plan"]["diff"][0]["before"] == {"level": "none"} and r["plan"]["diff"][0]["after"] == {
            "level": "integrity"}
        assert r["up"]["changed"] is True and r["up"]["now"]["written"] is True, r["up"]
        assert r["up"]["running_level"] == "none" and r["up"]["reboot_required"] is False
        assert r["read"]["stdout"] == r["up"]["now"]["after"] == "none [integrity] confidentiality"
        assert r["again"]["changed"] is False and not r["again"].get("failed"), r["again"]
        assert r["to_none"]["failed"] is True and r["to_none"]["rc"] == 1
        assert r["to_none"]["msg"].startswith("lockdownctl status: the running kernel is at integrity: lockdown "
                                              "levels only go up until reboot, so none cannot be set now")
        assert r["top"]["changed"] is True and r["top"]["now"]["after"] == final
    else:
        for name in ("plan", "up", "again"):
            assert r[name]["failed"] is True, r[name]
        assert r["top"]["changed"] is False and not r["top"].get("failed"), r["top"]
        assert r["to_none"]["failed"] is True and "at confidentiality" in r["to_none"]["msg"]
    # lowering: the module's failure is the tool's own refusal, word for word
    ref = lockdownctl("enable", "integrity", "--now", "--force", "--dry-run", "--json")
    refused = ref.json()["data"]["now"]["refused"]
    assert ref.code == 1 and "would lower it from confidentiality" in refused
    assert r["lower"]["failed"] is True and r["lower"]["rc"] == 1
    assert r["lower"]["msg"] == f"lockdownctl enable exited 1: {refused}"
    assert LOCKDOWN.read_text().strip() == final  # the refusals wrote nothing
