"""Errors that end a command with a documented exit code (docs/design.md section 4)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_INPUT = 2
EXIT_FEATURE = 3
EXIT_ROOT = 4
# Nothing could be decided: every check lacked the input it needs (an empty
# --root, an empty log). Not a pass: a verdict needs evidence that was read.
EXIT_UNDECIDED = 5
EXIT_OUTPUT = 74  # standard output could not be written (sysexits EX_IOERR)
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT): 128 + 2, as shells report it


class LockdownctlError(Exception):
    """Base: one line of message, an error code for JSON and an exit status."""

    code = "error"
    exit_code = EXIT_INPUT

    def __init__(self, message: str) -> None:
        # One line, whatever a message quotes (a shell value spanning lines, a parser's text).
        message = clip(message.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\r"))
        super().__init__(message)
        self.message = message


MAX_MESSAGE = 1024  # an error is one line a person reads: a 100 KB argument is not echoed whole


def clip(message: str) -> str:
    """The message with its middle cut when it is longer than MAX_MESSAGE
    (the start names the file or value, the end says what to do)."""
    if len(message) <= MAX_MESSAGE:
        return message
    head, tail = 300, MAX_MESSAGE - 300 - 40
    return f"{message[:head]}...[{len(message) - head - tail} characters cut]...{message[-tail:]}"


class InputError(LockdownctlError):
    """Usage error or a malformed input file (exit 2)."""

    code = "input"
    exit_code = EXIT_INPUT


class FeatureMissing(LockdownctlError):
    """A kernel feature the command needs is missing (exit 3)."""

    code = "feature-missing"
    exit_code = EXIT_FEATURE


class NeedsRoot(LockdownctlError):
    """The command needs root (exit 4)."""

    code = "needs-root"
    exit_code = EXIT_ROOT


def status_word(exit_code: int) -> str:
    """The envelope's ``status`` for an exit code."""
    return {EXIT_OK: "ok", EXIT_FINDINGS: "findings", EXIT_UNDECIDED: "undecided"}.get(exit_code, "error")


class OutputError(LockdownctlError):
    """Standard output could not be written: a full disk, an I/O error (exit 74)."""

    code = "output"
    exit_code = EXIT_OUTPUT
