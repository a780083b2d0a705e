"""Build small, valid BTF blobs for the engine tests (include/uapi/linux/btf.h)."""

from __future__ import annotations

import struct


def build_btf(enums: dict[str, list[tuple[str, int]]], enum64: bool = False,
              funcs: tuple[str, ...] = (), padding_types: int = 0) -> bytes:
    strings = bytearray(b"\0")

    def name(text: str) -> int:
        off = len(strings)
        strings.extend(text.encode() + b"\0")
        return off

    types = bytearray()
    # Unrelated types first, so that type ids and offsets are not trivial.
    for i in range(padding_types):
        types += struct.pack("<III", name(f"int{i}"), (1 << 24), 4) + struct.pack("<I", 32)
    for enum_name, members in enums.items():
        kind = 19 if enum64 else 6
        types += struct.pack("<III", name(enum_name), (kind << 24) | len(members), 8 if enum64 else 4)
        for member, value in members:
            if enum64:
                types += struct.pack("<III", name(member), value & 0xFFFFFFFF, value >> 32)
            else:
                types += struct.pack("<II", name(member), value)
    proto_id = padding_types + len(enums) + 1
    if funcs:
        types += struct.pack("<III", 0, (13 << 24), 0)  # FUNC_PROTO, no params
        for func in funcs:
            types += struct.pack("<III", name(func), (12 << 24), proto_id)
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return header + bytes(types) + bytes(strings)
