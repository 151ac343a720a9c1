"""``repmon check TARGET...``: every check that fits an IP, a CIDR or a domain, now."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import threading
import time

from checks.resolver import parse_nameserver
from checks.result import worst_exit_code
from monitor.adhoc import CHECK_GROUPS, CheckRequest, run_checks
from monitor.cli import UsageError
from monitor.cli.output import (
    RESULT_COLUMNS,
    add_format_option,
    print_csv,
    print_json,
    print_results,
    result_order,
    result_row,
)
from monitor.config import load_config


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "check",
        parents=[common],
        help="check IPs, CIDRs and domains now (blocklists, SPF/DKIM/DMARC, PTR ...)",
        description="Exit status: 0 nothing wrong, 1 a problem found, 2 usage or config "
        "error, 3 nothing wrong found but some lookups could not be answered.",
    )
    p.add_argument("targets", nargs="+", metavar="TARGET", help="IPv4, IPv6, CIDR or domain")
    add_format_option(p)
    p.add_argument(
        "-q", "--problems", action="store_true", help="show problems only (the summary stays)"
    )
    p.add_argument(
        "--resolver",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="nameserver to ask (repeatable; overrides [resolver] nameservers)",
    )
    p.add_argument(
        "--zone", action="append", default=[], metavar="NAME", help="only these zones (repeatable)"
    )
    p.add_argument(
        "--selector",
        action="append",
        default=[],
        help="DKIM selector to check (repeatable; replaces the configured ones)",
    )
    p.add_argument(
        "--domain",
        action="append",
        default=[],
        help="for an IP: domain whose SPF must authorize it (repeatable; default: its pool's)",
    )
    p.add_argument("--only", choices=CHECK_GROUPS, help="run only the blocklist or hygiene checks")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    try:
        nameservers = [parse_nameserver(r) for r in args.resolver] or None
    except ValueError as exc:
        raise UsageError(f"--resolver {exc}") from None
    only = (args.only,) if args.only else CHECK_GROUPS
    if args.zone and not args.only:
        only = ("dnsbl",)
    request = CheckRequest(
        targets=args.targets,
        zones=args.zone,
        selectors=args.selector,
        domains=args.domain,
        only=only,
        nameservers=nameservers,
    )
    with Progress(f"checking {', '.join(args.targets)[:60]}") as progress:
        request = dataclasses.replace(request, on_progress=progress.count)
        results = asyncio.run(run_checks(config, request))
    if args.format == "json":
        shown = [r for r in results if r.status == "problem"] if args.problems else results
        print_json([r.to_json() for r in sorted(shown, key=result_order)])
    elif args.format == "csv":
        shown = [r for r in results if r.status == "problem"] if args.problems else results
        print_csv([result_row(r) for r in sorted(shown, key=result_order)], RESULT_COLUMNS)
    else:
        print_results(results, problems_only=args.problems)
    return worst_exit_code(results)


class Progress:
    """After a second, an elapsed-time line on stderr (a terminal only) until the work ends."""

    def __init__(self, label: str, after: float = 1.0) -> None:
        self.label, self.after = label, after
        self.done, self.total = 0, 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._show, daemon=True)

    def __enter__(self) -> Progress:
        if sys.stderr.isatty():
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join(1)
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()

    def count(self, done: int, total: int) -> None:
        """The DNS engine's progress hook: questions answered so far, of how many."""
        self.done, self.total = done, total

    def _show(self) -> None:
        start = time.monotonic()
        if self._done.wait(self.after):
            return
        while not self._done.wait(0.5):
            counts = f" {self.done}/{self.total} lookups," if self.total else ""
            sys.stderr.write(f"\r{self.label} …{counts} {time.monotonic() - start:.0f}s")
            sys.stderr.flush()
