"""Just enough POSIX shell to read and edit ``/etc/default/grub``.

grub-mkconfig *sources* /etc/default/grub and then every
/etc/default/grub.d/*.cfg (Debian), so these files are shell: values may be
quoted with '…' or "…", refer to earlier variables ($GRUB_CMDLINE_LINUX),
run commands (`lsb_release …`) and span lines inside quotes. This module
splits a file into words with the shell's quoting rules (the same rules
shlex implements in POSIX mode, plus $(…) and `…`), finds the assignments,
evaluates their values (variables only; command substitutions are opaque)
and rewrites one value in place. An unbalanced quote is an InputError naming
the file and the line where the quote opened.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import InputError

_NAME_START = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_"
_NAME = _NAME_START + "0123456789"
_OPERATORS = ";&|\n"


@dataclass
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

    def refers_to(self, name: str) -> bool:
        return ("var", name) in self.parts

    def evaluate(self, env: dict[str, str]) -> tuple[str, bool]:
        """(value, exact): exact is False when a command substitution was left as written."""
        out, exact = [], True
        for kind, text in self.parts:
            if kind == "lit":
                out.append(text)
            elif kind == "var":
                out.append(env.get(text, ""))
            else:
                out.append(text)
                exact = False
        return "".join(out), exact


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


def scan(text: str, path: str) -> list[Assignment]:
    """Every variable assignment at command position, in file order.

    The shell itself would only notice an unbalanced quote at the end of the
    file (or at a later quote in a comment, pairing with it): the error names
    the first line whose quotes do not balance on their own instead, and a
    value that runs over several lines is refused the same way
    (/etc/default/grub values are one line; a stray quote makes them many).
    """
    try:
        found = _scan(text, path)
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
            _scan(line, path)
        except InputError as exc:
            raise InputError(exc.message.replace(f"{path}:1:", f"{path}:{number}:", 1)) from None


def _scan(text: str, path: str) -> list[Assignment]:
    out: list[Assignment] = []
    i, command_pos = 0, True
    while i < len(text):
        ch = text[i]
        if ch in " \t":
            i += 1
            continue
        if ch == "\\" and text.startswith("\\\n", i):
            i += 2
            continue
        if ch in _OPERATORS or ch in "()<>":
            command_pos = ch in _OPERATORS or ch == "("
            i += 1
            continue
        if ch == "#":
            nl = text.find("\n", i)
            i = len(text) if nl < 0 else nl
            continue
        end = _word_end(text, i, path)
        word = text[i:end]
        name, eq, _ = word.partition("=")
        if command_pos and eq and name and name[0] in _NAME_START and all(c in _NAME for c in name):
            vstart = i + len(name) + 1
            out.append(Assignment(name, vstart, end, _line_of(text, i), text[vstart:end]))
        elif word in ("export", "readonly", "local"):
            pass  # the words after it are still assignments
        else:
            command_pos = False
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

    def dollar(i: int) -> int:
        if raw.startswith("${", i):
            close = raw.find("}", i)
            name = raw[i + 2 : close]
            if close > 0 and name and all(c in _NAME for c in name):
                flush()
                value.parts.append(("var", name))
                return close + 1
        j = i + 1
        while j < len(raw) and raw[j] in _NAME:
            j += 1
        if j > i + 1 and raw[i + 1] in _NAME_START:
            flush()
            value.parts.append(("var", raw[i + 1 : j]))
            return j
        lit.append("$")
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
                i = dollar(i)
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
                i = dollar(i)
            elif ch == "`" or raw.startswith("$(", i):
                i = subst(i)
            else:
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
