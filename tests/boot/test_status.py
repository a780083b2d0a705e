"""Secure Boot on and off, as the firmware, the kernel and mokutil see them, against what the
installed lockdownctl says (status, status --expect, check, enable --dry-run)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from .machine import BootResult, securityfs_level

pytestmark = pytest.mark.boot

# The distribution patch's own line (Debian 6.1: "EFI Secure Boot", not "EFI Secure Boot mode").
SB_LOCKDOWN_LINE = re.compile(r"Kernel is locked down from EFI Secure Boot")
EFIVAR_SECURE_BOOT = re.compile(r"SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c: (\d)")


def test_install_puts_lockdownctl_on_path(boot_tier) -> None:
    """The checkout's .deb (dpkg-buildpackage on the host) installed with `apt-get install
    ./lockdownctl_*.deb` on a real Debian 12, offline: dpkg knows it, its units are enabled, the
    command runs for root and for an unprivileged user."""
    boot = boot_tier.layer().run().boot(1)
    assert boot.record("install").rc == 0, boot.text("test.log")
    assert "Setting up lockdownctl" in boot.record("install").out, boot.record("install").out
    assert boot.record("dpkg").out.startswith("install ok installed "), boot.record("dpkg").out
    assert boot.record("which").out.strip() == "/usr/bin/lockdownctl"
    assert boot.record("enabled").out.split() == ["enabled", "enabled"], boot.record("enabled").out
    nobody = boot.record("status_nobody")
    assert nobody.rc == 0, nobody.err
    assert nobody.json()["data"]["level"] == boot.level
    version = boot.record("version")
    assert version.rc == 0
    import tomllib

    from .machine import REPO

    expected = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert version.out.split() == ["lockdownctl", expected]
    assert expected in boot.record("dpkg").out


def mokutil_sb(boot: BootResult) -> str:
    first = boot.record("mokutil").out.splitlines()[0]  # "SecureBoot enabled" / "SecureBoot disabled"
    assert first.startswith("SecureBoot "), first
    return first.split()[1]


def test_secure_boot_on(boot_run) -> None:
    run = boot_run("status.sh", secure_boot=True, mok=True)
    run.check(boots=1)
    boot = run.boot(1)
    kernel_level = securityfs_level(boot.record("securityfs").out)
    # The kernel's own view first: Secure Boot locked it down at integrity, and said so.
    assert kernel_level == "integrity"
    assert SB_LOCKDOWN_LINE.search(boot.dmesg), "no Secure Boot lockdown line in the kernel log"
    assert not any(p.startswith("lockdown=") for p in boot.cmdline)
    assert mokutil_sb(boot) == "enabled"

    status = boot.record("status_json")
    assert status.rc == 0, status.err
    data = status.json()["data"]
    assert data["level"] == kernel_level
    assert data["level_read_from"] == "securityfs"
    assert data["source"]["kind"] == "secure_boot"
    evidence = [e["text"] for e in data["source"]["evidence"]]
    assert any(SB_LOCKDOWN_LINE.search(t) for t in evidence), evidence
    efivars = [e for e in data["source"]["evidence"] if e["where"] == "efivars"]
    assert any(EFIVAR_SECURE_BOOT.search(e["text"]) and e["text"].endswith(": 1") for e in efivars), efivars
    assert data["secure_boot"]["state"] == mokutil_sb(boot)
    text = boot.record("status").out
    assert "integrity, set by the distribution's Secure Boot patch" in text

    expect = boot.record("expect_integrity")
    assert expect.rc == 0, expect.out
    assert expect.json()["data"]["expect"]["met"] is True

    check = boot.record("check")
    assert check.rc in (0, 1), check.err  # 1: something breaks at confidentiality (hibernation)
    current = check.json()["data"]["current"]
    assert current["secure_boot"] == mokutil_sb(boot) == "enabled"
    assert current["level"] == kernel_level
    check_mok_modules(boot, check.json()["data"])


def test_secure_boot_off(boot_run) -> None:
    run = boot_run("status.sh", secure_boot=False)
    run.check(boots=1)
    boot = run.boot(1)
    assert securityfs_level(boot.record("securityfs").out) == "none"
    assert not SB_LOCKDOWN_LINE.search(boot.dmesg)
    assert mokutil_sb(boot) == "disabled"

    data = boot.record("status_json").json()["data"]
    assert data["level"] == "none"
    assert data["source"]["kind"] == "none"
    # OVMF's plain variable store has no keys enrolled: Secure Boot off, firmware in Setup Mode.
    assert data["secure_boot"]["state"] == mokutil_sb(boot) == "disabled"
    assert data["secure_boot"]["secure_boot"] is False
    assert data["secure_boot"]["setup_mode"] is ("Platform is in Setup Mode" in boot.record("mokutil").out)
    assert data["can_raise"] is True
    assert "confidentiality" in data["raise_to"]

    expect = boot.record("expect_integrity")
    assert expect.rc == 1
    assert expect.json()["data"]["expect"]["met"] is False

    assert boot.record("check").json()["data"]["current"]["secure_boot"] == mokutil_sb(boot)
    # enable is offered: a plan through GRUB, not a refusal.
    enable = boot.record("enable_dry")
    assert enable.rc == 0, enable.out + enable.err
    plan = enable.json()["data"]
    assert "refused" not in plan
    assert "etc/default/grub.d/" in enable.out


# The kernel's own lines: load_uefi.c for each certificate it loads from MokListRT and db; for a
# module without a trusted signature, kernel/module/signing.c module_sig_check() says "Loading of
# <what> is rejected" (EKEYREJECTED) when signatures are enforced (Debian's kernel sets
# sig_enforce under Secure Boot), otherwise the lockdown LSM refuses it (EPERM).
MOK_SOURCE = re.compile(r"integrity: Loading X\.509 certificate: UEFI:MokListRT")
LOADED_CERT = re.compile(r"integrity: Loaded X\.509 cert '(lockdownctl boot-tier \w+)[^']*'")
REJECTED = {"unavailable key": re.compile(r"Loading of module with unavailable key is rejected"),
            "unsigned": re.compile(r"Loading of unsigned module is rejected")}
LOCKDOWN_REFUSED = re.compile(r"Lockdown: modprobe: unsigned module loading is restricted; see man kernel_lockdown\.7")


def check_mok_modules(boot: BootResult, check: dict[str, Any]) -> None:
    """The MOK enrolled through the variable store: shim mirrored it, the kernel trusts it for
    modules; the MOK-signed module loads, the others are refused, and `check` says the same."""
    # The firmware's and shim's view (mokutil reads MokListRT) and the kernel's.
    assert "is already enrolled" in boot.record("mok_test_key").out, boot.record("mok_test_key").out
    assert "lockdownctl boot-tier MOK" in boot.record("mok_list").out
    assert MOK_SOURCE.search(boot.dmesg), boot.dmesg[:3000]
    assert {"lockdownctl boot-tier MOK", "lockdownctl boot-tier db"} <= set(LOADED_CERT.findall(boot.dmesg))
    # The keyrings, listed by the kernel: the MOK in .machine (linked into .secondary_trusted_keys,
    # which verifies modules), the db key in .platform (mainline never verifies modules with it;
    # Debian's kernel falls back to it: patch "KEYS: Make use of platform keyring for module
    # signature verify". The kernel's own verdict below decides).
    keyrings = dict(part.split("\n", 1) for part in boot.record("keyrings").out.split("== ")[1:])
    machine_ring = next(v for k, v in keyrings.items() if k.startswith(".machine "))
    platform_ring = next(v for k, v in keyrings.items() if k.startswith(".platform "))
    secondary = next(v for k, v in keyrings.items() if k.startswith(".secondary_trusted_keys "))
    assert "lockdownctl boot-tier MOK" in machine_ring and "keyring: .machine" in secondary, keyrings
    assert "lockdownctl boot-tier db" in platform_ring, keyrings
    assert "lockdownctl boot-tier db" not in machine_ring + secondary, keyrings

    # The kernel's verdicts: the MOK-signed module loads, the unknown key's and the unsigned are
    # refused; the db key's goes whichever way this kernel decides (see above).
    loaded = {line.split()[0] for line in boot.record("loaded").out.splitlines()}
    assert "dummy" in loaded and not {"nlmon", "ifb"} & loaded, loaded
    assert boot.record("load_mok").rc == 0, boot.record("load_mok").err
    enforced = boot.record("sig_enforce").out.strip() == "Y"
    refused = {"nlmon", "veth", "ifb"} - loaded
    for name in ("nlmon", "veth", "ifb"):
        rec = boot.record({"nlmon": "load_stranger", "veth": "load_db", "ifb": "load_unsigned"}[name])
        assert (rec.rc == 0) == (name in loaded), (name, rec.err)
        if name in refused:
            assert ("Key was rejected by service" if enforced else "Operation not permitted") in rec.err, rec.err
    if enforced:
        assert len(REJECTED["unavailable key"].findall(boot.dmesg)) == len(refused - {"ifb"}), boot.dmesg[-3000:]
        assert len(REJECTED["unsigned"].findall(boot.dmesg)) == 1, boot.dmesg[-3000:]
    else:
        assert len(LOCKDOWN_REFUSED.findall(boot.dmesg)) == len(refused), boot.dmesg[-3000:]
    # lockdownctl says signatures are enforced exactly when the kernel does (NFD label).
    nfd = dict(line.split("=", 1) for line in boot.record("nfd").out.splitlines() if "=" in line and line[0] != "#")
    assert nfd["feature.node.kubernetes.io/lockdown.module-signing-enforced"] == ("true" if enforced else "false"), nfd

    # lockdownctl's verdict per module file is the kernel's: each file it refused is flagged as
    # breaking, with the signer modinfo names; none it loaded is.
    flagged = {f["subject"].get("module"): f for f in check["findings"] + check["suppressed"]
               if f["reason"] == "module_signature" and "path" in f["subject"]}
    assert set(flagged) == refused, (sorted(flagged), sorted(refused))
    modinfo = {m.group(1): (m.group(2), m.group(3))
               for m in re.finditer(r"^(\S+) (\S+) signer=(.*)$", boot.record("modinfo").out, re.M)}
    for name, finding in flagged.items():
        path, signer = modinfo[name]
        assert finding["confidence"] == "breaks", finding
        assert path.endswith(f"/updates/{name}.ko") and finding["subject"]["path"] == path, (finding, path)
        assert finding["subject"].get("signer", "") == signer, (finding, modinfo)
