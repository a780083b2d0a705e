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


COLOR_CHOICES = ("auto", "always", "never")


def color_wanted(mode: str = "auto", stream: Any = None) -> bool:
    """The one decision on colour, for every verb (``--color=WHEN``).

    ``always`` and ``never`` are the user's explicit choice for this run and
    win over the environment: no-color.org asks that "user-level configuration
    files and per-instance command-line arguments should override NO_COLOR".
    ``auto`` colours only a terminal, and not when NO_COLOR is set to a
    non-empty value (an empty NO_COLOR is as if unset, per no-color.org) or
    the terminal says it cannot (TERM=dumb).
    """
    if mode == "always":
        return True
    if mode == "never" or os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    stream = stream or sys.stdout
    return hasattr(stream, "isatty") and stream.isatty()


def terminal_width(stream: Any = None) -> int | None:
    """Columns to fit text into: the terminal's width (``$COLUMNS`` wins, as
    shutil.get_terminal_size reads it) when ``stream`` is a terminal; None
    (unlimited) otherwise, so pipes, files and grep get whole lines, as
    systemctl does when it is not on a terminal."""
    stream = stream or sys.stdout
    if not (hasattr(stream, "isatty") and stream.isatty()):
        return None
    import shutil  # only here: status never renders a table, and shutil is not free to import

    return shutil.get_terminal_size().columns


class Style:
    """ANSI colour when :func:`color_wanted` says so, and the width tables fit."""

    def __init__(self, enabled: bool, width: int | None = None, stream: Any = None) -> None:
        self.enabled = enabled
        self._width = width
        self._stream = stream  # the width is looked up from it when a renderer first asks

    @classmethod
    def for_stream(cls, stream: Any = None, color: str = "auto") -> Style:
        stream = stream or sys.stdout
        return cls(color_wanted(color, stream), stream=stream)

    @property
    def width(self) -> int | None:
        """Columns to fit (None: unlimited); see :func:`terminal_width`."""
        if self._stream is not None:
            self._width, self._stream = terminal_width(self._stream), None
        return self._width

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

    def fill(self, text: str, indent: int) -> str:
        """``text`` (which starts with its own label) wrapped at word boundaries to
        the width, continuation lines indented by ``indent`` columns; unchanged
        when the width is unlimited or the text fits."""
        width = self.width
        if width is None or len(text) <= width or width - indent < 20:
            return text
        import textwrap

        return textwrap.fill(text, width, subsequent_indent=" " * indent, break_on_hyphens=False,
                             break_long_words=True)

    def fit(self, lines: list[str]) -> str:
        """Lines joined, each one too long for the width wrapped under its own
        text: after a label ("    remedy:    ", "note: ") or a verdict word
        ("BREAKS  "). Blocks already fitted (tables: several lines) stay as they are."""
        if self.width is None:
            return "\n".join(lines)
        return "\n".join(line if "\n" in line or len(line) <= self.width else self.fill(line, _hang(line))
                         for line in lines)


def _hang(line: str) -> int:
    import re

    plain = re.sub(r"\x1b\[[0-9;]*m", "", line)
    label = re.match(r"\s*(?:[A-Za-z][\w ]{0,16}:\s+|[A-Z][A-Z-]+\s{2,})?", plain)
    return label.end() if label else 0


_GAP = "  "
_MIN_FREE = 10  # a free-text column is not squeezed below this


def _cap(widths: list[int], floors: list[int], room: int) -> list[int] | None:
    """The widths with the largest common cap that fits ``room``, no column
    below its floor (nor above its natural width); None if even the floors do not fit."""
    if sum(floors) > room:
        return None
    lo, hi = 0, max(widths)
    while lo < hi:
        cap = (lo + hi + 1) // 2
        if sum(max(min(w, cap), f) for w, f in zip(widths, floors, strict=True)) <= room:
            lo = cap
        else:
            hi = cap - 1
    return [max(min(w, lo), f) for w, f in zip(widths, floors, strict=True)]


def _fit(cells: list[list[str]], widths: list[int], free: set[int], width: int) -> list[int]:
    """Column widths within ``width``. First only the free-text columns (log
    lines, evidence, remedies) give up space, widest first, down to
    _MIN_FREE; if that is not enough, every column narrows down to the longest
    word of its body, so an identifier wraps between words but is never cut (a
    header may be). On a terminal narrower still, words break too: a line
    longer than the terminal would be wrapped by the terminal itself, which
    scrambles every column."""
    room = width - len(_GAP) * (len(widths) - 1)
    if sum(widths) <= room:
        return widths
    free_floor = [min(w, _MIN_FREE) for w in widths]
    stage1 = [free_floor[i] if i in free else w for i, w in enumerate(widths)]
    fitted = _cap(widths, stage1, room)
    if fitted is not None:
        return fitted
    words = [max((len(word) for row in cells[1:] for word in row[i].split()), default=1)
             for i in range(len(widths))]
    stage2 = [free_floor[i] if i in free else min(words[i], w) for i, w in enumerate(widths)]
    fitted = _cap(widths, stage2, room)
    if fitted is not None:
        return fitted
    stage3 = [min(w, 4) for w in widths]
    fitted = _cap(widths, stage3, room)
    return fitted if fitted is not None else stage3


def table(rows: list[list[str]], header: list[str], width: int | None = None,
          free: tuple[int, ...] = (-1,)) -> str:
    """Aligned columns. With a ``width`` (the terminal's: :attr:`Style.width`)
    the ``free`` (free-text) columns, by index, are wrapped at word boundaries
    onto continuation lines first so every line fits and every column stays
    aligned; None (not a terminal) keeps every line whole."""
    cells = [[str(c) for c in row] for row in [header, *rows]]
    natural = [max(len(r[i]) for r in cells) for i in range(len(header))]
    free_set = {i % len(header) for i in free}
    widths = natural if width is None else _fit(cells, natural, free_set, width)
    lines = []
    for row in cells:
        parts = [[c] if len(c) <= w else _wrap_cell(c, w) for c, w in zip(row, widths, strict=True)]
        for k in range(max(len(p) for p in parts)):
            lines.append(_GAP.join((p[k] if k < len(p) else "").ljust(w)
                                   for p, w in zip(parts, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _wrap_cell(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width, break_on_hyphens=False) or [""]
