"""The ``spf-authorizes`` check: would this domain's SPF record let this IP send?

A real RFC 7208 evaluation by pyspf (``spf.query(...).check()``, strict mode:
10-lookup and 2-void-lookup limits), run in a worker thread, for a MAIL FROM
of ``postmaster@DOMAIN``. ``source`` is the domain.

States: ``pass`` → ``ok``; ``fail`` (high), ``softfail`` / ``neutral``
(medium), ``none`` (high, no SPF record) → ``problem`` with the result in the
detail; ``permerror`` → ``problem`` (high); ``temperror`` (timeout, SERVFAIL,
REFUSED anywhere in the evaluation) → ``unknown``.

Nameservers: pyspf does its DNS through the module-level function
``spf.DNSLookup``. We replace it once with :func:`_lookup`, which asks the
resolver stored in a context variable for the evaluation running in this
thread (``asyncio.to_thread`` copies the context, so concurrent evaluations
never share one) and falls back to pyspf's own dnspython lookup when none is
set, leaving other callers in the process unchanged.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import dns.exception
import dns.resolver
import spf

from checks.hygiene.lookup import Lookup
from checks.resolver import sync_resolver
from checks.result import OK, PROBLEM, UNKNOWN, CheckResult

CHECK = "spf-authorizes"

_RESOLVER: contextvars.ContextVar[dns.resolver.Resolver | None] = contextvars.ContextVar(
    "repmon_spf_resolver", default=None
)
_PYSPF_LOOKUP = spf.DNSLookup_dnspython

SEVERITY = {"fail": "high", "softfail": "medium", "neutral": "medium", "none": "high"}


def _lookup(name: str, qtype: str, strict: Any = True, timeout: float = 30) -> list[Any]:
    """pyspf's DNSLookup contract: ``[((name, qtype), value), ...]``, TempError on failure."""
    resolver = _RESOLVER.get()
    if resolver is None:
        return list(_PYSPF_LOOKUP(name, qtype, timeout=timeout))
    out: list[Any] = []
    try:
        answers = resolver.resolve(name, qtype, search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return out
    except (dns.exception.DNSException, OSError) as exc:
        # Timeout, SERVFAIL, REFUSED: pyspf turns TempError into "temperror"
        raise spf.TempError(f"DNS {exc}") from None
    for rd in answers:
        if qtype in ("A", "AAAA"):
            out.append(((name, qtype), rd.address))
        elif qtype == "MX":
            out.append(((name, qtype), (rd.preference, rd.exchange)))
        elif qtype == "PTR":
            out.append(((name, qtype), rd.target.to_text(True)))
        elif qtype in ("TXT", "SPF"):
            out.append(((name, qtype), rd.strings))
    return out


spf.DNSLookup = _lookup


def evaluate(
    ip: str, domain: str, resolver: dns.resolver.Resolver, timeout: float
) -> tuple[str, str]:
    """(result, explanation) of an SPF check of ``ip`` for ``domain``; blocking."""
    _RESOLVER.set(resolver)
    # querytime bounds the whole evaluation (RFC 7208 4.6.4 suggests 20 s);
    # 12 sequential lookups is the most a valid record can need.
    q = spf.query(i=ip, s=f"postmaster@{domain}", h=domain, timeout=timeout, querytime=timeout * 12)
    result, _code, explanation = q.check()
    return result, explanation


async def check_authorizes(lookup: Lookup, ip: str, domain: str) -> CheckResult:
    """The ``spf-authorizes`` result of ``ip`` for ``domain`` (see the module docstring)."""
    resolver = sync_resolver(list(lookup.nameservers), lookup.timeout)
    try:
        result, explanation = await asyncio.to_thread(
            evaluate, ip, domain, resolver, lookup.timeout
        )
    except Exception as exc:  # a pyspf bug must not read as a verdict
        return CheckResult(ip, CHECK, domain, UNKNOWN, error=f"pyspf failed: {exc!r}")
    fields = {"result": result, "explanation": explanation}
    if result == "pass":
        return CheckResult(ip, CHECK, domain, OK, f"{domain} SPF: pass", fields=fields)
    if result == "temperror":
        return CheckResult(ip, CHECK, domain, UNKNOWN, error=explanation, fields=fields)
    if result == "permerror":
        text = f"{domain} SPF: permerror ({explanation})"
        return CheckResult(ip, CHECK, domain, PROBLEM, text, severity="high", fields=fields)
    text = f"{domain} SPF: {result} — {ip} is not authorized"
    if result == "none":
        text = f"{domain} SPF: none — no SPF record"
    severity = SEVERITY.get(result, "high")
    return CheckResult(ip, CHECK, domain, PROBLEM, text, severity=severity, fields=fields)
