"""Cut a kernel's BTF down to the LSM hooks lockdownctl's BPF programs attach to.

    python3 tests/data/btf/hooks/extract.py SOURCE OUT.btf

SOURCE is a Debian ``vmlinuz`` (the compressed kernel is found by its xz or
zstd magic and decompressed with xz(1) / zstd(1); the ``.BTF`` section of the
ELF inside is used), a ``vmlinux`` ELF, or a raw BTF file such as
``/sys/kernel/btf/vmlinux`` (optionally ``.xz``). OUT keeps, for every hook in
lockdownctl.bpf.hooks.VARIANTS, the FUNC ``bpf_lsm_<hook>``, its FUNC_PROTO
and the types of its parameters; structs and unions become forward
declarations (their members are not needed to compare argument lists), so a
fixture is a few kilobytes instead of 5 MB. It is valid BTF that
lockdownctl.btf reads like the kernel's own.
"""

from __future__ import annotations

import lzma
import struct
import subprocess
import sys
from pathlib import Path

KINDS_REF = {2, 8, 9, 10, 11, 12, 18}  # PTR TYPEDEF VOLATILE CONST RESTRICT FUNC TYPE_TAG: .type is a type id
EXTRA = {1: 4, 3: 12, 14: 4, 17: 4}  # fixed extra bytes; per-member kinds below


def extra(kind: int, vlen: int) -> int:
    per = {4: 12, 5: 12, 6: 8, 13: 8, 15: 12, 19: 12}
    return per[kind] * vlen if kind in per else EXTRA.get(kind, 0)


def elf_section(elf: bytes, name: str) -> bytes:
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        raise SystemExit("not a 64-bit ELF")
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)
    def sh(i: int) -> tuple[int, int, int]:
        base = shoff + i * shentsize
        sh_name, = struct.unpack_from("<I", elf, base)
        off, size = struct.unpack_from("<QQ", elf, base + 0x18)
        return sh_name, off, size
    _, stroff, _ = sh(shstrndx)
    for i in range(shnum):
        sh_name, off, size = sh(i)
        end = elf.index(b"\0", stroff + sh_name)
        if elf[stroff + sh_name:end].decode() == name:
            return elf[off:off + size]
    raise SystemExit(f"no {name} section")


def vmlinux_from_vmlinuz(image: bytes) -> bytes:
    for magic, cmd in ((b"\xfd7zXZ\x00", ["xz", "-dc"]), (b"\x28\xb5\x2f\xfd", ["zstd", "-dc"])):
        pos = image.find(magic)
        while pos >= 0:
            done = subprocess.run(cmd, input=image[pos:], capture_output=True, check=False)
            if done.stdout[:4] == b"\x7fELF":  # trailing garbage makes the tools exit non-zero
                return done.stdout
            pos = image.find(magic, pos + 1)
    raise SystemExit("no xz or zstd compressed ELF in the image")


def load_btf(path: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix == ".xz":
        data = lzma.decompress(data)
    if data[:2] == b"\x9f\xeb":
        return data
    if data[:4] != b"\x7fELF":
        data = vmlinux_from_vmlinuz(data)
    return elf_section(data, ".BTF")


def subset(data: bytes, funcs: list[str]) -> bytes:
    hdr_len, = struct.unpack_from("<I", data, 4)
    type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", data, 8)
    types, strs = hdr_len + type_off, hdr_len + str_off
    entries = []  # (offset, kind, vlen, size of the whole record)
    off = types
    while off < types + type_len:
        info, = struct.unpack_from("<I", data, off + 4)
        kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
        n = 12 + extra(kind, vlen)
        entries.append((off, kind, vlen, n))
        off += n

    def name(noff: int) -> str:
        return data[strs + noff:data.index(b"\0", strs + noff)].decode()

    by_name = {name(struct.unpack_from("<I", data, o)[0]): i + 1 for i, (o, k, _v, _n) in enumerate(entries) if k == 12}
    keep: dict[int, int] = {}  # old id -> new id
    order: list[int] = []

    def visit(tid: int) -> None:
        if tid == 0 or tid in keep:
            return
        keep[tid] = len(order) + 1
        order.append(tid)
        o, kind, vlen, _n = entries[tid - 1]
        if kind in KINDS_REF:
            visit(struct.unpack_from("<I", data, o + 8)[0])
        elif kind == 13:  # FUNC_PROTO: return type and parameters
            visit(struct.unpack_from("<I", data, o + 8)[0])
            for i in range(vlen):
                visit(struct.unpack_from("<II", data, o + 12 + 8 * i)[1])
        elif kind == 3:  # ARRAY: element and index types
            elem, index = struct.unpack_from("<II", data, o + 12)
            visit(elem)
            visit(index)

    missing = [f for f in funcs if f not in by_name]
    if missing:
        raise SystemExit(f"not in this BTF: {', '.join(missing)}")
    for func in funcs:
        visit(by_name[func])

    strings = bytearray(b"\0")
    offsets: dict[str, int] = {"": 0}

    def add(text: str) -> int:
        if text not in offsets:
            offsets[text] = len(strings)
            strings.extend(text.encode() + b"\0")
        return offsets[text]

    out = bytearray()
    for tid in order:
        o, kind, vlen, n = entries[tid - 1]
        name_off, info, size_or_type = struct.unpack_from("<III", data, o)
        if kind in (4, 5):  # STRUCT/UNION -> FWD (kflag 1: union)
            out += struct.pack("<III", add(name(name_off)), (7 << 24) | ((kind == 5) << 31), 0)
            continue
        if kind in KINDS_REF or kind == 13:
            size_or_type = keep[size_or_type] if size_or_type else 0
        out += struct.pack("<III", add(name(name_off)), info, size_or_type)
        body = bytearray(data[o + 12:o + n])
        if kind == 13:
            for i in range(vlen):
                p_name, p_type = struct.unpack_from("<II", body, 8 * i)
                struct.pack_into("<II", body, 8 * i, add(name(p_name)), keep[p_type] if p_type else 0)
        elif kind in (6, 19):
            step = 8 if kind == 6 else 12
            for i in range(vlen):
                m_name, = struct.unpack_from("<I", body, step * i)
                struct.pack_into("<I", body, step * i, add(name(m_name)))
        elif kind == 3:
            elem, index, nelems = struct.unpack_from("<III", body)
            struct.pack_into("<III", body, 0, keep[elem], keep[index], nelems)
        out += body
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(out), len(out), len(strings))
    return header + bytes(out) + bytes(strings)


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[4] / "src"))
    from lockdownctl.bpf.hooks import all_hooks

    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    target.write_bytes(subset(load_btf(source), [f"bpf_lsm_{h}" for h in all_hooks()]))


if __name__ == "__main__":
    main()
