"""check's predictions come true: plant real triggers, predict in a
lockdown=none guest, then confirm in a lockdown=integrity guest of the same
kernel that each predicted operation fails and logs its lockdown line.

Triggers (planted in the guests' writable overlays of /lib and /etc):
- an unsigned copy of a small module of the running kernel under
  /lib/modules/$(uname -r)/extra/ (module_signature);
- tests/data/check/hardware/positive's port-probe.service, enabled, whose
  ExecStart reads /dev/port with dd (dev_mem);
- a logind drop-in that hibernates when the lid closes (hibernation); the
  guest's command line is the runner's, so this stands in for resume=.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DATA
from tests.conftest import lockdownctl_inproc as lockdownctl

from .runner import KERNELS, Target
from .test_fidelity import boot_capture, unsigned_module

UNIT = DATA / "check" / "hardware" / "positive" / "etc" / "systemd" / "system" / "port-probe.service"


def plant(tmp: Path) -> dict[str, str]:
    extra = Path("/lib/modules") / os.uname().release / "extra" / "ldctl-test"
    extra.mkdir(parents=True, exist_ok=True)
    built = unsigned_module(tmp)
    assert built is not None, "no small module to copy in this kernel"
    module = extra / Path(built).name
    shutil.copyfile(built, module)
    unit = Path("/etc/systemd/system/port-probe.service")
    shutil.copyfile(UNIT, unit)
    wants = Path("/etc/systemd/system/multi-user.target.wants")
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / unit.name
    if not link.exists():
        link.symlink_to(unit)
    logind = Path("/etc/systemd/logind.conf.d/90-ldctl-test.conf")
    logind.parent.mkdir(parents=True, exist_ok=True)
    logind.write_text("[Login]\nHandleLidSwitch=hibernate\n")
    return {"module": str(module), "unit": str(unit), "logind": str(logind)}


def predictions(planted: dict[str, str]) -> dict[str, Any]:
    run = lockdownctl("check", "--level", "integrity", "--json")
    data = run.json()["data"]
    found: dict[str, Any] = {}
    for f in data["findings"]:
        where = " ".join(e["where"] + " " + e["text"] for e in f["evidence"])
        for name, path in planted.items():
            if path in where:
                found[name] = {"reason": f["reason"], "confidence": f["confidence"], "title": f["title"]}
    return found


@pytest.mark.guest(kernel="all", level="none")
def test_predict(guest_capture: Path, tmp_path: Path) -> None:
    planted = plant(tmp_path)
    found = predictions(planted)
    (guest_capture / "check-predictions.json").write_text(json.dumps({"planted": planted, "found": found}))
    assert set(found) == {"module", "unit", "logind"}, found
    assert found["module"]["reason"] == "module_signature" and found["unit"]["reason"] == "dev_mem"
    assert found["logind"]["reason"] == "hibernation"


@pytest.mark.guest(kernel="all", level="integrity")
def test_confirm(guest_capture: Path, tmp_path: Path) -> None:
    planted = plant(tmp_path)
    # The module: the kernel refuses it (EPERM, or EKEYREJECTED with sig_enforce).
    insmod = subprocess.run(["insmod", planted["module"]], capture_output=True, text=True, check=False)
    # The unit's own command.
    exec_start = re.search(r"^ExecStart=(.+)$", Path(planted["unit"]).read_text(), re.M)
    assert exec_start is not None
    dd = subprocess.run(exec_start.group(1).split(), capture_output=True, text=True, check=False)
    # Hibernation: hibernation_available() asks lockdown when the state is read.
    offered = Path("/sys/power/state").read_text().split()
    log = subprocess.run(["dmesg"], capture_output=True, text=True, check=True).stdout
    confirmed = {
        "module": {"failed": insmod.returncode != 0, "error": insmod.stderr.strip(),
                   "logged": "unsigned module loading is restricted" in log},
        "unit": {"failed": dd.returncode != 0, "error": dd.stderr.strip(),
                 "logged": bool(re.search(r"Lockdown: dd: /dev/mem,kmem,port is restricted", log))},
        "logind": {"failed": "disk" not in offered, "error": f"/sys/power/state: {' '.join(offered)}",
                   "logged": "hibernation is restricted" in log},
    }
    (guest_capture / "check-confirmed.json").write_text(json.dumps(confirmed))
    assert all(c["failed"] and c["logged"] for c in confirmed.values()), confirmed


@pytest.mark.parametrize("kernel", list(KERNELS))
def test_predictions_came_true(request: pytest.FixtureRequest, kernel: str) -> None:
    predicted = boot_capture(request, Target(kernel, "none"), "check-predictions.json")
    confirmed = boot_capture(request, Target(kernel, "integrity"), "check-confirmed.json")
    for name, finding in predicted["found"].items():
        assert finding["confidence"] in ("breaks", "likely"), finding
        assert confirmed[name]["failed"] and confirmed[name]["logged"], (name, finding, confirmed[name])


@pytest.mark.guest(kernel="all", level="all")
def test_every_finding_has_evidence_in_every_guest() -> None:
    run = lockdownctl("check", "--level", "confidentiality", "--json")
    assert run.code in (0, 1), run.err
    data = run.json()["data"]
    for finding in data["findings"]:
        assert finding["evidence"] and all(e["where"] and e["text"] for e in finding["evidence"]), finding
