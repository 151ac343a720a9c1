"""``repmon``: the command line.

Each sub-command lives in its own module here with a ``register(subparsers,
common)`` function; :data:`COMMANDS` lists them in help order. Exit status:
0 fine, 1 a problem was found, 2 usage or configuration error, 3 nothing
wrong found but something could not be checked, 4 the store or the spool is
unavailable. Errors are caught once, here: every error repmon raises on purpose
is a :class:`checks.errors.RepmonError` carrying its exit status.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from checks.errors import EXIT_USAGE, RepmonError, UsageError
from monitor import __version__
from monitor.logs import setup_logging

#: sub-command modules of this package, in the order ``repmon --help`` lists them
COMMANDS = [
    "check",
    "sweep",
    "status",
    "feedback",
    "ingest",
    "sink",
    "cases",
    "reports",
    "evaluate",
    "volume",
    "run",
]

__all__ = ["COMMANDS", "EXIT_USAGE", "UsageError", "build_parser", "main", "run"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="repmon", description="Email deliverability and reputation monitor."
    )
    parser.add_argument("--version", action="version", version=f"repmon {__version__}")
    # the global options work before the sub-command and after it; after it they must not
    # reset what was given before (SUPPRESS: absent unless given there)
    _global_options(parser, default=None)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, default=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"monitor.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"monitor.cli.{name}":
                continue  # not built yet
            raise
        module.register(sub, common)
    return parser


def _global_options(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=default,
        help="TOML config (default: $REPMON_CONFIG, else built-in)",
    )
    flag = False if default is None else default
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=flag, help="log debug messages"
    )
    parser.add_argument("--log-json", action="store_true", default=flag, help="log as JSON lines")


#: exit status after the reader of our output went away (as a shell reports SIGPIPE)
EXIT_CLOSED_PIPE = 141
EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(verbose=args.verbose, as_json=args.log_json)
    try:
        code = args.func(args)
        sys.stdout.flush()
    except RepmonError as exc:
        print(f"repmon: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_CLOSED_PIPE
    return int(code or 0)


def _silence_stdout() -> None:
    """After the reader closed the pipe, point stdout at /dev/null so that the interpreter's
    final flush does not print a second BrokenPipeError."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def run() -> None:
    """The ``repmon`` command: Ctrl-C at any moment (even while starting) exits 130 quietly."""
    try:
        code = main()
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    sys.exit(code)


logging.getLogger("repmon").addHandler(logging.NullHandler())
