"""GRUB with /etc/default/grub (Debian, Ubuntu, openSUSE, Arch; docs/kernel-facts.md 3.4).

grub-mkconfig sources ``/etc/default/grub`` and then, on Debian and Ubuntu,
every ``/etc/default/grub.d/*.cfg`` in lexical order; ``GRUB_CMDLINE_LINUX``
goes on every ``linux`` line (normal and recovery entries),
``GRUB_CMDLINE_LINUX_DEFAULT`` on normal entries only. A later file that
assigns ``GRUB_CMDLINE_LINUX`` without ``$GRUB_CMDLINE_LINUX`` discards what
came before (cloud images ship such drop-ins), so with a grub.d directory the
token goes into lockdownctl's own drop-in, named to sort after every file that
assigns the variable, as ``GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX lockdown=…"``;
without one it is appended to the last assignment in /etc/default/grub. Any
other ``lockdown=`` token in any of these files is removed.
"""

from __future__ import annotations

from ..errors import InputError
from ..root import Root
from . import tokens
from .engine import Change, Check, Command, Detection, SetupPlan, View
from .shell import Assignment, parse_value, quoted_inner, scan

ID = "grub"
TITLE = "GRUB (/etc/default/grub, grub-mkconfig)"

DEFAULTS = "etc/default/grub"
DROPIN_DIR = "etc/default/grub.d"
OWN_SUFFIX = "lockdownctl.cfg"
OWN = "99-" + OWN_SUFFIX
LINUX = "GRUB_CMDLINE_LINUX"
LINUX_DEFAULT = "GRUB_CMDLINE_LINUX_DEFAULT"
VARS = (LINUX, LINUX_DEFAULT)
GENERATED = ("boot/grub/grub.cfg", "boot/grub2/grub.cfg")
PASSWORD_FILES = ("boot/grub/user.cfg", "boot/grub2/user.cfg", "boot/grub/custom.cfg", "boot/grub2/custom.cfg")
_LINUX_CMDS = ("linux", "linuxefi", "linux16")


def detect(root: Root) -> Detection:
    if not root.exists(DEFAULTS):
        return Detection(ID, False, f"{root.display(DEFAULTS)} not found")
    view = View(root)
    text = view.read(DEFAULTS) or ""
    if _bls_enabled(text, root.display(DEFAULTS)):
        return Detection(ID, False, f"{root.display(DEFAULTS)} has GRUB_ENABLE_BLSCFG=true: BLS entries "
                         "carry the command line (grubby setup)")
    evidence = [root.display(DEFAULTS)]
    evidence += [root.display(f"{DROPIN_DIR}/{n}") for n in _dropins(view)]
    evidence += [root.display(g) for g in GENERATED if root.exists(g)]
    return Detection(ID, True, f"{root.display(DEFAULTS)} exists (grub-mkconfig reads it)", evidence)


def _bls_enabled(text: str, where: str) -> bool:
    for a in scan(text, where, strict=False):  # detection only: never edited on this reading
        if a.name == "GRUB_ENABLE_BLSCFG":
            return parse_value(a.raw).evaluate({})[0] == "true"
    return False


def _dropins(view: View) -> list[str]:
    if not view.isdir(DROPIN_DIR):
        return []
    return [n for n in view.listdir(DROPIN_DIR) if n.endswith(".cfg")]


def sources(view: View) -> list[str]:
    """The files grub-mkconfig sources, in its order."""
    out = [DEFAULTS] if view.exists(DEFAULTS) else []
    return out + [f"{DROPIN_DIR}/{n}" for n in _dropins(view)]


def _own(rel: str) -> bool:
    return rel.startswith(DROPIN_DIR + "/") and rel.endswith(OWN_SUFFIX)


def evaluate(view: View) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """(values, where each was last assigned, notes) after sourcing every file.

    A command-line variable whose value is not known exactly (a command
    substitution, or a variable holding one) is an InputError naming it: its
    lockdown= could be neither removed nor verified. Whatever shell.py does not
    model is refused by scan() the same way.
    """
    env: dict[str, str] = {}
    inexact: set[str] = set()
    where: dict[str, str] = {}
    notes: list[str] = []
    for rel in sources(view):
        text = view.read(rel) or ""
        for a in scan(text, view.display(rel)):
            value = parse_value(a.raw)
            result, exact = value.evaluate(env, inexact)
            if a.name in VARS:
                if not exact:
                    raise InputError(f"{view.display(rel)}:{a.line}: {a.name}={a.raw[:40]}: its value is not known "
                                     "here (a command substitution, or a variable that holds one): lockdownctl "
                                     "will not edit a command line it cannot read; write it out literally")
                if a.name in where and not value.refers_to(a.name):
                    notes.append(f"{view.display(rel)}:{a.line}: assigns {a.name} without ${a.name}: "
                                 f"whatever {where[a.name]} set is discarded"
                                 + (f" ({env[a.name]!r})" if env.get(a.name) else ""))
                where[a.name] = f"{view.display(rel)}:{a.line}"
            env[a.name] = result
            (inexact.discard if exact else inexact.add)(a.name)
    return env, where, notes


def _edit_value(a: Assignment, rel: str, view: View, level: str | None) -> str:
    parts = quoted_inner(a.raw)
    if parts is None:
        if not tokens.lockdown_values(parse_value(a.raw).evaluate({})[0], rel) and level is None:
            return a.raw
        raise _too_complex(a, rel, view)
    open_q, inner, close_q = parts
    new_inner = tokens.set_token(inner, level)
    if not open_q and " " in new_inner:
        open_q = close_q = '"'
    raw = f"{open_q}{new_inner}{close_q}"
    # The edit is textual: a lockdown parameter that an expansion completes
    # ("lockdown$X") is no token it can cut, yet present() reports it (as
    # "lockdown" with X unset), after a plan that verified: refuse instead.
    left = tokens.lockdown_values(parse_value(raw).evaluate({})[0], rel)
    if left != ([level] if level else []):
        raise InputError(f"{view.display(rel)}:{a.line}: {a.name}={a.raw[:40]}: a lockdown parameter "
                         "there is formed by a variable expansion; lockdownctl will not edit it: "
                         "write it out literally")
    return raw


def _too_complex(a: Assignment, rel: str, view: View) -> Exception:
    return InputError(f"{view.display(rel)}:{a.line}: {a.name}={a.raw[:40]} mixes quoting styles; "
                      "lockdownctl will not edit it: make it one quoted string")


def _rewrite(text: str, edits: list[tuple[Assignment, str]]) -> str:
    for a, raw in sorted(edits, key=lambda e: e[0].start, reverse=True):
        text = text[: a.start] + raw + text[a.end :]
    return text


def own_dropin(level: str) -> str:
    return ("# Written by lockdownctl enable: kernel lockdown on every GRUB entry (normal and recovery).\n"
            "# Remove it with: lockdownctl disable\n"
            f'{LINUX}="${LINUX} lockdown={level}"\n')


def _own_name(view: View, assigning: list[str]) -> str:
    name = OWN
    later = [n for n in assigning if n.startswith(DROPIN_DIR + "/") and n.rsplit("/", 1)[-1] > name
             and not _own(n)]
    while later:
        name = "z" + name
        later = [n for n in later if n.rsplit("/", 1)[-1] > name]
    return name


def plan_defaults(view: View, level: str | None, use_dropin: bool | None = None) -> tuple[list[Change], list[str]]:
    """Changes to /etc/default/grub and its drop-ins (shared with the grubby setup)."""
    if use_dropin is None:
        use_dropin = view.isdir(DROPIN_DIR)
    evaluate(view)  # refuses files it cannot evaluate exactly before anything is planned
    changes: list[Change] = []
    notes: list[str] = []
    assigning: list[str] = []
    last_linux: tuple[str, Assignment] | None = None
    parsed: dict[str, tuple[str, list[Assignment]]] = {}
    for rel in sources(view):
        text = view.read(rel) or ""
        found = scan(text, view.display(rel))  # raises on unbalanced quotes: nothing planned
        parsed[rel] = (text, found)
        for a in found:
            if a.name == LINUX:
                assigning.append(rel)
                if not _own(rel):
                    last_linux = (rel, a)
    own_name = _own_name(view, assigning) if use_dropin and level else None
    for rel, (text, found) in parsed.items():
        if _own(rel):
            if rel.rsplit("/", 1)[-1] != own_name:
                changes.append(Change(rel, text, None, "lockdownctl's drop-in " +
                                      ("is renamed" if own_name else "is removed")))
            continue
        edits = []
        for a in found:
            if a.name not in VARS:
                continue
            want = level if (not use_dropin and level and last_linux and last_linux[1] is a) else None
            raw = _edit_value(a, rel, view, want)
            if raw != a.raw:
                edits.append((a, raw))
        if edits:
            new = _rewrite(text, edits)
            changes.append(Change(rel, text, new, f"{', '.join(sorted({a.name for a, _ in edits}))}: "
                                  + ("lockdown= set" if not use_dropin and level else "lockdown= removed")))
    if level and use_dropin and own_name:
        rel = f"{DROPIN_DIR}/{own_name}"
        old = view.read(rel)
        new = own_dropin(level)
        if old != new:
            changes.append(Change(rel, old, new, f"sorts after every file that assigns {LINUX}, "
                                  f"so the token reaches every entry", 0o644))
    elif level and not use_dropin and last_linux is None:
        text = view.read(DEFAULTS) or ""
        new = text + ("" if text.endswith("\n") or not text else "\n") + f'{LINUX}="lockdown={level}"\n'
        changes.append(Change(DEFAULTS, text, new, f"{LINUX} was not set"))
    return changes, notes


def verify_defaults(view: View, level: str | None) -> list[Check]:
    env, where, _ = evaluate(view)
    out = []
    for name, want in ((LINUX, level), (LINUX_DEFAULT, None)):
        problem = tokens.has_exactly(env.get(name, ""), want, name)
        place = where.get(name, view.display(DEFAULTS))
        detail = problem or (f"{name}={env.get(name, '')!r}")
        out.append(Check(f"{place} ({name} after sourcing every file)", problem is None, detail))
    return out


def regen_command(view: View) -> Command:
    if view.has_program("update-grub"):
        return Command(["update-grub"], "regenerate /boot/grub/grub.cfg from the defaults")
    if view.has_program("grub2-mkconfig"):
        return Command(["grub2-mkconfig", "-o", "/boot/grub2/grub.cfg"], "regenerate grub.cfg")
    return Command(["grub-mkconfig", "-o", "/boot/grub/grub.cfg"], "regenerate grub.cfg")


def linux_lines(text: str) -> list[tuple[int, str]]:
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split(None, 2)
        if words and words[0] in _LINUX_CMDS and len(words) >= 2:
            out.append((number, words[2] if len(words) > 2 else ""))
    return out


def verify_generated(view: View, level: str | None) -> list[Check]:
    """Every linux line of the generated grub.cfg (after the regeneration command)."""
    out = []
    for rel in GENERATED:
        text = view.read(rel)
        if text is None:
            continue
        lines = linux_lines(text)
        bad = [(n, p) for n, a in lines if (p := tokens.has_exactly(a, level, rel))]
        detail = f"{len(lines)} linux lines" + (": " + "; ".join(f"line {n}: {p}" for n, p in bad[:3]) if bad else
                                                 ", each with " + (f"lockdown={level}" if level else "no lockdown="))
        out.append(Check(view.display(rel), not bad, detail))
    return out


def password_warning(view: View) -> str | None:
    files = [f"etc/grub.d/{n}" for n in view.listdir("etc/grub.d")] + list(PASSWORD_FILES)
    for rel in files:
        try:
            text = view.read(rel)
        except Exception:  # binary or unreadable: not a password file
            continue
        if text and ("set superusers" in text or "GRUB2_PASSWORD" in text):
            return None
    return ("GRUB has no superuser password: anyone at the console can edit the menu entry and remove "
            "lockdown= at boot (set one: grub-mkpasswd-pbkdf2, then 'set superusers' and "
            "'password_pbkdf2' in /etc/grub.d/40_custom, or grub2-setpassword)")


def custom_entries(view: View) -> list[str]:
    out = []
    for name in ("40_custom", "41_custom"):
        text = view.read(f"etc/grub.d/{name}") or ""
        for number, _args in linux_lines(text.split("exec tail", 1)[-1]):
            out.append(f"{view.display('etc/grub.d/' + name)}: hand-written entry with a linux line "
                       f"(near line {number}) is not edited: add lockdown= to it yourself")
            break
    return out


def present_defaults(view: View) -> list[tuple[str, str]]:
    """(where, value) of every lockdown= in the command-line variables of every sourced file."""
    out = []
    for rel in sources(view):
        text = view.read(rel) or ""
        for a in scan(text, view.display(rel)):
            if a.name in VARS:
                literal = parse_value(a.raw).evaluate({})[0]
                out += [(f"{view.display(rel)}:{a.line} ({a.name})", v)
                        for v in tokens.lockdown_values(literal, view.display(rel))]
    return out


def present(view: View) -> list[tuple[str, str]]:
    """Every lockdown= the plan would remove: the variables and the generated entries."""
    out = present_defaults(view)
    for rel in GENERATED:
        text = view.read(rel)
        if text is not None:
            out += [(f"{view.display(rel)}:{n} (linux line)", v) for n, args in linux_lines(text)
                    for v in tokens.lockdown_values(args, view.display(rel))]
    return out


def plan(view: View, level: str | None) -> SetupPlan:
    result = SetupPlan(ID, TITLE)
    result.changes, result.notes = plan_defaults(view, level)
    _, _, notes = evaluate(view)
    result.notes += notes
    stale = [c for c in verify_generated(view, level) if not c.ok]
    if result.changes or stale:
        result.commands.append(regen_command(view))
    if level:
        if warning := password_warning(view):
            result.warnings.append(warning)
        result.warnings += custom_entries(view)
    return result


def verify(view: View, level: str | None) -> list[Check]:
    return verify_defaults(view, level)
