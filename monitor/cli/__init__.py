"""``repmon``: the command line.

Each sub-command lives in its own module here with a ``register(subparsers,
common)`` function; :data:`COMMANDS` lists them in help order. Exit status:
0 fine, 1 a problem was found, 2 usage or configuration error, 3 nothing
wrong found but something could not be checked.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from monitor import __version__
from monitor.config import ConfigError
from monitor.store import StoreError

#: sub-command modules of this package, in the order ``repmon --help`` lists them
COMMANDS = ["check", "sweep", "status", "ingest", "sink", "cases", "evaluate", "volume", "run"]

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad arguments: printed and exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="repmon", description="Email deliverability and reputation monitor."
    )
    parser.add_argument("--version", action="version", version=f"repmon {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", metavar="FILE", help="TOML config (default: $REPMON_CONFIG, else built-in)"
    )
    common.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    common.add_argument("--log-json", action="store_true", help="log as JSON lines")
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from monitor.logs import setup_logging

    setup_logging(verbose=args.verbose, as_json=args.log_json)
    try:
        code = args.func(args)
    except (ConfigError, UsageError) as exc:
        print(f"repmon: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StoreError as exc:
        print(f"repmon: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    return int(code or 0)


def run() -> None:
    sys.exit(main())


logging.getLogger("repmon").addHandler(logging.NullHandler())
