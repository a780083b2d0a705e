"""``lockdownctl`` command line: parsing and dispatch only; one module per verb."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from .. import __version__
from ..errors import InputError, LockdownctlError
from ..output import Result, Style, dump_json, envelope, error_envelope

EXIT_INTERNAL = 70  # a bug in lockdownctl (sysexits EX_SOFTWARE)

# verb -> module under lockdownctl.cli (each has HELP, add_arguments(), run()).
VERBS = {
    "status": "status",
    "explain": "explain",
}


class _Parser(argparse.ArgumentParser):
    """argparse that raises InputError (exit 2, one line) instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise InputError(f"{self.prog}: {message}")


def common_options(reader: bool = True) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--json", action="store_true", help="print one JSON envelope instead of text")
    if reader:
        parent.add_argument("--root", metavar="PATH", default="/",
                            help="read the host below PATH instead of / (a fixture or mounted image)")
    return parent


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Any]]:
    parser = _Parser(prog="lockdownctl", description="Linux kernel lockdown as a policy the administrator owns.")
    parser.add_argument("--version", action="version", version=f"lockdownctl {__version__}")
    subs = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    modules: dict[str, Any] = {}
    for verb, modname in VERBS.items():
        module = importlib.import_module(f".{modname}", __name__)
        sub = subs.add_parser(verb, help=module.HELP, description=module.HELP,
                              parents=[common_options(getattr(module, "READER", True))])  # type: ignore[list-item]
        module.add_arguments(sub)
        modules[verb] = module
    return parser, modules


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    want_json = "--json" in args_list
    verb = next((a for a in args_list if a in VERBS), "lockdownctl")
    try:
        parser, modules = build_parser()
        args = parser.parse_args(args_list)
        if not args.verb:
            parser.print_help()
            return 2
        result: Result = modules[args.verb].run(args)
        if args.json:
            print(dump_json(envelope(result.command, result.data, result.exit_code, warnings=result.warnings)))
        else:
            for warning in result.warnings:
                print(f"lockdownctl: warning: {warning}", file=sys.stderr)
            text = result.text(result.data, Style.for_stream())
            if text:
                print(text)
        return result.exit_code
    except LockdownctlError as exc:
        if want_json:
            print(dump_json(error_envelope(verb, exc)))
        print(f"lockdownctl: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (lockdownctl ... | head): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug: one line, traceback only on request
        if os.environ.get("LOCKDOWNCTL_DEBUG"):
            traceback.print_exc()
        print(f"lockdownctl: internal error: {type(exc).__name__}: {exc} "
              "(set LOCKDOWNCTL_DEBUG=1 for a traceback, and please report it)", file=sys.stderr)
        return EXIT_INTERNAL
