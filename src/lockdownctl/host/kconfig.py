"""The running kernel's build configuration.

Looked for where distributions keep it: ``/proc/config.gz`` (CONFIG_IKCONFIG_PROC),
``/boot/config-$(uname -r)``, ``/lib/modules/$(uname -r)/config``; immutable
distributions may have none of them (kernel-hardening-checker#215).
"""

from __future__ import annotations

import gzip
import re
import zlib
from dataclasses import dataclass, field

from ..errors import InputError
from ..root import Root, Unreadable

_SET = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")


@dataclass
class KConfig:
    path: str
    options: dict[str, str] = field(default_factory=dict)  # value "n" = is not set
    lines: dict[str, int] = field(default_factory=dict)

    def get(self, name: str) -> str | None:
        """The value (quotes removed), "n" when 'is not set', None when absent."""
        return self.options.get(name if name.startswith("CONFIG_") else "CONFIG_" + name)

    def enabled(self, name: str) -> bool:
        return self.get(name) in ("y", "m")

    def where(self, name: str) -> str:
        key = name if name.startswith("CONFIG_") else "CONFIG_" + name
        line = self.lines.get(key)
        return f"{self.path}:{line}" if line else self.path


def parse_kconfig(text: str, path: str) -> KConfig:
    config = KConfig(path=path)
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if match := _SET.match(line):
            name, value = match.groups()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
        elif match := _UNSET.match(line):
            name, value = match.group(1), "n"
        elif line.startswith("#"):
            continue
        else:
            raise InputError(f"{path}:{number}: not a kernel config line: {line[:60]!r}")
        config.options[name] = value
        config.lines[name] = number
    if not config.options:
        raise InputError(f"{path}: not a kernel config: no CONFIG_ lines")
    return config


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
        path = root.display(rel)
        if rel.endswith(".gz"):
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError, zlib.error) as exc:
                raise InputError(f"{path}: broken gzip data: {exc}") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: not text: invalid UTF-8 at byte {exc.start}") from None
        return parse_kconfig(text, path)
    if notes is not None:
        notes.append("kernel configuration not found (" + ", ".join("/" + p for p in candidates(root)) + ")")
    return None
