"""root.py: the child-process helper that status and securityfs use."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from lockdownctl.cli.status import prefetch
from lockdownctl.errors import InputError
from lockdownctl.root import Child, Root, Unreadable
from tests.conftest import lockdownctl


def test_child_returns_plain_data() -> None:
    assert Child(lambda: {"pid": os.getpid(), "x": [1, 2.5, None, "s"]}).result()["x"] == [1, 2.5, None, "s"]
    assert Child(lambda: os.getpid()).result() != os.getpid()


def test_child_reraises_our_errors_and_oserrors() -> None:
    def bad_input() -> None:
        raise InputError("f:1: broken")

    with pytest.raises(InputError, match=r"^f:1: broken$"):
        Child(bad_input).result()

    def missing() -> None:
        raise FileNotFoundError(2, "gone")

    with pytest.raises(OSError) as info:
        Child(missing).result()
    assert info.value.errno == 2


def test_child_that_dies_is_an_oserror() -> None:
    with pytest.raises(OSError, match="child process died"):
        Child(lambda: os._exit(3)).result()


@pytest.mark.parametrize(
    ("argv", "starts"),
    [(["status", "--json"], True), (["status", "--root", "/"], True), (["status", "--root=/tmp"], False),
     (["status", "--root", "/tmp"], False), (["status", "--help"], False)],
)
def test_status_prefetch_only_for_the_live_system(argv: list[str], starts: bool) -> None:
    child = prefetch(argv)
    assert (child is not None) == starts
    if child is not None:
        child.discard()


def test_root_paths() -> None:
    root = Root("/")
    assert root.live and root / "proc/cmdline" == "/proc/cmdline"
    assert root.read_bytes("no/such/file") is None


# --- paths resolve inside the root (issue 14.5) ---------------------------------


def _tree(tmp_path: Path) -> tuple[Path, Path]:
    """A root and a directory outside it with a file of the same name."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "etc").mkdir(parents=True)
    outside.mkdir()
    (root / "etc/hostname").write_text("inside\n")
    (outside / "hostname").write_text("outside\n")
    return root, outside


def test_absolute_symlink_resolves_inside_the_root(tmp_path: Path) -> None:
    root, outside = _tree(tmp_path)
    (root / "abs").symlink_to("/etc/hostname")  # the root's /etc/hostname, never the host's
    (root / "out").symlink_to(outside / "hostname")  # an absolute path that exists only on the host
    (root / "etc/dir").symlink_to("/etc")
    r = Root(root)
    assert r.read_text("abs") == "inside\n"
    assert r.read_bytes("out") is None  # <root>/<tmp_path>/outside/hostname does not exist
    assert r.read_text("etc/dir/dir/dir/hostname") == "inside\n"
    assert r / "abs" == os.path.join(str(root), "etc/hostname")
    assert r.exists("abs") and not r.exists("out")
    assert r.readlink("abs") == "/etc/hostname"  # the last component is never followed
    assert r.listdir("etc/dir") == ["dir", "hostname"]


def test_dotdot_stops_at_the_root(tmp_path: Path) -> None:
    root, _ = _tree(tmp_path)
    depth = "../" * (len(root.parts) + 3)
    (root / "up").symlink_to("../outside/hostname")  # on the host: <tmp_path>/outside/hostname
    assert (root / "up").read_text() == "outside\n"
    (root / "upetc").symlink_to(depth + "etc/hostname")
    r = Root(root)
    assert r.read_bytes("up") is None and r.read_bytes("../outside/hostname") is None
    assert r.read_text("upetc") == "inside\n" and r.read_text("../../etc/hostname") == "inside\n"
    assert r.is_dir("..") and r / "../.." == str(root)


def test_symlink_loop_is_reported_not_followed_outside(tmp_path: Path) -> None:
    root, _ = _tree(tmp_path)
    (root / "proc").mkdir()
    (root / "proc/config.gz").symlink_to("/proc/config.gz")  # inside the root: itself
    r = Root(root)
    data = r.read_bytes("proc/config.gz")
    assert isinstance(data, Unreadable) and data.why == "Too many levels of symbolic links"
    assert data.path == str(root / "proc/config.gz")
    with pytest.raises(InputError, match=r"proc/config.gz: Too many levels of symbolic links$"):
        r / "proc/config.gz"
    assert not r.exists("proc/config.gz") and r.readlink("proc/config.gz") == "/proc/config.gz"


def test_live_root_paths_unchanged() -> None:
    r = Root("/")
    assert r / "proc/self/../self/status" == "/proc/self/../self/status"  # the kernel resolves it
    assert r.resolve("etc/hostname") == "/etc/hostname"


def _forcing_config(path: Path) -> None:
    path.write_bytes(gzip.compress(b"CONFIG_SECURITY_LOCKDOWN_LSM=y\nCONFIG_LOCK_DOWN_KERNEL_FORCE_CONFIDENTIALITY=y\n"))


@pytest.mark.parametrize("verb", ["status", "audit"])
def test_root_symlink_to_host_file_is_not_read(verb: str, tmp_path: Path) -> None:
    """Walkthrough 2.4: a root whose proc/config.gz links to a file outside it."""
    root, outside = _tree(tmp_path)
    (root / "proc").mkdir()
    _forcing_config(outside / "config.gz")
    (root / "proc/config.gz").symlink_to(outside / "config.gz")

    def forced() -> object:
        run = lockdownctl(verb, "--root", str(root), "--json")
        assert "Traceback" not in run.err and str(outside) not in run.out, run.out
        data = run.json()["data"]
        return data["forced_by_kconfig"] if verb == "status" else data["inputs"]["config"]

    assert forced() is None
    # control: the same file inside the root is read
    (root / "proc/config.gz").unlink()
    _forcing_config(root / "proc/config.gz")
    assert forced() == ("confidentiality" if verb == "status" else str(root / "proc/config.gz"))


@pytest.mark.parametrize("verb", ["status", "audit"])
def test_root_link_to_proc_config_gz_reads_no_host_file(verb: str, tmp_path: Path) -> None:
    """The walkthrough's exact case: proc/config.gz -> /proc/config.gz (a loop inside the root)."""
    root, _ = _tree(tmp_path)
    (root / "proc").mkdir()
    (root / "proc/config.gz").symlink_to("/proc/config.gz")
    run = lockdownctl(verb, "--root", str(root))
    assert "Traceback" not in run.err and "forced by kernel configuration" not in run.out, run.out
    assert "proc/config.gz: Too many levels of symbolic links" in run.out + run.err


def test_root_btf_link_to_host_file_is_not_read(tmp_path: Path) -> None:
    """explain --root reads the kernel's BTF through Root: a link out of the root is not followed."""
    import lzma

    root, outside = _tree(tmp_path)
    (root / "sys/kernel/btf").mkdir(parents=True)
    btf = Path(__file__).parents[1] / "data/btf/vmlinux-6.18.44-fc-v657.btf.xz"
    (outside / "vmlinux").write_bytes(lzma.decompress(btf.read_bytes()))
    (root / "sys/kernel/btf/vmlinux").symlink_to(outside / "vmlinux")

    def from_btf() -> object:
        run = lockdownctl("explain", "--root", str(root), "--json")
        assert "Traceback" not in run.err, run.err
        return run.json()["data"]["kernel"]["btf"]

    assert from_btf() is False
    # control: the same file inside the root is read
    (root / "sys/kernel/btf/vmlinux").unlink()
    (root / "sys/kernel/btf/vmlinux").write_bytes((outside / "vmlinux").read_bytes())
    assert from_btf() is True
