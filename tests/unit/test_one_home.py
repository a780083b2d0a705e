"""One home per fact: libc, /proc/self/mountinfo, BPF UAPI constants, the
vmlinux BTF path, the kernel's dev_t (issue #15 item 2)."""

from __future__ import annotations

import errno
import re
import shutil
import subprocess

import pytest

from lockdownctl import libc, mountinfo
from tests.conftest import REPO

SRC = REPO / "src" / "lockdownctl"


def _grep(pattern: str) -> list[str]:
    rx = re.compile(pattern, re.MULTILINE)
    return sorted(str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if rx.search(p.read_text()))


def test_one_libc_handle() -> None:
    assert _grep(r"CDLL\(None") == ["libc.py"]
    assert _grep(r"get_errno\(\)") == ["bpf/libbpf.py", "libc.py"]  # libbpf's own convention aside


def test_one_mountinfo_reader() -> None:
    assert _grep(r"/proc/self/mountinfo") == ["mountinfo.py"]


def test_bpf_uapi_constants_live_in_one_place() -> None:
    for name in ("BPF_PROG_TYPE_LSM", "BPF_LSM_MAC", "BPF_TRACE_ITER", "BPF_F_RDONLY_PROG", "BPF_PROG_LOAD"):
        assert _grep(rf"^{name} = ") == ["host/bpf_syscall.py"], name


def test_vmlinux_btf_path_lives_in_btf_py() -> None:
    assert _grep(r"\"/?sys/kernel/btf/vmlinux\"") == ["btf.py"]


def test_dev_t_lives_in_abi() -> None:
    assert _grep(r"[a-z_]+ (<<|>>) 20\b|0xFFFFF\b") == []  # spelled MINORBITS/MINORMASK in bpf/abi.py
    assert _grep(r"def kernel_dev") == ["bpf/abi.py"]


def test_libc_raises_the_kernels_errno() -> None:
    with pytest.raises(OSError) as exc:
        libc.syscall(1 << 20)  # no such system call
    assert exc.value.errno == errno.ENOSYS
    with pytest.raises(OSError) as exc:
        libc.klogctl(-1, None, 0)  # no such syslog action
    assert exc.value.errno == errno.EINVAL


def test_mountinfo_unescapes_and_skips_damage() -> None:
    text = ("36 35 98:0 /mnt1 /mnt/a\\040b rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n"
            "garbage line\n"
            "37 35 0:30 / /sys/fs/cgroup rw shared:9 - cgroup2 cgroup2 rw\n")
    assert mountinfo.parse(text) == [("/mnt/a b", "ext3"), ("/sys/fs/cgroup", "cgroup2")]


@pytest.mark.skipif(shutil.which("findmnt") is None, reason="no findmnt (util-linux)")
def test_mountinfo_agrees_with_findmnt() -> None:
    # util-linux's own reading of the same table (-r escapes blanks as \x20)
    out = subprocess.run(["findmnt", "-rn", "-o", "TARGET,FSTYPE"], capture_output=True, text=True,
                         check=True).stdout
    theirs = {tuple(line.split(" ")) for line in out.splitlines() if "\\x" not in line}
    ours = {m for m in mountinfo.mounts() if " " not in m[0]}
    assert ours == theirs
