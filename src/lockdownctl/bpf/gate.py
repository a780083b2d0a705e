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
import struct
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


KEYCTL_DESCRIBE, KEYCTL_READ = 6, 11
# bpf_lookup_system_key()'s keyrings by their kernel names (certs/system_keyring.c).
SYSTEM_RINGS = {"secondary": ".secondary_trusted_keys", "platform": ".platform"}
PROC_KEYS = "/proc/keys"


def _keyctl_bytes(op: int, serial: int) -> bytes:
    size = 4096
    while True:
        buf = ctypes.create_string_buffer(size)
        n = libc.syscall(SYS_KEYCTL, ctypes.c_int(op), ctypes.c_int(serial), buf, ctypes.c_size_t(size))
        if n <= size:
            return buf.raw[:n]
        size = n


def system_ring_serial(name: str, proc_keys: str = PROC_KEYS) -> int | None:
    """A system keyring's serial from /proc/keys (what `keyctl show %:NAME` resolves): the line of
    type ``keyring`` whose description is NAME (the kernel appends ": N links")."""
    try:
        with open(proc_keys, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError as exc:
        raise FeatureMissing(f"{proc_keys}: {exc.strerror}: cannot find the {name} keyring") from None
    for line in lines:
        f = line.split(None, 8)
        if len(f) == 9 and f[7] == "keyring" and f[8].split(":", 1)[0] == name:
            return int(f[0], 16)
    return None


def anchor_key(trust: str, skid: bytes) -> str:
    """The key of ``skid`` in the kernel's ``trust`` keyring (searched as bpf_lookup_system_key's
    verification does: the keyring and the keyrings linked into it, e.g. .machine into
    .secondary_trusted_keys), as the kernel describes it. InputError when the kernel does not
    hold it: no bundle could ever verify, so nothing is sealed. x509_key_preparse() describes a
    certificate's key as "SUBJECT: <hex of its subject key identifier>"."""
    name = SYSTEM_RINGS[trust]
    ring = system_ring_serial(name)
    if ring is None:
        raise FeatureMissing(f"the kernel has no {name} keyring ({PROC_KEYS}): --trust {trust} cannot verify "
                             "anything here (CONFIG_SECONDARY_TRUSTED_KEYRING, CONFIG_INTEGRITY_PLATFORM_KEYRING)")
    suffix = ": " + skid.hex()
    seen: set[int] = set()
    todo = [ring]
    while todo:
        serial = todo.pop()
        if serial in seen:
            continue
        seen.add(serial)
        try:
            raw = _keyctl_bytes(KEYCTL_READ, serial)
        except OSError as exc:
            raise FeatureMissing(f"cannot read the kernel's {name} keyring (key {serial}): {exc.strerror}") from None
        for (member,) in struct.iter_unpack("=i", raw[: len(raw) - len(raw) % 4]):  # key serials
            try:
                desc = _keyctl_bytes(KEYCTL_DESCRIBE, member).rstrip(b"\0").decode("utf-8", "replace")
            except OSError:
                continue  # not viewable by root: not a key lockdownctl could name
            ktype, _uid, _gid, _perm, text = desc.split(";", 4)
            if ktype == "keyring":
                todo.append(member)
            elif ktype == "asymmetric" and text.endswith(suffix):
                return text
    raise InputError(f"the kernel's {name} keyring holds no key with the certificate's key id {skid.hex()} "
                     f"(keyctl show %:{name}): no bundle could verify; nothing was sealed")


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
            "anchor_strength": anchor_strength(signed),
            "refused": {GATE_REASONS[i][0]: int(n) for i, n in enumerate(info.refused) if n and i in GATE_REASONS}}


def anchor_strength(signed: dict[str, Any]) -> str:
    if signed.get("trust") == "user":
        return "weak: a root-created user keyring (root can clear or invalidate it; then no update verifies)"
    sb = signed.get("secure_boot", "enabled")  # seals from before this field: not recorded
    if sb != "enabled":
        return (f"weak: a firmware keyring, but Secure Boot is {sb} (root can boot a kernel or enrol firmware "
                "keys of its choice)")
    return "firmware-anchored keyring under Secure Boot (root cannot add keys at run time)"


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
    data["persisted"], data["persist_error"] = _persist(path, raw)
    return data


def _persist(path: str, raw: bytes) -> tuple[str | None, str | None]:
    """Keep an accepted bundle where the seal's ``--bundle`` reads it at the next boot (the boot
    unit's apply hands it to the gate again), so the floor after a reboot is this version."""
    from ..fsio import atomic_write
    from ..state.pins import load_state

    dest = ((load_state() or {}).get("signed") or {}).get("bundle_file")
    if not dest:
        return None, None
    if os.path.exists(dest) and os.path.samefile(dest, path):
        return dest, None
    try:
        atomic_write(dest, raw, 0o600)
    except OSError as exc:
        return None, f"{dest}: {exc.strerror}: the next boot applies the previous bundle"
    return dest, None
