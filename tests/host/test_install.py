"""README's first command: scripts/install.sh, into a temporary prefix.

The installed launcher is what users (and benchmarks/startup.py) run; it must
give the same answer as the checkout and keep ``status --json`` free of the
imports the start-up goal has no room for (re, argparse, json): checked here
by the interpreter's own import log, not by a clock.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from lockdownctl.cli.status import CHILD_MODULES, SLOW_IMPORTS, STARTUP_MODULES
from tests.conftest import REPO, lockdownctl
from tests.host.conftest import require, require_root


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_root()
    require(os.path.exists("/usr/lib/x86_64-linux-gnu/libbpf.so.1"), "libbpf1 not installed")
    top = tmp_path_factory.mktemp("install")
    env = {**os.environ, "PREFIX": str(top / "venv"), "BINDIR": str(top / "bin"), "MANDIR": str(top / "man")}
    proc = subprocess.run([str(REPO / "scripts/install.sh")], env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == f"installed: lockdownctl 0.1.0 -> {top}/bin/lockdownctl"
    return top


def test_launcher_and_pages(installed: Path) -> None:
    launcher = installed / "bin/lockdownctl"
    assert launcher.read_text().splitlines()[0] == f"#!{installed}/venv/bin/python3"
    assert (installed / "man/man8/lockdownctl.8").read_bytes() == (REPO / "man/lockdownctl.8").read_bytes()
    assert (installed / "man/man5/lockdownctl-policy.5").exists()


def test_venv_is_the_system_interpreter(installed: Path) -> None:
    """Not the first python3 on PATH (a pyenv in root's home made the command unusable for other users)."""
    python = os.path.realpath(installed / "venv/bin/python3")
    assert python == os.path.realpath("/usr/bin/python3"), python
    assert "home = /usr/bin\n" in (installed / "venv/pyvenv.cfg").read_text()


def test_installed_status_equals_the_checkout(installed: Path) -> None:
    proc = subprocess.run([str(installed / "bin/lockdownctl"), "status", "--json"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0 and proc.stderr == ""
    mine = json.loads(proc.stdout)["data"]
    ref = lockdownctl("status", "--json").json()["data"]
    for key in ("level", "source", "lsm", "can_raise", "secure_boot", "bpf_lsm"):
        assert mine[key] == ref[key], key


def test_status_json_imports_nothing_slow(installed: Path) -> None:
    # -X importtime logs every import of the process and of its forked child.
    proc = subprocess.run([str(installed / "venv/bin/python3"), "-X", "importtime",
                           str(installed / "bin/lockdownctl"), "status", "--json"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0
    imported = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:") and "|" in line}
    assert "lockdownctl.state.document" in imported and "lockdownctl.output.jsontext" in imported
    ours = {m for m in imported if m.split(".")[0] == "lockdownctl"}
    assert ours <= set(STARTUP_MODULES) | set(CHILD_MODULES), sorted(ours - set(STARTUP_MODULES))
    assert not imported & set(SLOW_IMPORTS), sorted(imported & set(SLOW_IMPORTS))
