"""Host tier: the live kernel of this machine.

A test whose prerequisite is missing skips with the reason; with
LOCKDOWNCTL_REQUIRE_HOST=1 (CI) the same condition fails instead.
"""

from __future__ import annotations

import os
import shutil

import pytest


def require(condition: bool, reason: str) -> None:
    if condition:
        return
    if os.environ.get("LOCKDOWNCTL_REQUIRE_HOST") == "1":
        pytest.fail(f"host prerequisite missing (LOCKDOWNCTL_REQUIRE_HOST=1): {reason}")
    pytest.skip(reason)


def require_root() -> None:
    require(os.geteuid() == 0, "needs root")


def require_tool(name: str) -> str:
    path = shutil.which(name)
    require(path is not None, f"{name} not installed")
    assert path is not None
    return path
