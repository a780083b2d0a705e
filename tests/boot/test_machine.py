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


def test_source_key_covers_what_the_package_ships(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()  # debian/docs ships docs/kubernetes-nfd.md
    (tmp_path / "docs" / "d.md").write_text("1")
    key = machine.source_key(tmp_path)
    (tmp_path / "docs" / "d.md").write_text("2")
    assert machine.source_key(tmp_path) != key


def test_signed_module_reads_back_as_sign_file_writes_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sign_module's output, read by lockdownctl's own module parser and verified by openssl cms."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from lockdownctl.host.modules import module_signature

    monkeypatch.setenv("LOCKDOWNCTL_BOOT_CACHE", str(tmp_path / "cache"))
    mok = machine.ensure_mok()
    assert machine.ensure_mok() == mok and oct(mok.key.stat().st_mode & 0o777) == "0o600"
    key = serialization.load_pem_private_key(mok.key.read_bytes(), password=None)
    cert = x509.load_pem_x509_certificate(mok.crt.read_bytes())
    body = b"\x7fELF" + bytes(range(256)) * 20
    signed = machine.sign_module(body, key, cert)
    assert machine.strip_signature(signed) == body
    assert machine.strip_signature(machine.sign_module(signed, key, cert)) == body  # re-signing replaces
    (tmp_path / "m.ko").write_bytes(signed)
    sig = module_signature(str(tmp_path / "m.ko"))
    assert (sig.signed, sig.signer, sig.hash, sig.error) == (True, machine.MOK_CN, "sha256", "")
    assert sig.key_id == format(cert.serial_number, "x")
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    import subprocess

    sig_len = int.from_bytes(signed[-len(machine.MODULE_SIG_MAGIC) - 4: -len(machine.MODULE_SIG_MAGIC)], "big")
    (tmp_path / "sig.der").write_bytes(signed[len(body): len(body) + sig_len])
    (tmp_path / "body").write_bytes(body)
    proc = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(tmp_path / "sig.der"),
                           "-content", str(tmp_path / "body"), "-certfile", str(mok.crt), "-noverify",
                           "-out", "/dev/null"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_enroll_mok_writes_moklist_as_mokmanager_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    template = machine.OVMF_DIR / machine.FIRMWARE[True][1]
    if not template.is_file():
        pytest.skip(f"{template} missing (scripts/boot-setup.sh)")
    import json
    import subprocess
    import sys

    monkeypatch.setenv("LOCKDOWNCTL_BOOT_CACHE", str(tmp_path / "cache"))
    mok = machine.ensure_mok()
    vars_fd = tmp_path / "vars.fd"
    shutil.copyfile(template, vars_fd)
    machine.enroll_mok(vars_fd, mok.der)
    subprocess.run([sys.executable, "-m", "virt.firmware.vars", "-i", str(vars_fd), "--output-json",
                    str(tmp_path / "v.json")], check=True, capture_output=True)
    moklist = [v for v in json.loads((tmp_path / "v.json").read_text())["variables"] if v["name"] == "MokList"]
    assert len(moklist) == 1
    # shim's own check (mok.c): MokList must be NV|BS and not runtime-visible, or shim deletes it.
    assert moklist[0]["guid"] == "605dab50-e046-4300-abb6-3dd810dd8b23" and int(moklist[0]["attr"]) == 3
    assert mok.der.read_bytes().hex() in moklist[0]["data"]


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
