"""The running kernel's build configuration.

Looked for where distributions keep it: ``/proc/config.gz`` (CONFIG_IKCONFIG_PROC),
``/boot/config-$(uname -r)``, ``/lib/modules/$(uname -r)/config``; immutable
distributions may have none of them (kernel-hardening-checker#215).
"""

from __future__ import annotations

from ..errors import InputError
from ..root import Root, Unreadable

_LINE = r"^(?:(CONFIG_\w+)=(.*)|# (CONFIG_\w+) is not set)$"


class KConfig:
    """A kernel config, validated whole but looked up lazily.

    ``status`` needs a handful of options out of ~7,000 lines on every run:
    ``get`` finds one with str.rfind and validation counts line starts, both
    in C; the full dict is only built for ``options``.
    """

    __slots__ = ("_options", "path", "text")

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        # Every line, the first and last included, sits between two newlines.
        self.text = "\n" + text + ("" if text.endswith("\n") else "\n")
        self._options: dict[str, str] | None = None

    @staticmethod
    def _key(name: str) -> str:
        return name if name.startswith("CONFIG_") else "CONFIG_" + name

    def _find(self, key: str) -> tuple[str, int] | None:
        """(value, line) of the last assignment of ``key``, as the kernel build reads it."""
        pos = max(self.text.rfind(f"\n{key}="), self.text.rfind(f"\n# {key} is not set\n"))
        if pos < 0:
            return None
        line = self.text[pos + 1 : self.text.find("\n", pos + 1)]
        number = self.text.count("\n", 0, pos + 1)
        if line.startswith("#"):
            return "n", number
        value = line.partition("=")[2]
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        return value, number

    def get(self, name: str) -> str | None:
        """The value (quotes removed), "n" when 'is not set', None when absent."""
        found = self._find(self._key(name))
        return found[0] if found else None

    def enabled(self, name: str) -> bool:
        return self.get(name) in ("y", "m")

    def where(self, name: str) -> str:
        found = self._find(self._key(name))
        return f"{self.path}:{found[1]}" if found else self.path

    @property
    def options(self) -> dict[str, str]:
        """Every option: value, or "n" for 'is not set'."""
        if self._options is None:
            import re

            self._options = {}
            for match in re.finditer(_LINE, self.text, re.M):
                name = match.group(1) or match.group(3)
                value = "n" if match.group(3) else match.group(2)
                if len(value) >= 2 and value[0] == value[-1] == '"':
                    value = value[1:-1]
                self._options[name] = value
        return self._options


MAX_CONFIG = 16 << 20  # a kernel config is a few hundred KiB


def _good_line(line: str) -> bool:
    if line.startswith("CONFIG_"):
        return "=" in line
    return line.startswith("#") or not line.strip()


def parse_kconfig(text: str, path: str) -> KConfig:
    """Validate a config: a line that is not ``CONFIG_X=v``, a comment (which
    includes ``# CONFIG_X is not set``) or blank is an error naming file and line.

    Fast path: every line starts after a newline, so when the counts of
    newline+"CONFIG_", newline+"#" and empty lines add up to the number of
    lines, and every CONFIG_ line has its "=", the file is good; otherwise a
    line-by-line pass finds the offender (or finds blank runs and accepts).
    """
    config = KConfig(path, text)
    t = config.text
    lines = t.count("\n") - 1
    config_lines = t.count("\nCONFIG_")
    good = config_lines + t.count("\n#") + t.count("\n\n")
    if good != lines or config_lines > t.count("="):
        for number, line in enumerate(text.splitlines(), 1):
            if not _good_line(line):
                raise InputError(f"{path}:{number}: not a kernel config line: {line.strip()[:60]!r}")
    if not config_lines and "# CONFIG_" not in t:
        raise InputError(f"{path}: not a kernel config: no CONFIG_ lines")
    return config


def kconfig_from_bytes(data: bytes, path: str) -> KConfig:
    """A config as found on disk: plain, or gzip-compressed (/proc/config.gz)."""
    if data[:2] == b"\x1f\x8b":
        import zlib

        try:
            # gzip framing (wbits 16+); zlib directly: the gzip module costs more to import.
            # At most MAX_CONFIG bytes out: a small crafted file must not inflate to gigabytes.
            inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
            data = inflate.decompress(data, MAX_CONFIG + 1)
        except zlib.error as exc:
            raise InputError(f"{path}: broken gzip data: {exc}") from None
        if len(data) > MAX_CONFIG:
            raise InputError(f"{path}: decompresses to more than {MAX_CONFIG >> 20} MiB: not a kernel config")
        if not inflate.eof:
            raise InputError(f"{path}: broken gzip data: incomplete or truncated stream")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not text: invalid UTF-8 at byte {exc.start}") from None
    return parse_kconfig(text, path)


def candidates(root: Root) -> list[str]:
    release = root.osrelease()
    paths = ["proc/config.gz"]
    if release:
        paths += [f"boot/config-{release}", f"lib/modules/{release}/config"]
    return paths


def read_kconfig(root: Root, notes: list[str] | None = None) -> KConfig | None:
    for rel in candidates(root):
        data = root.read_bytes(rel)
        if data is None:
            continue
        if isinstance(data, Unreadable):
            if notes is not None:
                notes.append(f"{data.path}: {data.why}")
            continue
        return kconfig_from_bytes(data, root.display(rel))
    if notes is not None:
        notes.append("kernel configuration not found (" + ", ".join("/" + p for p in candidates(root)) + ")")
    return None
