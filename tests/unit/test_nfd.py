"""``status --format nfd`` against Node Feature Discovery's documented local-source grammar.

The reader below follows NFD's docs (docs/usage/customization-guide.md, "Input
format") and nfd-worker's parser (source/local/local.go): lines trimmed, empty
lines skipped, ``#`` comments, ``# +expiry-time=<RFC 3339>`` (``# +no-label``,
``# +no-feature``; any other ``# +`` directive is an error), ``<key>[=<value>]``
with ``true`` as the default value, hidden files skipped, files above 64 KiB
skipped. Labels must then pass Kubernetes' label validation (nfd-master drops
invalid ones): a qualified name, a value of at most 63 characters.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOTS, lockdownctl

# k8s.io/apimachinery/pkg/util/validation: IsQualifiedName and IsValidLabelValue
NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
DIRECTIVES = ("expiry-time", "no-label", "no-feature")
FIXTURES = sorted(p.name for p in ROOTS.iterdir() if p.is_dir() and p.name != "malformed")


def nfd_labels(text: str, now: datetime.datetime) -> dict[str, str]:
    """The labels nfd-worker's local source makes of one feature file (or AssertionError)."""
    assert len(text.encode()) <= 65536, "nfd-worker skips files above 64 KiB"
    labels: dict[str, str] = {}
    expiry = now
    skip_label = False
    for raw in text.split("\n"):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            if line.startswith("# +"):
                key, _eq, value = line[3:].partition("=")
                assert key in DIRECTIVES, f"unknown feature file directive {key!r}"
                if key == "expiry-time":
                    expiry = datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
                    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", value.strip())
                skip_label = key == "no-label"
            continue
        if expiry < now:
            continue
        key, eq, value = line.partition("=")
        if not skip_label:
            labels[key] = value if eq else "true"
        skip_label = False
    for key, value in labels.items():
        prefix, slash, name = key.rpartition("/")
        assert slash, f"{key}: unprefixed names are deprecated in NFD"
        assert len(prefix) <= 253 and DNS1123_SUBDOMAIN.match(prefix), key
        assert len(name) <= 63 and NAME.match(name), key
        assert not prefix.endswith("kubernetes.io") or prefix.endswith("feature.node.kubernetes.io"), \
            f"{key}: nfd-master refuses kubernetes.io namespaces other than feature.node.kubernetes.io"
        assert len(value) <= 63 and VALUE.match(value), f"{key}={value}"
    return labels


def test_reader_rejects_what_nfd_rejects() -> None:
    """The grammar check is not vacuous."""
    now = datetime.datetime.now(datetime.UTC)
    for bad in ("# +expiry=2030-01-01T00:00:00Z\nfeature.node.kubernetes.io/a=b\n",
                "lockdown=integrity\n", "feature.node.kubernetes.io/a=b c\n",
                "feature.node.kubernetes.io/a=" + "x" * 64 + "\n", "kubernetes.io/a=b\n"):
        with pytest.raises(AssertionError):
            nfd_labels(bad, now)
    expired = "# +expiry-time=2012-07-28T11:22:33Z\nfeature.node.kubernetes.io/a=b\n"
    assert nfd_labels(expired, now) == {}
    assert nfd_labels("feature.node.kubernetes.io/flag\n", now) == {"feature.node.kubernetes.io/flag": "true"}


@pytest.mark.parametrize("name", FIXTURES)
def test_nfd_file_of_fixture_root(name: str) -> None:
    root = str(ROOTS / name)
    run = lockdownctl("status", "--format", "nfd", "--root", root)
    assert run.code == 0, run.err
    now = datetime.datetime.now(datetime.UTC)
    labels = nfd_labels(run.out, now)
    ns = "feature.node.kubernetes.io/lockdown."
    assert set(labels) == {ns + k for k in ("level", "source", "secureboot", "module-signing-enforced",
                                            "enforcer-loaded", "enforcer-sealed")}
    status = lockdownctl("status", "--json", "--root", root).json()["data"]
    if status["level_read_from"] == "securityfs" and status["lsm"]["lockdown_active"]:
        assert labels[ns + "level"] == status["level"]
        assert labels[ns + "source"] == status["source"]["kind"]
    elif status["lsm"]["lockdown_active"] is False:
        assert labels[ns + "level"] == "none"  # displayed, not enforced
    else:
        assert labels[ns + "level"] == "unknown"  # inferred from boot settings: never claimed
    sb = status["secure_boot"]["state"]
    assert labels[ns + "secureboot"] == ("true" if sb == "enabled" else "unknown" if sb == "unknown" else "false")
    # Not the running system: no enforcer can be seen.
    assert labels[ns + "enforcer-loaded"] == labels[ns + "enforcer-sealed"] == "unknown"
    # Two hours ahead: the labels vanish if nothing refreshes them.
    expiry = re.search(r"^# \+expiry-time=(\S+)$", run.out, re.M)
    assert expiry is not None
    left = datetime.datetime.fromisoformat(expiry.group(1).replace("Z", "+00:00")) - now
    assert datetime.timedelta(minutes=110) < left <= datetime.timedelta(hours=2)
    assert nfd_labels(run.out, now + datetime.timedelta(hours=3)) == {}


def test_module_signing_label() -> None:
    ns = "feature.node.kubernetes.io/lockdown.module-signing-enforced"
    now = datetime.datetime.now(datetime.UTC)
    at = {name: nfd_labels(lockdownctl("status", "--format", "nfd", "--root", str(ROOTS / name)).out, now)[ns]
          for name in ("debian12-6.12-none", "debian12-6.1-sb-integrity")}
    # Debian builds CONFIG_MODULE_SIG=y without _FORCE: only lockdown makes signatures mandatory.
    assert at == {"debian12-6.12-none": "false", "debian12-6.1-sb-integrity": "true"}


def test_sig_enforce_parameter_wins(tmp_path: Path) -> None:
    """The running kernel's own answer (sysfs sig_enforce=Y) beats the level."""
    root = tmp_path / "root"
    shutil.copytree(ROOTS / "debian12-6.12-none", root)
    param = root / "sys/module/module/parameters/sig_enforce"
    param.parent.mkdir(parents=True)
    param.write_text("Y\n")
    out = lockdownctl("status", "--format", "nfd", "--root", str(root)).out
    assert "feature.node.kubernetes.io/lockdown.module-signing-enforced=true\n" in out


def test_output_written_atomically(tmp_path: Path) -> None:
    target = tmp_path / "features.d" / "lockdown"
    target.parent.mkdir()
    run = lockdownctl("status", "--format", "nfd", "--root", str(ROOTS / "debian12-6.12-none"),
                      "--output", str(target))
    assert run.code == 0 and run.out.strip() == f"wrote {target}", run.err
    assert os.listdir(target.parent) == ["lockdown"]  # the hidden temporary file is gone
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    labels = nfd_labels(target.read_text(), datetime.datetime.now(datetime.UTC))
    assert labels["feature.node.kubernetes.io/lockdown.level"] == "none"


def test_dry_run_and_unwritable(tmp_path: Path) -> None:
    target = tmp_path / "lockdown"
    run = lockdownctl("status", "--format", "nfd", "--root", str(ROOTS / "debian12-6.12-none"),
                      "--output", str(target), "--dry-run")
    assert run.code == 0 and run.out.startswith(f"# would write {target} (dry run)\n") and not target.exists()
    run = lockdownctl("status", "--format", "nfd", "--root", str(ROOTS / "debian12-6.12-none"),
                      "--output", str(tmp_path / "missing" / "lockdown"))
    assert run.code == 74 and "cannot write" in run.err and "Traceback" not in run.err


def test_json_has_the_labels() -> None:
    data = lockdownctl("status", "--format", "nfd", "--json", "--root", str(ROOTS / "debian12-6.12-none")).json()
    assert data["data"]["labels"]["feature.node.kubernetes.io/lockdown.level"] == "none"
    assert data["data"]["file"].startswith("# lockdownctl status --format nfd")


def test_expect_still_decides_the_exit_code() -> None:
    run = lockdownctl("status", "--format", "nfd", "--expect", "integrity", "--root",
                      str(ROOTS / "debian12-6.12-none"))
    assert run.code == 1 and "lockdown.level=none" in run.out


def test_output_needs_the_nfd_format(tmp_path: Path) -> None:
    run = lockdownctl("status", "--output", str(tmp_path / "x"), "--root", str(ROOTS / "debian12-6.12-none"))
    assert run.code == 2 and "--format nfd" in run.err and not (tmp_path / "x").exists()
