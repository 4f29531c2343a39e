"""Command line entry point.

Each subcommand lives in its own module in this package and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a
callable taking the parsed arguments and returning an exit status.
Errors reach the user as one line and a distinct exit status
(see ``aoeconform.errors``); a traceback only with ``--debug``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from typing import NoReturn

from aoeconform import __version__
from aoeconform.errors import (EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_STATUS_HELP, EXIT_TERMINATED, EXIT_USAGE, HarnessError,
                               Terminated)

# Modules are imported lazily by name so that a missing optional piece
# (or a slow import such as scapy) does not burden every command.
SUBCOMMAND_MODULES = [
    "run",
    "list",
    "selftest",
    "replay",
    "compare",
    "discover",
    "lab",
    "target",
    "io",
    "bench",
    "fuzz",
    "linux",
]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit status 2
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _named_subcommand(argv: list[str] | None) -> str | None:
    """The subcommand ``argv`` names, if it is one we know (then only its module
    is imported: `aoeconform lab vblade` runs as a --restart-cmd, often)."""
    args = argv if argv is not None else sys.argv[1:]
    first = next((a for a in args if not a.startswith("-")), None)
    return first if first in SUBCOMMAND_MODULES else None


def build_parser(argv: list[str] | None = None, *, everything: bool = True) -> argparse.ArgumentParser:
    parser = _Parser(prog="aoeconform", description="ATA over Ethernet conformance and fuzzing harness",
                     epilog=EXIT_STATUS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"aoeconform {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for internal errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    only = None if everything else _named_subcommand(argv)
    for name in ([only] if only else SUBCOMMAND_MODULES):
        try:
            module = importlib.import_module(f"aoeconform.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"aoeconform.cli.{name}":
                continue  # not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:]) or bool(os.environ.get("AOECONFORM_DEBUG"))
    try:
        parser = build_parser(argv, everything=False)
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return EXIT_USAGE
        status = args.func(args)
        return int(status or 0)
    except HarnessError as exc:
        print(f"aoeconform: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt as exc:
        if isinstance(exc, Terminated):
            print("aoeconform: terminated", file=sys.stderr)
            return EXIT_TERMINATED
        print("aoeconform: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug in aoeconform: one line unless --debug
        if debug:
            traceback.print_exc()
        print(
            f"aoeconform: internal error: {type(exc).__name__}: {exc} (rerun with --debug for a traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
