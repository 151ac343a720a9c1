"""Mirror answers in the shape of DNS answers, so that they become the same CheckResults.

:class:`MirrorResolver` answers the ``(query name, type)`` questions that
:func:`checks.dnsbl.lookup.check_targets` asks, from loaded mirrors instead of the network:
the zone is found by the longest suffix, the rest of the name is read back into an address
(4 decimal labels, or 32 hex nibbles) or a name, exactly as rbldnsd reads a query. The
verdicts, codes, severities, TXT reasons, delist links and self-tests then come from the
same code as for DNS answers.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, cast

from checks.dnsbl.lookup import Target, check_targets, selftest_failure
from checks.dnsbl.mirror.answers import Answer
from checks.dnsbl.mirror.mirror import Mirror
from checks.dnsbl.wire import NOERROR, NXDOMAIN, TXT, A
from checks.dnsbl.wire import Answer as DnsAnswer
from checks.dnsbl.zones import Zone
from checks.result import CheckResult

if TYPE_CHECKING:
    from checks.dnsbl.transport import BulkResolver

_NIBBLES = frozenset("0123456789abcdef")
_REFUSED = 5


def dns_answer(answer: Answer | None, qtype: int = A) -> DnsAnswer:
    """A mirror's answer as a DNS server would send it for a ``qtype`` question."""
    if answer is None:
        return DnsAnswer(NXDOMAIN)
    if qtype == A:
        return DnsAnswer(NOERROR, addresses=answer.codes)
    if qtype == TXT:
        return DnsAnswer(NOERROR, texts=answer.texts)
    return DnsAnswer(NOERROR)


def _address(labels: Sequence[str]) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a reversed query name stands for, as rbldnsd decodes it, or None."""
    if len(labels) == 4 and all(0 < len(x) <= 3 and x.isdigit() and x.isascii() for x in labels):
        octets = [int(x) for x in reversed(labels)]
        if max(octets) <= 255:
            return ipaddress.IPv4Address(bytes(octets))
    if len(labels) == 32 and all(len(x) == 1 and x in _NIBBLES for x in labels):
        return ipaddress.IPv6Address(int("".join(reversed(labels)), 16))
    return None


class MirrorResolver:
    """Answers blocklist questions from mirrors, keyed by the zone name that is queried.

    Has the ``resolve`` method of :class:`~checks.dnsbl.transport.BulkResolver`; a question
    for a zone without a mirror answers REFUSED (an ``unknown`` result, never "clean").
    """

    def __init__(self, mirrors: Mapping[str, Mirror]) -> None:
        self.mirrors = {z.lower().rstrip("."): m for z, m in mirrors.items()}

    def answer(self, name: str) -> Answer | None | DnsAnswer:
        """The mirror's answer to a query name; a DnsAnswer when no mirror can answer."""
        labels = name.lower().rstrip(".").split(".")
        for cut in range(len(labels) + 1):
            mirror = self.mirrors.get(".".join(labels[cut:]))
            if mirror is None:
                continue
            sub = labels[:cut]
            if not sub:
                return DnsAnswer(NOERROR)  # the zone's apex: SOA and NS only
            if mirror.names is not None:
                return mirror.lookup(".".join(sub))
            addr = _address(sub)
            return mirror.lookup(addr) if addr is not None else None
        return DnsAnswer(_REFUSED, error="REFUSED")

    def resolve(
        self,
        questions: Sequence[tuple[str, int]],
        zones: Iterable[str] | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> list[DnsAnswer]:
        """One answer per ``(name, qtype)`` question, in order.

        ``zones`` is accepted for the BulkResolver signature (mirrors know their zones);
        ``on_progress(done, total)`` is called once, at the end: there is no waiting.
        """
        out = []
        for name, qtype in questions:
            got = self.answer(name)
            out.append(got if isinstance(got, DnsAnswer) else dns_answer(got, qtype))
        if on_progress is not None:
            on_progress(len(out), len(out))
        return out


def mirror_selftest(mirror: Mirror, zone: Zone) -> str | None:
    """Why ``mirror`` fails ``zone``'s RFC 5782 self-test (positive test point not listed,
    negative one listed), or None when it passes."""
    listed, unlisted = (Target.parse(t).text for t in zone.test_points())
    pos, neg = mirror.test_points(listed, unlisted)
    return selftest_failure(zone, dns_answer(pos), dns_answer(neg))


def check_with_mirrors(
    targets: Sequence[Target],
    zones: Sequence[Zone],
    mirrors: Mapping[str, Mirror],
    key: str | None = None,
    selftest: bool = True,
) -> list[CheckResult]:
    """:func:`~checks.dnsbl.lookup.check_targets` answered by mirrors instead of DNS.

    ``mirrors`` is keyed by each zone's query name (``zone.query_zone(key)``).
    """
    resolver = MirrorResolver(mirrors)
    # check_targets only calls resolve(): the mirror resolver has the same one
    return check_targets(targets, zones, cast("BulkResolver", resolver), key, selftest)
