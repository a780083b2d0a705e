"""The status document's shape (``lockdownctl status --json`` data, lockdownctl(8)).

Imported only under TYPE_CHECKING: the document stays plain dicts at run
time (status must start fast), and mypy checks every reader's keys.
"""

from __future__ import annotations

from typing import TypedDict


class Evidence(TypedDict):
    where: str
    text: str


class Source(TypedDict):
    kind: str  # kconfig | cmdline | secure_boot | securityfs | none | unknown
    detail: str
    evidence: list[Evidence]


class Lsm(TypedDict):
    active: list[str] | None
    how: str
    lockdown_active: bool | None
    cmdline_lsm: list[str] | None
    config_lsm: str | None


class Trial(TypedDict):
    result: str  # ok | refused | not-tried
    errno: str | None
    detail: str | None


class BpfLsm(TypedDict):
    usable: bool
    config: bool | None
    listed: bool | None
    btf: bool
    trial_load: str
    errno: str | None
    detail: str | None
    fix: str
    arch: str | None  # uname -m of the kernel
    bpf_syscall: int | None  # __NR_bpf there; None: unknown architecture


class SecureBoot(TypedDict):
    efi: bool | None
    state: str  # enabled | disabled | setup-mode | validation-disabled | not-efi | unknown
    secure_boot: bool | None
    setup_mode: bool | None
    mok_validation_disabled: bool | None
    boot_params: str | None
    evidence: list[str]
    notes: list[str]


class Kernel(TypedDict):
    release: str | None
    btf: bool
    config: str | None
    euid: int | None


class Expect(TypedDict):
    level: str
    met: bool


class _Status(TypedDict):
    level: str | None
    level_read_from: str
    source: Source
    offered: list[str]
    forced_by_kconfig: str | None
    can_raise: bool | None
    raise_to: list[str]
    lsm: Lsm
    secure_boot: SecureBoot
    bpf_lsm: BpfLsm
    enforcer: dict[str, object]
    kernel: Kernel
    notes: list[str]


class Status(_Status, total=False):
    expect: Expect  # only with status --expect
