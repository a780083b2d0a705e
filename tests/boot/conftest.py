"""The real-boot tier: a Debian disk image booted through OVMF, shim, GRUB and systemd.

Tests ask for the ``boot_tier`` fixture and call ``boot_tier.run(script, secure_boot=...)``:
one QEMU run of a guest script (tests/boot/guest/*.sh) on a fresh overlay of the image with the
checkout installed (machine.ensure_installed), following the guest's reboots. The image, the
Debian package and the installed layer are made once and cached (machine.py, README.md).

Environment:
  LOCKDOWNCTL_REQUIRE_BOOT=1 (or LOCKDOWNCTL_REQUIRE_VM=1, which CI sets)
                              missing QEMU / OVMF / image tools fail instead of skipping
  LOCKDOWNCTL_BOOT_RESULTS=DIR keep every run's share (results, serial.log) in DIR/<test>
  LOCKDOWNCTL_BOOT_CACHE=DIR  image cache (default /var/cache/lockdownctl/boot-image)
  LOCKDOWNCTL_BOOT_TIMEOUT=S  seconds per QEMU process (a hang guard; default 900)
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from . import machine


def required() -> bool:
    return os.environ.get("LOCKDOWNCTL_REQUIRE_BOOT") == "1" or os.environ.get("LOCKDOWNCTL_REQUIRE_VM") == "1"


def unavailable(why: str) -> None:
    """Skip, or fail when the tier is required (CI)."""
    if required():
        pytest.fail(f"boot tier cannot run here: {why} (LOCKDOWNCTL_REQUIRE_BOOT/VM=1)", pytrace=False)
    pytest.skip(f"boot tier cannot run here: {why}")


@dataclass
class Tier:
    image: machine.Image
    src: Path
    installed: machine.Installed | None = None
    install_error: str = ""
    runs: list[tuple[str, machine.RunResult]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def layer(self) -> machine.Installed:
        if self.installed is None and not self.install_error:
            start = time.monotonic()
            try:
                self.installed = machine.ensure_installed(self.image, self.src)
            except (AssertionError, OSError, RuntimeError) as exc:  # every test fails with the same reason
                self.install_error = f"installing the checkout in the guest failed: {exc}"
            self.seconds["install (.deb built, apt-get install in the guest)"] = time.monotonic() - start
        if self.install_error:
            pytest.fail(self.install_error, pytrace=False)
        assert self.installed is not None
        return self.installed

    def run(self, request: pytest.FixtureRequest, script: str, *, secure_boot: bool,
            mok: bool = False) -> machine.RunResult:
        """Boot a fresh overlay of the installed image and run tests/boot/guest/<script>. With
        ``mok``, the tier's MOK key is enrolled in the variable store (and a throwaway key in
        db) and the share offers mok/: the certificates and the four test modules
        (machine.mok_modules)."""
        layer = self.layer()
        name = re.sub(r"[^\w.-]+", "_", request.node.name)
        base = os.environ.get("LOCKDOWNCTL_BOOT_RESULTS")
        if base:
            share = Path(base).resolve() / name
            shutil.rmtree(share, ignore_errors=True)
        else:
            share = Path(tempfile.mkdtemp(prefix=f"lockdownctl-boot-{name}-"))
            share.rmdir()
        offer: dict[str, Path] = {}
        qemu = machine.Machine(layer.disk, secure_boot=secure_boot)
        if mok:
            offer["mok"] = Path(tempfile.mkdtemp(prefix="lockdownctl-boot-mok-"))
            machine.mok_modules(self.image, machine.ensure_mok(), offer["mok"])
            qemu.mok, qemu.db = offer["mok"] / "MOK.der", offer["mok"] / "DB.der"
        try:
            run = qemu.run(machine.GUEST_DIR / script, share, self.src, offer=offer)
        finally:
            for path in offer.values():
                shutil.rmtree(path, ignore_errors=True)
        self.runs.append((request.node.nodeid, run))
        return run


TIER = pytest.StashKey[Tier]()


@pytest.fixture(scope="session")
def boot_tier(request: pytest.FixtureRequest) -> Tier:
    tier = request.config.stash.get(TIER, None)
    if tier is not None:
        return tier
    cached = (machine.cache_root() / machine.image_key() / "base.qcow2").is_file()
    try:
        machine.check_host(build=not cached)
    except machine.BootUnavailable as exc:
        unavailable(str(exc))
    log = Path(tempfile.gettempdir()) / f"lockdownctl-boot-image-{machine.image_key()}.log"
    start = time.monotonic()
    image = machine.ensure_image(log=log)
    src = machine.export_source(Path(tempfile.mkdtemp(prefix="lockdownctl-boot-src-")))
    tier = Tier(image, src)
    tier.seconds["image (cached)" if image.build_seconds is None else "image build"] = time.monotonic() - start
    request.config.stash[TIER] = tier
    return tier


@pytest.fixture
def boot_run(boot_tier: Tier, request: pytest.FixtureRequest) -> Any:
    """boot_run(script, secure_boot=..., mok=False) -> machine.RunResult."""
    def run(script: str, *, secure_boot: bool, mok: bool = False) -> machine.RunResult:
        return boot_tier.run(request, script, secure_boot=secure_boot, mok=mok)
    return run


def pytest_sessionfinish(session: pytest.Session) -> None:
    tier = session.config.stash.get(TIER, None)
    if tier is None:
        return
    shutil.rmtree(tier.src, ignore_errors=True)
    if os.environ.get("LOCKDOWNCTL_BOOT_RESULTS") or session.testsfailed:
        return  # kept for reading
    for _, run in tier.runs:
        shutil.rmtree(run.dir, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    tier = config.stash.get(TIER, None)
    if tier is None:
        return
    terminalreporter.section("boot tier")
    env = tier.image.env()
    terminalreporter.write_line(f"image {tier.image.dir} (kernel {env.get('KVER', '?')}, {env.get('SUITE', '?')})")
    for what, seconds in tier.seconds.items():
        terminalreporter.write_line(f"{what}: {seconds:.1f} s")
    for nodeid, run in tier.runs:
        per_boot = ", ".join(f"{s:.1f}" for s in run.qemu_seconds)
        terminalreporter.write_line(
            f"{nodeid}: SB {'on' if run.secure_boot else 'off'}, {len(run.boots)} boots, "
            f"QEMU {sum(run.qemu_seconds):.1f} s ({per_boot}), results {run.dir}"
            + (f", PROBLEM: {run.problem}" if run.problem else ""))
