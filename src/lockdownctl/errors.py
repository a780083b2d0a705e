"""Errors that end a command with a documented exit code (design.md section 4)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_INPUT = 2
EXIT_FEATURE = 3
EXIT_ROOT = 4
EXIT_OUTPUT = 74  # standard output could not be written (sysexits EX_IOERR)


class LockdownctlError(Exception):
    """Base: one line of message, an error code for JSON and an exit status."""

    code = "error"
    exit_code = EXIT_INPUT

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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


class OutputError(LockdownctlError):
    """Standard output could not be written: a full disk, an I/O error (exit 74)."""

    code = "output"
    exit_code = EXIT_OUTPUT
