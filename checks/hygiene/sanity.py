"""Is the resolver telling the truth? The hygiene checks' version of the blocklists' RFC 5782
self-test, asked once per run before any hygiene answer is believed.

Two questions whose true answers are known everywhere:

- the root zone's NS records exist: a resolver that answers NXDOMAIN (or nothing) for the
  root answers NXDOMAIN for everything, and every "record missing" it reports is a lie;
- a random name under ``invalid`` (RFC 6761: never exists) does not exist: a resolver that
  gives it an address rewrites NXDOMAIN (ad pages, captive portals), and every record it
  "finds" may be made up.

A REFUSED, SERVFAIL or timeout on either question does not fail the test: an authoritative
server (not recursive) refuses both, and a broken path shows up in the checks' own answers
as ``unknown``. Only a positive lie fails it; then every hygiene answer of the run is
``unknown`` with the reason.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import dns.exception
import dns.resolver

from checks.resolver import Nameserver, dnspython_resolver
from checks.result import UNKNOWN, CheckResult


async def resolver_lies(nameservers: Sequence[Nameserver], timeout: float) -> str | None:
    """None when the resolver passed (or could not be judged); else what it lied about."""
    resolver = dnspython_resolver(list(nameservers), timeout)
    try:
        await resolver.resolve(".", "NS", search=False)
    except dns.resolver.NXDOMAIN:
        return "the resolver says the root zone does not exist (it answers NXDOMAIN to all)"
    except dns.resolver.NoAnswer:
        return "the resolver says the root zone has no NS records"
    except (dns.exception.DNSException, OSError, ValueError):
        pass  # refused, failed or silent: not a lie
    probe = f"repmon-{secrets.token_hex(6)}.invalid"
    try:
        answer = await resolver.resolve(probe, "A", search=False)
    except (dns.exception.DNSException, OSError, ValueError):
        return None
    found = ", ".join(r.to_text() for r in answer.rrset or ())
    return f"the resolver gives the never-existing name {probe} an address ({found})"


def distrusted(results: Sequence[CheckResult], reason: str) -> list[CheckResult]:
    """``results`` as ``unknown``: the resolver that produced them failed its sanity check."""
    return [
        CheckResult(
            r.target,
            r.check,
            r.source,
            UNKNOWN,
            r.detail,
            error=f"resolver failed its sanity check: {reason}",
        )
        for r in results
    ]
