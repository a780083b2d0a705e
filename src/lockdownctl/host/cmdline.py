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


def split_cmdline(raw: str, path: str) -> list[tuple[str, str | None]]:
    """Split like the kernel's next_arg(): spaces separate, double quotes group."""
    if any(ord(c) < 0x20 and c not in "\n\t" for c in raw):
        raise InputError(f"{path}: malformed command line: control character in it")
    if raw.count('"') % 2:
        raise InputError(f"{path}: malformed command line: unbalanced double quote")
    tokens: list[str] = []
    token: list[str] = []
    quoted = False
    for ch in raw.strip():
        if ch == '"':
            quoted = not quoted
        elif ch.isspace() and not quoted:
            if token:
                tokens.append("".join(token))
                token = []
        else:
            token.append(ch)
    if token:
        tokens.append("".join(token))
    params: list[tuple[str, str | None]] = []
    for tok in tokens:
        if tok == "--":  # the rest goes to init, not to the kernel
            break
        key, sep, value = tok.partition("=")
        params.append((key.replace("-", "_"), value if sep else None))  # parameq(): - == _
    return params


def parse_cmdline(raw: str, path: str = "/" + CMDLINE) -> Cmdline:
    return Cmdline(path, raw.strip(), split_cmdline(raw, path))


def read_cmdline(root: Root) -> Cmdline | Unreadable | None:
    text = root.read_text(CMDLINE)
    if text is None or isinstance(text, Unreadable):
        return text
    return parse_cmdline(text, root.display(CMDLINE))
