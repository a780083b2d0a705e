"""Shared helpers for every tier."""

from __future__ import annotations

import json
import lzma
import os
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
ROOTS = DATA / "roots"
HOST_BTF_XZ = DATA / "btf" / "vmlinux-6.18.44-fc-v657.btf.xz"


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def lockdownctl(*args: str, env: dict[str, str] | None = None, user: str | None = None) -> Run:
    """Run the real command line in a child process (as users run it)."""
    cmd = [sys.executable, "-m", "lockdownctl", *args]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    full_env = {**os.environ, "PYTHONPATH": str(REPO / "src"), **(env or {})}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=120, check=False)
    return Run(proc.returncode, proc.stdout, proc.stderr)


def lockdownctl_inproc(*args: str) -> Run:
    """Run the command line in this process (same code path, no interpreter start:
    the VM tier runs under TCG, where each Python start costs seconds)."""
    import contextlib
    import io

    from lockdownctl.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return Run(code, out.getvalue(), err.getvalue())


@cache
def host_btf_bytes() -> bytes:
    """The build host's real vmlinux BTF (see tests/data/btf/README.md)."""
    return lzma.decompress(HOST_BTF_XZ.read_bytes())


@pytest.fixture
def host_btf(tmp_path: Path) -> Path:
    path = tmp_path / "vmlinux"
    path.write_bytes(host_btf_bytes())
    return path
