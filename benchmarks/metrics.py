"""What metrics cost next to ``lockdownctl status --json``, in one run.

Alternates, N rounds each: ``status --json`` (the reference), ``metrics
--textfile DIR`` (the timer's job: one process, one atomic write), and one HTTP
scrape of a running ``metrics --listen 127.0.0.1:0`` (the exporter re-reads
the host per scrape, without an interpreter start). Prints the medians and
their ratios to ``status --json`` side by side. Usage:
    python3 benchmarks/metrics.py [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def wall(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
    return time.perf_counter() - start


def scrape(url: str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as resp:
        resp.read()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent / "src")}
    tool = [sys.executable, "-m", "lockdownctl"]
    with tempfile.TemporaryDirectory() as textdir:
        server = subprocess.Popen([*tool, "metrics", "--listen", "127.0.0.1:0"], stderr=subprocess.PIPE, text=True,
                                  env=env)
        try:
            assert server.stderr is not None
            url = server.stderr.readline().split(" on ", 1)[1].strip()
            times: dict[str, list[float]] = {"status --json": [], "metrics --textfile": [], "scrape --listen": []}
            for _ in range(args.rounds):
                times["status --json"].append(wall([*tool, "status", "--json"], env))
                times["metrics --textfile"].append(wall([*tool, "metrics", "--textfile", textdir], env))
                times["scrape --listen"].append(scrape(url))
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    base = statistics.median(times["status --json"])
    print(f"{'command':22} {'median ms':>10} {'ratio to status --json':>24}")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"{name:22} {med * 1000:10.1f} {med / base:24.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
