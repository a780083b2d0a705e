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


def _next_arg(args: str) -> tuple[str, str | None, str]:
    """(param, value, rest) exactly as the kernel's next_arg() (lib/cmdline.c) splits.

    Quotes group blanks but are only removed around a whole argument or a
    whole value: ``loc""kdown=integrity`` is the parameter ``loc""kdown``.
    """
    quoted = in_quote = args[:1] == '"'
    if quoted:
        args = args[1:]
    equals = 0
    i = 0
    while i < len(args):
        ch = args[i]
        if ch in _BLANK and not in_quote:
            break
        if equals == 0 and ch == "=":  # (an "=" at index 0 does not count, as in C)
            equals = i
        if ch == '"':
            in_quote = not in_quote
        i += 1
    tok, rest = list(args[:i]), args[i:]
    last_quote = i > 0 and tok[i - 1] == '"'
    value_quoted = bool(equals) and args[equals + 1 : equals + 2] == '"'
    if (value_quoted or quoted) and last_quote:
        tok[i - 1] = "\0"  # the C code ends the string there
    text = "".join(tok)
    if not equals:
        return text.split("\0", 1)[0], None, rest
    param, value = text[:equals], text[equals + 1 :]
    if value_quoted:
        value = value[1:]
    return param.split("\0", 1)[0], value.split("\0", 1)[0], rest


def split_cmdline(raw: str, path: str) -> list[tuple[str, str | None]]:
    """Split like the kernel's parse_args()/next_arg(): blanks separate, double quotes group."""
    if any(ord(c) < 0x20 and c not in "\n\t" for c in raw):
        raise InputError(f"{path}: malformed command line: control character in it")
    if raw.count('"') % 2:
        raise InputError(f"{path}: malformed command line: unbalanced double quote")
    params: list[tuple[str, str | None]] = []
    rest = raw.lstrip(_BLANK)
    while rest:
        key, value, rest = _next_arg(rest)
        rest = rest.lstrip(_BLANK)
        if key == "--" and value is None:  # the rest goes to init, not to the kernel
            break
        params.append((key.replace("-", "_"), value))  # parameq(): - == _
    return params


def parse_cmdline(raw: str, path: str = "/" + CMDLINE) -> Cmdline:
    return Cmdline(path, raw.strip(), split_cmdline(raw, path))


def read_cmdline(root: Root) -> Cmdline | Unreadable | None:
    text = root.read_text(CMDLINE)
    if text is None or isinstance(text, Unreadable):
        return text
    return parse_cmdline(text, root.display(CMDLINE))
