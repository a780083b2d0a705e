"""watch: the parser never raises, the CLI's outputs, options and errors, the Event record."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockdownctl.events import Event, merge
from lockdownctl.klog import parser, sources
from lockdownctl.reasons import TABLE, reason_from_phrase
from tests.conftest import DATA, REPO, lockdownctl

KLOG = DATA / "klog"
LOCKDOWNISH = st.sampled_from(["Lockdown: ", "Lockdown early: ", " is restricted", "; see man kernel_lockdown.7",
                               "Kernel is locked down from ", "tclass=lockdown", 'lockdown_reason="', "avc:  denied  {",
                               " callbacks suppressed", "Could not create tracefs '", " is rejected", "due to lockdown",
                               "[", "]", "{", "}", '"MESSAGE":[', ": ", "\n", "\x00", "caller=T", ";", ","])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=40), LOCKDOWNISH), max_size=30).map("".join))
def test_any_text_line_never_raises(line: str) -> None:
    event = parser.parse_line(line, "file", 1)
    assert event is None or event.kind in ("denial", "level-set", "ratelimit", "unparsed")
    if event is not None:
        json.dumps(event.to_dict(), allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=60), LOCKDOWNISH.map(str.encode)), max_size=40).map(b"".join))
def test_any_bytes_never_raise_and_scans_agree(data: bytes) -> None:
    events, newlines = parser.scan_block(data, len(data), "file", 1, json_lines=True)
    assert newlines == data.count(b"\n")
    for event in events:
        json.dumps(event.to_dict(), allow_nan=False)


def test_event_round_trip_and_validation() -> None:
    event = Event("denial", "enforcer", "enforcer", time=1.5, comm="x", pid=3, reason="msr", verdict="audited")
    assert Event.from_dict(event.to_dict()) == event
    assert Event.from_dict({**event.to_dict(), "tid": 4}) == event  # enforcer extras are ignored
    with pytest.raises(ValueError, match="kind"):
        Event.from_dict({**event.to_dict(), "kind": "oops"})
    with pytest.raises(ValueError, match="pid"):
        Event.from_dict({**event.to_dict(), "pid": "3"})


def test_merge_orders_by_time_and_keeps_stream_order() -> None:
    log = [Event("denial", "file", "upstream", time=t) for t in (1.0, 3.0, 5.0)]
    bpf = [Event("denial", "enforcer", "enforcer", time=t) for t in (2.0, 4.0)]
    assert [e.time for e in merge(log, bpf)] == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_old_phrases_are_catalogue_data() -> None:
    """Pre-5.4 phrases live on the catalogue records, are unique and never shadow a current string."""
    olds = [o.lower() for r in TABLE for o in r.old_logs]
    assert len(olds) == len(set(olds))
    assert not set(olds) & {r.log.lower() for r in TABLE}
    found = reason_from_phrase("Direct MSR access")
    assert found is not None and found[0].id == "msr" and found[1] is True
    event = parser.parse_line("Lockdown: rasdaemon: Direct MSR access is restricted; see man kernel_lockdown.7")
    assert event is not None and event.reason == "msr" and event.comm == "rasdaemon"


def test_parser_knows_no_reason_strings() -> None:
    """The catalogue is the only home of reason strings (house rule)."""
    source = (REPO / "src/lockdownctl/klog/parser.py").read_text()
    for reason in TABLE:
        for phrase in (reason.log, *reason.old_logs):
            if len(phrase) > 6 and " " in phrase:  # one word ("tracefs") is also grammar ("Could not create tracefs")
                assert phrase not in source, phrase


def test_cli_json_lines_then_envelope() -> None:
    run = lockdownctl("watch", "--json", str(KLOG / "guest-6.12-integrity" / "dmesg.txt"))
    lines = run.out.splitlines()
    events = [json.loads(line) for line in lines[:-1]]
    envelope = json.loads(lines[-1])
    assert run.code == 1 and envelope["exit_code"] == 1 and envelope["command"] == "watch"
    assert [e["kind"] for e in events].count("denial") == envelope["data"]["denials"] == 7
    assert envelope["data"]["by_reason"][0]["reason"] == "module_signature"
    assert envelope["data"]["by_reason"][0]["remedy"].startswith("sign the modules")


def test_cli_summary_text_and_lower_bound_note() -> None:
    run = lockdownctl("watch", "--summary", str(KLOG / "ratelimit" / "dmesg.txt"))
    assert run.code == 1
    assert "counts are lower bounds" in run.out and "31 suppressed" in run.out
    assert "systemd-logind (3)" in run.out and "use suspend to RAM" in run.out


def test_cli_no_findings_exits_0() -> None:
    run = lockdownctl("watch", str(KLOG / "guest-6.12-none" / "dmesg.txt"))
    assert run.code == 0 and "0 denials" in run.out


def test_cli_stdin_and_garbage() -> None:
    data = (KLOG / "garbage" / "dmesg.txt").read_bytes()
    proc = subprocess.run([sys.executable, "-m", "lockdownctl", "watch", "--json", "--summary", "-"], input=data,
                          capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")}, check=False)
    assert "Traceback" not in proc.stderr.decode()
    data_out = json.loads(proc.stdout)["data"]
    assert data_out["unparsed"] == 5 and data_out["denials"] == 4 and data_out["lines"] == 12


def test_cli_events_merge_with_log(tmp_path: Path) -> None:
    saved = tmp_path / "enforcer.jsonl"
    saved.write_text(json.dumps(Event("denial", "enforcer", "enforcer", time=1.7, comm="insmod", pid=99,
                                      reason="module_signature", verdict="audited").to_dict()) + "\n")
    run = lockdownctl("watch", "--json", str(KLOG / "guest-6.12-integrity" / "dmesg.txt"), "--events", str(saved))
    events = [json.loads(line) for line in run.out.splitlines()[:-1]]
    times = [e["time"] for e in events]
    assert times == sorted(times)
    assert [e["source"] for e in events].count("enforcer") == 1
    assert json.loads(run.out.splitlines()[-1])["data"]["audited"] == 1


@pytest.mark.parametrize(("args", "message"), [
    (["/nonexistent/log"], "/nonexistent/log: no such file"),
    (["x", "--journal"], "either FILE or --journal"),
    (["x", "--events", "y", "--follow"], "--events cannot be merged with --follow"),
])
def test_cli_input_errors(args: list[str], message: str) -> None:
    run = lockdownctl("watch", *args)
    assert run.code == 2 and message in run.err and len(run.err.splitlines()) == 1


def test_cli_bad_events_file_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "ev.jsonl"
    bad.write_text('{"kind": "denial", "source": "enforcer", "dialect": "enforcer"}\n{"kind": "nope"}\n')
    run = lockdownctl("watch", str(KLOG / "upstream" / "dmesg.txt"), "--events", str(bad))
    assert run.code == 2 and f"{bad}:2: kind must be one of" in run.err


def test_kmsg_from_fixture_root(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "kmsg").write_bytes((KLOG / "guest-6.1-integrity" / "dmesg.txt").read_bytes())
    run = lockdownctl("watch", "--json", "--summary", "--root", str(tmp_path))
    data = run.json()["data"]
    assert data["denials"] == 1 and data["level_changes"][0]["where"] == "command line"


def test_journal_missing_is_feature_missing(tmp_path: Path) -> None:
    run = lockdownctl("watch", "--journal", "--root", str(tmp_path))
    assert run.code == 3 and "journal" in run.err and "Traceback" not in run.err


def test_follow_file_sees_appended_lines_and_stops_on_sigterm(tmp_path: Path) -> None:
    log = tmp_path / "kern.log"
    log.write_text("[    1.000000] hello\n")
    proc = subprocess.Popen([sys.executable, "-m", "lockdownctl", "watch", "--follow", "--json", str(log)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    try:
        time.sleep(1.5)
        with log.open("a") as fh:
            fh.write("[    2.000000] Lockdown: late: use of kprobes is restricted; see man kernel_lockdown.7\n")
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert json.loads(first)["comm"] == "late"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1 and b"Traceback" not in err
    envelope = json.loads(out.splitlines()[-1])
    assert envelope["data"]["interrupted"] is True and envelope["data"]["denials"] == 1
    assert sources.POLL_SECONDS < 1


def test_logind_hibernation_probes_fold_into_one_line() -> None:
    """Golden: tests/data/klog/logind-probes/expected-watch.txt (LOCKDOWNCTL_REGEN=1 rewrites it).
    Eleven logind probes print once and fold into one summary line with the count and the
    remedy; systemd-sleep's real hibernate attempt and other denials print as always."""
    path = KLOG / "logind-probes" / "dmesg.txt"
    run = lockdownctl("watch", str(path))
    text = run.out.replace(str(REPO) + "/", "")
    golden = KLOG / "logind-probes" / "expected-watch.txt"
    if os.environ.get("LOCKDOWNCTL_REGEN") == "1":
        golden.write_text(text)
    assert run.code == 1 and text == golden.read_text()
    assert [line for line in text.splitlines() if "DENIED" in line and "systemd-logind" in line] != []
    assert sum("DENIED" in line and "systemd-logind" in line for line in text.splitlines()) == 1
    assert "systemd-sleep" in text and "  Probes: systemd-logind asked about hibernation 11 times" in text
    assert "boot with nohibernate" in text and "AllowHibernation=no" in text
    # JSON keeps every event (nothing lost for machines) and carries the fold in the summary
    lines = lockdownctl("watch", "--json", str(path)).out.splitlines()
    envelope = json.loads(lines[-1])
    assert sum('"systemd-logind"' in line for line in lines[:-1]) == 11
    assert envelope["data"]["probes"][0]["count"] == 11 and envelope["data"]["denials"] == 13
