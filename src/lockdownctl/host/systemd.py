"""systemd configuration: units (Exec lines and whether they are enabled),
drop-in configuration files (logind.conf, sleep.conf), tmpfiles.d, and udev
rules, each line with its file and line number."""

from __future__ import annotations

from ..root import Root
from .modules import ConfLine, drop_in_files, read_conf_lines

UNIT_DIRS = (
    "etc/systemd/system",
    "run/systemd/system",
    "usr/local/lib/systemd/system",
    "usr/lib/systemd/system",
    "lib/systemd/system",
)
TMPFILES_DIRS = ("etc/tmpfiles.d", "run/tmpfiles.d", "usr/local/lib/tmpfiles.d", "usr/lib/tmpfiles.d", "lib/tmpfiles.d")
UDEV_DIRS = (
    "etc/udev/rules.d",
    "run/udev/rules.d",
    "usr/local/lib/udev/rules.d",
    "usr/lib/udev/rules.d",
    "lib/udev/rules.d",
)


class Setting:
    """``Key=Value`` in an INI-style file, with its section and place."""

    __slots__ = ("key", "lineno", "path", "section", "value")

    def __init__(self, path: str, lineno: int, section: str, key: str, value: str) -> None:
        self.path = path
        self.lineno = lineno
        self.section = section
        self.key = key
        self.value = value

    @property
    def where(self) -> str:
        return f"{self.path}:{self.lineno}"

    @property
    def text(self) -> str:
        return f"{self.key}={self.value}"


def read_ini(root: Root, rel: str) -> list[Setting]:
    text = root.read_text(rel)
    if not isinstance(text, str):
        return []
    out = []
    section = ""
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        if sep:
            out.append(Setting(root.display(rel), number, section, key.strip(), value.strip()))
    return out


class Unit:
    __slots__ = ("enabled_by", "name", "rel", "settings")

    def __init__(self, name: str, rel: str, settings: list[Setting], enabled_by: str) -> None:
        self.name = name
        self.rel = rel
        self.settings = settings
        self.enabled_by = enabled_by  # the .wants/.requires symlink that enables it, or ""

    def exec_lines(self) -> list[Setting]:
        return [s for s in self.settings if s.section == "Service" and s.key.startswith("Exec")]


def _enablers(root: Root) -> dict[str, str]:
    """unit name -> path of the symlink that pulls it in (``*.wants/``, ``*.requires/``)."""
    out: dict[str, str] = {}
    for d in UNIT_DIRS:
        for entry in root.listdir(d):
            if entry.endswith((".wants", ".requires")) and root.is_dir(f"{d}/{entry}"):
                for name in root.listdir(f"{d}/{entry}"):
                    out.setdefault(name, root.display(f"{d}/{entry}/{name}"))
    return out


def read_units(root: Root, suffixes: tuple[str, ...] = (".service",)) -> list[Unit]:
    """Unit files (an /etc unit masks the vendor one of the same name; a
    symlink to /dev/null is a masked unit and is skipped), with drop-ins."""
    enablers = _enablers(root)
    units = []
    for suffix in suffixes:
        for rel in drop_in_files(root, UNIT_DIRS, suffix):
            if root.readlink(rel) == "/dev/null":
                continue
            name = rel.rsplit("/", 1)[1]
            settings = read_ini(root, rel)
            for drop in drop_in_files(root, tuple(f"{d}/{name}.d" for d in UNIT_DIRS), ".conf"):
                settings += read_ini(root, drop)
            units.append(Unit(name, rel, settings, enablers.get(name, "")))
    return units


def read_conf(root: Root, name: str) -> list[Setting]:
    """``/etc/systemd/NAME`` and its drop-ins, in the order systemd applies them."""
    rels = [f"usr/lib/systemd/{name}", f"etc/systemd/{name}"]
    rels += drop_in_files(
        root, tuple(f"{d}/{name}.d" for d in ("etc/systemd", "run/systemd", "usr/lib/systemd")), ".conf"
    )
    out = []
    for rel in rels:
        out += read_ini(root, rel)
    return out


def read_tmpfiles(root: Root) -> list[ConfLine]:
    out = []
    for rel in drop_in_files(root, TMPFILES_DIRS, ".conf"):
        out += read_conf_lines(root, rel)
    return out


def read_udev_rules(root: Root) -> list[ConfLine]:
    out = []
    for rel in drop_in_files(root, UDEV_DIRS, ".rules"):
        out += read_conf_lines(root, rel)
    return out
