"""The enforcer's policy: YAML -> validated model -> map contents.

File format (docs/design.md section 3; lockdownctl-policy(5)):

    version: 1
    profile: integrity          # none | integrity | confidentiality: the base deny set
    mode: enforce               # enforce | audit (log what would be denied, deny nothing)
    scope:                      # optional: only tasks inside this cgroup subtree
      cgroup: /machine.slice
    reasons:                    # per-reason override: allow | deny | audit
      hibernation: allow
    exceptions:                 # who may still do what the policy denies
      - name: undervolt
        exe: /usr/bin/intel-undervolt     # or cgroup: PATH, uid: N|NAME, comm: NAME (weak)
        allow: [msr]
      - name: dyndbg                      # path: one debugfs file, for any opener (kernel at none)
        path: /sys/kernel/debug/dynamic_debug/control
        allow: [debugfs]
    seal: false

Errors name the file and line (PyYAML node marks) and list the valid
choices. Profiles deny exactly what the kernel's own level denies *on the
running kernel*: the reason levels come from its BTF through the catalogue.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import yaml

from .errors import InputError
from .levels import LEVELS, level_rank
from .reasons import DEBUGFS_MOUNT, DEBUGFS_REASON, DEBUGFS_TRACING, Catalogue, suggest
from .yamldoc import compose

VERDICTS = ("allow", "deny", "audit")
MODES = ("enforce", "audit")
EXCEPTION_KINDS = ("exe", "cgroup", "uid", "comm", "path")
TOP_KEYS = ("version", "profile", "mode", "scope", "reasons", "exceptions", "seal")
TASK_COMM_LEN = 16  # include/linux/sched.h: task->comm, NUL included
COMM_LEN = TASK_COMM_LEN - 1  # the longest name the kernel keeps


@dataclass
class PolicyException:
    kind: str  # exe | cgroup | uid | comm | path
    value: str | int
    allow: list[str]
    name: str = ""
    line: int = 0


@dataclass
class Policy:
    source: str
    version: int = 1
    profile: str = "none"
    mode: str = "enforce"
    scope_cgroup: str | None = None
    reasons: dict[str, str] = field(default_factory=dict)
    exceptions: list[PolicyException] = field(default_factory=list)
    seal: bool = False
    warnings: list[str] = field(default_factory=list)
    scope_line: int = 0  # where scope.cgroup is written (for resolution errors)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        del out["warnings"], out["scope_line"]
        return out

    @property
    def policy_id(self) -> int:
        """A stable 64-bit id of the policy's content (not of its file's layout)."""
        doc = self.to_dict()
        del doc["source"]
        for exc in doc["exceptions"]:
            del exc["line"]
        digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).digest()
        return int.from_bytes(digest[:8], "little")


class _Doc:
    """Walks a composed YAML node tree with file:line errors."""

    def __init__(self, path: str) -> None:
        self.path = path

    def err(self, node: yaml.Node | None, message: str) -> InputError:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        return InputError(f"{self.path}{line}: {message}")

    def mapping(self, node: yaml.Node, what: str, keys: tuple[str, ...]) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.err(node, f"{what} must be a mapping")
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key, value in node.value:
            name = self.string(key, f"a key of {what}")
            if name in out:
                raise self.err(key, f"duplicate key {name!r} in {what} (first at line "
                                    f"{out[name][0].start_mark.line + 1})")
            if keys and name not in keys:
                raise self.err(key, f"unknown key {name!r} in {what} (valid: {', '.join(keys)})")
            out[name] = (key, value)
        return out

    def scalar(self, node: yaml.Node, what: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.err(node, f"{what} must be a single value")
        try:
            return yaml.SafeLoader(" ").construct_object(node, deep=True)
        except yaml.YAMLError as exc:  # an unknown tag (!foo): PyYAML's text is several lines
            problem = getattr(exc, "problem", None) or "not a plain YAML value"
            raise self.err(node, f"{what}: {problem}") from None

    @staticmethod
    def shown(node: yaml.Node, value: Any) -> str:
        """A value as the user wrote it, saying what YAML made of it when that
        differs: YAML 1.1 reads unquoted on/off/yes/no as booleans."""
        raw = node.value if isinstance(node, yaml.ScalarNode) else None
        if isinstance(value, bool) and isinstance(raw, str) and raw.lower() not in ("true", "false"):
            return (f"{raw} (YAML 1.1 reads an unquoted {raw} as the boolean {str(value).lower()}: "
                    f"quote it, '{raw}', to mean the word)")
        return repr(value)

    def string(self, node: yaml.Node, what: str) -> str:
        value = self.scalar(node, what)
        if not isinstance(value, str) or not value:
            raise self.err(node, f"{what} must be a non-empty string, not {self.shown(node, value)}")
        return value

    def choice(self, node: yaml.Node, what: str, choices: tuple[str, ...]) -> str:
        value = self.scalar(node, what)
        if value not in choices or isinstance(value, bool):
            raise self.err(node, f"{what} must be one of {', '.join(choices)}, not {self.shown(node, value)}")
        return str(value)

    def boolean(self, node: yaml.Node, what: str) -> bool:
        value = self.scalar(node, what)
        if not isinstance(value, bool):
            raise self.err(node, f"{what} must be true or false, not {value!r}")
        return value

    def sequence(self, node: yaml.Node, what: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.err(node, f"{what} must be a list")
        return list(node.value)


def parse_policy(text: str, path: str, cat: Catalogue) -> Policy:
    """Validate a policy against the catalogue of the kernel it will run on."""
    doc = _Doc(path)
    root = compose(text, path)
    if root is None:
        raise InputError(f"{path}: empty policy (expected a mapping with at least 'version: 1')")
    top = doc.mapping(root, "the policy", TOP_KEYS)
    policy = Policy(source=path)
    if "version" not in top:
        raise doc.err(root, "missing 'version: 1'")
    version = doc.scalar(top["version"][1], "version")
    # "1" is accepted as 1, as audit rules files accept both; a boolean is not 1.
    if isinstance(version, bool) or version not in (1, "1"):
        what = f"the string {version!r}" if isinstance(version, str) else doc.shown(top["version"][1], version)
        raise doc.err(top["version"][1], f"unsupported policy version {what} (this lockdownctl reads version 1)")
    if "profile" in top:
        policy.profile = doc.choice(top["profile"][1], "profile", LEVELS)
    if "mode" in top:
        policy.mode = doc.choice(top["mode"][1], "mode", MODES)
    if "seal" in top:
        policy.seal = doc.boolean(top["seal"][1], "seal")
    if "scope" in top:
        scope = doc.mapping(top["scope"][1], "scope", ("cgroup",))
        if "cgroup" not in scope:
            raise doc.err(top["scope"][1], "scope needs 'cgroup: PATH'")
        policy.scope_cgroup = doc.string(scope["cgroup"][1], "scope.cgroup")
        policy.scope_line = scope["cgroup"][1].start_mark.line + 1
    valid_ids = tuple(r.id for r in cat.reasons)

    def reason_id(node: yaml.Node, what: str) -> str:
        name = doc.string(node, what)
        reason = cat.find(name)
        if reason is None:
            raise doc.err(node, f"unknown lockdown reason {name!r} in {what}{suggest(name, list(valid_ids))} "
                          f"(valid: {', '.join(valid_ids)})")
        if cat.from_btf and not reason.on_kernel:
            policy.warnings.append(f"{path}:{node.start_mark.line + 1}: reason {reason.id} is not on this "
                                   "kernel: it cannot occur here")
        return reason.id

    if "reasons" in top:
        for key, verdict_node in doc.mapping(top["reasons"][1], "reasons", ()).values():
            rid = reason_id(key, "reasons")
            if rid in policy.reasons:  # e.g. dev_mem and LOCKDOWN_DEV_MEM
                raise doc.err(key, f"reason {rid} given twice in reasons")
            policy.reasons[rid] = doc.choice(verdict_node, f"reasons.{rid}", VERDICTS)
    if "exceptions" in top:
        for node in doc.sequence(top["exceptions"][1], "exceptions"):
            entry = doc.mapping(node, "an exception", ("name", "allow", *EXCEPTION_KINDS))
            kinds = [k for k in EXCEPTION_KINDS if k in entry]
            if len(kinds) != 1:
                raise doc.err(node, "an exception needs exactly one of " + ", ".join(EXCEPTION_KINDS))
            kind = kinds[0]
            raw = entry[kind][1]
            value: str | int
            if kind == "uid":
                scalar = doc.scalar(raw, "uid")
                if isinstance(scalar, bool) or not isinstance(scalar, (int, str)):
                    raise doc.err(raw, f"uid must be a number or a user name, not {scalar!r}")
                value = scalar
            else:
                value = doc.string(raw, kind)
            if kind == "comm" and len(str(value)) > COMM_LEN:
                raise doc.err(raw, f"comm {value!r} is longer than the kernel's {COMM_LEN} characters")
            if kind == "exe" and not str(value).startswith("/"):
                raise doc.err(raw, f"exe must be an absolute path, not {value!r}")
            if kind == "path":
                _debugfs_path(doc, raw, str(value))
            if "allow" not in entry:
                raise doc.err(node, "an exception needs 'allow: [REASON, ...]'")
            allow = [reason_id(n, "allow") for n in doc.sequence(entry["allow"][1], "allow")]
            if not allow:
                raise doc.err(entry["allow"][1], "allow must name at least one reason")
            if kind == "path" and allow != [DEBUGFS_REASON]:
                other = next((n for n in doc.sequence(entry["allow"][1], "allow")
                              if cat.get(str(n.value)).id != DEBUGFS_REASON), entry["allow"][1])
                raise doc.err(other, f"a path exception allows only {DEBUGFS_REASON}, not {', '.join(allow)}: "
                              "the kernel passes the file to no other lockdown check (use exe: for a program)")
            name = doc.string(entry["name"][1], "name") if "name" in entry else ""
            policy.exceptions.append(PolicyException(kind, value, allow, name, node.start_mark.line + 1))
    return policy


def _debugfs_path(doc: _Doc, node: yaml.Node, value: str) -> None:
    """A path exception names one file below the debugfs mount, spelled plainly:
    it is matched by the inode found there at apply time, not by name."""
    import posixpath

    if not value.startswith("/") or posixpath.normpath(value) != value or "//" in value:
        raise doc.err(node, f"path must be an absolute, normalised path (no ., .., //), not {value!r}")
    if not value.startswith(DEBUGFS_MOUNT + "/"):
        raise doc.err(node, f"path {value} is not a debugfs file: path exceptions name files below "
                      f"{DEBUGFS_MOUNT}, the only checks that see a file (LOCKDOWN_DEBUGFS)")
    if value == DEBUGFS_TRACING or value.startswith(DEBUGFS_TRACING + "/"):
        raise doc.err(node, f"path {value} is in tracefs ({DEBUGFS_TRACING} is an automount of tracefs, "
                      "checked as tracefs, not debugfs): a path exception cannot allow it")


def load_policy(path: str, cat: Catalogue) -> Policy:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise InputError(f"{path}: no such policy file") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not text: invalid UTF-8 at byte {exc.start}") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_policy(text, path, cat)


def verdicts(policy: Policy, cat: Catalogue) -> dict[str, str]:
    """Reason id -> allow | deny | audit for every reason on the kernel.

    The profile denies what the kernel's own mode at that level denies on this
    kernel (lockdown_is_locked_down(): every reason below the level's
    *_MAX marker, levels read from BTF), then per-reason overrides apply.
    """
    rank = level_rank(policy.profile)
    out = {}
    for reason in cat.reasons:
        if reason.value is None:
            continue
        base = "deny" if rank and level_rank(reason.level) <= rank else "allow"
        out[reason.id] = policy.reasons.get(reason.id, base)
    return out
