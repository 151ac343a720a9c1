"""Reports written for people: which addresses, URLs and times a letter reports.

A free-text abuse mail names many addresses: the offender, but also the reporter's relays,
the attacked host, traceroute hops, resolvers in a log, version numbers. What decides is
*where* an address stands:

1. **Stated**: right after a label or phrase that names the offender ("IP:", "Source IP",
   "Offending IP", "IP address", "located at IP address", "Adresse IP :", "about", a
   line of its own after "... the following IP address:"), or in the subject.
2. **In a table** whose header names the column ("IP Address", "Source IP", "ip"), the
   other columns giving time, type and URL; target/destination columns are skipped.
3. A spam's headers pasted into the text: the first external hop of their Received chain.
4. Otherwise, every **public** address in the text (private ranges only count when the
   text labels them: samples are anonymised into them, real relays live in them).

Never reported: addresses after "target", "destination", "victim", "our", "honeypot"
(and networks so introduced), the mail's own relays (its Received headers), addresses
inside forwarded header lines, loopback/multicast/unspecified, and dotted numbers that
are versions or ``address.port`` (tcpdump).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.parser import HeaderParser

from collectors.abuse.extract import (
    find_ips,
    find_urls,
    host_of,
    is_actionable,
    parse_when,
    redact,
    refang,
)
from collectors.feedback.arf import connecting_ip

__all__ = ["Findings", "TextInput", "examine", "stated_ips"]

#: text examined per message: reports put what matters first; quoted history is long
_MAX_TEXT = 256 * 1024
_EXCERPT_LINES = 12

_HEADER_LINE = re.compile(
    r"^(?:Received|X-[\w-]+|Authentication-Results|ARC-[\w-]+|DKIM-Signature|Received-SPF"
    r"|Return-Path|Message-ID|Delivered-To|DomainKey-Signature)\s*:",
    re.I,
)
#: a label that names the reported party; one more word may stand between it and the value
_STRONG = (
    r"\bip(?:v[46])?\b|\bip[\s-]?ad+res+e?s?\b|\badresse\s+ip\b|\bip-?adres\w*|\bsource\b"
    r"|\bsrc\b|\boffending\b|\battack(?:er|ing)\b|\binfringer'?s?\b|\bhost(?:ed)?\b|\bserver\b"
    r"|\bclient\b|\bsender\b|\bcidr\b|\bdrone\b|\bbot\b|\bresolver\b|\bmachine\b|\bsite\b"
)
_SEP = r"[\s:=#*'\"()\[\]/.,>-]*"
_STRONG_BEFORE = re.compile(rf"(?:{_STRONG}){_SEP}(?:[\w'-]+{_SEP})?$", re.I)
#: a preposition only counts right before the address: "report about 1.2.3.4"
_WEAK_BEFORE = re.compile(rf"\b(?:about|from|at|on|for|by|of|is|behind){_SEP}$", re.I)
_NEGATIVE_BEFORE = re.compile(
    r"(?:\btarget(?:ed|s)?\b|\bdestination\b|\bdst\b|\bvictim\b|\bour\b|\bmy\b|\bhoneypot\b"
    r"|\bsensor\b|\battacked\b|\bdoel\b|\bziel\b)[^\n]{0,24}$"
    r"|\b(?:to|against|towards)" + _SEP + "$",
    re.I,
)
_DOTTED = re.compile(r"\S*[./@]\w\S*")
#: "http://site/path [1.2.3.4]": the address a reported URL resolved to
_AFTER_URL = re.compile(r"(?:https?|ftp)://\S+\s*[\[(]\s*$", re.I)
_URL_LINE = re.compile(r"(?:https?|ftp)://\S+", re.I)
#: a line that announces the address(es) on the next line(s)
_ANNOUNCES = re.compile(rf"(?:{_STRONG})\w*\s*(?:\([^)]*\))?\s*:?\s*$", re.I)
_URL_LABEL = re.compile(
    r"(?:\burl\b|\buri\b|\blink\b|\bsite\b|\blocation\b|\bpage\b|phishing|malware|infring\w*"
    r"|download|concern\w*|stream|\bfile\b|adres)[^\n]{0,12}$",
    re.I,
)
_URL_NEGATIVE = re.compile(r"(?:target\w*|referr?er|source)\s*(?:url)?\s*:?\s*$", re.I)
_DOMAIN_LINE = re.compile(
    r"^\s*(?:-\s*)?(?:domain|domein|hostname)\s*:\s*([A-Za-z0-9.-]+\.[A-Za-z]{2,})\s*$", re.I | re.M
)
_TIME_LINE = re.compile(
    r"^\s*(?:-\s*)?(?:time|date|timestamp|tested on|first[ _]seen|last[ _]seen|detected|event time"
    r"|initial infringement timestamp|incident time|attack time)\s*(?:\(utc\))?\s*:\s*(.+)$",
    re.I | re.M,
)
#: hosts of reference links every report carries, never the reported ones
_REFERENCE_HOSTS = ("x-arf.org", "xarf.org", "w3.org", "wikipedia.org", "microsoft.com")


@dataclass(slots=True)
class TextInput:
    """What the extractor reads: a mail's subject and texts, or a bare text file."""

    subject: str = ""
    body: str = ""
    #: small text attachments (key: value reports, logs): searched for stated values only
    attachments: list[str] = field(default_factory=list)
    relay_ips: set[str] = field(default_factory=set)
    sender_domain: str = ""
    date: dt.datetime | None = None


@dataclass(slots=True)
class Findings:
    ips: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    #: URLs the text singles out (labelled, defanged, in the subject or a table): counted
    reported_urls: list[str] = field(default_factory=list)
    rows: list[dict[str, str]] = field(default_factory=list)
    reported_at: dt.datetime | None = None
    excerpt: str = ""
    how: str = ""  # "stated", "table", "forwarded" (pasted headers), "text" or "" (none)

    @property
    def count(self) -> int:
        """Incidents: table rows by distinct address (or URL), else what is named."""
        if self.rows:  # six log lines of one attacker are one incident; six URLs are six
            return max(1, len({(r.get("ip", ""), r.get("url", "")) for r in self.rows}))
        return max(1, len(self.ips), len([u for u in self.reported_urls if "://" in u]))


def examine(source: TextInput) -> Findings:
    """Everything :mod:`freetext` can find in ``source``."""
    defanged: set[str] = set()
    body = source.body[:_MAX_TEXT]
    subject = refang(source.subject)
    pasted: list[str] = []
    lines = _content_lines(body, defanged, pasted)
    extra_lines = [
        ln for text in source.attachments for ln in _content_lines(text[:65536], defanged)
    ]
    found = Findings()
    table = _tables(lines)
    stated, negatives, nets = _stated(subject, lines + extra_lines)
    exclude = set(source.relay_ips) | negatives
    if stated:
        found.how = "stated"
        _keep(found.ips, stated, source.relay_ips - set(_subject_ips(subject)))
    if table:
        found.rows = table
        found.how = found.how or "table"
        _keep(found.ips, [r["ip"] for r in table if r.get("ip")], exclude)
    if not found.ips and (sender := _forwarded_sender(pasted, exclude)):
        found.how = "forwarded"  # a complaint with the spam's headers pasted in
        found.ips.append(sender)
    if not found.ips:
        loose = _loose_ips(lines, exclude, nets)
        if loose:
            found.how = "text"
            found.ips.extend(loose)
    _urls(found, subject, lines, extra_lines, source.sender_domain, table, defanged)
    found.reported_at = _when(table, body, source.attachments) or source.date
    found.excerpt = _excerpt(lines, found.ips)
    return found


def stated_ips(subject: str, texts: Iterable[str], relay_ips: set[str]) -> list[str]:
    """Only the addresses a text states as reported (rule 1), for callers whose format
    names the offender by URL (an X-ARF ``Source-Type: uri``)."""
    lines = [ln for text in texts for ln in _content_lines(text[:_MAX_TEXT], set())]
    stated, _, _ = _stated(refang(subject), lines)
    kept: list[str] = []
    _keep(kept, stated, relay_ips)
    return kept


def _keep(into: list[str], ips: Iterable[str], exclude: set[str]) -> None:
    seen = set(into)
    for ip in ips:
        if ip and ip not in exclude and ip not in seen and is_actionable(ip):
            into.append(ip)
            seen.add(ip)


def _content_lines(text: str, defanged: set[str], headers: list[str] | None = None) -> list[str]:
    """The lines of ``text``, refanged, without forwarded header lines (their addresses
    are relays), which go to ``headers``. Lines that were defanged are added to
    ``defanged``: a sender defangs what it reports."""
    kept: list[str] = []
    in_header = False
    for raw in text.splitlines():
        line = refang(raw)
        if line != raw:
            defanged.add(line)
        if _HEADER_LINE.match(line) or (in_header and line[:1] in (" ", "\t") and line.strip()):
            in_header = True
            if headers is not None and len(headers) < 500:
                headers.append(line)
            continue
        in_header = False
        kept.append(line)
    return kept


def _forwarded_sender(headers: list[str], exclude: set[str]) -> str:
    """The host that handed a forwarded message to its recipient's provider, read from the
    Received lines pasted into the text (the feedback parser's rule), or ""."""
    block = "\n".join(line for line in headers if line.strip())
    if "received" not in block.lower():
        return ""
    sender = connecting_ip(HeaderParser().parsestr(block + "\n\n", headersonly=True))
    return sender if sender and sender not in exclude and is_actionable(sender) else ""


def _subject_ips(subject: str) -> list[str]:
    return [f.ip for f in find_ips(subject) if f.ip and not _negative(subject[: f.start])]


def _negative(before: str) -> bool:
    # host names and URLs are not words: "www.victim.co.uk/x.php [1.2.3.4]" names no victim
    words = _DOTTED.sub(" ", before[-60:])
    return bool(_NEGATIVE_BEFORE.search(words))


def _stated(
    subject: str, lines: list[str]
) -> tuple[list[str], set[str], list[ipaddress._BaseNetwork]]:
    """Addresses stated as reported (subject first), those stated as not, and networks
    stated as targets."""
    stated = _subject_ips(subject)
    negatives: set[str] = set()
    nets: list[ipaddress._BaseNetwork] = []
    announced = False
    for line in lines:
        hits = list(find_ips(line))
        alone = (
            len(hits) == 1 and line.strip().strip("*-•[]() ") == line[hits[0].start : hits[0].end]
        )
        for hit in hits:
            before = line[: hit.start][-60:]
            if hit.network is not None:
                if _negative(before):
                    nets.append(hit.network)
                continue
            if _negative(before):
                negatives.add(hit.ip)
            elif (
                _STRONG_BEFORE.search(before)
                or _WEAK_BEFORE.search(before)
                or _AFTER_URL.search(line[max(0, hit.start - 2048) : hit.start])
                or (announced and alone)
            ):
                stated.append(hit.ip)
        if line.strip():
            # "...the following IP address:", or a reported URL with its address below it
            announced = (
                bool(_ANNOUNCES.search(line[-80:]))
                or bool(_URL_LINE.fullmatch(line.strip()))
                or (announced and alone)
            )
    return stated, negatives, nets


def _loose_ips(
    lines: list[str], exclude: set[str], nets: list[ipaddress._BaseNetwork]
) -> list[str]:
    """Rule 3: every public address of the text that nothing rules out."""
    found: list[str] = []
    seen: set[str] = set()
    for line in lines:
        for hit in find_ips(line):
            if not hit.ip or hit.ip in exclude or hit.ip in seen:
                continue
            seen.add(hit.ip)
            addr = ipaddress.ip_address(hit.ip)
            if not addr.is_global or any(
                addr in net for net in nets if net.version == addr.version
            ):
                continue
            if _negative(line[: hit.start]):
                continue
            found.append(hit.ip)
    return found


# -- tables -----------------------------------------------------------------------------------

_SEPARATORS = ("\t", "|", ";", ",")
_IP_HEADER = re.compile(
    r"^(?:source[ _-]?)?(?:ip(?:[ _-]?address)?|ip[ _-]?adres\w*|src[ _-]?ip|address"
    r"|offending ip|attacker(?: ip)?|host ip)$",
    re.I,
)
_TIME_HEADER = re.compile(r"date|time|seen|when", re.I)
_TYPE_HEADER = re.compile(r"reason|type|category|virus|issue|threat|attack", re.I)
_URL_HEADER = re.compile(r"^(?:url|uri|link|location|infringing url)$", re.I)


def _tables(lines: list[str]) -> list[dict[str, str]]:
    """Rows of the first table whose header names an address column."""
    for at, line in enumerate(lines):
        sep = next((s for s in _SEPARATORS if line.count(s) >= 1), None)
        if sep is None or any(True for _ in find_ips(line)):
            continue
        header = [c.strip().strip("*").strip() for c in line.split(sep)]
        ip_col = next((i for i, c in enumerate(header) if _IP_HEADER.match(c)), -1)
        if ip_col < 0:
            continue
        rows = _rows(lines[at + 1 :], sep, header, ip_col)
        if rows:
            return rows
    return []


def _rows(lines: list[str], sep: str, header: list[str], ip_col: int) -> list[dict[str, str]]:
    def col(pattern: re.Pattern[str]) -> int:
        return next((i for i, c in enumerate(header) if pattern.search(c) and i != ip_col), -1)

    time_col, type_col, url_col = col(_TIME_HEADER), col(_TYPE_HEADER), col(_URL_HEADER)
    rows: list[dict[str, str]] = []
    waited = 0
    for line in lines[:5000]:
        if not line.strip() or set(line.strip()) <= set("+-=|_ "):
            if rows and not line.strip():
                break
            continue
        cells = [c.strip() for c in line.split(sep)]
        hits = list(find_ips(cells[ip_col])) if ip_col < len(cells) else []
        if not hits or not hits[0].ip:
            waited += 1
            if rows or waited > 2:  # rows follow their header, or it was not one
                break
            continue
        rows.append(
            {
                "ip": hits[0].ip,
                "time": _at(cells, time_col),
                "type": _at(cells, type_col),
                "url": _at(cells, url_col),
            }
        )
    return rows


def _at(cells: list[str], index: int) -> str:
    return cells[index] if 0 <= index < len(cells) else ""


# -- URLs, times, evidence ----------------------------------------------------------------------


def _urls(
    found: Findings,
    subject: str,
    lines: list[str],
    extra: list[str],
    sender: str,
    table: list[dict[str, str]],
    defanged: set[str],
) -> None:
    own = _registrable(sender)

    def reported(url: str) -> bool:
        host = host_of(url)
        if own and (host == own or host.endswith("." + own)):
            return False
        return not any(host == r or host.endswith("." + r) for r in _REFERENCE_HOSTS)

    chosen: list[str] = [u for u, _ in find_urls(subject)]
    for line in lines + extra:
        for url, at in find_urls(line):
            before = line[:at].rstrip()  # "URL:        http://..." is labelled too
            if _URL_NEGATIVE.search(before[-30:]):
                continue
            if _URL_LABEL.search(before[-40:]) or line in defanged:
                chosen.append(url)
    chosen += [r["url"] for r in table if "://" in r.get("url", "")]
    if not chosen:  # a URL on a line of its own, as in "the following page(s):"
        chosen = [
            u
            for ln in lines
            for u, at in find_urls(ln)
            if ln.strip() == u or ln.strip().startswith(u + " ")
        ]
    for url in dict.fromkeys(chosen):  # once each, in order
        if reported(url):
            found.urls.append(url)
    found.reported_urls = list(found.urls)
    if found.urls:
        return  # a "Domain:" line beside a reported URL adds nothing
    for domain in dict.fromkeys(d.lower() for d in _DOMAIN_LINE.findall("\n".join(lines + extra))):
        if reported("http://" + domain):
            found.urls.append(domain)


def _registrable(domain: str) -> str:
    """The last two labels (three under a two-letter second level such as co.uk)."""
    labels = domain.lower().strip(".").split(".")
    if len(labels) >= 3 and len(labels[-2]) <= 3 and len(labels[-1]) == 2:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:]) if len(labels) >= 2 else ""


def _when(table: list[dict[str, str]], body: str, attachments: list[str]) -> dt.datetime | None:
    for row in table:
        when = parse_when(row.get("time", ""))
        if when:
            return when
    for text in [body, *attachments]:
        for match in _TIME_LINE.finditer(text[:_MAX_TEXT]):
            when = parse_when(match.group(1))
            if when:
                return when
    return None


def _excerpt(lines: list[str], ips: list[str]) -> str:
    """The evidence lines: those naming a reported address, else the first lines."""
    wanted = set(ips)
    picked = [ln.strip() for ln in lines if wanted and any(ip in ln for ip in wanted)]
    if not picked:
        picked = [ln.strip() for ln in lines if ln.strip()]
    return redact("\n".join(picked[:_EXCERPT_LINES]))
