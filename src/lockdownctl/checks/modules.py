"""Kernel modules: unsigned or untrusted module files and loaded modules
(module_signature), forced loads, and hardware module parameters
(module_parameters).

Kernel: kernel/module/signing.c module_sig_check() refuses a module without
a signature the keyrings trust (and any forced load: the "flags == 0"
requirement) with LOCKDOWN_MODULE_SIGNATURE; kernel/params.c
param_check_unsafe() refuses parameters declared with module_param_hw*()
with LOCKDOWN_MODULE_PARAMETERS.
"""

from __future__ import annotations

import re

from ..host.modules import (
    Certificate,
    Key,
    Signature,
    module_name,
    module_signature,
    modules_dep,
    parse_certificate,
    read_keys,
    read_loaded,
    read_modules_load,
    walk_modules,
)
from ..host.sysctl import read_tainted, sysctl_rel, taint_letters
from ..reasons import denial_line
from .engine import Context, Evidence, Finding

NAME = "modules"
# Directories below /lib/modules/<release> that the distribution's kernel package does not own.
IN_TREE = ("kernel", "build", "source", "vdso")
MOK_CERTS = ("var/lib/dkms/mok.pub", "var/lib/shim-signed/mok/MOK.der", "etc/pki/akmods/certs/public_key.der")

# Parameters declared with module_param_hw*() (grep module_param_hw in the
# kernel tree), plus Debian's slram/phram lockdown patch. Module -> params.
HW_PARAMS: dict[str, frozenset[str]] = {
    "ipmi_si": frozenset({"ports", "addrs", "irqs", "regspacings", "regsizes", "regshifts", "slave_addrs"}),
    "ipmi_ssif": frozenset({"addr"}),
    "parport_pc": frozenset({"io", "io_hi", "irq", "dma"}),
    "ne": frozenset({"io", "irq"}),
    "ne2k_pci": frozenset(),
    "3c509": frozenset({"io", "irq"}),
    "snd_sb16": frozenset({"port", "mpu_port", "fm_port", "irq", "dma8", "dma16"}),
    "snd_sb8": frozenset({"port", "irq", "dma8"}),
    "snd_opl3sa2": frozenset({"port", "sb_port", "wss_port", "fm_port", "midi_port", "irq", "dma1", "dma2"}),
    "snd_mpu401": frozenset({"port", "irq"}),
    "snd_cs4236": frozenset({"port", "cport", "mpu_port", "fm_port", "sb_port", "irq", "mpu_irq", "dma1", "dma2"}),
    "snd_es18xx": frozenset({"port", "mpu_port", "fm_port", "irq", "dma1", "dma2"}),
    "snd_ad1816a": frozenset({"port", "mpu_port", "fm_port", "irq", "mpu_irq", "dma1", "dma2"}),
    "snd_serial_u16550": frozenset({"port", "irq"}),
    "wd": frozenset({"io", "irq", "mem"}),
    "testmmiotrace": frozenset({"mmio_address"}),
    "slram": frozenset({"map"}),
    "phram": frozenset({"phram"}),
    "it87": frozenset({"force_id"}),
    "w83627hf": frozenset({"force_addr", "force_i2c"}),
    "sbc60xxwdt": frozenset({"wdt_stop", "wdt_start"}),
    "8250": frozenset(),
    "lirc_serial": frozenset({"io", "irq", "iommap"}),
    "serial_ir": frozenset({"io", "irq", "iommap"}),
    "pcwd": frozenset({"io"}),
    "aha152x": frozenset({"io", "irq"}),
    "arcnet": frozenset({"io", "irq"}),
    "com90xx": frozenset({"io", "irq"}),
    "tpm_tis": frozenset({"force"}),
}

SYMPTOM_SIG = (
    "modprobe: ERROR: could not insert '{m}': Operation not permitted (lockdown= without Secure "
    "Boot) or Key was rejected by service (Secure Boot); the device or feature of {m} is missing, "
    "and if it is needed at boot the machine may not come up"
)
FORCE_RE = re.compile(r"(^|[\s/])(insmod\s+(-\w*f\w*|--force)|modprobe\s.*--force(-vermagic|-modversion)?)(\s|$)")


class Signers:
    """Which keys the kernel trusts: /proc/keys (asymmetric keys) and MOK certificates on disk."""

    def __init__(self, ctx: Context) -> None:
        keys = read_keys(ctx.root)
        self.keys: list[Key] | None = keys if isinstance(keys, list) else None
        self.keys_path = ctx.root.display("proc/keys")
        self.mok: list[Certificate] = []
        for rel in MOK_CERTS:
            data = ctx.root.read_bytes(rel)
            if isinstance(data, bytes) and data:
                try:
                    self.mok.append(parse_certificate(data, ctx.root.display(rel)))
                except (IndexError, ValueError):
                    ctx.notes.append(f"{ctx.root.display(rel)}: not a DER certificate (MOK key not checked)")

    def key_for(self, sig: Signature) -> Key | None:
        if not self.keys:
            return None
        ident = (sig.skid or sig.key_id).lower()
        for key in self.keys:
            if ident and key.key_id == ident:
                return key
        for key in self.keys:  # the description carries the SKID, the signature the serial: match names
            if sig.signer and key.name == sig.signer:
                return key
        return None

    def mok_for(self, sig: Signature) -> Certificate | None:
        for cert in self.mok:
            if (sig.key_id and sig.key_id in (cert.serial, cert.skid)) or (sig.signer and sig.signer == cert.issuer):
                return cert
        return None


def detect(ctx: Context) -> list[Finding]:
    out: list[Finding] = []
    loaded = read_loaded(ctx.root)
    loaded_names = {m.name: m for m in loaded} if isinstance(loaded, list) else {}
    boot_load = {line.words[0].replace("-", "_"): line for line in read_modules_load(ctx.root)}
    log_failed = _log_verification_failed(ctx)
    dkms = _dkms_modules(ctx)
    signers = Signers(ctx)
    sb_on = (ctx.state.get("secure_boot") or {}).get("state") == "enabled"
    reported: set[str] = set()

    # Loaded modules accepted without a trusted signature (taint E) or forced (F).
    if isinstance(loaded, list):
        for m in loaded:
            if "E" not in m.taints and "F" not in m.taints:
                continue
            ev = [
                Evidence(
                    "module",
                    f"{ctx.root.display('proc/modules')}:{m.lineno}",
                    f"{m.name} ({m.taints}): "
                    + ", ".join(
                        t for c, t in (("E", "unsigned"), ("F", "forced"), ("O", "out-of-tree")) if c in m.taints
                    ),
                )
            ]
            if m.name in log_failed:
                ev.append(log_failed[m.name])
            if m.name in boot_load:
                ev.append(Evidence("file", boot_load[m.name].where, boot_load[m.name].text))
            out.append(
                ctx.finding(
                    NAME,
                    "module_signature",
                    "breaks",
                    f"module {m.name} is loaded without a trusted signature"
                    + (" (forced load)" if "F" in m.taints else ""),
                    ev,
                    SYMPTOM_SIG.format(m=m.name) + " (it keeps working until the next reboot)",
                    _remedy(m.name, dkms),
                    None,
                    module=m.name,
                )
            )
            reported.add(m.name)

    release = ctx.release
    files: list[str] = []
    if release:
        base = f"lib/modules/{release}"
        for sub in ctx.root.listdir(base):
            if sub not in IN_TREE and ctx.root.is_dir(f"{base}/{sub}"):
                files += walk_modules(ctx.root, f"{base}/{sub}")
        dep = modules_dep(ctx.root, release) if boot_load else {}
        for name in boot_load:  # boot-time modules from the kernel tree are signed by the build; others are checked
            rel = dep.get(name)
            if rel and not rel.startswith(f"{base}/kernel/") and rel not in files:
                files.append(rel)
    for rel in files:
        name = module_name(rel)
        sig = module_signature(ctx.root / rel)
        where = ctx.root.display(rel)
        if sig.error:
            ctx.notes.append(f"{where}: {sig.error}")
            if not sig.signed:
                continue
        verdict = _verdict(sig, signers, sb_on)
        if verdict is None or name in reported:
            continue
        confidence, why = verdict
        ev = [Evidence("module", where, why)]
        if name in loaded_names:
            lm = loaded_names[name]
            ev.append(
                Evidence(
                    "module",
                    f"{ctx.root.display('proc/modules')}:{lm.lineno}",
                    f"{name} loaded now ({lm.taints or 'no taint'})",
                )
            )
        if name in boot_load:
            ev.append(Evidence("file", boot_load[name].where, f"loaded at boot: {boot_load[name].text}"))
            confidence = "breaks" if confidence == "likely" and not sig.signed else confidence
        if name in dkms:
            ev.append(dkms[name])
        if name in log_failed:
            ev.append(log_failed[name])
        out.append(
            ctx.finding(
                NAME,
                "module_signature",
                confidence,
                f"module file {rel.rsplit('/', 1)[1]} "
                + (
                    "is not signed"
                    if not sig.signed
                    else f"is signed by {sig.signer or sig.key_id}, " + why.split(": ", 1)[-1]
                ),
                ev,
                SYMPTOM_SIG.format(m=name),
                _remedy(name, dkms),
                None,
                module=name,
                path=where,
                signer=sig.signer,
                key_id=sig.key_id,
            )
        )
        reported.add(name)

    # DKMS modules not built for this kernel yet: they will be built (and fail to load) on the next update.
    for name, dkms_ev in dkms.items():
        if name not in reported:
            out.append(
                ctx.finding(
                    NAME,
                    "module_signature",
                    "likely",
                    f"DKMS module {name} (not built for this kernel)",
                    [dkms_ev],
                    SYMPTOM_SIG.format(m=name),
                    _remedy(name, dkms),
                    None,
                    module=name,
                )
            )

    # The taint mask, when no module explains it (the module was unloaded).
    mask = read_tainted(ctx.root)
    if mask is not None and not reported:
        letters = taint_letters(mask)
        if "E" in letters or "F" in letters:
            out.append(
                ctx.finding(
                    NAME,
                    "module_signature",
                    "likely",
                    "the kernel was tainted by an unsigned or forced module load this boot",
                    [
                        Evidence(
                            "sysctl",
                            ctx.root.display(sysctl_rel("kernel.tainted")),
                            f"{mask} ({', '.join(f'{k}: {v}' for k, v in letters.items())})",
                        )
                    ],
                    "the module that tainted it (no longer loaded) will be refused",
                )
            )

    out += _forced(ctx)
    out += _hw_params(ctx)
    return out


def _verdict(sig: Signature, signers: Signers, sb_on: bool) -> tuple[str, str] | None:
    """(confidence, why) when the module will be refused; None when it is trusted."""
    if not sig.signed:
        return "breaks", "no module signature (no '~Module signature appended~' marker)"
    mok = signers.mok_for(sig)
    key = signers.key_for(sig)
    signer = f"signer {sig.signer!r} key {sig.key_id}"
    if mok is not None and not sb_on:
        return "breaks", f"{signer}: a MOK key ({mok.path}); Secure Boot is off, so MOK keys are not trusted"
    if key is not None:
        return None
    if signers.keys is None:
        return "likely", f"{signer}: keyrings not readable (/proc/keys needs root), trust not verified"
    if mok is not None:
        return "likely", f"{signer}: a MOK key ({mok.path}) not found in the kernel's keyrings"
    return "breaks", f"{signer}: no key of that signer in the kernel's keyrings ({signers.keys_path})"


def _remedy(name: str, dkms: dict[str, Evidence]) -> str:
    if name in dkms:
        return (
            f"sign {name} with a key the kernel trusts: with Secure Boot, enroll the DKMS key "
            "(mokutil --import /var/lib/dkms/mok.pub) and reboot; without Secure Boot, MOK keys are never "
            "trusted: build the key into the kernel or keep this host below integrity"
        )
    return (
        "sign the module with a key the kernel trusts (scripts/sign-file with an enrolled MOK key under "
        "Secure Boot, or a key built into the kernel), or stop loading it"
    )


def _log_verification_failed(ctx: Context) -> dict[str, Evidence]:
    """``<mod>: module verification failed: signature and/or required key missing - tainting kernel``."""
    out: dict[str, Evidence] = {}
    for line in ctx.log:
        text = line.text
        pos = text.find(": module verification failed")
        if pos > 0:
            out.setdefault(text[:pos].strip().replace("-", "_"), ctx.log_evidence(line))
    return out


def _dkms_modules(ctx: Context) -> dict[str, Evidence]:
    out: dict[str, Evidence] = {}
    for name in ctx.root.listdir("var/lib/dkms"):
        rel = f"var/lib/dkms/{name}"
        if ctx.root.is_dir(rel) and not name.startswith("."):
            versions = [v for v in ctx.root.listdir(rel) if ctx.root.is_dir(f"{rel}/{v}")]
            if versions:
                out[name.replace("-", "_")] = Evidence(
                    "file", ctx.root.display(rel), f"DKMS module {name} {', '.join(versions)}"
                )
    return out


def _forced(ctx: Context) -> list[Finding]:
    out = []
    for line in ctx.modprobe:
        if line.words[0] == "install" and FORCE_RE.search(line.text):
            module = line.words[1] if len(line.words) > 1 else ""
            out.append(
                ctx.finding(
                    NAME,
                    "module_signature",
                    "breaks",
                    f"modprobe.d forces the load of {module}",
                    [Evidence("file", line.where, line.text)],
                    f"the forced load of {module} is refused even if it is signed (a forced load drops the "
                    "version information the signature covered)",
                    "drop --force/-f and load a module built for this kernel",
                    None,
                    module=module,
                )
            )
    return out


def _hw_params(ctx: Context) -> list[Finding]:
    out = []
    symptom = (
        "the module refuses to load with 'Operation not permitted' (built-in drivers ignore the "
        "parameter); log: " + denial_line("module_parameters", "modprobe")
    )
    for line in ctx.modprobe:
        if line.words[0] != "options" or len(line.words) < 3:
            continue
        module = line.words[1].replace("-", "_")
        for word in line.words[2:]:
            param = word.split("=", 1)[0]
            if param in HW_PARAMS.get(module, ()):
                out.append(
                    ctx.finding(
                        NAME,
                        "module_parameters",
                        "breaks",
                        f"hardware parameter {module}.{param} in modprobe.d",
                        [Evidence("file", line.where, line.text)],
                        symptom,
                        module=module,
                        param=param,
                    )
                )
    cmdline = ctx.cmdline
    if cmdline is not None:
        for key, value in cmdline.params:
            module, dot, param = key.partition(".")
            if dot and param in HW_PARAMS.get(module, ()):
                out.append(
                    ctx.finding(
                        NAME,
                        "module_parameters",
                        "breaks",
                        f"hardware parameter {module}.{param} on the kernel command line",
                        [Evidence("cmdline", cmdline.path, f"{key}={value}")],
                        symptom,
                        module=module,
                        param=param,
                    )
                )
    return out
