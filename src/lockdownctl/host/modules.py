"""Kernel modules: loaded modules and their taint, module files and their
signatures, the kernel's keyrings, modprobe.d and modules-load.d.

Signature layout (scripts/sign-file.c, include/linux/module_signature.h):
the signed file ends with the PKCS#7 blob, then ``struct module_signature``
(algo, hash, id_type, signer_len, key_id_len, pad[3], be32 sig_len), then
the marker ``~Module signature appended~\\n``. module_sig_check()
(kernel/module/signing.c) looks for exactly that marker at the end of the
decompressed image. The PKCS#7 SignerInfo names the key by issuer and
serial number (what ``modinfo -F signer/-F sig_key`` print).

Decompressors are imported on use (lzma, zlib, zstandard): host/ stays cheap
to import.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..root import Root, Unreadable

if TYPE_CHECKING:
    from collections.abc import Iterator

MARKER = b"~Module signature appended~\n"
SIG_STRUCT = 12  # sizeof(struct module_signature)
PKEY_ID_PKCS7 = 2
MODULE_SUFFIXES = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")
TAIL = 65536  # bytes read from the end of an uncompressed module

# Module taint letters (kernel/panic.c taint_flags) that matter for lockdown.
TAINT_LETTERS = {"P": "proprietary", "O": "out-of-tree", "E": "unsigned", "F": "forced", "K": "live patch"}


class LoadedModule:
    __slots__ = ("lineno", "name", "state", "taints")

    def __init__(self, name: str, state: str, taints: str, lineno: int) -> None:
        self.name = name
        self.state = state
        self.taints = taints  # letters, e.g. "OE"
        self.lineno = lineno


def read_loaded(root: Root) -> list[LoadedModule] | Unreadable | None:
    """/proc/modules: ``name size refs deps state addr [(taints)]``."""
    text = root.read_text("proc/modules")
    if not isinstance(text, str):
        return text
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if len(fields) < 5:
            continue
        taints = fields[-1][1:-1] if fields[-1].startswith("(") and fields[-1].endswith(")") else ""
        out.append(LoadedModule(fields[0], fields[4], taints, number))
    return out


# --- signatures ----------------------------------------------------------------


class Signature:
    """What the end of one module file says about its signature."""

    __slots__ = ("error", "hash", "key_id", "signed", "signer", "skid")

    def __init__(self) -> None:
        self.signed = False
        self.signer = ""  # issuer CN of the signing certificate
        self.key_id = ""  # issuer serial number, hex (modinfo's sig_key)
        self.skid = ""  # subject key identifier, when the SignerInfo uses one
        self.hash = ""
        self.error = ""  # non-empty: the file could not be read or decompressed

    def to_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__slots__}


def _decompress(path: str, data: bytes) -> bytes:
    if path.endswith(".xz"):
        import lzma

        return lzma.decompress(data)
    if path.endswith(".zst"):
        import zstandard

        # Frames written by `zstd` in streaming mode carry no content size.
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    if path.endswith(".gz"):
        import zlib

        return zlib.decompress(data, 16 + zlib.MAX_WBITS)
    return data


def module_tail(path: str) -> bytes:
    """The last bytes of the (decompressed) module image."""
    if path.endswith(".ko"):
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - TAIL))
            return fh.read()
    with open(path, "rb") as fh:
        return _decompress(path, fh.read())[-TAIL:]


def module_signature(path: str) -> Signature:
    sig = Signature()
    try:
        tail = module_tail(path)
    except OSError as exc:
        sig.error = exc.strerror or str(exc)
        return sig
    except Exception as exc:  # lzma.LZMAError, zlib.error, zstandard.ZstdError: a broken file
        sig.error = f"cannot decompress: {exc}"
        return sig
    if not tail.endswith(MARKER):
        return sig
    sig.signed = True
    info = tail[-len(MARKER) - SIG_STRUCT : -len(MARKER)]
    if len(info) == SIG_STRUCT and info[2] == PKEY_ID_PKCS7:
        sig_len = int.from_bytes(info[8:12], "big")
        end = len(tail) - len(MARKER) - SIG_STRUCT
        if 0 < sig_len <= end:
            try:
                parse_pkcs7_signer(tail[end - sig_len : end], sig)
            except (IndexError, ValueError):
                sig.error = "signature present, PKCS#7 signer not parsed"
    return sig


# Minimal DER reader: enough to reach SignerInfo.sid in a PKCS#7 SignedData.


def _tlv(buf: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the element at ``pos``."""
    tag = buf[pos]
    length = buf[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4:
            raise ValueError("unsupported DER length")
        length = int.from_bytes(buf[pos : pos + count], "big")
        pos += count
    if pos + length > len(buf):
        raise ValueError("DER element runs past the end")
    return tag, pos, pos + length


def _children(buf: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out = []
    pos = start
    while pos < end:
        tag, vstart, vend = _tlv(buf, pos)
        out.append((tag, vstart, vend))
        pos = vend
    return out


OID_CN = bytes.fromhex("550403")  # 2.5.4.3 commonName


def name_cn(buf: bytes, start: int, end: int) -> str:
    """The commonName of an X.501 Name (SEQUENCE OF SET OF AttributeTypeAndValue)."""
    for _tag, s, e in _children(buf, start, end):
        for _t2, s2, e2 in _children(buf, s, e):
            parts = _children(buf, s2, e2)
            if len(parts) == 2 and buf[parts[0][1] : parts[0][2]] == OID_CN:
                return buf[parts[1][1] : parts[1][2]].decode("utf-8", "replace")
    return ""


def _hex(data: bytes) -> str:
    data = data.lstrip(b"\x00") or b"\x00"  # DER INTEGER sign padding
    return data.hex()


def parse_pkcs7_signer(der: bytes, sig: Signature) -> None:
    _tag, s, e = _tlv(der, 0)  # ContentInfo
    parts = _children(der, s, e)
    _tag, s, e = _tlv(der, parts[1][1])  # [0] EXPLICIT -> SignedData
    signed_data = _children(der, s, e)
    signer_infos = signed_data[-1]  # SET OF SignerInfo: always the last element
    _tag, s, e = _children(der, signer_infos[1], signer_infos[2])[0]
    info = _children(der, s, e)
    sid_tag, sid_s, sid_e = info[1]
    if sid_tag == 0x30:  # IssuerAndSerialNumber
        issuer, serial = _children(der, sid_s, sid_e)[:2]
        sig.signer = name_cn(der, issuer[1], issuer[2])
        sig.key_id = _hex(der[serial[1] : serial[2]])
    elif sid_tag == 0x80:  # [0] SubjectKeyIdentifier
        sig.skid = der[sid_s:sid_e].hex()
        sig.key_id = sig.skid
    digest = _children(der, info[2][1], info[2][2])
    sig.hash = {
        "608648016503040201": "sha256",
        "608648016503040202": "sha384",
        "608648016503040203": "sha512",
        "2b0e03021a": "sha1",
    }.get(der[digest[0][1] : digest[0][2]].hex(), "")


class Certificate:
    __slots__ = ("issuer", "path", "serial", "skid", "subject")

    def __init__(self, path: str) -> None:
        self.path = path
        self.subject = ""
        self.issuer = ""
        self.serial = ""
        self.skid = ""


OID_SKID = bytes.fromhex("551d0e")  # 2.5.29.14


def parse_certificate(der: bytes, path: str) -> Certificate:
    """Subject/issuer CN, serial and SKID of a DER X.509 certificate (a MOK)."""
    cert = Certificate(path)
    _t, s, e = _tlv(der, 0)
    _t, s, e = _children(der, s, e)[0]  # tbsCertificate
    tbs = _children(der, s, e)
    i = 1 if tbs[0][0] == 0xA0 else 0  # [0] version
    cert.serial = _hex(der[tbs[i][1] : tbs[i][2]])
    cert.issuer = name_cn(der, tbs[i + 2][1], tbs[i + 2][2])
    cert.subject = name_cn(der, tbs[i + 4][1], tbs[i + 4][2])
    for tag, es, ee in tbs[i + 6 :]:
        if tag != 0xA3:
            continue
        for _t, xs, xe in _children(der, *_children(der, es, ee)[0][1:]):
            ext = _children(der, xs, xe)
            if der[ext[0][1] : ext[0][2]] == OID_SKID:
                _t, ks, ke = _tlv(der, ext[-1][1])
                cert.skid = der[ks:ke].hex()
    return cert


# --- keyrings -------------------------------------------------------------------


class Key:
    __slots__ = ("description", "key_id", "lineno", "name")

    def __init__(self, description: str, lineno: int) -> None:
        self.description = description
        self.lineno = lineno
        name, _, rest = description.partition(": ")
        self.name = name
        self.key_id = rest.split(":", 1)[0].strip().lower()


def read_keys(root: Root) -> list[Key] | Unreadable | None:
    """Asymmetric keys in /proc/keys (what the caller may view: root sees the
    system keyrings' keys). Description: ``<subject CN>: <SKID or serial hex>``
    (crypto/asymmetric_keys/x509_public_key.c x509_key_preparse())."""
    text = root.read_text("proc/keys")
    if not isinstance(text, str):
        return text
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split(None, 8)
        if len(fields) == 9 and fields[7] == "asymmetri":
            out.append(Key(fields[8].rsplit(": X509", 1)[0].rsplit(": PKCS", 1)[0], number))
    return out


# --- module files and configuration ---------------------------------------------


def module_name(filename: str) -> str:
    base = os.path.basename(filename)
    for suffix in MODULE_SUFFIXES:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("-", "_")


def walk_modules(root: Root, rel: str) -> Iterator[str]:
    """Module files below ``rel`` (relative paths), in sorted order."""
    top = root / rel
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(MODULE_SUFFIXES):
                yield os.path.relpath(os.path.join(dirpath, name), root.path)


def modules_dep(root: Root, release: str) -> dict[str, str]:
    """module name -> path relative to the root, from modules.dep."""
    text = root.read_text(f"lib/modules/{release}/modules.dep")
    out: dict[str, str] = {}
    if isinstance(text, str):
        for line in text.splitlines():
            path = line.split(":", 1)[0]
            if path:
                full = path if path.startswith("/") else f"lib/modules/{release}/{path}"
                out.setdefault(module_name(path), full.lstrip("/"))
    return out


class ConfLine:
    """One meaningful line of a configuration file, with where it is."""

    __slots__ = ("lineno", "path", "words")

    def __init__(self, path: str, lineno: int, words: list[str]) -> None:
        self.path = path
        self.lineno = lineno
        self.words = words

    @property
    def where(self) -> str:
        return f"{self.path}:{self.lineno}"

    @property
    def text(self) -> str:
        return " ".join(self.words)


def drop_in_files(root: Root, dirs: tuple[str, ...], suffix: str) -> list[str]:
    """systemd/kmod drop-in semantics: files from ``dirs`` (highest priority
    first); a name in an earlier dir masks the same name in later ones; sorted
    by file name."""
    chosen: dict[str, str] = {}
    for d in dirs:
        for name in root.listdir(d):
            if name.endswith(suffix) and name not in chosen:
                chosen[name] = f"{d}/{name}"
    return [chosen[name] for name in sorted(chosen)]


def read_conf_lines(root: Root, rel: str, comment: str = "#") -> list[ConfLine]:
    text = root.read_text(rel)
    if not isinstance(text, str):
        return []
    out = []
    logical = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not logical:
            start = number
        if line.endswith("\\"):  # kmod joins continued lines
            logical += line[:-1] + " "
            continue
        logical += line
        if logical and not logical.startswith(comment):
            out.append(ConfLine(root.display(rel), start, logical.split()))
        logical = ""
    return out


MODPROBE_DIRS = ("etc/modprobe.d", "run/modprobe.d", "usr/local/lib/modprobe.d", "usr/lib/modprobe.d", "lib/modprobe.d")
MODULES_LOAD_DIRS = (
    "etc/modules-load.d",
    "run/modules-load.d",
    "usr/local/lib/modules-load.d",
    "usr/lib/modules-load.d",
    "lib/modules-load.d",
)


def read_modprobe(root: Root) -> list[ConfLine]:
    """Every command line of modprobe.d (options, install, softdep, blacklist...)."""
    out = []
    for rel in drop_in_files(root, MODPROBE_DIRS, ".conf"):
        out += read_conf_lines(root, rel)
    return out


def read_modules_load(root: Root) -> list[ConfLine]:
    """Modules loaded at boot: modules-load.d (systemd-modules-load) and /etc/modules (Debian)."""
    out = []
    for rel in [*drop_in_files(root, MODULES_LOAD_DIRS, ".conf"), "etc/modules"]:
        out += [line for line in read_conf_lines(root, rel) if not line.words[0].startswith(";")]
    return out
