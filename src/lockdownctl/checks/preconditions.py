"""Preconditions that change the verdict (docs/kernel-facts.md 0.4).

- CONFIG_MODULE_SIG unset: module_sig_check() is compiled out, lockdown never
  blocks module loading (kernel/module/signing.c).
- The lockdown LSM not initialised: ``lsm=`` (or CONFIG_LSM) without
  ``lockdown`` and no CONFIG_SECURITY_LOCKDOWN_LSM_EARLY: the level is shown
  in securityfs but never enforced (security/security.c ordered_lsm_parse()).
- Secure Boot off: MOK keys are not loaded (security/integrity/platform_certs/
  load_uefi.c load_uefi_certs(): "MOK/MOKx can not be trusted when secure
  boot is disabled"), so MOK-signed modules are refused (handled with the
  modules detector, which knows the signers).
- Features compiled out cannot break (hibernation, kexec, /dev/mem...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..kfacts import SECURE_BOOT_LEVEL, secure_boot_option
from ..reasons import TABLE
from ..root import Root
from .engine import Context, Evidence, Finding

# reason -> kconfig options (any of) without which no operation of that reason exists: the
# catalogue's compile-time gate (Reason.config), for every reason that has one.
FEATURES: dict[str, tuple[str, ...]] = {r.id: r.config for r in TABLE if r.config}

if TYPE_CHECKING:
    from ..state.types import Status


def read_state(root: Root) -> Status:
    """The status document (state/document.py): level, LSM list, Secure Boot.

    On the live system status collects in a child (securityfs mounted in a
    private namespace); check asks it not to trial-load the enforcer's BPF
    probe, which it does not need.
    """
    from ..state.document import read_status

    return read_status(root, bpf_trial=False)


def _ev_config(ctx: Context, option: str) -> Evidence:
    assert ctx.kconfig is not None
    value = ctx.kconfig.get(option)
    text = f"# {option} is not set" if value == "n" else f"{option} absent" if value is None else f"{option}={value}"
    return Evidence("kconfig", ctx.kconfig.where(option), text)


def evaluate(ctx: Context) -> tuple[list[dict[str, Any]], Any, Any]:
    """(preconditions for the report, suppress(finding) -> why, downgrade(finding) -> why)."""
    out: list[dict[str, Any]] = []
    suppress_reasons: dict[str, str] = {}
    downgrade_all = ""
    suppress_all = ""

    def add(pid: str, holds: bool, effect: str, evidence: list[Evidence]) -> None:
        out.append({"id": pid, "holds": holds, "effect": effect, "evidence": [e.to_dict() for e in evidence]})

    config = ctx.kconfig
    if config is None:
        add(
            "kernel-config",
            False,
            "kernel configuration not found: compiled-out features and CONFIG_MODULE_SIG "
            "cannot be checked, every finding is kept",
            [],
        )
    else:
        if config.get("CONFIG_SECURITY_LOCKDOWN_LSM") != "y":
            suppress_all = "the kernel is built without the lockdown LSM (CONFIG_SECURITY_LOCKDOWN_LSM)"
            add(
                "lockdown-lsm-built",
                True,
                suppress_all + ": no level can be set",
                [_ev_config(ctx, "CONFIG_SECURITY_LOCKDOWN_LSM")],
            )
        sig = config.get("CONFIG_MODULE_SIG")
        if sig != "y":
            why = "CONFIG_MODULE_SIG is not set: lockdown never blocks module loading"
            suppress_reasons["module_signature"] = why
            add("module-sig-unset", True, why, [_ev_config(ctx, "CONFIG_MODULE_SIG")])
        elif config.get("CONFIG_MODULE_SIG_FORCE") == "y":
            add(
                "module-sig-force",
                True,
                "CONFIG_MODULE_SIG_FORCE=y: unsigned modules are refused already, whatever the lockdown level",
                [_ev_config(ctx, "CONFIG_MODULE_SIG_FORCE")],
            )
        for reason, options in FEATURES.items():
            if not any(config.enabled(o) for o in options):
                why = f"{' and '.join(options)} not set: the kernel has no such operation"
                suppress_reasons.setdefault(reason, why)
                add(f"compiled-out:{reason}", True, why, [_ev_config(ctx, o) for o in options])

    # Will the lockdown LSM be initialised at the next boot?
    early = config is not None and config.get("CONFIG_SECURITY_LOCKDOWN_LSM_EARLY") == "y"
    cmdline = ctx.cmdline
    lsm_list = cmdline.lsm if cmdline else None
    if lsm_list is not None and "lockdown" not in lsm_list:
        ev = [Evidence("cmdline", cmdline.path if cmdline else "/proc/cmdline", f"lsm={','.join(lsm_list)}")]
        if early:
            assert config is not None
            add(
                "lsm-without-lockdown",
                False,
                "lsm= omits lockdown, but CONFIG_SECURITY_LOCKDOWN_LSM_EARLY=y initialises it anyway: enforced",
                [*ev, _ev_config(ctx, "CONFIG_SECURITY_LOCKDOWN_LSM_EARLY")],
            )
        else:
            downgrade_all = (
                "lsm= omits lockdown: the level would be shown but not enforced; add lockdown to "
                "lsm= for any of this to break"
            )
            add("lsm-without-lockdown", True, downgrade_all, ev)
    elif lsm_list is None and config is not None and not early:
        config_lsm = (config.get("CONFIG_LSM") or "").strip('"').split(",")
        if config.get("CONFIG_LSM") and "lockdown" not in config_lsm:
            downgrade_all = "CONFIG_LSM omits lockdown and no lsm= adds it: the level would not be enforced"
            add("lsm-without-lockdown", True, downgrade_all, [_ev_config(ctx, "CONFIG_LSM")])

    sb = (ctx.state.get("secure_boot") or {}).get("state")
    add(
        "secure-boot",
        sb == "enabled",
        "Secure Boot is on: MOK keys can be trusted for modules"
        if sb == "enabled"
        else f"Secure Boot is {sb or 'unknown'}: MOK keys are not loaded, MOK-signed modules will be refused",
        [Evidence("efivar", "efivars", e) for e in (ctx.state.get("secure_boot") or {}).get("evidence", [])],
    )

    # The distribution patch that locks down under Secure Boot, under any of its names (kfacts).
    sb_option = secure_boot_option(config.get) if config is not None else None
    if sb_option is not None:
        assert config is not None
        add(
            "secure-boot-locks-down",
            sb == "enabled",
            f"{sb_option}=y: booting with Secure Boot locks the kernel down at {SECURE_BOOT_LEVEL}"
            + (" (Secure Boot is on: the next boot does)" if sb == "enabled"
               else f" (Secure Boot is {sb or 'unknown'})"),
            [_ev_config(ctx, sb_option)],
        )

    current = ctx.state.get("level")
    if current and current != "none":
        ev = [
            Evidence("securityfs", ev["where"], ev["text"])
            for ev in (ctx.state.get("source") or {}).get("evidence", [])
        ]
        add(
            "current-level",
            True,
            f"the kernel runs at {current} now: findings at or below it are already denied today",
            ev,
        )

    def suppress(f: Finding) -> str:
        if suppress_all:
            return suppress_all
        if not ctx.catalogue.find(f.reason) or (ctx.catalogue.from_btf and not ctx.catalogue.get(f.reason).on_kernel):
            return f"this kernel has no reason {f.reason}"
        if f.requires and config is not None and not any(config.enabled(o) for o in f.requires):
            return f"{' and '.join(f.requires)} not set: the kernel has no such operation"
        return suppress_reasons.get(f.reason, "")

    def downgrade(_f: Finding) -> str:
        return downgrade_all

    return out, suppress, downgrade
