"""Build, cache and boot the real-boot tier's Debian disk image under QEMU with OVMF.

    python3 -m tests.boot.machine build                 # build (or find) the cached image
    python3 -m tests.boot.machine shell [--no-sb]       # boot an overlay of it, root shell on the terminal
    python3 -m tests.boot.machine run tests/boot/guest/status.sh --results /tmp/out [--no-sb]

The image (tests/boot/image/build.sh) is a Debian 12 system installed the way a user's is:
OVMF (Secure Boot on with Microsoft's keys, or off) -> shim -> GRUB -> signed kernel -> systemd.
It is built once per cache key (a hash of everything in tests/boot/image/ and the suite) into
LOCKDOWNCTL_BOOT_CACHE (default /var/cache/lockdownctl/boot-image), outside the clone.

A run boots a copy-on-write qcow2 overlay, so every test starts from the same disk, with a fresh
copy of the OVMF variables. The run directory is shared with the guest over 9p (tag "boottest"):
hook.sh and lib.sh from tests/boot/guest/, the test's script as test.sh, and out/bootN/ per
boot, which the guest fills (guest/hook.sh). A guest reboot ends QEMU (-no-reboot) and the run
starts a new QEMU on the same overlay and variables: on QEMU 7.2/TCG a warm reset after
update-grub hangs in OVMF (../shared/recipes/real-boot.md, pitfall 3), a cold start never did.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `tests.boot` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.vm.splat import find_splats
else:
    from ..vm.splat import find_splats

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
IMAGE_INPUTS = HERE / "image"
GUEST_DIR = HERE / "guest"
SUITE = os.environ.get("LOCKDOWNCTL_BOOT_SUITE", "bookworm")
DEFAULT_CACHE = Path("/var/cache/lockdownctl/boot-image")
OVMF_DIR = Path(os.environ.get("LOCKDOWNCTL_OVMF_DIR", "/usr/share/OVMF"))
# (firmware code, template of its variable store) with and without Secure Boot. The .ms variables
# have Microsoft's keys enrolled (PK/KEK/db) and Secure Boot on; the plain ones are in Setup Mode.
FIRMWARE = {
    True: ("OVMF_CODE_4M.secboot.fd", "OVMF_VARS_4M.ms.fd"),
    False: ("OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"),
}
HOST_TOOLS = ("qemu-system-x86_64", "qemu-img")
BUILD_TOOLS = ("mmdebstrap", "mkfs.vfat", "mcopy", "sfdisk", "mkfs.ext4")
SETUP_HINT = "run scripts/boot-setup.sh as root (Debian 12)"
BOOT_TIMEOUT = float(os.environ.get("LOCKDOWNCTL_BOOT_TIMEOUT", "900"))  # per QEMU process: a hang guard
MAX_BOOTS = 6


class BootUnavailable(RuntimeError):
    """This host cannot build or boot the image (missing tool, firmware, root)."""


def cache_root() -> Path:
    return Path(os.environ.get("LOCKDOWNCTL_BOOT_CACHE", str(DEFAULT_CACHE)))


def image_key() -> str:
    """Hash of the image's inputs: every file of tests/boot/image/ (build script, package list,
    the in-image hook) and the suite. Another key is another image."""
    h = hashlib.sha256(f"suite={SUITE}\n".encode())
    for path in sorted(IMAGE_INPUTS.iterdir()):
        if path.is_file():
            h.update(f"{path.name}\n".encode() + path.read_bytes() + b"\n")
    return h.hexdigest()[:16]


def check_host(build: bool) -> None:
    """Raise BootUnavailable naming what is missing to boot (and, with ``build``, to build)."""
    missing = [t for t in HOST_TOOLS + (BUILD_TOOLS if build else ()) if shutil.which(t) is None]
    missing += [str(OVMF_DIR / f) for pair in FIRMWARE.values() for f in pair if not (OVMF_DIR / f).is_file()]
    if missing:
        raise BootUnavailable(f"missing {', '.join(missing)}; {SETUP_HINT}")
    if build and os.geteuid() != 0:
        raise BootUnavailable("building the boot image needs root (mmdebstrap keeps file owners)")


@dataclass(frozen=True)
class Image:
    dir: Path
    build_seconds: float | None  # None: found in the cache

    @property
    def base(self) -> Path:
        return self.dir / "base.qcow2"

    def env(self) -> dict[str, str]:
        pairs = (line.split("=", 1) for line in (self.dir / "image.env").read_text().splitlines() if "=" in line)
        return dict(pairs)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One builder per cache entry (two pytest sessions, or a session and a hand build)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure_image(log: Path | None = None) -> Image:
    """The cached image for the current inputs, built when missing (about 70 s and 700 MB)."""
    root = cache_root()
    final = root / image_key()
    if (final / "base.qcow2").is_file() and (final / "image.env").is_file():
        return Image(final, None)
    check_host(build=True)
    with _locked(root / f"{final.name}.lock"):
        if (final / "base.qcow2").is_file():
            return Image(final, None)
        tmp = root / f"{final.name}.building"
        shutil.rmtree(tmp, ignore_errors=True)
        start = time.monotonic()
        with open(log or os.devnull, "w") as out:
            proc = subprocess.run([str(IMAGE_INPUTS / "build.sh"), str(tmp)], stdout=out, stderr=subprocess.STDOUT,
                                  env={**os.environ, "SUITE": SUITE}, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"tests/boot/image/build.sh failed (exit {proc.returncode}); log: {log}")
        (tmp / "inputs").write_text(f"key {final.name} suite {SUITE}\n")
        os.rename(tmp, final)  # all or nothing: a half-built image never has the key's name
        return Image(final, time.monotonic() - start)


# --- the Debian package ----------------------------------------------------------------------

DEB_TOOLS = ("dpkg-buildpackage", "dpkg-checkbuilddeps")
# The package builds with Debian's own interpreter and tools, never a venv's that is first on PATH.
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"}


def ensure_deb(src: Path) -> Path:
    """The checkout's Debian package (``dpkg-buildpackage -us -uc -b`` in a copy of the exported
    tree, as tests/host/test_deb.py builds it), cached per source tree in <cache>/debs/<source key>/.
    Build dependencies: scripts/test.sh installs them (debian/control Build-Depends)."""
    final = cache_root() / "debs" / source_key(src)
    if debs := sorted(final.glob("lockdownctl_*.deb")):
        return debs[0]
    missing = [t for t in DEB_TOOLS if shutil.which(t) is None]
    if missing:
        raise BootUnavailable(f"missing {', '.join(missing)} (dpkg-dev, debhelper: scripts/test.sh installs them)")
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="build-", dir=final.parent) as tmp:
        tree = Path(tmp) / "lockdownctl"
        shutil.copytree(src, tree, ignore=lambda d, names: NOT_INSTALLED if Path(d) == src else ())
        for cmd in (["dpkg-checkbuilddeps"], ["dpkg-buildpackage", "-us", "-uc", "-b"]):
            proc = subprocess.run(cmd, cwd=tree, env=CLEAN_ENV, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}) in {tree}:\n"
                                   + (proc.stdout[-2000:] + proc.stderr[-2000:]).strip())
        built = Path(tmp) / "out"
        built.mkdir()
        for deb in Path(tmp).glob("lockdownctl_*.deb"):
            shutil.move(deb, built / deb.name)
        with contextlib.suppress(OSError):  # another session won the race: use its copy
            os.rename(built, final)
    debs = sorted(final.glob("lockdownctl_*.deb"))
    if not debs:
        raise RuntimeError(f"dpkg-buildpackage left no lockdownctl_*.deb for {final}")
    return debs[0]


# --- the MOK key and the modules it signs -------------------------------------------------------

# The tier's Machine Owner Key: made once, kept across image keys (#19's signed policies use it too):
# <cache>/mok/MOK.key (PEM, unencrypted), MOK.crt (PEM), MOK.der (what MokList holds).
MOK_CN = "lockdownctl boot-tier MOK"
# SignatureOwner of the MokList entry (any GUID; this one is uuid5(NAMESPACE_DNS, "mok.lockdownctl")).
MOK_OWNER = str(uuid.uuid5(uuid.NAMESPACE_DNS, "mok.lockdownctl"))
# kernel/module/signing.c and scripts/sign-file.c: the trailer after a module's PKCS#7 signature.
MODULE_SIG_MAGIC = b"~Module signature appended~\n"
PKEY_ID_PKCS7 = 2


@dataclass(frozen=True)
class Mok:
    key: Path
    crt: Path
    der: Path


def _new_key(cn: str) -> tuple[object, object]:
    """An RSA key and its self-signed code-signing certificate (cryptography)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "lockdownctl"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def ensure_mok() -> Mok:
    """The tier's MOK key pair, generated on first use."""
    from cryptography.hazmat.primitives import serialization

    d = cache_root() / "mok"
    mok = Mok(d / "MOK.key", d / "MOK.crt", d / "MOK.der")
    if mok.der.is_file():
        return mok
    with _locked(cache_root() / "mok.lock"):
        if mok.der.is_file():
            return mok
        d.mkdir(parents=True, exist_ok=True)
        key, cert = _new_key(MOK_CN)
        mok.key.write_bytes(key.private_bytes(serialization.Encoding.PEM,  # type: ignore[attr-defined]
                                              serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        mok.key.chmod(0o600)
        mok.crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))  # type: ignore[attr-defined]
        mok.der.write_bytes(cert.public_bytes(serialization.Encoding.DER))  # type: ignore[attr-defined]  # last: the marker
    return mok


def strip_signature(module: bytes) -> bytes:
    """A module file without its appended signature (unchanged when it has none)."""
    if not module.endswith(MODULE_SIG_MAGIC):
        return module
    info = module[-len(MODULE_SIG_MAGIC) - 12: -len(MODULE_SIG_MAGIC)]  # struct module_signature
    sig_len = int.from_bytes(info[8:12], "big")
    return module[: -len(MODULE_SIG_MAGIC) - 12 - sig_len]


def sign_module(module: bytes, key: object, cert: object) -> bytes:
    """What scripts/sign-file does: a detached PKCS#7 signature without attributes or certificates
    over the module, then struct module_signature (id_type PKEY_ID_PKCS7, sig_len) and the magic."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs7

    body = strip_signature(module)
    opts = [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.NoAttributes, pkcs7.PKCS7Options.NoCerts,
            pkcs7.PKCS7Options.Binary]
    sig = (pkcs7.PKCS7SignatureBuilder().set_data(body)
           .add_signer(cert, key, hashes.SHA256())  # type: ignore[arg-type]
           .sign(serialization.Encoding.DER, opts))
    info = bytes([0, 0, PKEY_ID_PKCS7, 0, 0, 0, 0, 0]) + len(sig).to_bytes(4, "big")
    return body + sig + info + MODULE_SIG_MAGIC


def mok_modules(image: Image, mok: Mok, dest: Path) -> dict[str, str]:
    """The image's four spare module files (image/build.sh: modules/) for the MOK test, in ``dest``:
    dummy.ko signed with the MOK key, nlmon.ko with a key nobody enrolled, veth.ko with a key
    enrolled in the firmware's db (the kernel's .platform keyring: kexec images, not modules),
    ifb.ko unsigned; ``dest`` also gets MOK.der and DB.der (for enroll_mok), and each key as
    MOK/DB/STRANGER.key and .crt (PEM: signed policies, #19). Returns module -> how
    it was signed."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(mok.key.read_bytes(), password=None)
    cert = x509.load_pem_x509_certificate(mok.crt.read_bytes())
    signers = {"mok": (key, cert), "stranger": _new_key("lockdownctl boot-tier stranger"),
               "db": _new_key("lockdownctl boot-tier db")}
    dest.mkdir(parents=True, exist_ok=True)
    plan = {"dummy": "mok", "nlmon": "stranger", "veth": "db", "ifb": "unsigned"}
    for name, how in plan.items():
        original = (image.dir / "modules" / f"{name}.ko").read_bytes()
        data = sign_module(original, *signers[how]) if how in signers else strip_signature(original)
        (dest / f"{name}.ko").write_bytes(data)
    shutil.copyfile(mok.der, dest / "MOK.der")
    for how, (k, c) in signers.items():  # the keys as well: signed policies are signed in the guest (#19)
        (dest / f"{how.upper()}.crt").write_bytes(c.public_bytes(serialization.Encoding.PEM))  # type: ignore[attr-defined]
        (dest / f"{how.upper()}.key").write_bytes(k.private_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (dest / "DB.der").write_bytes(signers["db"][1].public_bytes(serialization.Encoding.DER))  # type: ignore[attr-defined]
    return plan


def enroll_mok(vars_fd: Path, der: Path, db: Path | None = None) -> None:
    """Put ``der`` into the variable store's MokList (NV+BS, as MokManager leaves it) with
    virt-firmware's virt-fw-vars: no interactive MokManager. Shim mirrors MokList into MokListRT
    (and its MOKvar table) at the next boot, and the kernel loads it into its keyrings. ``db``:
    a certificate also added to the firmware's db (the kernel puts db in .platform)."""
    extra = ["--add-db", MOK_OWNER, str(db)] if db is not None else []
    proc = subprocess.run([sys.executable, "-m", "virt.firmware.vars", "--inplace", str(vars_fd),
                           "--add-mok", MOK_OWNER, str(der), *extra], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"virt-fw-vars --add-mok failed (exit {proc.returncode}; pip install virt-firmware): "
                           + (proc.stdout + proc.stderr).strip()[-2000:])


def export_source(dest: Path) -> Path:
    """The checkout as a user has it (tracked and untracked files, not ignored ones: no venvs,
    caches or build output), the tree scripts/install.sh installs from in the guest."""
    try:
        listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others",
                                 "--exclude-standard"], capture_output=True, check=True).stdout
        names = [n for n in listed.decode().split("\0") if n]
    except (OSError, subprocess.CalledProcessError):
        names = [str(p.relative_to(REPO)) for p in REPO.rglob("*")
                 if p.is_file() and ".git" not in p.parts and "__pycache__" not in p.parts]
    for name in names:
        src = REPO / name
        if src.is_file():  # a deleted but still tracked file is skipped
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


# --- results ---------------------------------------------------------------------------------


@dataclass
class Record:
    """What a guest `record NAME CMD` left: exit status and output."""

    rc: int
    out: str
    err: str

    def json(self) -> dict[str, object]:
        import json

        data = json.loads(self.out)
        assert isinstance(data, dict)
        return data


_LEVEL = re.compile(r"\[(\w+)\]")


def securityfs_level(text: str) -> str | None:
    """The selected level of /sys/kernel/security/lockdown ("none [integrity] confidentiality")."""
    m = _LEVEL.search(text)
    return m.group(1) if m else None


@dataclass
class BootResult:
    number: int
    dir: Path

    @property
    def complete(self) -> bool:
        return (self.dir / "complete").is_file()

    def text(self, name: str) -> str:
        path = self.dir / name
        return path.read_text(errors="replace") if path.is_file() else ""

    @property
    def rc(self) -> int | None:
        text = self.text("rc").strip()
        return int(text) if text else None

    @property
    def level(self) -> str | None:
        """The kernel's own lockdown level in this boot (securityfs, read by hook.sh)."""
        return securityfs_level(self.text("lockdown"))

    @property
    def cmdline(self) -> list[str]:
        return self.text("cmdline").split()

    @property
    def dmesg(self) -> str:
        return self.text("dmesg.txt")

    @property
    def journal(self) -> str:
        return self.text("journal.txt")

    @property
    def seconds_in_test(self) -> float:
        return float(self.text("uptime-end")) - float(self.text("uptime-begin"))

    def record(self, name: str) -> Record:
        rc = self.text(f"{name}.rc").strip()
        if not rc:
            raise AssertionError(f"boot {self.number}: the guest recorded no {name!r}\n{self.text('test.log')[-3000:]}")
        return Record(int(rc), self.text(f"{name}.out"), self.text(f"{name}.err"))

    def splats(self) -> list[str]:
        return find_splats(self.dmesg)


@dataclass
class RunResult:
    dir: Path  # the share: out/bootN/, serial.log
    secure_boot: bool
    boots: list[BootResult]
    qemu_seconds: list[float]  # wall time of each QEMU process (one per boot)
    problem: str = ""  # why the run stopped early (timeout, QEMU error, no result), or ""

    @property
    def serial(self) -> str:
        path = self.dir / "serial.log"
        return path.read_text(errors="replace") if path.is_file() else ""

    def boot(self, number: int) -> BootResult:
        for b in self.boots:
            if b.number == number:
                return b
        raise AssertionError(f"no boot {number} in this run ({len(self.boots)} boots; {self.problem or 'no problem'})"
                             f"\n{self.serial_tail()}")

    def serial_tail(self, lines: int = 60) -> str:
        return "serial console tail:\n" + "\n".join(self.serial.splitlines()[-lines:])

    def check(self, boots: int) -> None:
        """Fail unless the run had exactly ``boots`` complete boots, each step ran from
        boottest.service and exited 0, and neither a boot's kernel log nor the serial console has a
        splat. The message carries what is needed to debug from CI output."""
        where = f"(results: {self.dir})"
        if self.problem:
            raise AssertionError(f"{self.problem} {where}\n{self.serial_tail()}")
        if len(self.boots) != boots:
            raise AssertionError(f"{len(self.boots)} boots, expected {boots} {where}\n{self.serial_tail()}")
        for b in self.boots:
            if not b.complete or b.rc != 0:
                raise AssertionError(f"boot {b.number}: guest script exit {b.rc}, complete={b.complete} {where}\n"
                                     + b.text("test.log")[-4000:])
            if splats := b.splats():
                raise AssertionError(f"boot {b.number}: kernel splat {where}:\n" + "\n".join(splats))
            if "boottest.service" not in b.journal:  # the step ran from systemd, as tests are meant to
                raise AssertionError(f"boot {b.number}: no boottest.service in the journal {where}")
        # The console also has what the kernel said after dmesg was saved (shutdown, reboot).
        if splats := find_splats(self.serial):
            raise AssertionError(f"kernel splat on the serial console {where}:\n" + "\n".join(splats))


# --- booting ---------------------------------------------------------------------------------


@dataclass
class Machine:
    """One QEMU guest definition: the disk it boots (an overlay is made per run) and firmware."""

    backing: Path
    secure_boot: bool = True
    mem_mib: int = 1536
    smp: int = 2
    accel: str = os.environ.get("LOCKDOWNCTL_BOOT_ACCEL", "tcg")
    mok: Path | None = None  # a DER certificate enrolled in MokList of every fresh variable store
    db: Path | None = None  # with mok: a DER certificate added to db as well
    extra: list[str] = field(default_factory=list)

    def qemu_args(self, disk: Path, vars_fd: Path, share: Path | None, src: Path | None) -> list[str]:
        code, _ = FIRMWARE[self.secure_boot]
        # Round-robin TCG, as tests/vm/runner.py: multi-threaded TCG let a vCPU run
        # an int3 text_poke_bp() had already replaced (the enforcer's trampolines).
        accel = "tcg,thread=single" if self.accel == "tcg" else self.accel
        args = [
            "qemu-system-x86_64", "-accel", accel, "-machine", "q35,smm=on",
            "-m", str(self.mem_mib), "-smp", str(self.smp),
            # Secure Boot needs SMM and a flash the guest OS cannot write behind the firmware's back.
            "-global", "driver=cfi.pflash01,property=secure,value=on", "-global", "ICH9-LPC.disable_s3=1",
            "-drive", f"if=pflash,format=raw,unit=0,file={OVMF_DIR / code},readonly=on",
            "-drive", f"if=pflash,format=raw,unit=1,file={vars_fd}",
            "-drive", f"file={disk},format=qcow2,if=virtio,cache=unsafe",
            "-nodefaults", "-display", "none", "-vga", "none", "-device", "virtio-rng-pci",
        ]
        if share is not None:
            args += ["-virtfs", f"local,path={share},mount_tag=boottest,security_model=none,id=boottest"]
        if src is not None:
            args += ["-virtfs", f"local,path={src},mount_tag=src,security_model=none,readonly=on,id=src"]
        return args + self.extra

    def new_overlay(self, path: Path) -> None:
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(self.backing), "-F", "qcow2", str(path)],
                       check=True)

    def new_vars(self, path: Path) -> None:
        shutil.copyfile(OVMF_DIR / FIRMWARE[self.secure_boot][1], path)
        if self.mok is not None:
            enroll_mok(path, self.mok, self.db)

    def run(self, script: Path, share: Path, src: Path | None, *, offer: dict[str, Path] | None = None,
            disk: Path | None = None, timeout: float = BOOT_TIMEOUT) -> RunResult:
        """Boot until the guest powers off, following its reboots with a new QEMU each (cold).
        ``share`` (created, should be empty) receives the results; ``disk``: an overlay to keep
        (the run's own, deleted at the end, otherwise). ``offer``: files or directories copied onto
        the share under the given names (the .deb for guest/install.sh, signed modules); the
        guest reads them from /mnt/boottest: 9p under TCG copies one file in seconds.
        """
        share.mkdir(parents=True, exist_ok=True)
        for name in ("hook.sh", "lib.sh"):
            shutil.copyfile(GUEST_DIR / name, share / name)
        shutil.copyfile(script, share / "test.sh")
        (share / "run-id").write_text(uuid.uuid4().hex + "\n")
        for name, path in (offer or {}).items():
            if path.is_dir():
                shutil.copytree(path, share / name)
            else:
                shutil.copyfile(path, share / name)
        own_disk = disk is None
        disk = disk or share / "disk.qcow2"
        vars_fd = share / "vars.fd"
        self.new_overlay(disk)
        self.new_vars(vars_fd)  # fresh per run, kept across its reboots like a real machine's NVRAM
        result = RunResult(share, self.secure_boot, [], [])
        try:
            with open(share / "serial.log", "ab") as serial:
                for number in range(1, MAX_BOOTS + 1):
                    serial.write(f"[machine.py] ---- QEMU start, boot {number}, secure_boot={self.secure_boot} ----\n"
                                 .encode())
                    serial.flush()
                    start = time.monotonic()
                    proc = subprocess.Popen([*self.qemu_args(disk, vars_fd, share, src), "-no-reboot",
                                             "-serial", "stdio"], stdin=subprocess.DEVNULL, stdout=serial,
                                            stderr=subprocess.STDOUT)
                    try:
                        code = proc.wait(timeout=timeout)
                    except subprocess.TimeoutExpired:
                        proc.kill()  # only our own QEMU, by its pid
                        proc.wait()
                        result.problem = f"boot {number}: QEMU killed after {timeout:.0f} s (hung guest or firmware)"
                    result.qemu_seconds.append(time.monotonic() - start)
                    boot = BootResult(number, share / "out" / f"boot{number}")
                    if boot.dir.is_dir():
                        result.boots.append(boot)
                    if result.problem:
                        break
                    if code != 0:
                        result.problem = f"boot {number}: QEMU exited with status {code}"
                        break
                    if not boot.complete:
                        result.problem = f"boot {number}: the guest stopped before its test step completed"
                        break
                    if boot.text("next").strip() != "reboot":
                        break
                else:
                    result.problem = f"more than {MAX_BOOTS} boots"
        finally:
            vars_fd.unlink(missing_ok=True)
            if own_disk:
                disk.unlink(missing_ok=True)
        return result

    def interactive(self, src: Path | None) -> int:
        """Boot an overlay with the serial console on this terminal (Ctrl-A X quits QEMU)."""
        with tempfile.TemporaryDirectory(prefix="lockdownctl-boot-shell-") as tmp:
            disk, vars_fd = Path(tmp) / "disk.qcow2", Path(tmp) / "vars.fd"
            self.new_overlay(disk)
            self.new_vars(vars_fd)
            return subprocess.run([*self.qemu_args(disk, vars_fd, None, src), "-serial", "mon:stdio"],
                                  check=False).returncode


# Top-level directories of the checkout that are not in the Debian package (debian/install, docs,
# examples, manpages): an edit there (a new boot test, say) keeps the cached package and layer.
NOT_INSTALLED = ("tests", "benchmarks", ".ci")


def source_key(src: Path) -> str:
    """Hash of what an exported source tree installs (names and contents)."""
    h = hashlib.sha256()
    files = (p for p in src.rglob("*") if p.is_file() and p.relative_to(src).parts[0] not in NOT_INSTALLED)
    for path in sorted(files):
        h.update(str(path.relative_to(src)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


@dataclass
class Installed:
    """The image with the checkout's Debian package installed: a qcow2 layer on base.qcow2 that
    every test's overlay is made on, and the install run's results."""

    disk: Path
    results: Path
    seconds: float | None  # None: found in the cache

    def run(self) -> RunResult:
        out = self.results / "out"
        boots = sorted((BootResult(int(p.name[4:]), p) for p in out.glob("boot*")), key=lambda b: b.number)
        return RunResult(self.results, False, boots, [])


KEEP_INSTALLED = 3  # installed layers kept per image (one per source tree)


def ensure_installed(image: Image, src: Path) -> Installed:
    """Build the checkout's Debian package (ensure_deb), boot the image once (no Secure Boot: the
    disk is the same) and run guest/install.sh: `apt-get install ./lockdownctl_*.deb`, as a user
    installs it. Cached per (image, source tree), so re-running a test of an unchanged tree skips
    the build and the install."""
    root = image.dir / "installed"
    key = hashlib.sha256(source_key(src).encode() + (GUEST_DIR / "install.sh").read_bytes()).hexdigest()[:16]
    final = root / key
    if (final / "disk.qcow2").is_file():
        os.utime(final)  # most recently used
        return Installed(final / "disk.qcow2", final, None)
    root.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=root))
    start = time.monotonic()
    deb = ensure_deb(src)
    run = Machine(image.base, secure_boot=False).run(GUEST_DIR / "install.sh", tmp, src, offer={deb.name: deb},
                                                     disk=tmp / "disk.qcow2.part")
    (tmp / deb.name).unlink(missing_ok=True)
    try:
        run.check(boots=1)
        if run.boot(1).record("install").rc != 0:
            raise AssertionError("apt-get install of the .deb failed in the guest:\n"
                                 + run.boot(1).text("test.log")[-4000:])
    except AssertionError:
        failed = root / f"{key}.failed"  # kept for reading, never used as a layer
        shutil.rmtree(failed, ignore_errors=True)
        os.rename(tmp, failed)
        raise
    os.rename(tmp / "disk.qcow2.part", tmp / "disk.qcow2")
    shutil.rmtree(final, ignore_errors=True)
    os.rename(tmp, final)
    layers = sorted((p for p in root.iterdir() if (p / "disk.qcow2").is_file()),
                    key=lambda p: p.stat().st_mtime, reverse=True)
    for old in layers[KEEP_INSTALLED:]:
        shutil.rmtree(old, ignore_errors=True)
    return Installed(final / "disk.qcow2", final, time.monotonic() - start)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tests.boot.machine", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="build the image for the current inputs unless cached; print its directory")
    for name in ("shell", "run"):
        p = sub.add_parser(name)
        p.add_argument("--no-sb", action="store_true", help="OVMF without Secure Boot")
        p.add_argument("--mok", action="store_true", help="enroll the tier's MOK key (<cache>/mok/MOK.der)")
        if name == "run":
            p.add_argument("script", type=Path, help="guest script (tests/boot/guest/*.sh)")
            p.add_argument("--results", type=Path, required=True, help="new directory for the share and results")
            p.add_argument("--deb", action="store_true", help="build and offer the .deb (for guest/install.sh)")
            p.add_argument("--disk", type=Path, help="keep the run's overlay here (e.g. to boot it again)")
        else:
            p.add_argument("--disk", type=Path, help="boot this qcow2 overlay instead of a throwaway one")
    args = parser.parse_args(argv)
    try:
        image = ensure_image(log=Path("/dev/stderr"))
    except BootUnavailable as exc:
        print(f"machine.py: {exc}", file=sys.stderr)
        return 3
    if args.cmd == "build":
        print(image.dir)
        return 0
    machine = Machine(image.base, secure_boot=not args.no_sb)
    with tempfile.TemporaryDirectory(prefix="lockdownctl-boot-src-") as src:
        export_source(Path(src))
        offer = {}
        if args.mok:  # the MOK (and a db key) enrolled; the signed modules on the share (run)
            offer["mok"] = Path(src) / ".mok"
            mok_modules(image, ensure_mok(), offer["mok"])
            machine.mok, machine.db = offer["mok"] / "MOK.der", offer["mok"] / "DB.der"
        if args.cmd == "shell":
            if args.disk:
                machine.backing = args.disk  # an overlay on the overlay: the kept disk stays as it was
            return machine.interactive(Path(src))
        if args.deb:
            deb = ensure_deb(Path(src))
            offer[deb.name] = deb
        run = machine.run(args.script, args.results, Path(src), offer=offer, disk=args.disk)
    for b in run.boots:
        print(f"boot {b.number}: rc={b.rc} level={b.level} complete={b.complete} next={b.text('next').strip()}")
    print(f"QEMU seconds: {', '.join(f'{s:.1f}' for s in run.qemu_seconds)}; {run.problem or 'ok'}; results {run.dir}")
    return 1 if run.problem else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
