"""The time-series schema: one builder per measurement, each returning line-protocol strings.

docs/timeseries.md is the one place the schema is documented (measurements,
tags, fields, units, cardinality); keep it in step with this module. Rules that
hold for every builder:

- a tag is a bounded identifier (IP, zone, domain, pool, category ...); no
  recipient address and no free text ever becomes a tag;
- an empty tag value is written as ``none`` (``unattributed`` for a feedback
  count with no sending IP);
- the timestamp is the one the store knows (sweep time, bucket start, report
  end), so writing the same row again overwrites the same point.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from checks.result import OK, PROBLEM, UNKNOWN, CheckResult, Status
from collectors.feedback.categories import HARD_CATEGORIES
from monitor.timeseries.line import EMPTY, FieldValue, escape_tag, line, timestamp_ns

#: receiving domains kept as themselves; every other domain is counted as :data:`OTHER`
MAILBOX_PROVIDERS: frozenset[str] = frozenset(
    {
        "gmail.com", "googlemail.com",
        "yahoo.com", "yahoo.co.uk", "yahoo.fr", "yahoo.de", "yahoo.co.jp", "ymail.com",
        "rocketmail.com",
        "outlook.com", "hotmail.com", "live.com", "msn.com", "hotmail.co.uk", "outlook.de",
        "aol.com",
        "icloud.com", "me.com", "mac.com",
        "gmx.de", "gmx.net", "gmx.com", "web.de", "t-online.de",
        "mail.ru", "bk.ru", "inbox.ru", "list.ru",
        "yandex.ru", "yandex.com", "ya.ru",
        "comcast.net", "att.net", "sbcglobal.net", "verizon.net", "cox.net", "charter.net",
        "orange.fr", "wanadoo.fr", "free.fr", "laposte.net", "libero.it", "qq.com", "163.com",
        "naver.com", "proton.me", "protonmail.com", "zoho.com", "fastmail.com",
    }
)  # fmt: skip

OTHER = "other"
UNATTRIBUTED = "unattributed"

#: ``hygiene`` ``state`` values: higher is worse, ``max()`` over a window is the worst seen
STATE_OK, STATE_UNKNOWN, STATE_PROBLEM = 0, 1, 2
_STATE: dict[str, int] = {OK: STATE_OK, UNKNOWN: STATE_UNKNOWN, PROBLEM: STATE_PROBLEM}

Owners = Mapping[str, tuple[str, str]]
Row = Mapping[str, Any]


def receiving_domain_tag(domain: str, providers: Collection[str] = MAILBOX_PROVIDERS) -> str:
    """``domain`` if it is a listed mailbox provider, else ``other`` (bounded cardinality)."""
    d = domain.strip().lower().rstrip(".")
    return d if d in providers else OTHER


#: an IPv4 address as ``ipaddress`` writes it (no leading zeros, each octet 0-255)
_DOTTED_QUAD = re.compile(
    r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
)


def _dotted_quad(text: str) -> bool:
    """``text`` is an IPv4 address as ``ipaddress`` writes it (no parsing object made)."""
    return _DOTTED_QUAD.fullmatch(text) is not None


def _target_type(target: str) -> str:
    if _dotted_quad(target):
        return "ip"
    try:
        ipaddress.ip_address(target)
    except ValueError:
        return "domain"
    return "ip"


def _owner(owners: Owners, target: str) -> dict[str, str]:
    pool, customer = owners.get(target, ("", ""))
    return {"pool": pool or EMPTY, "customer": customer or EMPTY}


def _dnsbl_tags(target: str, zone: str, severity: str | None, owners: Owners) -> dict[str, str]:
    return {
        "target": target,
        "target_type": _target_type(target),
        "zone": zone,
        "severity": severity or EMPTY,
        **_owner(owners, target),
    }


def _dnsbl_fields(status: str) -> dict[str, FieldValue]:
    # an unknown answer carries no ``listed``: last(listed) stays the last known state
    # and it never reads as "delisted" (nor, on the next answer, as a new listing)
    if status == UNKNOWN:
        return {"unknown": 1}
    return {"listed": int(status == PROBLEM), "unknown": 0}


_DNSBL_FIELDS: dict[str, str] = {
    OK: "listed=0i,unknown=0i",
    PROBLEM: "listed=1i,unknown=0i",
    UNKNOWN: "unknown=1i",
}


class _DnsblLines:
    """``dnsbl`` lines of many results, byte for byte what :func:`line` makes of
    :func:`_dnsbl_tags` and :func:`_dnsbl_fields`, with the escaping of the few distinct
    pools, customers, zones and severities done once (a chunk has thousands of listings)."""

    def __init__(self, owners: Owners) -> None:
        self.owners = owners
        self._escaped: dict[str, str] = {}
        self._types: dict[str, str] = {}

    def _esc(self, text: str) -> str:
        out = self._escaped.get(text)
        if out is None:
            out = self._escaped[text] = escape_tag(text)
        return out

    def __call__(self, target: str, zone: str, severity: str | None, status: str, ns: int) -> str:
        pool, customer = self.owners.get(target, ("", ""))
        esc = self._esc
        kind = self._types.get(target)
        if kind is None:  # a target is listed on several zones: worked out once a call
            kind = self._types[target] = _target_type(target)
        tags = (
            f",customer={esc(customer or EMPTY)},pool={esc(pool or EMPTY)}"
            f",severity={esc(severity or EMPTY)},target={escape_tag(target)}"
            f",target_type={kind},zone={esc(zone)}"
        )
        return f"dnsbl{tags} {_DNSBL_FIELDS[status]} {ns}"


def dnsbl_points(results: Iterable[CheckResult], at: dt.datetime, owners: Owners) -> list[str]:
    """``dnsbl`` points of a bulk sweep's chunk: one per result given (its listings and the
    unknowns that have a row; the sweep passes no ``ok`` result), shaped as in
    :func:`check_points`."""
    make, ns = _DnsblLines(owners), timestamp_ns(at)
    return [
        make(r.target, r.source, r.severity if r.status == PROBLEM else None, r.status, ns)
        for r in results
    ]


def dnsbl_clean_points(pairs: Iterable[tuple[str, str, dt.datetime]], owners: Owners) -> list[str]:
    """``dnsbl`` points ``listed=0, unknown=0`` for (target, zone, time) answered not listed
    then: a listing or an unknown that ended (time: that sweep), and the last clean answer
    before a new listing (time: the sweep that gave it), so that ``difference("listed")``
    sees the listing begin although clean answers are not written each sweep."""
    make = _DnsblLines(owners)
    return [make(target, zone, None, OK, timestamp_ns(at)) for target, zone, at in pairs]


def dnsbl_zone_points(counts: Mapping[str, tuple[int, int, int]], at: dt.datetime) -> list[str]:
    """``dnsbl_zone`` points: per zone (queries, unknown, listed) of one sweep, at its start."""
    return [
        line("dnsbl_zone", {"zone": zone}, {"queries": q, "unknown": u, "listed": n}, at)
        for zone, (q, u, n) in counts.items()
    ]


def dnsbl_pool_points(
    counts: Mapping[tuple[str, str, str], tuple[int, int, int]], at: dt.datetime
) -> list[str]:
    """``dnsbl_pool`` points: per (pool, customer, zone) the targets one sweep covered, found
    listed and could not check (covered, listed, unknown), at the sweep's start."""
    return [
        line(
            "dnsbl_pool",
            {"pool": pool or EMPTY, "customer": customer or EMPTY, "zone": zone},
            {"covered": covered, "listed": listed, "unknown": unknown},
            at,
        )
        for (pool, customer, zone), (covered, listed, unknown) in counts.items()
    ]


def check_points(results: Sequence[CheckResult], at: dt.datetime, owners: Owners) -> list[str]:
    """Points of one sweep: ``dnsbl`` per (target, zone), ``hygiene`` per (target, check),
    ``dnsbl_zone`` per zone.

    A ``dnsbl`` point has ``listed`` 1 (problem) or 0 (ok) and ``unknown`` 0;
    an unknown answer has ``unknown`` 1 and no ``listed`` field at all.

    ``owners`` maps a target (IP or domain) to ``(pool, customer)``; a target
    missing from it is written with ``none`` for both. All points carry ``at``.
    Several hygiene results of one (target, check) (DKIM selectors, SPF
    authorization per domain) become one point with the worst status: problem,
    else unknown, else ok.
    """
    out: list[str] = []
    zones: dict[str, dict[str, int]] = defaultdict(
        lambda: {"queries": 0, "unknown": 0, "listed": 0}
    )
    hygiene: dict[tuple[str, str], Status] = {}
    for r in results:
        if r.check == "dnsbl":
            severity = r.severity if r.status == PROBLEM else None
            fields = _dnsbl_fields(r.status)
            out.append(line("dnsbl", _dnsbl_tags(r.target, r.source, severity, owners), fields, at))
            z = zones[r.source]
            z["queries"] += 1
            z["unknown"] += int(r.status == UNKNOWN)
            z["listed"] += int(r.status == PROBLEM)
        else:
            key = (r.target, r.check)
            if _STATE[r.status] > _STATE[hygiene.get(key, OK)] or key not in hygiene:
                hygiene[key] = r.status
    for (target, check), status in hygiene.items():
        tags = {
            "target": target,
            "target_type": _target_type(target),
            "check": check,
            **_owner(owners, target),
        }
        fields = {
            "ok": int(status == OK),
            "problem": int(status == PROBLEM),
            "unknown": int(status == UNKNOWN),
            "state": _STATE[status],
        }
        out.append(line("hygiene", tags, fields, at))
    for zone, counts in zones.items():
        out.append(line("dnsbl_zone", {"zone": zone}, dict(counts), at))
    return out


def _field_name(kind: str) -> str:
    return kind.strip().lower().replace("-", "_") or "other"


def feedback_points(
    rows: Iterable[Row],
    providers: Collection[str] = MAILBOX_PROVIDERS,
    hard_categories: Collection[str] = HARD_CATEGORIES,
) -> list[str]:
    """``feedback`` points from ``feedback_counts`` rows (dicts with ``bucket_start``,
    ``sending_ip``, ``pool``, ``customer``, ``kind``, ``category``,
    ``receiving_domain``, ``count``).

    The count goes into a field named after the kind (``bounce``, ``delay``,
    ``complaint``, ``dmarc_failure`` ...) so that a rate against ``sent`` is one
    InfluxQL expression. A bounce in a hard category (bad-mailbox, bad-domain,
    inactive-mailbox) also carries ``hard_bounce`` with the same count: the
    numerator of the hard-bounce rate. Rows whose receiving domains both map to ``other`` are
    summed into one point: pass every row of a bucket in one call, or a later
    partial call overwrites that ``other`` point with a smaller sum.
    """
    sums: dict[tuple[Any, tuple[tuple[str, str], ...], str], int] = defaultdict(int)
    for row in rows:
        kind = str(row["kind"])
        tags = {
            "sending_ip": str(row.get("sending_ip") or UNATTRIBUTED),
            "pool": str(row.get("pool") or EMPTY),
            "customer": str(row.get("customer") or EMPTY),
            "kind": kind,
            "category": str(row.get("category") or EMPTY),
            "receiving_domain": receiving_domain_tag(
                str(row.get("receiving_domain", "")), providers
            ),
        }
        sums[(row["bucket_start"], tuple(sorted(tags.items())), _field_name(kind))] += int(
            row["count"]
        )
    out = []
    for (at, tag_items, field), count in sums.items():
        fields = {field: count}
        if field == "bounce" and dict(tag_items)["category"] in hard_categories:
            fields["hard_bounce"] = count
        out.append(line("feedback", dict(tag_items), fields, at))
    return out


def sent_points(rows: Iterable[Row], owners: Owners) -> list[str]:
    """``feedback`` points with field ``sent`` from ``sent_volume`` rows (``bucket_start``,
    ``sending_ip``, ``count``; ``source`` is summed over).

    Written into the ``feedback`` measurement with ``kind=sent``,
    ``category=none``, ``receiving_domain=all`` so that complaint and bounce
    rates are ``sum(complaint) / sum(sent)`` in one query. ``owners`` maps the
    IP to ``(pool, customer)``; pass every source of a bucket in one call.
    """
    sums: dict[tuple[Any, str], int] = defaultdict(int)
    for row in rows:
        sums[(row["bucket_start"], str(row["sending_ip"]))] += int(row["count"])
    out = []
    for (at, ip), count in sums.items():
        tags = {
            "sending_ip": ip or UNATTRIBUTED,
            **_owner(owners, ip),
            "kind": "sent",
            "category": EMPTY,
            "receiving_domain": "all",
        }
        out.append(line("feedback", tags, {"sent": count}, at))
    return out


def dmarc_points(rows: Iterable[Row]) -> list[str]:
    """``dmarc`` points from ``dmarc_records`` rows (``end``, ``org_name``, ``source_ip``,
    ``pool``, ``customer``, ``count``, ``disposition``, ``dkim``, ``spf``, ``header_from``).

    ``alignment`` is ``pass`` when policy-evaluated DKIM or SPF passed, else
    ``fail``. A source IP with no pool is not ours (a forwarder or a spoofer):
    it is written as ``other`` so the internet's IPs never become tags. Rows
    that land on the same point are summed: pass all records of one report
    together. Rows without ``end`` are skipped (no time to put them at).
    """
    sums: dict[tuple[Any, tuple[tuple[str, str], ...]], int] = defaultdict(int)
    for row in rows:
        if row.get("end") is None:
            continue
        ours = bool(row.get("pool"))
        aligned = row.get("dkim") == "pass" or row.get("spf") == "pass"
        tags = {
            "source_ip": str(row["source_ip"]) if ours else OTHER,
            "pool": str(row.get("pool") or EMPTY),
            "customer": str(row.get("customer") or EMPTY),
            "header_from": str(row.get("header_from") or EMPTY).lower(),
            "disposition": str(row.get("disposition") or EMPTY),
            "alignment": "pass" if aligned else "fail",
            "reporter": str(row.get("org_name") or EMPTY),
        }
        sums[(row["end"], tuple(sorted(tags.items())))] += int(row["count"])
    return [line("dmarc", dict(tags), {"messages": n}, at) for (at, tags), n in sums.items()]


def sweep_points(
    kind: str, started: dt.datetime, duration_s: float, targets: int, queries: int, unknown: int
) -> list[str]:
    """One ``sweep`` point: how long a sweep (``dnsbl``, ``hygiene``) took and what it asked."""
    fields: dict[str, FieldValue] = {
        "duration_s": float(duration_s),
        "targets": int(targets),
        "queries": int(queries),
        "unknown": int(unknown),
    }
    return [line("sweep", {"kind": kind}, fields, started)]


def case_points(open_counts: Mapping[tuple[str, str], int], at: dt.datetime) -> list[str]:
    """``cases`` points: open cases per (severity, type) at ``at``.

    Pass zero for a (severity, type) whose last case closed, so its series
    drops to 0 instead of stopping at its last non-zero value.
    """
    return [
        line("cases", {"severity": severity, "type": type_}, {"open": int(n)}, at)
        for (severity, type_), n in sorted(open_counts.items())
    ]
