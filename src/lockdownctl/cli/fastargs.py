"""The common command line without argparse: ``lockdownctl status --json``.

Importing argparse costs about 9 ms, most of it ``re`` (enum, functools,
collections), which is a third of a whole ``status`` run; the start-up goal
(benchmarks/startup.py) leaves no room for it. Each verb's options are still
declared once, by its ``add_arguments(parser)``: here that function is handed
a recorder instead of a parser, and a command line made only of what was
recorded, spelt out in full, is parsed from the record. Anything else (help,
abbreviations, ``--``, a missing or unknown value, an unknown option) returns
None and argparse parses it, so every message and error stays argparse's own.
"""

from __future__ import annotations

from types import SimpleNamespace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class Unsupported(Exception):
    """The verb declares something only argparse handles."""


class _Spec:
    __slots__ = ("choices", "default", "dest", "flag", "required", "store_true")

    def __init__(self, flags: tuple[str, ...], kwargs: dict[str, Any]) -> None:
        known = {"action", "choices", "default", "dest", "help", "metavar", "nargs"}
        if set(kwargs) - known or kwargs.get("action") not in (None, "store", "store_true"):
            raise Unsupported(str(flags))
        self.store_true = kwargs.get("action") == "store_true"
        nargs = kwargs.get("nargs")
        self.flag = flags[0]
        if self.flag.startswith("-"):
            # Only a long option and only one spelling: a short alias would
            # need argparse's clustering rules.
            if len(flags) != 1 or not self.flag.startswith("--") or nargs is not None:
                raise Unsupported(str(flags))
            self.dest = kwargs.get("dest") or self.flag[2:].replace("-", "_")
        else:
            if nargs not in (None, "?"):
                raise Unsupported(str(flags))
            self.dest = kwargs.get("dest") or self.flag
        self.required = not self.flag.startswith("-") and nargs is None
        self.choices = kwargs.get("choices")
        self.default = kwargs.get("default", False if self.store_true else None)


class Recorder:
    """Stands in for an ArgumentParser while a verb declares its options."""

    def __init__(self) -> None:
        self.options: dict[str, _Spec] = {}
        self.positionals: list[_Spec] = []

    def add_argument(self, *flags: str, **kwargs: Any) -> None:
        spec = _Spec(flags, kwargs)
        if spec.flag.startswith("-"):
            self.options[spec.flag] = spec
        else:
            self.positionals.append(spec)

    def __getattr__(self, name: str) -> Any:  # groups, subparsers, defaults...
        raise Unsupported(name)


def parse(declare: Callable[[Any], None], argv: list[str]) -> SimpleNamespace | None:
    """``argv`` parsed against what ``declare(recorder)`` declared, or None
    when argparse has to do it."""
    rec = Recorder()
    try:
        declare(rec)
    except Unsupported:
        return None
    values = {spec.dest: spec.default for spec in (*rec.options.values(), *rec.positionals)}
    positionals = list(rec.positionals)
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg.startswith("-"):
            name, eq, value = arg.partition("=")
            spec = rec.options.get(name)
            if spec is None:
                return None
            if spec.store_true:
                if eq:
                    return None
                values[spec.dest] = True
                continue
            if not eq:
                if i == len(argv) or argv[i].startswith("-"):
                    return None
                value = argv[i]
                i += 1
        else:
            if not positionals:
                return None
            spec, value = positionals.pop(0), arg
        if spec.choices is not None and value not in spec.choices:
            return None
        values[spec.dest] = value
    if any(spec.required for spec in positionals):  # missing: argparse says so
        return None
    return SimpleNamespace(**values)
