"""``--rules FILE``: a YAML file that adds, overrides or skips audit checks.

    version: 1
    skip: [strict_devmem]                  # check ids
    override:
      sysctl_perf_event_paranoid: {expected: ">= 3", advisory: false}
    checks:
      - id: site_no_kprobes
        title: no kprobes on our fleet
        source: kconfig                     # a leaf ...
        name: CONFIG_KPROBES
        expected: is not set
        # ... or any_of / all_of: a list of {source, name, expected} or nested any_of/all_of
        reasons: [kprobes]
        effect: kernel/trace/trace_kprobe.c
        level: integrity                    # optional; integrity (default) or confidentiality
        advisory: false                     # optional
        may_break: bpftrace kprobes         # optional

Errors name the file and line (PyYAML node marks); duplicate keys are errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from ..errors import InputError
from ..levels import LEVELS
from ..yamldoc import compose
from .engine import AllOf, AnyOf, Check, Cond, Node

_TOP = ("version", "skip", "override", "checks")
_OVERRIDE = ("expected", "advisory", "level", "title", "may_break")
_CHECK = ("id", "title", "source", "name", "expected", "any_of", "all_of", "reasons", "effect", "level",
          "advisory", "may_break")
_COND = ("source", "name", "expected", "any_of", "all_of")


@dataclass
class Rules:
    skip: list[str] = field(default_factory=list)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    added: list[Check] = field(default_factory=list)


class _Reader:
    def __init__(self, path: str) -> None:
        self.path = path

    def error(self, node: yaml.Node, message: str) -> InputError:
        return InputError(f"{self.path}:{node.start_mark.line + 1}: {message}")

    def mapping(self, node: yaml.Node, what: str, allowed: tuple[str, ...]) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, f"{what} must be a mapping")
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key, value in node.value:
            name = self.scalar(key, f"a key of {what}")
            if name in out:
                raise self.error(key, f"duplicate key {name!r} in {what} (first on line "
                                 f"{out[name][0].start_mark.line + 1})")
            if name not in allowed:
                raise self.error(key, f"unknown key {name!r} in {what} (valid: {', '.join(allowed)})")
            out[name] = (key, value)
        return out

    def scalar(self, node: yaml.Node, what: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.tag == "tag:yaml.org,2002:null":
            raise self.error(node, f"{what} must be a single value")
        return str(node.value)

    def boolean(self, node: yaml.Node, what: str) -> bool:
        if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:bool":
            raise self.error(node, f"{what} must be true or false")
        return bool(yaml.safe_load(yaml.serialize(node)))

    def strings(self, node: yaml.Node, what: str) -> list[tuple[yaml.Node, str]]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(node, f"{what} must be a list")
        return [(item, self.scalar(item, f"an item of {what}")) for item in node.value]

    def level(self, node: yaml.Node) -> str:
        value = self.scalar(node, "level")
        if value not in LEVELS[1:]:
            raise self.error(node, f"level {value!r} (valid: integrity, confidentiality)")
        return value

    def cond(self, node: yaml.Node, fields: dict[str, tuple[yaml.Node, yaml.Node]], what: str) -> Node:
        combos = [k for k in ("any_of", "all_of") if k in fields]
        leaf = [k for k in ("source", "name", "expected") if k in fields]
        if (combos and leaf) or len(combos) > 1:
            raise self.error(node, f"{what}: give either source/name/expected or one of any_of, all_of")
        if combos:
            _key_node, seq = fields[combos[0]]
            if not isinstance(seq, yaml.SequenceNode) or len(seq.value) < 2:
                raise self.error(seq, f"{combos[0]} must be a list of at least two conditions")
            operands = [self.cond(item, self.mapping(item, "a condition", _COND), "a condition")
                        for item in seq.value]
            return AnyOf(*operands) if combos[0] == "any_of" else AllOf(*operands)
        missing = [k for k in ("source", "name", "expected") if k not in fields]
        if missing:
            raise self.error(node, f"{what}: missing {', '.join(missing)}")
        try:
            return Cond(self.scalar(fields["source"][1], "source"), self.scalar(fields["name"][1], "name"),
                        self.scalar(fields["expected"][1], "expected"))
        except ValueError as exc:
            bad = "expected" if "expected value" in str(exc) else "name" if "name" in str(exc) else "source"
            raise self.error(fields[bad][1], str(exc)) from None


def load_rules(path: str, known_ids: set[str], reason_ok: Any) -> Rules:
    """Parse and validate a rules file; ``reason_ok(id)`` says whether a reason id exists."""
    from ..infile import read_text

    text = read_text(path, "rules file")
    root = compose(text, path)
    reader = _Reader(path)
    if root is None:
        raise InputError(f"{path}:1: empty rules file")
    top = reader.mapping(root, "the rules file", _TOP)
    if "version" not in top:
        raise reader.error(root, "missing 'version: 1'")
    if reader.scalar(top["version"][1], "version") != "1":
        raise reader.error(top["version"][1], "unsupported version (valid: 1)")
    rules = Rules()
    ids = set(known_ids)
    if "checks" in top:
        seq = top["checks"][1]
        if not isinstance(seq, yaml.SequenceNode):
            raise reader.error(seq, "checks must be a list")
        for item in seq.value:
            rules.added.append(_check(reader, item, ids, reason_ok))
            ids.add(rules.added[-1].id)
    if "skip" in top:
        for node, cid in reader.strings(top["skip"][1], "skip"):
            if cid not in ids:
                raise reader.error(node, f"skip: unknown check {cid!r}")
            rules.skip.append(cid)
    if "override" in top:
        for cid, (_key, value) in reader.mapping(top["override"][1], "override", tuple(sorted(ids))).items():
            fields = reader.mapping(value, f"override of {cid}", _OVERRIDE)
            change: dict[str, Any] = {}
            for name, (_k, node) in fields.items():
                if name == "advisory":
                    change[name] = reader.boolean(node, "advisory")
                elif name == "level":
                    change[name] = reader.level(node)
                else:
                    change[name] = (node, reader.scalar(node, name))
            rules.overrides[cid] = change
    return rules


def _check(reader: _Reader, node: yaml.Node, ids: set[str], reason_ok: Any) -> Check:
    fields = reader.mapping(node, "a check", _CHECK)
    for required in ("id", "reasons", "effect"):
        if required not in fields:
            raise reader.error(node, f"a check needs {required!r}")
    cid = reader.scalar(fields["id"][1], "id")
    if cid in ids:
        raise reader.error(fields["id"][1], f"check {cid!r} exists already: change it under 'override'")
    reasons = []
    for item, rid in reader.strings(fields["reasons"][1], "reasons"):
        if rid != "*" and not reason_ok(rid):
            raise reader.error(item, f"unknown lockdown reason {rid!r} (see lockdownctl explain)")
        reasons.append(rid)
    cond = reader.cond(node, fields, f"check {cid}")
    try:
        return Check(
            id=cid, title=reader.scalar(fields["title"][1], "title") if "title" in fields else cid,
            cond=cond, reasons=tuple(reasons), effect=reader.scalar(fields["effect"][1], "effect"),
            level=reader.level(fields["level"][1]) if "level" in fields else "integrity", group="site",
            may_break=reader.scalar(fields["may_break"][1], "may_break") if "may_break" in fields else "",
            advisory=reader.boolean(fields["advisory"][1], "advisory") if "advisory" in fields else False)
    except ValueError as exc:
        raise reader.error(node, str(exc)) from None


def apply(rules: Rules, checks: list[Check], path: str) -> list[Check]:
    out = []
    for check in [*checks, *rules.added]:
        if check.id in rules.skip:
            continue
        change = dict(rules.overrides.get(check.id, {}))
        if "expected" in change:
            node, expected = change.pop("expected")
            if not isinstance(check.cond, Cond):
                raise InputError(f"{path}:{node.start_mark.line + 1}: {check.id} combines several conditions "
                                 "(any_of/all_of): skip it and add your own check instead")
            try:
                change["cond"] = Cond(check.cond.source, check.cond.name, expected)
            except ValueError as exc:
                raise InputError(f"{path}:{node.start_mark.line + 1}: {exc}") from None
        for key in ("title", "may_break"):
            if key in change:
                change[key] = change[key][1]
        out.append(replace(check, **change) if change else check)
    return out
