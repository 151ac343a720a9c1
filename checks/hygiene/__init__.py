"""Sending-domain and sending-IP hygiene: SPF, DMARC, DKIM, MX, MTA-STS, TLS-RPT, BIMI,
DNSSEC, PTR / FCrDNS and SPF authorization of each sending IP.

Every check ends ``ok``, ``problem`` or ``unknown``; a timeout, SERVFAIL or
REFUSED anywhere a check depends on makes it ``unknown`` with the reason,
never "missing" and never "pass". Both entry points are safe to run
concurrently for many targets and never raise for a target's DNS failure (an
unexpected exception inside one check becomes that check's ``unknown``).
See docs/hygiene.md.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Awaitable, Sequence

from checks.hygiene.authorization import check_authorizes
from checks.hygiene.dkim import check_dkim
from checks.hygiene.dmarc import check_dmarc
from checks.hygiene.dnssec import check_dnssec
from checks.hygiene.lookup import Lookup
from checks.hygiene.mx import check_mx
from checks.hygiene.policies import BIMI, MTA_STS, TLS_RPT, check_policy
from checks.hygiene.ptr import check_ptr
from checks.hygiene.spf import check_spf
from checks.resolver import Nameserver
from checks.result import UNKNOWN, CheckResult

__all__ = ["DOMAIN_CHECKS", "HYGIENE_CHECKS", "IP_CHECKS", "check_domain", "check_ip"]

log = logging.getLogger("repmon.hygiene")

#: checks run by :func:`check_domain`, in result order
DOMAIN_CHECKS: tuple[str, ...] = (
    "spf",
    "dmarc",
    "dkim",
    "mx",
    "mta-sts",
    "tls-rpt",
    "bimi",
    "dnssec",
)
#: checks run by :func:`check_ip`, in result order
IP_CHECKS: tuple[str, ...] = ("ptr", "spf-authorizes")
#: every check name this package produces
HYGIENE_CHECKS: tuple[str, ...] = DOMAIN_CHECKS + IP_CHECKS


async def _guarded(
    work: Awaitable[CheckResult], target: str, check: str, source: str = ""
) -> CheckResult:
    """Run one check; a bug inside it becomes an ``unknown`` result, not an exception."""
    try:
        return await work
    except Exception as exc:
        log.warning("%s check of %s failed inside repmon", check, target, exc_info=True)
        return CheckResult(target, check, source, UNKNOWN, error=f"internal error: {exc!r}")


def _domain_name(domain: str) -> str:
    return domain.strip().rstrip(".").lower()


async def check_domain(
    domain: str,
    selectors: Sequence[str],
    nameservers: Sequence[Nameserver],
    timeout: float,
) -> list[CheckResult]:
    """All domain checks for ``domain``: one result per check, one ``dkim`` per selector.

    With no selectors there is no ``dkim`` result (nothing to look up). Each
    DNS query waits ``timeout`` seconds per try (``2 * timeout`` in all); the
    checks run concurrently, so a dead nameserver costs about ``2 * timeout``
    for the whole domain plus the longest chain of dependent lookups.
    """
    domain = _domain_name(domain)
    lookup = Lookup(nameservers, timeout)
    jobs = [
        _guarded(check_spf(lookup, domain), domain, "spf"),
        _guarded(check_dmarc(lookup, domain), domain, "dmarc"),
        *(_guarded(check_dkim(lookup, domain, s), domain, "dkim", s) for s in selectors),
        _guarded(check_mx(lookup, domain), domain, "mx"),
        *(
            _guarded(check_policy(lookup, domain, p), domain, p.check)
            for p in (MTA_STS, TLS_RPT, BIMI)
        ),
        _guarded(check_dnssec(lookup, domain), domain, "dnssec"),
    ]
    return list(await asyncio.gather(*jobs))


async def check_ip(
    ip: str,
    domains: Sequence[str],
    nameservers: Sequence[Nameserver],
    timeout: float,
) -> list[CheckResult]:
    """``ptr`` for ``ip`` and one ``spf-authorizes`` per domain its pool sends for.

    A string that is not an IP address gives ``unknown`` results saying so.
    """
    ip = ip.strip()
    try:
        ip = str(ipaddress.ip_address(ip))
    except ValueError:
        error = f"{ip!r} is not an IP address"
        return [CheckResult(ip, "ptr", "", UNKNOWN, error=error)] + [
            CheckResult(ip, "spf-authorizes", _domain_name(d), UNKNOWN, error=error)
            for d in domains
        ]
    lookup = Lookup(nameservers, timeout)
    jobs = [_guarded(check_ptr(lookup, ip), ip, "ptr")]
    for d in domains:
        d = _domain_name(d)
        jobs.append(_guarded(check_authorizes(lookup, ip, d), ip, "spf-authorizes", d))
    return list(await asyncio.gather(*jobs))
