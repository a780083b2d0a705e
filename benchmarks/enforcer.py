"""Enforcer benchmarks, in a guest (this host refuses LSM programs).

1. Allowed hot path: a C loop of tracefs opens (reason allowed) with the
   enforcer attached versus without, then with 10,000 exception entries
   loaded; interleaved rounds, ratio of medians (goal: at most 1.05 each).
2. Event throughput: denials per second delivered to user space through the
   ring buffer (libbpf's consumer calling lockdownctl's Python callback), with
   the accounting events + drops == denials (goal: at least 100,000 per second).
3. With --seal: what sealing adds to opens (its inode_permission hook runs on
   every path component), enforcer loaded unsealed versus sealed, two paths.
   Sealing is one way, so these rounds run in sequence, not interleaved.

Usage: python3 benchmarks/enforcer.py [--kernel 6.12] [--rounds 5] [--opens 100000] [--seal]
Boots one guest (tests/vm/runner.py); under TCG absolute numbers are those of
an emulated CPU, ratios are what counts.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.vm.runner import Target, boot, guest_python  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kernel", default="6.12")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--opens", type=int, default=100000)
    parser.add_argument("--events", type=int, default=200000)
    parser.add_argument("--seal", action="store_true", help="also measure the seal's cost (one way: runs last)")
    args = parser.parse_args()
    results = Path(tempfile.mkdtemp(prefix="ldctl-bench-"))
    binary = results / "open_loop"
    subprocess.run(["gcc", "-O2", "-o", str(binary), str(REPO / "benchmarks" / "open_loop.c")], check=True)
    python, _env = guest_python()
    cmd = (f"{python} {REPO / 'benchmarks' / 'enforcer_guest.py'} {binary} {args.rounds} {args.opens} "
           f"{args.events} {'--seal' if args.seal else ''} > {results / 'bench.json'}")
    result = boot(Target(args.kernel, "none"), cmd, results, timeout=1800)
    out = results / "bench.json"
    if result.exit_status != 0 or not out.exists() or not out.read_text().strip():
        print(f"guest run failed (exit {result.exit_status}); see {results}", file=sys.stderr)
        return 1
    data = json.loads(out.read_text())
    for name in ("hot_path", "hot_path_10000_exceptions"):
        d = data[name]
        verdict = "OK" if d["ratio"] <= 1.05 else "OVER GOAL"
        print(f"{name}: {d['ns_without']:.0f} ns/open without, {d['ns_with']:.0f} ns/open with the enforcer: "
              f"ratio {d['ratio']:.3f} (goal <= 1.05) {verdict}")
    if "seal" in data:
        d = data["seal"]
        for name in ("tracefs", "deep"):
            print(f"seal, {name} path: {d[f'{name}_ns_unsealed']:.0f} ns/open unsealed, "
                  f"{d[f'{name}_ns_sealed']:.0f} ns/open sealed: ratio {d[f'{name}_ratio']:.3f} (in sequence)")
    e = data["events"]
    print(f"events, end to end: {e['received']} delivered + {e['drops']} dropped of {e['denied']} denials "
          f"(accounted: {e['accounted']}) in {e['seconds']:.2f} s = {e['delivered_per_second']:.0f}/s "
          "(bounded by how fast one process can be denied)")
    verdict = "OK" if e["drain_per_second"] >= 100000 else "UNDER GOAL"
    print(f"events, consumer: {e['drained']} buffered denials drained in {e['drain_seconds']:.3f} s = "
          f"{e['drain_per_second']:.0f}/s, the median of {len(e['drain_rounds_per_second'])} rounds "
          f"({', '.join(map(str, e['drain_rounds_per_second']))}) (goal >= 100000) {verdict}")
    print(f"(guest {args.kernel}-none, {result.accel}; results in {results})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
