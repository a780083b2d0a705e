"""Result envelope, exit codes and text helpers shared by every verb (docs/design.md section 4)."""

from __future__ import annotations

import os
import sys

from ..errors import EXIT_OK, LockdownctlError, OutputError, status_word

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

ENVELOPE_VERSION = 1


class Result:
    """What a verb returns: data for JSON, a text renderer, and the exit code."""

    def __init__(self, command: str, data: Any, text: Callable[[Any, Style], str], exit_code: int = EXIT_OK,
                 warnings: list[str] | None = None) -> None:
        self.command = command
        self.data = data
        self.text = text
        self.exit_code = exit_code
        self.warnings = warnings or []
        # The verb already streamed JSON lines (watch): the envelope goes last, on one line.
        self.json_lines = False

    @property
    def status(self) -> str:
        return status_word(self.exit_code)


def envelope(command: str, data: Any, exit_code: int, errors: list[dict[str, str]] | None = None,
             warnings: list[str] | None = None) -> dict[str, Any]:
    out = {"lockdownctl": ENVELOPE_VERSION, "command": command, "status": status_word(exit_code),
           "exit_code": exit_code, "data": data, "errors": errors or []}
    if warnings:
        out["warnings"] = warnings
    return out


def error_envelope(command: str, exc: LockdownctlError) -> dict[str, Any]:
    return envelope(command, None, exc.exit_code, [{"code": exc.code, "message": exc.message}])


def output_error(exc: OSError) -> OutputError:
    return OutputError(f"cannot write the output: {exc.strerror or exc}")


def write_stdout(text: str, flush: bool = False) -> None:
    """Standard output, where a failed write is exit 74 with one line, not a
    bug; a closed pipe (``| head``) stays BrokenPipeError: not an error at all."""
    try:
        sys.stdout.write(text)
        if flush:
            sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise output_error(exc) from None


def dump_json(obj: Any, compact: bool = False) -> str:
    from .jsontext import dumps

    return dumps(obj, indent=None if compact else 2)


class Style:
    """ANSI colour only on a terminal, and never with NO_COLOR set (no-color.org)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    @classmethod
    def for_stream(cls, stream: Any = None) -> Style:
        stream = stream or sys.stdout
        tty = hasattr(stream, "isatty") and stream.isatty()
        return cls(tty and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb")

    def _wrap(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.enabled else text

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def good(self, text: str) -> str:
        return self._wrap("32", text)

    def warn(self, text: str) -> str:
        return self._wrap("33", text)

    def bad(self, text: str) -> str:
        return self._wrap("31", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)
