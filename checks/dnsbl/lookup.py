"""Blocklist lookups: query names, answer interpretation, RFC 5782 self-tests.

:func:`check_targets` asks every (target, zone) in one bulk pass through a
:class:`~checks.dnsbl.transport.BulkResolver`, fetches the TXT reason of each
listing, and returns one :class:`~checks.result.CheckResult` per pair:

* ``ok`` — the zone answered and the target is not listed (NXDOMAIN, no A
  record, or an allow-list answer);
* ``problem`` — listed: ``codes``, ``meaning``, ``reason`` (TXT), ``delist``;
* ``unknown`` — with ``error``: timeout, SERVFAIL, REFUSED, a refused-query
  answer code, an answer outside 127.0.0.0/8, the zone failed its self-test in
  this run, the zone or the resolver stopped answering ("zone not answering
  (N timeouts)", "resolver HOST:PORT not answering"), or a truncated answer
  could not be asked again over TCP.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from checks.dnsbl.transport import TXT, A, Answer, BulkResolver
from checks.dnsbl.zones import Zone
from checks.errors import TargetError
from checks.result import OK, PROBLEM, SEVERITIES, UNKNOWN, CheckResult

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


@dataclass(frozen=True, slots=True)
class Target:
    """A normalised lookup target: ``kind`` is ``ip4``, ``ip6`` or ``domain``."""

    text: str
    kind: str
    reversed: str  # the label sequence that goes in front of the zone

    @classmethod
    def parse(cls, text: str) -> Target:
        raw = text.strip()
        try:
            addr = ipaddress.ip_address(raw)
        except ValueError:
            return cls._domain(raw)
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        if isinstance(addr, ipaddress.IPv4Address):
            return cls(str(addr), "ip4", ".".join(reversed(str(addr).split("."))))
        # reverse_pointer gives the 32-nibble form; never the in-addr.arpa form
        return cls(str(addr), "ip6", addr.reverse_pointer.removesuffix(".ip6.arpa"))

    @classmethod
    def _domain(cls, raw: str) -> Target:
        name = raw.rstrip(".").lower()
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            raise TargetError(f"{raw!r} is not an IP address or a domain name") from None
        labels = name.split(".")
        if (
            not name
            or len(name) > 253
            or any(not lbl or len(lbl) > 63 for lbl in labels)
            or any(not all(c.isalnum() or c in "-_" for c in lbl) for lbl in labels)
        ):
            raise TargetError(f"{raw!r} is not an IP address or a domain name")
        return cls(name, "domain", name)

    def fits(self, zone: Zone) -> bool:
        if zone.kind == "domain":
            return self.kind == "domain"
        return self.kind == "ip4" or (self.kind == "ip6" and zone.ipv6)


def query_name(target: Target, zone: Zone, key: str | None = None) -> str:
    return f"{target.reversed}.{zone.query_zone(key)}."


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one A answer means on one zone."""

    status: str
    codes: tuple[str, ...] = ()
    meanings: tuple[str, ...] = ()
    severity: str | None = None
    error: str | None = None


def _max_severity(sevs: Sequence[str]) -> str:
    return min(sevs, key=SEVERITIES.index) if sevs else "medium"


def interpret(zone: Zone, answer: Answer) -> Verdict:
    """The meaning of ``answer`` on ``zone`` (no TXT needed)."""
    if answer.error is not None:
        return Verdict(UNKNOWN, error=answer.error)
    addrs = tuple(a for a in answer.addresses if ":" not in a)
    if not addrs:
        return Verdict(OK)
    outside = [a for a in addrs if ipaddress.ip_address(a) not in LOOPBACK]
    if outside:
        return Verdict(
            UNKNOWN,
            codes=addrs,
            error=f"answer {outside[0]} is outside 127.0.0.0/8 (wildcard or hijacked zone)",
        )
    if zone.bitmask:
        return _interpret_bits(zone, addrs)
    refused = [a for a in addrs if a in zone.refused]
    if refused:
        meaning = f": {zone.codes[refused[0]].meaning}" if refused[0] in zone.codes else ""
        return Verdict(
            UNKNOWN,
            codes=addrs,
            error=f"the list refused the query (answer {refused[0]}{meaning})",
        )
    listed = [a for a in addrs if a not in zone.not_listed]
    if not listed:
        return Verdict(OK, codes=addrs, meanings=("allow-list / informational answer",))
    meanings = tuple(zone.codes[a].meaning if a in zone.codes else f"listed ({a})" for a in listed)
    sevs = [zone.codes[a].severity if a in zone.codes else zone.severity for a in listed]
    return Verdict(PROBLEM, tuple(listed), meanings, _max_severity(sevs))


def _interpret_bits(zone: Zone, addrs: tuple[str, ...]) -> Verdict:
    bits = 0
    for a in addrs:
        bits |= int(a.rsplit(".", 1)[1])
    refused = [b for b in zone.refused if bits & int(b)]
    if refused:
        return Verdict(
            UNKNOWN, codes=addrs, error=f"the list refused the query (answer bit {refused[0]})"
        )
    meanings, sevs = [], []
    for bit, code in sorted(zone.codes.items(), key=lambda kv: int(kv[0])):
        if bits & int(bit):
            meanings.append(code.meaning)
            sevs.append(code.severity)
    known = sum(int(b) for b in zone.codes)
    if bits & ~known & ~sum(int(b) for b in zone.refused):
        meanings.append(f"listed (bits {bits})")
        sevs.append(zone.severity)
    if not meanings:
        return Verdict(OK, codes=addrs)
    return Verdict(PROBLEM, addrs, tuple(meanings), _max_severity(sevs))


def selftest_failure(zone: Zone, listed: Answer, unlisted: Answer) -> str | None:
    """Why ``zone`` cannot be trusted in this run, or None.

    A positive test point that is not listed, or a negative one that is, means
    the zone is broken or refusing us. A test query that got no answer says
    nothing about the zone's honesty: the targets' own errors speak for them.
    """
    pos, neg = interpret(zone, listed), interpret(zone, unlisted)
    if pos.status == UNKNOWN and pos.codes:
        return f"self-test: {pos.error}"
    if pos.status == OK and listed.error is None:
        return "self-test failed: the positive test point is not listed"
    if neg.status == PROBLEM:
        return "self-test failed: the negative test point is listed (the zone lists everything)"
    return None


def check_targets(
    targets: Sequence[Target],
    zones: Sequence[Zone],
    resolver: BulkResolver,
    key: str | None = None,
    selftest: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[CheckResult]:
    """Every target against every zone it fits, in (target, zone) order.

    ``on_progress(done, total)`` counts DNS questions over both passes (the A
    lookups, then the TXT reasons of the listings): ``total`` grows once, when
    the second pass starts. It is called from this thread; see
    :meth:`~checks.dnsbl.transport.BulkResolver.resolve`.
    """
    pairs = [(t, z) for t in targets for z in zones if t.fits(z)]
    tests = [z for z in zones if selftest and z.selftest]
    apexes = [z.query_zone(key) for z in zones]
    suffix = {id(z): f".{apex}." for z, apex in zip(zones, apexes, strict=True)}
    questions = [(t.reversed + suffix[id(z)], A) for t, z in pairs]
    for z in tests:
        pos, neg = z.test_points()
        questions.append((query_name(Target.parse(pos), z, key), A))
        questions.append((query_name(Target.parse(neg), z, key), A))
    first_total = 0

    def first_pass(done: int, total: int) -> None:
        nonlocal first_total
        first_total = total
        if on_progress is not None:
            on_progress(done, total)

    answers = resolver.resolve(questions, apexes, first_pass if on_progress else None)
    broken: dict[str, str] = {}
    base = len(pairs)
    for i, z in enumerate(tests):
        why = selftest_failure(z, answers[base + 2 * i], answers[base + 2 * i + 1])
        if why:
            broken[z.zone] = why
    # the engine returns one shared Answer object per distinct answer (every NXDOMAIN, each
    # listing code): interpret each (zone, answer) once
    seen: dict[tuple[int, int], Verdict] = {}
    verdicts = []
    for (_, z), a in zip(pairs, answers, strict=False):
        k = (id(z), id(a))
        v = seen.get(k)
        if v is None:
            v = seen[k] = interpret(z, a)
        verdicts.append(v)
    listed = [
        i for i, v in enumerate(verdicts) if v.status == PROBLEM and pairs[i][1].zone not in broken
    ]
    reasons: dict[int, str] = {}
    if listed:
        second = None
        if on_progress is not None:
            base_total = first_total

            def second(done: int, total: int) -> None:
                on_progress(base_total + done, base_total + total)

        txt = resolver.resolve([(questions[i][0], TXT) for i in listed], apexes, second)
        for i, ans in zip(listed, txt, strict=True):
            reasons[i] = " ".join(ans.texts) if ans.error is None else ""
    # a plain "not listed" (most results) shares its zone's label and read-only fields
    clean = {id(z): (z.label, _clean_fields(z)) for z in zones if z.zone not in broken}
    out: list[CheckResult] = []
    for i, ((t, z), v) in enumerate(zip(pairs, verdicts, strict=True)):
        shared = clean.get(id(z)) if v.status == OK and not v.codes else None
        if shared is not None:
            out.append(
                CheckResult(t.text, "dnsbl", shared[0], OK, "not listed", None, None, shared[1])
            )
        else:
            out.append(_result(t, z, v, reasons.get(i, ""), broken.get(z.zone)))
    return out


def _clean_fields(zone: Zone) -> Mapping[str, object]:
    """The fields of a plain "not listed" result: the same read-only mapping for all."""
    return MappingProxyType(
        {"zone": zone.label, "codes": [], "meaning": "", "reason": "", "delist": ""}
    )


def _result(target: Target, zone: Zone, v: Verdict, reason: str, broken: str | None) -> CheckResult:
    fields = {
        "zone": zone.label,
        "codes": list(v.codes),
        "meaning": "; ".join(v.meanings),
        "reason": reason,
        "delist": zone.delist_url(target.text) if v.status == PROBLEM else "",
    }
    if broken is not None:
        return CheckResult(
            target.text,
            "dnsbl",
            zone.label,
            UNKNOWN,
            "zone not trusted in this run",
            broken,
            None,
            fields,
        )
    if v.status == UNKNOWN:
        return CheckResult(
            target.text, "dnsbl", zone.label, UNKNOWN, "lookup failed", v.error, None, fields
        )
    if v.status == PROBLEM:
        detail = f"listed on {zone.label}: {fields['meaning']}"
        return CheckResult(
            target.text, "dnsbl", zone.label, PROBLEM, detail, None, v.severity, fields
        )
    return CheckResult(target.text, "dnsbl", zone.label, OK, "not listed", None, None, fields)
