"""DNS lookups that keep "the server said no" apart from "the server did not answer".

Every hygiene verdict rests on one of three outcomes of a query:

* records were returned (``Answer.records``),
* an answering server said the name or type does not exist (``Answer.absent``:
  ``NXDOMAIN`` or ``NODATA``) — a real absence,
* no usable answer came back (``Answer.failure``: timeout, SERVFAIL, REFUSED,
  network error) — the check that needed it becomes ``unknown``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver
import dns.reversename
import dns.rrset

from checks.resolver import Nameserver, dnspython_resolver

NXDOMAIN = "NXDOMAIN"
NODATA = "NODATA"


@dataclass(frozen=True, slots=True)
class Answer:
    """The outcome of one (name, type) query.

    Exactly one of three holds: ``records`` is non-empty; ``absent`` is
    ``NXDOMAIN``/``NODATA``; ``failure`` says why nothing usable came back.
    TXT records are the joined character-strings, decoded as UTF-8 (bad bytes
    replaced); names (MX, PTR, CNAME targets) have no trailing dot.
    """

    name: str
    rdtype: str
    records: tuple[str, ...] = ()
    absent: str | None = None
    failure: str | None = None
    #: MX preferences, parallel to ``records`` (MX queries only)
    preferences: tuple[int, ...] = ()

    @property
    def failed(self) -> bool:
        return self.failure is not None

    def reason(self) -> str:
        """Human text for the failure or absence, e.g. ``_dmarc.a.test TXT: REFUSED``."""
        return f"{self.name} {self.rdtype}: {self.failure or self.absent or 'answered'}"


def _failure_text(exc: BaseException) -> str:
    """Short reason for a resolver exception: the rcode when one is known."""
    if isinstance(exc, dns.resolver.LifetimeTimeout | dns.exception.Timeout):
        return "timeout"
    if isinstance(exc, dns.resolver.NoNameservers):
        text = str(exc)
        for rcode in ("REFUSED", "SERVFAIL", "NOTIMP", "FORMERR", "YXDOMAIN", "NOTAUTH"):
            if rcode in text:
                return rcode
        return text
    if isinstance(exc, dns.resolver.YXDOMAIN):
        return "YXDOMAIN"
    return f"{type(exc).__name__}: {exc}"


class Lookup:
    """Classified async queries against the configured nameservers.

    One instance per check run; it holds no answers between calls (the resolver
    has no cache), so a later scheduled run always sees the zone as it is then.
    """

    def __init__(self, nameservers: Sequence[Nameserver], timeout: float) -> None:
        self.nameservers = list(nameservers)
        self.timeout = timeout
        self.resolver: dns.asyncresolver.Resolver = dnspython_resolver(self.nameservers, timeout)

    async def query(self, name: str, rdtype: str) -> Answer:
        """Ask for ``rdtype`` at ``name``; never raises for a DNS outcome."""
        name = name.rstrip(".").lower()
        try:
            ans = await self.resolver.resolve(name, rdtype, search=False)
        except dns.resolver.NXDOMAIN:
            return Answer(name, rdtype, absent=NXDOMAIN)
        except dns.resolver.NoAnswer:
            return Answer(name, rdtype, absent=NODATA)
        except (dns.exception.DNSException, OSError, ValueError) as exc:
            # dns.name errors (label too long, empty label) are a bad name in a
            # record, which is absence-like, but we cannot tell what was meant:
            # report them as failures with the reason rather than guessing.
            return Answer(name, rdtype, failure=_failure_text(exc))
        if ans.rrset is None:
            return Answer(name, rdtype, absent=NODATA)
        return _answer_from(name, rdtype, ans.rrset)

    async def txt(self, name: str) -> Answer:
        return await self.query(name, "TXT")

    async def addresses(self, name: str) -> tuple[Answer, Answer]:
        """A and AAAA for ``name``, asked at the same time."""
        a, aaaa = await asyncio.gather(self.query(name, "A"), self.query(name, "AAAA"))
        return a, aaaa

    async def ptr(self, ip: str) -> Answer:
        return await self.query(dns.reversename.from_address(ip).to_text(), "PTR")


def _answer_from(name: str, rdtype: str, rrset: dns.rrset.RRset) -> Answer:
    records: list[str] = []
    prefs: list[int] = []
    for rd in rrset:
        if rd.rdtype == dns.rdatatype.TXT:
            records.append(b"".join(rd.strings).decode("utf-8", errors="replace"))
        elif rd.rdtype == dns.rdatatype.MX:
            records.append(rd.exchange.to_text(omit_final_dot=True).lower())
            prefs.append(rd.preference)
        elif rd.rdtype in (dns.rdatatype.PTR, dns.rdatatype.CNAME, dns.rdatatype.NS):
            records.append(rd.target.to_text(omit_final_dot=True).lower())
        else:
            records.append(rd.to_text())
    return Answer(name, rdtype, records=tuple(records), preferences=tuple(prefs))


def addresses_of(answers: Sequence[Answer]) -> list[str]:
    """All addresses in a set of A/AAAA answers."""
    return [r for a in answers for r in a.records]


def first_failure(answers: Sequence[Answer]) -> Answer | None:
    """The first answer that failed, if any (its ``reason()`` goes into ``error``)."""
    return next((a for a in answers if a.failed), None)
