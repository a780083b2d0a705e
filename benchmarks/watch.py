"""watch throughput: a 1,000,000-line kernel log with 1 % lockdown lines, against grep.

Runs ``lockdownctl watch --json FILE`` (every event printed as a JSON line),
``lockdownctl watch --summary --json FILE`` and ``grep -cF 'Lockdown:' FILE``
side by side, alternating, each writing into a pipe, and prints lines per
second and the ratio of each watch run to grep's time (best of N runs; the
ratio includes Python's start-up).

Goals (issue #9): at least 500,000 lines/s and at most 5x grep's time.

    python3 benchmarks/watch.py [--lines N] [--runs N] [--keep FILE]

``--kmsg-flood DIR`` instead prints the figures of ``watch --follow`` during a
kernel-log flood that tests/vm/test_watch_flood.py left in
``DIR/<kernel>-confidentiality/watch_flood.json`` (``LOCKDOWNCTL_VM_RESULTS=DIR``),
one Markdown table row per kernel, and exits 1 unless every one is exact.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Ordinary kernel chatter (none of it about lockdown), shaped like a real boot and run-time log.
NOISE = (
    "usb 1-{a}: new high-speed USB device number {b} using xhci_hcd",
    "EXT4-fs (nvme0n1p{a}): mounted filesystem {b:08x}-7c1e-4a4e-9a53-1d2c3b4a5f6e r/w with ordered data mode",
    "audit: type=1400 audit(1732270000.{b:03d}:{a}): apparmor=\"STATUS\" operation=\"profile_load\" "
    "profile=\"unconfined\" name=\"snap.lxd.{a}\" pid={b} comm=\"apparmor_parser\"",
    "e1000e 0000:00:1f.6 eth0: NIC Link is Up 1000 Mbps Full Duplex, Flow Control: Rx/Tx",
    "IPv6: ADDRCONF(NETDEV_CHANGE): wlp{a}s0: link becomes ready",
    "[UFW BLOCK] IN=wlp0s20f3 OUT= MAC= SRC=192.168.1.{a} DST=224.0.0.251 LEN={b} TOS=0x00 PROTO=UDP",
    "nvme nvme0: {a}/0/0 default/read/poll queues",
    "clocksource: tsc: mask: 0xffffffffffffffff max_cycles: 0x{b:x}, max_idle_ns: 440795239410 ns",
    "systemd[1]: Started session-{a}.scope - Session {a} of User admin.",
    "wlp0s20f3: associated (aid {a})",
)
# Lockdown lines of every dialect (docs/kernel-facts.md 0.2).
LOCKDOWN = (
    "Lockdown: bpftrace: use of kprobes is restricted; see man kernel_lockdown.7",
    "Lockdown: systemd-logind: hibernation is restricted; see man kernel_lockdown.7",
    "Lockdown: fwupd: /dev/mem,kmem,port is restricted; see man kernel_lockdown.7",
    "Lockdown: Use of kprobes is restricted; see man kernel_lockdown.7",
    "Lockdown early: swapper/0: modifying ACPI tables is restricted; see man kernel_lockdown.7",
    "Kernel is locked down from command line; see man kernel_lockdown.7",
    "Could not create tracefs 'kprobe_events' entry",
    "vboxdrv: loading of unsigned module is rejected",
    "lockdown_is_locked_down: 12 callbacks suppressed",
    "audit: type=1400 audit(1732270000.1:7): avc:  denied  { confidentiality } for  pid=1 comm=\"swapper/0\" "
    "lockdown_reason=\"use of tracefs\" scontext=system_u:system_r:kernel_t:s0 "
    "tcontext=system_u:system_r:kernel_t:s0 tclass=lockdown permissive=0",
)


def generate(path: Path, lines: int, share: float = 0.01, seed: int = 9) -> int:
    rng = random.Random(seed)
    every = round(1 / share)
    out = []
    count = 0
    for i in range(lines):
        stamp = f"[{i * 0.0007:12.6f}] "
        if i % every == every // 2:
            out.append(stamp + LOCKDOWN[count % len(LOCKDOWN)])
            count += 1
        else:
            out.append(stamp + rng.choice(NOISE).format(a=rng.randrange(1, 64), b=rng.randrange(1, 1 << 20)))
    path.write_text("\n".join(out) + "\n")
    return count


def timed(cmd: list[str], env: dict[str, str]) -> float:
    """Wall time of ``cmd`` with its output read through a pipe: GNU grep stops at
    the first match when its output is /dev/null, so that would not be a scan."""
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, check=False)
    return time.perf_counter() - start


FLOOD_HEADER = ("| kernel | flood records (/s) | EPERM | printed + suppressed (kernel) | printed + suppressed "
                "(watch) | lost (watch, C reader) | VmHWM quiet / flood | test s |\n"
                "|---|---:|---:|---|---|---|---|---:|")


def flood_rows(results: Path) -> tuple[list[str], bool]:
    """The README table rows of the kmsg flood figures under ``results``, and whether
    every kernel's accounting was exact (kernel and watch: printed + suppressed = EPERM)."""
    import json

    rows = []
    exact = True
    for path in sorted(results.glob("*-confidentiality/watch_flood.json")):
        f = json.loads(path.read_text())
        kernel = path.parent.name.removesuffix("-confidentiality")
        flood, seconds = f["flood_records"], f.get("flood_seconds", 10)
        ok = (f["kernel_printed"] + f["kernel_suppressed"] == f["denials"]
              and (f["watcher_printed"], f["watcher_suppressed"]) == (f["kernel_printed"], f["kernel_suppressed"])
              and f["watcher_lost_records"] == f["recorder_lost_records"] == 0)
        exact = exact and ok
        rows.append(f"| {kernel} | {flood:,} ({flood / seconds:,.0f}) | {f['denials']:,} | "
                    f"{f['kernel_printed']} + {f['kernel_suppressed']:,} | "
                    f"{f['watcher_printed']} + {f['watcher_suppressed']:,} | "
                    f"{f['watcher_lost_records']}, {f['recorder_lost_records']} | "
                    f"{f['quiet_vmhwm_kib']:,} / {f['flood_vmhwm_kib']:,} KiB | {f['seconds']} |")
    return rows, exact and bool(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--keep", type=Path, help="write the generated log here and keep it")
    ap.add_argument("--kmsg-flood", type=Path, metavar="DIR",
                    help="print the kmsg flood figures tests/vm/test_watch_flood.py left in DIR")
    args = ap.parse_args()
    if args.kmsg_flood is not None:
        rows, exact = flood_rows(args.kmsg_flood)
        if not rows:
            print(f"{args.kmsg_flood}: no */watch_flood.json", file=sys.stderr)
            return 2
        print(FLOOD_HEADER, *rows, sep="\n")
        return 0 if exact else 1
    grep = shutil.which("grep")
    if grep is None:
        print("grep not found", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="lockdownctl-bench-"))
    path = args.keep or tmp / "kern.log"
    try:
        lockdown_lines = generate(path, args.lines)
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        cmds = {
            "grep -cF 'Lockdown:'": [grep, "-cF", "Lockdown:", str(path)],
            "watch --json": [sys.executable, "-m", "lockdownctl", "watch", "--json", str(path)],
            "watch --summary --json": [sys.executable, "-m", "lockdownctl", "watch", "--summary", "--json",
                                       str(path)],
        }
        for cmd in cmds.values():  # warm the page cache and the bytecode cache
            timed(cmd, env)
        times: dict[str, list[float]] = {name: [] for name in cmds}
        for _ in range(args.runs):
            for name, cmd in cmds.items():
                times[name].append(timed(cmd, env))
        size = path.stat().st_size
        print(f"log: {args.lines} lines, {size / 1e6:.1f} MB, {lockdown_lines} lockdown lines; "
              f"best of {args.runs} runs; load average {os.getloadavg()[0]:.2f}")
        base = min(times["grep -cF 'Lockdown:'"])
        for name, values in times.items():
            best = min(values)
            print(f"  {name:24} best {best * 1000:7.1f} ms  median {statistics.median(values) * 1000:7.1f} ms  "
                  f"{args.lines / best:12,.0f} lines/s  {best / base:5.2f}x grep")
        ok = all(args.lines / min(times[n]) >= 500_000 and min(times[n]) / base <= 5
                 for n in cmds if n.startswith("watch"))
        print("goals (>= 500,000 lines/s, <= 5x grep):", "met" if ok else "NOT met")
        return 0 if ok else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
