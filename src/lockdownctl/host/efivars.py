"""Secure Boot state as the kernel's EFI stub decides it.

efi_get_secureboot() (drivers/firmware/efi/libstub/secureboot.c): SecureBoot
missing or 0 -> off; SetupMode 1 -> off; shim's MokSBStateRT 1 -> off
(validation disabled); otherwise on. efivarfs files start with a 4-byte
attribute mask, the value follows (docs/kernel-facts.md 3.3). On x86 the stub
also leaves its verdict in boot_params (struct boot_params.secure_boot at
0x1EC, enum efi_secureboot_mode).
"""

from __future__ import annotations

from ..errors import InputError
from ..root import Root, Unreadable

EFI_GLOBAL = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
SHIM_LOCK = "605dab50-e046-4300-abb6-3dd810dd8b23"
EFIVARS = "sys/firmware/efi/efivars"
LEGACY_VARS = "sys/firmware/efi/vars"
BOOT_PARAMS = "sys/kernel/boot_params/data"
BOOT_PARAMS_SECURE_BOOT = 0x1EC
BOOT_PARAMS_MODES = {0: "unset", 1: "unknown", 2: "disabled", 3: "enabled"}


class SecureBoot:
    def __init__(self, efi: bool | None, state: str, boot_params: str | None) -> None:
        self.efi = efi  # None: no evidence either way
        self.state = state  # enabled | disabled | setup-mode | validation-disabled | not-efi | unknown
        self.secure_boot: bool | None = None
        self.setup_mode: bool | None = None
        self.mok_validation_disabled: bool | None = None
        self.boot_params = boot_params  # the EFI stub's verdict (x86)
        self.evidence: list[str] = []
        self.notes: list[str] = []

    def to_dict(self) -> dict[str, object]:
        return dict(vars(self))


def efivar_value(data: bytes, path: str) -> bytes:
    if len(data) < 5:
        raise InputError(f"{path}: truncated EFI variable: {len(data)} bytes, need the 4-byte "
                         "attribute header and at least one data byte")
    return data[4:]


def _read_var(root: Root, name: str, guid: str, sb: SecureBoot) -> int | None:
    rel = f"{EFIVARS}/{name}-{guid}"
    data = root.read_bytes(rel)
    if isinstance(data, Unreadable):
        sb.notes.append(f"{data.path}: {data.why}")
        return None
    if data is not None:
        value = efivar_value(data, root.display(rel))[0]
        sb.evidence.append(f"{root.display(rel)}: {value}")
        return value
    legacy = f"{LEGACY_VARS}/{name}-{guid}/data"  # CONFIG_EFI_VARS sysfs: raw value
    data = root.read_bytes(legacy)
    if isinstance(data, bytes):
        if not data:
            raise InputError(f"{root.display(legacy)}: empty EFI variable")
        sb.evidence.append(f"{root.display(legacy)}: {data[0]}")
        return data[0]
    return None


def read_boot_params(root: Root) -> str | None:
    data = root.read_bytes(BOOT_PARAMS)
    if not isinstance(data, bytes):
        return None
    if len(data) <= BOOT_PARAMS_SECURE_BOOT:
        raise InputError(f"{root.display(BOOT_PARAMS)}: truncated boot_params: {len(data)} bytes")
    return BOOT_PARAMS_MODES.get(data[BOOT_PARAMS_SECURE_BOOT], f"invalid ({data[BOOT_PARAMS_SECURE_BOOT]})")


def read_secure_boot(root: Root) -> SecureBoot:
    boot_params = read_boot_params(root)
    if not root.exists("sys/firmware/efi"):
        # Absence is evidence only where sysfs's firmware directory is there to
        # show it (the running system, a root that captured /sys/firmware), or
        # where x86's boot_params says the EFI stub never ran: an empty or
        # partial root says nothing about how its machine booted.
        if not (root.live or root.is_dir("sys/firmware") or boot_params == "unset"):
            sb = SecureBoot(efi=None, state="unknown", boot_params=boot_params)
            sb.notes.append(f"{root.display('sys/firmware')}: not in this root: EFI boot and Secure Boot unknown")
            return sb
        sb = SecureBoot(efi=False, state="not-efi", boot_params=boot_params)
        sb.evidence.append(f"{root.display('sys/firmware/efi')}: absent (legacy BIOS or non-EFI boot)")
        return sb
    sb = SecureBoot(efi=True, state="unknown", boot_params=boot_params)
    secure = _read_var(root, "SecureBoot", EFI_GLOBAL, sb)
    setup = _read_var(root, "SetupMode", EFI_GLOBAL, sb)
    mok = _read_var(root, "MokSBStateRT", SHIM_LOCK, sb)
    sb.secure_boot = None if secure is None else secure == 1
    sb.setup_mode = None if setup is None else setup == 1
    sb.mok_validation_disabled = mok == 1 if mok is not None else (False if secure is not None else None)
    if boot_params in ("enabled", "disabled"):
        sb.evidence.append(f"{root.display(BOOT_PARAMS)}: EFI stub verdict {boot_params}")
    if secure is None:
        if boot_params in ("enabled", "disabled"):
            sb.state = boot_params
        else:
            sb.notes.append("SecureBoot variable not readable (efivarfs not mounted?)")
    elif secure != 1:
        sb.state = "disabled"
    elif setup == 1:
        sb.state = "setup-mode"
    elif mok == 1:
        sb.state = "validation-disabled"
    else:
        sb.state = "enabled"
    return sb
