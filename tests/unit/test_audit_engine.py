"""The audit engine with synthetic checks only (no catalogue entry, no kernel)."""

from __future__ import annotations

import pytest

from lockdownctl.audit.engine import (
    Check,
    Cond,
    Expect,
    Observation,
    all_of,
    any_of,
    evaluate,
    fragment,
    fragment_line,
)


class DictFacts:
    """Facts from a dict: (source, name) -> value; a missing source is unknown."""

    def __init__(self, values: dict[tuple[str, str], str | None], sources: tuple[str, ...] = ("kconfig",)) -> None:
        self.values = values
        self.sources = sources

    def lookup(self, source: str, name: str) -> Observation | None:
        if source not in self.sources:
            return None
        return Observation(self.values.get((source, name)), f"{source}-file:1")

    def with_assignments(self, assignments: dict[str, str]) -> DictFacts:
        values = dict(self.values)
        values.update({("kconfig", k): v for k, v in assignments.items()})
        return DictFacts(values, self.sources)


@pytest.mark.parametrize(("expected", "value", "ok"), [
    ("y", "y", True), ("y", "m", False), ("y", None, False),
    ("is not set", None, True), ("is not set", "n", True), ("is not set", "y", False),
    ("is set", "", True), ("is set", None, False),
    ("contains lockdown", "landlock,lockdown,bpf", True), ("contains lockdown", "lockdownx", False),
    ("lacks bpf", "lockdown", True), ("lacks bpf", None, True),
    ("at least integrity", "confidentiality", True), ("at least confidentiality", "integrity", False),
    ("at least integrity", "bogus", False),
    (">= 2", "3", True), (">= 2", "1", False), ("== 0", "0", True), ("1..2", "2", True), ("1..2", "0", False),
    ("== 4", "4\t4\t1\t7", True), ("< 1", "0x0", True), (">= 2", "off", False),
    ("one of 1|y|Y", "Y", True), ("one of 1|y|Y", "0", False), ("off", "off", True),
])
def test_expect_grammar(expected: str, value: str | None, ok: bool) -> None:
    assert Expect.parse(expected).test(value) is ok


@pytest.mark.parametrize("bad", ["is nt set", "at least max", "3..1", "contains", "", "y n"])
def test_expect_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        Expect.parse(bad)


def test_cond_validates_source_and_name() -> None:
    with pytest.raises(ValueError, match="unknown source"):
        Cond("proc", "x", "y")
    with pytest.raises(ValueError, match="not valid"):
        Cond("sysctl", "no dots", "1")
    assert Cond("kconfig", "DEVMEM", "y").name == "CONFIG_DEVMEM"
    assert Cond("cmdline", "module-sig_enforce", "1").name == "module_sig_enforce"


def _check(cond: Cond | object, **kw: object) -> Check:
    base: dict[str, object] = {"id": "c", "title": "t", "cond": cond, "reasons": ("dev_mem",), "effect": "e.c f()"}
    base.update(kw)
    return Check(**base)  # type: ignore[arg-type]


def test_check_validates_itself() -> None:
    with pytest.raises(ValueError, match="lowercase"):
        _check(Cond("kconfig", "A", "y"), id="Bad-Id")
    with pytest.raises(ValueError, match="level"):
        _check(Cond("kconfig", "A", "y"), level="none")
    with pytest.raises(ValueError, match="no lockdown reason"):
        _check(Cond("kconfig", "A", "y"), reasons=())
    with pytest.raises(ValueError, match="effect"):
        _check(Cond("kconfig", "A", "y"), effect="")
    with pytest.raises(ValueError, match="two operands"):
        any_of(Cond("kconfig", "A", "y"))


def test_any_of_names_the_operand_that_decided() -> None:
    cond = any_of(Cond("runtime", "level", "at least integrity"), Cond("kconfig", "A", "is not set"))
    facts = DictFacts({("kconfig", "CONFIG_A"): None, ("runtime", "level"): "none"}, ("kconfig", "runtime"))
    out = cond.evaluate(facts)
    assert out.ok is True and out.text.startswith("CONFIG_A is not set")
    facts.values[("kconfig", "CONFIG_A")] = "y"
    out = cond.evaluate(facts)
    assert out.ok is False and out.text.startswith("none of: lockdown level is 'none'")
    assert [leaf["ok"] for leaf in out.leaves] == [False, False]


def test_three_valued_logic() -> None:
    unknown = Cond("sysctl", "kernel.x", "== 1")  # no sysctl input in these facts
    yes, no = Cond("kconfig", "A", "y"), Cond("kconfig", "B", "y")
    facts = DictFacts({("kconfig", "CONFIG_A"): "y"})
    assert any_of(unknown, yes).evaluate(facts).ok is True
    assert any_of(unknown, no).evaluate(facts).ok is None
    assert all_of(unknown, no).evaluate(facts).ok is False
    assert all_of(unknown, yes).evaluate(facts).ok is None
    assert all_of(yes, any_of(no, yes)).evaluate(facts).ok is True


def test_verdicts_and_target_filter() -> None:
    checks = [
        _check(Cond("kconfig", "A", "y"), id="passes"),
        _check(Cond("kconfig", "B", "y"), id="fails"),
        _check(Cond("kconfig", "B", "y"), id="warns", advisory=True),
        _check(Cond("sysctl", "kernel.x", "1"), id="skips"),
        _check(Cond("kconfig", "B", "y"), id="conf_only", level="confidentiality"),
    ]
    facts = DictFacts({("kconfig", "CONFIG_A"): "y"})
    got = {c.id: v for c, _o, v in evaluate(checks, facts, "integrity")}
    assert got == {"passes": "ok", "fails": "fail", "warns": "warn", "skips": "skip"}
    assert "conf_only" in {c.id for c, _o, _v in evaluate(checks, facts, "confidentiality")}


def test_fragment_fixes_and_stops_when_a_fix_covers_the_rest() -> None:
    level_fix = ("CONFIG_FORCE=y", "# CONFIG_NONE is not set")

    class LevelFacts(DictFacts):
        def lookup(self, source: str, name: str) -> Observation | None:
            if source == "runtime":  # the level follows CONFIG_FORCE, like derive_level
                return Observation("integrity" if self.values.get(("kconfig", "CONFIG_FORCE")) == "y" else "none",
                                   "derived")
            return super().lookup(source, name)

        def with_assignments(self, assignments: dict[str, str]) -> LevelFacts:
            values = dict(self.values)
            values.update({("kconfig", k): v for k, v in assignments.items()})
            return LevelFacts(values)

    checks = [
        _check(Cond("runtime", "level", "at least integrity"), id="level", fix=level_fix),
        _check(any_of(Cond("runtime", "level", "at least integrity"), Cond("kconfig", "DEVMEM", "is not set")),
               id="devmem"),
        _check(any_of(Cond("kconfig", "LSM", "contains lockdown"), Cond("kconfig", "EARLY", "y")), id="lsm"),
        _check(Cond("kconfig", "X", "y"), id="advice", advisory=True),
        _check(Cond("sysctl", "kernel.y", "1"), id="sysctl_only"),
    ]
    facts = LevelFacts({("kconfig", "CONFIG_DEVMEM"): "y", ("kconfig", "CONFIG_LSM"): "landlock,yama"})
    got = fragment(checks, facts.with_assignments, "integrity")
    assert got == [("CONFIG_FORCE", "y", "level"), ("CONFIG_NONE", "n", "level"),
                   ("CONFIG_LSM", "lockdown,landlock,yama", "lsm")]
    assert [fragment_line(o, v) for o, v, _c in got] == [
        "CONFIG_FORCE=y", "# CONFIG_NONE is not set", 'CONFIG_LSM="lockdown,landlock,yama"']
