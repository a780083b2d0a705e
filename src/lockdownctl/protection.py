"""What a policy really protects, against root: the bypass graph of the catalogue
applied to a parsed policy.

The kernel's lockdown maintainers refused per-reason lockdown because "most
lockdown-reasons can be bypassed if used independently" (Nicolas Bouchinet,
LSM list, August 2025, kernsec.org LSM archive 2025-August/052222.html):
allowing one reason that writes kernel memory (an unsigned module, /dev/mem,
an MSR, kexec...) lets root undo every other denial, and allowing one that
reads kernel memory (kprobes, /proc/kcore...) undoes confidentiality. The
catalogue (``Reason.defeats``, ``Reason.route``) records which reason does
what; this module says, per subject, whether the policy's claims hold.

Subjects are "everyone" (any root process) and each exception. Root can take
every exception: uid exceptions by setuid(), comm exceptions by
prctl(PR_SET_NAME), cgroup exceptions by writing cgroup.procs, executable
exceptions by ptrace or by rewriting the file; so everyone's routes include
every exception's grants, each labelled with who holds it. An exception's own
line counts what it holds without borrowing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .levels import level_rank

if TYPE_CHECKING:  # explain and check read exposure() without the YAML policy reader
    from .policy import Policy, PolicyException
    from .reasons import Catalogue, Reason

CLASSES = ("integrity", "confidentiality")
OBJECTION = ("the lockdown maintainers' objection to per-reason lockdown: \"most lockdown-reasons can be "
             "bypassed if used independently\" (LSM list, August 2025)")

# How root takes an exception that is not its own (the kernel matches these at the call site).
WIDENS = {
    "uid": "any root process can become uid {value} (setuid(), CAP_SETUID)",
    "comm": "any process can name itself {value} (prctl(PR_SET_NAME)): comm is chosen by the caller",
    "cgroup": "root can move any process into cgroup {value} (write its cgroup.procs)",
}
PATH_REACH = ("the file, not its opener, is exempted: any root process may open {value}, and that file only "
              "(matched by inode, for the debugfs check of that one open)")
ROOT_UID = "every root process runs as uid 0"
BORROW_EXE = ("root can still borrow it by ptrace-attaching to {value} or rewriting the file (a read-only, "
              "verity-protected /usr and kernel.yama.ptrace_scope=3 close that)")


def subject_label(exc: PolicyException) -> str:
    who = f"{exc.kind} {exc.value}"
    return f"exception {exc.name} ({who})" if exc.name else f"exception {who}"


def sound_path(exc: PolicyException) -> str:
    """For a path exception whose file the kernel also offers with no lockdown
    check (its procfs twin): that twin; exempting it gives root nothing new."""
    from .reasons import DEBUGFS_UNGATED_TWIN

    return DEBUGFS_UNGATED_TWIN.get(str(exc.value), "") if exc.kind == "path" else ""


def grantee_text(exc: PolicyException) -> str:
    """'allowed to ...' for one exception, saying when it is everyone's."""
    if exc.kind == "path":
        twin = sound_path(exc)
        return (f"allowed for opens of {exc.value} only" + (
            f" (sound: the kernel offers the same file as {twin} with no lockdown check)" if twin else
            ", by any process (a debugfs file with write access may reach hardware)"))
    if exc.kind == "exe":
        return f"allowed to {exc.value}"
    if exc.kind == "uid" and str(exc.value) in ("0", "root"):
        return "allowed to uid 0, i.e. every root process"
    if exc.kind == "cgroup":
        return f"allowed to cgroup {exc.value}, which root can join"
    return f"allowed to {exc.kind} {exc.value}, i.e. to any root process"


def analyse(policy: Policy, cat: Catalogue, kernel_level: str | None = None) -> dict[str, Any]:
    """The effective protection graph of ``policy`` on the kernel of ``cat``.

    ``kernel_level``: the kernel's own lockdown level when known (enforce apply);
    what it denies is denied to everyone whatever the policy says. None: the
    policy alone (the enforcer's case: the kernel at none).
    """
    from .policy import verdicts

    reasons = {r.id: r for r in cat.reasons}
    table = verdicts(policy, cat)
    kernel_rank = level_rank(kernel_level) if kernel_level in ("none", "integrity", "confidentiality") else 0
    by_kernel = {rid for rid in table if kernel_rank and level_rank(reasons[rid].level) <= kernel_rank}
    enforcing = policy.mode == "enforce"

    def denied_to_all(rid: str) -> bool:
        return rid in by_kernel or (enforcing and table[rid] == "deny")

    # grants: reason -> [(grantee key, text)]; "everyone" grants are reasons the policy lets through
    grants: dict[str, list[tuple[str, str]]] = {}
    for rid, verdict in table.items():
        if not denied_to_all(rid):
            how = "audited, not denied" if enforcing and verdict == "audit" else (
                "allowed (mode audit)" if not enforcing else "allowed")
            grants.setdefault(rid, []).append(("everyone", how))
    if policy.scope_cgroup:
        for rid in table:
            if rid not in by_kernel and denied_to_all(rid):
                grants.setdefault(rid, []).append(("outside-scope", f"allowed outside cgroup {policy.scope_cgroup}"))
    keys = []
    sound: set[str] = set()  # exceptions that open no route (path exceptions for a file with an ungated twin)
    for index, exc in enumerate(policy.exceptions):
        key = f"exception:{index}"
        keys.append(key)
        if sound_path(exc):
            sound.add(key)
        for rid in exc.allow:
            # the kernel's own denials come first; what everyone has, an exception does not add
            if rid in table and rid not in by_kernel and denied_to_all(rid):
                grants.setdefault(rid, []).append((key, grantee_text(exc)))

    def state(cls: str, denied: set[str], routes: list[dict[str, Any]]) -> dict[str, Any]:
        claimed = sorted(rid for rid in denied if reasons[rid].level == cls)
        if not claimed:
            why = "mode audit: nothing is denied" if not enforcing and not by_kernel else f"no {cls} reason is denied"
            return {"state": "not claimed", "why": why, "routes": []}
        return {"state": "bypassable" if routes else "holds", "routes": routes}

    def routes_for(cls: str, allowed: dict[str, list[tuple[str, str]]]) -> list[dict[str, Any]]:
        out = []
        for rid in table:  # enum order: stable
            given = [(k, t) for k, t in allowed.get(rid, []) if k not in sound]
            if given and cls in reasons[rid].defeats:
                out.append({"reason": rid, "granted_to": [k for k, _t in given],
                            "granted": [t for _k, t in given],
                            "how": "kernel write" if "integrity" in reasons[rid].defeats else "kernel read"})
        return out

    everyone_denied = {rid for rid in table if denied_to_all(rid)}
    subjects: list[dict[str, Any]] = [{
        "id": "everyone", "label": "everyone", "kind": None, "value": None, "line": None,
        "widens": None,
        **{cls: state(cls, everyone_denied, routes_for(cls, grants)) for cls in CLASSES},
    }]
    for index, exc in enumerate(policy.exceptions):
        own = {rid for rid in exc.allow if rid in table and rid not in by_kernel}
        denied = everyone_denied - own
        held = {rid: [(k, t) for k, t in g if k == "everyone"] for rid, g in grants.items()}
        for rid in own:
            held.setdefault(rid, []).append((keys[index], "allowed to it"))
        widens = (ROOT_UID if exc.kind == "uid" and str(exc.value) in ("0", "root")
                  else PATH_REACH.format(value=exc.value) if exc.kind == "path"
                  else WIDENS.get(exc.kind, BORROW_EXE).format(value=exc.value))
        subjects.append({
            "id": keys[index], "label": subject_label(exc), "kind": exc.kind, "value": exc.value,
            "line": exc.line, "widens": widens,
            **{cls: state(cls, denied, routes_for(cls, held)) for cls in CLASSES},
        })
    graph: dict[str, Any] = {
        "against": "root",
        "kernel_level": kernel_level,
        "mode": policy.mode,
        "grants": [{"reason": rid, "defeats": list(reasons[rid].defeats), "route": reasons[rid].route,
                    "checked_in": reasons[rid].checked_in, "granted_to": [k for k, _t in grants[rid]]}
                   for rid in table if rid in grants],
        "sound": sorted(sound),  # exceptions that give root no route (path exceptions with an ungated twin)
        "subjects": subjects,
    }
    graph["warnings"] = _warnings(policy, reasons, subjects, everyone_denied, by_kernel)
    return graph


def _warnings(policy: Policy, reasons: dict[str, Reason], subjects: list[dict[str, Any]],
              everyone_denied: set[str], by_kernel: set[str]) -> list[str]:
    out = []
    src = policy.source

    def claimed(denied: set[str], cls: str) -> list[str]:
        return sorted(rid for rid in denied if reasons[rid].level == cls)

    # everyone: a class the policy claims for everyone, undone by what it lets everyone do
    for cls in CLASSES:
        denied_cls = claimed(everyone_denied, cls)
        for route in subjects[0][cls]["routes"] if denied_cls else []:
            for key, text in zip(route["granted_to"], route["granted"], strict=True):
                if key == "everyone":
                    out.append(f"{src}: {cls} is claimed for everyone ({len(denied_cls)} {cls} reasons denied) but "
                               f"{route['reason']} is {text}: {_route_short(reasons[route['reason']])}, so "
                               f"every {cls} denial is advisory ({OBJECTION})")
    outside = [r["reason"] for r in subjects[0]["integrity"]["routes"] if "outside-scope" in r["granted_to"]]
    if outside and claimed(everyone_denied, "integrity"):
        out.append(f"{src}: the policy is scoped to cgroup {policy.scope_cgroup}: root outside it keeps "
                   f"{_few(outside)}, each a kernel write that undoes every denial inside it")
    for index, exc in enumerate(policy.exceptions):
        where = f"{src}:{exc.line}"
        label = subjects[index + 1]["label"]
        own = [rid for rid in exc.allow if rid not in by_kernel and rid in reasons]
        routed = [rid for rid in own if reasons[rid].defeats]
        # cross-class: confidentiality denied to this subject while a kernel write is allowed to it
        conf = claimed(everyone_denied - set(own), "confidentiality")
        writes = [rid for rid in own if "integrity" in reasons[rid].defeats]
        if conf and writes and exc.kind == "exe":
            out.append(f"{where}: {label} is denied {len(conf)} confidentiality reasons but allowed {_join(writes)}: "
                       f"{_route_short(reasons[writes[0]])}, so its confidentiality denials are advisory "
                       f"({OBJECTION})")
        if exc.kind == "path" and not sound_path(exc):
            out.append(f"{where}: {label} exempts {exc.value} for every opener: lockdownctl knows no ungated "
                       "twin of it, and a debugfs file with write access may reach hardware and so kernel "
                       "memory; it counts as a route for debugfs")
        if exc.kind in WIDENS and routed:
            reach = subjects[index + 1]["widens"]
            out.append(f"{where}: {label} is everyone's: {reach}; it hands "
                       f"{_join(routed)} to every root process (use exe: PATH, the narrowest exception)")
        for rid in own:
            reason = reasons[rid]
            if reason.checked_in != "requester":
                some = "some of its checks run" if reason.checked_in == "partly" else "the kernel checks it"
                out.append(f"{where}: {label} targets {rid}, but {some} where the requesting program is not "
                           f"current: {reason.context}")
    return out


def _few(ids: list[str], limit: int = 3) -> str:
    return ", ".join(ids[:limit]) + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _route_short(reason: Reason) -> str:
    what = "writes kernel memory" if "integrity" in reason.defeats else "reads kernel memory"
    return f"{reason.id} {what}"


def exposure(reason: Reason) -> str:
    """What allowing ``reason`` lets root defeat, one sentence (explain, check)."""
    if "integrity" in reason.defeats:
        return ("lets root defeat integrity and confidentiality (a kernel write: every other denial becomes "
                f"advisory): {reason.route}")
    if reason.defeats:
        return ("lets root defeat confidentiality (a kernel read: every confidentiality denial becomes "
                f"advisory): {reason.route}")
    return f"lets root defeat no other protection: {reason.route}"


def path_exposure(path: str) -> str:
    """What a path exception for ``path`` exposes, one sentence (check)."""
    from .reasons import DEBUGFS_UNGATED_TWIN

    twin = DEBUGFS_UNGATED_TWIN.get(path)
    if twin:
        return (f"exempts only {path}, which the kernel also offers as {twin} with no lockdown check: no route "
                "to any other protection (needs the kernel at none and the enforcer as the whole policy)")
    return (f"exempts only {path}, for any opener: a debugfs file with write access may reach hardware and so "
            "kernel memory (needs the kernel at none and the enforcer as the whole policy)")


def checked_in_text(reason: Reason) -> str:
    """Why an exception by program cannot (fully) target ``reason``; '' when it can."""
    if reason.checked_in == "elsewhere":
        return f"not in the requesting program, so an exception by program cannot target it: {reason.context}"
    if reason.checked_in == "partly":
        return f"partly not in the requesting program, so an exception by program misses those checks: {reason.context}"
    return ""


def render(graph: dict[str, Any], indent: str = "") -> list[str]:
    """Text lines: one per subject and protection class, then how exceptions widen."""
    lines = [f"{indent}Effective protection against root" + (
        f" (kernel at {graph['kernel_level']})" if graph["kernel_level"] else " (the policy alone, kernel at none)")
        + ":"]
    for subject in graph["subjects"]:
        lines.append(f"{indent}  {subject['label']}:")
        for cls in CLASSES:
            lines.append(f"{indent}    {cls}: {state_text(subject[cls])}")
        if subject["widens"]:
            lines.append(f"{indent}    reach: {subject['widens']}")
    return lines


def state_text(entry: dict[str, Any]) -> str:
    if entry["state"] == "not claimed":
        return f"not claimed ({entry['why']})"
    if entry["state"] == "holds":
        return "holds"
    groups: dict[str, list[str]] = {}  # reasons granted alike are named together
    for route in entry["routes"]:
        groups.setdefault("; ".join(route["granted"]), []).append(route["reason"])
    return "bypassable through " + _join([f"{_join(ids)} ({granted})" for granted, ids in groups.items()])


def attach(data: dict[str, Any], policy: Policy, cat: Catalogue, kernel_level: str | None = None,
           strict: bool = False) -> tuple[list[str], int]:
    """Add the graph to a verb's result data: (the graph's warnings, exit code: 1 when
    ``strict`` and the policy or the graph has any warning, else 0)."""
    graph = analyse(policy, cat, kernel_level)
    data["protection"] = graph
    refused = strict and bool(policy.warnings or graph["warnings"])
    if strict:
        data["refused"] = refused
    return list(graph["warnings"]), 1 if refused else 0


def text(data: dict[str, Any], indent: str = "") -> list[str]:
    """The lines a verb prints for :func:`attach`'s data."""
    lines = render(data["protection"], indent)
    if data.get("refused"):
        count = len(data["protection"]["warnings"])
        lines.append(f"{indent}refused (--strict): the policy has warnings ({count} about its protection)")
    return lines
