"""The boot-setup engine: detect, plan, apply, verify.

Every boot setup (one module each in this package) knows where its kernel
command line lives and answers four questions through a :class:`View` of a
:class:`~lockdownctl.root.Root`:

- ``detect(root)``: is this setup here, and why do we think so;
- ``plan(view, level)``: the file changes (full new contents, shown as a
  unified diff) and the commands that regenerate what the boot loader reads
  (``level`` None removes the token: ``disable``);
- ``verify(view, level)``: does every entry / variable now carry exactly one
  ``lockdown=level`` (or none);
- ``present(view)``: every ``lockdown=`` value the plan would remove or
  replace, and where (``enable`` refuses to lower any of them).

The engine applies a plan only after every setup planned without error and
the planned contents verified: each file is written to a temporary file in
the same directory, fsynced and renamed over the original, after a copy of
the original went to the backup directory; if a write fails, the files
already written are put back. Commands run only on the live system; for any
other root they are printed for the administrator.
"""

from __future__ import annotations

import datetime
import difflib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from ..errors import InputError, LockdownctlError
from ..root import Root, Unreadable

BACKUP_DIR = "var/lib/lockdownctl/backup"


@dataclass
class Detection:
    setup: str
    found: bool
    why: str
    evidence: list[str] = field(default_factory=list)


@dataclass
class Change:
    rel: str  # path below the root, no leading /
    old: str | None  # None: the file is created
    new: str | None  # None: the file is removed
    why: str = ""
    mode: int = 0o644  # for created files

    def diff(self) -> str:
        a = f"a/{self.rel}" if self.old is not None else "/dev/null"
        b = f"b/{self.rel}" if self.new is not None else "/dev/null"
        lines = difflib.unified_diff((self.old or "").splitlines(keepends=True),
                                     (self.new or "").splitlines(keepends=True), a, b)
        out = []
        for line in lines:
            out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
        return "".join(out)


@dataclass
class Command:
    argv: list[str]
    why: str

    @property
    def text(self) -> str:
        import shlex

        return shlex.join(self.argv)


@dataclass
class Check:
    where: str
    ok: bool
    detail: str


@dataclass
class SetupPlan:
    setup: str
    title: str
    changes: list[Change] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problem: str = ""  # non-empty: this setup cannot carry the token (why, and what to do)

    def to_dict(self) -> dict[str, Any]:
        return {
            "setup": self.setup,
            "title": self.title,
            "changes": [{"path": "/" + c.rel, "action": "create" if c.old is None else
                         "remove" if c.new is None else "modify", "why": c.why, "diff": c.diff()}
                        for c in self.changes],
            "commands": [{"argv": c.argv, "text": c.text, "why": c.why} for c in self.commands],
            "warnings": self.warnings,
            "notes": self.notes,
            "problem": self.problem,
        }


class View:
    """A root as it will be after some changes (reads see planned contents)."""

    def __init__(self, root: Root, changes: list[Change] | None = None) -> None:
        self.root = root
        self.overlay: dict[str, str | None] = {c.rel: c.new for c in changes or []}

    def with_changes(self, changes: list[Change]) -> View:
        view = View(self.root)
        view.overlay = {**self.overlay, **{c.rel: c.new for c in changes}}
        return view

    def display(self, rel: str) -> str:
        return self.root.display(rel)

    def read(self, rel: str) -> str | None:
        rel = rel.lstrip("/")
        if rel in self.overlay:
            return self.overlay[rel]
        text = self.root.read_text(rel)
        if isinstance(text, Unreadable):
            raise InputError(f"{text.path}: {text.why} (cannot plan a change without reading it)")
        return text

    def read_bytes(self, rel: str) -> bytes | None:
        data = self.root.read_bytes(rel)
        if isinstance(data, Unreadable):
            raise InputError(f"{data.path}: {data.why}")
        return data

    def exists(self, rel: str) -> bool:
        rel = rel.lstrip("/")
        if rel in self.overlay:
            return self.overlay[rel] is not None
        return self.root.exists(rel)

    def isdir(self, rel: str) -> bool:
        return os.path.isdir(self.root / rel)

    def listdir(self, rel: str) -> list[str]:
        rel = rel.strip("/")
        names = set(self.root.listdir(rel))
        for path, content in self.overlay.items():
            head, _, name = path.rpartition("/")
            if head == rel:
                if content is None:
                    names.discard(name)
                else:
                    names.add(name)
        return sorted(names)

    def has_program(self, *names: str) -> str | None:
        """The first of ``names`` found in the root's sbin/bin directories."""
        for name in names:
            for d in ("usr/sbin", "usr/bin", "sbin", "bin", "usr/local/sbin", "usr/local/bin"):
                if os.path.isfile(self.root / f"{d}/{name}"):
                    return f"/{d}/{name}"
        return None


class Setup(Protocol):
    ID: str
    TITLE: str

    def detect(self, root: Root) -> Detection: ...

    def plan(self, view: View, level: str | None) -> SetupPlan: ...

    def verify(self, view: View, level: str | None) -> list[Check]: ...

    def present(self, view: View) -> list[tuple[str, str]]: ...


# --- applying ---------------------------------------------------------------


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, text: str, mode: int = 0o644) -> None:
    """Write ``text`` to ``path``: temp file in the same directory, fsync, rename.

    An existing file keeps its mode and owner.
    """
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    try:
        st: os.stat_result | None = os.stat(path)
    except FileNotFoundError:
        st = None
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".lockdownctl", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fchmod(fh.fileno(), (st.st_mode & 0o7777) if st else mode)
            if st is not None and os.geteuid() == 0:
                os.fchown(fh.fileno(), st.st_uid, st.st_gid)
            os.fsync(fh.fileno())
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def new_backup_dir(root: Root) -> str:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{BACKUP_DIR}/{stamp}"


def write_changes(root: Root, changes: list[Change], backup_rel: str) -> list[dict[str, Any]]:
    """Back up, then write every change; on any failure, restore and re-raise."""
    backup = root / backup_rel
    done: list[Change] = []
    manifest: list[dict[str, Any]] = []
    try:
        for change in changes:
            path = root / change.rel
            if change.old is not None:
                dest = os.path.join(backup, change.rel)
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                shutil.copy2(path, dest)
            manifest.append({"path": "/" + change.rel, "backup": "/" + os.path.join(backup_rel, change.rel)
                             if change.old is not None else None,
                             "action": "create" if change.old is None else "remove" if change.new is None
                             else "modify"})
            if change.new is None:
                os.unlink(path)
                _fsync_dir(os.path.dirname(path))
            else:
                atomic_write(path, change.new, change.mode)
            done.append(change)
        os.makedirs(backup, exist_ok=True)
        atomic_write(os.path.join(backup, "manifest.json"), json.dumps(manifest, indent=1) + "\n")
    except OSError as exc:
        restored = _restore(root, done, backup)
        raise LockdownctlError(f"{exc.filename or ''}: {exc.strerror or exc}: nothing changed"
                               + ("" if restored else " (some files could not be restored: see " + backup + ")")
                               ) from None
    return manifest


def _restore(root: Root, done: list[Change], backup: str) -> bool:
    ok = True
    for change in reversed(done):
        path = root / change.rel
        try:
            if change.old is None:
                os.unlink(path)
            else:
                atomic_write(path, change.old)
        except OSError:
            ok = False
    return ok


def run_command(cmd: Command) -> dict[str, Any]:
    try:
        proc = subprocess.run(cmd.argv, capture_output=True, text=True, timeout=600, check=False)
    except FileNotFoundError:
        return {"text": cmd.text, "ran": False, "exit_status": None, "output": f"{cmd.argv[0]}: not found"}
    except subprocess.TimeoutExpired:
        return {"text": cmd.text, "ran": True, "exit_status": None, "output": "timed out after 600 s"}
    out = (proc.stdout + proc.stderr).strip()
    return {"text": cmd.text, "ran": True, "exit_status": proc.returncode, "output": out[-2000:]}


def check_dicts(checks: list[Check]) -> list[dict[str, Any]]:
    return [asdict(c) for c in checks]
