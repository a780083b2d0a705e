"""Editing ``lockdown=`` in kernel command lines, keeping every other byte.

A command line is edited as text: ``lockdown=...`` tokens are cut out with
the whitespace before them (or after them, for the first token), and the new
token is appended with one space. Every other argument keeps its spelling,
its quoting and its place.
"""

from __future__ import annotations

import re

from ..host.cmdline import split_cmdline

KEY = "lockdown"
# A token as the kernel's next_arg() sees it: runs of non-space, double quotes group.
_TOKEN = re.compile(r'(?:"[^"]*"|[^\s"])+')


def is_lockdown(token: str) -> bool:
    key = token.split("=", 1)[0].replace('"', "")
    return key == KEY and "=" in token


def lockdown_values(text: str, where: str) -> list[str]:
    """Every ``lockdown=`` value in a command line, in order."""
    return [v or "" for k, v in split_cmdline(text, where) if k == KEY]


def strip_tokens(text: str) -> str:
    """``text`` without any ``lockdown=`` token; other bytes untouched."""
    out = text
    while True:
        for match in _TOKEN.finditer(out):
            if is_lockdown(match.group()):
                start, end = match.span()
                before = start
                while before > 0 and out[before - 1] in " \t":
                    before -= 1
                if before > 0 and out[before - 1] not in "\n":
                    out = out[:before] + out[end:]  # drop the space before it
                else:  # first token of the line: drop the space after it
                    after = end
                    while after < len(out) and out[after] in " \t":
                        after += 1
                    out = out[:start] + out[after:]
                break
        else:
            return out


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


def line_levels(text: str, where: str, first_word: str | None = None) -> list[tuple[str, str]]:
    """(where:line, value) of every ``lockdown=`` in ``text``, line by line;
    with ``first_word``, only lines that start with it (``options``, ``linux``),
    that word left out."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if first_word is not None:
            words = line.split(None, 1)
            if words[:1] != [first_word]:
                continue
            line = words[1] if len(words) > 1 else ""
        out += [(f"{where}:{number}", v) for v in lockdown_values(line, where)]
    return out
