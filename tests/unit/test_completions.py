"""Shell completions generated from the real parser (scripts/completions.py, run at package build):
each shell completes what the parser accepts."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lockdownctl.cli import VERBS
from tests.conftest import REPO


@pytest.fixture(scope="module")
def scripts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("shtab")
    out = tmp_path_factory.mktemp("completions")
    subprocess.run([sys.executable, str(REPO / "scripts/completions.py"), str(out)], check=True, timeout=60,
                   env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"})
    return out


def bash_complete(script: Path, line: str) -> list[str]:
    words = line.split(" ")
    prog = (f"source {script}; COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}; "
            f"COMP_LINE={line!r}; COMP_POINT=${{#COMP_LINE}}; "
            f"_shtab_lockdownctl lockdownctl {words[-1]!r} {words[-2]!r}; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
    proc = subprocess.run(["bash", "-c", prog], capture_output=True, text=True, timeout=30, check=True)
    return proc.stdout.split()


def fish_complete(script: Path, line: str) -> list[str]:
    proc = subprocess.run(["fish", "--no-config", "-c", f"source {script}; complete -C {line!r}"],
                          capture_output=True, text=True, timeout=30, check=True)
    return [row.split("\t")[0] for row in proc.stdout.splitlines()]


def test_bash(scripts: Path) -> None:
    script = scripts / "lockdownctl.bash"
    assert set(bash_complete(script, "lockdownctl ")) >= set(VERBS)
    assert bash_complete(script, "lockdownctl metrics --t") == ["--textfile"]
    assert set(bash_complete(script, "lockdownctl enforce ")) == {"apply", "status", "events", "remove", "update"}
    assert sorted(bash_complete(script, "lockdownctl check --color ")) == ["always", "auto", "never"]


def test_zsh_parses(scripts: Path) -> None:
    if not shutil.which("zsh"):
        pytest.skip("zsh not installed")
    text = (scripts / "_lockdownctl").read_text()
    assert text.startswith("#compdef lockdownctl") and all(
        re.search(rf"[\s\"']{verb}:", text) for verb in VERBS)
    subprocess.run(["zsh", "-n", str(scripts / "_lockdownctl")], check=True, timeout=30)


def test_fish(scripts: Path) -> None:
    if not shutil.which("fish"):
        pytest.skip("fish not installed")
    script = scripts / "lockdownctl.fish"
    assert set(fish_complete(script, "lockdownctl ")) == set(VERBS)
    assert fish_complete(script, "lockdownctl --v") == ["--version"]
    assert fish_complete(script, "lockdownctl metrics --t") == ["--textfile"]
    assert fish_complete(script, "lockdownctl status --format ") == ["nfd", "text"]
    assert fish_complete(script, "lockdownctl enforce ") == ["apply", "events", "remove", "status", "update"]
    # The action's own options, not the status verb's (the word "status" is also an action).
    assert fish_complete(script, "lockdownctl enforce status --") == ["--color", "--json"]
    assert fish_complete(script, "lockdownctl watch --color ") == ["always", "auto", "never"]
    assert fish_complete(script, f"lockdownctl enforce apply {REPO}/examples/integ") == \
        [f"{REPO}/examples/integrity.yaml"]
    assert fish_complete(script, f"lockdownctl status --output {REPO}/pyproj") == [f"{REPO}/pyproject.toml"]
    assert fish_complete(script, f"lockdownctl status --format {REPO}/pyproj") == []  # a choice, not a file
