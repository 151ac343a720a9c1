"""The Postmaster Tools API's JSON, read into the rows of :mod:`collectors.postmaster.model`.

Shapes followed (Gmail Postmaster Tools API reference, v1 and v2):

* ``GET /v1/domains`` -> ``{"domains": [{"name": "domains/D", "permission", "createTime"}],
  "nextPageToken"}``
* ``GET /v1/domains/D/trafficStats`` -> ``{"trafficStats": [TrafficStats], "nextPageToken"}``,
  each named ``domains/D/trafficStats/YYYYMMDD``; ``ipCount`` is an int64, so a string
* ``GET /v2/domains/D/complianceStatus`` -> ``{"complianceData": {"rowData": [{"requirement",
  "status": {"status"}}], "oneClickUnsubscribeVerdict": {"status": {"status"}, "reason"},
  "honorUnsubscribeVerdict": ...}, "subdomainComplianceData": ...}``

A field Gmail leaves out stays None (too little traffic for that metric); a field of the wrong
type is a :class:`ParseError`, never a silent zero.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Mapping
from typing import Any

from checks.errors import ParseError
from collectors.postmaster.model import (
    REPUTATIONS,
    DeliveryError,
    DomainCompliance,
    DomainDay,
    FeedbackLoop,
    IpReputation,
    RegisteredDomain,
    Requirement,
)


def _obj(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ParseError(f"Postmaster Tools {where}: expected an object")
    return value


def _list(data: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise ParseError(f"Postmaster Tools {where}: {key} is not a list")
    return value


def _ratio(data: Mapping[str, Any], key: str, where: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ParseError(f"Postmaster Tools {where}: {key} {value!r} is not a ratio")
    return float(value)


def _str(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        raise ParseError(f"Postmaster Tools {where}: {key} is not a string")
    return value


def next_page(payload: Mapping[str, Any]) -> str:
    token = payload.get("nextPageToken") or ""
    if not isinstance(token, str):
        raise ParseError("Postmaster Tools: nextPageToken is not a string")
    return token


def domain_of(name: str) -> str:
    """``domains/mail.example.com`` -> ``mail.example.com``."""
    prefix, _, domain = name.partition("/")
    if prefix != "domains" or not domain or "/" in domain:
        raise ParseError(f"Postmaster Tools: {name!r} is not a domain resource name")
    return domain.lower()


def parse_domains(payload: object) -> list[RegisteredDomain]:
    """One page of ``domains.list``."""
    data = _obj(payload, "domains.list")
    out = []
    for item in _list(data, "domains", "domains.list"):
        d = _obj(item, "domains.list")
        out.append(
            RegisteredDomain(
                domain_of(_str(d, "name", "domain")),
                _str(d, "permission", "domain") or "PERMISSION_UNSPECIFIED",
                _str(d, "createTime", "domain"),
            )
        )
    return out


def parse_traffic_stats(item: object) -> DomainDay:
    """One ``TrafficStats`` object."""
    d = _obj(item, "trafficStats")
    name = _str(d, "name", "trafficStats")
    parent, sep, date = name.rpartition("/trafficStats/")
    try:
        day = dt.datetime.strptime(date, "%Y%m%d").date()
    except ValueError:
        raise ParseError(f"Postmaster Tools: {name!r} does not end in a YYYYMMDD date") from None
    if not sep:
        raise ParseError(f"Postmaster Tools: {name!r} is not a trafficStats name")
    where = name
    reputation = _str(d, "domainReputation", where)
    return DomainDay(
        domain=domain_of(parent),
        day=day,
        spam_ratio=_ratio(d, "userReportedSpamRatio", where),
        spam_ratio_lower=_ratio(d, "userReportedSpamRatioLowerBound", where),
        spam_ratio_upper=_ratio(d, "userReportedSpamRatioUpperBound", where),
        domain_reputation=reputation if reputation in REPUTATIONS else "",
        ip_reputations=tuple(_ip_reputation(x, where) for x in _list(d, "ipReputations", where)),
        spf_ratio=_ratio(d, "spfSuccessRatio", where),
        dkim_ratio=_ratio(d, "dkimSuccessRatio", where),
        dmarc_ratio=_ratio(d, "dmarcSuccessRatio", where),
        outbound_tls_ratio=_ratio(d, "outboundEncryptionRatio", where),
        inbound_tls_ratio=_ratio(d, "inboundEncryptionRatio", where),
        delivery_errors=tuple(_delivery_error(x, where) for x in _list(d, "deliveryErrors", where)),
        spammy_feedback_loops=tuple(
            _feedback_loop(x, where) for x in _list(d, "spammyFeedbackLoops", where)
        ),
    )


def parse_traffic_page(payload: object) -> list[DomainDay]:
    """One page of ``trafficStats.list``."""
    data = _obj(payload, "trafficStats.list")
    return [parse_traffic_stats(x) for x in _list(data, "trafficStats", "trafficStats.list")]


def _ip_reputation(item: object, where: str) -> IpReputation:
    d = _obj(item, where)
    count = d.get("ipCount", "0")
    try:
        # int64 in JSON is a string; accept a number too
        ip_count = int(count) if not isinstance(count, bool) else -1
    except (TypeError, ValueError):
        ip_count = -1
    if ip_count < 0:
        raise ParseError(f"Postmaster Tools {where}: ipCount {count!r} is not a count")
    samples = []
    for ip in _list(d, "sampleIps", where):
        try:
            samples.append(str(ipaddress.ip_address(ip)))
        except ValueError:
            raise ParseError(f"Postmaster Tools {where}: sample IP {ip!r}") from None
    return IpReputation(_str(d, "reputation", where), ip_count, tuple(samples))


def _delivery_error(item: object, where: str) -> DeliveryError:
    d = _obj(item, where)
    return DeliveryError(
        _str(d, "errorClass", where),
        _str(d, "errorType", where),
        _ratio(d, "errorRatio", where) or 0.0,
    )


def _feedback_loop(item: object, where: str) -> FeedbackLoop:
    d = _obj(item, where)
    return FeedbackLoop(_str(d, "id", where), _ratio(d, "spamRatio", where) or 0.0)


def _status(value: object, where: str) -> str:
    if value is None:
        return ""
    status = _str(_obj(value, where), "status", where)
    return "" if status == "STATE_UNSPECIFIED" else status


def parse_compliance(payload: object, domain: str) -> DomainCompliance:
    """``complianceStatus`` of ``domain``: the subdomain's own data when Gmail has it, else
    the registrable domain's."""
    data = _obj(payload, "complianceStatus")
    where = f"complianceStatus of {domain}"
    part = data.get("subdomainComplianceData") or data.get("complianceData") or {}
    part = _obj(part, where)
    verdicts = {
        "ONE_CLICK_UNSUBSCRIBE": part.get("oneClickUnsubscribeVerdict"),
        "HONOR_UNSUBSCRIBE": part.get("honorUnsubscribeVerdict"),
    }
    rows = []
    for item in _list(part, "rowData", where):
        row = _obj(item, where)
        requirement = _str(row, "requirement", where)
        verdict = verdicts.get(requirement)
        reason = _str(_obj(verdict, where), "reason", where) if verdict else ""
        rows.append(
            Requirement(
                requirement,
                _status(row.get("status"), where),
                reason.replace("REASON_UNSPECIFIED", ""),
            )
        )
    return DomainCompliance(domain, tuple(rows))
