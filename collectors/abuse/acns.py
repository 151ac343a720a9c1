"""ACNS copyright notices: the ``<Infringement>`` XML that rights holders' agents (IP-Echelon,
Irdeto/copyright-compliance, MarkMonitor, ...) put in or under their DMCA-style letters.

Senders paste the XML into the text, attach it, or both, so the same notice often comes
twice: notices are told apart by their ``Case/ID``. The reported address is
``Source/IP_Address``, the incident time ``Source/TimeStamp``. XML is read with defusedxml
(no entities, no external references): a notice is attacker-controlled input.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from collectors.abuse.extract import normal_ip, parse_when, redact
from collectors.abuse.model import AbuseReport

__all__ = ["Notice", "find_notices", "report_from_notices"]

_START = re.compile(r"<(?:\w+:)?Infringement\b")
_END = re.compile(r"</(?:\w+:)?Infringement\s*>")
#: notices looked at per message; a letter lists one, a batch a few dozen
_MAX_NOTICES = 100


@dataclass(slots=True)
class Notice:
    case_id: str = ""
    complainant: str = ""
    contact: str = ""
    ip: str = ""
    port: str = ""
    protocol: str = ""
    timestamp: str = ""
    urls: list[str] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def find_notices(text: str) -> list[Notice]:
    """The ACNS notices in ``text`` (an e-mail body or an XML attachment); malformed or
    hostile XML blocks are skipped."""
    notices: list[Notice] = []
    pos = 0
    while len(notices) < _MAX_NOTICES:
        start = _START.search(text, pos)
        if not start:
            break
        end = _END.search(text, start.end())
        if not end:
            break
        pos = end.end()
        notice = _parse(text[start.start() : end.end()])
        if notice is not None:
            notices.append(notice)
    return notices


def _parse(xml: str) -> Notice | None:
    try:
        root = fromstring(xml)
    except (ET.ParseError, DefusedXmlException, ValueError, SyntaxError):
        return None
    if _local(root.tag) != "Infringement":
        return None
    notice = Notice(
        case_id=_find(root, "Case", "ID"),
        complainant=_find(root, "Complainant", "Entity"),
        contact=_find(root, "Complainant", "Email"),
        ip=normal_ip(_find(root, "Source", "IP_Address")),
        port=_find(root, "Source", "Port"),
        protocol=_find(root, "Source", "Type") or _find(root, "Source", "SubType"),
        timestamp=_find(root, "Source", "TimeStamp"),
    )
    for item in _children(root, "Content", "Item"):
        notice.titles += [t for t in [_text(item, "Title")] if t]
        notice.files += [f for f in [_text(item, "FileName")] if f]
        url = _text(item, "URL")
        if "://" in url:
            notice.urls.append(url)
    base = _find(root, "Source", "URL_Base")
    if "://" in base:
        notice.urls.append(base)
    return notice


def report_from_notices(notices: list[Notice]) -> AbuseReport:
    """One copyright report for the distinct notices of a message."""
    report = AbuseReport(
        category="copyright",
        confidence=0.95,
        reason="ACNS copyright infringement notice",
        format="acns-xml",
        count=0,
    )
    seen: set[str] = set()
    for notice in notices:
        key = notice.case_id or f"{notice.ip}|{notice.timestamp}|{notice.titles}"
        if key in seen:
            continue
        seen.add(key)
        report.count += 1
        _add(report, notice)
    first = notices[0]
    report.reason = f"ACNS copyright infringement notice, Case ID {first.case_id or '?'}"
    # the sender is the rights holder's agent (its contact address); the holder goes to extra
    report.reporter = first.contact.rpartition("@")[2].lower() or first.complainant
    report.extra.update(
        {
            "complainant": first.complainant,
            "title": "; ".join(first.titles[:3]),
            "protocol": first.protocol,
            "port": first.port,
            "case_id": first.case_id,
        }
    )
    report.extra = {k: v for k, v in report.extra.items() if v}
    return report


def _add(report: AbuseReport, notice: Notice) -> None:
    if notice.ip:
        report.add_ip(notice.ip)
    for url in notice.urls:
        report.add_url(url)
    when = parse_when(notice.timestamp)
    report.reported_at = report.reported_at or when
    report.add_incident(
        {
            "ip": notice.ip,
            "port": notice.port,
            "time": when.isoformat() if when else "",
            "type": notice.protocol,
            "title": "; ".join(notice.titles[:3]),
        }
    )
    evidence = f"{notice.protocol} {notice.ip}:{notice.port} {'; '.join(notice.files[:3])}"
    report.excerpt = (report.excerpt + "\n" + redact(evidence.strip())).strip()


# -- namespace-agnostic lookups ---------------------------------------------------------------


def _local(tag: object) -> str:
    return str(tag).rsplit("}", 1)[-1]


def _children(node: ET.Element, *path: str) -> list[ET.Element]:
    found = [node]
    for name in path:
        found = [child for parent in found for child in parent if _local(child.tag) == name]
    return found


def _find(node: ET.Element, *path: str) -> str:
    hits = _children(node, *path)
    if not hits:
        return ""
    element = hits[0]
    text = (element.text or "").strip()
    # <SubType BaseType="P2P" Protocol="BITTORRENT"/> carries its value in attributes
    return text or element.get("Protocol", "").strip()


def _text(node: ET.Element, name: str) -> str:
    return _find(node, name)
