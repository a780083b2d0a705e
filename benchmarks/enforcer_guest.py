"""The measurements of benchmarks/enforcer.py, run as root inside a guest.

Prints one JSON object. Not a test: numbers, measured side by side.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from tests.conftest import lockdownctl_inproc as lockdownctl  # noqa: E402

TRACEFS = "/sys/kernel/tracing/trace"


def open_loop(binary: str, n: int, cgroup: Path | None = None, path: str = TRACEFS) -> tuple[float, int]:
    def enter() -> None:
        if cgroup is not None:
            (cgroup / "cgroup.procs").write_text(str(os.getpid()))

    out = subprocess.run([binary, path, str(n)], capture_output=True, text=True, check=True, preexec_fn=enter)
    ns, denied = out.stdout.split()
    return float(ns), int(denied)


def apply(text: str) -> None:
    path = Path(tempfile.mkdtemp()) / "p.yaml"
    path.write_text(text)
    run = lockdownctl("enforce", "apply", str(path))
    assert run.code == 0, run.err


def remove() -> None:
    assert lockdownctl("enforce", "remove").code == 0


def hot_path(binary: str, policy: str, rounds: int, n: int) -> dict[str, float]:
    """Interleaved rounds without and with the program: the ratio of medians."""
    without, with_ = [], []
    for _ in range(rounds):
        without.append(open_loop(binary, n)[0])
        apply(policy)
        with_.append(open_loop(binary, n)[0])
        remove()
    return {"ns_without": statistics.median(without), "ns_with": statistics.median(with_),
            "ratio": statistics.median(with_) / statistics.median(without)}


def seal_cost(binary: str, policy: str, rounds: int, n: int) -> dict[str, float]:
    """Opens with the enforcer loaded, then with it sealed (the seal adds hooks
    on every path lookup: inode_permission). Sealing is one way until reboot,
    so the rounds cannot interleave: all unsealed rounds first, then sealed.
    Two paths: tracefs (4 components) and a 7-component path."""
    deep = "/usr/share/doc/python3/copyright" if os.path.exists("/usr/share/doc/python3/copyright") else TRACEFS
    apply(policy)
    before = {TRACEFS: [open_loop(binary, n, path=TRACEFS)[0] for _ in range(rounds)],
              deep: [open_loop(binary, n, path=deep)[0] for _ in range(rounds)]}
    path = Path(tempfile.mkdtemp()) / "p.yaml"
    path.write_text(policy)
    run = lockdownctl("enforce", "apply", "--seal", str(path))
    assert run.code == 0, run.err
    after = {TRACEFS: [open_loop(binary, n, path=TRACEFS)[0] for _ in range(rounds)],
             deep: [open_loop(binary, n, path=deep)[0] for _ in range(rounds)]}
    out: dict[str, float] = {}
    for name, p in (("tracefs", TRACEFS), ("deep", deep)):
        out[f"{name}_ns_unsealed"] = statistics.median(before[p])
        out[f"{name}_ns_sealed"] = statistics.median(after[p])
        out[f"{name}_ratio"] = out[f"{name}_ns_sealed"] / out[f"{name}_ns_unsealed"]
    return out


def main() -> None:
    binary, rounds, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    allowed = "version: 1\nprofile: none\nreasons:\n  kcore: deny\n"  # tracefs stays allowed
    many = allowed + "exceptions:\n" + "".join(f"  - uid: {100000 + i}\n    allow: [kcore]\n" for i in range(10000))
    open_loop(binary, n)  # warm up
    result: dict[str, dict[str, Any]] = {"hot_path": hot_path(binary, allowed, rounds, n),
                                         "hot_path_10000_exceptions": hot_path(binary, many, rounds, n)}

    # Event throughput: every open in a cgroup is denied and recorded.
    from lockdownctl.bpf import enforcer as engine
    from lockdownctl.bpf import libbpf

    mount = Path(engine.cgroup2_mount())
    cg = mount / f"ldctl-bench-{os.getpid()}"
    cg.mkdir()
    try:
        apply(f"version: 1\nprofile: none\nscope:\n  cgroup: /{cg.name}\nreasons:\n  tracefs: deny\n")
        enforcer = engine.Enforcer.open_pinned()
        assert enforcer is not None
        received = 0

        def count(_raw: bytes) -> None:
            nonlocal received
            received += 1

        ring = libbpf.RingBuffer(enforcer.fds["events"], count)
        total = int(sys.argv[4]) if len(sys.argv) > 4 else 200000
        producer = subprocess.Popen([binary, TRACEFS, str(total)], stdout=subprocess.PIPE, text=True,
                                    preexec_fn=lambda: (cg / "cgroup.procs").write_text(str(os.getpid())))
        start = time.perf_counter()
        while producer.poll() is None:
            ring.poll(10)
        ring.consume()
        elapsed = time.perf_counter() - start
        producer.communicate()
        per_reason, drops = enforcer.counters()
        denied = sum(c[0] for c in per_reason)
        # The rate above is bounded by how fast the producer can be denied;
        # the consumer's own rate: let denials pile up (no reader), then drain.
        # A guest under TCG is noisy: the median of several pile-and-drain rounds.
        pile = 10000  # fits the 1 MiB ring buffer (80-byte records)
        before = received
        drains: list[tuple[float, int]] = []
        for _ in range(max(rounds, 3)):
            subprocess.run([binary, TRACEFS, str(pile)], check=True, capture_output=True,
                           preexec_fn=lambda: (cg / "cgroup.procs").write_text(str(os.getpid())))
            start_count = received
            start = time.perf_counter()
            ring.consume()
            drains.append((time.perf_counter() - start, received - start_count))
        drain, drained = sorted(drains, key=lambda d: d[1] / d[0])[len(drains) // 2]
        ring.close()
        enforcer.close()
        remove()
        result["events"] = {"denied": denied, "received": before, "drops": drops,
                            "accounted": before + drops == denied, "seconds": elapsed,
                            "delivered_per_second": before / elapsed,
                            "drained": drained, "drain_seconds": drain, "drain_per_second": drained / drain,
                            "drain_rounds_per_second": [round(n / t) for t, n in drains]}
    finally:
        cg.rmdir()
    if "--seal" in sys.argv:  # last: nothing can be removed after it until the guest powers off
        result["seal"] = seal_cost(binary, allowed, rounds, n)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
