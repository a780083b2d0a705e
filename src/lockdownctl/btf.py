"""Read ``enum lockdown_reason`` from a kernel BTF blob.

The kernel inserts new reasons in the middle of the enum (for example
LOCKDOWN_XEN_USER_ACTIONS before LOCKDOWN_INTEGRITY_MAX), so numeric values
and levels are only trustworthy when read from the kernel that runs. BTF is
the kernel's own type description: ``/sys/kernel/btf/vmlinux`` (needs
CONFIG_DEBUG_INFO_BTF, Linux kernel commit 341dfcf8d78e ("btf: expose BTF
info through sysfs") (in v5.5)).

Format: include/uapi/linux/btf.h. Only the pieces needed to walk the type
section and decode enums are implemented here.
"""

from __future__ import annotations

import os
import struct

from .errors import InputError

TYPE_CHECKING = False  # status imports this module (the BTF path): no typing at run time
if TYPE_CHECKING:
    from collections.abc import Sequence

BTF_MAGIC = 0xEB9F
# The one home of the path (relative to a Root): the running kernel's BTF.
VMLINUX_BTF = "sys/kernel/btf/vmlinux"
ENUM_NAME = "lockdown_reason"

# BTF_KIND_* values and the size of the data that follows each btf_type
# (a function of vlen for kinds that carry members).
_KIND_ENUM = 6
_KIND_FUNC = 12
_KIND_ENUM64 = 19


# Per kind: bytes after struct btf_type, as (fixed, per vlen); None: unknown kind.
# INT, VAR, DECL_TAG: one u32; ARRAY: struct btf_array; STRUCT, UNION, DATASEC,
# ENUM64: 12 per member; ENUM, FUNC_PROTO: 8 per member; the rest: nothing.
_SIZES = tuple((4, 0) if k in (1, 14, 17) else (12, 0) if k == 3
               else (0, 12) if k in (4, 5, 15, _KIND_ENUM64) else (0, 8) if k in (_KIND_ENUM, 13)
               else (0, 0) if k in (2, 7, 8, 9, 10, 11, 12, 16, 18) else None for k in range(32))


def _extra(kind: int, vlen: int) -> int:
    size = _SIZES[kind]
    if size is None:
        raise ValueError(f"unknown BTF kind {kind}")
    return size[0] + size[1] * vlen


class LockdownEnum:
    """``enum lockdown_reason`` as one kernel defines it."""

    __slots__ = ("members", "source")

    def __init__(self, source: str, members: Sequence[tuple[str, int]] = ()) -> None:
        self.source = source
        self.members = list(members)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LockdownEnum) and (self.source, self.members) == (other.source, other.members)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"LockdownEnum({self.source!r}, {self.members!r})"

    def value(self, name: str) -> int | None:
        for member, value in self.members:
            if member == name:
                return value
        return None

    @property
    def integrity_max(self) -> int:
        value = self.value("LOCKDOWN_INTEGRITY_MAX")
        if value is None:
            raise InputError(f"{self.source}: enum lockdown_reason has no LOCKDOWN_INTEGRITY_MAX")
        return value

    @property
    def confidentiality_max(self) -> int:
        value = self.value("LOCKDOWN_CONFIDENTIALITY_MAX")
        if value is None:
            raise InputError(f"{self.source}: enum lockdown_reason has no LOCKDOWN_CONFIDENTIALITY_MAX")
        return value

    def level_of(self, value: int) -> str | None:
        """The level at which a reason value is denied on this kernel.

        security/lockdown/lockdown.c lockdown_is_locked_down() denies when
        ``kernel_locked_down >= what``, so a reason below INTEGRITY_MAX is
        denied from integrity on, one below CONFIDENTIALITY_MAX only at
        confidentiality.
        """
        if 0 < value < self.integrity_max:
            return "integrity"
        if self.integrity_max < value < self.confidentiality_max:
            return "confidentiality"
        return None

    def reasons(self) -> list[tuple[str, int]]:
        """Real reasons: members other than NONE and the *_MAX markers."""
        return [(n, v) for n, v in self.members if self.level_of(v) is not None]


class _Blob:
    """A parsed BTF header with helpers over the type and string sections."""

    def __init__(self, data: bytes, source: str) -> None:
        self.source = source
        if len(data) < 24:
            raise InputError(f"{source}: not BTF: {len(data)} bytes, shorter than a BTF header")
        magic, version, _flags, hdr_len = struct.unpack_from("<HBBI", data, 0)
        if magic != BTF_MAGIC:
            raise InputError(f"{source}: not BTF: bad magic 0x{magic:04x} (expected 0x{BTF_MAGIC:04x})")
        if version != 1:
            raise InputError(f"{source}: unsupported BTF version {version}")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", data, 8)
        self.types = hdr_len + type_off
        self.types_end = self.types + type_len
        self.strs = hdr_len + str_off
        self.strs_end = self.strs + str_len
        if self.types_end > len(data) or self.strs_end > len(data) or hdr_len < 24:
            raise InputError(f"{source}: truncated BTF: sections end past the file ({len(data)} bytes)")
        self.data = data

    def name(self, off: int) -> str:
        start = self.strs + off
        end = self.data.find(b"\0", start, self.strs_end)
        if start >= self.strs_end or end < 0:
            raise InputError(f"{self.source}: corrupt BTF: string offset {off} out of range")
        return self.data[start:end].decode("utf-8", "replace")

    def name_offset(self, name: str) -> int | None:
        """Offset of ``name`` in the string section, without walking it."""
        needle = b"\0" + name.encode() + b"\0"
        pos = self.data.find(needle, self.strs, self.strs_end)
        return None if pos < 0 else pos + 1 - self.strs

    def walk(self) -> list[tuple[int, int, int, int]]:
        """Every type as (type id, offset, kind, vlen); ids start at 1."""
        out = []
        data, off, end, type_id = self.data, self.types, self.types_end, 1
        unpack = struct.unpack_from
        try:
            while off < end:
                info = unpack("<I", data, off + 4)[0]
                kind = (info >> 24) & 0x1F
                vlen = info & 0xFFFF
                out.append((type_id, off, kind, vlen))
                off += 12 + _extra(kind, vlen)
                type_id += 1
        except (struct.error, ValueError) as exc:
            raise InputError(f"{self.source}: corrupt BTF type section at type {type_id}: {exc}") from None
        if off != end:
            raise InputError(f"{self.source}: corrupt BTF: type section overruns its length")
        return out

    def enum_members(self, off: int, kind: int, vlen: int) -> list[tuple[str, int]]:
        info = struct.unpack_from("<I", self.data, off + 4)[0]
        signed = bool(info >> 31)
        members = []
        pos = off + 12
        for _ in range(vlen):
            if kind == _KIND_ENUM:
                name_off, raw = struct.unpack_from("<II", self.data, pos)
                value = raw - (1 << 32) if signed and raw >> 31 else raw
                pos += 8
            else:
                name_off, lo, hi = struct.unpack_from("<III", self.data, pos)
                value = (hi << 32) | lo
                pos += 12
            name = self.name(name_off)
            # The kernel's BTF verifier accepts only C identifiers (btf_name_valid_identifier()):
            # an empty or odd name is damage, not a reason the catalogue could name.
            if not (name.isascii() and name.replace("_", "a").isalnum() and not name[0].isdigit()):
                raise InputError(f"{self.source}: corrupt BTF: enum member name {name[:40]!r} is not an "
                                 "identifier")
            members.append((name, value))
        return members


def _find_enum_fast(blob: _Blob, name: str) -> list[tuple[str, int]] | None:
    """Find a named enum by its name offset instead of walking 100k+ types.

    A 4-byte-aligned hit of the name offset followed by an ENUM/ENUM64 info
    word whose members are all named LOCKDOWN_* is accepted; anything else
    falls back to the full walk. This keeps ``status`` fast on a 5 MB vmlinux.
    """
    name_off = blob.name_offset(name)
    if name_off is None:
        return None
    needle = struct.pack("<I", name_off)
    pos = blob.types
    while True:
        pos = blob.data.find(needle, pos, blob.types_end)
        if pos < 0:
            return None
        if (pos - blob.types) % 4 == 0 and pos + 12 <= blob.types_end:
            info = struct.unpack_from("<I", blob.data, pos + 4)[0]
            kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
            if kind in (_KIND_ENUM, _KIND_ENUM64) and 0 < vlen < 1024:
                try:
                    members = blob.enum_members(pos, kind, vlen)
                except (struct.error, InputError):
                    members = []
                if members and all(m.startswith("LOCKDOWN_") for m, _ in members):
                    return members
        pos += 1


def parse_lockdown_enum(data: bytes, source: str) -> LockdownEnum | None:
    """``enum lockdown_reason`` from BTF bytes, or None when the kernel lacks it."""
    blob = _Blob(data, source)
    members = _find_enum_fast(blob, ENUM_NAME)
    if members is None:
        name_off = blob.name_offset(ENUM_NAME)
        if name_off is None:
            return None
        for _tid, off, kind, vlen in blob.walk():
            if kind in (_KIND_ENUM, _KIND_ENUM64) and struct.unpack_from("<I", data, off)[0] == name_off:
                members = blob.enum_members(off, kind, vlen)
                break
        else:
            return None
    return LockdownEnum(source=source, members=members)


def find_func_id(data: bytes, source: str, name: str) -> int | None:
    """BTF type id of a FUNC, e.g. ``bpf_lsm_locked_down`` for an LSM attach.

    One pass that stops at the match (about 30 ms over a 5 MB vmlinux, as
    fast as libbpf's btf__find_by_name_kind): the BPF LSM trial load needs it
    without loading libbpf."""
    blob = _Blob(data, source)
    name_off = blob.name_offset(name)
    if name_off is None:
        return None
    head = struct.Struct("<II").unpack_from
    off, end, type_id = blob.types, blob.types_end, 1
    try:
        while off < end:
            type_name, info = head(data, off)
            kind = (info >> 24) & 0x1F
            if kind == _KIND_FUNC and type_name == name_off:
                return type_id
            off += 12 + _extra(kind, info & 0xFFFF)
            type_id += 1
    except (struct.error, ValueError) as exc:
        raise InputError(f"{source}: corrupt BTF type section at type {type_id}: {exc}") from None
    return None


def read_lockdown_enum(path: str | os.PathLike[str] = "/" + VMLINUX_BTF) -> LockdownEnum | None:
    """Read the enum from a BTF file; None when the file does not define it."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise InputError(f"{path}: cannot read BTF: {exc.strerror}") from None
    return parse_lockdown_enum(data, path)


# Kinds whose btf_type.type is another type id, skipped when spelling a type
# as C: TYPEDEF VOLATILE CONST RESTRICT TYPE_TAG (a typedef is spelled as what it names).
_KINDS_TRANSPARENT = (8, 9, 10, 11, 18)


def func_protos(data: bytes, source: str, names: list[str]) -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """Return type and ``(name, type)`` parameters of the named FUNCs present.

    Types are spelled as C with typedefs resolved and qualifiers dropped
    ("unsigned int" for ``fmode_t``, "struct path *" for ``const struct
    path *``, "enum lockdown_reason"). lockdownctl.bpf.hooks compares them
    with what its BPF programs expect.
    """
    blob = _Blob(data, source)
    types = blob.walk()
    unpack = struct.unpack_from

    def spell(type_id: int, depth: int = 0) -> str:
        if type_id == 0:
            return "void"
        if type_id > len(types) or depth > 32:
            raise InputError(f"{source}: corrupt BTF: type id {type_id} out of range or looping")
        _tid, off, kind, _vlen = types[type_id - 1]
        name_off, info, ref = unpack("<III", data, off)
        if kind in _KINDS_TRANSPARENT:
            return spell(ref, depth + 1)
        if kind == 2:  # PTR
            target = spell(ref, depth + 1)
            return target + ("*" if target.endswith("*") else " *")
        if kind in (4, 5) or (kind == 7):  # STRUCT UNION FWD (kflag: union)
            union = kind == 5 or (kind == 7 and info >> 31)
            return f"{'union' if union else 'struct'} {blob.name(name_off)}"
        if kind in (_KIND_ENUM, _KIND_ENUM64):
            return f"enum {blob.name(name_off)}"
        if kind == 13:
            return "function"
        if kind == 3:
            return spell(unpack("<I", data, off + 12)[0], depth + 1) + " []"
        return blob.name(name_off)  # INT, FLOAT

    wanted = {blob.name_offset(n): n for n in names}
    out: dict[str, tuple[str, list[tuple[str, str]]]] = {}
    for _tid, off, kind, _vlen in types:
        if kind != _KIND_FUNC:
            continue
        name = wanted.get(unpack("<I", data, off)[0])
        if name is None:
            continue
        proto = unpack("<I", data, off + 8)[0]
        if not 0 < proto <= len(types) or types[proto - 1][2] != 13:
            raise InputError(f"{source}: corrupt BTF: FUNC {name} has no FUNC_PROTO")
        _p, poff, _k, vlen = types[proto - 1]
        params = []
        for i in range(vlen):
            p_name, p_type = unpack("<II", data, poff + 12 + 8 * i)
            params.append((blob.name(p_name), spell(p_type)))
        out[name] = (spell(unpack("<I", data, poff + 8)[0]), params)
    return out
