"""Shared by the boot-setup targets: the input replaces one file of a fixture
root and ``enable``'s whole planning path runs on it (detect, plan every
chosen setup, verify the planned contents), as ``enable --dry-run``.

Property: a plan or a one-line InputError; a plan that ``enable`` would
report as verified carries lockdown= exactly where the setup's own verify
says so (execute() raises InputError when a planned change does not verify).
"""

from __future__ import annotations

import os

from _common import Bad, fixture_root, instrumented

with instrumented():
    from lockdownctl.boot import run
    from lockdownctl.root import Root


def plan_with(fixture: str, rel: str, data: bytes) -> None:
    base = fixture_root(fixture)
    with open(os.path.join(base, rel), "wb") as fh:
        fh.write(data)
    root = Root(base)
    for level in ("integrity", None):
        result = run.execute(root, level, dry_run=True, use_unit=False, force=True)
        if result["verified"] and result["problems"]:
            raise Bad(f"verified with problems: {result['problems']}")
