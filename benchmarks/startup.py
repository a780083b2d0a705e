"""Startup cost of ``lockdownctl status --json`` next to a bare interpreter.

Runs both commands alternately in one process, N rounds each, and prints the
ratio of the medians (goal: at most 2.5). Usage:
    python3 benchmarks/startup.py [--rounds N] [--lockdownctl PATH]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

GOAL = 2.5


def wall(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--lockdownctl", help="the installed console script (default: from PATH, "
                        "else `python -m lockdownctl` from this checkout)")
    args = parser.parse_args()
    env = dict(os.environ)
    exe = args.lockdownctl or shutil.which("lockdownctl")
    if exe:
        tool = [exe, "status", "--json"]
    else:
        src = Path(__file__).resolve().parent.parent / "src"
        env["PYTHONPATH"] = str(src)
        tool = [sys.executable, "-m", "lockdownctl", "status", "--json"]
        # Byte-compile the checkout as an install does: with PYTHONDONTWRITEBYTECODE
        # set, every run would otherwise compile every module from source.
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(src / "lockdownctl")], check=True)
        print("lockdownctl is not installed: measuring `python3 -m lockdownctl` from this checkout "
              "(scripts/install.sh installs the launcher users run)")
    # The bare run uses the interpreter the tool itself runs on (its shebang).
    interpreter = sys.executable
    if exe:
        with open(exe, "rb") as fh:
            first = fh.readline().decode().strip()
        if first.startswith("#!"):
            interpreter = first[2:].split()[0]
    bare = [interpreter, "-c", "pass"]
    for cmd in (bare, tool):  # warm the page cache
        wall(cmd, env)
    bare_t, tool_t = [], []
    for _ in range(args.rounds):
        bare_t.append(wall(bare, env))
        tool_t.append(wall(tool, env))
    b, t = statistics.median(bare_t), statistics.median(tool_t)
    ratio = t / b
    print(f"{interpreter} -c pass: median {b * 1000:.1f} ms over {args.rounds} runs")
    print(f"{' '.join(tool)}: median {t * 1000:.1f} ms")
    print(f"ratio: {ratio:.2f} (goal <= {GOAL}) {'OK' if ratio <= GOAL else 'OVER GOAL'}")
    return 0 if ratio <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
