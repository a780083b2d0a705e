"""The gate (gate.bpf.c): signed policy updates of a sealed enforcer (issue #19).

``enforce apply --seal --signed-by CERT`` loads it over the enforcer's own
policy maps (bpf_map__reuse_fd) before the seal; the seal then refuses every
new fd to those maps and to the gate's state (read-only included: under a
signed seal the maps are writable by programs, and the verifier decides that
from map flags, never from an fd's mode). ``enforce update BUNDLE`` writes the
bundle into the gate's inbox map; the gate answers in the syscall's errno.
docs/signed-policy.md has the design and the threat model.
"""

from __future__ import annotations

import ctypes
import errno
import os
from dataclasses import dataclass
from typing import Any

from .. import libc, signing
from ..errors import EXIT_FINDINGS, FeatureMissing, InputError, LockdownctlError
from ..reasons import Catalogue
from ..state.pins import PIN_DIR, STATE_DIR
from . import enforcer as engine
from . import hooks, libbpf
from .abi import EXCEPTION_MAPS, GATE_REASONS, LdGateConfig, LdGateEvent, LdGateInfo, LdGateState

PROGRAM = "ldctl_gate_bpf"
LINK = "gate-link"
INBOX = "gate-inbox"
INFO = "gate-info"
EVENTS = "gate-events"
# The gate's maps that hold trust: the seal refuses every fd to them.
STATE_MAPS = (".bss", "staging")
KINDS = ("exe", "cgroup", "uid", "comm", "path")  # the maps the gate rewrites (gate.h ld_gate_info.n_exc)
KFUNCS = ("bpf_verify_pkcs7_signature", "bpf_lookup_user_key", "bpf_lookup_system_key", "bpf_key_put")
# Where the last accepted bundle is kept, for re-application at boot (docs/signed-policy.md).
LAST_BUNDLE = os.path.join(STATE_DIR, "signed-policy.bundle")
# keyrings: the user keyring lockdownctl creates, or a system keyring id of
# bpf_lookup_system_key (include/linux/verification.h: 1 secondary, 2 platform).
TRUST = {"user": 0, "secondary": 1, "platform": 2}
SYS_ADD_KEY, SYS_KEYCTL = 248, 250  # x86-64
KEY_SPEC_USER_KEYRING = -4
KEYCTL_RESTRICT_KEYRING = 29
RING_NAME = b"lockdownctl-owner"


class Refused(LockdownctlError):
    """The gate refused an update (exit 1), with the kernel's errno."""

    code = "refused"
    exit_code = EXIT_FINDINGS


WHY = {
    errno.EKEYREJECTED: "bad signature: not signed by the pinned key, or changed after signing",
    errno.EBADMSG: "malformed bundle, or for another host or another kernel's reason numbering",
    errno.ESTALE: "version not greater than the active one (rollback refused)",
    errno.ENOKEY: "the pinned trusted keyring is gone: no update can be verified until reboot",
    errno.EBUSY: "another update is being checked: try again",
    errno.EFAULT: "the bundle could not be read",
    errno.EIO: "a policy map could not be written: the active policy is unchanged",
}


def pinned() -> bool:
    return os.path.exists(os.path.join(PIN_DIR, INFO))


def require_kfuncs(btf_path: str = hooks.LIVE_BTF) -> None:
    """Exit 3 unless the running kernel's BTF has the key and signature kfuncs.

    Their FUNCs are in vmlinux BTF when built (CONFIG_KEYS, and
    CONFIG_SYSTEM_DATA_VERIFICATION for the verify kfunc); whether they are
    registered for LSM programs is the verifier's answer at load (also exit 3)."""
    from ..btf import func_protos

    try:
        with open(btf_path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise FeatureMissing(f"{btf_path}: cannot read the kernel's BTF ({exc.strerror})") from None
    found = func_protos(data, btf_path, list(KFUNCS))
    missing = [k for k in KFUNCS if k not in found]
    if missing:
        raise FeatureMissing(f"signed updates need the kfuncs {', '.join(missing)}, which this kernel's BTF "
                             f"({btf_path}) lacks (CONFIG_KEYS, CONFIG_SYSTEM_DATA_VERIFICATION)")


def _add_key(ktype: bytes, desc: bytes, payload: bytes | None, ring: int) -> int:
    buf = ctypes.create_string_buffer(payload, len(payload)) if payload is not None else None
    return libc.syscall(SYS_ADD_KEY, ctypes.c_char_p(ktype), ctypes.c_char_p(desc), buf,
                        ctypes.c_size_t(len(payload) if payload else 0), ctypes.c_int(ring))


def make_keyring(cert_der: bytes) -> int:
    """A keyring in root's user keyring holding only the owner's certificate,
    then restricted to reject every further link (irrevocable). Its serial."""
    try:
        ring = _add_key(b"keyring", RING_NAME, None, KEY_SPEC_USER_KEYRING)
        _add_key(b"asymmetric", b"lockdownctl owner", cert_der, ring)
        libc.syscall(SYS_KEYCTL, ctypes.c_int(KEYCTL_RESTRICT_KEYRING), ctypes.c_int(ring), None, None)
    except OSError as exc:
        raise FeatureMissing(f"cannot set up the trusted keyring: {exc.strerror} (CONFIG_KEYS, "
                             "CONFIG_ASYMMETRIC_PUBLIC_KEY_SUBTYPE, CONFIG_X509_CERTIFICATE_PARSER)") from None
    return ring


@dataclass
class Loaded:
    link_id: int
    link_pin_ino: int
    any_fd_map_ids: list[int]
    data: dict[str, Any]


def load(enforcer: engine.Enforcer, cert: str, trust: str, version: int, cat: Catalogue) -> Loaded:
    """Load, fill and attach the gate over ``enforcer`` (loaded, pinned, not sealed yet)."""
    require_kfuncs()
    signer = signing.load_cert(cert)
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    with open(cert, "rb") as fh:
        raw = fh.read()
    der = (x509.load_pem_x509_certificate(raw) if b"-----BEGIN" in raw else
           x509.load_der_x509_certificate(raw)).public_bytes(serialization.Encoding.DER)
    keyring = make_keyring(der) if trust == "user" else TRUST[trust]
    prefix = signer.prefix()
    cfg = LdGateConfig(host_id=signing.host_id(signing.local_machine_id()), reasons_id=signing.reasons_id(cat),
                       keyring=keyring, system=int(trust != "user"), prefix_len=len(prefix),
                       sig_len=signer.sig_len())
    ctypes.memmove(cfg.prefix, prefix, len(prefix))
    reuse = {"enf_policy": "policy", **{f"enf_{kind}": EXCEPTION_MAPS[kind][0] for kind in KINDS}}

    def prepare(obj: libbpf.Object) -> None:
        libbpf.set_global(obj, ".rodata", "cfg", cfg)
        libbpf.set_global(obj, ".bss", "state", LdGateState(version=version))
        for name, pin in reuse.items():
            libbpf.map_reuse_fd(obj.map(name), enforcer.fds[pin])

    obj = engine.load_object(hooks.object_path("gate"), "the signed-update gate (lsm.s/bpf with the "
                             "bpf_verify_pkcs7_signature kfunc)", prepare, "nothing was sealed")
    try:
        live = enforcer.read_policy()
        info = LdGateInfo()
        libbpf.map_lookup(enforcer.fds["policy"], ctypes.c_uint32(0), info.policy)
        info.version = version
        counts = enforcer.exceptions()
        for i, kind in enumerate(KINDS):
            info.n_exc[i] = counts[kind]
        libbpf.map_update(libbpf.map_fd(obj.map("info")), ctypes.c_uint32(0), info)
        link = libbpf.attach(obj.program(PROGRAM))
        path = os.path.join(PIN_DIR, LINK)
        try:
            libbpf.link_pin(link, path)
            link_id = libbpf.link_info(libbpf.link_fd(link)).id
        finally:
            libbpf.link_release(link, keep_attached=True)
        for name, pin in (("inbox", INBOX), ("info", INFO), ("gate_events", EVENTS)):
            libbpf.map_pin(obj.map(name), os.path.join(PIN_DIR, pin))
        ids = [libbpf.map_info(libbpf.map_fd(obj.map(m))).id for m in STATE_MAPS]
        data = {"key_id": signer.skid.hex(), "trust": trust, "keyring": keyring, "version": version,
                "generation": live["gen"]}
        return Loaded(link_id, os.stat(path).st_ino, ids, data)
    finally:
        obj.close()


def decode_event(raw: bytes) -> dict[str, Any]:
    """One gate ring-buffer record (struct ld_gate_event) as ``enforce events`` shows it."""
    rec = LdGateEvent.from_buffer_copy(raw[: ctypes.sizeof(LdGateEvent)])
    why, _name = GATE_REASONS.get(rec.why, (str(rec.why), ""))
    err = -rec.err
    return {"kind": "update-accepted" if rec.why == 0 and not err else "update-refused", "source": "gate",
            "time": rec.time_ns / 1e9, "pid": rec.pid, "uid": rec.uid, "comm": rec.comm.decode("utf-8", "replace"),
            "version": rec.version, "active_version": rec.current, "why": why,
            "errno": errno.errorcode.get(err, str(err)) if err else None,
            "explanation": WHY.get(err, os.strerror(err)) if err else None}


def render_event(e: dict[str, Any]) -> str:
    line = (f"[{e['time']:12.6f}] {e['kind']:15} version {e['version']} (active {e['active_version']}) "
            f"pid {e['pid']} ({e['comm']}) uid {e['uid']}")
    return line + (f": {e['why']} ({e['errno']}): {e['explanation']}" if e["errno"] else "")


def read_info() -> LdGateInfo:
    fd = libbpf.obj_get_readonly(os.path.join(PIN_DIR, INFO))
    try:
        info = LdGateInfo()
        libbpf.map_lookup(fd, ctypes.c_uint32(0), info)
        return info
    finally:
        os.close(fd)


def describe() -> dict[str, Any]:
    """The signed seal in ``enforce status`` (from the gate's informational mirror)."""
    from ..state.pins import load_state

    info = read_info()
    state = load_state() or {}
    signed = state.get("signed") or {}
    return {"version": info.version, "accepted": info.accepted, "key_id": signed.get("key_id"),
            "trust": signed.get("trust"), "keyring": signed.get("keyring"),
            "anchor_strength": "weak: a root-created user keyring (root can clear or invalidate it; "
                               "then no update verifies)" if signed.get("trust") == "user" else
                               "firmware-anchored keyring (root cannot add keys at run time)",
            "refused": {GATE_REASONS[i][0]: int(n) for i, n in enumerate(info.refused) if n and i in GATE_REASONS}}


def update(path: str, dry_run: bool = False) -> dict[str, Any]:
    """Hand a bundle to the gate. Exit 1 (Refused) naming the kernel's reason."""
    from ..fsio import atomic_write
    from ..infile import read_bytes

    raw = read_bytes(path, "bundle")
    bundle = signing.parse(raw, path)
    if not pinned():
        raise InputError("no signed seal is loaded (lockdownctl enforce apply --seal --signed-by CERT)")
    before = read_info().version
    data = {"bundle": path, "version": bundle.payload.version, "previous_version": before, "dry_run": dry_run}
    if dry_run:
        return data
    fd = libbpf.obj_get(os.path.join(PIN_DIR, INBOX))
    try:
        buf = ctypes.create_string_buffer(raw, len(raw))
        libbpf.map_update(fd, ctypes.c_uint32(0), buf)
    except OSError as exc:
        code = exc.errno or 0
        name = errno.errorcode.get(code, str(code))
        raise Refused(f"{path}: refused by the kernel ({name}): {WHY.get(code, os.strerror(code))}") from None
    finally:
        os.close(fd)
    try:
        atomic_write(LAST_BUNDLE, raw, 0o600)
        data["saved"] = LAST_BUNDLE
    except OSError:
        data["saved"] = None
    data["active_version"] = read_info().version
    return data
