"""The ``dnssec`` check: is the domain's zone signed, and does its chain hold?

DNSSEC is not required to deliver mail, so an unsigned zone is ``ok`` with the
detail "not signed" (``fields.signed = False``).

States:

* ``unknown`` — a DS lookup (at the domain and each parent up to the
  organizational domain) or the DNSKEY lookup failed. A SERVFAIL is
  ``unknown`` here too, even though a validating resolver answers SERVFAIL for a
  bogus zone: we cannot tell that apart from a broken server.
* ``ok`` — no DS record anywhere up to the organizational domain ("not
  signed"), or checkdmarc's ``check_dnssec`` verifies the DS → DNSKEY → RRSIG
  chain ("signed").
* ``problem`` high — a DS record is published but the chain does not verify:
  validating receivers treat the domain's records as bogus and reject mail.

checkdmarc gets a fresh cache per call so an earlier answer is never reused.
"""

from __future__ import annotations

import asyncio

from checkdmarc.dnssec import check_dnssec as checkdmarc_dnssec
from checkdmarc.utils import get_base_domain

from checks.hygiene.library import checkdmarc_nameservers, fresh_cache
from checks.hygiene.lookup import Lookup
from checks.resolver import system_nameservers
from checks.result import OK, PROBLEM, UNKNOWN, CheckResult

CHECK = "dnssec"


def zone_candidates(domain: str) -> list[str]:
    """The domain and its parents down to the organizational domain, most specific first."""
    base = get_base_domain(domain)
    labels = domain.split(".")
    count = len(labels) - len(base.split(".")) + 1
    return [".".join(labels[i:]) for i in range(max(1, count))]


async def check_dnssec(lookup: Lookup, domain: str) -> CheckResult:
    """The ``dnssec`` result for ``domain`` (see the module docstring for each state)."""
    zone = None
    for candidate in zone_candidates(domain):
        ds = await lookup.query(candidate, "DS")
        if ds.failed:
            return CheckResult(domain, CHECK, "", UNKNOWN, error=ds.reason())
        if ds.records:
            zone = candidate
            break
    if zone is None:
        return CheckResult(domain, CHECK, "", OK, "not signed", fields={"signed": False})
    nameservers = checkdmarc_nameservers(lookup.nameservers or system_nameservers())
    try:
        valid = await asyncio.to_thread(
            checkdmarc_dnssec,
            domain,
            nameservers=nameservers,
            timeout=lookup.timeout,
            cache=fresh_cache(),
        )
    except Exception as exc:  # a checkdmarc bug must not read as a verdict
        return CheckResult(domain, CHECK, "", UNKNOWN, error=f"checkdmarc failed: {exc!r}")
    fields = {"signed": True, "zone": zone, "valid": valid}
    if valid:
        return CheckResult(domain, CHECK, "", OK, f"signed ({zone}), chain verifies", fields=fields)
    # checkdmarc says False both for a broken chain and for a lookup it could not
    # complete: ask for the keys ourselves before calling it broken.
    keys = await lookup.query(zone, "DNSKEY")
    if keys.failed:
        return CheckResult(domain, CHECK, "", UNKNOWN, error=keys.reason(), fields=fields)
    detail = f"{zone} has a DS record but its DNSKEY/RRSIG chain does not verify"
    return CheckResult(domain, CHECK, "", PROBLEM, detail, severity="high", fields=fields)
