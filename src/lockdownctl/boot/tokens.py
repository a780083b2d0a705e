"""Editing ``lockdown=`` in kernel command lines, keeping every other byte.

A command line is edited as text: ``lockdown=...`` tokens are cut out with
the whitespace before them (or after them, for the first token), and the new
token is appended with one space. Every other argument keeps its spelling,
its quoting and its place.
"""

from __future__ import annotations

import re

from ..host.cmdline import split_args, split_cmdline

KEY = "lockdown"
# A token as the kernel's next_arg() sees it: runs of non-space, double quotes group.
_TOKEN = re.compile(r'(?:"[^"]*"|[^\s"])+')
_PLAIN_LOCKDOWN = re.compile(r"(?<!\S)lockdown(?:=\S*)?(?!\S)")  # is_lockdown() of a text without '"'


def is_lockdown(token: str) -> bool:
    """``lockdown=...``, or a bare ``lockdown``: the kernel rejects that one ("Malformed
    early option": security/lockdown/lockdown.c lockdown_param() refuses NULL), and
    present() reports it (as an empty value), so enable and disable remove it too."""
    key = token.split("=", 1)[0].replace('"', "")
    return key == KEY


def lockdown_values(text: str, where: str) -> list[str]:
    """Every ``lockdown=`` value in a command line, in order."""
    return [v or "" for k, v in split_cmdline(text, where) if k == KEY]


def strip_tokens(text: str) -> str:
    """``text`` without any ``lockdown=`` token; other bytes untouched.

    A token goes with the blanks before it, or, first on its line, with the
    blanks after it. One pass, linear in ``text`` (a file of many lockdown=
    tokens must not cost quadratic time), a gap (the text between two
    lockdown= tokens, other tokens and all) at a time: a token never ends in a
    blank, so the blanks before a lockdown= token are the end of its gap.
    """
    out: list[str] = []  # the result so far, in gaps
    size = 0  # characters in out
    last = ""  # out's last character ("" while out is empty)
    pos = 0
    skip_blanks = False  # the last token removed was first on its line
    line_start_at = -1  # size when a token was last found first on its line
    # Only lockdown= tokens matter: every other token is part of a gap. Without a
    # double quote a token is a run of non-blanks, and re finds the lockdown= ones.
    found = (_PLAIN_LOCKDOWN.finditer(text) if '"' not in text
             else (m for m in _TOKEN.finditer(text) if is_lockdown(m.group())))
    for match in found:
        gap = text[pos : match.start()]
        if skip_blanks:
            gap = gap.lstrip(" \t")
        skip_blanks = False
        pos = match.end()
        if not gap and size == line_start_at:  # nothing since the last one: still first on its line
            skip_blanks = True
            continue
        kept = gap.rstrip(" \t")
        before = kept[-1:] or last
        if before and before != "\n":  # drop the blanks before it
            gap = kept
        else:  # first token of the line: drop the blanks after it
            skip_blanks = True
        out.append(gap)
        size += len(gap)
        last = gap[-1:] or last
        if skip_blanks:
            line_start_at = size
    tail = text[pos:]
    out.append(tail.lstrip(" \t") if skip_blanks else tail)
    return "".join(out)


def set_token(text: str, level: str | None) -> str:
    """``text`` with exactly one ``lockdown=level`` at the end (None: none at all).

    Trailing whitespace (a newline) is kept after the token.
    """
    stripped = strip_tokens(text)
    if level is None:
        return stripped
    body = stripped.rstrip()
    tail = stripped[len(body):]
    sep = " " if body else ""
    return f"{body}{sep}{KEY}={level}{tail}"


def has_exactly(text: str, level: str | None, where: str) -> str | None:
    """None when ``text`` carries exactly one ``lockdown=level`` (or none for
    None); otherwise what is wrong, as a phrase."""
    values = lockdown_values(text, where)
    if level is None:
        return None if not values else "still has " + " ".join(f"lockdown={v}" for v in values)
    if values == [level]:
        return None
    if not values:
        return f"no lockdown={level}"
    return "has " + " ".join(f"lockdown={v}" for v in values) + f" (want exactly one lockdown={level})"


def line_levels(text: str, where: str, first_word: str | None = None,
                joined: bool = True) -> list[tuple[str, str]]:
    """(where:line, value) of every ``lockdown=`` in ``text``, line by line;
    with ``first_word``, only lines that start with it (``options``, ``linux``),
    that word left out. ``joined``: the lines are one command line (a BLS
    entry's options lines, /etc/kernel/cmdline), so a bare ``--`` ends the
    kernel's parameters for the lines after it too (they go to init)."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if first_word is not None:
            words = line.split(None, 1)
            if words[:1] != [first_word]:
                continue
            line = words[1] if len(words) > 1 else ""
        params, ended = split_args(line, where)
        out += [(f"{where}:{number}", v or "") for k, v in params if k == KEY]
        if ended and joined:
            break
    return out
