"""lockdownctl's metrics with Prometheus' own tools: promtool (Debian's
``prometheus`` package) checks the exposition and the alert rules, a real HTTP
scrape reads ``--listen``, and Debian's prometheus-node-exporter serves the
textfile."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO, lockdownctl
from tests.host.conftest import require, require_root, require_tool

RULES = REPO / "packaging/prometheus"


def _names(text: str) -> set[str]:
    return {s.name for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_promtool_checks_live_exposition() -> None:
    promtool = require_tool("promtool")
    run = lockdownctl("metrics")
    assert run.code == 0, run.err
    proc = subprocess.run([promtool, "check", "metrics"], input=run.out, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0 and not proc.stdout.strip() and not proc.stderr.strip(), proc.stdout + proc.stderr
    assert "lockdownctl_lockdown_level" in _names(run.out)


def test_promtool_checks_and_tests_rules() -> None:
    promtool = require_tool("promtool")
    check = subprocess.run([promtool, "check", "rules", "lockdownctl.rules.yml"], cwd=RULES, capture_output=True,
                           text=True, timeout=60, check=False)
    import yaml

    shipped = yaml.safe_load((Path(RULES) / "lockdownctl.rules.yml").read_text())
    rules = sum(len(group["rules"]) for group in shipped["groups"])  # promtool must find every one
    assert check.returncode == 0 and f"SUCCESS: {rules} rules found" in check.stdout, check.stdout + check.stderr
    test = subprocess.run([promtool, "test", "rules", "lockdownctl.rules.test.yml"], cwd=RULES,
                          capture_output=True, text=True, timeout=60, check=False)
    assert test.returncode == 0 and "SUCCESS" in test.stdout, test.stdout + test.stderr


def test_rule_names_exist_in_exposition() -> None:
    """Every metric an alert rule uses is one lockdownctl writes (on this host, as root)."""
    require_root()
    text = lockdownctl("metrics").out
    exposed = _names(text)
    rules = (RULES / "lockdownctl.rules.yml").read_text()
    used = set(re.findall(r"\blockdownctl_[a-z_]+", rules))
    # Drops exist only while the enforcer is loaded and tamper attempts only while it is sealed
    # (tests/unit/test_metrics.py and test_tamper_events.py cover those families).
    only_loaded = {"lockdownctl_events_dropped_total", "lockdownctl_tamper_attempts_total"}
    assert used and used <= exposed | only_loaded, used - exposed


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert resp.status == 200
        return str(resp.read().decode())


def _wait_port(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


# This venv's prometheus_client, and Debian's (python3-prometheus-client 0.16, what the package uses).
INTERPRETERS = [sys.executable, "/usr/bin/python3"]


@pytest.mark.parametrize("python", INTERPRETERS, ids=["venv", "debian"])
def test_listen_real_scrape_over_loopback(python: str) -> None:
    if python != sys.executable:
        has = subprocess.run([python, "-c", "import prometheus_client, yaml"], capture_output=True, check=False)
        require(has.returncode == 0, f"{python} lacks python3-prometheus-client or python3-yaml")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen([python, "-m", "lockdownctl", "metrics", "--listen", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert line.startswith("lockdownctl: serving metrics on http://127.0.0.1:"), line
        url = line.split(" on ", 1)[1].strip()
        first = _get(url)
        second = _get(url)  # a fresh read per scrape: the run timestamp moves
        stamp = [s.value for t in (first, second) for f in text_string_to_metric_families(t) for s in f.samples
                 if s.name == "lockdownctl_last_run_timestamp_seconds"]
        assert len(stamp) == 2 and stamp[1] > stamp[0]
        assert _names(first) == _names(lockdownctl("metrics").out)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0


def test_node_exporter_reads_the_textfile(tmp_path: Path) -> None:
    exporter = require_tool("prometheus-node-exporter")
    run = lockdownctl("metrics", "--textfile", str(tmp_path))
    assert run.code == 0, run.err
    with socket.socket() as s:  # a free loopback port for the exporter
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([exporter, f"--web.listen-address=127.0.0.1:{port}",
                             f"--collector.textfile.directory={tmp_path}", "--collector.disable-defaults",
                             "--collector.textfile"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_port(port, time.monotonic() + 30)
        body = _get(f"http://127.0.0.1:{port}/metrics")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    ours = (tmp_path / "lockdownctl.prom").read_text()
    served = {(s.name, tuple(sorted(s.labels.items())), s.value) for f in text_string_to_metric_families(body)
              for s in f.samples if s.name.startswith("lockdownctl_")}
    written = {(s.name, tuple(sorted(s.labels.items())), s.value) for f in text_string_to_metric_families(ours)
               for s in f.samples}
    require(bool(served) or "node_textfile_scrape_error 1" not in body, "node_exporter refused the textfile")
    assert served == written
    assert "node_textfile_scrape_error 0" in body
    assert f'node_textfile_mtime_seconds{{file="{tmp_path}/lockdownctl.prom"}}' in body or \
        'node_textfile_mtime_seconds{file="lockdownctl.prom"}' in body


def test_unprivileged_metrics_say_what_they_could_not_read() -> None:
    """As nobody: no enforcer counters and (with kernel.dmesg_restrict=1) no kernel log, each marked unknown."""
    require_root()  # to switch to nobody
    run = lockdownctl("metrics", user="65534")
    assert run.code == 0 and "Traceback" not in run.err, run.err
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(run.out) for s in f.samples}
    assert samples[("lockdownctl_known", (("concept", "decisions"),))] == 0.0
    assert not any(name == "lockdownctl_decisions_total" for name, _ in samples)
    restricted = Path("/proc/sys/kernel/dmesg_restrict").read_text().strip() == "1"
    if restricted:
        assert samples[("lockdownctl_known", (("concept", "kernel_log"),))] == 0.0
        assert not any(name == "lockdownctl_kernel_log_denials" for name, _ in samples)
    promtool = require_tool("promtool")
    check = subprocess.run([promtool, "check", "metrics"], input=run.out, capture_output=True, text=True,
                           timeout=60, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def test_failed_scrape_is_one_line_and_the_exporter_lives_on(tmp_path: Path) -> None:
    """A root that turns malformed between scrapes: that scrape fails with one line, the next one works."""
    root = tmp_path / "root"
    (root / "proc/sys/kernel").mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "lockdownctl", "metrics", "--listen", "127.0.0.1:0", "--root",
                             str(root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stderr is not None
        url = proc.stderr.readline().split(" on ", 1)[1].strip()
        (root / "proc/sys/kernel/osrelease").write_text("bad release/with slash\n")
        with pytest.raises(urllib.error.HTTPError) as failed:
            _get(url)
        assert failed.value.code == 500
        (root / "proc/sys/kernel/osrelease").write_text("6.1.0-28-amd64\n")
        assert "lockdownctl_build_info" in _get(url)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        err = proc.stderr.read() if proc.stderr else ""
    assert "scrape from 127.0.0.1 failed: " in err and "malformed kernel release" in err and "Traceback" not in err
