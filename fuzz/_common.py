"""What every fuzz target shares: the property check and the atheris entry.

The property (issue #21): any input gives a result or the project's one-line
error (``LockdownctlError``: exit 2 for input); any other exception is a bug
and atheris records the input as a crash. Hangs and memory are bounded by
libFuzzer's ``-timeout`` and ``-rss_limit_mb`` (``fuzz/run-all`` sets both).
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import atheris  # type: ignore[import-untyped]

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src"))

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, "tests", "data")


def instrumented() -> Any:
    """Context manager: lockdownctl modules imported inside it get coverage feedback."""
    return atheris.instrument_imports(include=["lockdownctl"])


with instrumented():
    from lockdownctl.errors import LockdownctlError

# benchmarks/parsers.py --fuzz: the same target with the reference parsers
# (tests/unit/reference: one Python step per character) in place of the fast ones,
# instrumented alike, so inputs per second compare side by side.
REFERENCE = bool(os.environ.get("LOCKDOWNCTL_FUZZ_REFERENCE"))
if REFERENCE:
    sys.path.insert(0, REPO)
    with atheris.instrument_imports(include=["lockdownctl", "tests.unit.reference"]):
        from tests.unit.reference.install import install

        install()

# Tiny files written per input (targets whose parser reads a path or a root):
# in RAM when /dev/shm is there, so the disk does not limit inputs per second.
# (fuzz/run-all names one per target and removes it after; a target run by hand leaves
# its own in /dev/shm: libFuzzer ends the process without Python's atexit)
SCRATCH = os.environ.get("LOCKDOWNCTL_FUZZ_SCRATCH") or tempfile.mkdtemp(
    prefix="lockdownctl-fuzz-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
os.makedirs(SCRATCH, exist_ok=True)
if "LOCKDOWNCTL_FUZZ_SCRATCH" not in os.environ:
    import atexit
    import shutil

    atexit.register(shutil.rmtree, SCRATCH, True)


class Bad(AssertionError):
    """The parser gave a verdict that the input does not support."""


def one_line(exc: LockdownctlError) -> None:
    """The project's error is one line (a person reads it; JSON carries it)."""
    if "\n" in exc.message:
        raise Bad(f"error message is not one line: {exc.message[:200]!r}")


def check(fn: Callable[[bytes], Any]) -> Callable[[bytes], None]:
    """Wrap a target: LockdownctlError is an answer; anything else propagates."""
    def run(data: bytes) -> None:
        try:
            fn(data)
        except LockdownctlError as exc:
            one_line(exc)
    return run


def text(data: bytes) -> str:
    """Bytes as the tool's readers see them: UTF-8 with surrogates kept out."""
    return data.decode("utf-8", "replace")


def write(rel: str, data: bytes) -> str:
    """``data`` at ``SCRATCH/rel`` (parents made); its path."""
    path = os.path.join(SCRATCH, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)
    return path


def fixture_root(name: str) -> str:
    """A private copy of the boot fixture ``tests/data/boot/NAME`` (made once per process)."""
    import shutil

    dest = os.path.join(SCRATCH, "root-" + name)
    if not os.path.isdir(dest):
        shutil.copytree(os.path.join(DATA, "boot", name), dest, symlinks=True)
    return dest


def main(fn: Callable[[bytes], Any]) -> None:
    # Everything loaded so far lives for the whole run: out of the collector's
    # way, a full gc.collect() (pefile runs one per image it fails on) costs
    # microseconds instead of milliseconds.
    gc.freeze()
    atheris.Setup(sys.argv, check(fn))
    atheris.Fuzz()
