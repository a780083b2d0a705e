"""One-way guest tests run last in their boot, whatever their files are called.

Collects tests/vm as a guest of each kernel at level none would (the
guest side of tests/vm/conftest.py, no VM needed) and checks the order in
which pytest would run them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.vm.runner import KERNELS

REPO = Path(__file__).resolve().parents[2]


def collected(kernel: str, tmp_path: Path, level: str = "none") -> list[str]:
    env = {**os.environ, "LOCKDOWNCTL_IN_GUEST": "1", "LOCKDOWNCTL_GUEST_KERNEL": kernel,
           "LOCKDOWNCTL_GUEST_LEVEL": level, "LOCKDOWNCTL_GUEST_RESULTS": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q",
                          "tests/vm"], cwd=REPO, env=env, capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if "::" in line]


@pytest.mark.parametrize("kernel", list(KERNELS))
def test_one_way_steps_run_last_in_step_order(kernel: str, tmp_path: Path) -> None:
    ids = collected(kernel, tmp_path)
    sealing = [i for i, n in enumerate(ids) if n.startswith("tests/vm/test_seal.py::test_seal")
               or "::test_the_seal_protects_it" in n or "::test_sealed_refusals" in n
               or "::test_tamper_counters_equal_events" in n
               or "::test_no_path_exception_survives_a_signed_update" in n]
    raising = [i for i, n in enumerate(ids) if "test_enable_now.py::" in n]
    # the Ansible module's run-time level (step 4) on 6.1; its policy test (6.12) is ordinary
    module_raise = [i for i, n in enumerate(ids) if "test_ansible_guest.py::test_module_raises_the_running_level[" in n]
    one_way = sealing + raising + module_raise
    ordinary = [i for i in range(len(ids)) if i not in one_way]
    assert sealing and ordinary and bool(module_raise) == (kernel == "6.1")
    assert max(ordinary) < min(sealing), "an ordinary test runs after the seal"
    if raising:  # enable --now runs on one family only
        assert max(sealing) < min(raising), "the level is raised before the seal tests ran"
    if module_raise:
        assert max(sealing + raising) < min(module_raise), "the module raises the level before a lower step ran"
    assert any("test_ansible_guest.py::test_policy_apply_remove[" in ids[i] for i in ordinary) == (kernel == "6.12")
    unsealed = [i for i, n in enumerate(ids) if "::test_unsealed_route[" in n]
    assert unsealed and max(unsealed) < min(sealing)


@pytest.mark.parametrize("kernel", list(KERNELS))
def test_signed_seal_is_made_before_the_tamper_suite_runs_against_it(kernel: str, tmp_path: Path) -> None:
    """At integrity test_signed.py (step 1) makes the boot's signed seal and runs against it;
    then test_seal.py's sealed suite (step 2) runs against that same seal, last."""
    ids = collected(kernel, tmp_path, "integrity")
    signed = [i for i, n in enumerate(ids) if n.startswith("tests/vm/test_signed.py::")]
    tamper = [i for i, n in enumerate(ids) if n.startswith("tests/vm/test_seal.py::")]
    assert signed and tamper and not [n for n in ids if "::test_unsealed_route[" in n or "::test_seal_applies[" in n]
    assert max(signed) < min(tamper) and max(tamper) == len(ids) - 1
    assert {n.split("[")[0].rsplit("::", 1)[1] for n in (ids[i] for i in tamper)} == {
        "test_sealed_route", "test_sealed_refusals_are_explained", "test_the_seal_protects_itself",
        "test_the_seal_protects_its_tamper_record", "test_tamper_counters_equal_events"}


@pytest.mark.parametrize("kernel", list(KERNELS))
def test_a_confidentiality_boot_has_one_seal_made_last(kernel: str, tmp_path: Path) -> None:
    """The one-way kill of apply --seal (test_apply_crash.py) seals the confidentiality boots
    that nothing else seals, after every other test; 6.12's is sealed by the Ansible module."""
    ids = collected(kernel, tmp_path, "confidentiality")
    crash = [i for i, n in enumerate(ids) if "::test_seal_killed_after_the_old_one_went_is_finished_by_rerunning[" in n]
    module = [i for i, n in enumerate(ids) if "::test_policy_sealed_through_the_module[" in n]
    assert len(crash) + len(module) == 1, ids
    assert (crash or module) == [len(ids) - 1], ids


PLAN_PLUGIN = """
def pytest_collection_finish(session):
    from tests.vm.conftest import guest_node_ids
    from tests.vm.runner import KERNELS, LEVELS, Target
    for kernel in KERNELS:
        for level in LEVELS:
            for node_id in guest_node_ids(session.items, Target(kernel, level)):
                print("SENT", node_id)
"""


# Makes one guest test opt-in the way such tests are written (a skipif decided on the
# host), before tests/vm/conftest.py (trylast) sorts the items: none is opt-in today.
OPT_IN_PLUGIN = """
import os
import pytest

def pytest_collection_modifyitems(items):
    for it in items:
        if "::test_apply_proves_the_program_runs[" in it.nodeid:
            it.add_marker(pytest.mark.skipif(os.environ.get("LOCKDOWNCTL_IN_GUEST") != "1"
                                             and os.environ.get("LDCTL_OPT_IN") != "1", reason="opt-in"))
"""


def test_opt_in_guest_tests_are_skipped_on_the_host_and_never_sent(tmp_path: Path) -> None:
    """Without their switches opt-in guest tests are skipped by the host with their own
    reason and are not among the node ids a boot runs: in the guest the condition reads
    otherwise, and such a test would run there (an opt-in kill sweep once sealed a guest
    under later tests that way). The ordinary tests of the same files are still sent, and
    so are the kill sweeps of enforce apply, which are no longer opt-in."""
    (tmp_path / "ldctl_plan.py").write_text(PLAN_PLUGIN)
    (tmp_path / "ldctl_opt_in.py").write_text(OPT_IN_PLUGIN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKDOWNCTL_")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(REPO)])
    files = ["tests/vm/test_apply_crash.py", "tests/vm/test_apply_proof.py"]
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "ldctl_plan", "-p", "ldctl_opt_in",
               "--collect-only", "-q", "-rs", *files]
    out = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=True).stdout
    sent = [line.split()[1] for line in out.splitlines() if line.startswith("SENT ")]
    assert [n for n in sent if "test_apply_proof.py::" in n], out
    assert not [n for n in sent if "::test_apply_proves_the_program_runs[" in n], out
    crash = [n for n in sent if "test_apply_crash.py::" in n]
    assert len([n for n in crash if n.endswith("-integrity]")]) == 3 * len(KERNELS), out  # three sweeps per family
    env["LDCTL_OPT_IN"] = "1"
    out = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=True).stdout
    assert [line for line in out.splitlines() if line.startswith("SENT ")
            and "::test_apply_proves_the_program_runs[" in line], out


ALLOWANCE_PLUGIN = """
def pytest_collection_finish(session):
    from tests.vm.conftest import allowance, guest_node_ids
    from tests.vm.runner import KERNELS, Target
    for kernel in KERNELS:
        target = Target(kernel, "none")
        print("ALLOW", target.name, len(guest_node_ids(session.items, target)), allowance(session.items, target))
"""


def test_slow_guest_tests_bring_their_own_share_of_the_boot_timeout(tmp_path: Path) -> None:
    """A boot's hang guard is 20 s per guest test, unless a test says it takes longer
    (guest(seconds=N)): the Ansible tests run ansible-playbook, minutes under TCG, and
    20 s each would leave a full level-none boot short (an earlier attempt hit its 1800 s);
    the denial floods take up to a minute each."""
    (tmp_path / "ldctl_allow.py").write_text(ALLOWANCE_PLUGIN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKDOWNCTL_")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(REPO)])
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "ldctl_allow",
                          "--collect-only", "-q", "tests/vm"], cwd=REPO, env=env, capture_output=True, text=True,
                         check=True).stdout
    allow = {f[1]: (int(f[2]), float(f[3])) for f in (line.split() for line in out.splitlines())
             if f and f[0] == "ALLOW"}
    assert set(allow) == {f"{k}-none" for k in KERNELS}, out
    for name, (count, seconds) in allow.items():
        # test_ansible_guest.py's own figures, and test_flood.py's two 1,000,000-denial floods
        slow = [*{"6.1-none": [1500], "6.12-none": [900]}.get(name, []), 300, 300]
        assert seconds == 20 * (count - len(slow)) + sum(slow), name
