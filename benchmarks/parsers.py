"""Parsers of outside input stay linear in their input, measured side by side.

Each case times the same parser on n and on 8n units of input (best of
``--rounds`` each) and prints the ratio: about 8 when the work is linear, about
64 when it is quadratic. The goal is below 24 (linear with room for noise).
These were quadratic until the fuzzing of #21 found them (tests/unit/
test_fuzz_crashes.py keeps their functional regressions; timing lives here, not
in unit tests). Usage:
    python3 benchmarks/parsers.py [--rounds N]
Exit 1 when a case misses the goal.

``--fuzz`` instead runs fuzz targets (fuzz/fuzz_NAME.py, atheris) side by
side on the same ``--runs`` inputs: the seeds fuzz/run-all makes from
tests/data, mutated the way libFuzzer mutates (bytes flipped, inserted,
erased, repeated; seeds spliced) by a generator with a fixed seed, written as
a corpus that libFuzzer replays (instrumented, every input once). Each target
runs twice: as shipped, and with LOCKDOWNCTL_FUZZ_REFERENCE=1, which puts the
one-step-per-character parsers of tests/unit/reference in place of the fast
ones (instrumented alike). It prints inputs per CPU second of each and their ratio
(goal: 10); the start-up (imports and libFuzzer's set-up: a run on one empty
input) is not counted. (Coverage-guided runs would not do: the two codes give
different coverage feedback, so their inputs would drift apart.)
    python3 benchmarks/parsers.py --fuzz [--runs N] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import os
import resource
import runpy
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from lockdownctl.boot.shell import scan
from lockdownctl.boot.tokens import strip_tokens
from lockdownctl.host.cmdline import split_cmdline
from lockdownctl.klog.parser import classify

GOAL = 24.0

CASES: list[tuple[str, Callable[[int], object], int]] = [
    # host/cmdline.py split_cmdline copied the rest of the line for every argument
    ("split_cmdline, short arguments", lambda n: split_cmdline("a " * n, "cmdline"), 25_000),
    ("split_cmdline, quoted runs", lambda n: split_cmdline('a"b"' * n + " x", "cmdline"), 25_000),
    # boot/shell.py scan counted newlines from the start of the file per assignment
    ("shell scan, assignments", lambda n: scan('GRUB_X="a b"\n# comment\n' * n, "/etc/default/grub"), 5_000),
    # boot/tokens.py strip_tokens restarted its search after every removal
    ("strip_tokens, lockdown= tokens", lambda n: strip_tokens("quiet" + " lockdown=integrity" * n), 5_000),
    # klog/parser.py classify searched for the denial from every "Lockdown: " to the end of the line
    ("classify, Lockdown: markers", lambda n: classify("x is restricted " + "Lockdown: " * n, ""), 2_000),
]


def best(run: Callable[[int], object], n: int, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run(n)
        times.append(time.perf_counter() - start)
    return min(times)


REPO = Path(__file__).resolve().parents[1]
# The targets that stayed below 1,000,000 inputs in fuzz/run-all (#21), slowest first.
FUZZ_TARGETS = ("grub", "shell", "klog", "bls", "kernel_install", "uki", "cmdline", "efivars")
FUZZ_GOAL = 10.0
# Targets whose inputs take microseconds run this many times --runs, so that their
# time is well above the noise of the start-up that is subtracted.
FUZZ_MORE = {"cmdline": 20, "efivars": 10, "shell": 5, "uki": 5, "bls": 2, "kernel_install": 2, "klog": 2}


def fuzz_seconds(name: str, seeds: str, max_len: int, reference: bool) -> float:
    """CPU seconds (user + system: the machine's load does not count) of the inputs in
    ``seeds`` through target ``name``, its start-up not counted."""
    env = {k: v for k, v in os.environ.items() if k != "LOCKDOWNCTL_FUZZ_REFERENCE"}
    if reference:
        env["LOCKDOWNCTL_FUZZ_REFERENCE"] = "1"

    def once(n: int, corpus: str) -> float:
        with tempfile.TemporaryDirectory(prefix="lockdownctl-bench-", dir="/dev/shm" if os.path.isdir("/dev/shm")
                                         else None) as scratch:
            argv = [sys.executable, str(REPO / "fuzz" / f"fuzz_{name}.py"), f"-runs={n}", "-seed=1",
                    f"-max_len={max_len}", "-timeout=60", "-rss_limit_mb=2048", corpus]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            proc = subprocess.run(argv, capture_output=True, text=True, errors="replace", check=False,
                                  env={**env, "LOCKDOWNCTL_FUZZ_SCRATCH": scratch})
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            took = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        if proc.returncode != 0 or "Done " not in proc.stderr:
            raise SystemExit(f"fuzz_{name} (reference={reference}) failed:\n{proc.stderr[-3000:]}")
        return took

    with tempfile.TemporaryDirectory(prefix="lockdownctl-empty-") as empty:
        startup = min(once(1, empty) for _ in range(3))  # imports and libFuzzer's set-up: one empty input
    return max(once(1, seeds) - startup, 1e-3)


# Bytes that mean something in the targets' grammars, for the inserting mutations.
TOKENS = (b'"', b"'", b"\\", b"$", b"$(", b"`", b"${", b"}", b"(", b")", b";", b"\n", b" ", b"=", b"#", b"--",
          b"lockdown=", b"options ", b"GRUB_CMDLINE_LINUX=", b"Lockdown: ", b"\xff", b"\x00", b"~")


def mutants(seeds: list[bytes], count: int, max_len: int, seed: int = 1) -> list[bytes]:
    """``count`` inputs made from ``seeds`` by 1 to 8 libFuzzer-like mutations each."""
    import random

    rnd = random.Random(seed)
    out = []
    for _ in range(count):
        data = bytearray(rnd.choice(seeds))
        for _ in range(rnd.randint(1, 8)):
            pos = rnd.randint(0, len(data))
            op = rnd.randrange(6)
            if op == 0 and data:  # flip a byte
                data[min(pos, len(data) - 1)] = rnd.randrange(256)
            elif op == 1:  # insert a grammar token
                data[pos:pos] = rnd.choice(TOKENS)
            elif op == 2:  # erase a range
                del data[pos : pos + rnd.randint(1, 64)]
            elif op == 3:  # repeat a chunk
                chunk = data[pos : pos + rnd.randint(1, 32)]
                data[pos:pos] = chunk * rnd.randint(1, 8)
            elif op == 4:  # splice in part of another seed
                other = rnd.choice(seeds)
                start = rnd.randint(0, len(other))
                data[pos:pos] = other[start : start + rnd.randint(1, 256)]
            else:  # insert random bytes
                data[pos:pos] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 8)))
        out.append(bytes(data[:max_len]))
    return out


def fuzz_main(runs: int, only: list[str] | None) -> int:
    run_all = runpy.run_path(str(REPO / "fuzz" / "run-all"))
    worst = float("inf")
    print(f"{'target':16} {'runs':>7} {'reference/s':>12} {'fast/s':>9} {'ratio':>6}  (goal >= {FUZZ_GOAL:g})")
    for name in only or FUZZ_TARGETS:
        n = runs * FUZZ_MORE.get(name, 1)
        max_len, globs = run_all["TARGETS"][name]
        with tempfile.TemporaryDirectory(prefix=f"lockdownctl-seeds-{name}-") as seeds, \
                tempfile.TemporaryDirectory(prefix=f"lockdownctl-inputs-{name}-") as inputs:
            run_all["seed"](name, max_len, globs, seeds)
            made = [Path(seeds, f).read_bytes() for f in sorted(os.listdir(seeds))]
            for i, data in enumerate(mutants(made or [b""], n, max_len)):
                Path(inputs, f"{i:07d}").write_bytes(data)
            ref = n / fuzz_seconds(name, inputs, max_len, True)
            fast = n / fuzz_seconds(name, inputs, max_len, False)
        worst = min(worst, fast / ref)
        print(f"{name:16} {n:>7} {ref:>12,.0f} {fast:>9,.0f} {fast / ref:>6.1f}", flush=True)
    return 0 if worst >= FUZZ_GOAL else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--fuzz", action="store_true", help="fuzz targets under atheris: reference vs fast parsers")
    ap.add_argument("--runs", type=int, default=2000, help="--fuzz: inputs per run (default 2000)")
    ap.add_argument("--only", nargs="+", choices=FUZZ_TARGETS, help="--fuzz: these targets only")
    args = ap.parse_args()
    if args.fuzz:
        return fuzz_main(args.runs, args.only)
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
