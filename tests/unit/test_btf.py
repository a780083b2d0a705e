"""btf.py: the engine on synthetic blobs, then on the real host BTF."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockdownctl import btf
from lockdownctl.errors import InputError
from tests.conftest import host_btf_bytes
from tests.unit.btfgen import build_btf

SMALL = [("LOCKDOWN_NONE", 0), ("LOCKDOWN_DEV_MEM", 1), ("LOCKDOWN_INTEGRITY_MAX", 2),
         ("LOCKDOWN_KCORE", 3), ("LOCKDOWN_CONFIDENTIALITY_MAX", 4)]


def test_reads_enum_and_levels_from_positions() -> None:
    blob = build_btf({"other": [("A", 1)], "lockdown_reason": SMALL}, padding_types=50)
    enum = btf.parse_lockdown_enum(blob, "test")
    assert enum is not None
    assert enum.members == SMALL
    assert enum.integrity_max == 2 and enum.confidentiality_max == 4
    assert enum.level_of(1) == "integrity" and enum.level_of(3) == "confidentiality"
    assert enum.level_of(0) is None and enum.level_of(2) is None and enum.level_of(4) is None
    assert enum.reasons() == [("LOCKDOWN_DEV_MEM", 1), ("LOCKDOWN_KCORE", 3)]


def test_enum64_is_read() -> None:
    enum = btf.parse_lockdown_enum(build_btf({"lockdown_reason": SMALL}, enum64=True), "test")
    assert enum is not None and enum.members == SMALL


def test_kernel_without_lockdown_enum_gives_none() -> None:
    assert btf.parse_lockdown_enum(build_btf({"other": [("A", 1)]}), "test") is None


def test_full_walk_agrees_with_fast_path() -> None:
    # A decoy: a non-enum type whose name offset equals the enum's must not confuse the search.
    blob = build_btf({"lockdown_reason": SMALL}, padding_types=10)
    fast = btf._find_enum_fast(btf._Blob(blob, "t"), "lockdown_reason")
    walked = [t for t in btf._Blob(blob, "t").walk() if t[2] == 6]
    assert fast == SMALL and len(walked) == 1


def test_func_ids_count_from_one() -> None:
    blob = build_btf({"lockdown_reason": SMALL}, funcs=("bpf_lsm_locked_down", "bpf_lsm_bpf"), padding_types=3)
    # 3 ints, 1 enum, 1 proto, then the functions: ids 6 and 7.
    assert btf.find_func_id(blob, "t", "bpf_lsm_locked_down") == 6
    assert btf.find_func_id(blob, "t", "bpf_lsm_bpf") == 7
    assert btf.find_func_id(blob, "t", "nope") is None


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"", "shorter than a BTF header"),
        (b"\xeb\x9f" + bytes(30), "bad magic 0x9feb"),
        (struct.pack("<HBBIIIII", 0xEB9F, 2, 0, 24, 0, 0, 0, 1) + b"\0", "unsupported BTF version 2"),
        (struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, 4000, 4000, 10), "truncated BTF"),
    ],
)
def test_malformed_blobs_name_the_file(blob: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        btf.parse_lockdown_enum(blob, "/x/vmlinux")
    assert info.value.message.startswith("/x/vmlinux: ")


def test_corrupt_type_section_is_an_input_error() -> None:
    good = build_btf({"lockdown_reason": SMALL})
    bad = bytearray(good)
    struct.pack_into("<I", bad, 24 + 4, (31 << 24) | 1)  # an undefined kind
    with pytest.raises(InputError, match="corrupt BTF"):
        btf._Blob(bytes(bad), "f").walk()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    try:
        btf.parse_lockdown_enum(data, "fuzz")
        btf.find_func_id(data, "fuzz", "bpf_lsm_locked_down")
    except InputError:
        pass


def test_real_host_btf() -> None:
    """The build host's real BTF (tests/data/btf): 31 members with XEN_USER_ACTIONS."""
    data = host_btf_bytes()
    enum = btf.parse_lockdown_enum(data, "host")
    assert enum is not None
    names = [n for n, _ in enum.members]
    assert names[0] == "LOCKDOWN_NONE" and names[-1] == "LOCKDOWN_CONFIDENTIALITY_MAX"
    assert [v for _, v in enum.members] == list(range(len(names)))
    assert enum.value("LOCKDOWN_XEN_USER_ACTIONS") == enum.integrity_max - 1
    # The slow full walk finds the same enum as the fast path.
    blob = btf._Blob(data, "host")
    name_off = blob.name_offset("lockdown_reason")
    hits = [(o, k, n) for _i, o, k, n in blob.walk() if k == 6 and struct.unpack_from("<I", data, o)[0] == name_off]
    assert len(hits) == 1 and blob.enum_members(*hits[0]) == enum.members
    assert btf.find_func_id(data, "host", "bpf_lsm_locked_down") is not None
