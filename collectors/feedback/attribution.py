"""Which of our sending IPs a bounce, delay or complaint is about.

The rules, first match wins (docs/feedback.md, "Attribution"):

1. ``source-ip``: the ``Source-IP`` of an ARF report, when it is an inventory IP.
2. ``header``: ``[feedback] sending_ip_header`` (default ``X-Sending-IP``) in the returned or
   reported message: our MTA stamped it, so any valid IP is taken as written.
   ``received``: otherwise the top-most ``Received`` header of that message whose *connecting*
   IP (the ``from`` clause) is an inventory IP. The receiving MX adds that header when our IP
   connects to it; the header our own MTA added names the customer's IP, which is not in the
   inventory, so it never matches.
3. ``verp``: ``[feedback] verp_pattern`` searched in the envelope and bounce addresses: the
   sink's RCPT TO, ``Delivered-To`` / ``X-Original-To`` / ``Envelope-To`` / ``To`` of the
   report, an ARF report's ``Original-Mail-From``, ``Return-Path`` of the returned message,
   then the bounced recipient. A named group
   ``ip`` holds a dotted IPv4 or an IPv6 address; a group ``ipx`` holds the address in
   hexadecimal (8 digits IPv4, 32 digits IPv6). Our own encoding, so any valid IP is taken.
4. ``diagnostic``: the first inventory IP written in the recipient's diagnostic text
   ("client host [203.0.113.5] blocked").
5. A ``Source-IP`` outside the inventory is kept as the receiver stated it (``source-ip``,
   pool and customer empty) rather than dropping the receiver's own answer.

Nothing matched: ``sending_ip = ""`` (``attributed_by = ""``); the event is still stored and
counted under the empty IP.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from email.message import Message

from checks.errors import ConfigError
from collectors.feedback.config import FeedbackConfig
from collectors.feedback.limits import bare_addresses
from collectors.feedback.model import Bounce, Complaint
from collectors.feedback.verp import compile_verp, verp_candidates
from collectors.targets import Targets

#: headers of a report message that may carry the address it was sent to (VERP)
ENVELOPE_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")

# runs of characters an IPv4 or IPv6 address is made of; validated by ipaddress afterwards
_IP_RUN = re.compile(r"[0-9A-Fa-f:.]{3,}")
_IPV6_TAG = re.compile(r"IPv6:", re.IGNORECASE)
_RECEIVED_FROM = re.compile(r"^\s*from\s+(.*?)(?:\bby\b|\bwith\b|;|$)", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class Attribution:
    """The sending IP of one event, which rule found it, and whose traffic it is."""

    sending_ip: str = ""
    by: str = ""  # source-ip, header, received, verp, diagnostic, dmarc-record; "" = none
    pool: str = ""
    customer: str = ""


UNATTRIBUTED = Attribution()


def ips_in(text: str) -> list[str]:
    """Every valid IP address written in ``text``, in order, each once.

    IPv4-mapped IPv6 addresses (``::ffff:192.0.2.1``) come back as the IPv4 address.
    """
    out: dict[str, None] = {}
    for run in _IP_RUN.findall(_IPV6_TAG.sub(" ", text)):
        addr = _as_ip(run.rstrip(".:").lstrip(".")) or _as_ip(run.strip(".:"))
        if addr is None:
            continue
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        out[str(addr)] = None
    return list(out)


def _as_ip(token: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if "." not in token and ":" not in token:
        return None
    try:
        return ipaddress.ip_address(token)
    except ValueError:
        return None


def _header_text(msg: Message, name: str) -> list[str]:
    return [str(v) for v in (msg.get_all(name) or [])]


def envelope_addresses(report: Message | None, envelope_to: Sequence[str] = ()) -> list[str]:
    """The addresses a report was sent to: the SMTP envelope first, then its headers."""
    out = [a for a in envelope_to if a]
    if report is not None:
        for name in ENVELOPE_HEADERS:
            out.extend(_header_text(report, name))
    return out


class SendingIpRules:
    """The attribution rules bound to one inventory and one ``[feedback]`` section."""

    def __init__(self, inventory: Targets, config: FeedbackConfig) -> None:
        self.inventory = inventory
        self.header = config.sending_ip_header
        self.verp = _compile_verp(config.verp_pattern)

    def owned(self, ip: str, by: str) -> Attribution:
        """``ip`` with its pool and customer (empty when the IP is not in the inventory)."""
        owner = self.inventory.owner_of_ip(ip)
        if owner is None:
            return Attribution(ip, by)
        return Attribution(ip, by, owner.pool, owner.customer)

    def _ours(self, ips: Iterable[str], by: str) -> Attribution | None:
        for ip in ips:
            if self.inventory.owner_of_ip(ip) is not None:
                return self.owned(ip, by)
        return None

    def from_original(self, original: Message | None) -> Attribution | None:
        """Rule 2: our stamped header, else the receiving MX's ``Received`` header."""
        if original is None:
            return None
        if self.header:
            for value in _header_text(original, self.header):
                ips = ips_in(value)
                if ips:
                    return self.owned(ips[0], "header")
        for value in _header_text(original, "Received"):  # top-most (newest) first
            match = _RECEIVED_FROM.match(value)
            if match:
                found = self._ours(ips_in(match.group(1)), "received")
                if found:
                    return found
        return None

    def from_verp(self, addresses: Iterable[str]) -> Attribution | None:
        """Rule 3: the first address the VERP pattern decodes to a valid IP."""
        if self.verp is None:
            return None
        for address in verp_candidates(_bare_addresses(addresses)):
            match = self.verp.search(address)
            if match is None:
                continue
            ip = _verp_ip(match)
            if ip:
                return self.owned(ip, "verp")
        return None

    def from_diagnostic(self, text: str) -> Attribution | None:
        """Rule 4: the first inventory IP named in a diagnostic."""
        return self._ours(ips_in(text), "diagnostic") if text else None

    def for_complaint(self, complaint: Complaint, envelope: Sequence[str] = ()) -> Attribution:
        """A complaint or DMARC failure report: rules 1, 2, 3, then 5."""
        stated = ips_in(complaint.source_ip)
        if stated and self.inventory.owner_of_ip(stated[0]) is not None:
            return self.owned(stated[0], "source-ip")
        original = complaint.original
        return_path = _header_text(original, "Return-Path") if original is not None else []
        # Original-Mail-From is the reported message's envelope sender: our VERP return path
        verp = [*envelope, complaint.original_mail_from, *return_path]
        found = self.from_original(original) or self.from_verp(verp)
        if found:
            return found
        return self.owned(stated[0], "source-ip") if stated else UNATTRIBUTED

    def for_bounce(self, bounce: Bounce, envelope: Sequence[str] = ()) -> list[Attribution]:
        """Each recipient of a bounce or delay, in order: rules 2, 3, 4.

        The message-wide answer (rule 2, rule 3 on the envelope) is found once, not per
        recipient: a notice may list hundreds.
        """
        original = bounce.original
        return_path = _header_text(original, "Return-Path") if original is not None else []
        shared = self.from_original(original) or self.from_verp([*envelope, *return_path])
        if shared is not None:
            return [shared] * len(bounce.recipients)
        return [
            self.from_verp([r.address]) or self.from_diagnostic(r.diagnostic) or UNATTRIBUTED
            for r in bounce.recipients
        ]

    def for_record(self, source_ip: str) -> Attribution:
        """A DMARC aggregate record carries its own source IP."""
        return self.owned(source_ip, "dmarc-record") if source_ip else UNATTRIBUTED


def _bare_addresses(values: Iterable[str]) -> Iterator[str]:
    """Addresses without display names or angle brackets (``"A" <a@b>`` → ``a@b``)."""
    for value in values:
        found = [addr for addr in bare_addresses([value]) if addr]
        yield from found or [value.strip()]


def _compile_verp(pattern: str) -> re.Pattern[str] | None:
    """The VERP pattern, checked as at config load (a section built in code skips that)."""
    if not pattern:
        return None
    try:
        return compile_verp(pattern)
    except ValueError as exc:
        raise ConfigError(f"feedback.verp_pattern: {exc}") from None


def _verp_ip(match: re.Match[str]) -> str:
    """The IP a VERP match encodes; "" when the group is absent or not an address."""
    groups = match.groupdict()
    hexa = groups.get("ipx")
    if hexa:
        if len(hexa) not in (8, 32):
            return ""
        try:
            return str(ipaddress.ip_address(bytes.fromhex(hexa)))
        except ValueError:
            return ""
    plain = groups.get("ip")
    if plain:
        # VERP local parts cannot always carry ":" or "."; accept "-" and "=" as separators too
        for text in (plain, plain.replace("-", "."), plain.replace("=", ":")):
            try:
                return str(ipaddress.ip_address(text))
            except ValueError:
                continue
    return ""
