"""Audit rules files, YAML (audit/rules.py: ``audit --rules``).

Property: rules applied to the real check catalogue, or a one-line
InputError naming file and line. Size cap 64 KiB.
"""

from __future__ import annotations

from _common import instrumented, main, write

with instrumented():
    from lockdownctl.audit import checks as catalogue_checks
    from lockdownctl.audit.rules import apply, load_rules
    from lockdownctl.reasons import merge

BOOK = merge(None)
CHECKS = catalogue_checks.checks("integrity")
IDS = {c.id for c in CHECKS}


def one(data: bytes) -> None:
    path = write("rules.yaml", data)
    rules = load_rules(path, IDS, lambda rid: BOOK.find(rid) is not None)
    apply(rules, list(CHECKS), path)


if __name__ == "__main__":
    main(one)
