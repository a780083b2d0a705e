"""The audit engine: checks, the expected-value grammar, combinators, verdicts.

Knowledge lives in checks.py (the catalogue); this module knows no kernel
option. A check is a condition tree whose leaves compare one fact (a kconfig
option, a command-line parameter, a sysctl, a runtime value) with an
expected value; ``any_of`` and ``all_of`` combine leaves and say which
operand decided. Evaluation is three-valued (Kleene): a leaf whose input is
not available is unknown, and a check that stays unknown is reported as
skipped, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..levels import LEVELS, level_rank

SOURCES = ("kconfig", "cmdline", "sysctl", "runtime")
RUNTIME_KEYS = ("level", "lsm", "secure_boot", "bpf_lsm")
GROUPS = ("lockdown", "equivalent", "sysctl", "enforcer", "site")
ALL_REASONS = "*"  # a check that stands for every reason up to its level (lockdown itself)

_NAME = {
    "kconfig": re.compile(r"CONFIG_[A-Za-z0-9_]+"),
    "cmdline": re.compile(r"[A-Za-z0-9_.]+"),
    "sysctl": re.compile(r"[a-z0-9_]+(?:\.[A-Za-z0-9_-]+)+"),
    "runtime": re.compile("|".join(RUNTIME_KEYS)),
}
_ID = re.compile(r"[a-z][a-z0-9_]*")
_LITERAL = re.compile(r"[A-Za-z0-9_.,/:+-]+")
_NUMBER = r"-?\d+"


class Facts(Protocol):
    """Where checks read their values from."""

    def lookup(self, source: str, name: str) -> Observation | None:
        """The observation, or None when this input is not available at all."""


@dataclass(frozen=True)
class Observation:
    value: str | None  # None: not set / absent in an input that was read
    where: str  # file:line, file, or the interface it came from


def normalize_name(source: str, name: str) -> str:
    name = name.strip()
    if source == "kconfig" and not name.startswith("CONFIG_"):
        name = "CONFIG_" + name
    if source == "cmdline":
        name = name.replace("-", "_")  # parameq(): the kernel treats - and _ alike
    return name


@dataclass(frozen=True)
class Expect:
    """A parsed expected value. Grammar (one of):

    ``is not set`` | ``is set`` | ``contains WORD`` | ``lacks WORD`` |
    ``at least LEVEL`` | ``>= N`` | ``<= N`` | ``> N`` | ``< N`` | ``N..M`` |
    ``one of A|B|...`` | a literal value (``y``, ``m``, ``1``, ``off``...).
    """

    text: str
    op: str
    args: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Expect:
        t = " ".join(str(text).split())
        if t in ("is not set", "is set"):
            return cls(t, t)
        if m := re.fullmatch(r"(contains|lacks) ([A-Za-z0-9_.-]+)", t):
            return cls(t, m.group(1), (m.group(2),))
        if m := re.fullmatch(r"at least (\w+)", t):
            if m.group(1) not in LEVELS:
                raise ValueError(f"expected value {t!r}: unknown level {m.group(1)!r} (valid: {', '.join(LEVELS)})")
            return cls(t, "at least", (m.group(1),))
        if m := re.fullmatch(rf"(>=|<=|>|<|==) ?({_NUMBER})", t):
            return cls(t, m.group(1), (m.group(2),))
        if m := re.fullmatch(rf"({_NUMBER})\.\.({_NUMBER})", t):
            if int(m.group(1)) > int(m.group(2)):
                raise ValueError(f"expected value {t!r}: empty range")
            return cls(t, "range", (m.group(1), m.group(2)))
        if m := re.fullmatch(r"one of ([A-Za-z0-9_.,/:+-]+(?:\|[A-Za-z0-9_.,/:+-]+)+)", t):
            return cls(t, "one of", tuple(m.group(1).split("|")))
        if _LITERAL.fullmatch(t) and not t.startswith(("is", "at", "contains", "lacks", "one")):
            return cls(t, "==", (t,)) if re.fullmatch(_NUMBER, t) else cls(t, "literal", (t,))
        raise ValueError(f"expected value {text!r} does not parse (valid: 'y', 'is not set', 'is set', "
                         "'contains WORD', 'lacks WORD', 'at least LEVEL', '>= N', 'N..M', 'one of A|B', a literal)")

    def test(self, value: str | None) -> bool:
        op, args = self.op, self.args
        unset = value is None or value == "n"
        if op == "is not set":
            return unset
        if op == "is set":
            return not unset
        if value is None:
            return op == "lacks"
        if op in ("contains", "lacks"):
            present = args[0] in re.split(r"[,\s]+", value)
            return present if op == "contains" else not present
        if op == "at least":
            return value in LEVELS and level_rank(value) >= level_rank(args[0])
        if op == "literal":
            return value == args[0]
        if op == "one of":
            return value in args
        number = _first_int(value)
        if number is None:
            return False
        if op == "range":
            return int(args[0]) <= number <= int(args[1])
        bound = int(args[0])
        return {">=": number >= bound, "<=": number <= bound, ">": number > bound,
                "<": number < bound, "==": number == bound}[op]

    def kconfig_value(self, current: str | None) -> str | None:
        """The assignment that satisfies this expectation (None: no single one)."""
        if self.op == "is not set":
            return "n"
        if self.op == "literal":
            return self.args[0]
        if self.op == "one of":
            return self.args[0]
        if self.op in ("==", ">=", "range"):
            return self.args[0]
        if self.op == "contains":
            word = self.args[0]
            rest = [w for w in (current or "").split(",") if w and w != word]
            return ",".join([word, *rest])  # first: LSM order is init order
        return None


def _first_int(value: str) -> int | None:
    token = value.split()[0] if value.split() else ""
    try:
        return int(token, 0)
    except ValueError:
        return None


def _show(value: str | None) -> str:
    if value is None or value == "n":
        return "is not set"
    return f"is {value!r}" if value else "is present"


# --- condition tree ---------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    ok: bool | None  # None: unknown (an input is missing)
    text: str  # one line: what was seen and why it decides
    leaves: tuple[dict[str, Any], ...] = ()


class Cond:
    """A leaf: one fact compared with an expected value."""

    def __init__(self, source: str, name: str, expected: str) -> None:
        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r} (valid: {', '.join(SOURCES)})")
        self.source = source
        self.name = normalize_name(source, name)
        if not _NAME[source].fullmatch(self.name):
            raise ValueError(f"{source} name {name!r} is not valid for that source")
        self.expect = Expect.parse(expected)

    def label(self) -> str:
        if self.source == "runtime":  # the running kernel's, or what an offline configuration implies
            return {"level": "lockdown level", "lsm": "LSM list", "secure_boot": "Secure Boot",
                    "bpf_lsm": "BPF LSM"}[self.name]
        return {"kconfig": self.name, "cmdline": f"{self.name}= on the command line",
                "sysctl": f"sysctl {self.name}"}[self.source]

    def describe(self) -> str:
        return f"{self.source} {self.name} {self.expect.text}"

    def evaluate(self, facts: Facts) -> Outcome:
        obs = facts.lookup(self.source, self.name)
        leaf: dict[str, Any] = {"source": self.source, "name": self.name, "expected": self.expect.text}
        if obs is None:
            leaf.update(actual=None, where=None, ok=None)
            return Outcome(None, f"{self.label()}: no {self.source} input", (leaf,))
        ok = self.expect.test(obs.value)
        leaf.update(actual=obs.value, where=obs.where, ok=ok)
        text = f"{self.label()} {_show(obs.value)} ({obs.where})"
        return Outcome(ok, text, (leaf,))

    def fix(self, facts: Facts) -> list[tuple[str, str]] | None:
        """Kconfig assignments (option, value) that make this leaf pass."""
        if self.source != "kconfig":
            return None
        obs = facts.lookup("kconfig", self.name)
        value = self.expect.kconfig_value(obs.value if obs else None)
        return None if value is None else [(self.name, value)]

    def leaves(self) -> list[Cond]:
        return [self]


class _Combinator:
    kind = ""

    def __init__(self, *operands: Node) -> None:
        if len(operands) < 2:
            raise ValueError(f"{self.kind} needs at least two operands")
        self.operands = operands

    def describe(self) -> str:
        return f"{self.kind}(" + ", ".join(o.describe() for o in self.operands) + ")"

    def leaves(self) -> list[Cond]:
        return [leaf for o in self.operands for leaf in o.leaves()]


class AnyOf(_Combinator):
    """Passes when one operand passes; that operand is what decided."""

    kind = "any_of"

    def evaluate(self, facts: Facts) -> Outcome:
        outs = [o.evaluate(facts) for o in self.operands]
        leaves = tuple(leaf for out in outs for leaf in out.leaves)
        for out in outs:
            if out.ok:
                return Outcome(True, out.text, leaves)
        unknown = [out for out in outs if out.ok is None]
        if unknown:
            failed = [out.text for out in outs if out.ok is False]
            text = "undecided: " + "; ".join(o.text for o in unknown)
            return Outcome(None, text + (" (and not: " + "; ".join(failed) + ")" if failed else ""), leaves)
        return Outcome(False, "none of: " + "; ".join(o.text for o in outs), leaves)

    def fix(self, facts: Facts) -> list[tuple[str, str]] | None:
        for operand in self.operands:  # the first operand with a kconfig fix is the preferred one
            if (fix := operand.fix(facts)) is not None:
                return fix
        return None


class AllOf(_Combinator):
    """Passes when every operand passes; the first failing operand decides."""

    kind = "all_of"

    def evaluate(self, facts: Facts) -> Outcome:
        outs = [o.evaluate(facts) for o in self.operands]
        leaves = tuple(leaf for out in outs for leaf in out.leaves)
        for out in outs:
            if out.ok is False:
                return Outcome(False, out.text, leaves)
        unknown = [out for out in outs if out.ok is None]
        if unknown:
            return Outcome(None, "; ".join(o.text for o in unknown), leaves)
        return Outcome(True, "all of: " + "; ".join(o.text for o in outs), leaves)

    def fix(self, facts: Facts) -> list[tuple[str, str]] | None:
        fixes: list[tuple[str, str]] = []
        for operand in self.operands:
            if operand.evaluate(facts).ok:
                continue
            fix = operand.fix(facts)
            if fix is None:
                return None
            fixes += fix
        return fixes


Node = Cond | AnyOf | AllOf


def any_of(*operands: Node) -> AnyOf:
    return AnyOf(*operands)


def all_of(*operands: Node) -> AllOf:
    return AllOf(*operands)


@dataclass(frozen=True)
class Check:
    """One audit check, validated when it is built."""

    id: str
    title: str
    cond: Node
    reasons: tuple[str, ...]  # reason ids of lockdownctl.reasons, or ("*",) for all
    effect: str  # kernel function or file that gives the setting its effect
    level: str = "integrity"  # lowest --target the check belongs to
    group: str = "equivalent"
    may_break: str = ""  # what users lose when they set it
    advisory: bool = False  # a failure warns but does not count for the exit code
    fix: tuple[str, ...] = ()  # Kconfig lines that pass it when the condition itself has no kconfig fix

    def __post_init__(self) -> None:
        if not _ID.fullmatch(self.id):
            raise ValueError(f"check id {self.id!r}: lowercase letters, digits and _ only")
        if self.level not in LEVELS[1:]:
            raise ValueError(f"check {self.id}: level {self.level!r} (valid: integrity, confidentiality)")
        if self.group not in GROUPS:
            raise ValueError(f"check {self.id}: group {self.group!r} (valid: {', '.join(GROUPS)})")
        if not self.reasons:
            raise ValueError(f"check {self.id}: names no lockdown reason")
        if not self.effect:
            raise ValueError(f"check {self.id}: says nothing about what gives it effect")


@dataclass
class CheckResult:
    check: Check
    verdict: str  # ok | fail | warn | skip
    outcome: Outcome
    reasons: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        c = self.check
        return {
            "id": c.id, "title": c.title, "verdict": self.verdict, "group": c.group, "level": c.level,
            "advisory": c.advisory, "rule": c.cond.describe(), "evidence": self.outcome.text,
            "leaves": list(self.outcome.leaves), "reasons": self.reasons, "effect": c.effect,
            "may_break": c.may_break,
        }


class ReasonBook(Protocol):
    """What the engine needs of the reason catalogue (lockdownctl.reasons.Catalogue)."""

    def find(self, key: str) -> Any: ...


def resolve_reasons(check: Check, book: ReasonBook, all_ids: Sequence[tuple[str, str, str]],
                    target: str) -> list[dict[str, str]]:
    """Reason records for a check; ``all_ids`` = (id, log, level) of every reason;
    ``*`` stands for every reason the target level denies."""
    if check.reasons == (ALL_REASONS,):
        rank = level_rank(target)
        return [{"id": i, "log": log} for i, log, lvl in all_ids if level_rank(lvl) <= rank]
    out = []
    for rid in check.reasons:
        reason = book.find(rid)
        if reason is None:
            raise ValueError(f"check {check.id}: unknown lockdown reason {rid!r}")
        out.append({"id": reason.id, "log": reason.log})
    return out


def verdict(check: Check, outcome: Outcome) -> str:
    if outcome.ok is None:
        return "skip"
    if outcome.ok:
        return "ok"
    return "warn" if check.advisory else "fail"


def evaluate(checks: Sequence[Check], facts: Facts, target: str) -> list[tuple[Check, Outcome, str]]:
    """Evaluate the checks that belong to ``target`` (their level is not above it)."""
    out = []
    for check in checks:
        if level_rank(check.level) > level_rank(target):
            continue
        outcome = check.cond.evaluate(facts)
        out.append((check, outcome, verdict(check, outcome)))
    return out


def fragment(checks: Sequence[Check], facts_with: Callable[[dict[str, str]], Facts],
             target: str) -> list[tuple[str, str, str]]:
    """(option, value, check id) assignments that make every non-advisory
    check that can be fixed in Kconfig pass; applied one at a time and
    re-evaluated, so a fix that satisfies later checks (a forced level)
    is not followed by needless ones. ``facts_with(assignments)`` gives the
    facts of a kernel built with those Kconfig assignments laid over the
    audited configuration."""
    assignments: dict[str, str] = {}
    out: list[tuple[str, str, str]] = []
    for _ in range(len(checks) + 1):
        overlay = facts_with(assignments)
        for check, outcome, _v in evaluate(checks, overlay, target):
            if outcome.ok or check.advisory:
                continue
            fix = check.cond.fix(overlay)
            if fix is None and check.fix:  # e.g. the level: a runtime fact that Kconfig can force
                fix = [parse_fragment_line(line) for line in check.fix]
            if not fix or all(assignments.get(k) == v for k, v in fix):
                continue
            for option, value in fix:
                assignments[option] = value
                out.append((option, value, check.id))
            break
        else:
            return out
    return out


def parse_fragment_line(line: str) -> tuple[str, str]:
    if m := re.fullmatch(r"# (CONFIG_\w+) is not set", line):
        return m.group(1), "n"
    option, _, value = line.partition("=")
    return option, value.strip('"')


def fragment_line(option: str, value: str) -> str:
    if value == "n":
        return f"# {option} is not set"
    if value in ("y", "m") or re.fullmatch(_NUMBER, value):
        return f"{option}={value}"
    return f'{option}="{value}"'
