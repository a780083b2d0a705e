"""The kernel command line (``/proc/cmdline``): lockdown=, lsm=, module.sig_enforce."""

from __future__ import annotations

from ..errors import InputError
from ..levels import LEVELS, level_rank
from ..root import Root, Unreadable

CMDLINE = "proc/cmdline"


class Cmdline:
    __slots__ = ("params", "path", "raw")

    def __init__(self, path: str, raw: str, params: list[tuple[str, str | None]]) -> None:
        self.path = path
        self.raw = raw
        self.params = params

    def values(self, key: str) -> list[str | None]:
        return [v for k, v in self.params if k == key]

    def last(self, key: str) -> str | None:
        vals = self.values(key)
        return vals[-1] if vals else None

    @property
    def lockdown(self) -> str | None:
        """The level the command line asks for: the kernel keeps the highest
        valid ``lockdown=`` (lock_kernel_down() only raises), and ignores
        anything but integrity and confidentiality ("none" is malformed)."""
        valid = [v for v in self.values("lockdown") if v in LEVELS[1:]]
        return max(valid, key=level_rank) if valid else None

    @property
    def lockdown_invalid(self) -> list[str]:
        return [str(v) for v in self.values("lockdown") if v not in LEVELS[1:]]

    @property
    def lsm(self) -> list[str] | None:
        value = self.last("lsm")
        return None if value is None else [n for n in value.split(",") if n]

    @property
    def sig_enforce(self) -> bool | None:
        value = self.last("module.sig_enforce")
        if value is None:
            return None
        return value in ("1", "y", "Y", "")  # param_set_bool()


_BLANK = " \t\n\v\f\r"  # the kernel's isspace() (ASCII)


_CONTROL = frozenset(chr(c) for c in range(0x20) if chr(c) not in "\n\t")
_TO_SPACE = str.maketrans({c: " " for c in _BLANK[1:]})


def _next_arg(args: str, start: int, end: int) -> tuple[str, str | None]:
    """(param, value) of the argument ``args[start:end]`` exactly as the kernel's
    next_arg() (lib/cmdline.c) splits it.

    Quotes group blanks but are only removed around a whole argument or a
    whole value: ``loc""kdown=integrity`` is the parameter ``loc""kdown``.
    """
    if '"' not in args[start:end]:  # the common case: no quote to keep or remove
        plain = args[start:end]
        equals = plain.find("=", 1)
        return (plain, None) if equals < 0 else (plain[:equals], plain[equals + 1 :])
    quoted = args[start] == '"'
    tok = list(args[start + 1 if quoted else start : end])
    i = len(tok)
    equals = max(0, "".join(tok).find("=", 1))  # an "=" at index 0 does not count, as in C
    last_quote = i > 0 and tok[i - 1] == '"'
    value_quoted = bool(equals) and tok[equals + 1 : equals + 2] == ['"']
    if (value_quoted or quoted) and last_quote:
        tok[i - 1] = "\0"  # the C code ends the string there
    text = "".join(tok)
    if not equals:
        return text.split("\0", 1)[0], None
    param, value = text[:equals], text[equals + 1 :]
    if value_quoted:
        value = value[1:]
    return param.split("\0", 1)[0], value.split("\0", 1)[0]


def split_cmdline(raw: str, path: str) -> list[tuple[str, str | None]]:
    """Split like the kernel's parse_args()/next_arg(): blanks separate, double quotes group."""
    return split_args(raw, path)[0]


def split_args(raw: str, path: str) -> tuple[list[tuple[str, str | None]], bool]:
    """(split_cmdline's parameters, whether a bare ``--`` ended them: the rest goes to init).

    Linear in the length of ``raw``: the next blank and the next quote are each
    searched for once per position they move past (a command line is input: a
    long one of short or quote-riddled arguments must not cost quadratic time).
    """
    if not _CONTROL.isdisjoint(raw):  # (one pass in C)
        raise InputError(f"{path}: malformed command line: control character in it")
    if raw.count('"') % 2:
        raise InputError(f"{path}: malformed command line: unbalanced double quote")
    text = raw.translate(_TO_SPACE)  # every blank as " ": one str.find finds the next
    if '"' not in raw:  # no quote: the arguments are the runs between blanks (split in C)
        words = list(filter(None, text.split(" ")))
        ended = "--" in words  # a bare "--" (no "=") ends the kernel's parameters
        if ended:
            del words[words.index("--") :]
        return [(w.replace("-", "_"), None) if (e := w.find("=", 1)) < 0 else (w[:e].replace("-", "_"), w[e + 1 :])
                for w in words], ended
    params: list[tuple[str, str | None]] = []
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


def parse_cmdline(raw: str, path: str = "/" + CMDLINE) -> Cmdline:
    return Cmdline(path, raw.strip(), split_cmdline(raw, path))


def read_cmdline(root: Root) -> Cmdline | Unreadable | None:
    text = root.read_text(CMDLINE)
    if text is None or isinstance(text, Unreadable):
        return text
    return parse_cmdline(text, root.display(CMDLINE))
