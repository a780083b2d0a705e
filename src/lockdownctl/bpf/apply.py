"""``enforce apply``: the whole transaction, in the enforcer's layer.

The policy flows down once: parse -> (kernel support) -> resolve against the
root -> load a new enforcer or update the loaded one -> seal -> state file.
The CLI (cli/enforce.py) only parses its arguments and prints the result.
``--dry-run`` runs every step that reads (parse, resolve, the BPF LSM
decision) and none that changes the kernel.

After attaching, apply proves the program runs (:func:`prove`) instead of
trusting that load + attach means enforcement; without that proof it never
reports the policy applied: ``enforce apply`` exits 3 (cli/enforce.py) and
the program stays attached and pinned (removing it would lower protection
should it run after all; ``enforce remove`` detaches it), a seal the policy
asks for is not applied (the seal would keep a program that does not run).
"""

from __future__ import annotations

import ctypes
import errno
import os
from dataclasses import dataclass, field
from typing import Any

from ..btf import VMLINUX_BTF
from ..errors import FeatureMissing, InputError, LockdownctlError, OutputError
from ..fsio import Reservation
from ..host.securityfs import read_securityfs
from ..levels import level_rank
from ..policy import Policy, load_policy, verdicts
from ..reasons import Catalogue, catalogue
from ..root import Root
from ..state.bpf_lsm import bpf_lsm_state, require_bpf_lsm, why_not
from ..state.pins import LINK_PIN, PIN_DIR, STATE, load_state, pinned, remove_state, reserve_state, save_state
from . import libbpf, seal
from .abi import LdProof
from .enforcer import STAGING_DIR, Enforcer, iso, remove_pins, require_root, unpin_dir
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
          version: int = 0, bundle: str | None = None) -> Applied:
    root = root or Root("/")
    if signed_by and not seal_it:
        raise InputError("--signed-by needs --seal: signed updates are how a sealed policy changes")
    if bundle is not None and not signed_by:
        raise InputError("--bundle needs --seal --signed-by CERT: the bundle must verify against a pinned key")
    checked: dict[str, Any] | None = None
    anchor: str | None = None
    if signed_by:
        from .. import signing

        signer = signing.load_cert(signed_by)  # a usable certificate before anything is loaded (exit 2)
        if trust != "user" and root.live:  # the kernel must hold the pinned key, or nothing could ever verify
            from .gate import anchor_key

            anchor = anchor_key(trust, signer.skid)
        if bundle is not None:  # verified before anything is loaded; never handed on unless it verifies
            checked = check_bundle(bundle, signer)
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
    resume = False  # finish a seal a killed apply --seal left half made
    if not dry_run:  # kernel support (exit 3) before any name is resolved
        require_root()
        recover()
        enforcer = Enforcer.open_pinned()
        if enforcer is not None:
            try:
                resume = policy.seal and not signed_by and seal.interrupted(enforcer)
                if not resume:
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
        if resume and enforcer is not None and enforcer.read_policy()["policy_id"] != resolved.policy_id:
            seal.refuse_if_sealed(enforcer)  # another policy: the frozen one cannot change
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
        if checked is not None:
            data["bundle"] = checked
        if root.live:
            bpf = bpf_lsm_state(root)
            data["can_load"] = bpf["usable"]
            if not bpf["usable"]:
                warnings.append(f"enforce apply would fail here (exit 3): {why_not(bpf)}")
        return Applied(data, warnings)
    room = _reserve(_state(path, policy, data, table, resolved), enforcer)  # before anything changes
    try:
        if resume and enforcer is not None:
            data["action"] = "resumed"  # the frozen enforcer runs this policy: prove and seal it below
        elif enforcer is None or policy.seal:
            data["action"] = "loaded" if enforcer is None else "replaced"
            enforcer, data["mounted_bpffs"] = _load_new(resolved, policy.seal, enforcer, signed=bool(signed_by))
        else:
            current = load_state()
            # The kernel's own policy id too: a kill between the switch and the state
            # file leaves the file naming the previous policy (tests/vm/test_apply_crash.py).
            unchanged = (current is not None and current.get("digest") == resolved.digest()
                         and enforcer.read_policy()["policy_id"] == resolved.policy_id)
            if not unchanged:
                enforcer.write_policy(resolved)
            data["action"] = "unchanged" if unchanged else "updated"
        data["active"] = enforcer.read_policy()["gen"]
        data["proof"] = prove(enforcer, table, kernel_level, cat)
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
            if trust != "user":
                data["signed"]["secure_boot"] = _anchor_warning(root, trust, warnings)
                data["signed"]["kernel_key"] = anchor  # the kernel's own description of the pinned key
            if checked is not None:
                data["signed"]["bundle_file"] = checked["file"]
        if policy.seal and data["proof"]["verified"]:  # never seal a program that does not run
            data["seal"] = seal.seal(enforcer, loaded_gate)
    except OSError as exc:
        room.abort()
        if exc.errno not in (errno.EROFS, errno.ENOSPC, errno.EDQUOT):
            raise
        # Pins on a read-only (or full) bpffs: _load_new undid its part, the previous policy runs.
        raise OutputError(f"{exc.filename or PIN_DIR}: cannot write: {exc.strerror or exc}: the new enforcer "
                          "was not loaded, the running policy is unchanged") from None
    except BaseException:
        room.abort()
        raise
    finally:
        if enforcer is not None:
            enforcer.close()  # (closing one _load_new closed already is harmless)
    try:
        save_state(_state(path, policy, data, table, resolved), room)
    except OSError as exc:  # the room was taken, yet the file could not be replaced (remounted read-only)
        remove_state()  # a state naming the previous policy must not pass for this one's (if it can go)
        raise OutputError(f"{STATE}: cannot write: {exc.strerror or exc}: the kernel runs policy "
                          f"{data['policy_id']} ({data['action']}) but its state was not saved (enforce status "
                          "reports what the kernel has): apply again once it is writable") from None
    if checked is not None:
        data["bundle"] = _apply_bundle(checked, "seal" in data, warnings)
    return Applied(data, warnings)


def _reserve(draft: dict[str, Any], enforcer: Enforcer | None) -> Reservation:
    try:
        return reserve_state(draft)
    except BaseException:
        if enforcer is not None:
            enforcer.close()
        raise


def _state(path: str, policy: Policy, data: dict[str, Any], table: dict[str, str],
           resolved: Resolved) -> dict[str, Any]:
    """What the state file records (state/pins.py): before loading, a draft of its size."""
    return {"policy_file": os.path.abspath(path), "policy": policy.to_dict(),
            "policy_id": data["policy_id"], "verdicts": table, "digest": resolved.digest(),
            "exceptions": {k: [label for _i, _m, label in v] for k, v in resolved.exceptions.items()},
            "paths": resolved.paths,
            "scope": resolved.scope, "mode": policy.mode, "profile": policy.profile,
            "sealed": "seal" in data, "proof": data.get("proof"), "signed": data.get("signed"),
            "sealed_at": iso(data["seal"]["sealed_at"]) if "seal" in data else None}


def check_bundle(path: str, signer: Any) -> dict[str, Any]:
    """The offline half of --bundle, before anything is loaded: the bundle's form and its
    signature against --signed-by's certificate (what the gate checks first). An absent file is
    no update yet (the base policy alone); a bundle that does not verify is never handed to the
    kernel."""
    from .. import signing
    from ..infile import read_bytes

    out: dict[str, Any] = {"file": os.path.abspath(path), "version": None, "why": None}
    if not os.path.lexists(path):
        return out | {"state": "absent"}
    try:
        parsed = signing.verify(read_bytes(path, "bundle"), signer, path)
    except LockdownctlError as exc:  # unreadable, malformed, not signed by the pinned key
        return out | {"state": "refused", "why": str(exc)}
    return out | {"state": "verified", "version": int(parsed.payload.version)}


def _apply_bundle(checked: dict[str, Any], sealed: bool, warnings: list[str]) -> dict[str, Any]:
    """Hand a bundle that verified offline to the sealed gate, which verifies it again in the
    kernel; its version becomes the floor. A refusal leaves the sealed base policy in place."""
    if checked["state"] == "absent":
        warnings.append(f"{checked['file']}: no signed bundle yet: the base policy alone is sealed "
                        "(enforce update writes each accepted bundle there)")
        return checked
    if checked["state"] == "refused":
        warnings.append(f"signed bundle NOT applied: {checked['why']}; the base policy is sealed in its place")
        return checked
    if not sealed:
        warnings.append(f"{checked['file']}: not applied: the seal was not applied")
        return checked | {"state": "not-applied"}
    from . import gate

    try:
        done = gate.update(checked["file"])
    except gate.Refused as exc:  # the kernel's verdict differs from the offline one
        warnings.append(f"signed bundle NOT applied: {exc}; the base policy is sealed in its place")
        return checked | {"state": "refused", "why": str(exc)}
    return checked | {"state": "applied", "active_version": done["active_version"]}


def _anchor_warning(root: Root, trust: str, warnings: list[str]) -> str:
    """A firmware keyring is an anchor only while Secure Boot holds the boot chain: without it,
    root boots any kernel (one that trusts any key) and, in Setup Mode, writes db from the OS."""
    from ..host.efivars import read_secure_boot
    from .gate import SYSTEM_RINGS

    state = read_secure_boot(root).state
    if state != "enabled":
        warnings.append(f"--trust {trust}: Secure Boot is {state}: the {SYSTEM_RINGS[trust]} keyring is no "
                        "stronger an anchor than the user keyring (root can boot a kernel or enrol "
                        "firmware keys of its choice)")
    return state


# Self-triggers for the proof: (reason id, path, open flags). Each open makes
# the kernel ask security_locked_down() for the reason before anything else
# and changes nothing (the fd is closed at once, nothing is read or written):
# fs/proc/kcore.c open_kcore() asks LOCKDOWN_KCORE; tracefs's trace_marker
# open asks LOCKDOWN_TRACEFS (kernel/trace/trace.c tracing_check_open_get_tr()).
# Both are confidentiality reasons, so below that level the kernel's own
# lockdown LSM lets the call through to the BPF LSM; at confidentiality it
# denies every reason first and no locked_down program ever runs.
PROOF_TRIGGERS = (("kcore", "/proc/kcore", os.O_RDONLY), ("tracefs", "/sys/kernel/tracing/trace_marker", os.O_WRONLY))


def prove(enforcer: Enforcer, table: dict[str, str], kernel_level: str | None, cat: Catalogue) -> dict[str, Any]:
    """Evidence that the attached program runs: the calls it counted for this
    process while this process made the kernel call security_locked_down().

    Why a count the program keeps (lockdown.h struct ld_proof): it proves the
    hook reaches this very program whatever the policy says about the
    trigger's reason: allowed (the hot path, no event), denied, audited,
    excepted or out of scope. An event would need a reason the policy denies
    or audits for this process, and would add the applier's own denial to
    every log. Not the kernel's run count (bpf_prog_info.run_cnt): it is kept
    only while statistics are on, and BPF_ENABLE_STATS patches a static key
    into every trampoline's entry and exit while other CPUs run them (the
    file_open program runs on every open); guests under QEMU's TCG died of it
    (int3 Oops, soft lockups in update_prog_stats). Counted for this process
    only, so nothing else's calls can stand in for the proof.
    """
    by_id = {r.id: r for r in cat.reasons}
    if kernel_level == "confidentiality":
        # Every reason is denied by the kernel before any LSM program is asked.
        return {"verified": True, "method": "kernel-level", "kernel_level": kernel_level,
                "note": "the kernel at confidentiality denies every reason itself: the program is never asked"}
    fd = enforcer.fds.get("proof")
    if fd is None:
        return {"verified": False, "method": "call-count", "calls_before": 0, "calls_after": 0, "triggers": [],
                "why": (f"the loaded enforcer has no proof map ({PIN_DIR}/proof): it was loaded by an older "
                        "lockdownctl; `lockdownctl enforce remove` and apply again to prove it runs")}
    usable = []
    for reason, path, flags in PROOF_TRIGGERS:
        r = by_id.get(reason)
        if r is None or r.value is None or not os.path.exists(path):
            continue
        usable.append((table.get(reason) != "allow", reason, path, flags))  # allowed first: no event

    def calls() -> int:
        got = LdProof()
        if not libbpf.map_lookup(fd, ctypes.c_uint32(0), got):
            raise LockdownctlError(f"{PIN_DIR}/proof: the proof map has no element 0")
        return int(got.hits)

    libbpf.map_update(fd, ctypes.c_uint32(0), LdProof(tgid=os.getpid(), hits=0))
    try:
        before = calls()
        tried: list[dict[str, Any]] = []
        after = before
        for _denied, reason, path, flags in sorted(usable):
            try:
                os.close(os.open(path, flags | os.O_CLOEXEC))
                result = "opened"
            except OSError as exc:
                result = os.strerror(exc.errno or 0)
            after = calls()
            tried.append({"reason": reason, "path": path, "result": result, "calls_after": after})
            if after > before:
                break
    finally:
        libbpf.map_update(fd, ctypes.c_uint32(0), LdProof(tgid=0, hits=0))  # the hot path skips it again
    out: dict[str, Any] = {"verified": after > before, "method": "call-count", "calls_before": before,
                           "calls_after": after, "triggers": tried}
    if not usable:
        out["why"] = (f"no trigger available: none of {', '.join(p for _r, p, _f in PROOF_TRIGGERS)} exists, so this "
                      "process could not call the hook")
    elif not out["verified"]:
        out["why"] = ("the program did not run when this process called security_locked_down() "
                      f"({', '.join(t['reason'] for t in tried)}): the hook does not reach it")
    return out


def _load_new(resolved: Resolved, sealing: bool, previous: Enforcer | None,
              signed: bool = False) -> tuple[Enforcer, bool]:
    """Load, fill, attach and pin a new enforcer; with ``sealing`` its policy is
    frozen before attach. A ``previous`` (unsealed) enforcer stays attached until
    the new one is: its link is held open while its pins are replaced."""
    if sealing:
        seal.check_loadable()  # the kernel's verdict on the seal before anything one-way
    enforcer = Enforcer.load(sealed=sealing, signed=signed)
    replacing = previous is not None
    staged = old_gone = False
    try:
        enforcer.write_policy(resolved)
        if sealing:
            seal.freeze(enforcer, signed)
        if previous is None:
            unpin_dir(PIN_DIR)  # what a killed first load pinned without its link (nothing runs)
            mounted = enforcer.attach_and_pin()
        else:
            # Never neither, even killed at any step: the new enforcer is attached and
            # pinned beside the old one before the old one's pins go, then moved into
            # place; recover() finishes the move after a kill.
            mounted = enforcer.attach_and_pin(STAGING_DIR)
            staged = True
            previous.close()
            previous = None
            old_gone = True
            unpin_dir(PIN_DIR)  # the old one detaches
            os.rename(STAGING_DIR, PIN_DIR)
    except BaseException:
        enforcer.close()
        if previous is not None:
            previous.close()
        if not replacing:
            remove_pins()
        elif staged and not old_gone:
            unpin_dir(STAGING_DIR)  # the old one still runs
        # (old_gone: the new one runs from STAGING_DIR; recover() moves it into place)
        raise
    return enforcer, mounted


def recover() -> None:
    """Finish what a killed ``enforce apply`` left: a replacement enforcer pinned in
    STAGING_DIR is moved into place if the old one is gone, else dropped (the old one
    is whole; the new one was never announced). Neither step lowers what runs."""
    if not os.path.isdir(STAGING_DIR):
        return
    if pinned():
        unpin_dir(STAGING_DIR)
    elif os.path.exists(os.path.join(STAGING_DIR, LINK_PIN)):
        unpin_dir(PIN_DIR)
        os.rename(STAGING_DIR, PIN_DIR)
    else:
        unpin_dir(STAGING_DIR)  # killed while pinning: its link died with the process


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
