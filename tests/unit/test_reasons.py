"""reasons.py: the catalogue is consistent and merges with BTF as documented."""

from __future__ import annotations

import re

import pytest

from lockdownctl import reasons
from lockdownctl.btf import LockdownEnum, parse_lockdown_enum
from lockdownctl.errors import InputError
from lockdownctl.klog import parser
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


def test_unknown_reason_lists_choices_and_suggests_the_closest() -> None:
    with pytest.raises(InputError, match=r"unknown lockdown reason 'devmem' \(did you mean 'dev_mem'\?\) "
                       r"\(valid: module_signature, dev_mem"):
        reasons.merge(None).get("devmem")
    with pytest.raises(InputError) as info:
        reasons.merge(None).get("zzzzzz")
    assert "did you mean" not in str(info.value)


@pytest.mark.parametrize("reason", reasons.TABLE, ids=lambda r: r.id)
def test_every_log_string_maps_back(reason: reasons.Reason) -> None:
    """denial_line() builds what the kernel prints; klog reads it back, whatever the comm or dialect."""
    line = reasons.denial_line(reason, "some: comm")
    assert line == f"Lockdown: some: comm: {reason.log} is restricted; see man kernel_lockdown.7"
    assert reasons.denial_line(reason.id) == reasons.denial_line(reason)
    event = parser.parse_line(f"[ 12.5] {line}")
    assert event is not None and (event.reason, event.comm) == (reason.id, "some: comm")
    event = parser.parse_line(f"Lockdown early: modprobe: {reason.log} is restricted")
    assert event is not None and (event.reason, event.comm, event.dialect) == (reason.id, "modprobe", "suse-early")
    assert reasons.reason_from_phrase(reason.log.upper()) == (reason, False)


def test_unrelated_line_maps_to_nothing() -> None:
    event = parser.parse_line("Lockdown: x: something new is restricted")
    assert event is not None and event.reason is None and event.what == "something new"
    assert reasons.reason_from_phrase("something new") is None
    with pytest.raises(KeyError):
        reasons.denial_line("no_such_reason")


# --- the compile-time gate of every reason ------------------------------------------


@pytest.mark.parametrize("reason", reasons.TABLE, ids=lambda r: r.id)
def test_every_reason_has_a_compile_time_gate_or_says_why_not(reason: reasons.Reason) -> None:
    assert bool(reason.config) != bool(reason.config_none), reason.id
    for option in reason.config:
        assert re.fullmatch(r"CONFIG_[A-Z0-9_]+", option)
    if reason.config_none:
        assert re.search(r"\S+\.c\b", reason.config_none), "cite the kernel source that is always built"


def test_gates_are_options_of_real_kernels() -> None:
    """Every x86 gate exists in the real Debian 6.12 and build-host configs (set or 'is not set')."""
    from tests.conftest import DATA

    names = set()
    for config in ("config-6.12.117+deb12-amd64", "config-6.18.44-fc-v657"):
        names |= set(re.findall(r"CONFIG_[A-Z0-9_]+", (DATA / "kconfig" / config).read_text()))
    non_x86 = {"CONFIG_XMON", "CONFIG_PPC_RTAS", "CONFIG_PPC_PSERIES"}
    for reason in reasons.TABLE:
        for option in reason.config:
            assert option in names or option in non_x86, (reason.id, option)


# --- one home: reason strings and the denial format -----------------------------------


def test_reason_strings_and_denial_format_live_in_one_place() -> None:
    """No module but the catalogue (reasons.py) and the klog grammar spells a reason's kernel
    string or the denial line: symptoms are built with reasons.denial_line()."""
    from tests.conftest import REPO

    src = REPO / "src" / "lockdownctl"
    homes = {src / "reasons.py", *(src / "klog").glob("*.py")}
    # a typed line; a description with placeholders ("Lockdown: <comm>: <what> ...") is documentation
    denial = re.compile(r"Lockdown(?: early)?: [^<\s][^\n]{0,60}is restricted")
    offenders = []
    for path in sorted(src.rglob("*.py")):
        if path in homes:
            continue
        text = path.read_text()
        if denial.search(text):
            offenders.append(f"{path.relative_to(REPO)}: the denial line format")
        for reason in reasons.TABLE:
            if " " in reason.log and reason.log in text:  # one word ("hibernation") is also an id or a word
                offenders.append(f"{path.relative_to(REPO)}: {reason.log!r}")
    assert offenders == []


# A kernel citation: a commit as COMMON.md spells it, or a kernel source file.
_CITED = re.compile(r'Linux kernel commit [0-9a-f]{12} \(".+?"\) \(in v\d+\.\d+'
                    r"|\b(?:arch|drivers|fs|kernel|lib|mm|net|security)/[\w/.-]+\.c\b")


def bypass_problems(r: reasons.Reason) -> list[str]:
    """What the bypass analysis of one reason lacks (empty: complete)."""
    out = []
    if not set(r.defeats) <= {"integrity", "confidentiality"}:
        out.append(f"defeats {r.defeats!r}")
    if "integrity" in r.defeats and "confidentiality" not in r.defeats:
        out.append("a kernel write also reads: integrity without confidentiality")
    if not r.route or not _CITED.search(r.route):
        out.append("route missing or uncited")
    if not r.defeats and not r.route.startswith("none"):
        out.append("no defeats but the route does not say an explicit 'none'")
    if r.checked_in not in reasons.CHECKED_IN:
        out.append(f"checked_in {r.checked_in!r}")
    elif r.checked_in != "requester" and not _CITED.search(r.context):
        out.append("not checked in the requester, but the context is missing or uncited")
    if r.checked_in == "requester" and r.context:
        out.append("context given for a reason checked in the requester")
    return out


@pytest.mark.parametrize("reason", reasons.TABLE, ids=lambda r: r.id)
def test_every_reason_has_cited_bypass_data(reason: reasons.Reason) -> None:
    assert bypass_problems(reason) == []


def test_bypass_check_catches_missing_data() -> None:
    from dataclasses import replace

    msr = next(r for r in reasons.TABLE if r.id == "msr")
    assert bypass_problems(replace(msr, route="")) == ["route missing or uncited"]
    assert bypass_problems(replace(msr, route="writes MSRs")) == ["route missing or uncited"]
    assert bypass_problems(replace(msr, defeats=())) == ["no defeats but the route does not say an explicit 'none'"]
    assert bypass_problems(replace(msr, checked_in="")) == ["checked_in ''"]
    assert bypass_problems(replace(msr, checked_in="elsewhere")) == [
        "not checked in the requester, but the context is missing or uncited"]


def test_bypass_classes_follow_the_kernels_definition() -> None:
    """Every confidentiality reason but a named few reads kernel memory; every integrity
    reason but bpf_write_user (user memory only) writes it; no confidentiality reason writes."""
    writes = {r.id for r in reasons.TABLE if "integrity" in r.defeats}
    integrity = {r.id for r in reasons.TABLE if r.level == "integrity"}
    assert integrity - writes == {"bpf_write_user"}
    assert writes <= integrity
    reads_only = {r.id for r in reasons.TABLE if r.defeats == ("confidentiality",)}
    confidentiality = {r.id for r in reasons.TABLE if r.level == "confidentiality"}
    assert confidentiality - reads_only == {"xfrm_secret"}
    # the call-time reasons the maintainers' thread and anchors-2026 section 3 name
    elsewhere = {r.id for r in reasons.TABLE if r.checked_in != "requester"}
    assert {"hibernation", "pci_access", "module_signature", "xen_user_actions"} <= elsewhere
