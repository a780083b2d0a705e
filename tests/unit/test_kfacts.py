"""The kconfig-facts table (kfacts.py) and the distribution dialects it serves.

Ubuntu names its Secure Boot lockdown option CONFIG_LOCK_DOWN_IN_SECURE_BOOT,
Debian/Fedora/RHEL/SUSE CONFIG_LOCK_DOWN_IN_EFI_SECURE_BOOT; Debian ends its
level-set line with its wiki's address. status, audit and check must read
all of them the same way.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from lockdownctl import kfacts
from lockdownctl.checks import preconditions
from lockdownctl.checks.engine import Context
from lockdownctl.reasons import merge
from lockdownctl.root import Root
from lockdownctl.state.document import read_status
from tests.conftest import DATA, REPO, ROOTS, lockdownctl

SB_ROOT = ROOTS / "debian12-6.1-sb-integrity"
CONFIG = "boot/config-6.1.0-56-amd64"
DEBIAN = "CONFIG_LOCK_DOWN_IN_EFI_SECURE_BOOT=y"
UBUNTU = "CONFIG_LOCK_DOWN_IN_SECURE_BOOT=y"


def _root(tmp_path: Path, option: str, kmsg: str | None) -> Path:
    """The Debian 12 Secure Boot root with another option name and kernel log."""
    root = tmp_path / "root"
    shutil.copytree(SB_ROOT, root, symlinks=True)
    config = root / CONFIG
    text = (SB_ROOT / CONFIG).read_text()  # a link to tests/data/kconfig in the fixture
    config.unlink()
    assert DEBIAN in text
    config.write_text(text.replace(DEBIAN, option))
    if kmsg is None:
        (root / "dev/kmsg").unlink()
    else:
        (root / "dev/kmsg").write_text(kmsg)
    return root


def test_table_rows_are_complete_and_cited() -> None:
    options = [row[0] for row in kfacts.KCONFIG]
    assert len(options) == len(set(options))
    for option, effect, level, who, source in kfacts.KCONFIG:
        assert option.startswith("CONFIG_") and effect in ("force", "secure_boot", "none", "allow")
        assert (level in ("integrity", "confidentiality")) == (effect in ("force", "secure_boot")), option
        assert who and "/" in source, option  # a repository path
    assert kfacts.UPSTREAM_FORCE == {"integrity": "CONFIG_LOCK_DOWN_KERNEL_FORCE_INTEGRITY",
                                     "confidentiality": "CONFIG_LOCK_DOWN_KERNEL_FORCE_CONFIDENTIALITY"}
    assert {"CONFIG_LOCK_DOWN_IN_SECURE_BOOT", "CONFIG_LOCK_DOWN_IN_EFI_SECURE_BOOT",
            "CONFIG_EFI_SECURE_BOOT_LOCK_DOWN"} == set(kfacts.SECURE_BOOT_OPTIONS)
    # Pre-5.4 CONFIG_LOCK_DOWN_KERNEL only made lockdown possible (lockdown= turned it on).
    assert "CONFIG_LOCK_DOWN_KERNEL" not in kfacts.SECURE_BOOT_OPTIONS


def test_option_names_live_only_in_the_table() -> None:
    src = REPO / "src" / "lockdownctl"
    for path in src.rglob("*.py"):
        if path.name == "kfacts.py":
            continue
        text = path.read_text()
        for option in (*kfacts.SECURE_BOOT_OPTIONS, "CONFIG_LOCK_DOWN_MANDATORY"):
            assert f'"{option}"' not in text, (path, option)


@pytest.mark.parametrize("option", [DEBIAN, UBUNTU, "CONFIG_EFI_SECURE_BOOT_LOCK_DOWN=y"])
def test_status_says_secure_boot_locked_it_under_every_option_name(option: str, tmp_path: Path) -> None:
    status = read_status(Root(_root(tmp_path, option, None)))  # no kernel log: the config must explain it
    assert status["level"] == "integrity"
    assert status["source"]["kind"] == "secure_boot"
    assert status["source"]["detail"] == f"Secure Boot on and {option}"


def test_status_reads_debians_wiki_ending(tmp_path: Path) -> None:
    line = "Kernel is locked down from EFI secure boot; see https://wiki.debian.org/SecureBoot"
    status = read_status(Root(_root(tmp_path, UBUNTU, f"5,4,4107,-;{line}\n")))
    assert status["source"]["kind"] == "secure_boot"
    assert status["source"]["detail"] == f"Secure Boot on and {UBUNTU}"
    assert line in [e["text"] for e in status["source"]["evidence"]]


@pytest.mark.parametrize("option", [DEBIAN, UBUNTU])
def test_audit_knows_every_secure_boot_option(option: str, tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text((DATA / "kconfig/config-6.12.117+deb12-amd64").read_text().replace(DEBIAN, option))
    run = lockdownctl("audit", "--json", "--config", str(config), "--cmdline", "ro quiet")
    data = json.loads(run.out)["data"]
    verdict = {c["id"]: c["verdict"] for c in data["checks"]}
    assert verdict["secure_boot_locks_down"] == "ok"
    assert option.split("=")[0] in data["lockdown"]["detail"]


def test_check_notes_the_secure_boot_lockdown(tmp_path: Path) -> None:
    root = Root(_root(tmp_path, UBUNTU, None))
    state: Any = {"secure_boot": {"state": "enabled", "evidence": []}, "level": "none"}  # a partial document
    ctx = Context(root, "integrity", merge(None), state)
    found, _suppress, _downgrade = preconditions.evaluate(ctx)
    pre = next(p for p in found if p["id"] == "secure-boot-locks-down")
    assert pre["holds"] is True
    assert "CONFIG_LOCK_DOWN_IN_SECURE_BOOT=y" in pre["effect"] and "integrity" in pre["effect"]
    assert pre["evidence"][0]["where"].endswith(CONFIG + ":9762")


def test_check_compiled_out_reasons_come_from_the_catalogue(tmp_path: Path) -> None:
    """Every reason with a compile-time gate can be suppressed as compiled out (9 had no entry)."""
    from lockdownctl.reasons import TABLE

    assert set(preconditions.FEATURES) == {r.id for r in TABLE if r.config}
    assert {"perf", "xmon_rw", "xen_user_actions", "pcmcia_cis", "mmiotrace"} <= set(preconditions.FEATURES)


def test_audit_reads_the_compile_time_gate_from_the_catalogue(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from lockdownctl.audit import checks as audit_checks
    from lockdownctl.reasons import TABLE

    def rule(check_id: str) -> str:
        return next(c for c in audit_checks.checks("integrity") if c.id == check_id).cond.describe()

    assert "CONFIG_HIBERNATION is not set" in rule("hibernation")
    table = tuple(dataclasses.replace(r, config=("CONFIG_SOMETHING_ELSE",)) if r.id == "hibernation" else r
                  for r in TABLE)
    monkeypatch.setattr(audit_checks, "TABLE", table)
    assert "CONFIG_SOMETHING_ELSE is not set" in rule("hibernation")
    assert "CONFIG_HIBERNATION" not in rule("hibernation")
