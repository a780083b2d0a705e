"""Signed policy bundles (issue #19): policy sign / policy verify, offline.

The signature is checked against OpenSSL's own view: ``openssl cms -sign``
with the kernel's module-signing options produces byte for byte the
signature lockdownctl writes, and ``openssl cms -verify`` accepts exactly
the bundles ``policy verify`` accepts.
"""

from __future__ import annotations

import ctypes
import datetime
import shutil
import subprocess
from pathlib import Path

import pytest

from lockdownctl import signing
from lockdownctl.bpf import abi
from tests.conftest import REPO
from tests.conftest import lockdownctl_inproc as lockdownctl

OPENSSL = shutil.which("openssl")
PAYLOAD_AT = abi.LdGateBundle.payload.offset
SIG_AT = abi.LdGateBundle.sig.offset


def make_owner(tmp: Path, name: str, bits: int = 2048) -> tuple[Path, Path]:
    """An RSA key and a self-signed certificate with a subject key identifier."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    key_path, cert_path = tmp / f"{name}.key", tmp / f"{name}.pem"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


@pytest.fixture(scope="module")
def owner(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_owner(tmp_path_factory.mktemp("owner"), "owner")


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_owner(tmp_path_factory.mktemp("other"), "other")


def sign(tmp: Path, owner: tuple[Path, Path], btf: Path, *extra: str, policy: str = "integrity") -> Path:
    out = tmp / "policy.bundle"
    run = lockdownctl("policy", "sign", str(REPO / "examples" / f"{policy}.yaml"), "--key", str(owner[0]),
                      "--cert", str(owner[1]), "--version", "7", "--btf", str(btf), "-o", str(out), *extra)
    assert run.code == 0, run.err
    return out


def verify(bundle: Path, cert: Path) -> tuple[int, str]:
    run = lockdownctl("policy", "verify", str(bundle), "--cert", str(cert), "--json")
    return run.code, run.err


def test_round_trip(tmp_path: Path, owner: tuple[Path, Path], host_btf: Path) -> None:
    bundle = sign(tmp_path, owner, host_btf)
    run = lockdownctl("policy", "verify", str(bundle), "--cert", str(owner[1]), "--btf", str(host_btf), "--json")
    assert run.code == 0, run.err
    data = run.json()["data"]
    assert data["verified"] and data["version"] == 7 and data["matches_kernel"] is True
    assert data["verdicts"]["kexec"] == "deny" and "tracefs" not in data["verdicts"]  # integrity, not confidentiality


def test_every_payload_byte_is_covered(tmp_path: Path, owner: tuple[Path, Path], host_btf: Path) -> None:
    raw = sign(tmp_path, owner, host_btf).read_bytes()
    for at in (PAYLOAD_AT, PAYLOAD_AT + abi.LdGatePayload.version.offset,
               PAYLOAD_AT + abi.LdGatePayload.verdict.offset + 1, SIG_AT - 1):
        changed = bytearray(raw)
        changed[at] ^= 1
        bad = tmp_path / f"bad-{at}"
        bad.write_bytes(bytes(changed))
        code, err = verify(bad, owner[1])
        assert code in (1, 2) and str(bad) in err, (at, err)
    flipped = bytearray(raw)
    flipped[SIG_AT + 200] ^= 1  # in the RSA value
    (tmp_path / "sigflip").write_bytes(bytes(flipped))
    assert verify(tmp_path / "sigflip", owner[1])[0] == 1


def test_another_key_is_refused(tmp_path: Path, owner: tuple[Path, Path], other: tuple[Path, Path],
                                host_btf: Path) -> None:
    bundle = sign(tmp_path, owner, host_btf)
    code, err = verify(bundle, other[1])
    assert code == 1 and "not signed by the key of this certificate" in err


def test_key_and_cert_must_match(tmp_path: Path, owner: tuple[Path, Path], other: tuple[Path, Path],
                                 host_btf: Path) -> None:
    run = lockdownctl("policy", "sign", str(REPO / "examples/integrity.yaml"), "--key", str(other[0]), "--cert",
                      str(owner[1]), "--version", "1", "--btf", str(host_btf), "-o", str(tmp_path / "b"))
    assert run.code == 2 and "do not belong together" in run.err
    assert not (tmp_path / "b").exists()


@pytest.mark.skipif(OPENSSL is None, reason="openssl not installed")
def test_openssl_signs_the_same_bytes(tmp_path: Path, owner: tuple[Path, Path], host_btf: Path) -> None:
    """The module-signing command line gives the signature we embed, byte for byte."""
    assert OPENSSL is not None
    raw = sign(tmp_path, owner, host_btf).read_bytes()
    bundle = abi.LdGateBundle.from_buffer_copy(raw)
    (tmp_path / "payload").write_bytes(bytes(bundle.payload))
    subprocess.run([OPENSSL, "cms", "-sign", "-binary", "-noattr", "-nocerts", "-keyid", "-md", "sha256",
                    "-outform", "DER", "-in", str(tmp_path / "payload"), "-signer", str(owner[1]),
                    "-inkey", str(owner[0]), "-out", str(tmp_path / "openssl.der")], check=True)
    assert (tmp_path / "openssl.der").read_bytes() == bytes(bundle.sig[: bundle.sig_len])


@pytest.mark.skipif(OPENSSL is None, reason="openssl not installed")
@pytest.mark.parametrize("bits", [2048, 4096])
def test_openssl_verify_agrees(tmp_path: Path, bits: int, host_btf: Path) -> None:
    assert OPENSSL is not None
    keys = make_owner(tmp_path, f"o{bits}", bits)
    other = make_owner(tmp_path, "x", bits)
    raw = sign(tmp_path, keys, host_btf).read_bytes()
    bundle = abi.LdGateBundle.from_buffer_copy(raw)
    (tmp_path / "sig.der").write_bytes(bytes(bundle.sig[: bundle.sig_len]))

    def openssl_ok(payload: bytes, cert: Path) -> bool:
        (tmp_path / "payload").write_bytes(payload)
        done = subprocess.run([OPENSSL, "cms", "-verify", "-binary", "-inform", "DER", "-in",
                               str(tmp_path / "sig.der"), "-content", str(tmp_path / "payload"), "-certfile",
                               str(cert), "-nointern", "-noverify", "-out", "/dev/null"],
                              capture_output=True, check=False)
        return done.returncode == 0

    good = bytes(bundle.payload)
    tampered = bytearray(good)
    tampered[100] ^= 0x80
    for payload, cert in ((good, keys[1]), (bytes(tampered), keys[1]), (good, other[1])):
        ctypes.memmove(ctypes.addressof(bundle.payload), payload, len(payload))
        (tmp_path / "b").write_bytes(bytes(bundle))
        ours = verify(tmp_path / "b", cert)[0] == 0
        assert ours == openssl_ok(payload, cert)
    assert openssl_ok(good, keys[1])  # and it is not agreement on "no"


@pytest.mark.parametrize("damage", ["empty", "short", "long", "magic", "format", "siglen", "counts"])
def test_malformed_bundle_is_exit_2_naming_the_file(tmp_path: Path, owner: tuple[Path, Path], host_btf: Path,
                                                    damage: str) -> None:
    raw = bytearray(sign(tmp_path, owner, host_btf).read_bytes())
    bundle = abi.LdGateBundle.from_buffer(raw)
    if damage == "magic":
        bundle.magic = 0x12345678
    elif damage == "format":
        bundle.payload.format = 99
    elif damage == "siglen":
        bundle.sig_len = abi.LD_GATE_MAX_SIG + 1
    elif damage == "counts":
        bundle.payload.n_uid = abi.LD_GATE_MAX_EXC + 1
    del bundle
    data = {"empty": b"", "short": bytes(raw[:100]), "long": bytes(raw) + b"x"}.get(damage, bytes(raw))
    path = tmp_path / "damaged.bundle"
    path.write_bytes(data)
    code, err = verify(path, owner[1])
    assert code == 2
    assert err.count("\n") == 1 and str(path) in err and "Traceback" not in err


def test_host_local_exceptions_need_a_host(tmp_path: Path, owner: tuple[Path, Path], host_btf: Path) -> None:
    policy = tmp_path / "exe.yaml"
    policy.write_text("version: 1\nprofile: integrity\nexceptions:\n  - exe: /usr/bin/true\n    allow: [kexec]\n")
    args = ["policy", "sign", str(policy), "--key", str(owner[0]), "--cert", str(owner[1]), "--version", "2",
            "--btf", str(host_btf), "-o", str(tmp_path / "b")]
    run = lockdownctl(*args)
    assert run.code == 2 and "--host" in run.err and not (tmp_path / "b").exists()
    run = lockdownctl(*args, "--host", "0123456789abcdef0123456789abcdef", "--json")
    assert run.code == 0, run.err
    assert run.json()["data"]["exceptions"]["exe"] == 1
    p = abi.LdGateBundle.from_buffer_copy((tmp_path / "b").read_bytes()).payload
    assert p.host_id == signing.host_id("0123456789abcdef0123456789abcdef") and p.exe[0].ino > 0


def test_a_scope_cannot_be_signed(tmp_path: Path, owner: tuple[Path, Path], host_btf: Path) -> None:
    policy = tmp_path / "scoped.yaml"
    policy.write_text("version: 1\nprofile: integrity\nscope:\n  cgroup: /\n")  # the root cgroup exists
    run = lockdownctl("policy", "sign", str(policy), "--key", str(owner[0]), "--cert", str(owner[1]),
                      "--version", "2", "--btf", str(host_btf), "-o", str(tmp_path / "b"))
    assert run.code == 2 and "cannot have a cgroup scope" in run.err, run.err


def test_dry_run_writes_nothing(tmp_path: Path, owner: tuple[Path, Path], host_btf: Path) -> None:
    run = lockdownctl("policy", "sign", str(REPO / "examples/integrity.yaml"), "--key", str(owner[0]), "--cert",
                      str(owner[1]), "--version", "1", "--btf", str(host_btf), "-o", str(tmp_path / "b"),
                      "--dry-run")
    assert run.code == 0, run.err
    assert not (tmp_path / "b").exists()


def test_signer_prefix_is_the_constant_part(owner: tuple[Path, Path]) -> None:
    """The gate pins a signer by the DER before the RSA value: it must not depend on the value."""
    signer = signing.load_cert(str(owner[1]))
    for value in (bytes(signer.modulus_bytes), b"\xff" * signer.modulus_bytes):
        der = signing.cms_signature(signer.skid, value)
        assert der.startswith(signer.prefix()) and len(der) == signer.sig_len()
        assert signer.skid in signer.prefix()


def test_update_refuses_a_malformed_bundle_before_the_kernel(tmp_path: Path) -> None:
    bad = tmp_path / "bad.bundle"
    bad.write_bytes(b"\x00" * 10)
    run = lockdownctl("enforce", "update", str(bad), "--dry-run")
    assert run.code == 2 and str(bad) in run.err and run.err.count("\n") == 1


def test_signed_by_needs_the_seal(owner: tuple[Path, Path]) -> None:
    run = lockdownctl("enforce", "apply", str(REPO / "examples/integrity.yaml"), "--signed-by", str(owner[1]),
                      "--dry-run")
    assert run.code == 2 and "--signed-by needs --seal" in run.err


def test_kfuncs_are_found_in_btf(tmp_path: Path, host_btf: Path) -> None:
    """Detection reads the BTF: the build host's kernel has the four kfuncs; a
    kernel without them (here a BTF with only bpf_key_put) is exit 3 naming the rest.
    (The VM tier loads the gate on Debian's 6.1, 6.12 and 7.3.)"""
    from lockdownctl.bpf import gate
    from lockdownctl.errors import FeatureMissing
    from tests.unit.btfgen import build_btf

    gate.require_kfuncs(str(host_btf))
    (tmp_path / "v").write_bytes(build_btf({"lockdown_reason": [("LOCKDOWN_NONE", 0)]}, funcs=("bpf_key_put",)))
    with pytest.raises(FeatureMissing, match="bpf_verify_pkcs7_signature, bpf_lookup_user_key"):
        gate.require_kfuncs(str(tmp_path / "v"))


def test_a_path_exception_cannot_be_signed(tmp_path: Path, owner: tuple[Path, Path], host_btf: Path) -> None:
    """A debugfs file's inode is new on every mount: a bundle carries no path exception
    (the gate empties the new slot's, docs/signed-policy.md)."""
    run = lockdownctl("policy", "sign", str(REPO / "examples" / "dyndbg.yaml"), "--key", str(owner[0]), "--cert",
                      str(owner[1]), "--version", "2", "--btf", str(host_btf), "-o", str(tmp_path / "b"))
    assert run.code == 2 and "cannot have path exceptions" in run.err, run.err
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(("why", "err", "kind", "errno_name"), [
    (0, 0, "update-accepted", None), (4, -116, "update-refused", "ESTALE"),
    (3, -129, "update-refused", "EKEYREJECTED")])
def test_gate_event_says_who_and_why(why: int, err: int, kind: str, errno_name: str | None) -> None:
    """enforce events shows the gate's ring-buffer records (struct ld_gate_event)."""
    from lockdownctl.bpf import gate

    rec = abi.LdGateEvent(time_ns=2_500_000_000, version=7, current=6, pid=42, uid=0, why=why, err=err,
                          comm=b"lockdownctl")
    e = gate.decode_event(bytes(rec))
    assert (e["kind"], e["errno"], e["why"]) == (kind, errno_name, abi.GATE_REASONS[why][0])
    assert (e["pid"], e["comm"], e["version"], e["active_version"], e["time"]) == (42, "lockdownctl", 7, 6, 2.5)
    line = gate.render_event(e)
    assert kind in line and "pid 42 (lockdownctl)" in line and (errno_name or "") in line
    assert (errno_name is None) == ("(E" not in line)


# --- --bundle: the boot unit's signed bundle (docs/signed-policy.md, "At boot") --------------------


def test_bundle_is_checked_before_anything_is_loaded(tmp_path: Path, owner: tuple[Path, Path],
                                                      other: tuple[Path, Path], host_btf: Path) -> None:
    from lockdownctl.bpf.apply import check_bundle

    signer = signing.load_cert(str(owner[1]))
    good = sign(tmp_path, owner, host_btf)
    assert check_bundle(str(good), signer) == {"file": str(good), "version": 7, "why": None, "state": "verified"}
    assert check_bundle(str(tmp_path / "none"), signer)["state"] == "absent"  # no update yet: the policy alone
    tampered = tmp_path / "tampered.bundle"
    raw = bytearray(good.read_bytes())
    raw[PAYLOAD_AT + 100] ^= 1
    tampered.write_bytes(raw)
    got = check_bundle(str(tampered), signer)
    assert got["state"] == "refused" and "bad signature" in got["why"], got
    (tmp_path / "o").mkdir()
    foreign = sign(tmp_path / "o", other, host_btf)
    got = check_bundle(str(foreign), signer)
    assert got["state"] == "refused" and "not signed by the key of this certificate" in got["why"], got
    garbage = tmp_path / "garbage.bundle"
    garbage.write_bytes(b"not a bundle")
    assert check_bundle(str(garbage), signer)["state"] == "refused"


def test_dry_run_says_a_tampered_bundle_would_not_be_applied(tmp_path: Path, owner: tuple[Path, Path],
                                                               host_btf: Path) -> None:
    good = sign(tmp_path, owner, host_btf)
    args = ("enforce", "apply", str(REPO / "examples/integrity.yaml"), "--seal", "--signed-by", str(owner[1]),
            "--dry-run", "--json", "--bundle")
    run = lockdownctl(*args, str(good))
    assert run.code == 0, run.err
    assert run.json()["data"]["bundle"]["state"] == "verified"
    raw = bytearray(good.read_bytes())
    raw[PAYLOAD_AT] ^= 1
    good.write_bytes(raw)
    run = lockdownctl(*args, str(good))
    assert run.code == 1 and run.json()["data"]["bundle"]["state"] == "refused", run.out + run.err


def test_bundle_needs_signed_by(tmp_path: Path) -> None:
    run = lockdownctl("enforce", "apply", str(REPO / "examples/integrity.yaml"), "--seal", "--bundle",
                      str(tmp_path / "x.bundle"), "--dry-run")
    assert run.code == 2 and "--bundle needs --seal --signed-by" in run.err, run.err


@pytest.mark.parametrize(("signed", "strength"), [
    ({"trust": "user"}, "weak: a root-created user keyring"),
    ({"trust": "secondary", "secure_boot": "enabled"}, "firmware-anchored keyring under Secure Boot"),
    ({"trust": "platform", "secure_boot": "disabled"}, "weak: a firmware keyring, but Secure Boot is disabled"),
    ({"trust": "platform", "secure_boot": "setup-mode"}, "weak: a firmware keyring, but Secure Boot is setup-mode"),
])
def test_anchor_strength_needs_secure_boot(signed: dict[str, str], strength: str) -> None:
    from lockdownctl.bpf.gate import anchor_strength

    assert anchor_strength(signed).startswith(strength)


def test_system_ring_found_in_proc_keys(tmp_path: Path) -> None:
    """/proc/keys as the kernel prints it (security/keys/proc.c: serial, flags, usage, timeout,
    perm, uid, gid, type, then the type's description; a keyring adds ": N" or ": empty")."""
    from lockdownctl.bpf.gate import system_ring_serial

    keys = tmp_path / "keys"
    keys.write_text(
        "0b2d6a4e I------     1 perm 1f0b0000     0     0 keyring   .secondary_trusted_keys: 2\n"
        "1d5a2f3c I------     1 perm 1f030000     0     0 asymmetric lockdownctl boot-tier db: 0a1b: X509.rsa 0a1b []\n"
        "29669809 I------     1 perm 1f0b0000     0     0 keyring   .platform: 1\n"
        "3a000001 I------     1 perm 1f0b0000     0     0 keyring   .platformx: 1\n")
    assert system_ring_serial(".platform", str(keys)) == 0x29669809
    assert system_ring_serial(".secondary_trusted_keys", str(keys)) == 0x0B2D6A4E
    assert system_ring_serial(".machine", str(keys)) is None
