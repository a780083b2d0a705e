"""boot/shell.py as it was before its scanner used ``re`` (main at e1e8e21):
one Python step per character. The reference for tests/unit/test_lexer_differential.py;
its classes are the real module's, so results compare with ``==``."""

from __future__ import annotations

from lockdownctl.boot.shell import Assignment, Unmodelled, Value
from lockdownctl.errors import InputError

_NAME_START = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_"
_NAME = _NAME_START + "0123456789"
_OPERATORS = ";&|\n"
_SPECIAL = "0123456789@*#?-$!"  # positional and special parameters after $
# Reserved words (POSIX 2.4) and the bash/ksh ones a /bin/sh may know.
_RESERVED = frozenset(("if", "then", "else", "elif", "fi", "case", "esac", "for", "while", "until", "do",
                       "done", "{", "}", "!", "in", "function", "select", "[[", "]]", "time", "coproc"))
_OPERATOR_NAMES = {"&": "& (a background job or &&)", "|": "| (a pipeline or ||)", "(": "( (a subshell or a function)",
                   ")": ") (a subshell, a function or a case pattern)", "<": "< (a redirection or here-document)",
                   ">": "> (a redirection)"}


def _unmodelled(path: str, line: int, what: str) -> Unmodelled:
    return Unmodelled(f"{path}:{line}: {what} is shell that lockdownctl does not evaluate: it will not edit "
                      "this file (write plain NAME=value assignments, or edit it by hand)")


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _skip_subst(text: str, pos: int, path: str) -> int:
    """Position after a $(…) or `…` starting at ``pos``."""
    if text[pos] == "`":
        i = pos + 1
        while i < len(text):
            if text[i] == "\\":
                i += 2
                continue
            if text[i] == "`":
                return i + 1
            i += 1
        raise InputError(f"{path}:{_line_of(text, pos)}: unbalanced ` (command substitution opened here)")
    depth, i = 1, pos + 1  # pos is the "(" of "$("
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch in "'\"":
            i = _skip_quoted(text, i, path)
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise InputError(f"{path}:{_line_of(text, pos)}: unbalanced $( (command substitution opened here)")


def _skip_quoted(text: str, pos: int, path: str) -> int:
    """Position after the quoted string that opens at ``pos``."""
    quote = text[pos]
    i = pos + 1
    while i < len(text):
        ch = text[i]
        if quote == '"' and ch == "\\":
            i += 2
            continue
        if quote == '"' and (ch == "`" or text.startswith("$(", i)):
            i = _skip_subst(text, i if ch == "`" else i + 1, path)
            continue
        if ch == quote:
            return i + 1
        i += 1
    what = "double" if quote == '"' else "single"
    raise InputError(f"{path}:{_line_of(text, pos)}: unbalanced {what} quote (opened here and never closed)")


def _word_end(text: str, pos: int, path: str) -> int:
    i = pos
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch in "'\"":
            i = _skip_quoted(text, i, path)
            continue
        if ch == "`":
            i = _skip_subst(text, i, path)
            continue
        if text.startswith("$(", i):
            i = _skip_subst(text, i + 1, path)
            continue
        if ch in " \t" or ch in _OPERATORS or ch in "()<>":
            return i
        i += 1
    return min(i, len(text))


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
    return bool(word) and word[0] in _NAME_START and all(c in _NAME for c in word)


def _scan(text: str, path: str, strict: bool) -> list[Assignment]:
    out: list[Assignment] = []
    # start: a simple command begins; assign: after its assignments; export:
    # after "export"; arg: after a command word (not strict only)
    i, state = 0, "start"
    seen, line = 0, 1  # newlines counted up to ``seen``: each counted once, not from 0 per assignment
    while i < len(text):
        ch = text[i]
        if ch in " \t":
            i += 1
            continue
        if ch == "\\" and text.startswith("\\\n", i):
            i += 2
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
    value = Value()
    lit: list[str] = []

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
        j = i + 1
        while j < len(raw) and raw[j] in _NAME:
            j += 1
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

    i, quote = 0, ""
    while i < len(raw):
        ch = raw[i]
        if quote == "'":
            if ch == "'":
                quote = ""
            else:
                lit.append(ch)
            i += 1
        elif quote == '"':
            if ch == '"':
                quote = ""
                i += 1
            elif ch == "\\" and i + 1 < len(raw) and raw[i + 1] in '$`"\\\n':
                if raw[i + 1] != "\n":
                    lit.append(raw[i + 1])
                i += 2
            elif ch == "$" and not raw.startswith("$(", i):
                i = dollar(i, True)
            elif ch == "`" or raw.startswith("$(", i):
                i = subst(i)
            else:
                lit.append(ch)
                i += 1
        else:
            if ch in "'\"":
                quote = ch
                i += 1
            elif ch == "\\" and i + 1 < len(raw):
                if raw[i + 1] != "\n":
                    lit.append(raw[i + 1])
                i += 2
            elif ch == "$" and not raw.startswith("$(", i):
                i = dollar(i, False)
            elif ch == "`" or raw.startswith("$(", i):
                i = subst(i)
            else:
                if ch == "~" and (i == 0 or raw[i - 1] == ":"):
                    flag("~ (tilde expansion)")
                lit.append(ch)
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
        i = 0
        while i < len(inner):  # every inner " must be escaped
            if inner[i] == "\\":
                i += 2
                continue
            if inner[i] == '"':
                return None
            i += 1
        return '"', inner, '"'
    if not any(c in raw for c in "'\"\\ \t"):
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
