"""lockdown.h and seal.h and their ctypes mirrors (abi.py, seal.py) agree on every size and offset.

The C side is compiled here with the system C compiler (as the BPF target
lays structs out like x86-64 for these fixed-width types) and prints its
layout; the Python side is read from ctypes.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest

from lockdownctl.bpf import abi, enforcer, seal

HEADERS = [Path(enforcer.HERE) / "lockdown.h", Path(enforcer.HERE) / "seal.h", Path(enforcer.HERE) / "gate.h"]
STRUCTS = {
    "ld_policy": abi.LdPolicy,
    "ld_exe_key": abi.LdExeKey,
    "ld_id_key": abi.LdIdKey,
    "ld_comm_key": abi.LdCommKey,
    "ld_event": abi.LdEvent,
    "ld_mark": abi.LdMark,
    "ld_proof": abi.LdProof,
    "ld_seal_config": seal.LdSealConfig,
    "ld_seal_self": seal.LdSealSelf,
    "ld_tamper_event": seal.LdTamperEvent,
    "ld_gate_exe": abi.LdGateExe,
    "ld_gate_id": abi.LdGateId,
    "ld_gate_comm": abi.LdGateComm,
    "ld_gate_payload": abi.LdGatePayload,
    "ld_gate_bundle": abi.LdGateBundle,
    "ld_gate_config": abi.LdGateConfig,
    "ld_gate_state": abi.LdGateState,
    "ld_gate_info": abi.LdGateInfo,
    "ld_gate_event": abi.LdGateEvent,
}
CONSTANTS = {
    "LD_MAX_REASONS": abi.LD_MAX_REASONS, "LD_ALLOW": abi.LD_ALLOW, "LD_DENY": abi.LD_DENY,
    "LD_AUDIT": abi.LD_AUDIT, "LD_COUNT_DENIED": abi.LD_COUNT_DENIED,
    "LD_COUNT_AUDITED": abi.LD_COUNT_AUDITED, "LD_COUNT_EXCEPTED": abi.LD_COUNT_EXCEPTED,
    "LD_NCOUNTERS": abi.LD_NCOUNTERS, "LD_COUNTER_DROPS": abi.LD_COUNTER_DROPS,
    "LD_COMM_LEN": abi.LD_COMM_LEN,
    "LD_MARK_TTL_NS": abi.LD_MARK_TTL_NS, "LD_SEAL_MAX": seal.LD_SEAL_MAX, "LD_SEAL_MAX_DEVS": seal.LD_SEAL_MAX_DEVS,
    "LD_SEAL_NRULES": seal.LD_SEAL_NRULES, "LD_SEAL_COUNTER_DROPS": seal.LD_SEAL_COUNTER_DROPS,
    "LD_SEAL_COMM_LEN": seal.LD_SEAL_COMM_LEN,
    "LD_GATE_MAGIC": abi.LD_GATE_MAGIC, "LD_GATE_FORMAT": abi.LD_GATE_FORMAT,
    "LD_GATE_MAX_EXC": abi.LD_GATE_MAX_EXC, "LD_GATE_MAX_SIG": abi.LD_GATE_MAX_SIG,
    "LD_GATE_MAX_PREFIX": abi.LD_GATE_MAX_PREFIX, "LD_GATE_COUNTERS": abi.LD_GATE_COUNTERS,
    **{f"LD_GATE_R_{name.upper()}": i for i, (name, _e) in abi.GATE_REASONS.items() if i},
}


def rule_constants() -> dict[str, int]:
    """LD_SEAL_RULE_* as seal.h defines them, by the name seal.py gives each rule."""
    import re

    text = (Path(enforcer.HERE) / "seal.h").read_text()
    return {name: int(value) for name, value in re.findall(r"#define (LD_SEAL_RULE_\w+) (\d+)", text)}


def test_tamper_rules_match_seal_h() -> None:
    """seal.py's RULES are indexed by the header's LD_SEAL_RULE_* values, one name each, in order, and
    every rule the BPF code uses is named."""
    consts = rule_constants()
    assert sorted(consts.values()) == list(range(len(seal.RULES)))
    source = (Path(enforcer.HERE) / "seal.bpf.c").read_text()
    for const in consts:
        assert const in source, f"{const} is never refused"
    # the hook named in RULES is the program that uses the constant
    import re

    for const, value in consts.items():
        program = re.search(r'SEC\("([^"]+)"\)[^{]*\{(?:[^}]|\}(?!\n\n))*' + const, source)
        assert program is not None, const
        hook = program.group(1).removeprefix("lsm/")
        assert seal.RULES[value].hook == hook, f"{const}: RULES says {seal.RULES[value].hook}, the code {hook}"
    assert len({r.name for r in seal.RULES}) == len(seal.RULES)


def c_layout(tmp_path: Path) -> dict[str, int]:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <linux/types.h>",
             *(f'#include "{header}"' for header in HEADERS), "int main(void) {"]
    for name, mirror in STRUCTS.items():
        lines.append(f'printf("{name}.size=%zu\\n", sizeof(struct {name}));')
        for field, *_ in mirror._fields_:
            lines.append(f'printf("{name}.{field}=%zu\\n", offsetof(struct {name}, {field}));')
    for const in [*CONSTANTS, *rule_constants()]:
        lines.append(f'printf("{const}=%lld\\n", (long long)({const}));')
    lines.append("return 0; }")
    src = tmp_path / "abi.c"
    src.write_text("\n".join(lines))
    subprocess.run([cc, "-o", str(tmp_path / "abi"), str(src)], check=True)
    out = subprocess.run([str(tmp_path / "abi")], capture_output=True, text=True, check=True).stdout
    return {k: int(v) for k, v in (line.split("=") for line in out.split())}


def test_struct_layouts_match(tmp_path: Path) -> None:
    layout = c_layout(tmp_path)
    for name, mirror in STRUCTS.items():
        assert layout[f"{name}.size"] == ctypes.sizeof(mirror), name
        for field, *_ in mirror._fields_:
            assert layout[f"{name}.{field}"] == getattr(mirror, field).offset, f"{name}.{field}"
    for const, value in CONSTANTS.items():
        assert layout[const] == value, const


def test_probe_instruction_encoding_matches_struct_bpf_insn() -> None:
    """The status probe encodes instructions itself (raw bpf(2)); libbpf.py's
    struct bpf_insn mirror must give the same bytes."""
    from lockdownctl.bpf import libbpf
    from lockdownctl.host import bpf_syscall

    for insn in [(0xB7, 0, 0, 0), (0x95, 0, 0, 0), (0x07, 0x01, -8, -8), (0x85, 0, 0, 113), (0x7A, 0x0A, -8, 0)]:
        assert bpf_syscall.encode_insn(insn).to_bytes(8, "little") == bytes(libbpf.BpfInsn(*insn))
