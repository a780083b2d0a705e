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
import urllib.request
from pathlib import Path

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
    assert check.returncode == 0 and "SUCCESS: 4 rules found" in check.stdout, check.stdout + check.stderr
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
    # Drops exist only while the enforcer is loaded (tests/unit/test_metrics.py covers that family).
    assert used and used <= exposed | {"lockdownctl_events_dropped_total"}, used - exposed


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


def test_listen_real_scrape_over_loopback() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "lockdownctl", "metrics", "--listen", "127.0.0.1:0"],
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
