"""Installed packages: dpkg's status database (Debian, Ubuntu and derivatives).

RPM databases (sqlite or Berkeley DB) are not read: on those systems the
package evidence is missing and units, configs and processes still count.
"""

from __future__ import annotations

from ..root import Root

DPKG_STATUS = "var/lib/dpkg/status"


class Packages:
    def __init__(self, path: str, installed: dict[str, tuple[str, int]]) -> None:
        self.path = path
        self.installed = installed  # name -> (version, line of its Package: field)

    def get(self, name: str) -> tuple[str, int] | None:
        return self.installed.get(name)

    def where(self, name: str) -> str:
        return f"{self.path}:{self.installed[name][1]}"


def read_packages(root: Root) -> Packages | None:
    text = root.read_text(DPKG_STATUS)
    if not isinstance(text, str):
        return None
    installed: dict[str, tuple[str, int]] = {}
    name, version, status, line = "", "", "", 0

    def flush() -> None:
        if name and status.endswith(" installed"):
            installed[name] = (version, line)

    for number, row in enumerate(text.splitlines(), 1):
        if row.startswith("Package:"):
            flush()
            name, version, status, line = row[8:].strip(), "", "", number
        elif row.startswith("Status:"):
            status = row[7:].strip()
        elif row.startswith("Version:"):
            version = row[8:].strip()
    flush()
    return Packages(root.display(DPKG_STATUS), installed)
