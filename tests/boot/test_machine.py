"""The boot tier's own machinery, without QEMU: cache keys, result reading, the run verdict."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from . import machine


def test_securityfs_level() -> None:
    assert machine.securityfs_level("none [integrity] confidentiality\n") == "integrity"
    assert machine.securityfs_level("[none] integrity confidentiality") == "none"
    assert machine.securityfs_level("cat: /sys/kernel/security/lockdown: No such file or directory") is None


def test_image_key_follows_every_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = tmp_path / "image"
    shutil.copytree(machine.IMAGE_INPUTS, inputs)
    monkeypatch.setattr(machine, "IMAGE_INPUTS", inputs)
    key = machine.image_key()
    assert key == machine.image_key()
    for name in ("packages", "build.sh", "boottest-hook", "boottest.service"):
        path = inputs / name
        original = path.read_bytes()
        path.write_bytes(original + b"\n")
        assert machine.image_key() != key, name
        path.write_bytes(original)
    assert machine.image_key() == key
    monkeypatch.setattr(machine, "SUITE", "trixie")
    assert machine.image_key() != key


def test_source_key_ignores_what_is_not_installed(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "src" / "a.py").write_text("1")
    (tmp_path / "tests" / "t.py").write_text("1")
    key = machine.source_key(tmp_path)
    (tmp_path / "tests" / "t.py").write_text("2")
    assert machine.source_key(tmp_path) == key
    (tmp_path / "src" / "a.py").write_text("2")
    assert machine.source_key(tmp_path) != key


def test_requirements_cover_dependencies_and_build() -> None:
    reqs = machine.requirements()
    assert any(r.lower().startswith("pyyaml") for r in reqs)
    assert any(r.startswith("setuptools") for r in reqs)


def test_firmware_per_secure_boot(tmp_path: Path) -> None:
    on = " ".join(machine.Machine(tmp_path / "b.qcow2", secure_boot=True).qemu_args(
        tmp_path / "d", tmp_path / "v", tmp_path, None))
    off = " ".join(machine.Machine(tmp_path / "b.qcow2", secure_boot=False).qemu_args(
        tmp_path / "d", tmp_path / "v", None, None))
    assert "OVMF_CODE_4M.secboot.fd" in on and "smm=on" in on
    assert "OVMF_CODE_4M.fd," in off
    assert "mount_tag=boottest" in on and "mount_tag=boottest" not in off


def fake_boot(share: Path, n: int, rc: int = 0, dmesg: str = "", complete: bool = True) -> machine.BootResult:
    d = share / "out" / f"boot{n}"
    d.mkdir(parents=True)
    (d / "rc").write_text(f"{rc}\n")
    (d / "dmesg.txt").write_text(dmesg)
    (d / "lockdown").write_text("none [integrity] confidentiality\n")
    (d / "journal.txt").write_text("[   40.1] boottest systemd[1]: Starting boottest.service - boot test hook\n")
    if complete:
        (d / "complete").write_text("done\n")
    return machine.BootResult(n, d)


def test_run_check(tmp_path: Path) -> None:
    good = machine.RunResult(tmp_path, True, [fake_boot(tmp_path, 1)], [20.0])
    good.check(boots=1)
    assert good.boot(1).level == "integrity"
    with pytest.raises(AssertionError, match="1 boots, expected 2"):
        good.check(boots=2)
    failing = machine.RunResult(tmp_path / "f", True, [fake_boot(tmp_path / "f", 1, rc=1)], [20.0])
    with pytest.raises(AssertionError, match="guest script exit 1"):
        failing.check(boots=1)
    splat = machine.RunResult(tmp_path / "s", True, [fake_boot(tmp_path / "s", 1, dmesg="[ 1.0] BUG: oops\n")], [1.0])
    with pytest.raises(AssertionError, match="kernel splat"):
        splat.check(boots=1)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "serial.log").write_text("[  99.0] reboot: Power down\n[  99.1] Kernel panic - not syncing\n")
    console = machine.RunResult(tmp_path / "c", True, [fake_boot(tmp_path / "c", 1)], [1.0])
    with pytest.raises(AssertionError, match="splat on the serial console"):
        console.check(boots=1)
    (tmp_path / "c" / "out" / "boot1" / "journal.txt").write_text("")
    (tmp_path / "c" / "serial.log").write_text("")
    with pytest.raises(AssertionError, match=r"no boottest\.service"):
        console.check(boots=1)
    hung = machine.RunResult(tmp_path / "h", True, [], [900.0], problem="boot 1: QEMU killed after 900 s")
    with pytest.raises(AssertionError, match="QEMU killed"):
        hung.check(boots=1)
    with pytest.raises(AssertionError, match="recorded no 'status'"):
        good.boot(1).record("status")


def test_wheelhouse_failure_names_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCKDOWNCTL_BOOT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("sys.executable", "/bin/false")
    with pytest.raises(RuntimeError, match="pip download of the guest's wheels failed"):
        machine.ensure_wheelhouse()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []  # no half-filled wheelhouse left
