"""Denial-flood benchmark, in a guest (this host refuses LSM programs).

Many processes open a tracefs file as fast as they can while the enforcer
denies it (then, with --audit, audits it) and ``lockdownctl enforce events
--follow --json`` reads the ring buffer. Prints denials per second (what the
producers counted), events per second (what the follower delivered until it
had drained the ring buffer) and drops, with the exact accounting
counters == events delivered + drops. The work is tests/vm/flood.py, the same
code tests/vm/test_flood.py asserts on.

Usage: python3 benchmarks/flood.py [--kernel 6.12] [--count 1000000] [--procs 8] [--audit]
Boots one guest (tests/vm/runner.py). Under TCG (an emulated CPU: the VM
tier's default here) every figure is that of the emulation, one to two
orders of magnitude below real hardware; choose --count accordingly (TCG
manages about 9,000 denials a second).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.vm.runner import Target, boot, guest_python  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kernel", default="6.12")
    parser.add_argument("--count", type=int, default=1_000_000, help="denials in all (default %(default)s)")
    parser.add_argument("--procs", type=int, default=8, help="producer processes (default %(default)s)")
    parser.add_argument("--audit", action="store_true", help="audit mode: nothing denied, everything recorded")
    args = parser.parse_args()
    results = Path(tempfile.mkdtemp(prefix="ldctl-flood-"))
    python, _env = guest_python()
    out = results / "flood.json"
    cmd = (f"{python} -m tests.vm.flood --count {args.count} --procs {args.procs}"
           f"{' --audit' if args.audit else ''} > {out}")
    result = boot(Target(args.kernel, "none"), cmd, results, timeout=600 + args.count / 2000)
    if result.exit_status != 0 or not out.exists() or not out.read_text().strip():
        print(f"guest run failed (exit {result.exit_status}); see {results}", file=sys.stderr)
        return 1
    if result.splats:
        print(f"kernel splat in the guest; see {results}/dmesg.txt", file=sys.stderr)
        return 1
    d = json.loads(out.read_text())
    verdict = "audited" if args.audit else "denied"
    counted = sum(c[verdict] for c in d["counters"].values())
    exact = counted == d["delivered_total"] + d["drops"]
    p = d["producers"]
    print(f"flood: {args.count} opens from {args.procs} processes in {d['flood_seconds']:.2f} s = "
          f"{d['denials_per_second']:.0f} {verdict}/s (EPERM {p['eperm']}, ok {p['ok']}, other {p['other']})")
    print(f"events: {d['delivered_total']} delivered by enforce events --follow, {d['drops']} dropped; "
          f"{d['events_per_second']:.0f} events/s until drained ({d['drain_seconds']:.1f} s after the flood)")
    print(f"accounting: counters {counted} == delivered {d['delivered_total']} + drops {d['drops']}: "
          f"{'exact' if exact else 'MISMATCH'}")
    print(f"(guest {args.kernel}-none, {result.accel}; results in {results})")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
