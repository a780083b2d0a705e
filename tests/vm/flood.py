"""A denial flood against the enforcer, run as root inside a guest.

    python -m tests.vm.flood --count 200000 --procs 8 [--audit]   # prints one JSON object

Used by tests/vm/test_flood.py (which asserts on the result) and by
benchmarks/flood.py (which prints the figures). The steps:

1. the enforcer is applied, scoped to a fresh cgroup, with ``tracefs: deny``
   (``--audit``: audit mode, which denies nothing and records everything);
2. ``lockdownctl enforce events --follow --json`` starts, its output going to
   a file; one denial is made and the follower must print it (so it is
   reading before the flood starts);
3. ``benchmarks/flood.c`` forks PROCS processes in the cgroup that open a
   tracefs file COUNT times in all, as fast as they can, and count what every
   open returned (EPERM, success, other);
4. the follower is given time to drain what the ring buffer still holds, then
   stopped with SIGTERM; ``enforce events`` reads anything left;
5. the enforcer's own counters (per reason and verdict, and the ring buffer's
   drops) are read and the enforcer removed.

The result holds the producers' tallies, the counters, the events the
follower delivered per (reason, verdict), the drops and the timings, so that
the caller can check counters == events delivered + drops, exactly.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PRODUCER_SOURCE = REPO / "benchmarks" / "flood.c"
# tracing_on: its open runs tracing_check_open_get_tr(), one security_locked_down(LOCKDOWN_TRACEFS)
# per open, and nothing heavy once allowed (opening `trace` would build an iterator in audit mode).
FLOOD_FILE = "/sys/kernel/tracing/tracing_on"
REASON = "tracefs"


def build_producer(directory: Path) -> Path:
    binary = directory / "flood"
    subprocess.run(["gcc", "-O2", "-o", str(binary), str(PRODUCER_SOURCE)], check=True)
    return binary


def cgroup2_root() -> Path:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[fields.index("-") + 1] == "cgroup2":
            return Path(fields[4])
    raise RuntimeError("no cgroup2 mount")


def produce(binary: Path, cgroup: Path, count: int, procs: int, path: str = FLOOD_FILE) -> dict[str, float]:
    """Run the producers inside ``cgroup``: their tallies and wall time."""
    def enter() -> None:
        (cgroup / "cgroup.procs").write_text(str(os.getpid()))

    out = subprocess.run([str(binary), path, str(count), str(procs)], capture_output=True, text=True,
                         preexec_fn=enter, check=True)
    eperm, ok, other, ns = out.stdout.split()
    return {"eperm": int(eperm), "ok": int(ok), "other": int(other), "seconds": float(ns) / 1e9}


class Follower:
    """``lockdownctl enforce events --follow --json`` writing to a file; counts its lines."""

    def __init__(self, out: Path) -> None:
        self.path = out
        self.handle = out.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "lockdownctl", "enforce", "events", "--follow", "--json"],
                                     stdout=self.handle, stderr=subprocess.PIPE)
        self.offset = 0
        self.partial = b""
        self.by_kind: Counter[tuple[str, str]] = Counter()
        self.envelope: dict[str, Any] | None = None

    def read(self) -> int:
        """Count the complete lines written so far; the total delivered."""
        with self.path.open("rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        self.offset += len(data)
        data = self.partial + data
        lines = data.split(b"\n")
        self.partial = lines.pop()
        for line in lines:
            event = json.loads(line)
            if "lockdownctl" in event:  # the envelope, last, on one line: the follower's own account
                self.envelope = event
                continue
            self.by_kind[(event["reason"], event["verdict"])] += 1
        return sum(self.by_kind.values())

    def wait_for(self, total: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.read() >= total:
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.2)
        return self.read() >= total

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _out, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _out, err = self.proc.communicate()
        self.handle.close()
        self.read()
        return self.proc.returncode, err.decode("utf-8", "replace")


def flood(count: int, procs: int, audit: bool = False, drain_timeout: float = 300.0) -> dict[str, Any]:
    from lockdownctl.bpf.enforcer import Enforcer
    from tests.conftest import lockdownctl_inproc

    def cli(*args: str) -> int:
        run = lockdownctl_inproc(*args)
        if run.code != 0:
            print(run.err, file=sys.stderr)
        return run.code

    work = Path(tempfile.mkdtemp(prefix="ldctl-flood-"))
    binary = build_producer(work)
    cgroup = cgroup2_root() / f"ldctl-flood-{os.getpid()}"
    cgroup.mkdir()
    policy = work / "policy.yaml"
    policy.write_text(f"version: 1\nprofile: none\nscope:\n  cgroup: /{cgroup.name}\nreasons:\n  {REASON}: deny\n")
    follower = None
    result: dict[str, Any] = {"count": count, "procs": procs, "mode": "audit" if audit else "enforce",
                              "file": FLOOD_FILE}
    try:
        if cli("enforce", "apply", str(policy), *(["--audit"] if audit else []), "--json") != 0:
            raise RuntimeError("enforce apply failed")
        follower = Follower(work / "events.jsonl")
        sentinel = produce(binary, cgroup, 1, 1)
        started = time.monotonic()
        if not follower.wait_for(1, 180):
            code, err = follower.stop()
            raise RuntimeError(f"enforce events --follow printed nothing (exit {code}): {err[-2000:]}")
        result["follower_start_seconds"] = time.monotonic() - started
        begin = time.monotonic()
        tally = produce(binary, cgroup, count, procs)
        flood_end = time.monotonic()
        enforcer = Enforcer.open_pinned()
        assert enforcer is not None
        try:
            per_reason, drops = enforcer.counters()
        finally:
            enforcer.close()
        from lockdownctl.reasons import catalogue

        reason = catalogue().find(REASON)
        assert reason is not None and reason.value is not None
        value = reason.value
        recorded = sum(sum(c[:2]) for c in per_reason)  # every denial and audit makes an event or a drop
        caught_up = follower.wait_for(recorded - drops, drain_timeout)
        drained = time.monotonic()
        code, err = follower.stop()
        delivered = dict(follower.by_kind)
        enforcer = Enforcer.open_pinned()
        assert enforcer is not None
        try:
            per_reason, drops = enforcer.counters()
            from lockdownctl.bpf import libbpf

            left: list[bytes] = []
            ring = libbpf.RingBuffer(enforcer.fds["events"], left.append)
            ring.consume()
            ring.close()
        finally:
            enforcer.close()
        counters = {str(v): {"denied": c[0], "audited": c[1], "excepted": c[2]}
                    for v, c in enumerate(per_reason) if any(c)}
        result.update({
            "sentinel": sentinel, "producers": tally, "reason_value": value, "counters": counters, "drops": drops,
            "delivered": {f"{r}/{v}": n for (r, v), n in sorted(delivered.items())},
            "delivered_total": sum(delivered.values()), "left_in_ring": len(left),
            "caught_up": caught_up, "follower_exit": code, "follower_envelope": follower.envelope,
            "unterminated": follower.partial.decode("utf-8", "replace"), "follower_stderr": err[-2000:],
            "flood_seconds": tally["seconds"], "flood_wall_seconds": flood_end - begin,
            "drain_seconds": drained - flood_end,
            "denials_per_second": (tally["eperm"] if not audit else tally["ok"]) / tally["seconds"],
            "events_per_second": sum(delivered.values()) / (drained - begin),
        })
        return result
    finally:
        if follower is not None and follower.proc.poll() is None:
            follower.stop()
        cli("enforce", "remove")
        for _ in range(50):
            try:
                cgroup.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m tests.vm.flood")
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--procs", type=int, default=8)
    ap.add_argument("--audit", action="store_true")
    args = ap.parse_args()
    out = flood(args.count, args.procs, args.audit)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
