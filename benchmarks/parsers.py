"""Parsers of outside input stay linear in their input, measured side by side.

Each case times the same parser on n and on 8n units of input (best of
``--rounds`` each) and prints the ratio: about 8 when the work is linear, about
64 when it is quadratic. The goal is below 24 (linear with room for noise).
These were quadratic until the fuzzing of #21 found them (tests/unit/
test_fuzz_crashes.py keeps their functional regressions; timing lives here, not
in unit tests). Usage:
    python3 benchmarks/parsers.py [--rounds N]
Exit 1 when a case misses the goal.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from lockdownctl.boot.shell import scan
from lockdownctl.boot.tokens import strip_tokens
from lockdownctl.host.cmdline import split_cmdline

GOAL = 24.0

CASES: list[tuple[str, Callable[[int], object], int]] = [
    # host/cmdline.py split_cmdline copied the rest of the line for every argument
    ("split_cmdline, short arguments", lambda n: split_cmdline("a " * n, "cmdline"), 25_000),
    ("split_cmdline, quoted runs", lambda n: split_cmdline('a"b"' * n + " x", "cmdline"), 25_000),
    # boot/shell.py scan counted newlines from the start of the file per assignment
    ("shell scan, assignments", lambda n: scan('GRUB_X="a b"\n# comment\n' * n, "/etc/default/grub"), 5_000),
    # boot/tokens.py strip_tokens restarted its search after every removal
    ("strip_tokens, lockdown= tokens", lambda n: strip_tokens("quiet" + " lockdown=integrity" * n), 5_000),
]


def best(run: Callable[[int], object], n: int, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run(n)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    worst = 0.0
    print(f"{'case':34} {'n':>7} {'t(n) ms':>9} {'t(8n) ms':>9} {'ratio':>6}  (goal < {GOAL:g})")
    for name, run, n in CASES:
        one, eight = best(run, n, args.rounds), best(run, 8 * n, args.rounds)
        ratio = eight / one
        worst = max(worst, ratio)
        print(f"{name:34} {n:>7} {one * 1000:>9.1f} {eight * 1000:>9.1f} {ratio:>6.1f}")
    return 0 if worst < GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
