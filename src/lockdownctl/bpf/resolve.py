"""A validated policy -> the enforcer's map contents, resolved against a root.

Executables become (kernel dev_t, inode), cgroups their cgroup v2 id (the
directory's inode), users their uid, debugfs files (path exceptions) the
(kernel dev_t, inode) of the file found there now; the same resolution runs for ``policy
validate``, ``enforce apply --dry-run`` and ``enforce apply``, so what the
first two accept the third loads. An exception whose executable is not
installed is skipped with a warning (lockdownctl-policy(5)): the program it
lets through cannot run either; a missing user or cgroup is an error.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from typing import Any

from ..errors import FeatureMissing, InputError
from ..mountinfo import fstype_at, mount_point
from ..policy import Policy, verdicts
from ..reasons import DEBUGFS_MOUNT, Catalogue
from ..root import Root
from .abi import LD_ALLOW, LD_COMM_LEN, LD_MAX_REASONS, VERDICT_CODES, dev_text, kernel_dev

CGROUP2_DEFAULT = "sys/fs/cgroup"  # where systemd mounts cgroup v2; read below a --root


@dataclass
class Resolved:
    """A policy turned into map contents for one kernel."""

    table: list[int]  # verdict code per reason value
    audit: bool
    scope: str | None  # cgroup directory (absolute path) or None
    exceptions: dict[str, list[tuple[Any, int, str]]] = field(default_factory=dict)  # kind -> (id, mask, label)
    policy_id: int = 0
    warnings: list[str] = field(default_factory=list)
    mark_reasons: int = 0  # path exceptions: the reasons a file_open mark is for (the debugfs bit)
    paths: list[dict[str, Any]] = field(default_factory=list)  # path exceptions as resolved, for reports

    def digest(self) -> str:
        return json.dumps([self.table, self.audit, self.scope, sorted(
            (k, str(i), m) for k, entries in self.exceptions.items() for i, m, _ in entries)])


def cgroup2_mount() -> str:
    """Where cgroup v2 is mounted on the running system (not always /sys/fs/cgroup)."""
    found = mount_point("cgroup2")
    if found is None:
        raise FeatureMissing("cgroup v2 is not mounted: cgroup scope and cgroup exceptions need it")
    return found


def cgroup_dir(path: str, root: Root | None = None) -> str:
    """A cgroup given as a path in the cgroup v2 hierarchy (or as a directory under its mount)."""
    mount = cgroup2_mount() if root is None or root.live else root / CGROUP2_DEFAULT
    full = path if path.startswith(mount + "/") or path == mount else os.path.join(mount, path.lstrip("/"))
    if not os.path.isdir(full):
        raise InputError(f"cgroup {path} does not exist (looked for {full})")
    return full


def _uid(name: str, root: Root) -> int | None:
    if root.live:
        import pwd

        try:
            return pwd.getpwnam(name).pw_uid  # NSS: directory users too
        except KeyError:
            return None
    text = root.read_text("etc/passwd")
    for line in text.splitlines() if isinstance(text, str) else []:
        fields = line.split(":")
        if len(fields) > 2 and fields[0] == name and fields[2].isdigit():
            return int(fields[2])
    return None


def _debugfs_file(path: str, root: Root, where: str, label: str, out: Resolved) -> tuple[int, int] | None:
    """(kernel dev_t, inode) of a path exception's file on the running system.

    The inode is what the enforcer matches, so a file re-created later (its
    module reloaded) no longer matches and is denied: re-apply the policy.
    Below a --root there is no debugfs to look at: reported unresolved (file_id None)."""
    line = int(where.rsplit(":", 1)[1])
    if not root.live:
        out.paths.append({"path": path, "line": line, "file_id": None})
        return None
    try:
        st = os.stat(path)
    except FileNotFoundError:  # like an executable that is not installed: nothing to let through
        out.warnings.append(f"{where}: exception {label} skipped: {path} does not exist (debugfs not mounted at "
                            f"{DEBUGFS_MOUNT}, or its module not loaded)")
        return None
    except OSError as err:
        raise InputError(f"{where}: path {path}: {err.strerror}") from None
    fstype = fstype_at(path)
    if fstype != "debugfs":
        raise InputError(f"{where}: path {path} is on {fstype or 'an unknown file system'}, not debugfs: "
                         "a path exception names a debugfs file")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{where}: path {path} is not a regular file: a path exception names one debugfs file")
    ident = (kernel_dev(st.st_dev), st.st_ino)
    out.paths.append({"path": path, "line": line, "file_id": f"{dev_text(ident[0])}:{ident[1]}"})
    return ident


def resolve(policy: Policy, cat: Catalogue, root: Root | None = None) -> Resolved:
    """Turn a validated policy into map contents (stat executables, find cgroup ids, users).

    Errors name the policy file and line; ``root`` (the running system by
    default) is where the names are looked up."""
    root = root or Root("/")
    table = [LD_ALLOW] * LD_MAX_REASONS
    for rid, verdict in verdicts(policy, cat).items():
        value = cat.get(rid).value
        if value is None or value >= LD_MAX_REASONS:
            continue
        table[value] = VERDICT_CODES[verdict]
    scope = None
    if policy.scope_cgroup:
        try:
            scope = cgroup_dir(policy.scope_cgroup, root)
        except InputError as err:
            raise InputError(f"{policy.source}:{policy.scope_line}: scope: {err.message}") from None
    out = Resolved(table=table, audit=policy.mode == "audit", scope=scope, policy_id=policy.policy_id)
    for exc in policy.exceptions:
        where = f"{policy.source}:{exc.line}"
        mask = 0
        for rid in exc.allow:
            value = cat.get(rid).value
            if value is not None and value < LD_MAX_REASONS:
                mask |= 1 << value
        label = exc.name or f"{exc.kind} {exc.value}"
        ident: Any
        if exc.kind == "exe":
            try:
                st = os.stat(root / str(exc.value))
            except FileNotFoundError:
                out.warnings.append(f"{where}: exception {label} skipped: {exc.value} is not installed")
                continue
            except OSError as err:
                raise InputError(f"{where}: exe {exc.value}: {err.strerror}") from None
            ident = (kernel_dev(st.st_dev), st.st_ino)
        elif exc.kind == "path":
            found = _debugfs_file(str(exc.value), root, where, label, out)
            if found is None:
                continue
            ident = found
            out.mark_reasons |= mask
        elif exc.kind == "cgroup":
            try:
                ident = os.stat(cgroup_dir(str(exc.value), root)).st_ino  # cgroup v2: the id is the inode
            except InputError as err:
                raise InputError(f"{where}: {err.message}") from None
        elif exc.kind == "uid":
            if isinstance(exc.value, int):
                ident = exc.value
            elif (uid := _uid(exc.value, root)) is not None:
                ident = uid
            else:
                raise InputError(f"{where}: no such user {exc.value!r}"
                                 + ("" if root.live else f" in {root.display('etc/passwd')}"))
        else:
            ident = str(exc.value).encode()[: LD_COMM_LEN - 1]
        entries = out.exceptions.setdefault(exc.kind, [])
        for i, (other, other_mask, other_label) in enumerate(entries):
            if other == ident:  # two exceptions for the same subject: allow both sets
                entries[i] = (other, other_mask | mask, f"{other_label}, {label}")
                break
        else:
            entries.append((ident, mask, label))
    return out
