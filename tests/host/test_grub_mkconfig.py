"""The real GRUB: Debian's grub-mkconfig and /etc/grub.d/10_linux fed the edited defaults.

Approach (documented in tests/data/boot/README.md): `lockdownctl enable` edits
a scratch copy of the Debian cloud fixture; then, in a private mount namespace
of a child (`unshare --mount`, so the host's mount table never changes), the
scratch /etc/default is bind-mounted over /etc/default, a scratch /boot
holding a kernel and initrd file over /boot, and a stand-in grub-probe
(tests/data/boot/grub-mkconfig/grub-probe: a scratch root has no disk to
probe) over /usr/sbin/grub-probe; Debian's own /usr/sbin/grub-mkconfig
(package grub-common, which sources /etc/default/grub and grub.d/*.cfg and
runs /etc/grub.d/10_linux) writes grub.cfg to the scratch directory. Every
`linux` line must carry the token exactly once.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from lockdownctl.boot.grub import linux_lines
from lockdownctl.boot.tokens import lockdown_values
from tests.conftest import DATA, lockdownctl

from .conftest import require, require_root, require_tool

FIXTURE = DATA / "boot" / "debian12-grub-cloud"
PROBE = DATA / "boot" / "grub-mkconfig" / "grub-probe"
KERNEL = "6.1.0-99-amd64"


def grub_mkconfig(root: Path) -> str:
    require_root()
    require(Path("/usr/sbin/grub-mkconfig").exists() and Path("/etc/grub.d/10_linux").exists(),
            "Debian's grub-common is not installed (scripts/test.sh installs it)")
    require_tool("unshare")
    boot = root / "boot"
    (boot / "grub").mkdir(parents=True, exist_ok=True)  # 05_debian_theme fails without it
    (boot / f"vmlinuz-{KERNEL}").write_bytes(b"\x7fnot a real kernel\n")
    (boot / f"initrd.img-{KERNEL}").write_bytes(b"not a real initrd\n")
    out = root / "grub.cfg"
    script = (f"set -e; mount --bind '{root}/etc/default' /etc/default; mount --bind '{boot}' /boot; "
              f"mount --bind '{PROBE}' /usr/sbin/grub-probe; exec /usr/sbin/grub-mkconfig -o '{out}'")
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert f"Found linux image: /boot/vmlinuz-{KERNEL}" in proc.stderr
    return out.read_text()


def test_grub_mkconfig_before_enable_has_no_single_token(tmp_path: Path) -> None:
    """Control: the fixture's stray token sits in the normal entries only."""
    root = tmp_path / "root"
    shutil.copytree(FIXTURE, root)
    lines = linux_lines(grub_mkconfig(root))
    values = [lockdown_values(args, "grub.cfg") for _, args in lines]
    assert ["confidentiality"] in values and [] in values  # recovery entry has none


@pytest.mark.parametrize("level", ["integrity", "confidentiality"])
def test_grub_mkconfig_every_linux_line_has_the_token_once(tmp_path: Path, level: str) -> None:
    root = tmp_path / "root"
    shutil.copytree(FIXTURE, root)
    if level == "integrity":  # the fixture's default entry is at confidentiality: refused unless --force
        refused = lockdownctl("enable", level, "--root", str(root))
        assert refused.code == 1 and "would lower the boot level" in refused.out
        assert not (root / "etc/default/grub.d/99-lockdownctl.cfg").exists()
    run = lockdownctl("enable", level, "--root", str(root), *(["--force"] if level == "integrity" else []))
    assert run.code == 0, run.err
    cfg = grub_mkconfig(root)
    lines = linux_lines(cfg)
    assert len(lines) >= 3  # normal, advanced, recovery
    for number, args in lines:
        assert lockdown_values(args, "grub.cfg") == [level], f"grub.cfg:{number}: {args}"
        assert "console=ttyS0,115200" in args  # the cloud drop-in's value survived
    assert any(" single " in f" {args} " for _, args in lines)  # the recovery entry too
    # and disable takes it out again everywhere
    assert lockdownctl("disable", "--root", str(root)).code == 0
    for number, args in linux_lines(grub_mkconfig(root)):
        assert lockdown_values(args, "grub.cfg") == [], f"grub.cfg:{number}: {args}"
