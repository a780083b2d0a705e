"""Feedback on long work: ``watch --follow``, ``enforce events --follow``,
``check --measure``.

Progress (what is being watched, time left) goes to standard error and only
when standard error is a terminal (clig.dev: "show progress if something takes
a long time", and never into the output a program reads: standard output,
JSON lines). When the work is interrupted (Ctrl-C, SIGTERM), one line says
what was done until then; it goes to standard error whatever it is, as an
error message would. The exit codes are the verb's (lockdownctl(8), EXIT STATUS).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any, TextIO


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class Progress:
    """One verb's feedback channel on standard error."""

    def __init__(self, verb: str, stream: TextIO | None = None) -> None:
        self.verb = verb
        self.stream = stream or sys.stderr
        self.enabled = _isatty(self.stream)
        # A dumb terminal cannot erase a line: transient updates become nothing.
        self.erase = self.enabled and os.environ.get("TERM") != "dumb"
        self.started = time.monotonic()
        self._transient = False

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass  # feedback is best effort: losing it never fails the command

    def _clear(self) -> str:
        if self._transient:
            self._transient = False
            return "\r\033[K"
        return ""

    def say(self, text: str) -> None:
        """A progress line (only on a terminal)."""
        if self.enabled:
            self._write(f"{self._clear()}lockdownctl {self.verb}: {text}\n")

    def update(self, text: str) -> None:
        """A line that the next update replaces (only on a terminal that can erase)."""
        if self.erase:
            self._transient = True
            self._write(f"\r\033[Klockdownctl {self.verb}: {text}")

    def done(self) -> None:
        if self._transient:
            self._write(self._clear())

    def interrupted(self, text: str, seconds: float | None = None) -> None:
        """The one-line summary after Ctrl-C or SIGTERM, on any standard error
        (``seconds``: how long the work ran, when this Progress did not time it).
        On a terminal it also erases the ``^C`` the terminal echoed."""
        ran = self.elapsed() if seconds is None else seconds
        self._write_interrupted(f"interrupted after {ran:.1f} s: {text}")

    def _write_interrupted(self, text: str) -> None:
        erase = "\r\033[K" if self.erase else ""
        self._transient = False
        self._write(f"{erase}lockdownctl {self.verb}: {text}\n")


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, already reported in one line by the verb: the command line exits
    130 without a second line."""


def interrupted(verb: str, stream: TextIO | None = None) -> None:
    """The one line for a Ctrl-C that no verb reported itself (exit 130)."""
    Progress(verb, stream)._write_interrupted("interrupted before it finished")


@contextlib.contextmanager
def countdown(progress: Progress, seconds: float, what: str) -> Iterator[None]:
    """``what`` and the seconds left, updated every second while the body runs
    (from a daemon thread: the body may sit in a C call such as ring_buffer__poll)."""
    if not progress.erase:
        progress.say(f"{what} for {seconds:g} s (Ctrl-C stops)")
        yield
        return
    import threading

    start = time.monotonic()
    stop = threading.Event()

    def tick() -> None:
        while True:
            left = max(0.0, seconds - (time.monotonic() - start))
            progress.update(f"{what}: {left:.0f} s left of {seconds:g} s (Ctrl-C stops)")
            if stop.wait(1.0):
                return

    thread = threading.Thread(target=tick, name="lockdownctl-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        progress.done()
