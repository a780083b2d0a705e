"""The Debian package, end to end: build it with dpkg-buildpackage from a copy
of the checkout, check it with lintian, install it with ``apt-get install
./lockdownctl_*.deb`` into a clean Debian 12 chroot (mmdebstrap; its tarball is
cached in /var/cache/lockdownctl/deb-test/), run it as root and as nobody,
then remove and purge it.

The chroot runs inside ``unshare --mount``: its /proc and /sys mounts vanish
with the namespace, whatever happens to the test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, lockdownctl
from tests.host.conftest import require, require_root, require_tool

CACHE = Path("/var/cache/lockdownctl/deb-test")
CHROOT_TAR = CACHE / "bookworm-apt.tar"
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"}
ENABLED = {"sysinit.target.wants/lockdownctl-enforce.service", "timers.target.wants/lockdownctl-metrics.timer"}


def run(cmd: list[str], cwd: Path | None = None, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=CLEAN_ENV, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dpkg-buildpackage -us -uc -b in a copy of the checkout; the directory holding the .deb."""
    require_root()
    for tool in ("dpkg-buildpackage", "dh", "dpkg-checkbuilddeps", "lintian", "mmdebstrap"):
        require_tool(tool)
    top = tmp_path_factory.mktemp("deb")
    src = top / "lockdownctl"
    files = subprocess.run(["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard"], capture_output=True,
                           text=True, check=True).stdout.split("\n")
    for rel in filter(None, files):
        if rel.startswith("tests/data/") or not (REPO / rel).is_file():
            continue
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, src / rel)
    deps = run(["dpkg-checkbuilddeps"], cwd=src)
    require(deps.returncode == 0, f"build dependencies missing (scripts/test.sh installs them): {deps.stderr.strip()}")
    build = run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return top


def test_lintian_has_no_errors(built: Path) -> None:
    changes = next(built.glob("lockdownctl_*.changes"))
    proc = run(["lintian", "-I", "--pedantic", str(changes)])
    tags = [line for line in proc.stdout.splitlines() if line[:2] in ("E:", "W:", "I:", "P:", "X:")]
    print("lintian:", *tags, sep="\n  ")  # warnings are reported, errors fail
    assert not [t for t in tags if t.startswith("E:")], tags


def test_contents(built: Path) -> None:
    deb = next(built.glob("lockdownctl_*.deb"))
    listing = run(["dpkg-deb", "-c", str(deb)]).stdout
    for path in ("./usr/bin/lockdownctl", "./usr/share/man/man8/lockdownctl.8.gz",
                 "./usr/share/man/man5/lockdownctl-policy.5.gz", "./lib/systemd/system/lockdownctl-enforce.service",
                 "./lib/systemd/system/lockdownctl-lockdown@.service", "./lib/systemd/system/lockdownctl-metrics.timer",
                 "./usr/share/bash-completion/completions/lockdownctl",
                 "./usr/share/zsh/vendor-completions/_lockdownctl",
                 "./usr/share/fish/vendor_completions.d/lockdownctl.fish",
                 "./usr/share/doc/lockdownctl/examples/integrity.yaml",
                 "./usr/share/doc/lockdownctl/examples/lockdownctl.rules.yml",
                 "./usr/lib/python3/dist-packages/lockdownctl/bpf/lockdown.bpf.o"):
        assert path in listing, path
    depends = run(["dpkg-deb", "-f", str(deb), "Depends"]).stdout
    for dep in ("python3-yaml", "python3-zstandard", "python3-pefile", "python3-prometheus-client", "libbpf1"):
        assert dep in depends
    # The BPF objects rebuilt from source are the committed ones (reproducible build, Debian's clang).
    extracted = built / "x"
    run(["dpkg-deb", "-x", str(deb), str(extracted)])
    for name in ("lockdown.bpf.o", "seal.bpf.o"):
        shipped = extracted / "usr/lib/python3/dist-packages/lockdownctl/bpf" / name
        assert shipped.read_bytes() == (REPO / "src/lockdownctl/bpf" / name).read_bytes()


def _chroot_tar() -> Path:
    if not CHROOT_TAR.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = CACHE / "bookworm-apt.tar.partial"
        proc = run(["mmdebstrap", "--variant=apt", "--format=tar", "bookworm", str(partial)], timeout=1800)
        require(proc.returncode == 0, f"mmdebstrap could not make a Debian 12 chroot: {proc.stderr.strip()[-300:]}")
        os.replace(partial, CHROOT_TAR)
    return CHROOT_TAR


def in_chroot(root: Path, script: str) -> subprocess.CompletedProcess[str]:
    """Run a shell script in the chroot, with /proc and /sys, in a private mount namespace."""
    mounts = (f"mount --bind {root} {root} && mount -t proc proc {root}/proc && mount --rbind /sys {root}/sys && "
              f"mount --make-rslave {root}/sys")
    return run(["unshare", "--mount", "--propagation", "private", "sh", "-ec",
                f"{mounts}; exec chroot {root} /bin/sh -ec {_sh_quote(script)}"])


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


@pytest.fixture
def chroot(tmp_path: Path) -> Iterator[Path]:
    """A fresh Debian 12 chroot (several hundred MB: removed after the test)."""
    root = tmp_path / "chroot"
    root.mkdir()
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_install_run_remove_purge(built: Path, chroot: Path) -> None:
    deb = next(built.glob("lockdownctl_*.deb"))
    root = chroot
    subprocess.run(["tar", "-xf", str(_chroot_tar()), "-C", str(root)], check=True, timeout=600)
    shutil.copy2("/etc/resolv.conf", root / "etc/resolv.conf")
    shutil.copy2(deb, root / "tmp" / deb.name)
    update = in_chroot(root, "apt-get update -q")
    require(update.returncode == 0, f"apt-get update in the chroot failed (no network?): {update.stderr[-300:]}")

    install = in_chroot(root, f"DEBIAN_FRONTEND=noninteractive apt-get install -y -q /tmp/{deb.name}")
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]
    wants = root / "etc/systemd/system"
    enabled = {str(p.relative_to(wants)) for p in wants.glob("*.wants/lockdownctl*")}
    assert enabled == ENABLED  # the NFD units and the securityfs template are not enabled

    # As root and as nobody: the same level as this checkout reads on this host.
    ours = lockdownctl("status", "--json").json()["data"]
    as_root = in_chroot(root, "lockdownctl status --json")
    as_nobody = in_chroot(root, "cd /tmp && runuser -u nobody -- lockdownctl status --json")
    for proc in (as_root, as_nobody):
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        assert json.loads(proc.stdout)["data"]["level"] == ours["level"]
    # Debian's prometheus_client and the packaged completion scripts.
    metrics = in_chroot(root, "lockdownctl metrics")
    assert metrics.returncode == 0 and 'lockdownctl_build_info{version="0.1.0"} 1.0' in metrics.stdout, metrics.stderr
    nfd = in_chroot(root, "lockdownctl status --format nfd")
    assert nfd.returncode == 0 and "feature.node.kubernetes.io/lockdown.level=" in nfd.stdout, nfd.stderr
    assert in_chroot(root, "bash -n /usr/share/bash-completion/completions/lockdownctl").returncode == 0
    # The installed boot unit verifies with systemd's own tool (its ExecStart= is the packaged
    # /usr/bin/lockdownctl; the chroot has no systemd, so units with default dependencies cannot).
    if shutil.which("systemd-analyze"):
        verify = run(["systemd-analyze", "verify", "--man=no", f"--root={root}", "lockdownctl-enforce.service"])
        assert verify.returncode == 0, verify.stderr

    remove = in_chroot(root, "DEBIAN_FRONTEND=noninteractive apt-get remove -y -q lockdownctl")
    assert remove.returncode == 0, remove.stderr
    assert not (root / "usr/bin/lockdownctl").exists()
    assert in_chroot(root, "dpkg-query -W -f='${db:Status-Abbrev}' lockdownctl").stdout.startswith("rc")
    purge = in_chroot(root, "DEBIAN_FRONTEND=noninteractive apt-get purge -y -q lockdownctl")
    assert purge.returncode == 0, purge.stderr
    assert in_chroot(root, "dpkg-query -W lockdownctl").returncode != 0
    assert not list(wants.glob("*.wants/lockdownctl*"))  # purge disables what install enabled
