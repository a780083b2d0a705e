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


def collected(kernel: str, tmp_path: Path) -> list[str]:
    env = {**os.environ, "LOCKDOWNCTL_IN_GUEST": "1", "LOCKDOWNCTL_GUEST_KERNEL": kernel,
           "LOCKDOWNCTL_GUEST_LEVEL": "none", "LOCKDOWNCTL_GUEST_RESULTS": str(tmp_path)}
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
    ordinary = [i for i in range(len(ids)) if i not in sealing and i not in raising]
    assert sealing and ordinary
    assert max(ordinary) < min(sealing), "an ordinary test runs after the seal"
    if raising:  # enable --now runs on one family only
        assert max(sealing) < min(raising), "the level is raised before the seal tests ran"
    unsealed = [i for i, n in enumerate(ids) if "::test_unsealed_route[" in n]
    assert unsealed and max(unsealed) < min(sealing)
