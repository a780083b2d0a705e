#!/usr/bin/python3
"""Shell completion scripts for lockdownctl, generated from the real parser.

bash and zsh come from shtab (Debian: python3-shtab): static scripts built
from the argparse tree at package build time, so a TAB never starts Python.
shtab has no fish backend; the fish script is written here from the same
tree (subcommands, their options and choices, with the help texts).
    scripts/completions.py OUTDIR     -> OUTDIR/lockdownctl.bash, _lockdownctl, lockdownctl.fish
Run with the source tree importable (PYTHONPATH=src, or the installed package).
"""

from __future__ import annotations

import argparse
import os
import sys


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _sub_help(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each sub-command's help= text (argparse keeps it on a pseudo-action)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {a.dest: a.help or "" for a in action._choices_actions}
    return {}


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


FISH_HELPER = """\
# __lockdownctl_is [-x] WORDS...: the words typed so far (options left out) start
# with WORDS (-x: are exactly WORDS). The verb and its action are these words.
function __lockdownctl_is
    set -l exact 0
    if test "$argv[1]" = -x
        set exact 1
        set -e argv[1]
    end
    set -l words
    for w in (commandline -opc)[2..-1]
        string match -q -- '-*' $w; or set -a words $w
    end
    test $exact -eq 0 -o (count $words) -eq (count $argv); or return 1
    test (count $words) -ge (count $argv); or return 1
    for i in (seq (count $argv))
        test "$words[$i]" = "$argv[$i]"; or return 1
    end
end
"""
FILE_METAVARS = ("FILE", "PATH", "DIR", "FILE|-")


def fish(parser: argparse.ArgumentParser, prog: str = "lockdownctl") -> str:
    """complete(1) lines for fish: verbs, then each verb's actions and options."""
    lines = [f"# fish completion for {prog}, generated from its argparse parser (scripts/completions.py)",
             FISH_HELPER, f"complete -c {prog} -f",
             f"complete -c {prog} -n '__lockdownctl_is -x' -l version -d 'show the version'"]
    for verb, sub in _subparsers(parser).items():
        lines.append(f"complete -c {prog} -n '__lockdownctl_is -x' -a {verb} -d {_quote(sub.description or '')}")
        actions = _subparsers(sub)
        helps = _sub_help(sub)
        for name in actions:
            lines.append(f"complete -c {prog} -n '__lockdownctl_is -x {verb}' -a {name} -d {_quote(helps[name])}")
        scopes = [(verb, sub)] if not actions else [(f"{verb} {name}", act) for name, act in actions.items()]
        for words, p in scopes:
            cond = f"'__lockdownctl_is {words}'"
            for action in p._actions:
                if not action.option_strings and action.metavar in FILE_METAVARS:
                    lines.append(f"complete -c {prog} -n {cond} -F")  # a positional file name
                    continue
                longs = [o[2:] for o in action.option_strings if o.startswith("--")]
                shorts = [o[1:] for o in action.option_strings if len(o) == 2]
                if not longs or longs == ["help"]:
                    continue
                takes_file = action.metavar in FILE_METAVARS
                out = [f"complete -c {prog} -n {cond}", *(f"-l {o}" for o in longs), *(f"-s {o}" for o in shorts)]
                if action.nargs != 0:
                    # -x: an argument that is not a file name (-r alone would offer files)
                    out.append(("-r" if takes_file else "-x") if action.nargs is None else "")
                    if action.choices:
                        out.append(f"-a {_quote(' '.join(map(str, action.choices)))}")
                if action.help:
                    out.append(f"-d {_quote(action.help)}")
                lines.append(" ".join(w for w in out if w))
                if takes_file:  # file names right after this option only (-F would allow them everywhere)
                    after = " ".join(f"--{o}" for o in longs)
                    lines.append(f"complete -c {prog} -n '__lockdownctl_is {words}; and "
                                 f"contains -- (commandline -opc)[-1] {after}' -F")
    return "\n".join(lines) + "\n"


def main() -> int:
    import shtab

    from lockdownctl.cli import build_parser

    out = sys.argv[1] if len(sys.argv) > 1 else "."
    os.makedirs(out, exist_ok=True)
    files = {"lockdownctl.bash": shtab.complete(build_parser(), shell="bash"),
             "_lockdownctl": shtab.complete(build_parser(), shell="zsh"),
             "lockdownctl.fish": fish(build_parser())}
    for name, text in files.items():
        with open(os.path.join(out, name), "w", encoding="utf-8") as fh:
            fh.write(text if text.endswith("\n") else text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
