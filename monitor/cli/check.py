"""``repmon check TARGET...``: every check that fits an IP, a CIDR or a domain, now."""

from __future__ import annotations

import argparse
import asyncio

from checks.resolver import parse_nameserver
from checks.result import worst_exit_code
from monitor.adhoc import CHECK_GROUPS, CheckRequest, CheckRequestError, run_checks
from monitor.cli import UsageError
from monitor.cli.output import print_json, print_results
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
    p.add_argument("--json", action="store_true", help="print a JSON array of results")
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
        "--selector", action="append", default=[], help="DKIM selector to check (repeatable)"
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
    try:
        results = asyncio.run(run_checks(config, request))
    except CheckRequestError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        print_json([r.to_json() for r in results])
    else:
        print_results(results)
    return worst_exit_code(results)
