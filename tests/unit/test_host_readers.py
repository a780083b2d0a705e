"""host/: each reader on its own, with the kernel's own parsing rules."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockdownctl.errors import InputError
from lockdownctl.host.cmdline import parse_cmdline
from lockdownctl.host.efivars import efivar_value, read_secure_boot
from lockdownctl.host.kconfig import parse_kconfig, read_kconfig
from lockdownctl.host.kmsg import parse_log, read_kernel_log
from lockdownctl.host.securityfs import parse_lockdown, parse_lsm, read_securityfs
from lockdownctl.klog import level_sets
from lockdownctl.root import Root, Unreadable
from tests.conftest import DATA, ROOTS


def test_cmdline_highest_valid_lockdown_wins() -> None:
    # lock_kernel_down() only raises; "none" and typos are rejected by lockdown_param().
    c = parse_cmdline("ro lockdown=confidentiality lockdown=integrity lockdown=none lockdown=bogus")
    assert c.lockdown == "confidentiality"
    assert c.lockdown_invalid == ["none", "bogus"]


def test_cmdline_quotes_dashes_and_init_args() -> None:
    c = parse_cmdline('root=/dev/sda1 acpi_osi="Windows 2020" module.sig-enforce=1 lsm=lockdown,bpf -- lockdown=x')
    assert c.last("acpi_osi") == "Windows 2020"
    assert c.sig_enforce is True
    assert c.lsm == ["lockdown", "bpf"]
    assert c.lockdown is None  # after "--": arguments for init, not the kernel


@pytest.mark.parametrize("raw", ['root=/dev/sda "unbalanced', "a\x00b", "a\x1bb"])
def test_cmdline_garbage(raw: str) -> None:
    with pytest.raises(InputError, match="/proc/cmdline: malformed command line"):
        parse_cmdline(raw, "/proc/cmdline")


@given(st.text(max_size=200))
def test_cmdline_never_crashes(raw: str) -> None:
    with contextlib.suppress(InputError):
        parse_cmdline(raw)


def test_kconfig_values_and_lines() -> None:
    cfg = parse_kconfig('#\n# comment\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_LSM="lockdown,bpf"\nCONFIG_N=3\n', "c")
    assert cfg.get("A") == "y" and cfg.get("CONFIG_B") == "n" and cfg.get("LSM") == "lockdown,bpf"
    assert cfg.enabled("A") and not cfg.enabled("B") and cfg.get("MISSING") is None
    assert cfg.where("CONFIG_LSM") == "c:5"


def test_kconfig_real_debian_config() -> None:
    cfg = parse_kconfig((DATA / "kconfig" / "config-6.1.0-56-amd64").read_text(), "debian")
    assert cfg.get("LOCK_DOWN_IN_EFI_SECURE_BOOT") == "y"
    assert cfg.get("SECURITY_LOCKDOWN_LSM_EARLY") == "y" and cfg.get("BPF_LSM") == "y"


def test_kconfig_search_order(tmp_path: Path) -> None:
    (tmp_path / "proc/sys/kernel").mkdir(parents=True)
    (tmp_path / "proc/sys/kernel/osrelease").write_text("6.9.0-test\n")
    (tmp_path / "lib/modules/6.9.0-test").mkdir(parents=True)
    (tmp_path / "lib/modules/6.9.0-test/config").write_text("CONFIG_FROM_LIB=y\n")
    cfg = read_kconfig(Root(tmp_path))
    assert cfg is not None and cfg.get("FROM_LIB") == "y"
    (tmp_path / "boot").mkdir()
    (tmp_path / "boot/config-6.9.0-test").write_text("CONFIG_FROM_BOOT=y\n")
    cfg = read_kconfig(Root(tmp_path))
    assert cfg is not None and cfg.get("FROM_BOOT") == "y"


@pytest.mark.parametrize(
    ("text", "level", "offered"),
    [("none [integrity] confidentiality\n", "integrity", ["none", "integrity", "confidentiality"]),
     ("[none] integrity confidentiality", "none", ["none", "integrity", "confidentiality"])],
)
def test_lockdown_file(text: str, level: str, offered: list[str]) -> None:
    assert parse_lockdown(text, "f") == (level, offered)


@pytest.mark.parametrize("text", ["", "none integrity", "[none] [integrity]", "[paranoid]", "none [integrity] extra"])
def test_lockdown_file_garbage(text: str) -> None:
    with pytest.raises(InputError, match="f: malformed lockdown file"):
        parse_lockdown(text, "f")


def test_lsm_list() -> None:
    assert parse_lsm("lockdown,capability,landlock,bpf", "f") == ["lockdown", "capability", "landlock", "bpf"]
    with pytest.raises(InputError):
        parse_lsm("lock down\x00", "f")


def test_securityfs_without_lockdown_file_means_not_built(tmp_path: Path) -> None:
    (tmp_path / "sys/kernel/security").mkdir(parents=True)
    (tmp_path / "sys/kernel/security/lsm").write_text("capability,apparmor")
    sfs = read_securityfs(Root(tmp_path))
    assert sfs.lockdown_file is False and sfs.level is None and sfs.lsm == ["capability", "apparmor"]


def test_efivar_header() -> None:
    assert efivar_value(bytes([6, 0, 0, 0, 1]), "v") == b"\x01"
    with pytest.raises(InputError, match="v: truncated EFI variable: 4 bytes"):
        efivar_value(bytes(4), "v")


def _efi_root(tmp_path: Path, **values: int) -> Root:
    d = tmp_path / "sys/firmware/efi/efivars"
    d.mkdir(parents=True)
    guids = {"SecureBoot": "8be4df61-93ca-11d2-aa0d-00e098032b8c", "SetupMode": "8be4df61-93ca-11d2-aa0d-00e098032b8c",
             "MokSBStateRT": "605dab50-e046-4300-abb6-3dd810dd8b23"}
    for name, value in values.items():
        (d / f"{name}-{guids[name]}").write_bytes(bytes([6, 0, 0, 0, value]))
    return Root(tmp_path)


@pytest.mark.parametrize(
    ("values", "state"),
    [({"SecureBoot": 1, "SetupMode": 0}, "enabled"), ({"SecureBoot": 0, "SetupMode": 0}, "disabled"),
     ({"SecureBoot": 1, "SetupMode": 1}, "setup-mode"),
     ({"SecureBoot": 1, "SetupMode": 0, "MokSBStateRT": 1}, "validation-disabled"), ({}, "unknown")],
)
def test_secure_boot_rules_of_the_efi_stub(tmp_path: Path, values: dict[str, int], state: str) -> None:
    assert read_secure_boot(_efi_root(tmp_path, **values)).state == state


def test_secure_boot_falls_back_to_boot_params(tmp_path: Path) -> None:
    root = _efi_root(tmp_path)  # efivarfs not mounted: no variables
    (tmp_path / "sys/kernel/boot_params").mkdir(parents=True)
    data = bytearray(4096)
    data[0x1EC] = 3
    (tmp_path / "sys/kernel/boot_params/data").write_bytes(bytes(data))
    assert read_secure_boot(root).state == "enabled"


def test_kmsg_and_dmesg_formats() -> None:
    lines = parse_log("5,69,104219,-;Kernel is locked down from Kernel configuration; see man kernel_lockdown.7\n"
                      " SUBSYSTEM=acpi\n"
                      "[    0.104219] Kernel is locked down from command line; see man kernel_lockdown.7\n"
                      "plain text\n")
    assert [(ln.seconds, ln.lineno) for ln in lines] == [(0.104219, 1), (0.104219, 3), (None, 4)]
    assert [s.kind for s in level_sets(lines)] == ["kconfig", "cmdline"]


@pytest.mark.parametrize(
    ("text", "kind"),
    [("Kernel is locked down from EFI Secure Boot; see man kernel_lockdown.7", "secure_boot"),
     ("Kernel is locked down from EFI Secure Boot mode; see man kernel_lockdown.7", "secure_boot"),
     ("Kernel is locked down from EFI secure boot; see man kernel_lockdown.7", "secure_boot"),
     ("Kernel is early locked down from EFI Secure Boot mode", "secure_boot"),
     ("Kernel is locked down from Secure IPL mode; see man kernel_lockdown.7", "secure_boot"),
     ("Kernel is locked down from securityfs; see man kernel_lockdown.7", "securityfs"),
     ("Secure boot enabled and kernel locked down", "secure_boot"),
     ("Kernel is locked down from somewhere new; see man kernel_lockdown.7", "unknown")],
)
def test_level_set_dialects(text: str, kind: str) -> None:
    assert [s.kind for s in level_sets(parse_log(text))] == [kind]


def test_kernel_log_of_fixture() -> None:
    log = read_kernel_log(Root(ROOTS / "host-6.18-kconfig-integrity"))
    assert isinstance(log, list) and len(log) > 300


def test_unreadable_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cmdline").mkdir()  # reading a directory fails with EISDIR
    assert isinstance(Root(tmp_path).read_bytes("proc/cmdline"), Unreadable)


def test_kconfig_blank_runs_and_whitespace_lines_are_accepted() -> None:
    cfg = parse_kconfig("CONFIG_A=y\n\n\n   \n# c\nCONFIG_B=\"x y\"\n", "c")
    assert cfg.get("A") == "y" and cfg.get("B") == "x y" and cfg.where("B") == "c:6"


@pytest.mark.parametrize(
    ("text", "line"),
    [("CONFIG_A=y\nCONFIG_B\n", 2), ("CONFIG_A=y\n\n\ngarbage\n", 4), ("x\n", 1)],
)
def test_kconfig_bad_line_is_named(text: str, line: int) -> None:
    with pytest.raises(InputError, match=rf"^c:{line}: not a kernel config line"):
        parse_kconfig(text, "c")


_KCONFIG_LINES = st.sampled_from(["CONFIG_A=y", "CONFIG_B=m", '# CONFIG_C is not set', "#", "", "  ", "# x",
                                  'CONFIG_S="a b"', "CONFIG_BAD", "junk", "CONFIG_A=n"])


@given(st.lists(_KCONFIG_LINES, min_size=1, max_size=30), st.booleans())
def test_kconfig_fast_validation_agrees_with_line_by_line(lines: list[str], newline: bool) -> None:
    text = "\n".join(lines) + ("\n" if newline else "")
    bad = [i for i, ln in enumerate(lines, 1) if ln in ("CONFIG_BAD", "junk")]
    has_config = any(ln.startswith(("CONFIG_", "# CONFIG_")) for ln in lines)
    if bad:
        with pytest.raises(InputError, match=rf"^c:{bad[0]}: "):
            parse_kconfig(text, "c")
    elif not has_config:
        with pytest.raises(InputError, match="no CONFIG_ lines"):
            parse_kconfig(text, "c")
    else:
        cfg = parse_kconfig(text, "c")
        last = {}
        for ln in lines:
            if ln.startswith("CONFIG_"):
                name, _, value = ln.partition("=")
                last[name] = value.strip('"')
            elif ln.startswith("# CONFIG_"):
                last[ln[2:-11]] = "n"
        assert {k: cfg.get(k) for k in last} == last
        assert cfg.options == last


@pytest.mark.parametrize(
    ("line", "seconds", "text"),
    [("6,1,5000,-;hello; world", 0.005, "hello; world"), ("<5>[    1.500000] msg", 1.5, "msg"),
     ("[12.25] x", 12.25, "x"), ("[abc] x", None, "[abc] x"), ("1,2;not kmsg", None, "1,2;not kmsg"),
     ("<x>[1.0] y", None, "<x>[1.0] y")],
)
def test_log_line_formats(line: str, seconds: float | None, text: str) -> None:
    parsed = parse_log(line)[0]
    assert (parsed.seconds, parsed.text) == (seconds, text)


@given(st.text(max_size=300))
def test_log_parser_never_crashes(text: str) -> None:
    parse_log(text)
    level_sets(parse_log(text))
