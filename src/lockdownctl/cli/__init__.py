"""``lockdownctl`` command line: parsing and dispatch only; one module per verb.

Each verb module has HELP, add_arguments(parser), run(args) and may have
prefetch(argv): work started from the raw arguments before argparse is even
imported (``status`` starts its kernel-side reads there, in a child process).
Only the invoked verb's module is imported, which keeps start-up fast.
"""

from __future__ import annotations

import gc
import importlib
import os
import sys

from .. import __version__
from ..errors import InputError, LockdownctlError, OutputError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from typing import Any, NoReturn

    from ..output import Result

EXIT_INTERNAL = 70  # a bug in lockdownctl (sysexits EX_SOFTWARE)

# verb -> (module under lockdownctl.cli, one-line help)
VERBS = {
    "status": ("status", "show the lockdown level, why it is set, and what can enforce more"),
    "explain": ("explain", "explain lockdown reasons: what each guards, what breaks, what to do"),
    "check": ("check", "readiness: what will break at a lockdown level, with evidence"),
    "audit": ("audit", "audit kernel config, command line and sysctls against a lockdown level"),
    "enable": ("enable", "turn lockdown on at boot through the detected boot setup (or now, through securityfs)"),
    "disable": ("disable", "remove lockdown= from the boot setup (the running kernel keeps its level)"),
    "watch": ("watch", "watch the kernel log for lockdown denials and level changes"),
    "enforce": ("enforce", "enforce lockdown with a BPF LSM policy: apply, status, events, remove"),
    "policy": ("policy", "validate an enforcer policy file"),
    "metrics": ("metrics", "Prometheus metrics: node_exporter textfile, exporter, or standard output"),
}


def _formatter(prog: str) -> argparse.HelpFormatter:
    import argparse

    # argparse imports shutil (and with it bz2 and lzma) only to learn the
    # terminal width; os.get_terminal_size is enough and keeps startup fast.
    try:
        width = os.get_terminal_size().columns - 2
    except OSError:
        width = 78
    return argparse.HelpFormatter(prog, width=max(width, 40))


def _parser_class() -> type[argparse.ArgumentParser]:
    import argparse

    class Parser(argparse.ArgumentParser):
        """argparse that raises InputError (exit 2, one line) instead of exiting."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("formatter_class", _formatter)
            super().__init__(*args, **kwargs)

        def error(self, message: str) -> None:  # type: ignore[override]
            raise InputError(f"{self.prog}: {message}")

        # --help and --version print, then exit 0: a full disk under a
        # redirected stdout is exit 74 there too, as for every verb's output.
        def _print_message(self, message: str, file: Any = None) -> None:
            if message:
                try:
                    (file or sys.stderr).write(message)
                except BrokenPipeError:
                    raise
                except OSError as exc:
                    from ..output import output_error

                    raise output_error(exc) from None

        def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
            if message:
                self._print_message(message, sys.stderr)
            try:
                sys.stdout.flush()
            except BrokenPipeError:
                raise
            except OSError as exc:
                from ..output import output_error

                raise output_error(exc) from None
            raise SystemExit(status)

    return Parser


def color_option(parser: argparse.ArgumentParser) -> None:
    """``--color=WHEN`` (the decision: output.color_wanted)."""
    parser.add_argument("--color", metavar="WHEN", choices=("auto", "always", "never"), default="auto",
                        help="colour the text: auto (the default: only on a terminal, and not when NO_COLOR is "
                        "set non-empty or TERM=dumb), always (also into a pipe or with NO_COLOR), never")


def common_options(parser: argparse.ArgumentParser, reader: bool = True) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print JSON instead of text: one envelope, or JSON lines (one object per line, "
                        "the envelope last) where events stream: watch, --follow")
    color_option(parser)
    if reader:
        parser.add_argument("--root", metavar="PATH", default="/",
                            help="read the host below PATH instead of / (a fixture or mounted image)")


def verb_module(verb: str) -> Any:
    return importlib.import_module(f".{VERBS[verb][0]}", __name__)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: every verb as a subcommand (for --help, --version
    and arguments that name no verb)."""
    parser_class = _parser_class()
    parser = parser_class(prog="lockdownctl",
                          description="Linux kernel lockdown as a policy the administrator owns.")
    parser.add_argument("--version", action="version", version=f"lockdownctl {__version__}")
    subs = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=parser_class)
    for name, (_module, help_text) in VERBS.items():
        _add_verb(subs.add_parser(name, help=help_text, description=help_text), name)
    return parser


def verb_parser(verb: str) -> argparse.ArgumentParser:
    """One verb's parser alone: what runs for ``lockdownctl VERB ...``.

    Building every subparser costs several milliseconds per verb (argparse
    looks up message translations for each), so the common path builds one.
    """
    help_text = VERBS[verb][1]
    parser = _parser_class()(prog=f"lockdownctl {verb}", description=help_text)
    _add_verb(parser, verb)
    return parser


def _add_verb(parser: argparse.ArgumentParser, verb: str) -> None:
    module = verb_module(verb)
    if getattr(module, "COMMON_OPTIONS", True):  # verbs with actions add them per action
        common_options(parser, getattr(module, "READER", True))
    module.add_arguments(parser)


def _peek_verb(argv: list[str]) -> str | None:
    """The verb argparse will pick: the first argument that is not an option."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in VERBS else None
    return None


def entry() -> None:
    """The ``lockdownctl`` executable: :func:`main`, then exit without tearing
    the interpreter down.

    A short-lived command needs neither the cyclic garbage collector (it runs
    dozens of passes over the objects module imports create) nor the
    interpreter's finalisation (clearing every module): together about 7 ms of
    a 25 ms ``status``. Verbs that keep running turn the collector back on
    (:data:`ONE_SHOT` in their module is false).
    """
    gc.disable()
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass  # the reader went away (lockdownctl ... | head): as in main()
    except OSError as exc:  # a full disk under a redirected stdout: never lose output silently
        from ..output import output_error

        print(f"lockdownctl: error: {output_error(exc).message}", file=sys.stderr)
        code = OutputError.exit_code
    try:
        sys.stderr.flush()
    finally:
        os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    want_json = "--json" in args_list
    # Followers print JSON lines: an error there is one more line, not a pretty envelope.
    follow = "--follow" in args_list or "-f" in args_list
    verb = _peek_verb(args_list)
    prefetched = None
    try:
        if verb is None:  # --help, --version, or no verb: the whole tree answers
            build_parser().parse_args(args_list)
            build_parser().print_help()
            return 2
        module = verb_module(verb)
        if not getattr(module, "ONE_SHOT", False):
            gc.enable()  # this verb may run for long: collect cycles as usual
        if hasattr(module, "prefetch"):
            prefetched = module.prefetch(args_list)
        rest = list(args_list)
        rest.remove(verb)
        from .fastargs import parse

        args = parse(lambda p: _add_verb(p, verb), rest) or verb_parser(verb).parse_args(rest)
        args.prefetched, prefetched = prefetched, None
        result: Result = module.run(args)
        return _emit(result, args.json, getattr(args, "color", "auto"))
    except LockdownctlError as exc:
        if want_json and not isinstance(exc, OutputError):
            from ..output import dump_json, error_envelope

            print(dump_json(error_envelope(verb or "lockdownctl", exc), compact=follow))
        print(f"lockdownctl: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # Ctrl-C: one line, never a traceback (lockdownctl(8): exit 130)
        if type(exc) is KeyboardInterrupt:  # a verb that said how far it got raises output.progress.Interrupted
            from ..output.progress import interrupted

            interrupted(verb or "")
        return 130
    except BrokenPipeError:
        # The reader went away (lockdownctl ... | head): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug: one line, traceback only on request
        if os.environ.get("LOCKDOWNCTL_DEBUG"):
            import traceback

            traceback.print_exc()
        print(f"lockdownctl: internal error: {type(exc).__name__}: {exc} "
              "(set LOCKDOWNCTL_DEBUG=1 for a traceback, and please report it)", file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        if prefetched is not None:  # started, but the command never got to use it
            prefetched.discard()


def _emit(result: Result, as_json: bool, color: str = "auto") -> int:
    from ..output import Style, dump_json, envelope, write_stdout

    if as_json:
        text = dump_json(envelope(result.command, result.data, result.exit_code, warnings=result.warnings),
                         compact=result.json_lines)
    else:
        for warning in result.warnings:
            print(f"lockdownctl: warning: {warning}", file=sys.stderr)
        text = result.text(result.data, Style.for_stream(color=color))
    if text:
        write_stdout(text + "\n")
    return result.exit_code
