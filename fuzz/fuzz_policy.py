"""Enforcer policies, YAML (policy.py: ``enforce apply``/``policy check``).

Property: a Policy or a one-line InputError naming file and line; an
accepted policy turns into a verdict table over the catalogue without error.
Size cap 64 KiB (a policy is a short hand-written file).
"""

from __future__ import annotations

from _common import instrumented, main, text

with instrumented():
    from lockdownctl.policy import parse_policy, verdicts
    from lockdownctl.reasons import merge

CATALOGUE = merge(None)


def one(data: bytes) -> None:
    policy = parse_policy(text(data), "policy.yaml", CATALOGUE)
    verdicts(policy, CATALOGUE)
    policy.policy_id  # noqa: B018 (hashing the accepted content must work)


if __name__ == "__main__":
    main(one)
