"""The seal's tamper records (struct ld_tamper_event) as events, in ``watch`` and in the metrics.

The records here are built with the ctypes mirror that tests/unit/test_bpf_abi.py
checks against seal.h; the guest tests (tests/vm/test_seal.py) read real ones.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from lockdownctl.bpf import seal
from lockdownctl.bpf.abi import kernel_dev
from lockdownctl.bpf.decode import EventDecoder, TamperDecoder, render_event
from lockdownctl.events import Event
from lockdownctl.reasons import catalogue
from tests.conftest import DATA, ROOTS, lockdownctl
from tests.unit.test_metrics import parse, value

KLOG = DATA / "klog"


def record(rule_name: str, **fields: int | bytes) -> bytes:
    rec = seal.LdTamperEvent(time_ns=2_500_000_000, pid=4242, tid=4243, uid=0, cgroup_id=1, object=17, detail=3,
                             comm=b"bpftool", rule=[r.name for r in seal.RULES].index(rule_name))
    for name, v in fields.items():
        setattr(rec, name, v)
    return bytes(rec)


def decoder() -> TamperDecoder:
    return TamperDecoder(EventDecoder(catalogue()))


def test_a_record_decodes_to_a_tamper_event() -> None:
    out = decoder().decode(record("link-fd-by-id"))
    assert out["kind"] == "tamper" and out["source"] == "enforcer" and out["dialect"] == "seal"
    assert (out["rule"], out["hook"], out["object"], out["detail"]) == ("link-fd-by-id", "bpf", "link id 17", 3)
    assert (out["pid"], out["tid"], out["comm"], out["uid"], out["time"]) == (4242, 4243, "bpftool", 0, 2.5)
    assert out["verdict"] == "denied" and out["what"] == "link-fd-by-id" and out["reason"] is None
    assert out["exe"] is None and out["exe_id"] is None  # no identity recorded: nothing guessed from /proc
    assert "seal refused link-fd-by-id" in out["raw"]
    line = render_event(out)
    assert "TAMPER" in line and "link-fd-by-id" in line and "pid 4242 (bpftool)" in line


def test_the_executable_is_named_only_when_its_identity_matches() -> None:
    st = os.stat("/proc/self/exe")
    mine = record("pin-unlink", pid=os.getpid(), exe_ino=st.st_ino, exe_dev=kernel_dev(st.st_dev))
    assert decoder().decode(mine)["exe"] == os.path.realpath("/proc/self/exe")
    other = record("pin-unlink", pid=os.getpid(), exe_ino=st.st_ino + 1, exe_dev=kernel_dev(st.st_dev))
    out = decoder().decode(other)
    assert out["exe"] is None and out["exe_id"].endswith(f":{st.st_ino + 1}")


def test_devices_print_as_major_minor_and_unknown_rules_stay_visible() -> None:
    assert decoder().decode(record("umount", object=(0 << 20) | 23))["object"] == "device 0:23"
    odd = decoder().decode(record("umount", rule=99))
    assert odd["rule"] is None and odd["rule_value"] == 99 and "rule 99" in odd["raw"]


def test_saved_tamper_events_round_trip_and_watch_counts_them(tmp_path: Path) -> None:
    """``enforce events --json`` output read back by ``watch --events``: shown, summarised, exit 1."""
    events = [decoder().decode(record("pin-unlink", time_ns=1_700_000_000, comm=b"rm")),
              decoder().decode(record("pin-unlink", time_ns=1_800_000_000, comm=b"rm")),
              decoder().decode(record("umount", time_ns=1_900_000_000, comm=b"umount"))]
    assert Event.from_dict(events[0]).kind == "tamper"
    saved = tmp_path / "tamper.jsonl"
    saved.write_text("".join(json.dumps(e) + "\n" for e in events))
    log = str(KLOG / "guest-6.12-integrity" / "dmesg.txt")
    run = lockdownctl("watch", "--json", log, "--events", str(saved))
    data = json.loads(run.out.splitlines()[-1])["data"]
    alone = json.loads(lockdownctl("watch", "--json", log).out.splitlines()[-1])["data"]
    assert data["tamper_attempts"] == 3 and data["unparsed"] == alone["unparsed"]  # not counted as unparsed
    assert data["tamper"] == [{"rule": "pin-unlink", "attempts": 2, "processes": {"rm": 2}},
                              {"rule": "umount", "attempts": 1, "processes": {"umount": 1}}]
    assert run.code == 1
    text = lockdownctl("watch", log, "--events", str(saved))
    assert "3 tamper attempts" in text.out and "Tamper: the seal refused pin-unlink 2 times: rm (2)" in text.out
    assert sum("TAMPER" in line and "[seal]" in line for line in text.out.splitlines()) == 3


def test_metrics_count_tamper_attempts_by_rule() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from lockdownctl.metrics import Collector, gather
    from lockdownctl.root import Root

    root = Root(ROOTS / "debian12-6.12-none")
    snap = gather(root)
    by_rule = {r.name: 0 for r in seal.RULES} | {"pin-unlink": 4, "umount": 1}
    state = {"loaded": True, "policy_id": "00000000deadbeef", "mode": "enforce", "profile": "integrity",
             "policy_file": "", "sealed": True, "ring_buffer_drops": 0, "verdicts": {}, "counters": {},
             "tamper": {"by_rule": by_rule, "dropped": 2}}
    snap["enforcer"] = {"known": True, "counters_known": True, "loaded": True, "sealed": True, "state": state,
                        "expected": True}
    reg = CollectorRegistry(auto_describe=False)
    reg.register(Collector(root, snap))
    m = parse(generate_latest(reg).decode())
    assert value(m, "lockdownctl_tamper_attempts_total", rule="pin-unlink") == 4.0
    assert value(m, "lockdownctl_tamper_attempts_total", rule="link-fd-by-id") == 0.0  # every rule: a series
    assert value(m, "lockdownctl_tamper_events_dropped_total") == 2.0
    assert value(m, "lockdownctl_known", concept="tamper") == 1.0
    # unreadable counters: absent and unknown, never 0
    state["tamper"] = {"by_rule": None, "dropped": None, "error": "seal-tamper_counters: Operation not permitted"}
    reg = CollectorRegistry(auto_describe=False)
    reg.register(Collector(root, snap))
    m = parse(generate_latest(reg).decode())
    assert value(m, "lockdownctl_tamper_attempts_total", rule="pin-unlink") is None
    assert value(m, "lockdownctl_known", concept="tamper") == 0.0
