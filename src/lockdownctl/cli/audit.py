"""``lockdownctl audit``: kernel config, command line and sysctls against a lockdown target."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import EXIT_FINDINGS, EXIT_OK, EXIT_UNDECIDED
from ..output import Result, Style, table

if TYPE_CHECKING:
    import argparse

# What each source of facts is, and how to give it (for "nothing could be checked").
MISSING = {
    "kconfig": "kernel config (--config FILE, or /proc/config.gz or /boot/config-RELEASE in the root)",
    "cmdline": "kernel command line (--cmdline or --uki, or /proc/cmdline in the root)",
    "sysctl": "sysctl values (--sysctl FILE with the output of sysctl -a, or /proc/sys in the root)",
    "runtime": "the running kernel (securityfs for level and LSM list, which a kernel config can stand in for; "
               "a trial load for the BPF LSM, which nothing can)",
}

# The check an audit is about: is lockdown enforced at the target (audit/checks.py).
# Other checks passing cannot make up for it being undecided.
LEVEL_CHECK = "lockdown_level"

SHOW = {"fail": ("fail", "warn"), "ok": ("ok",), "all": ("ok", "fail", "warn", "skip")}


ONE_SHOT = True  # bounded work, then exit: no cyclic GC needed (cli.entry)


def _count(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", choices=("integrity", "confidentiality"), default="integrity",
                        help="the level to audit for (default integrity)")
    parser.add_argument("--show", choices=tuple(SHOW), default="all",
                        help="which checks to list: fail (failures and warnings), ok, or all (default)")
    parser.add_argument("--threshold", type=_count, default=0, metavar="N",
                        help="exit 1 only when more than N checks fail (default 0)")
    parser.add_argument("--rules", metavar="FILE", help="YAML rules that add, override or skip checks")
    parser.add_argument("--fragment", action="store_true",
                        help="print a Kconfig fragment that makes a kernel built with it pass")
    offline = parser.add_argument_group("offline inputs (any of them: audit only these files, read nothing live)")
    offline.add_argument("--config", metavar="FILE", help="kernel config, plain or .gz")
    offline.add_argument("--cmdline", metavar="STRING|FILE", help="kernel command line, or a file holding it")
    offline.add_argument("--uki", metavar="FILE", help="unified kernel image: audit its .cmdline section")
    offline.add_argument("--sysctl", metavar="FILE", help="output of sysctl -a")


def run(args: argparse.Namespace) -> Result:
    from ..audit import checks as catalogue_checks
    from ..audit import engine
    from ..audit.inputs import AuditFacts, derive_level, gather
    from ..reasons import TABLE, merge

    book = merge(None)
    inputs = gather(args.root, args.config, args.cmdline, args.uki, args.sysctl)
    checks = catalogue_checks.checks(args.target)
    if args.rules:
        from ..audit.rules import apply, load_rules

        rules = load_rules(args.rules, {c.id for c in checks}, lambda rid: book.find(rid) is not None)
        checks = apply(rules, checks, args.rules)
    facts = AuditFacts(inputs)
    all_ids = [(r.id, r.log, r.level) for r in TABLE]
    evaluated = engine.evaluate(checks, facts, args.target)
    results = []
    for check, outcome, verdict in evaluated:
        try:
            reasons = engine.resolve_reasons(check, book, all_ids, args.target)
        except ValueError as exc:
            from ..errors import InputError

            raise InputError(str(exc)) from None
        results.append(engine.CheckResult(check, verdict, outcome, reasons).to_dict())
    counts = {v: sum(1 for r in results if r["verdict"] == v) for v in ("ok", "fail", "warn", "skip")}
    # Sources that left a check undecided: the input that was not there at all.
    missing = sorted({leaf["source"] for r in results if r["verdict"] == "skip" for leaf in r["leaves"]
                      if leaf["ok"] is None and leaf["where"] is None}, key=tuple(MISSING).index)
    decided = counts["ok"] + counts["fail"] + counts["warn"]
    failed = counts["fail"] > args.threshold
    level_skipped = any(r["id"] == LEVEL_CHECK and r["verdict"] == "skip" for r in results)
    undecided = not failed and (decided == 0 or level_skipped)
    passed = not failed and not undecided
    named = {rid for c, _o, _v in evaluated for rid in c.reasons}
    uncovered = [r.id for r in TABLE if r.level == "integrity" or args.target == "confidentiality"]
    uncovered = [rid for rid in uncovered if rid not in named]

    level_obs = facts.lookup("runtime", "level")
    if inputs.status is not None and inputs.runtime and "level" in inputs.runtime:
        src = inputs.status["source"]
        lockdown = {"level": level_obs.value if level_obs else None, "source": src["kind"],
                    "detail": src["detail"], "where": level_obs.where if level_obs else None,
                    "evidence": src["evidence"]}
    else:
        obs, kind, detail = derive_level(facts)
        lockdown = {"level": obs.value if obs else None, "source": kind, "detail": detail,
                    "where": obs.where if obs else None, "evidence": []}
    data: dict[str, Any] = {
        "target": args.target,
        "lockdown": lockdown,
        "inputs": inputs.describe,
        "summary": {**counts, "threshold": args.threshold, "passed": passed, "decided": decided,
                    "undecided": undecided, "level_decided": not level_skipped},
        "missing_inputs": [{"source": m, "what": MISSING[m]} for m in missing],
        "checks": [r for r in results if r["verdict"] in SHOW[args.show]],
        "uncovered_reasons": uncovered,
        "notes": inputs.notes,
    }
    if args.fragment:
        assignments = engine.fragment(checks, facts.with_assignments, args.target)
        data["fragment"] = [{"option": o, "value": v, "line": engine.fragment_line(o, v), "check": c}
                            for o, v, c in assignments]
        after = engine.evaluate(checks, facts.with_assignments({o: v for o, v, _c in assignments}), args.target)
        data["fragment_leaves_failing"] = [c.id for c, _o, v in after if v == "fail"]
        return Result("audit", data, render_fragment, EXIT_OK)
    if undecided:  # an audit of nothing, or without the level, is not a pass
        return Result("audit", data, render, EXIT_UNDECIDED)
    return Result("audit", data, render, EXIT_OK if passed else EXIT_FINDINGS)


_SOURCE_TEXT = {
    "kconfig": "forced by kernel configuration",
    "cmdline": "set on the kernel command line",
    "secure_boot": "set by the distribution's Secure Boot patch",
    "securityfs": "raised at run time through securityfs",
    "none": "not locked down",
    "lsm-inactive": "not enforced",
    "unknown": "unknown",
}


def render(data: dict[str, Any], s: Style) -> str:
    ld = data["lockdown"]
    level = ld["level"] or "unknown"
    why = _SOURCE_TEXT.get(ld["source"], ld["source"])
    if ld["detail"] and ld["source"] not in ("unknown",):
        why += f" ({ld['detail']})"
    inputs = ", ".join(f"{k} {v}" for k, v in data["inputs"].items() if v)
    lines = [f"Target:    {data['target']}", f"Lockdown:  {s.bold(level)}, {why}", f"Inputs:    {inputs or 'none'}", ""]
    paint = {"ok": s.good, "fail": s.bad, "warn": s.warn, "skip": s.dim}
    rows = []
    for r in data["checks"]:
        reasons = "all" if len(r["reasons"]) > 3 else ",".join(x["id"] for x in r["reasons"])
        rows.append([r["verdict"].upper(), r["id"], reasons, r["evidence"]])
    if rows:
        text = table(rows, ["VERDICT", "CHECK", "REASONS", "EVIDENCE"], s.width, free=(2, 3))
        for verdict, colour in paint.items():  # colour the first column only
            text = "\n".join(colour(ln[:7]) + ln[7:] if ln.startswith(verdict.upper()) else ln
                             for ln in text.splitlines())
        lines.append(text)
    if data["uncovered_reasons"]:
        lines.append(s.dim("no build-time equivalent (only lockdown itself or the enforcer guards): "
                           + ", ".join(data["uncovered_reasons"])))
    for note in data["notes"]:
        lines.append(s.dim(f"note: {note}"))
    sm = data["summary"]
    missing = [m["what"] for m in data["missing_inputs"]]
    if sm["undecided"]:
        what = "no check could be decided" if not sm["decided"] else "the lockdown level could not be decided"
        lines.append(s.bad(f"{what}: missing " + "; ".join(missing or ["every input"])))
        done = ("nothing could be checked" if not sm["decided"] else
                f"lockdown level unknown ({sm['ok']} ok, {sm['fail']} failed, {sm['warn']} warnings)")
        lines.append(f"Result:    {s.bad('UNDECIDED')}: {done}, {sm['skip']} skipped (no input); not a pass")
        return s.fit(lines)
    if missing and sm["skip"]:
        lines.append(s.dim("skipped for lack of: " + "; ".join(missing)))
    verdict = s.good("PASS") if sm["passed"] else s.bad("FAIL")
    lines.append(f"Result:    {verdict}: {sm['ok']} ok, {sm['fail']} failed, {sm['warn']} warnings, "
                 f"{sm['skip']} skipped (no input); threshold {sm['threshold']}")
    return s.fit(lines)


def render_fragment(data: dict[str, Any], s: Style) -> str:
    lines = [f"# lockdownctl audit --target {data['target']} --fragment"]
    last = None
    for item in data["fragment"]:
        if item["check"] != last:  # Kconfig has no trailing comments: say why on the line before
            lines.append(f"# {item['check']}")
            last = item["check"]
        lines.append(item["line"])
    if data["fragment_leaves_failing"]:
        lines.append("# not fixable in Kconfig (command line, sysctl or running kernel): "
                     + ", ".join(data["fragment_leaves_failing"]))
    return "\n".join(lines)
