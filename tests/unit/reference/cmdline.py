"""The command-line helpers as they were before their per-character loops moved
into C (main at e1e8e21): host/cmdline.py split_args (the control-character
test), boot/tokens.py strip_tokens (one list item per character) and
boot/entries.py options (three str.split per line). The reference for
tests/unit/test_lexer_differential.py."""

from __future__ import annotations

import re

from lockdownctl.errors import InputError
from lockdownctl.host.cmdline import _TO_SPACE, _next_arg

# (boot/tokens.py's, copied: importing it here would bind the fast split_args in it
# before tests/unit/reference/install.py puts the reference one in place)
_TOKEN = re.compile(r'(?:"[^"]*"|[^\s"])+')


def is_lockdown(token: str) -> bool:
    # the one change of meaning since e1e8e21 (fuzz_grub found it): a bare "lockdown" is removed too
    key = token.split("=", 1)[0].replace('"', "")
    return key == "lockdown"


_CONTROL = tuple(chr(c) for c in range(0x20) if chr(c) not in "\n\t")


def split_cmdline(raw: str, path: str) -> list[tuple[str, str | None]]:
    """Split like the kernel's parse_args()/next_arg(): blanks separate, double quotes group."""
    return split_args(raw, path)[0]


def split_args(raw: str, path: str) -> tuple[list[tuple[str, str | None]], bool]:
    """(split_cmdline's parameters, whether a bare ``--`` ended them: the rest goes to init).

    Linear in the length of ``raw``: the next blank and the next quote are each
    searched for once per position they move past (a command line is input: a
    long one of short or quote-riddled arguments must not cost quadratic time).
    """
    if any(c in raw for c in _CONTROL):
        raise InputError(f"{path}: malformed command line: control character in it")
    if raw.count('"') % 2:
        raise InputError(f"{path}: malformed command line: unbalanced double quote")
    params: list[tuple[str, str | None]] = []
    text = raw.translate(_TO_SPACE)  # every blank as " ": one str.find finds the next
    n = len(text)
    blank = quote = -1  # the next " " / '"' at or after i (-1: not searched yet)
    i = len(text) - len(text.lstrip(" "))
    while i < n:
        start = i
        in_quote = text[i] == '"'
        if in_quote:
            i += 1
        while i < n:  # next_arg()'s loop: stop at a blank outside quotes
            if quote < i and quote != n:
                quote = text.find('"', i)
                quote = n if quote < 0 else quote
            if in_quote:
                i, in_quote = min(quote + 1, n), False
                continue
            if blank < i and blank != n:
                blank = text.find(" ", i)
                blank = n if blank < 0 else blank
            if quote < blank:
                i, in_quote = quote + 1, True
            else:
                i = blank
                break
        key, value = _next_arg(raw, start, i)
        while i < n and text[i] == " ":
            i += 1
        if key == "--" and value is None:  # the rest goes to init, not to the kernel
            return params, True
        params.append((key.replace("-", "_"), value))  # parameq(): - == _
    return params, False


def strip_tokens(text: str) -> str:
    """``text`` without any ``lockdown=`` token; other bytes untouched.

    A token goes with the blanks before it, or, first on its line, with the
    blanks after it. One pass, linear in ``text`` (a file of many lockdown=
    tokens must not cost quadratic time).
    """
    out: list[str] = []  # the result so far, one character per item
    pos = 0
    skip_blanks = False  # the last token removed was first on its line
    line_start_at = -1  # len(out) when a token was last found first on its line
    for match in _TOKEN.finditer(text):
        gap = text[pos : match.start()]
        out.extend(gap.lstrip(" \t") if skip_blanks else gap)
        skip_blanks = False
        pos = match.end()
        if not is_lockdown(match.group()):
            out.extend(match.group())
            continue
        if len(out) == line_start_at:  # nothing since the last one: still first on its line
            skip_blanks = True
            continue
        before = len(out)
        while before > 0 and out[before - 1] in " \t":
            before -= 1
        if before > 0 and out[before - 1] != "\n":
            del out[before:]  # drop the blanks before it
        else:  # first token of the line: drop the blanks after it
            skip_blanks = True
            line_start_at = len(out)
    tail = text[pos:]
    out.extend(tail.lstrip(" \t") if skip_blanks else tail)
    return "".join(out)


def options(text: str) -> str:
    return " ".join(line.split(None, 1)[1].strip() for line in text.splitlines()
                    if line.split(None, 1)[:1] == ["options"] and len(line.split(None, 1)) > 1)
