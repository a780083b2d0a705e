"""bpf(2) per architecture: the numbers are the kernel's own (its syscall
tables in tests/data/syscalls), and an architecture lockdownctl does not know
is never guessed (issue #15 item 4: on arm64 the x86-64 number gave ENOSYS
and status said the kernel refuses LSM programs)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lockdownctl.host.bpf_syscall import SYS_BPF, trial_load
from tests.conftest import DATA, ROOTS, host_btf_bytes, lockdownctl

TABLES = {"x86_64": "x86_64.tbl", "aarch64": "generic.tbl", "riscv64": "generic.tbl",
          "loongarch64": "generic.tbl", "ppc64le": "powerpc.tbl", "ppc64": "powerpc.tbl", "s390x": "s390.tbl"}


def _kernel_number(table: str) -> int:
    for line in (DATA / "syscalls" / table).read_text().splitlines():
        number, _abi, name, *_entry = line.split()
        if name == "bpf":
            return int(number)
    raise AssertionError(f"{table} has no bpf line")


@pytest.mark.parametrize("arch", sorted(TABLES))
def test_bpf_number_is_the_kernels(arch: str) -> None:
    assert SYS_BPF[arch] == _kernel_number(TABLES[arch])


def test_every_known_architecture_is_checked() -> None:
    assert set(SYS_BPF) == set(TABLES)


def test_an_unknown_architecture_is_not_tried() -> None:
    trial = trial_load("sparc64")
    assert trial == {"result": "not-tried", "errno": None,
                     "detail": "no bpf(2) number known for architecture sparc64"}


def _root_for(tmp_path: Path, arch: str) -> Path:
    root = tmp_path / arch
    shutil.copytree(ROOTS / "host-6.18-kconfig-integrity", root, symlinks=True)
    (root / "proc/sys/kernel/arch").write_text(arch + "\n")
    (root / "sys/kernel/btf").mkdir(parents=True)
    (root / "sys/kernel/btf/vmlinux").write_bytes(host_btf_bytes())  # the host's BTF: prerequisites met
    return root


@pytest.mark.parametrize(("arch", "number"), [("aarch64", 280), ("x86_64", 321), ("s390x", 351)])
def test_status_on_a_fixture_of_another_architecture(tmp_path: Path, arch: str, number: int) -> None:
    bpf = lockdownctl("status", "--json", "--root", str(_root_for(tmp_path, arch))).json()["data"]["bpf_lsm"]
    assert (bpf["arch"], bpf["bpf_syscall"]) == (arch, number)
    assert bpf["usable"] is False and bpf["trial_load"] == "not-tried" and bpf["fix"] == ""


def test_status_on_an_architecture_without_a_number(tmp_path: Path) -> None:
    bpf = lockdownctl("status", "--json", "--root", str(_root_for(tmp_path, "mips64"))).json()["data"]["bpf_lsm"]
    assert bpf["bpf_syscall"] is None and bpf["usable"] is False
    assert bpf["fix"].startswith("no bpf(2) number known for architecture mips64")
