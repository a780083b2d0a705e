"""Just enough POSIX shell to read and edit ``/etc/default/grub``, failing closed.

grub-mkconfig *sources* /etc/default/grub and then every
/etc/default/grub.d/*.cfg (Debian), so these files are shell: values may be
quoted with '…' or "…", refer to earlier variables ($GRUB_CMDLINE_LINUX),
run commands (`lsb_release …`) and span lines inside quotes. This module
splits a file into words with the shell's quoting rules (the same rules
shlex implements in POSIX mode, plus $(…) and `…`), finds the assignments,
evaluates their values (variables only; command substitutions are opaque and
make a value inexact) and rewrites one value in place. An unbalanced quote is
an InputError naming the file and the line where the quote opened.

What it models is a file of simple commands made only of assignments
(``NAME=value``, optionally after ``export``), separated by newlines or ``;``,
with comments. Anything else can change a variable in ways a static reader
would get wrong (the shell itself is not run: on a foreign --root it would run
the image's commands), so :func:`scan` refuses it with ``file:line``: compound
commands and reserved words (``if``, ``case``, ``{``, ``!``…), commands and
prefix assignments (``X=1 cmd``: only cmd sees X), pipelines, ``&&``/``||``,
``&``, subshells, redirections and here-documents, ``${…}`` with operators,
special and positional parameters (``$1``, ``$@``), ``$'…'`` and tilde
expansion. tests/unit/test_shell_differential.py compares every value this
module calls exact with what /bin/sh gives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import InputError

_NAME_START = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_"
_OPERATORS = ";&|\n"
_SPECIAL = "0123456789@*#?-$!"  # positional and special parameters after $
# Reserved words (POSIX 2.4) and the bash/ksh ones a /bin/sh may know.
_RESERVED = frozenset(("if", "then", "else", "elif", "fi", "case", "esac", "for", "while", "until", "do",
                       "done", "{", "}", "!", "in", "function", "select", "[[", "]]", "time", "coproc"))
_OPERATOR_NAMES = {"&": "& (a background job or &&)", "|": "| (a pipeline or ||)", "(": "( (a subshell or a function)",
                   ")": ") (a subshell, a function or a case pattern)", "<": "< (a redirection or here-document)",
                   ">": "> (a redirection)"}


class Unmodelled(InputError):
    """Shell that this module does not evaluate: the file is not edited."""


def _unmodelled(path: str, line: int, what: str) -> Unmodelled:
    return Unmodelled(f"{path}:{line}: {what} is shell that lockdownctl does not evaluate: it will not edit "
                      "this file (write plain NAME=value assignments, or edit it by hand)")


@dataclass(frozen=True)
class Assignment:
    name: str
    start: int  # offset of the value's first character in the file
    end: int  # offset just after the value
    line: int  # 1-based line of the assignment
    raw: str  # the value as written ("quiet splash" with its quotes)


@dataclass
class Value:
    """A value split into literal text and expansions."""

    parts: list[tuple[str, str]] = field(default_factory=list)  # ("lit"|"var"|"cmd", text)
    unmodelled: str = ""  # the first construct this module does not evaluate ("" when none)

    def refers_to(self, name: str) -> bool:
        return ("var", name) in self.parts

    def evaluate(self, env: dict[str, str], inexact: set[str] | frozenset[str] = frozenset()) -> tuple[str, bool]:
        """(value, exact): exact is False when a command substitution was left
        as written, or a variable in ``inexact`` (itself not exact) was used."""
        out, exact = [], not self.unmodelled
        for kind, text in self.parts:
            if kind == "lit":
                out.append(text)
            elif kind == "var":
                out.append(env.get(text, ""))
                exact = exact and text not in inexact
            else:
                out.append(text)
                exact = False
        return "".join(out), exact


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


# The scanner does its per-character work in ``re`` (C): each pattern finds
# the next character that matters in its context, and Python runs once per
# hit, not once per character (the fuzzers run instrumented bytecode: #21).
# tests/unit/test_lexer_differential.py compares every function here with the
# one-step-per-character original (tests/unit/reference/shell.py).
_WORD_STOP = re.compile(r"[\\'\"` \t;&|\n()<>]|\$\(")  # a word ends, or a quote/substitution opens
_DQ_STOP = re.compile(r'[\\"`]|\$\(')  # inside "...": an escape, the close, a substitution
_BQ_STOP = re.compile(r"[\\`]")  # inside `...`
_PAREN_STOP = re.compile(r"[\\'\"()]")  # inside $(...)
_BLANKS = re.compile(r"(?:[ \t]|\\\n)+")  # blanks and line continuations between words
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME_CHARS = re.compile(r"[A-Za-z0-9_]*")
_UNQUOTED_STOP = re.compile(r"['\"\\$`~]")  # in a value, outside quotes
_DQ_VALUE_STOP = re.compile(r'["\\$`]')  # in a value, inside "..."
_DQ_INNER = re.compile(r'(?:[^"\\]|\\[\s\S])*\\?')  # every " escaped (a last lone \ is itself)
_QUOTE_OR_BLANK = re.compile(r"['\"\\ \t]")


def _unbalanced(text: str, kind: str, pos: int, path: str) -> InputError:
    what = {'"': "double quote (opened here and never closed)", "'": "single quote (opened here and never closed)",
            "`": "` (command substitution opened here)", "(": "$( (command substitution opened here)"}[kind]
    return InputError(f"{path}:{_line_of(text, pos)}: unbalanced {what}")


def _skip_backquoted(text: str, pos: int, path: str) -> int:
    i = pos + 1
    while (m := _BQ_STOP.search(text, i)) is not None:
        if m.group() == "`":
            return m.end()
        i = m.start() + 2  # a backslash hides the next character
    raise _unbalanced(text, "`", pos, path)


def _skip_single(text: str, pos: int, path: str) -> int:
    close = text.find("'", pos + 1)
    if close < 0:
        raise _unbalanced(text, "'", pos, path)
    return close + 1


def _skip_nested(text: str, pos: int, path: str) -> int:
    """Position after the "…" (``pos`` at the quote) or $(…) (``pos`` at its
    "(") that opens at ``pos``. The two nest in each other ("$("…")"): an
    explicit stack, not recursion, so no nesting depth raises RecursionError;
    an unclosed construct is an error naming the innermost one, as the shell's
    own parser reports it."""
    stack = [(text[pos], pos)]  # (kind: '"' or '(', where it opened)
    depth = [1]  # open parentheses of each $( on the stack (0 for a "")
    i = pos + 1
    while stack:
        kind, opened = stack[-1]
        if kind == '"':
            m = _DQ_STOP.search(text, i)
            if m is None:
                raise _unbalanced(text, '"', opened, path)
            hit, j = m.group(), m.start()
            if hit == "\\":
                i = j + 2
            elif hit == '"':
                stack.pop()
                depth.pop()
                i = j + 1
            elif hit == "`":
                i = _skip_backquoted(text, j, path)
            else:  # "$("
                stack.append(("(", j + 1))
                depth.append(1)
                i = j + 2
            continue
        m = _PAREN_STOP.search(text, i)
        if m is None:
            raise _unbalanced(text, "(", opened, path)
        hit, j = m.group(), m.start()
        i = j + 1
        if hit == "\\":
            i = j + 2
        elif hit == "'":
            i = _skip_single(text, j, path)
        elif hit == '"':
            stack.append(('"', j))
            depth.append(0)
        elif hit == "(":
            depth[-1] += 1
        else:
            depth[-1] -= 1
            if depth[-1] == 0:
                stack.pop()
                depth.pop()
    return i


def _skip_subst(text: str, pos: int, path: str) -> int:
    """Position after a $(…) (``pos`` at its "(") or `…` starting at ``pos``."""
    if text[pos] == "`":
        return _skip_backquoted(text, pos, path)
    return _skip_nested(text, pos, path)


def _skip_quoted(text: str, pos: int, path: str) -> int:
    """Position after the quoted string that opens at ``pos``."""
    if text[pos] == "'":
        return _skip_single(text, pos, path)
    return _skip_nested(text, pos, path)


def _word_end(text: str, pos: int, path: str) -> int:
    i = pos
    while (m := _WORD_STOP.search(text, i)) is not None:
        hit, j = m.group(), m.start()
        if hit == "\\":
            i = j + 2
        elif hit in "'\"":
            i = _skip_quoted(text, j, path)
        elif hit == "`":
            i = _skip_backquoted(text, j, path)
        elif hit == "$(":
            i = _skip_nested(text, j + 1, path)
        else:
            return j
    return len(text)


def scan(text: str, path: str, strict: bool = True) -> list[Assignment]:
    """Every variable assignment at command position, in file order.

    ``strict`` (for every file that is edited or evaluated): anything but
    assignments, ``export`` and comments raises :class:`Unmodelled` naming
    the line. Without it (detection only) other commands are skipped.

    The shell itself would only notice an unbalanced quote at the end of the
    file (or at a later quote in a comment, pairing with it): the error names
    the first line whose quotes do not balance on their own instead, and a
    value that runs over several lines is refused the same way
    (/etc/default/grub values are one line; a stray quote makes them many).
    """
    known = _SCANNED.get((text, strict))
    if known is None and not strict:  # what strict accepts, the lenient scan reads the same way
        known = _SCANNED.get((text, True))  # (it only skips what strict refuses)
    if known is not None:
        return list(known)
    failed = _FAILED.get((text, path, strict))
    if failed is not None:
        raise failed[0](failed[1])
    try:
        found = _checked(text, path, strict)
    except InputError as exc:
        if len(text) <= _SCANNED_TEXT_MAX:
            if len(_FAILED) >= _SCANNED_MAX:
                _FAILED.clear()
            _FAILED[(text, path, strict)] = (type(exc), exc.message)
        raise
    if len(text) <= _SCANNED_TEXT_MAX:
        if len(_SCANNED) >= _SCANNED_MAX:
            _SCANNED.clear()
        _SCANNED[(text, strict)] = tuple(found)
    return found


def _checked(text: str, path: str, strict: bool) -> list[Assignment]:
    try:
        found = _scan(text, path, strict)
    except Unmodelled:
        raise
    except InputError:
        _first_bad_line(text, path)
        raise
    for a in found:
        if "\n" in a.raw.replace("\\\n", ""):
            _first_bad_line(text, path, a.line)
            raise InputError(f"{path}:{a.line}: the value of {a.name} runs over several lines "
                             "(unbalanced quote?)")
    return found


# One plan reads each file several times (evaluate, plan, verify, present): the
# assignments of the last few texts are kept (they do not depend on the path, which
# only errors name), and the errors (class and message, raised anew each time).
# Assignments are frozen, so sharing them is safe.
_SCANNED: dict[tuple[str, bool], tuple[Assignment, ...]] = {}
_FAILED: dict[tuple[str, str, bool], tuple[type[InputError], str]] = {}
_SCANNED_MAX = 32
_SCANNED_TEXT_MAX = 1 << 16


def _first_bad_line(text: str, path: str, start: int = 1) -> None:
    """Raise for the first line from ``start`` that does not balance alone."""
    lines = text.split("\n")
    for number in range(start, len(lines) + 1):
        line = lines[number - 1]
        if line.lstrip().startswith("#") or not line.strip():
            continue
        try:
            _scan(line, path, False)
        except InputError as exc:
            raise InputError(exc.message.replace(f"{path}:1:", f"{path}:{number}:", 1)) from None


def _is_name(word: str) -> bool:
    return _NAME_RE.fullmatch(word) is not None


def _scan(text: str, path: str, strict: bool) -> list[Assignment]:
    out: list[Assignment] = []
    # start: a simple command begins; assign: after its assignments; export:
    # after "export"; arg: after a command word (not strict only)
    i, state = 0, "start"
    seen, line = 0, 1  # newlines counted up to ``seen``: each counted once, not from 0 per assignment
    while i < len(text):
        ch = text[i]
        if ch in " \t" or (ch == "\\" and text.startswith("\\\n", i)):
            i = _BLANKS.match(text, i).end()  # type: ignore[union-attr]  # matches: ch is one
            continue
        if ch == "#":  # at the start of a word: a comment
            nl = text.find("\n", i)
            i = len(text) if nl < 0 else nl
            continue
        if ch in "\n;":
            if strict and ch == ";" and (state == "start" or text.startswith(";;", i)):
                raise _unmodelled(path, _line_of(text, i), "';' without a command before it (or ';;')")
            state = "start"
            i += 1
            continue
        if ch in _OPERATORS or ch in "()<>":
            if strict:
                raise _unmodelled(path, _line_of(text, i), _OPERATOR_NAMES[ch])
            state = "start" if ch in "&|(" else "arg"
            i += 1
            continue
        end = _word_end(text, i, path)
        word = text[i:end]
        name, eq, _ = word.partition("=")
        if state in ("start", "assign", "export") and eq and _is_name(name):
            line += text.count("\n", seen, i)
            seen = i
            vstart = i + len(name) + 1
            raw = text[vstart:end]
            if strict and (what := parse_value(raw).unmodelled):
                raise _unmodelled(path, line, f"{name}={raw}: {what}")
            out.append(Assignment(name, vstart, end, line, raw))
            state = "export" if state == "export" else "assign"
        elif state == "start" and word == "export":
            state = "export"
        elif state == "export" and _is_name(word):
            pass  # export NAME: the value is unchanged
        elif not strict:
            if word not in ("export", "readonly", "local"):
                state = "arg"  # the words after those are still assignments
        elif state == "assign":
            raise _unmodelled(path, _line_of(text, i), f"an assignment before the command {word[:40]!r} "
                              "(only that command sees it)")
        elif state == "export":
            raise _unmodelled(path, _line_of(text, i), f"export {word[:40]}")
        elif word in _RESERVED:
            raise _unmodelled(path, _line_of(text, i), f"the reserved word {word!r} (a compound command)")
        else:
            raise _unmodelled(path, _line_of(text, i), f"the command {word[:40]!r} (it may change variables)")
        i = max(end, i + 1)
    return out


def parse_value(raw: str) -> Value:
    """Split a value's source into literals, $NAME/${NAME} and substitutions."""
    known = _PARSED.get(raw)
    if known is None:
        known = _parse_value(raw)
        if len(raw) <= _PARSED_TEXT_MAX:
            if len(_PARSED) >= _PARSED_MAX:
                _PARSED.clear()
            _PARSED[raw] = known
    return Value(list(known.parts), known.unmodelled)  # a copy: the caller may change it


_PARSED: dict[str, Value] = {}  # (as _SCANNED: the same values are evaluated again and again)
_PARSED_MAX = 256
_PARSED_TEXT_MAX = 4096  # (at most 1 MiB kept)


def _parse_value(raw: str) -> Value:
    value = Value()
    lit: list[str] = []  # literal text since the last expansion (never an empty string)

    def flush() -> None:
        if lit:
            value.parts.append(("lit", "".join(lit)))
            lit.clear()

    def flag(what: str) -> None:
        value.unmodelled = value.unmodelled or what

    def dollar(i: int, quoted: bool) -> int:
        if raw.startswith("${", i):
            close = raw.find("}", i)
            name = raw[i + 2 : close]
            if close > 0 and _is_name(name):
                flush()
                value.parts.append(("var", name))
                return close + 1
            text = raw[i : close + 1] if close > 0 else raw[i:]
            flag(f"{text[:40]} (only $NAME and ${{NAME}} are evaluated)")
            lit.append(text)
            return i + len(text)
        j = _NAME_CHARS.match(raw, i + 1).end()  # type: ignore[union-attr]  # matches "" at least
        if j > i + 1 and raw[i + 1] in _NAME_START:
            flush()
            value.parts.append(("var", raw[i + 1 : j]))
            return j
        nxt = raw[i + 1 : i + 2]
        if nxt and nxt in _SPECIAL:
            flag(f"${nxt} (a positional or special parameter)")
        elif nxt and nxt in "'\"" and not quoted:
            flag(f"${nxt}…{nxt} (quoting that differs between shells)")
        lit.append("$")  # any other $ is itself (sh leaves it)
        return i + 1

    def subst(i: int) -> int:
        end = _skip_subst(raw, i if raw[i] == "`" else i + 1, "value")
        flush()
        value.parts.append(("cmd", raw[i:end]))
        return end

    i, quote, n = 0, "", len(raw)
    while i < n:
        if quote == "'":
            close = raw.find("'", i)
            stop = n if close < 0 else close
            if stop > i:
                lit.append(raw[i:stop])
            if close < 0:
                break
            quote, i = "", close + 1
            continue
        m = (_DQ_VALUE_STOP if quote else _UNQUOTED_STOP).search(raw, i)
        j = n if m is None else m.start()
        if j > i:
            lit.append(raw[i:j])
        if m is None:
            break
        ch, i = m.group(), j
        if ch == "\\":
            nxt = raw[i + 1 : i + 2]
            if nxt and (not quote or nxt in '$`"\\\n'):
                if nxt != "\n":
                    lit.append(nxt)
                i += 2
            else:  # a backslash that escapes nothing is itself
                lit.append(ch)
                i += 1
        elif ch == "$" and not raw.startswith("$(", i):
            i = dollar(i, bool(quote))
        elif ch in "`$":
            i = subst(i)
        elif ch == "~":  # only found outside quotes
            if i == 0 or raw[i - 1] == ":":
                flag("~ (tilde expansion)")
            lit.append(ch)
            i += 1
        elif quote:  # the closing "
            quote = ""
            i += 1
        else:  # an opening ' or "
            quote = ch
            i += 1
    flush()
    return value


def quoted_inner(raw: str) -> tuple[str, str, str] | None:
    """(opening quote, inner text, closing quote) when the value is one quoted
    string or plain unquoted text; None for mixed forms ("a"'b')."""
    if len(raw) >= 2 and raw[0] == raw[-1] == "'" and "'" not in raw[1:-1]:
        return "'", raw[1:-1], "'"
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        inner = raw[1:-1]
        if _DQ_INNER.fullmatch(inner) is None:  # every inner " must be escaped
            return None
        return '"', inner, '"'
    if _QUOTE_OR_BLANK.search(raw) is None:
        return "", raw, ""
    return None


def source(text: str, path: str, env: dict[str, str] | None = None,
           inexact: set[str] | None = None) -> tuple[dict[str, str], set[str]]:
    """The variables after sourcing ``text`` on top of ``env``: (values, names
    whose value is not exact). Refuses what it does not model (Unmodelled)."""
    env = dict(env or {})
    inexact = set(inexact or ())
    for a in scan(text, path):
        result, exact = parse_value(a.raw).evaluate(env, inexact)
        env[a.name] = result
        if exact:
            inexact.discard(a.name)
        else:
            inexact.add(a.name)
    return env, inexact
