"""The e-mail layouts of big reporters whose mails are neither X-ARF nor CSV but follow a
fixed template: Have I Been Pwned, Clean-MX tables, cyscon, Google Safe Browsing, Project
Honey Pot, SpamCop, NFOservers, Spamhaus, WebIron; and threat-indicator JSON (AITE).

Each reader returns None when a mail does not match its template, so the generic
free-text reader takes over. Who a reporter is lives in senders.py.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

import collectors.abuse.classify as classify
import collectors.abuse.freetext as freetext
from collectors.abuse.extract import (
    find_ips,
    find_urls,
    host_of,
    normal_ip,
    parse_when,
    redact,
    refang,
)
from collectors.abuse.mail import MailView
from collectors.abuse.model import CATEGORIES, AbuseReport, Category

__all__ = ["from_layout", "safe_browsing", "threat_indicator"]


# -- layouts ----------------------------------------------------------------------------------

Layout = Callable[[MailView], AbuseReport | None]


def from_layout(view: MailView) -> AbuseReport | None:
    """The report of the first template ``view`` matches, or None."""
    for layout in _LAYOUTS:
        report = layout(view)
        if report is not None:
            return report
    return None


def _safe_browsing(view: MailView) -> AbuseReport | None:
    return safe_browsing(view.body)


def safe_browsing(body: str) -> AbuseReport | None:
    """Google Safe Browsing's notification XML: ``<list type=N>`` of ``<url_info>``."""
    start = body.find("<notification_message")
    end = body.find("</notification_message>", start)
    if start < 0 or end < 0:
        return None
    try:
        root = fromstring(body[start : end + len("</notification_message>")])
    except (ET.ParseError, DefusedXmlException, ValueError, SyntaxError):
        return None
    kinds = {"0": "malware", "1": "phishing", "2": "malware"}  # compromised, phishing, distribution
    tally: dict[str, int] = {}
    report = AbuseReport(
        "other", 0.9, "", "google-safebrowsing-xml", reporter="Google Safe Browsing"
    )
    report.count = 0
    for listing in root.iter("list"):
        category = kinds.get(listing.get("type", ""), "other")
        for info in listing.iter("url_info"):
            url = info.get("url", "")
            ip = normal_ip(info.get("ip", "")) or normal_ip(host_of(url))
            report.count += 1
            tally[category] = tally.get(category, 0) + 1
            if ip:
                report.add_ip(ip)
            report.add_url(url)
            report.add_incident({"ip": ip, "url": url, "type": category})
    if not tally:
        return None
    best = max(tally, key=lambda c: tally[c])  # dict order = document order: ties go first
    report.category = _category(best)
    report.reason = f"Safe Browsing list types: {', '.join(f'{c} x{n}' for c, n in tally.items())}"
    report.reported_at = parse_when(root.get("date", ""))
    report.extra["categories"] = ", ".join(tally)
    return report


_HONEYPOT_SECTION = re.compile(
    r"^(IPs Engaged In (.+?)|Other Potentially Suspicious IPs) On Your Network:\s*$", re.I
)


def _honey_pot(view: MailView) -> AbuseReport | None:
    """Project Honey Pot Monitor Report: one incident per address per section."""
    if "project honey pot" not in (view.subject + view.sender_name).lower():
        return None
    report = AbuseReport(
        "spam",
        0.9,
        "Project Honey Pot monitor report",
        "free-text",
        reporter="Project Honey Pot",
        count=0,
    )
    section = ""
    for line in view.body.splitlines():
        heading = _HONEYPOT_SECTION.match(line.strip())
        if heading:
            section = heading.group(2) or "Suspicious"
            continue
        if line.strip().startswith("---"):
            section = ""
        hits = [f for f in find_ips(line) if f.ip]
        if section and hits and not line[: hits[0].start].strip():  # the address opens the line
            report.count += 1
            report.add_ip(hits[0].ip)
            report.add_incident({"ip": hits[0].ip, "type": section})
        elif section and report.incidents and (when := parse_when(line.strip(" -"))):
            report.reported_at = report.reported_at or when
            report.incidents[-1].setdefault("time", when.isoformat())
    if not report.count:
        return None
    report.reported_at = report.reported_at or view.date
    report.reason = "Project Honey Pot monitor report (harvesting, spam, dictionary, comment spam)"
    report.excerpt = redact("\n".join(f"{i['ip']} {i['type']}" for i in report.incidents[:12]))
    return report


_SPAMCOP = re.compile(r"\[SpamCop \(([0-9A-Fa-f:.]+)\) id:", re.I)


def _spamcop(view: MailView) -> AbuseReport | None:
    found = _SPAMCOP.search(view.subject)
    ip = normal_ip(found.group(1)) if found else ""
    if not ip:
        return None
    report = AbuseReport("spam", 0.9, "SpamCop spam report", "free-text", reporter="SpamCop")
    report.add_ip(ip)
    stated = re.search(rf"Email from {re.escape(ip)}\s*/\s*(.+)", view.body)
    report.reported_at = parse_when(stated.group(1)) if stated else view.date
    report.excerpt = redact(view.body[:600])
    return report


_NFO = re.compile(r"^(.*?)\s+used for an attack:\s*([0-9A-Fa-f:.]+)", re.I)


def _nfoservers(view: MailView) -> AbuseReport | None:
    """NFOservers' DDoS notifier: the subject names the role the host played."""
    found = _NFO.search(view.subject)
    if not found or not normal_ip(found.group(2)):
        return None
    role = found.group(1).strip()
    compromised = "compromised" in role.lower()
    category: Category = "ddos" if compromised else "open-service"
    reason = f"NFOservers: {role} used for an attack" + (
        "" if compromised else " (an abusable service: reflector/amplifier)"
    )
    report = AbuseReport(category, 0.85, reason, "free-text", reporter="NFOservers")
    report.add_ip(normal_ip(found.group(2)))
    report.reported_at = view.date
    report.excerpt = redact(
        "\n".join(ln for ln in view.body.splitlines() if found.group(2) in ln)[:1500]
    )
    return report


def _spamhaus(view: MailView) -> AbuseReport | None:
    """Spamhaus listing notices: the listing is about spam unless "Problem:" says what else."""
    if not re.search(r"\b(SBL|XBL|CSS|DBL) Notify\b", view.subject):
        return None
    problem = re.search(r"^\s*Problem:\s*(.+)$", view.body, re.M)
    verdict = classify.from_keywords(problem.group(1), "") if problem else None
    category: Category = verdict.category if verdict and verdict.category != "other" else "spam"
    reason = (
        f"Spamhaus listing, problem: {problem.group(1).strip()}" if problem else "Spamhaus listing"
    )
    report = AbuseReport(category, 0.8, reason, "free-text", reporter="Spamhaus")
    listed = re.search(r"IP(?:/cidr)?:\s*([0-9A-Fa-f:.]+)", view.body)
    for ip in [normal_ip(listed.group(1))] if listed else [f.ip for f in find_ips(view.subject)]:
        if ip:
            report.add_ip(ip)
    report.reported_at = view.date
    report.excerpt = redact(problem.group(0).strip() if problem else view.subject)
    return report


def _webiron(view: MailView) -> AbuseReport | None:
    """WebIron's text notice (the X-ARF variant is read as X-ARF): "Offending IP" blocks."""
    if "webiron" not in view.sender_domain and "webiron" not in view.body[:3000].lower():
        return None
    offending = re.findall(r"Offending(?:/Source)? IP:\s*([0-9A-Fa-f:.]+)", view.body)
    if not offending:
        return None
    botware = re.search(r"\bbot(?:ware|net)", view.body, re.I)
    category: Category = "botnet" if botware else "web-attack"
    what = "client detected as known botware" if botware else "unwanted and abusive web requests"
    reason = f"WebIron notice: {what}"
    report = AbuseReport(category, 0.8, reason, "free-text", reporter="WebIron")
    for value in offending:
        if normal_ip(value):
            report.add_ip(normal_ip(value))
    report.count = max(1, len(report.ips))
    times = re.findall(r"- Time:\s*(.+)", view.body)
    report.reported_at = (parse_when(times[0]) if times else None) or view.date
    for line in re.findall(r"- Targeted URL:\s*(.+)", view.body)[:1]:
        for url, _ in find_urls(line):
            report.add_url(url)
    report.excerpt = redact("\n".join(re.findall(r"^\s*- .+$", view.body, re.M)[:12]))
    return report


_PWNED = re.compile(r"^An email on (\S+?\.\S+?) has been", re.I)


def _pwned(view: MailView) -> AbuseReport | None:
    """Have I Been Pwned domain notifications: an address on a domain was in a breach.
    No address is reported (the domain's mail servers are the victims, not offenders)."""
    found = _PWNED.search(view.subject)
    if not found:
        return None
    report = AbuseReport(
        "other",
        0.85,
        "Have I Been Pwned: an address on the domain appeared in a data breach",
        "free-text",
        reporter="Have I Been Pwned",
    )
    report.add_url(found.group(1).lower().rstrip("."))
    report.reported_at = view.date
    report.excerpt = redact(view.subject)
    return report


_CLEAN_MX = re.compile(r"\[clean-mx-(viruses|phishing|portals)", re.I)
#: Clean-MX portal rows name what the site is in the virusname column
_CLEAN_MX_PORTAL: list[tuple[str, Category]] = [("phish", "phishing"), ("spamverti", "spam")]


def _clean_mx(view: MailView) -> AbuseReport | None:
    """Clean-MX's table mails (its X-ARF mails are read as X-ARF): the subject names the
    list, and a portal list's rows name what each site is."""
    found = _CLEAN_MX.search(view.subject)
    if not found:
        return None
    listing = found.group(1).lower()
    report = _from_text(view, "free-text-table")
    category: Category = "phishing" if listing == "phishing" else "malware"
    if listing == "portals":
        names = " ".join(i.get("type", "") for i in report.incidents).lower()
        category = next((c for word, c in _CLEAN_MX_PORTAL if word in names), "malware")
    report.category, report.confidence = category, 0.85
    report.reason = f"Clean-MX {listing} list"
    report.reporter = "clean-mx"
    return report


_CYSCON = re.compile(r"\(CYSC\.([A-Z]+)", re.I)


def _cyscon(view: MailView) -> AbuseReport | None:
    """cyscon C-SIRT: the signature in the subject (``CYSC.MALWARE.URL.GEN``) names the
    kind; the key: value report attached names the URL and address."""
    found = _CYSCON.search(view.subject)
    if not found:
        return None
    word = found.group(1).lower()
    category = classify.from_word(word) or classify.from_keywords(view.subject, "").category
    report = _from_text(view, "free-text")
    report.category, report.confidence = category, 0.85
    report.reason = f"cyscon signature {found.group(0)[1:]}"
    report.reporter = "cyscon C-SIRT"
    return report


def _from_text(view: MailView, fmt: str) -> AbuseReport:
    """What the generic reader finds in ``view``, as a report whose category is set later."""
    found = freetext.examine(
        freetext.TextInput(
            subject=view.subject,
            body=view.body,
            attachments=[a.text() for a in view.attachments if a.content_type.startswith("text/")],
            relay_ips=view.relay_ips,
            sender_domain=view.sender_domain,
            date=view.date,
        )
    )
    report = AbuseReport("other", 0.0, "", fmt, count=found.count)
    for ip in found.ips:
        report.add_ip(ip)
    for url in found.urls:
        report.add_url(url)
    for row in found.rows:
        report.add_incident(row)
    report.reported_at = found.reported_at
    report.excerpt = found.excerpt
    return report


def _category(name: str) -> Category:
    return next((c for c in CATEGORIES if c == name), "other")


_LAYOUTS: list[Layout] = [
    _pwned,
    _clean_mx,
    _cyscon,
    _safe_browsing,
    _honey_pot,
    _spamcop,
    _nfoservers,
    _spamhaus,
    _webiron,
]


# -- threat-indicator JSON (Facebook ThreatExchange via AITE, and alike) -----------------------


def threat_indicator(obj: Any) -> AbuseReport | None:
    """A ThreatExchange-style indicator: ``{"indicator": {...}, "owner": {...},
    "enrichments": {...}}``; the category comes from the feed owner and description."""
    if not isinstance(obj, dict) or not isinstance(obj.get("indicator"), dict):
        return None
    indicator = obj["indicator"]
    value = refang(str(indicator.get("indicator") or obj.get("raw_indicator") or ""))
    owner = _dict(obj.get("owner"))
    enrich = _dict(obj.get("enrichments"))
    words = " ".join(
        str(x)
        for x in (
            owner.get("name"),
            obj.get("description"),
            obj.get("type"),
            indicator.get("type"),
            obj.get("status"),
        )
    )
    verdict = classify.from_keywords(words, "")
    feed = owner.get("name") or "an unnamed feed"
    report = AbuseReport(
        verdict.category,
        min(0.85, verdict.confidence + 0.1),  # a feed's indicator is deliberate, not prose
        f"threat indicator from {feed}: {verdict.reason}",
        "json-indicator",
    )
    ip = normal_ip(value) or normal_ip(str(enrich.get("domain_address") or enrich.get("ip") or ""))
    if ip:
        report.add_ip(ip)
    if value and not normal_ip(value):
        report.add_url(value)
    domain = str(enrich.get("domain_name") or "")
    if domain:
        report.add_url(domain.lower())
    report.reported_at = parse_when(str(obj.get("last_updated") or obj.get("added_on") or ""))
    report.extra = {k: str(obj[k]) for k in ("status", "description", "severity") if obj.get(k)}
    report.excerpt = redact(f"{indicator.get('type', '')} {value}")
    return report


def _dict(value: object) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one: documents are untrusted."""
    return value if isinstance(value, dict) else {}
