"""Node Feature Discovery's local feature file from the status document.

nfd-worker's ``local`` source reads every non-hidden file in
/etc/kubernetes/node-feature-discovery/features.d/ (at most 64 KiB), one
``<name>[=<value>]`` per line, ``#`` comments, and the directive
``# +expiry-time=<RFC 3339>`` after which the lines below it are ignored
(kubernetes-sigs/node-feature-discovery, docs/usage/customization-guide.md,
"Feature files" and "Input format"; source/local/local.go). Names carry the
``feature.node.kubernetes.io/`` namespace (unprefixed names are deprecated) and
names and values follow Kubernetes' label rules (a qualified name; a value of
at most 63 characters from [A-Za-z0-9._-], alphanumeric at both ends).

Values are what the kernel says, or ``unknown``: a label never claims more than
was read. The expiry makes stale labels vanish (a node whose updater stopped
loses them) instead of outliving a reboot.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

    from .output import Result
    from .root import Root

FEATURES_FILE = "/etc/kubernetes/node-feature-discovery/features.d/lockdown"
NAMESPACE = "feature.node.kubernetes.io/"
MAX_FILE = 65536  # nfd-worker skips larger files (MaxFeatureFileSize)
EXPIRY_SECONDS = 2 * 3600  # lockdownctl-nfd.timer rewrites it every hour


def _bool(value: bool | None) -> str:
    return "unknown" if value is None else "true" if value else "false"


def labels(root: Root, status: dict[str, Any]) -> dict[str, str]:
    """Label name -> value, in a fixed order."""
    from .metrics import enforcer_seen
    from .modsig import module_signing

    level = status["level"]
    active = status["lsm"]["lockdown_active"]
    source = status["source"]["kind"]
    if active is False:
        level = source = "none"  # the level is displayed but nothing enforces it
    elif level is None or status["level_read_from"] != "securityfs":
        level = source = "unknown"  # not read from the kernel (inferred from boot settings, or unreadable)
    sb = {"enabled": True, "disabled": False, "setup-mode": False, "validation-disabled": False,
          "not-efi": False}.get(status["secure_boot"]["state"])
    loaded, sealed = enforcer_seen(root, status)
    return {
        NAMESPACE + "lockdown.level": level,
        NAMESPACE + "lockdown.source": source,
        NAMESPACE + "lockdown.secureboot": _bool(sb),
        NAMESPACE + "lockdown.module-signing-enforced": _bool(module_signing(root, status)[0]),
        NAMESPACE + "lockdown.enforcer-loaded": _bool(loaded),
        NAMESPACE + "lockdown.enforcer-sealed": _bool(sealed),
    }


def render(values: dict[str, str], now: float | None = None) -> str:
    """The feature file: a comment, the expiry directive, one label per line."""
    expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((now or time.time()) + EXPIRY_SECONDS))
    lines = ["# lockdownctl status --format nfd: kernel lockdown of this node (see lockdownctl(8))",
             f"# +expiry-time={expiry}"]
    lines += [f"{name}={value}" for name, value in values.items()]
    return "\n".join(lines) + "\n"


def write(path: str, text: str) -> None:
    """Atomically: a hidden temporary file (nfd-worker skips dot files) renamed over PATH."""
    from .errors import OutputError

    directory, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise OutputError(f"{path}: cannot write: {exc.strerror or exc}") from None


def result(root: Root, status: dict[str, Any], output: str | None, dry_run: bool, code: int) -> Result:
    """``status --format nfd``: print the file, or write it to ``output``."""
    from .output import Result as _Result

    values = labels(root, status)
    text = render(values)
    data: dict[str, Any] = {"labels": values, "file": text, "written": None, "dry_run": dry_run}
    if output and not dry_run:
        write(output, text)
        data["written"] = output
    elif output:
        data["would_write"] = output

    def show(d: dict[str, Any], _s: Any) -> str:
        if d["written"]:
            return f"wrote {d['written']}"
        head = f"# would write {d['would_write']} (dry run)\n" if d.get("would_write") else ""
        return head + str(d["file"]).rstrip("\n")

    return _Result("status", data, show, code)
