"""``lockdownctl enforce apply|status|events|remove``: the BPF LSM enforcer."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

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
    apply.add_argument("--root", metavar="PATH", default="/",
                       help="resolve users, cgroups and executables below PATH (only with --dry-run)")
    apply.add_argument("--signed-by", metavar="CERT", help="with --seal: allow later updates (enforce update) "
                       "signed by this certificate's key only, checked in the kernel")
    apply.add_argument("--trust", choices=("user", "secondary", "platform"), default="user",
                       help="where the kernel finds --signed-by's key: a keyring lockdownctl creates (user, "
                       "weaker), or the enrolled .secondary_trusted_keys / .platform keyring")
    apply.add_argument("--version", metavar="N", type=int, default=0,
                       help="with --signed-by: the lowest bundle version is N+1 (anti-rollback floor)")
    apply.add_argument("--bundle", metavar="BUNDLE", help="with --signed-by: after sealing, apply this signed "
                       "bundle (verified against CERT first, then by the kernel; its version becomes the "
                       "floor); later accepted updates are saved there. Absent: the policy alone")
    update = actions.add_parser("update", help="apply a signed policy bundle to a signed seal")
    update.add_argument("bundle", metavar="BUNDLE", help="bundle file (lockdownctl policy sign)")
    update.add_argument("--dry-run", action="store_true", help="check the bundle's form, change nothing")
    actions.add_parser("status", help="the enforced policy, counters per reason and verdict, ring-buffer drops")
    events = actions.add_parser("events", help="denials and audits the enforcer recorded, and tamper attempts "
                                "the seal refused")
    events.add_argument("--follow", action="store_true", help="keep printing new events until interrupted")
    remove = actions.add_parser("remove", help="detach the enforcer and remove its pins")
    remove.add_argument("--dry-run", action="store_true", help="show what would be removed, change nothing")
    from . import color_option

    for sub in (apply, actions.choices["status"], events, remove, update):
        sub.add_argument("--json", action="store_true", help="print JSON instead of text")
        color_option(sub)


def run(args: argparse.Namespace) -> Result:
    return {"apply": _apply, "status": _status, "events": _events, "remove": _remove,
            "update": _update}[args.action](args)


# --- apply -------------------------------------------------------------------------


def _apply(args: argparse.Namespace) -> Result:
    from ..bpf.apply import apply
    from ..errors import EXIT_FEATURE, EXIT_FINDINGS, EXIT_OK
    from ..output import Result
    from ..root import Root

    done = apply(args.policy, audit=args.audit, seal_it=args.seal, dry_run=args.dry_run, root=Root(args.root),
                 signed_by=args.signed_by, trust=args.trust, version=args.version, bundle=args.bundle)
    proof = done.data.get("proof")
    warnings = list(done.warnings)
    code = EXIT_OK
    if proof is not None and not proof["verified"]:  # never "applied" without the proof (exit 3)
        code = EXIT_FEATURE
        warnings.append(f"enforce apply: the enforcer is attached but NOT proven to run: {proof['why']}; it stays "
                        "attached (lockdownctl enforce remove detaches it)"
                        + ("; the seal was not applied" if done.data["policy"].get("seal") else ""))
    elif done.data.get("bundle", {}).get("state") in ("refused", "not-applied"):
        code = EXIT_FINDINGS  # the boot unit fails loudly; the sealed base policy stays
    return Result("enforce", done.data, _render_apply, code, warnings=warnings)


def _render_apply(data: dict[str, Any], s: Style) -> str:
    pol = data["policy"]
    action = {"dry-run": "would enforce (dry run, nothing changed)", "loaded": "loaded and attached",
              "replaced": "loaded and attached in place of the unsealed one",
              "resumed": "already attached and frozen by an interrupted apply --seal",
              "updated": "updated in place", "unchanged": "already enforced, unchanged"}[data["action"]]
    proof = data.get("proof")
    if proof is not None and not proof["verified"]:
        action = "attached, NOT proven to run (not applied)"
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
    for skipped in data.get("skipped", []):
        lines.append(f"Skipped:    {skipped}")
    if proof is not None and proof["method"] == "kernel-level":
        lines.append(f"Proof:      {proof['note']}")
    elif proof is not None:
        trig = proof["triggers"][-1] if proof["triggers"] else None
        how = f" after this process opened {trig['path']} ({trig['reason']})" if trig else ""
        word = s.good("runs") if proof["verified"] else s.bad("did not run")
        lines.append(f"Proof:      the program {word}: calls counted for this process {proof['calls_before']} -> "
                     f"{proof['calls_after']}{how}")
    if data.get("mounted_bpffs"):
        lines.append("Note:       mounted bpffs at /sys/fs/bpf for the pins")
    if data.get("seal"):
        lines.append(f"Sealed:     {s.bold('until reboot')} (nobody can lower or remove this policy now; "
                     "recovery: boot without it, see lockdownctl(8))")
    if data.get("signed"):
        sig = data["signed"]
        lines.append(f"Signed:     updates signed by key {sig['key_id']} only, version > {sig['version']} "
                     f"({sig['trust']} keyring{', weaker: root can clear it' if sig['trust'] == 'user' else ''})")
    elif data["policy"].get("seal") and data["action"] == "dry-run":
        lines.append("Sealed:     would be sealed until reboot")
    bundle = data.get("bundle")
    if bundle:
        said = {"absent": "none yet (the policy above alone)",
                "verified": f"version {bundle['version']} verified against the certificate (dry run: not applied)",
                "applied": f"version {bundle['version']} applied (verified here and by the kernel)",
                "refused": f"{s.bad('NOT applied')}: {bundle['why']}",
                "not-applied": s.bad("NOT applied")}[bundle["state"]]
        lines.append(f"Bundle:     {bundle['file']}: {said}")
    from ..protection import text

    return "\n".join(lines + text(data))


# --- status ------------------------------------------------------------------------


def _status(args: argparse.Namespace) -> Result:
    from ..bpf.enforcer import describe, require_root
    from ..output import Result

    require_root()
    data = describe()
    stale = [p["stale"] for p in data.get("paths", []) if p.get("stale")]  # a re-created debugfs file (#20)
    return Result("enforce", data, _render_status, warnings=[f"path exception no longer matches: {w}" for w in stale])


def _render_status(data: dict[str, Any], s: Style) -> str:
    if not data["loaded"]:
        if data.get("can_load"):
            return "Enforcer:   not loaded (lockdownctl enforce apply FILE loads it)"
        return f"Enforcer:   not loaded, and it cannot be loaded here: {data['why_not']}"
    lines = [f"Enforcer:   {s.good('loaded')} (pinned in {data['pin_dir']}, generation {data['generation']})",
             f"Policy:     {data['policy_file'] or '?'} (profile {data['profile'] or '?'}, mode {data['mode']}, "
             f"id {data['policy_id']}{', scoped to a cgroup' if data['scoped'] else ''})"]
    if data.get("state_note"):
        lines.append(f"State:      {s.warn(data['state_note'])}")
    if data.get("sealed"):
        lines.append(f"Sealed:     {s.bold('until reboot')}, since {data['sealed_at']}")
    if data.get("signed"):
        sig = data["signed"]
        refused = ", ".join(f"{n} {why}" for why, n in sig["refused"].items()) or "none"
        lines.append(f"Signed:     key {sig['key_id']}, version {sig['version']}, {sig['accepted']} update(s) "
                     f"accepted, refused: {refused}")
        lines.append(f"Anchor:     {sig['anchor_strength']}")
    denied = [r for r, v in data["verdicts"].items() if v == "deny"]
    lines.append(f"Denies:     {', '.join(denied) or '-'}")
    ex = ", ".join(f"{n} {k}" for k, n in data["exceptions"].items() if n)
    lines.append(f"Exceptions: {ex or '-'}")
    if data["counters"]:
        from ..output import table

        rows = [[r, str(c["denied"]), str(c["audited"]), str(c["excepted"])] for r, c in data["counters"].items()]
        lines.append(table(rows, ["REASON", "DENIED", "AUDITED", "EXCEPTED"], s.width))
    lines.append(f"Ring-buffer drops: {data['ring_buffer_drops']}")
    tamper = data.get("tamper")
    if tamper is not None:
        if tamper["by_rule"] is None:
            lines.append(f"Tamper attempts: unknown ({tamper['error']})")
        else:
            tried = {rule: n for rule, n in tamper["by_rule"].items() if n}
            total = sum(tried.values())
            shown = s.bad(str(total)) if total else s.good("0")
            lines.append(f"Tamper attempts: {shown} refused by the seal"
                         + (f" ({', '.join(f'{r} {n}' for r, n in tried.items())})" if tried else "")
                         + f", {tamper['dropped']} not recorded (ring buffer full)")
    return "\n".join(lines)


# --- events ------------------------------------------------------------------------


def _events(args: argparse.Namespace) -> Result:
    import json
    import signal
    import sys

    from ..bpf import libbpf
    from ..bpf.enforcer import Enforcer, require_root
    from ..errors import FeatureMissing
    from ..output import Result, write_stdout
    from ..reasons import catalogue

    require_root()
    enforcer = Enforcer.open_pinned()
    if enforcer is None:
        raise FeatureMissing("the enforcer is not loaded (lockdownctl enforce apply FILE loads it)")
    from ..bpf.decode import EventDecoder, TamperDecoder, open_tamper_events, render_event

    decoder = EventDecoder(catalogue())
    tamper = TamperDecoder(decoder)
    collected: list[dict[str, Any]] = []
    printed = [0]
    stop = False

    def emit(event: dict[str, Any], render: Any = render_event) -> None:
        printed[0] += 1
        if args.follow:
            write_stdout((json.dumps(event) if args.json else render(event)) + "\n")
        else:
            collected.append(event)

    def on_event(raw: bytes) -> None:
        emit(decoder.decode(raw))

    def on_tamper(raw: bytes) -> None:
        emit(tamper.decode(raw))

    def on_gate_event(raw: bytes) -> None:
        emit(gate.decode_event(raw), gate.render_event)

    def on_signal(_signo: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    from ..bpf import gate
    from ..state.pins import PIN_DIR

    ring = libbpf.RingBuffer(enforcer.fds["events"], on_event)
    others: list[Any] = []  # the seal's tamper records and a signed seal's update attempts
    fds: list[int] = []
    try:
        seal_fd = open_tamper_events()  # the seal's ring buffer, when sealed
        if seal_fd is not None:
            fds.append(seal_fd)
            others.append(libbpf.RingBuffer(seal_fd, on_tamper))
        if gate.pinned():  # a signed seal: its update attempts are events too
            gate_fd = libbpf.obj_get(os.path.join(PIN_DIR, gate.EVENTS))
            fds.append(gate_fd)
            others.append(libbpf.RingBuffer(gate_fd, on_gate_event))
        if args.follow:
            from ..output.progress import Progress

            progress = Progress("enforce events")
            progress.say("following the enforcer's events (Ctrl-C to stop)")
            signal.signal(signal.SIGINT, on_signal)
            signal.signal(signal.SIGTERM, on_signal)
            drops_before = enforcer.counters()[1]
            delivered = 0
            while not stop:
                delivered += ring.poll(200)
                for other in others:  # tamper and update attempts are rare: looked at every 200 ms
                    other.consume()
                write_stdout("", flush=True)  # once per batch: a flood is not one write(2) per event
            delivered += ring.consume()  # what was buffered when the signal came
            for other in others:
                other.consume()
            dropped = enforcer.counters()[1] - drops_before
            progress.interrupted(f"{printed[0]} event{'s' if printed[0] != 1 else ''} printed")
        else:
            ring.consume()
            for other in others:
                other.consume()
    finally:
        ring.close()
        for other in others:
            other.close()
        for fd in fds:
            os.close(fd)
        enforcer.close()
    if args.follow:
        sys.stdout.flush()
        # What a flood cost: every denial while following is a printed event or a drop.
        result = Result("enforce", {"delivered": delivered, "dropped": dropped}, lambda _d, _s: "")
        result.json_lines = True  # after JSON lines, the envelope is one line too
        return result
    collected.sort(key=lambda e: float(e["time"]))  # every ring uses bpf_ktime_get_ns()
    return Result("enforce", {"events": collected}, lambda d, _s: "\n".join(
        gate.render_event(e) if e.get("source") == "gate" else render_event(e) for e in d["events"]))


# --- update ------------------------------------------------------------------------


def _update(args: argparse.Namespace) -> Result:
    from ..bpf.enforcer import require_root
    from ..bpf.gate import update
    from ..output import Result

    if not args.dry_run:
        require_root()
    data = update(args.bundle, dry_run=args.dry_run)
    warnings = [f"accepted, but not saved for the next boot: {data['persist_error']}"] if data.get("persist_error") \
        else []
    return Result("enforce", data, lambda d, _s: (
        f"{d['bundle']}: version {d['version']} would be handed to the gate (dry run; active version "
        f"{d['previous_version']})" if d["dry_run"] else
        f"{d['bundle']}: applied, version {d['previous_version']} -> {d['active_version']}"
        + (f"; saved as {d['persisted']} for the next boot" if d.get("persisted") else "")), warnings=warnings)


# --- remove ------------------------------------------------------------------------


def _remove(args: argparse.Namespace) -> Result:
    from ..bpf.enforcer import Enforcer, remove_pins, require_root
    from ..output import Result
    from ..state.pins import PIN_DIR

    if args.dry_run:
        pins = sorted(os.listdir(PIN_DIR)) if os.path.isdir(PIN_DIR) else []
        return Result("enforce", {"dry_run": True, "would_remove": pins},
                      lambda d, _s: "would remove: " + (", ".join(d["would_remove"]) or "nothing (not loaded)"))
    require_root()
    enforcer = Enforcer.open_pinned()
    if enforcer is not None:
        from ..bpf import seal

        try:
            seal.refuse_if_sealed(enforcer)
        finally:
            enforcer.close()
    removed = remove_pins()
    return Result("enforce", {"removed": removed}, _render_remove)


def _render_remove(data: dict[str, Any], _s: Style) -> str:
    if not data["removed"]:
        return "not loaded: nothing to remove"
    return "removed " + ", ".join(data["removed"])
