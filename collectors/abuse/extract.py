"""Finding addresses, URLs and times in text: the primitives every abuse parser shares.

Reporters write indicators in many ways: defanged (``1[.]2[.]3[.]4``, ``hxxp://``,
``[:]//``), inside log lines, in tcpdump notation, next to version numbers and clock times
that look like addresses. These helpers find candidates and normalise them; *which*
candidates are the reported ones is decided by the callers (freetext.py), because that
depends on where in a report a value stands.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = [
    "Found",
    "find_ips",
    "find_urls",
    "host_of",
    "is_actionable",
    "normal_ip",
    "parse_when",
    "redact",
    "refang",
]

_REFANG = [
    (re.compile(r"\bh(?:xx|XX|\*\*|tt)p(s?)\b", re.I), r"http\1"),
    (re.compile(r"\bfxp\b", re.I), "ftp"),
    (re.compile(r"\[\s*:\s*\]//|\[://\]|\(://\)|\[:/\]/"), "://"),
    (re.compile(r"\s?(?:\[\.\]|\(\.\)|\{\.\}|\[dot\]|\(dot\)|\{dot\})\s?", re.I), "."),
    (re.compile(r"\[@\]|\(@\)|\[at\]", re.I), "@"),
]
#: a defanged form anywhere in a text: such a value was written *to be* an indicator
_DEFANGED = re.compile(r"\bh(?:xx|XX)ps?\b|\[\.\]|\(\.\)|\{\.\}|\[dot\]|\[:\]//|\[://\]", re.I)


def refang(text: str) -> str:
    """``text`` with the usual defanging undone (``hxxp``, ``[.]``, ``(.)``, ``[:]//`` ...)."""
    if not _DEFANGED.search(text) and "fxp" not in text.lower():
        return text
    for pattern, replacement in _REFANG:
        text = pattern.sub(replacement, text)
    return text


# -- addresses ------------------------------------------------------------------------------

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
#: An IPv4 address not glued to other digits, dots or letters: "1.2.3.4.123" (tcpdump
#: address.port) and "v1.2.3.4" (a version) are not addresses; "1.2.3.4." ending a
#: sentence is. An optional "/nn" suffix marks a network, reported separately.
_IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\.?\d|\w)(/\d{{1,2}}(?!\d))?")
_CANONICAL_V4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
#: candidates only; ipaddress decides. Needs two colons, so "12:30" never gets this far.
_IPV6 = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:%\w+)?(/\d{1,3})?")
#: what a version number or a user agent looks like just before a dotted quad
_VERSIONISH = re.compile(r"(?:\bv|version\s?|ver\.?\s?|[A-Za-z]/)$", re.I)


@dataclass(frozen=True, slots=True)
class Found:
    """One address found in a text: where it stands decides whether it is reported."""

    ip: str
    start: int
    end: int
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None


def normal_ip(value: str) -> str:
    """``value`` as a normalised address (IPv6 compressed, IPv4-mapped unwrapped), or ""."""
    if _CANONICAL_V4.fullmatch(value):  # the common case, 30 times faster than ipaddress
        return value
    text = value.strip().strip("[]<>()*'\"").strip()
    if text.lower().startswith("ipv6:"):
        text = text[5:].strip()
    text = text.split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return ""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def find_ips(text: str) -> Iterator[Found]:
    """Every IPv4/IPv6 address (or network, when written with a prefix) in ``text``."""
    text = text.replace("IPv6:", "IPv6 ")
    for match in _IPV4.finditer(text):
        if _VERSIONISH.search(text, max(0, match.start() - 9), match.start()):
            continue
        yield _found(match)
    if text.count(":") >= 2:
        for match in _IPV6.finditer(text):
            body = match.group(0)
            if body.count(":") < 2 or not re.search(r"[0-9A-Fa-f]", body):
                continue
            found = _found(match)
            if found.ip or found.network is not None:
                yield found


def _found(match: re.Match[str]) -> Found:
    whole = match.group(0)
    prefix = match.group(1)
    if prefix:
        try:
            net = ipaddress.ip_network(whole, strict=False)
        except ValueError:
            return Found("", match.start(), match.end())
        if net.num_addresses == 1:  # "1.2.3.4/32" names one host
            return Found(str(net.network_address), match.start(), match.end())
        return Found("", match.start(), match.end(), net)
    return Found(normal_ip(whole), match.start(), match.end())


_NEVER_REPORTED = [
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "fe80::/10",
        "ff00::/8",
    )
]


def is_actionable(ip: str) -> bool:
    """Whether an address can be the subject of a report at all: never loopback,
    unspecified, link-local, multicast or broadcast. Private and documentation ranges
    *can* be (published samples are anonymised into them), so callers decide on those."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return not any(addr in net for net in _NEVER_REPORTED if net.version == addr.version)


# -- URLs -----------------------------------------------------------------------------------

_URL = re.compile(
    r"\b(?:https?|ftp|hxxps?)://(?:\[[0-9A-Fa-f:.]+\]|[^\s<>\"'`|\\^{}\[\]]+)[^\s<>\"'`|\\^{}]*",
    re.I,
)
_URL_TAIL = ".,;:!?)]}>'\"="


def find_urls(text: str) -> Iterator[tuple[str, int]]:
    """``(url, position)`` for every absolute URL in ``text`` (refanged first)."""
    for match in _URL.finditer(refang(text)):
        url = match.group(0).rstrip(_URL_TAIL)
        if url.count("(") < url.count(")"):
            url = url.rstrip(")")
        host = host_of(url)
        if host and ("." in host or ":" in host):
            yield url, match.start()


def host_of(url: str) -> str:
    """The host part of a URL, lower-case, without port, brackets or credentials."""
    rest = url.split("://", 1)[-1]
    hostport = re.split(r"[/?#]", rest, maxsplit=1)[0].rsplit("@", 1)[-1]
    if hostport.startswith("["):
        return hostport[1:].split("]", 1)[0].lower()
    return hostport.split(":", 1)[0].lower().rstrip(".")


# -- times ----------------------------------------------------------------------------------

_ZONES = {
    "UTC": 0, "GMT": 0, "Z": 0, "UT": 0, "WET": 0, "BST": 60, "CET": 60, "MET": 60,
    "CEST": 120, "MEST": 120, "EET": 120, "EEST": 180, "MSK": 180, "IST": 330,
    "JST": 540, "KST": 540, "AEST": 600, "AEDT": 660, "EST": -300, "EDT": -240,
    "CST": -360, "CDT": -300, "MST": -420, "MDT": -360, "PST": -480, "PDT": -420,
}  # fmt: skip
_ISO = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d)(?::(\d\d)(?:[.,]\d+)?)?)?"
    r"\s*(Z|[+-]\d\d:?\d\d|[A-Z]{2,5})?(?![\w:])"
)
_APACHE = re.compile(r"(\d\d)/([A-Za-z]{3})/(\d{4}):(\d\d):(\d\d):(\d\d)\s*([+-]\d{4})?")
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTHS = {m: i for i, m in enumerate(_MONTH_NAMES, 1)}
_CLOCK = r"(\d\d?):(\d\d)(?::(\d\d))?\s*([AaPp][Mm])?\s*([+-]\d{4}|[A-Z]{2,5})?"
#: "Feb  3 2014 02:13:35 +0100" and "Mon, 21 Sep 2015 11:00AM PDT" (month/day either way)
_LOOSE_MDY = re.compile(r"([A-Za-z]{3})[a-z]*\.?\s+(\d{1,2}),?\s+(\d{4}),?\s+" + _CLOCK)
_LOOSE_DMY = re.compile(r"(\d{1,2})\s+([A-Za-z]{3})[a-z]*\.?,?\s+(\d{4}),?\s+" + _CLOCK)


def parse_when(value: str) -> dt.datetime | None:
    """An aware datetime from the date forms reports use (ISO 8601, RFC 5322, Apache log,
    "Feb  3 2014 02:13:35 +0100", zone abbreviations); zone-less times are UTC."""
    text = " ".join(str(value).split())
    if not text or len(text) > 80:
        return None
    for reader in (_iso, _rfc5322, _apache, _loose):
        found = reader(text)
        if found is not None:
            return found
    return None


def _zone(name: str | None) -> dt.tzinfo:
    if not name or name.upper() in ("Z", "UTC", "GMT"):
        return dt.UTC
    if name[0] in "+-":
        digits = name[1:].replace(":", "")
        minutes = int(digits[:2]) * 60 + int(digits[2:4] or 0)
        return dt.timezone(dt.timedelta(minutes=minutes if name[0] == "+" else -minutes))
    return dt.timezone(dt.timedelta(minutes=_ZONES.get(name.upper(), 0)))


def _build(
    year: int, month: int, day: int, hour: int, minute: int, second: int, zone: str | None
) -> dt.datetime | None:
    try:
        return dt.datetime(year, month, day, hour, minute, second, tzinfo=_zone(zone))
    except (ValueError, OverflowError):
        return None


def _iso(text: str) -> dt.datetime | None:
    m = _ISO.match(text)
    if not m:
        return None
    y, mo, d, h, mi, s, zone = m.groups()
    if zone and zone[0].isalpha() and zone.upper() not in _ZONES:
        zone = None
    return _build(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0), zone=zone)


def _rfc5322(text: str) -> dt.datetime | None:
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


def _apache(text: str) -> dt.datetime | None:
    m = _APACHE.search(text)
    if not m or m.group(2).lower() not in _MONTHS:
        return None
    d, mon, y, h, mi, s, zone = m.groups()
    return _build(int(y), _MONTHS[mon.lower()], int(d), int(h), int(mi), int(s), zone=zone)


def _loose(text: str) -> dt.datetime | None:
    m = _LOOSE_MDY.search(text)
    if m:
        mon, d, y, h, mi, s, ampm, zone = m.groups()
    else:
        m = _LOOSE_DMY.search(text)
        if not m:
            return None
        d, mon, y, h, mi, s, ampm, zone = m.groups()
    if mon.lower() not in _MONTHS:
        return None
    hour = int(h) % 12 + (12 if ampm.lower() == "pm" else 0) if ampm else int(h)
    return _build(int(y), _MONTHS[mon.lower()], int(d), hour, int(mi), int(s or 0), zone=zone)


# -- evidence -------------------------------------------------------------------------------

_EMAIL = re.compile(r"\b([A-Za-z0-9._%+-]+)@([A-Za-z0-9.-]+\.[A-Za-z]{2,})\b")
_SECRET = re.compile(r"(?i)\b(pass(?:word)?|pwd|passwd|token|secret|api[_-]?key)(\s*[=:]\s*)\S+")


def redact(text: str) -> str:
    """Evidence fit to show: mailbox names and credentials masked, addresses kept (they
    are what the report is about)."""
    text = _EMAIL.sub(r"…@\2", text)
    return _SECRET.sub(r"\1\2…", text)
