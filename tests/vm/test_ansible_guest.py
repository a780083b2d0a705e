"""The Ansible module's run-time parts in lockdown=none guests, with real ansible-playbook.

tests/unit/test_ansible.py runs the modules against fixture roots and only
plans what touches the running kernel; here they change it. Each playbook
is the guest venv's ``ansible-playbook`` (connection local, the guest's
lockdownctl) and registers every task's result; the assertions compare them
with the kernel's and the tool's own view (/sys/kernel/security/lockdown,
``enforce status``, a real EPERM).

ansible-core is slow under TCG: measured in a 6.12 guest (``python -m
tests.vm.runner --kernel 6.12 --level none --cmd ...``, busy host),
``ansible-playbook --version`` 22 s, a playbook of one ``debug`` task 45 s,
each task of our modules about 78 s more (the module and its module_utils
are compiled from the AnsiballZ zip every time). So the tests are few, each
one playbook of five tasks or fewer, and the results come back in a
``debug`` line instead of a copied file.

- ``test_module_raises_the_running_level`` (6.1 only, ``one_way(step=4)``:
  after test_enable_now.py, step 3): ``level: confidentiality, now: true`` in
  check mode (planned, nothing written), then for real (changed, written),
  again (unchanged), ``integrity`` (the tool's refusal to lower, word for
  word) and ``none`` (the module's refusal: the tool writes no ``none``).
  Where test_enable_now.py already raised the kernel to confidentiality
  (6.12 in a full boot), the same playbook proves the unchanged and refused
  halves only; so it runs on 6.1, where enable_now does not run and the
  raise is real. One family: what differs between kernels is the tool's
  ``enable --now``, which test_enable_now.py covers; a playbook costs 400 to
  850 s of a boot under TCG.
- ``test_policy_apply_remove`` (6.12 only; ordinary): a scoped policy
  applied (changed, the real EPERM), again (unchanged), removed (changed),
  again (unchanged).
- ``test_policy_sealed_through_the_module`` (6.12 at confidentiality,
  ``one_way(step=4)``): ``seal: true`` sealed, again unchanged, another
  policy and ``policy_state: absent`` refused by the tool, the seal kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import lockdownctl_inproc as lockdownctl
from tests.unit.test_ansible import executable, run_playbook
from tests.vm.test_enforcer import cgroup, open_in  # noqa: F401 (cgroup is a fixture)

LOCKDOWN = Path("/sys/kernel/security/lockdown")
PLAYBOOK_TIMEOUT = 1500  # seconds: five module tasks at about 80 s each under TCG, on a busy host
# /dev/port is dev_mem (LOCKDOWN_DEV_MEM, "/dev/mem,kmem,port"): the kernel asks when it is opened
DEV = "/dev/port"

Task = tuple[str, dict[str, Any], dict[str, Any]]


@pytest.fixture
def book(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run tasks as one playbook in a directory of this test; ansible's remote temp there too."""
    monkeypatch.setenv("ANSIBLE_REMOTE_TEMP", str(tmp_path / "remote-tmp"))
    exe = executable()
    count = iter(range(100))

    def run(*tasks: Task) -> dict[str, Any]:
        plays = []
        for name, module, extra in tasks:
            ((mod, params),) = module.items()
            plays.append({"name": name, f"lockdownctl.lockdown.{mod}": {"executable": exe, **params},
                          "register": name, "ignore_errors": True, **extra})
        work = tmp_path / f"book{next(count)}"
        work.mkdir()
        results, _text = run_playbook(work, plays, [t[0] for t in tasks], timeout=PLAYBOOK_TIMEOUT)
        return results

    return run


def ld(**params: Any) -> dict[str, Any]:
    return {"lockdownctl": params}


def level() -> str:
    run = lockdownctl("status", "--json")
    found: str = run.json()["data"]["level"]
    return found


@pytest.mark.guest(kernel="6.1", level="none", seconds=1500)  # 396 s measured on 6.1 under TCG, busy host
@pytest.mark.one_way(step=4, why="raises the kernel's lockdown level until reboot")
def test_module_raises_the_running_level(book: Any) -> None:
    start = level()
    assert start in ("none", "confidentiality"), start  # confidentiality: test_enable_now.py ran first
    # force: this boot's earlier tests may have tainted the kernel (an unsigned module), which the
    # readiness check rightly reports; not what this tests (as in test_enable_now.py)
    top = ld(level="confidentiality", now=True, force=True)
    r = book(("plan", top, {"check_mode": True, "diff": True}), ("up", top, {"diff": True}), ("again", top, {}),
             ("lower", ld(level="integrity", now=True, force=True), {}), ("to_none", ld(level="none", now=True), {}))
    final = LOCKDOWN.read_text().strip()
    assert final == "none integrity [confidentiality]"
    if start == "none":
        plan, up = r["plan"], r["up"]
        assert plan["changed"] is True and plan["now"]["written"] is False, plan
        assert plan["diff"] == up["diff"] == [{"before_header": str(LOCKDOWN), "after_header": str(LOCKDOWN),
                                               "before": {"level": "none"}, "after": {"level": "confidentiality"}}]
        assert up["now"]["from"] == "none", up  # check mode wrote nothing: the real run found none
        assert up["changed"] is True and up["now"]["written"] is True, up
        assert up["running_level"] == "none" and up["reboot_required"] is False and "boot" not in up
        assert up["now"]["after"] == final  # what the tool read back is what the kernel says now
    else:  # test_enable_now.py raised it in this boot: both are the wanted state already
        for name in ("plan", "up"):
            assert r[name]["changed"] is False and not r[name].get("failed"), r[name]
    again = r["again"]
    assert again["changed"] is False and not again.get("failed") and "diff" not in again, again
    assert again["running_level"] == "confidentiality"
    # lowering: the module's failure is the tool's own refusal, word for word
    ref = lockdownctl("enable", "integrity", "--now", "--force", "--dry-run", "--json")
    refused = ref.json()["data"]["now"]["refused"]
    assert ref.code == 1 and "would lower it from confidentiality" in refused
    assert r["lower"]["failed"] is True and r["lower"]["rc"] == 1 and r["lower"]["changed"] is False
    assert r["lower"]["msg"] == f"lockdownctl enable exited 1: {' '.join(refused.split())}"
    none = r["to_none"]
    assert none["failed"] is True and none["rc"] == 1 and none["changed"] is False
    assert none["msg"].startswith("lockdownctl status: the running kernel is at confidentiality: lockdown "
                                  "levels only go up until reboot, so none cannot be set now")
    assert LOCKDOWN.read_text().strip() == final  # the refusals wrote nothing


def enforce_status() -> dict[str, Any]:
    run = lockdownctl("enforce", "status", "--json")
    assert run.code == 0, run.err
    data: dict[str, Any] = run.json()["data"]
    return data


@pytest.mark.guest(kernel="6.12", level="none", seconds=900)  # 245 s measured
def test_policy_apply_remove(book: Any, cgroup: str, tmp_path: Path) -> None:  # noqa: F811
    assert not enforce_status()["loaded"], "an enforcer is loaded: an earlier test of this boot left it"
    pol = tmp_path / "policy.yaml"
    pol.write_text(f"version: 1\nprofile: none\nscope:\n  cgroup: {cgroup}\nreasons:\n  dev_mem: deny\n")
    planned = lockdownctl("enforce", "apply", str(pol), "--dry-run", "--json").json()["data"]["policy_id"]
    assert open_in(cgroup, DEV) == "ok"  # level none: the kernel allows it before the policy
    try:
        r = book(("apply", ld(policy=str(pol)), {"diff": True}), ("again", ld(policy=str(pol)), {}))
        assert r["apply"]["changed"] is True and r["apply"]["enforcer"]["action"] == "loaded", r["apply"]
        assert r["apply"]["enforcer"]["policy_id"] == planned
        assert r["apply"]["diff"][0]["after"]["policy_id"] == planned
        assert r["again"]["changed"] is False and r["again"]["enforcer"]["action"] == "unchanged", r["again"]
        live = enforce_status()
        assert live["loaded"] and live["policy_id"] == planned and live["sealed"] is False
        assert open_in(cgroup, DEV) == "denied"  # the denial is real, inside the policy's cgroup only
        assert open_in(None, DEV) == "ok"

        r = book(("absent", ld(policy_state="absent"), {"diff": True}), ("absent_again", ld(policy_state="absent"), {}))
        assert r["absent"]["changed"] is True and r["absent"]["enforcer"]["action"] == "removed", r["absent"]
        assert r["absent"]["enforcer"]["live"]["policy_id"] == planned
        assert r["absent_again"]["changed"] is False and r["absent_again"]["enforcer"]["action"] == "absent"
        assert enforce_status()["loaded"] is False
        assert open_in(cgroup, DEV) == "ok"  # removed for real
    finally:
        live = enforce_status()
        if live["loaded"] and not live["sealed"]:
            lockdownctl("enforce", "remove")


@pytest.mark.guest(kernel="6.12", level="confidentiality", seconds=900)
@pytest.mark.one_way(step=4, why="seals the enforcer until reboot")
def test_policy_sealed_through_the_module(book: Any, tmp_path: Path) -> None:
    """``seal: true``: sealed (changed, the diff says sealed), again (unchanged), another policy
    (the tool's refusal), ``policy_state: absent`` (the tool's refusal): the seal outlives both.
    At confidentiality: the kernel denies every reason itself, so apply needs no run-count proof
    and the seal is the only thing this boot changes for good."""
    assert not enforce_status()["loaded"], "an enforcer is loaded: an earlier test of this boot left it"
    pol, other = tmp_path / "policy.yaml", tmp_path / "other.yaml"
    pol.write_text("version: 1\nprofile: confidentiality\n")
    other.write_text("version: 1\nprofile: integrity\n")
    planned = lockdownctl("enforce", "apply", str(pol), "--seal", "--dry-run", "--json").json()["data"]["policy_id"]
    r = book(("seal", ld(policy=str(pol), seal=True), {"diff": True}), ("again", ld(policy=str(pol), seal=True), {}),
             ("other", ld(policy=str(other)), {}), ("absent", ld(policy_state="absent"), {}))
    seal = r["seal"]
    assert seal["changed"] is True and seal["enforcer"]["action"] == "loaded", seal
    assert seal["diff"][0]["after"]["sealed"] is True and seal["diff"][0]["after"]["policy_id"] == planned
    assert r["again"]["changed"] is False and not r["again"].get("failed"), r["again"]
    for name in ("other", "absent"):  # the tool's own refusals, nothing changed
        assert r[name]["failed"] is True and r[name]["changed"] is False and r[name]["rc"] == 1, r[name]
        assert "sealed until reboot" in r[name]["msg"], r[name]["msg"]
    live = enforce_status()
    assert live["loaded"] and live["sealed"] is True and live["policy_id"] == planned
