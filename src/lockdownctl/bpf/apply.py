"""``enforce apply``: the whole transaction, in the enforcer's layer.

The policy flows down once: parse -> (kernel support) -> resolve against the
root -> load a new enforcer or update the loaded one -> seal -> state file.
The CLI (cli/enforce.py) only parses its arguments and prints the result.
``--dry-run`` runs every step that reads (parse, resolve, the BPF LSM
decision) and none that changes the kernel.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ..btf import VMLINUX_BTF
from ..errors import FeatureMissing, InputError
from ..host.securityfs import read_securityfs
from ..levels import level_rank
from ..policy import Policy, load_policy, verdicts
from ..reasons import Catalogue, catalogue
from ..root import Root
from ..state.bpf_lsm import bpf_lsm_state, require_bpf_lsm, why_not
from ..state.pins import LINK_PIN, PIN_DIR, load_state, save_state
from . import libbpf, seal
from .enforcer import Enforcer, iso, remove_pins, require_root
from .resolve import Resolved, resolve


@dataclass
class Applied:
    data: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def check_kernel(cat: Catalogue) -> None:
    """Exit 3 unless the kernel has what the enforcer needs to find the reasons."""
    if not cat.from_btf:
        raise FeatureMissing("the running kernel has no BTF (/sys/kernel/btf/vmlinux): the enforcer needs "
                             "it to find the lockdown reasons (CONFIG_DEBUG_INFO_BTF)")


def apply(path: str, *, audit: bool = False, seal_it: bool = False, dry_run: bool = False,
          root: Root | None = None, signed_by: str | None = None, trust: str = "user",
          version: int = 0) -> Applied:
    root = root or Root("/")
    if signed_by and not seal_it:
        raise InputError("--signed-by needs --seal: signed updates are how a sealed policy changes")
    if signed_by:
        from .. import signing

        signing.load_cert(signed_by)  # a usable certificate before anything is loaded (exit 2)
    if not dry_run and not root.live:
        raise InputError(f"{root.path}: enforce apply loads into the running kernel: --root only with --dry-run")
    cat = catalogue(root=root.path)
    policy = load_policy(path, cat)
    if audit:
        policy.mode = "audit"
    if seal_it:
        policy.seal = True
    warnings = list(policy.warnings)
    if dry_run and not cat.from_btf:  # a dry run says what the real one would refuse
        warnings.append(f"enforce apply would fail here (exit 3): no kernel BTF ({root.display(VMLINUX_BTF)})")
    else:
        check_kernel(cat)
    from .dbgfs import problem

    if why := problem(policy, cat, read_securityfs(root).level, root):  # path exceptions (#20)
        if not dry_run:
            raise FeatureMissing(why)
        warnings.append(f"enforce apply would fail here (exit 3): {why}")
    enforcer = None
    if not dry_run:  # kernel support (exit 3) before any name is resolved
        require_root()
        enforcer = Enforcer.open_pinned()
        if enforcer is not None:
            try:
                seal.refuse_if_sealed(enforcer)  # tighten-only is refused too: a frozen policy cannot change
            except BaseException:
                enforcer.close()
                raise
        if signed_by:
            from . import gate

            gate.require_kfuncs()  # exit 3 before anything one-way
        if enforcer is None or policy.seal:
            try:
                require_bpf_lsm(root)
            except BaseException:
                if enforcer is not None:
                    enforcer.close()
                raise
    try:
        resolved = resolve(policy, cat, root)
    except BaseException:
        if enforcer is not None:
            enforcer.close()
        raise
    warnings += resolved.warnings
    table = verdicts(policy, cat)
    kernel_level = read_securityfs(root).level
    warnings += _level_warnings(policy, cat, kernel_level)
    data: dict[str, Any] = {
        "policy": policy.to_dict(), "policy_id": f"{policy.policy_id:016x}", "verdicts": table,
        "kernel_level": kernel_level, "dry_run": dry_run,
        "skipped": [w for w in resolved.warnings if " skipped: " in w], "paths": resolved.paths,
    }
    if policy.seal:
        warnings.extend(_seal_warnings(policy, table, kernel_level, cat))
    from ..protection import attach

    warnings += attach(data, policy, cat, kernel_level)[0]  # what the policy really protects (#20)
    if dry_run:
        data["action"] = "dry-run"
        if root.live:
            bpf = bpf_lsm_state(root)
            data["can_load"] = bpf["usable"]
            if not bpf["usable"]:
                warnings.append(f"enforce apply would fail here (exit 3): {why_not(bpf)}")
        return Applied(data, warnings)
    if enforcer is None or policy.seal:
        data["action"] = "loaded" if enforcer is None else "replaced"
        enforcer, data["mounted_bpffs"] = _load_new(resolved, policy.seal, enforcer, signed=bool(signed_by))
    else:
        current = load_state()
        unchanged = current is not None and current.get("digest") == resolved.digest()
        if not unchanged:
            enforcer.write_policy(resolved)
        data["action"] = "unchanged" if unchanged else "updated"
    try:
        data["active"] = enforcer.read_policy()["gen"]
        loaded_gate = None
        if signed_by:
            from . import gate

            try:
                loaded_gate = gate.load(enforcer, signed_by, trust, version, cat)
            except BaseException:
                enforcer.close()
                enforcer = None
                remove_pins()  # nothing sealed, nothing left loaded
                raise
            data["signed"] = loaded_gate.data
        if policy.seal:
            data["seal"] = seal.seal(enforcer, loaded_gate)
    finally:
        if enforcer is not None:
            enforcer.close()
    save_state({"policy_file": os.path.abspath(path), "policy": policy.to_dict(),
                "policy_id": data["policy_id"], "verdicts": table, "digest": resolved.digest(),
                "exceptions": {k: [label for _i, _m, label in v] for k, v in resolved.exceptions.items()},
                "paths": resolved.paths,
                "scope": resolved.scope, "mode": policy.mode, "profile": policy.profile,
                "sealed": "seal" in data, "signed": data.get("signed"),
                "sealed_at": iso(data["seal"]["sealed_at"]) if "seal" in data else None})
    return Applied(data, warnings)


def _load_new(resolved: Resolved, sealing: bool, previous: Enforcer | None,
              signed: bool = False) -> tuple[Enforcer, bool]:
    """Load, fill, attach and pin a new enforcer; with ``sealing`` its policy is
    frozen before attach. A ``previous`` (unsealed) enforcer stays attached until
    the new one is: its link is held open while its pins are replaced."""
    if sealing:
        seal.check_loadable()  # the kernel's verdict on the seal before anything one-way
    enforcer = Enforcer.load(sealed=sealing, signed=signed)
    held = None
    try:
        enforcer.write_policy(resolved)
        if sealing:
            seal.freeze(enforcer, signed)
        if previous is not None:
            held = libbpf.obj_get(os.path.join(PIN_DIR, LINK_PIN))
            previous.close()
            previous = None
            remove_pins()
        mounted = enforcer.attach_and_pin()
    except BaseException:
        enforcer.close()
        if previous is not None:
            previous.close()
        else:
            remove_pins()
        raise
    finally:
        if held is not None:
            os.close(held)  # the previous enforcer detaches now, after the new one attached
    return enforcer, mounted


def _level_warnings(policy: Policy, cat: Catalogue, kernel_level: str | None) -> list[str]:
    """Exceptions and profiles the kernel's own level makes moot."""
    if not kernel_level or kernel_level == "none":
        return []
    out = []
    covered = {r.id for r in cat.at_level(kernel_level)}
    for exc in policy.exceptions:
        moot = [rid for rid in exc.allow if rid in covered]
        if moot:
            out.append(f"{policy.source}:{exc.line}: exception for {', '.join(moot)} has no effect: the "
                       f"kernel itself is at {kernel_level} and denies it before lockdownctl is asked")
    if level_rank(policy.profile) <= level_rank(kernel_level) and policy.profile != "none":
        out.append(f"the kernel is already at {kernel_level}: profile {policy.profile} adds nothing "
                   "but its per-reason overrides and counting")
    return out


def _seal_warnings(policy: Policy, table: dict[str, str], kernel_level: str | None, cat: Catalogue) -> list[str]:
    """What the seal cannot hold: root who may still change kernel code or
    memory (a module, /dev/mem, MSRs, kexec...) can undo any BPF program.
    The kernel's own level, or this policy unscoped, must deny those."""
    if kernel_level and level_rank(kernel_level) >= level_rank("integrity"):
        return []
    open_ = [r.id for r in cat.at_level("integrity") if table.get(r.id) != "deny"]
    out = []
    if policy.mode == "audit":
        out.append("seal in audit mode: the seal keeps an audit-only policy in place, it denies nothing")
    if open_:
        out.append(f"seal: the kernel is at {kernel_level or 'none'} and the policy allows {', '.join(open_)}: "
                   "root can change the kernel through them and so undo the seal (deny them, e.g. profile: "
                   "integrity, or boot with lockdown=integrity)")
    elif policy.scope_cgroup:
        out.append(f"seal: the policy is scoped to cgroup {policy.scope_cgroup}: root outside it can change the "
                   "kernel (modules, /dev/mem, MSRs...) and so undo the seal")
    return out
