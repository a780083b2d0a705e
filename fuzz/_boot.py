"""Shared by the boot-setup targets: the input is the content of one file of a
fixture root, and the setup ``enable`` chooses for that root plans, renders its
diff and verifies on it, as ``enable --dry-run`` does in boot/run.py execute().

In process, in memory: the input reaches the planners through the View's
overlay (the mechanism execute() itself uses to verify planned contents
before writing), so nothing is written per input; the fixture copy (made
once per process, never changed after) is read through the real Root once
and its answers kept, so nothing is re-read per input either. Detection
runs once, on the fixture as shipped. The input's length picks the action
(enable integrity, enable confidentiality, disable), so each input runs one
plan and every byte is the file's.

Property: a plan or a one-line InputError; when the planned contents verify
(execute() would report "verified"), present() on them finds lockdown= with
exactly the planned level (enable) or none at all (disable): a verify that
passes on contents still carrying another level is an "all clear" on input
that was not understood.
"""

from __future__ import annotations

import functools
import os

from _common import Bad, fixture_root, instrumented, text

with instrumented():
    from lockdownctl.boot import run
    from lockdownctl.boot.engine import Change, View
    from lockdownctl.root import Root

ACTIONS = ("integrity", "confidentiality", None)


class FixtureRoot(Root):
    """A Root over a tree that does not change while the target runs: each
    answer of the real Root is computed once and kept."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.resolve = functools.lru_cache(maxsize=None)(super().resolve)  # type: ignore[method-assign]
        self.read_bytes = functools.lru_cache(maxsize=None)(super().read_bytes)  # type: ignore[method-assign]
        self.exists = functools.lru_cache(maxsize=None)(super().exists)  # type: ignore[method-assign]
        self.listdir = functools.lru_cache(maxsize=None)(super().listdir)  # type: ignore[method-assign]
        self.is_dir = functools.lru_cache(maxsize=None)(super().is_dir)  # type: ignore[method-assign]


class Fixture:
    """The fixture ``tests/data/boot/NAME`` with the input as ``rel``; ``setup`` must be
    the one that ``enable`` chooses there. ``without``: fixture files left out, so the
    work per input is the fuzzed file's (other targets fuzz those files)."""

    def __init__(self, name: str, rel: str, setup: str, without: tuple[str, ...] = ()) -> None:
        base = fixture_root(name)
        chosen = {m.ID: m for m in run.choose(run.detect(Root(base)), use_unit=False)}
        if setup not in chosen:
            raise SystemExit(f"fixture {name}: enable does not choose {setup} there ({sorted(chosen)})")
        self.modules = [chosen[setup]]
        for gone in without:
            os.remove(os.path.join(base, gone))
        self.root = FixtureRoot(base)
        self.rel = rel

    def plan(self, data: bytes) -> None:
        level = ACTIONS[len(data) % len(ACTIONS)]
        view = View(self.root, [Change(self.rel, None, text(data))])
        if level:
            run.higher(self.modules, view, level)
        plans = []
        after = view
        for module in self.modules:
            plan = module.plan(after, level)
            plans.append((module, plan))
            after = after.with_changes(plan.changes)
        for module, plan in plans:
            plan.to_dict()  # the diff shown by --dry-run
            if plan.problem:
                continue
            checks = run._verify(module, after, level, not plan.commands)
            if checks and all(c.ok for c in checks):
                found = {v for _, v in module.present(after)}
                if found - {level}:
                    raise Bad(f"{module.ID}: verified for {level}, yet lockdown={sorted(found)} remains")
