"""The ``mx`` check: the sending domain can receive mail (bounces, replies, reports).

States:

* ``unknown`` — the MX lookup, or the A/AAAA lookup of any MX host, failed.
* ``problem`` high — the domain does not exist (NXDOMAIN), publishes a null MX
  (``0 .``, RFC 7505: receivers may reject mail from it), or none of its MX
  hosts has an address.
* ``problem`` medium — no MX record (mail to it falls back to the A record,
  RFC 5321 section 5.1, and many receivers distrust senders without one), or
  some MX hosts have no address.
* ``ok`` — every MX host resolves to at least one address.
"""

from __future__ import annotations

import asyncio

from checks.hygiene.lookup import NXDOMAIN, Lookup, addresses_of
from checks.result import OK, PROBLEM, UNKNOWN, CheckResult

CHECK = "mx"


async def check_mx(lookup: Lookup, domain: str) -> CheckResult:
    """The ``mx`` result for ``domain`` (see the module docstring for each state)."""
    mx = await lookup.query(domain, "MX")
    if mx.failed:
        return CheckResult(domain, CHECK, "", UNKNOWN, error=mx.reason())
    if mx.absent == NXDOMAIN:
        return CheckResult(
            domain, CHECK, "", PROBLEM, f"{domain} does not exist (NXDOMAIN)", severity="high"
        )
    if mx.absent:
        return CheckResult(
            domain,
            CHECK,
            "",
            PROBLEM,
            "no MX record: mail falls back to the A record",
            severity="medium",
            fields={"hosts": []},
        )
    hosts = sorted(zip(mx.preferences, mx.records, strict=True))
    if any(name in (".", "") for _, name in hosts):
        return CheckResult(
            domain,
            CHECK,
            "",
            PROBLEM,
            "null MX (RFC 7505): the domain accepts no mail",
            severity="high",
            fields={"hosts": []},
        )
    answers = await asyncio.gather(*(lookup.addresses(name) for _, name in hosts))
    for pair in answers:
        for a in pair:
            if a.failed:
                return CheckResult(domain, CHECK, "", UNKNOWN, error=f"MX host {a.reason()}")
    listed = [
        {"host": name, "preference": pref, "addresses": addresses_of(pair)}
        for (pref, name), pair in zip(hosts, answers, strict=True)
    ]
    dead = [str(h["host"]) for h in listed if not h["addresses"]]
    if dead:
        severity = "high" if len(dead) == len(listed) else "medium"
        return CheckResult(
            domain,
            CHECK,
            "",
            PROBLEM,
            f"MX hosts without an address: {', '.join(dead)}",
            severity=severity,
            fields={"hosts": listed},
        )
    detail = ", ".join(f"{h['preference']} {h['host']}" for h in listed)
    return CheckResult(domain, CHECK, "", OK, detail, fields={"hosts": listed})
