"""``lockdownctl enforce apply|status|events|remove``: the BPF LSM enforcer."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from ..output import Result, Style

COMMON_OPTIONS = False  # --json is added to each action


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    apply = actions.add_parser("apply", help="load the enforcer (or update it) with a policy file")
    apply.add_argument("policy", metavar="FILE", help="policy file (YAML, see lockdownctl-policy(5))")
    apply.add_argument("--audit", action="store_true", help="audit mode: log what would be denied, deny nothing")
    apply.add_argument("--dry-run", action="store_true", help="show what would be enforced, change nothing")
    apply.add_argument("--seal", action="store_true",
                       help="seal the policy: nobody, root included, can lower or remove it until reboot")
    actions.add_parser("status", help="the enforced policy, counters per reason and verdict, ring-buffer drops")
    events = actions.add_parser("events", help="denials and audits the enforcer recorded")
    events.add_argument("--follow", action="store_true", help="keep printing new events until interrupted")
    remove = actions.add_parser("remove", help="detach the enforcer and remove its pins")
    remove.add_argument("--dry-run", action="store_true", help="show what would be removed, change nothing")
    for sub in (apply, actions.choices["status"], events, remove):
        sub.add_argument("--json", action="store_true", help="print JSON instead of text")


def run(args: argparse.Namespace) -> Result:
    return {"apply": _apply, "status": _status, "events": _events, "remove": _remove}[args.action](args)


# --- apply -------------------------------------------------------------------------


def _apply(args: argparse.Namespace) -> Result:
    from ..bpf import engine
    from ..errors import FeatureMissing
    from ..output import Result
    from ..policy import load_policy, verdicts
    from ..reasons import catalogue

    cat = catalogue()
    policy = load_policy(args.policy, cat)
    if args.audit:
        policy.mode = "audit"
    if args.seal:
        policy.seal = True
    warnings = list(policy.warnings)
    if not cat.from_btf:
        raise FeatureMissing("the running kernel has no BTF (/sys/kernel/btf/vmlinux): the enforcer needs "
                             "it to find the lockdown reasons (CONFIG_DEBUG_INFO_BTF)")
    table = verdicts(policy, cat)
    kernel_level = _kernel_level()
    if kernel_level and kernel_level != "none":
        from ..levels import level_rank

        covered = {r.id for r in cat.at_level(kernel_level)}
        for exc in policy.exceptions:
            moot = [rid for rid in exc.allow if rid in covered]
            if moot:
                warnings.append(f"{policy.source}:{exc.line}: exception for {', '.join(moot)} has no effect: the "
                                f"kernel itself is at {kernel_level} and denies it before lockdownctl is asked")
        if level_rank(policy.profile) <= level_rank(kernel_level) and policy.profile != "none":
            warnings.append(f"the kernel is already at {kernel_level}: profile {policy.profile} adds nothing "
                            "but its per-reason overrides and counting")
    data: dict[str, Any] = {
        "policy": policy.to_dict(), "policy_id": f"{policy.policy_id:016x}", "verdicts": table,
        "kernel_level": kernel_level, "dry_run": bool(args.dry_run),
    }
    if policy.seal:
        warnings.extend(_seal_warnings(policy, table, kernel_level, cat))
    from ..protection import attach

    warnings += attach(data, policy, cat, kernel_level)[0]
    if args.dry_run:
        data["action"] = "dry-run"
        return Result("enforce", data, _render_apply, warnings=warnings)

    engine.require_root()
    resolved = engine.resolve(policy, cat)
    enforcer = engine.Enforcer.open_pinned()
    if enforcer is not None:
        from ..bpf import seal

        try:
            seal.refuse_if_sealed(enforcer)  # tighten-only is refused too: a frozen policy cannot change
        except BaseException:
            enforcer.close()
            raise
    if enforcer is None or policy.seal:
        if enforcer is None:
            engine.require_bpf_lsm()
        data["action"] = "loaded" if enforcer is None else "replaced"
        enforcer, data["mounted_bpffs"] = _load_new(resolved, policy.seal, enforcer)
    else:
        current = engine.load_state()
        unchanged = current is not None and current.get("digest") == resolved.digest()
        if not unchanged:
            enforcer.write_policy(resolved)
        data["action"] = "unchanged" if unchanged else "updated"
    try:
        data["active"] = enforcer.read_policy()["gen"]
        if policy.seal:
            from ..bpf import seal

            data["seal"] = seal.seal(enforcer)
    finally:
        enforcer.close()
    engine.save_state({"policy_file": os.path.abspath(args.policy), "policy": policy.to_dict(),
                       "policy_id": data["policy_id"], "verdicts": table, "digest": resolved.digest(),
                       "exceptions": {k: [label for _i, _m, label in v] for k, v in resolved.exceptions.items()},
                       "scope": resolved.scope, "mode": policy.mode, "profile": policy.profile,
                       "sealed": "seal" in data,
                       "sealed_at": _iso(data["seal"]["sealed_at"]) if "seal" in data else None})
    return Result("enforce", data, _render_apply, warnings=warnings)


def _load_new(resolved: Any, sealing: bool, previous: Any) -> tuple[Any, bool]:
    """Load, fill, attach and pin a new enforcer; with ``sealing`` its policy is
    frozen before attach. A ``previous`` (unsealed) enforcer stays attached until
    the new one is: its link is held open while its pins are replaced."""
    from ..bpf import engine, libbpf, seal
    from ..bpf.paths import LINK_PIN, PIN_DIR

    if sealing:
        seal.check_loadable()  # the kernel's verdict on the seal before anything one-way
    enforcer = engine.Enforcer.load(sealed=sealing)
    held = None
    try:
        enforcer.write_policy(resolved)
        if sealing:
            seal.freeze(enforcer)
        if previous is not None:
            held = libbpf.obj_get(os.path.join(PIN_DIR, LINK_PIN))
            previous.close()
            previous = None
            engine.remove_pins()
        mounted = enforcer.attach_and_pin()
    except BaseException:
        enforcer.close()
        if previous is not None:
            previous.close()
        else:
            engine.remove_pins()
        raise
    finally:
        if held is not None:
            os.close(held)  # the previous enforcer detaches now, after the new one attached
    return enforcer, mounted


def _seal_warnings(policy: Any, table: dict[str, str], kernel_level: str | None, cat: Any) -> list[str]:
    """What the seal cannot hold: root who may still change kernel code or
    memory (a module, /dev/mem, MSRs, kexec...) can undo any BPF program.
    The kernel's own level, or this policy unscoped, must deny those."""
    from ..levels import level_rank

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


def _kernel_level() -> str | None:
    from ..host.securityfs import read_securityfs
    from ..root import Root

    return read_securityfs(Root("/")).level


def _render_apply(data: dict[str, Any], s: Style) -> str:
    pol = data["policy"]
    action = {"dry-run": "would enforce (dry run, nothing changed)", "loaded": "loaded and attached",
              "replaced": "loaded and attached in place of the unsealed one",
              "updated": "updated in place", "unchanged": "already enforced, unchanged"}[data["action"]]
    lines = [f"Enforcer:   {s.bold(action)}",
             f"Policy:     {pol['source']} (profile {pol['profile']}, mode {pol['mode']}, id {data['policy_id']})"]
    if pol["scope_cgroup"]:
        lines.append(f"Scope:      cgroup {pol['scope_cgroup']}")
    denied = [r for r, v in data["verdicts"].items() if v == "deny"]
    audited = [r for r, v in data["verdicts"].items() if v == "audit"]
    lines.append(f"Denies:     {', '.join(denied) or '-'}")
    if audited:
        lines.append(f"Audits:     {', '.join(audited)}")
    for exc in pol["exceptions"]:
        who = exc["name"] or exc["kind"]
        lines.append(f"Exception:  {who}: {exc['kind']} {exc['value']} may {', '.join(exc['allow'])}")
    if data.get("mounted_bpffs"):
        lines.append("Note:       mounted bpffs at /sys/fs/bpf for the pins")
    if data.get("seal"):
        lines.append(f"Sealed:     {s.bold('until reboot')} (nobody can lower or remove this policy now; "
                     "recovery: boot without it, see lockdownctl(8))")
    elif data["policy"].get("seal") and data["action"] == "dry-run":
        lines.append("Sealed:     would be sealed until reboot")
    from ..protection import text

    return "\n".join(lines + text(data))


# --- status ------------------------------------------------------------------------


def enforcer_state() -> dict[str, Any]:
    """The loaded enforcer, its policy and counters (root only)."""
    from ..bpf import engine, paths
    from ..reasons import catalogue

    enforcer = engine.Enforcer.open_pinned()
    if enforcer is None:
        return {"loaded": False}
    try:
        live = enforcer.read_policy()
        per_reason, drops = enforcer.counters()
        exceptions = enforcer.exceptions()
    finally:
        enforcer.close()
    cat = catalogue()
    by_value = {r.value: r.id for r in cat.reasons if r.value is not None}
    names = {0: "allow", 1: "deny", 2: "audit"}
    table = {by_value[v]: names.get(code, str(code)) for v, code in enumerate(live["table"]) if v in by_value}
    counters = {by_value.get(v, str(v)): {"denied": c[0], "audited": c[1], "excepted": c[2]}
                for v, c in enumerate(per_reason) if any(c)}
    state = engine.load_state() or {}
    return {
        "loaded": True, "pin_dir": paths.PIN_DIR, "generation": live["gen"],
        "policy_id": f"{live['policy_id']:016x}",
        "mode": "audit" if live["audit"] else "enforce", "scoped": live["scoped"], "sealed": bool(live["sealed"]),
        "sealed_at": _iso(live["sealed"]) if live["sealed"] else None,
        "profile": state.get("profile"), "policy_file": state.get("policy_file"), "verdicts": table,
        "exceptions": exceptions, "counters": counters, "ring_buffer_drops": drops,
    }


def _iso(seconds: int) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(args: argparse.Namespace) -> Result:
    from ..bpf import engine
    from ..output import Result

    engine.require_root()
    return Result("enforce", enforcer_state(), _render_status)


def _render_status(data: dict[str, Any], s: Style) -> str:
    if not data["loaded"]:
        return "Enforcer:   not loaded (lockdownctl enforce apply FILE loads it)"
    lines = [f"Enforcer:   {s.good('loaded')} (pinned in {data['pin_dir']}, generation {data['generation']})",
             f"Policy:     {data['policy_file'] or '?'} (profile {data['profile'] or '?'}, mode {data['mode']}, "
             f"id {data['policy_id']}{', scoped to a cgroup' if data['scoped'] else ''})"]
    if data.get("sealed"):
        lines.append(f"Sealed:     {s.bold('until reboot')}, since {data['sealed_at']}")
    denied = [r for r, v in data["verdicts"].items() if v == "deny"]
    lines.append(f"Denies:     {', '.join(denied) or '-'}")
    ex = ", ".join(f"{n} {k}" for k, n in data["exceptions"].items() if n)
    lines.append(f"Exceptions: {ex or '-'}")
    if data["counters"]:
        from ..output import table

        rows = [[r, str(c["denied"]), str(c["audited"]), str(c["excepted"])] for r, c in data["counters"].items()]
        lines.append(table(rows, ["REASON", "DENIED", "AUDITED", "EXCEPTED"]))
    lines.append(f"Ring-buffer drops: {data['ring_buffer_drops']}")
    return "\n".join(lines)


# --- events ------------------------------------------------------------------------


def _events(args: argparse.Namespace) -> Result:
    import json
    import signal
    import sys

    from ..bpf import engine, libbpf
    from ..errors import FeatureMissing
    from ..output import Result, write_stdout
    from ..reasons import catalogue

    engine.require_root()
    enforcer = engine.Enforcer.open_pinned()
    if enforcer is None:
        raise FeatureMissing("the enforcer is not loaded (lockdownctl enforce apply FILE loads it)")
    from ..bpf.decode import EventDecoder, render_event

    decoder = EventDecoder(catalogue())
    collected: list[dict[str, Any]] = []
    stop = False

    def on_event(raw: bytes) -> None:
        event = decoder.decode(raw)
        if args.follow:
            write_stdout((json.dumps(event) if args.json else render_event(event)) + "\n", flush=True)
        else:
            collected.append(event)

    def on_signal(_signo: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    ring = libbpf.RingBuffer(enforcer.fds["events"], on_event)
    try:
        if args.follow:
            signal.signal(signal.SIGINT, on_signal)
            signal.signal(signal.SIGTERM, on_signal)
            while not stop:
                ring.poll(200)
        else:
            ring.consume()
    finally:
        ring.close()
        enforcer.close()
    if args.follow:
        sys.stdout.flush()
        return Result("enforce", None, lambda _d, _s: "")
    return Result("enforce", {"events": collected}, lambda d, _s: "\n".join(render_event(e) for e in d["events"]))


# --- remove ------------------------------------------------------------------------


def _remove(args: argparse.Namespace) -> Result:
    from ..bpf import engine, paths
    from ..output import Result

    if args.dry_run:
        pins = sorted(os.listdir(paths.PIN_DIR)) if os.path.isdir(paths.PIN_DIR) else []
        return Result("enforce", {"dry_run": True, "would_remove": pins},
                      lambda d, _s: "would remove: " + (", ".join(d["would_remove"]) or "nothing (not loaded)"))
    engine.require_root()
    enforcer = engine.Enforcer.open_pinned()
    if enforcer is not None:
        from ..bpf import seal

        try:
            seal.refuse_if_sealed(enforcer)
        finally:
            enforcer.close()
    removed = engine.remove_pins()
    return Result("enforce", {"removed": removed}, _render_remove)


def _render_remove(data: dict[str, Any], _s: Style) -> str:
    if not data["removed"]:
        return "not loaded: nothing to remove"
    return "removed " + ", ".join(data["removed"])
