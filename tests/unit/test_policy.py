"""policy.py: YAML validation with file:line errors, and the verdict tables."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lockdownctl.bpf.abi import dev_text, kernel_dev
from lockdownctl.btf import parse_lockdown_enum
from lockdownctl.errors import InputError
from lockdownctl.policy import load_policy, parse_policy, verdicts
from lockdownctl.reasons import merge, release_layout
from tests.conftest import REPO, host_btf_bytes, lockdownctl

HOST = merge(parse_lockdown_enum(host_btf_bytes(), "host"))  # the build host's real kernel view
DEBIAN61 = merge(release_layout("6.1"))  # a kernel without xen_user_actions


def test_examples_are_valid() -> None:
    for path in sorted((REPO / "examples").glob("*.yaml")):
        policy = load_policy(str(path), HOST)
        assert policy.version == 1, path


def test_full_policy() -> None:
    text = """version: 1
profile: integrity
mode: audit
scope:
  cgroup: /machine.slice
reasons:
  hibernation: allow
  LOCKDOWN_KPROBES: audit
exceptions:
  - name: undervolt
    exe: /usr/bin/intel-undervolt
    allow: [msr]
  - uid: 0
    allow: [debugfs, tracefs]
  - comm: powertop
    allow: [tracefs]
seal: true
"""
    p = parse_policy(text, "p.yaml", HOST)
    assert (p.profile, p.mode, p.scope_cgroup, p.seal) == ("integrity", "audit", "/machine.slice", True)
    assert p.reasons == {"hibernation": "allow", "kprobes": "audit"}
    assert [(e.kind, e.value, e.allow, e.line) for e in p.exceptions] == [
        ("exe", "/usr/bin/intel-undervolt", ["msr"], 10), ("uid", 0, ["debugfs", "tracefs"], 13),
        ("comm", "powertop", ["tracefs"], 15)]
    table = verdicts(p, HOST)
    assert table["hibernation"] == "allow" and table["kprobes"] == "audit" and table["msr"] == "deny"
    assert table["kcore"] == "allow"  # confidentiality-class: not in the integrity profile


@pytest.mark.parametrize("profile", ["none", "integrity", "confidentiality"])
def test_profiles_deny_what_the_kernel_mode_denies(profile: str) -> None:
    """The profile's deny set is exactly the reasons below the level's *_MAX marker in BTF."""
    enum = parse_lockdown_enum(host_btf_bytes(), "host")
    assert enum is not None
    limit = {"none": 0, "integrity": enum.integrity_max, "confidentiality": enum.confidentiality_max}[profile]
    expected = {n for n, v in enum.reasons() if v < limit}
    table = verdicts(parse_policy(f"version: 1\nprofile: {profile}\n", "p", HOST), HOST)
    assert {HOST.get(r).enum for r, v in table.items() if v == "deny"} == expected


def test_policy_id_ignores_layout() -> None:
    a = parse_policy("version: 1\nprofile: integrity\nreasons: {msr: allow}\n", "a", HOST)
    b = parse_policy("# same\nversion: 1\nreasons:\n  msr: allow\nprofile: integrity\n", "b", HOST)
    c = parse_policy("version: 1\nprofile: integrity\n", "c", HOST)
    assert a.policy_id == b.policy_id != c.policy_id


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "p.yaml: empty policy"),
        ("version: 1\nprofile: paranoid\n", "p.yaml:2: profile must be one of none, integrity, confidentiality"),
        ("version: 1\nmode: log\n", "p.yaml:2: mode must be one of enforce, audit"),
        ("version: 1\nreasons:\n  tracefz: deny\n",
         "p.yaml:3: unknown lockdown reason 'tracefz' in reasons (did you mean 'tracefs'?) (valid: "),
        ("version: 1\nreasons:\n  msr: block\n", "p.yaml:3: reasons.msr must be one of allow, deny, audit"),
        ("version: 1\nprofile: none\nprofile: integrity\n", "p.yaml:3: duplicate key 'profile' in the policy"),
        ("version: 1\nreasons:\n  msr: deny\n  LOCKDOWN_MSR: allow\n", "p.yaml:4: reason msr given twice"),
        ("version: 2\n", "p.yaml:1: unsupported policy version 2"),
        ("profile: none\n", "p.yaml:1: missing 'version: 1'"),
        ("version: 1\nfoo: 1\n", "p.yaml:2: unknown key 'foo' in the policy (valid: version, profile"),
        ("version: 1\nseal: yes please\n", "p.yaml:2: seal must be true or false"),
        ("version: 1\nexceptions:\n  - allow: [msr]\n", "p.yaml:3: an exception needs exactly one of exe, cgroup"),
        ("version: 1\nexceptions:\n  - exe: rel/path\n    allow: [msr]\n", "p.yaml:3: exe must be an absolute path"),
        ("version: 1\nexceptions:\n  - exe: /x\n", "p.yaml:3: an exception needs 'allow"),
        ("version: 1\nexceptions:\n  - exe: /x\n    allow: []\n", "p.yaml:4: allow must name at least one reason"),
        ("version: 1\nexceptions:\n  - comm: a-very-long-command\n    allow: [msr]\n",
         "p.yaml:3: comm 'a-very-long-command' is longer than the kernel's 15 characters"),
        ("version: 1\nexceptions:\n  - uid: [0]\n    allow: [msr]\n", "p.yaml:3: uid must be a single value"),
        ("version: 1\nscope: /x\n", "p.yaml:2: scope must be a mapping"),
        ("version: 1\nreasons: [msr]\n", "p.yaml:2: reasons must be a mapping"),
        ("version: 1\n  bad: indent\n", "p.yaml:2: not valid YAML"),
        # found at the end of the stream: named on the last line, which exists
        ("version: [1\n", "p.yaml:1: not valid YAML"),
        ("version: 1\nreasons: {msr: deny\n", "p.yaml:2: not valid YAML"),
        ("version: 1\nprofile: integrity\x00\n", "p.yaml:2: not valid YAML: character U+0000 is not allowed"),
        ("version: 1\n\nprofile: \x1b[1m\n", "p.yaml:3: not valid YAML: character U+001B is not allowed"),
    ],
)
def test_bad_policies_name_file_and_line(text: str, message: str) -> None:
    with pytest.raises(InputError) as info:
        parse_policy(text, "p.yaml", HOST)
    assert info.value.message.startswith(message), info.value.message
    assert "\n" not in info.value.message


def test_reason_missing_from_this_kernel_is_a_warning() -> None:
    text = "version: 1\nreasons:\n  xen_user_actions: deny\n"
    p = parse_policy(text, "p.yaml", merge(None, "6.1.0-56-amd64"))
    assert p.warnings == []  # no BTF: nothing is claimed about the kernel
    p = parse_policy(text, "p.yaml", DEBIAN61)  # a kernel whose enum is the v6.1 layout
    assert p.warnings == ["p.yaml:3: reason xen_user_actions is not on this kernel: it cannot occur here"]
    assert "xen_user_actions" not in verdicts(p, DEBIAN61)


def test_kernel_dev_encoding() -> None:
    # stat() encodes major 259, minor 3 with new_encode_dev(); the kernel keeps MKDEV(259, 3).
    st_dev = (3 & 0xFF) | (259 << 8) | ((3 & ~0xFF) << 12)
    assert kernel_dev(st_dev) == (259 << 20) | 3
    assert dev_text(kernel_dev(st_dev)) == "259:3"  # the inverse, as enforce events prints exe ids
    st = Path("/").stat()
    assert dev_text(kernel_dev(st.st_dev)) == f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"


def test_comm_length_is_the_kernels() -> None:
    # one home: the policy's limit and the enforcer's ABI both come from TASK_COMM_LEN
    from lockdownctl.bpf.abi import LD_COMM_LEN
    from lockdownctl.policy import COMM_LEN, TASK_COMM_LEN

    assert LD_COMM_LEN == TASK_COMM_LEN == COMM_LEN + 1 == 16


def test_validate_cli(tmp_path: Path) -> None:
    good = lockdownctl("policy", "validate", str(REPO / "examples" / "laptop.yaml"), "--json")
    assert good.code == 0 and good.json()["data"]["verdicts"]["hibernation"] == "allow"
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nreasons:\n  msr: nope\n")
    run = lockdownctl("policy", "validate", str(bad))
    assert run.code == 2 and run.err.strip().startswith(f"lockdownctl: error: {bad}:3: reasons.msr must be one of")
    missing = lockdownctl("policy", "validate", str(tmp_path / "none.yaml"))
    assert missing.code == 2 and "no such policy file" in missing.err


def test_enforce_apply_dry_run_needs_no_root(tmp_path: Path) -> None:
    run = lockdownctl("enforce", "apply", str(REPO / "examples" / "laptop.yaml"), "--dry-run", "--json")
    assert run.code == 0
    data = run.json()["data"]
    assert data["action"] == "dry-run" and data["verdicts"]["msr"] == "deny"
