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

import contextlib
import datetime
import difflib
import json
import os
import subprocess
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from ..errors import InputError, LockdownctlError
from ..fsio import atomic_write, fsync_dir
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


def new_backup_dir(root: Root) -> str:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{BACKUP_DIR}/{stamp}"


# --- the journal -------------------------------------------------------------
#
# A change to several files cannot be one rename. So, before any target file
# is touched, every original goes to the backup directory (fsynced) and
# MANIFEST records each file's old and new SHA-256 with state "pending"; each
# file is then replaced by a rename (old or new, byte for byte, at any
# instant); the manifest says "complete" last. A run killed in between leaves
# a pending manifest: the next enable, disable or --rollback first puts every
# file it names back to its old contents (recover()), so the configuration is
# the old one again, then plans from there. Re-running converges. States:
# pending -> complete (-> rolled-back by enable --rollback); pending -> undone.

MANIFEST = "manifest.json"
MANIFEST_VERSION = 2


def sha256(data: bytes | None) -> str | None:
    import hashlib

    return None if data is None else hashlib.sha256(data).hexdigest()


def _read_now(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def _write_manifest(backup: str, manifest: dict[str, Any]) -> None:
    atomic_write(os.path.join(backup, MANIFEST), json.dumps(manifest, indent=1) + "\n", 0o600)


def write_changes(root: Root, changes: list[Change], backup_rel: str,
                  meta: dict[str, Any] | None = None, complete: bool = True) -> list[dict[str, Any]]:
    """Back up, journal, then write every change; on any failure, restore and re-raise.

    A file that no longer holds what the plan read (someone changed it since)
    is refused before anything is written. ``meta`` (action, level, commands)
    goes into the manifest for ``enable --rollback``. ``complete`` False: the
    caller still has commands to run and calls :func:`mark_complete` after them
    (a run killed before that is undone by :func:`recover` and done again).
    """
    backup = root / backup_rel
    merged: dict[str, Change] = {}
    for change in changes:  # two setups may change one file: old of the first, new of the last
        first = merged.get(change.rel)
        merged[change.rel] = change if first is None else Change(change.rel, first.old, change.new, first.why,
                                                                 first.mode)
    changes = list(merged.values())
    entries: list[dict[str, Any]] = []
    for change in changes:
        path = root / change.rel
        current = _read_now(path)
        planned = None if change.old is None else change.old.encode("utf-8")
        if current != planned:
            raise InputError(f"{root.display(change.rel)}: changed since it was read (by another program?): "
                             "nothing written; run the command again")
        entries.append({"path": "/" + change.rel,
                        "backup": "/" + os.path.join(backup_rel, change.rel) if change.old is not None else None,
                        "action": "create" if change.old is None else "remove" if change.new is None else "modify",
                        "old_sha256": sha256(planned),
                        "new_sha256": sha256(None if change.new is None else change.new.encode("utf-8")),
                        "mode": (os.stat(path).st_mode & 0o7777) if current is not None else change.mode})
    manifest: dict[str, Any] = {"version": MANIFEST_VERSION, "state": "pending", **(meta or {}), "files": entries}
    done: list[Change] = []
    try:
        for change, entry in zip(changes, entries, strict=True):
            if change.old is not None:
                atomic_write(os.path.join(backup, change.rel), change.old.encode("utf-8"), entry["mode"])
        _write_manifest(backup, manifest)
        for change in changes:
            path = root / change.rel
            if change.new is None:
                os.unlink(path)
                fsync_dir(os.path.dirname(path))
            else:
                atomic_write(path, change.new, change.mode)
            done.append(change)
        if complete:
            manifest["state"] = "complete"
            _write_manifest(backup, manifest)
    except OSError as exc:
        restored = _restore(root, done, backup)
        if restored and os.path.exists(os.path.join(backup, MANIFEST)):
            manifest["state"] = "undone"  # (as recover() would: not an enable to roll back)
            with contextlib.suppress(OSError):  # else recover() finds it pending, every file already old
                _write_manifest(backup, manifest)
        raise LockdownctlError(f"{exc.filename or ''}: {exc.strerror or exc}: nothing changed"
                               + ("" if restored else " (some files could not be restored: see " + backup + ")")
                               ) from None
    return entries


def mark_complete(root: Root, backup_rel: str) -> None:
    path = root / f"{backup_rel}/{MANIFEST}"
    with open(path, encoding="utf-8") as fh:
        manifest = json.load(fh)
    manifest["state"] = "complete"
    _write_manifest(os.path.dirname(path), manifest)


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


def manifests(root: Root) -> list[tuple[str, dict[str, Any]]]:
    """(backup directory below the root, manifest) of every journaled run, oldest first.

    Directories from before the journal (a list, no state) are skipped: they
    hold no hashes to verify against.
    """
    out = []
    for name in sorted(root.listdir(BACKUP_DIR)):
        rel = f"{BACKUP_DIR}/{name}"
        text = root.read_text(f"{rel}/{MANIFEST}")
        if not isinstance(text, str):
            continue
        try:
            data = json.loads(text)
        except ValueError:
            raise InputError(f"{root.display(rel + '/' + MANIFEST)}: not JSON: the backup manifest is "
                             "damaged") from None
        if isinstance(data, dict) and data.get("version") == MANIFEST_VERSION and isinstance(data.get("files"), list):
            out.append((rel, data))
    return out


def recover(root: Root) -> list[str]:
    """Undo every run that was killed before its manifest said "complete".

    Each file the manifest names is put back to its backup when it holds the
    new contents (a file still old was not reached). A file that holds neither
    is left alone and named: someone else changed it. Returns what was done.
    """
    notes: list[str] = []
    for rel, manifest in manifests(root):
        if manifest.get("state") != "pending":
            continue
        try:
            notes += _recover_one(root, rel, manifest)
        except OSError as exc:
            raise LockdownctlError(f"{exc.filename or root.display(rel)}: {exc.strerror or exc}: could not undo "
                                   f"the interrupted change recorded in {root.display(rel)}") from None
    return notes


def _recover_one(root: Root, rel: str, manifest: dict[str, Any]) -> list[str]:
    notes: list[str] = []
    clean = True
    for entry in reversed(manifest["files"]):
        target = entry["path"].lstrip("/")
        path = root / target
        _remove_temporaries(path)
        now = sha256(_read_now(path))
        if now == entry["old_sha256"]:
            continue
        if now != entry["new_sha256"]:
            clean = False
            notes.append(f"{root.display(target)}: an interrupted change ({root.display(rel)}) left it "
                         "neither old nor new: not touched")
            continue
        if entry["backup"] is None:
            os.unlink(path)
            fsync_dir(os.path.dirname(path))
        else:
            data = _read_now(root / entry["backup"].lstrip("/"))
            if data is None or sha256(data) != entry["old_sha256"]:
                clean = False
                notes.append(f"{root.display(entry['backup'])}: backup missing or damaged: "
                             f"{root.display(target)} not restored")
                continue
            atomic_write(path, data.decode("utf-8"), int(entry.get("mode") or 0o644))
        notes.append(f"{root.display(target)}: put back to its contents before the interrupted change "
                     f"({root.display(rel)})")
    if clean and not notes:
        notes.append(f"{root.display(rel)}: an interrupted change had not reached any file yet")
    if clean:
        manifest["state"] = "undone"  # (not "rolled-back": enable --rollback looks past it)
        _write_manifest(root / rel, manifest)
    return notes


def _remove_temporaries(path: str) -> None:
    """atomic_write's temporary files for ``path`` that a killed run left (".NAME.*.lockdownctl")."""
    directory, name = os.path.split(path)
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for other in names:
        if other.startswith(f".{name}.") and other.endswith(".lockdownctl"):
            os.unlink(os.path.join(directory, other))


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
