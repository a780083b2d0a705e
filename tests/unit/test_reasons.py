"""reasons.py: the catalogue is consistent and merges with BTF as documented."""

from __future__ import annotations

import re

import pytest

from lockdownctl import reasons
from lockdownctl.btf import LockdownEnum, parse_lockdown_enum
from lockdownctl.errors import InputError
from tests.conftest import host_btf_bytes


def test_ids_and_strings_are_unique_and_well_formed() -> None:
    ids = [r.id for r in reasons.TABLE]
    logs = [r.log.lower() for r in reasons.TABLE]
    assert len(set(ids)) == len(ids) and len(set(logs)) == len(logs)
    for r in reasons.TABLE:
        assert re.fullmatch(r"[a-z0-9_]+", r.id)
        assert r.level in ("integrity", "confidentiality")
        assert r.guards and r.breaks and r.remedy and r.call_sites
        assert re.fullmatch(r"\d+\.\d+", r.since)
        if r.added_by:
            assert re.match(r"Linux kernel commit [0-9a-f]{12} \(\".+\"\) \(in v\d+\.\d+", r.added_by)


def test_table_order_is_integrity_then_confidentiality() -> None:
    levels = [r.level for r in reasons.TABLE]
    assert levels == sorted(levels, key=lambda lvl: lvl != "integrity")


@pytest.mark.parametrize(
    ("release", "members", "integrity_max", "confidentiality_max"),
    # Layouts of the .0 releases (kernel history: include/linux/security.h).
    [("5.4", 22, 15, 21), ("5.10", 24, 16, 23), ("5.15", 26, 17, 25), ("6.1", 30, 20, 29),
     ("6.12", 30, 20, 29), ("7.0", 31, 21, 30)],
)
def test_release_layouts(release: str, members: int, integrity_max: int, confidentiality_max: int) -> None:
    layout = reasons.release_layout(release + ".0-1-amd64")
    assert len(layout.members) == members
    assert layout.integrity_max == integrity_max and layout.confidentiality_max == confidentiality_max


def test_old_layout_uses_old_enum_name() -> None:
    names = [n for n, _ in reasons.release_layout("5.10.0").members]
    assert "LOCKDOWN_BPF_READ" in names and "LOCKDOWN_BPF_READ_KERNEL" not in names
    assert reasons.merge(reasons.release_layout("5.10.0")).get("bpf_read_kernel").value == 19


def test_mainline_layout_equals_real_host_btf() -> None:
    """The table's newest layout is exactly what the 6.18.44 kernel's BTF says."""
    real = parse_lockdown_enum(host_btf_bytes(), "host")
    assert real is not None
    assert reasons.release_layout(None).members == real.members


def test_merge_with_btf_takes_values_and_levels_from_the_kernel() -> None:
    # A kernel that moved DEV_MEM to confidentiality and added a reason we do not know.
    kernel = LockdownEnum("k", [("LOCKDOWN_NONE", 0), ("LOCKDOWN_KCORE", 1), ("LOCKDOWN_INTEGRITY_MAX", 2),
                                ("LOCKDOWN_DEV_MEM", 3), ("LOCKDOWN_NEW_THING", 4),
                                ("LOCKDOWN_CONFIDENTIALITY_MAX", 5)])
    cat = reasons.merge(kernel)
    assert cat.get("kcore").value == 1 and cat.get("kcore").level == "integrity"
    assert cat.get("dev_mem").value == 3 and cat.get("dev_mem").level == "confidentiality"
    assert cat.get("msr").on_kernel is False and cat.get("msr").value is None
    assert cat.unknown == (("LOCKDOWN_NEW_THING", 4, "confidentiality"),)
    assert [r.id for r in cat.at_level("integrity")] == ["kcore"]
    assert {r.id for r in cat.at_level("confidentiality")} == {"kcore", "dev_mem"}


def test_merge_maps_old_enum_names() -> None:
    cat = reasons.merge(reasons.release_layout("5.4"))
    assert cat.get("bpf_read_kernel").on_kernel and cat.unknown == ()


def test_without_btf_nothing_is_claimed_on_kernel() -> None:
    cat = reasons.merge(None, "6.1.0-56-amd64")
    assert not cat.from_btf
    assert all(not r.on_kernel for r in cat.reasons)
    assert cat.get("xen_user_actions").value is None  # XSA-482, backported into 6.1.167: 6.1.0-56 cannot tell
    assert cat.get("kcore").value is None  # 21 or 22 (test_reason_numbering.py)


@pytest.mark.parametrize("key", ["dev_mem", "DEV_MEM", "LOCKDOWN_DEV_MEM", " lockdown_dev_mem "])
def test_lookup_spellings(key: str) -> None:
    assert reasons.merge(None).get(key).id == "dev_mem"


def test_unknown_reason_lists_choices() -> None:
    with pytest.raises(InputError, match=r"unknown lockdown reason 'devmem' \(valid: module_signature, dev_mem"):
        reasons.merge(None).get("devmem")


@pytest.mark.parametrize("reason", reasons.TABLE, ids=lambda r: r.id)
def test_every_log_string_maps_back(reason: reasons.Reason) -> None:
    line = f"[ 12.5] Lockdown: some: comm: {reason.log} is restricted; see man kernel_lockdown.7"
    assert reasons.reason_from_line(line) == reason
    assert reasons.reason_from_line(f"Lockdown early: modprobe: {reason.log} is restricted") == reason
    assert reasons.reason_from_line(reason.log.upper()) == reason


def test_unrelated_line_maps_to_nothing() -> None:
    assert reasons.reason_from_line("Lockdown: x: something new is restricted") is None
