"""Signed policy bundles (issue #19): compile, sign, verify offline.

A bundle is one ``struct ld_gate_bundle`` (bpf/gate.h), byte for byte what
the kernel-side gate (bpf/gate.bpf.c) receives: a fixed-size payload holding
the exact map contents of one policy generation (verdict per reason value,
audit flag, exception entries), a version, an optional host id and the
fingerprint of the reason numbering the verdicts use; then a detached PKCS#7
signature over the payload in the kernel's module-signature shape: DER,
SHA-256, RSA PKCS#1 v1.5, no signed attributes, no certificates, the signer
named by its subject key identifier -- what ``openssl cms -sign -binary
-noattr -nocerts -keyid -md sha256 -outform DER`` and the kernel's
``scripts/sign-file`` produce, and what ``bpf_verify_pkcs7_signature()``
checks against a keyring (crypto/asymmetric_keys/pkcs7_trust.c looks the key
up by that identifier when no certificate is embedded).

With a fixed RSA key the DER is a constant prefix (algorithms and key id)
followed by the RSA value, so the gate pins the signer by comparing that
prefix (``signer_prefix``) before the kernel checks the signature: a
signature that embeds certificates, or names another key, is refused first.

What a bundle carries, and why (docs/signed-policy.md): reason verdicts are
indexed by the target kernel's reason values, so a bundle is compiled for
one numbering (``reasons_id``; ``policy sign --btf`` compiles for a target's
BTF) and the gate refuses another. uid and comm exceptions are portable.
exe exceptions are (dev, inode) and cgroup exceptions cgroup ids of the
host that resolves them: a bundle may carry them only when bound to a host
(``--host``), and they are resolved where ``policy sign`` runs. A bundle
cannot carry a cgroup scope: the scope lives in a cgroup array, which
sleepable BPF programs (the gate) may not use.
"""

from __future__ import annotations

import ctypes
import hashlib
from dataclasses import dataclass
from typing import Any

from .bpf.abi import (
    LD_GATE_FORMAT,
    LD_GATE_MAGIC,
    LD_GATE_MAX_EXC,
    LD_GATE_MAX_PREFIX,
    LD_GATE_MAX_SIG,
    LD_MAX_REASONS,
    LdGateBundle,
    LdGatePayload,
)
from .bpf.resolve import Resolved
from .errors import EXIT_FINDINGS, InputError, LockdownctlError
from .policy import Policy
from .reasons import Catalogue

# --- DER, the few shapes a CMS SignedData needs ------------------------------------

OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
OID_DATA = "1.2.840.113549.1.7.1"
OID_SHA256 = "2.16.840.1.101.3.4.2.1"
OID_RSA = "1.2.840.113549.1.1.1"


def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _len(len(body)) + body


def _oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    out = bytearray([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        while p > 0x7F:
            p >>= 7
            chunk.append(0x80 | (p & 0x7F))
        out += bytes(reversed(chunk))
    return _tlv(0x06, bytes(out))


def _seq(*items: bytes) -> bytes:
    return _tlv(0x30, b"".join(items))


def _set(*items: bytes) -> bytes:
    return _tlv(0x31, b"".join(items))


def _int(n: int) -> bytes:
    return _tlv(0x02, n.to_bytes(max(1, (n.bit_length() + 8) // 8), "big"))


def cms_signature(skid: bytes, rsa_value: bytes) -> bytes:
    """The detached CMS SignedData for one RSA value, as OpenSSL encodes it
    (SHA-256's AlgorithmIdentifier without parameters, rsaEncryption's with NULL)."""
    sha256 = _seq(_oid(OID_SHA256))
    signer = _seq(_int(3), _tlv(0x80, skid), sha256, _seq(_oid(OID_RSA), b"\x05\x00"), _tlv(0x04, rsa_value))
    signed = _seq(_int(3), _set(sha256), _seq(_oid(OID_DATA)), _set(signer))
    return _seq(_oid(OID_SIGNED_DATA), _tlv(0xA0, signed))


# --- keys and certificates -----------------------------------------------------------


class BundleRefused(LockdownctlError):
    """A well-formed bundle whose signature does not verify (exit 1)."""

    code = "refused"
    exit_code = EXIT_FINDINGS


@dataclass
class Signer:
    """What pins a signer: its key identifier and RSA modulus size."""

    skid: bytes
    modulus_bytes: int
    public_key: Any

    def prefix(self) -> bytes:
        """The DER of any signature by this key up to the RSA value."""
        whole = cms_signature(self.skid, bytes(self.modulus_bytes))
        return whole[: len(whole) - self.modulus_bytes]

    def sig_len(self) -> int:
        return len(cms_signature(self.skid, bytes(self.modulus_bytes)))


def load_cert(path: str) -> Signer:
    """An X.509 certificate (PEM or DER) with an RSA key and a subject key identifier."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa

    data = _read(path, "certificate")
    try:
        cert = x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise InputError(f"{path}: not an X.509 certificate (PEM or DER): {exc}") from None
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise InputError(f"{path}: the key is not RSA: the gate verifies RSA only (Debian's 6.1 has no "
                         "CONFIG_CRYPTO_ECDSA)")
    try:
        skid = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        raise InputError(f"{path}: the certificate has no subject key identifier: the kernel finds the key "
                         "of a certificate-less signature by it (add subjectKeyIdentifier=hash)") from None
    return Signer(skid=skid, modulus_bytes=(key.key_size + 7) // 8, public_key=key)


def load_key(path: str) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    data = _read(path, "private key")
    try:
        key = (serialization.load_pem_private_key(data, None) if b"-----BEGIN" in data
               else serialization.load_der_private_key(data, None))
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path}: not an unencrypted private key (PEM or DER): {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise InputError(f"{path}: the key is not RSA")
    return key


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(1 << 20)
    except OSError as exc:
        raise InputError(f"{path}: cannot read the {what}: {exc.strerror}") from None


# --- identities ------------------------------------------------------------------------


def _u64(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def reasons_id(cat: Catalogue) -> int:
    """Fingerprint of a kernel's reason numbering (reason id -> value)."""
    pairs = sorted((r.id, r.value) for r in cat.reasons if r.value is not None and r.value < LD_MAX_REASONS)
    return _u64(repr(pairs)) or 1


def host_id(machine_id: str) -> int:
    """A host's id in a bundle: from its /etc/machine-id (0 means any host)."""
    text = machine_id.strip()
    if len(text) != 32 or any(c not in "0123456789abcdef" for c in text):
        raise InputError(f"{machine_id!r}: not a machine id (32 lowercase hex digits, /etc/machine-id)")
    return _u64("lockdownctl-host:" + text) or 1


def local_machine_id(root: str = "/") -> str:
    import os

    path = os.path.join(root, "etc/machine-id")
    try:
        with open(path, encoding="ascii") as fh:
            return fh.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the machine id: {exc}") from None


# --- compile, sign, verify ---------------------------------------------------------------


def check_signable(policy: Policy) -> None:
    """Refuse what a bundle cannot carry before anything is resolved (a path
    exception whose file is absent here would otherwise be skipped silently)."""
    for exc in policy.exceptions:
        if exc.kind == "path":
            raise InputError(f"{policy.source}:{exc.line}: a signed policy cannot have path exceptions (a debugfs "
                             "file's inode is new on every mount; the gate empties them: docs/signed-policy.md)")


def compile_payload(resolved: Resolved, cat: Catalogue, version: int, host: int, source: str) -> LdGatePayload:
    """The payload for a resolved policy: one generation's map contents."""
    if resolved.scope:
        raise InputError(f"{source}: a signed policy cannot have a cgroup scope (the gate, a sleepable BPF "
                         "program, may not use the enforcer's cgroup array)")
    if not 0 < version < 1 << 63:
        raise InputError(f"--version {version}: must be between 1 and 2^63-1")
    p = LdGatePayload(magic=LD_GATE_MAGIC, format=LD_GATE_FORMAT, version=version, host_id=host,
                      reasons_id=reasons_id(cat), policy_id=resolved.policy_id, audit=int(resolved.audit))
    for value, code in enumerate(resolved.table):
        p.verdict[value] = code
    for kind, entries in resolved.exceptions.items():
        if kind == "path":
            continue  # none (check_signable); the gate empties the new slot's
        if kind in ("exe", "cgroup") and not host:
            raise InputError(f"{source}: {kind} exceptions are ids of the host that resolves them "
                             f"({entries[0][2]}): sign with --host MACHINE_ID on that host")
        if len(entries) > LD_GATE_MAX_EXC:
            raise InputError(f"{source}: {len(entries)} {kind} exceptions; a signed bundle holds at most "
                             f"{LD_GATE_MAX_EXC} per kind")
        setattr(p, f"n_{kind}", len(entries))
        table = getattr(p, kind)
        for i, (ident, mask, _label) in enumerate(entries):
            if kind == "exe":
                table[i].dev, table[i].ino = ident
            elif kind == "comm":
                table[i].comm = ident
            else:
                table[i].id = ident
            table[i].mask = mask
    return p


def sign(payload: LdGatePayload, key: Any, signer: Signer) -> bytes:
    """The bundle: payload and its detached signature."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    if key.public_key().public_numbers() != signer.public_key.public_numbers():
        raise InputError("--key and --cert do not belong together (different public keys)")
    data = bytes(payload)
    der = cms_signature(signer.skid, key.sign(data, padding.PKCS1v15(), hashes.SHA256()))
    if len(der) > LD_GATE_MAX_SIG or len(signer.prefix()) > LD_GATE_MAX_PREFIX:
        raise InputError(f"a {signer.modulus_bytes * 8}-bit key gives a {len(der)}-byte signature; "
                         f"a bundle holds {LD_GATE_MAX_SIG} (use RSA up to 4096 bits)")
    bundle = LdGateBundle(magic=LD_GATE_MAGIC, sig_len=len(der), payload=payload)
    ctypes.memmove(bundle.sig, der, len(der))
    return bytes(bundle)


def parse(data: bytes, source: str) -> LdGateBundle:
    """A bundle's structure, checked (InputError, exit 2, naming ``source``)."""
    size = ctypes.sizeof(LdGateBundle)
    if len(data) != size:
        raise InputError(f"{source}: not a lockdownctl policy bundle ({len(data)} bytes, a bundle has {size})")
    bundle = LdGateBundle.from_buffer_copy(data)
    if bundle.magic != LD_GATE_MAGIC or bundle.payload.magic != LD_GATE_MAGIC:
        raise InputError(f"{source}: not a lockdownctl policy bundle (bad magic)")
    if bundle.payload.format != LD_GATE_FORMAT:
        raise InputError(f"{source}: bundle format {bundle.payload.format}, this lockdownctl reads {LD_GATE_FORMAT}")
    if not 0 < bundle.sig_len <= LD_GATE_MAX_SIG:
        raise InputError(f"{source}: signature length {bundle.sig_len} out of range (1..{LD_GATE_MAX_SIG})")
    counts = {k: getattr(bundle.payload, f"n_{k}") for k in ("exe", "cgroup", "uid", "comm")}
    if any(n > LD_GATE_MAX_EXC for n in counts.values()):
        raise InputError(f"{source}: exception counts {counts} exceed {LD_GATE_MAX_EXC}")
    return bundle


def verify(data: bytes, signer: Signer, source: str) -> LdGateBundle:
    """What the gate checks, offline: the signer's DER prefix, then the RSA signature over the payload."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    bundle = parse(data, source)
    sig = bytes(bundle.sig[: bundle.sig_len])
    prefix = signer.prefix()
    if bundle.sig_len != signer.sig_len() or sig[: len(prefix)] != prefix:
        raise BundleRefused(f"{source}: not signed by the key of this certificate (key id {signer.skid.hex()}), "
                            "or the signature embeds certificates")
    try:
        signer.public_key.verify(sig[len(prefix):], bytes(bundle.payload), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise BundleRefused(f"{source}: bad signature: the bundle was changed after signing, or signed by "
                            "another key with the same key id") from None
    return bundle


def describe(bundle: LdGateBundle, cat: Catalogue | None = None) -> dict[str, Any]:
    """A bundle's contents for people and JSON."""
    from .bpf.abi import VERDICT_CODES

    p = bundle.payload
    names = {code: name for name, code in VERDICT_CODES.items()}
    by_value = {r.value: r.id for r in cat.reasons if r.value is not None} if cat else {}
    verdicts = {by_value.get(v, str(v)): names.get(code, str(code)) for v, code in enumerate(p.verdict) if code}
    return {"version": p.version, "host_id": f"{p.host_id:016x}" if p.host_id else None,
            "reasons_id": f"{p.reasons_id:016x}", "policy_id": f"{p.policy_id:016x}",
            "mode": "audit" if p.audit else "enforce", "verdicts": verdicts,
            "exceptions": {k: getattr(p, f"n_{k}") for k in ("exe", "cgroup", "uid", "comm")},
            "signature_bytes": bundle.sig_len,
            "matches_kernel": None if cat is None or not cat.from_btf else p.reasons_id == reasons_id(cat)}
