"""repmon's bounce taxonomy, and the classifier that maps a recipient's failure onto it.

``classify(status, diagnostic, reply_code, action)`` returns ``(category, hard, blocklist_zone)``.
The diagnostic text wins over the status code when it is specific ("blocked using
zen.spamhaus.org" under a generic 5.7.1 is a listing, not a policy refusal); the status code
decides when the text says nothing we recognise; the SMTP reply code is the last resort.

Hard means *the address is the problem and will stay so*: a permanent failure in category
bad-mailbox, bad-domain or inactive-mailbox. A permanent policy or reputation refusal is a
failure, but sending to that address again may well succeed once the sender's standing is fixed,
so it does not count towards the hard-bounce rate (docs/bounce-categories.md).
"""

from __future__ import annotations

import functools
import re

CATEGORIES = (
    "bad-mailbox",
    "bad-domain",
    "inactive-mailbox",
    "quota",
    "too-large",
    "blocklisted",
    "reputation",
    "spam-content",
    "authentication",
    "rate-limited",
    "routing",
    "network",
    "expired",
    "policy",
    "other",
)
#: categories in which a permanent failure makes the address itself undeliverable
HARD_CATEGORIES = frozenset({"bad-mailbox", "bad-domain", "inactive-mailbox"})

# Zone names as diagnostics spell them; a few operators are named by their web site only.
KNOWN_ZONES = (
    "zen.spamhaus.org",
    "sbl-xbl.spamhaus.org",
    "sbl.spamhaus.org",
    "xbl.spamhaus.org",
    "pbl.spamhaus.org",
    "dbl.spamhaus.org",
    "b.barracudacentral.org",
    "bb.barracudacentral.org",
    "bl.spamcop.net",
    "cbl.abuseat.org",
    "psbl.surriel.com",
    "bl.mailspike.net",
    "dnsbl-1.uceprotect.net",
    "dnsbl-2.uceprotect.net",
    "dnsbl-3.uceprotect.net",
    "ix.dnsbl.manitu.net",
    "dnsbl.sorbs.net",
    "multi.surbl.org",
    "multi.uribl.com",
    "black.uribl.com",
    "bl.spameatingmonkey.net",
    "truncate.gbudb.net",
    "hostkarma.junkemailfilter.com",
    "dnsbl.dronebl.org",
    "all.spamrats.com",
    "dyna.spamrats.com",
    "noptr.spamrats.com",
    "spam.spamrats.com",
    "bl.0spam.org",
    "rbl.interserver.net",
)
# Operators whose diagnostics name a lookup page rather than the zone.
_OPERATOR_SITES = (
    (re.compile(r"spamhaus\.org|spamhaus\.com", re.I), "spamhaus"),
    (re.compile(r"barracuda(?:central|networks)\.(?:org|com)", re.I), "barracuda"),
    (re.compile(r"spamcop\.net", re.I), "spamcop"),
    (re.compile(r"abuseat\.org", re.I), "cbl.abuseat.org"),
    (re.compile(r"uceprotect\.net", re.I), "uceprotect"),
    (re.compile(r"mailspike\.(?:net|org)", re.I), "mailspike"),
    (re.compile(r"sorbs\.net", re.I), "sorbs"),
    (re.compile(r"surriel\.com", re.I), "psbl.surriel.com"),
    (re.compile(r"spamrats\.com", re.I), "spamrats"),
)
_ZONE = r"([a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)+\.[a-z]{2,})"
_ZONE_PHRASE = re.compile(
    r"(?:blocked|rejected|refused)?\s*(?:using|listed (?:at|on|in|by)|found (?:in|on)"
    r"|blacklisted (?:at|on|in|by)|blocklisted (?:at|on|in|by))\s+(?:the\s+)?" + _ZONE,
    re.I,
)


def blocklist_zone(diagnostic: str) -> str:
    """The DNSBL zone (or operator) the diagnostic names; "" when it names none."""
    low = diagnostic.lower()
    for zone in KNOWN_ZONES:
        if zone in low:
            return zone
    m = _ZONE_PHRASE.search(low)
    # "listed in our database" is no zone; a zone has a dot and a real TLD, and must not be a
    # mail host or a help URL the sentence happens to continue with.
    if m and not m.group(1).startswith(("www.", "http")):
        return m.group(1)
    for pattern, name in _OPERATOR_SITES:
        if pattern.search(low):
            return name
    return ""


# (category, pattern) in order: the first match wins, so specific phrases come before the
# generic ones ("mailbox full" before "mailbox unavailable" before "rejected").
_TEXT_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (cat, re.compile(rx, re.I))
    for cat, rx in (
        (
            "blocklisted",
            r"\b(?:rbl|dnsbl|blacklist(?:ed)?|blocklist(?:ed)?|block list|"
            r"black list|realtime block)\b|blocked using|spamhaus|"
            r"barracuda|spamcop|\bS3150\b|\bS3140\b",
        ),
        (
            "authentication",
            r"\bspf\b|\bdkim\b|\bdmarc\b|5\.7\.(?:2[3-7]|515)|not authenticated|"
            r"authentication (?:failed|required|check)|reverse dns|\bptr\b|rdns|reverse lookup|"
            r"unauthenticated|sender address verif|cannot find your hostname|"
            r"no (?:reverse|rdns)|hostname (?:does not|doesn't) match",
        ),
        (
            "reputation",
            r"reputation|user complaints|\bTS0[1-4]\b|poor sending|"
            r"suspicious (?:activity|traffic)|bulk mail|low sender|"
            r"unsolicited (?:mail|bulk)|not allowed to send|blocked by (?:our|the) (?:ip|sender)",
        ),
        (
            "bad-mailbox",
            r"user unknown|unknown user|no such (?:user|mailbox|recipient|"
            r"address|account|person)|(?:user|mailbox|recipient|address|account|"
            r"local part) (?:\S+ )?(?:does not|doesn't|did not) exist|"
            r"unknown (?:recipient|mailbox|address|local)|invalid (?:recipient|"
            r"mailbox|address|user)|mailbox (?:not found|"
            r"unavailable|not available|does not|unknown)|not a (?:known|valid) user|"
            r"recipientnotfound|no mailbox|bad[_ ]?(?:recipient|destination|"
            r"rcptto)|not our customer|not listed in|unknown or illegal alias|"
            r"addressee unknown|user not found|not found in|bad address|no such local|"
            r"is not a valid mailbox|mailbox is not|nie istnieje|unknown local part",
        ),
        (
            "bad-domain",
            r"host (?:or domain name )?not found|domain (?:not found|does not "
            r"exist|name not found)|no such domain|unrouteable (?:mail )?domain|name service "
            r"error|nxdomain|no mx|unknown (?:host|domain)|name or service not known|"
            r"does not accept mail|null mx|host unknown|dns (?:error|lookup failed)|"
            r"unroutable address|domain (?:is )?(?:invalid|unknown)|not a valid domain",
        ),
        (
            "inactive-mailbox",
            r"disabled|suspended|inactive|deactivated|no longer (?:active|"
            r"valid|available|in use)|account (?:has been |is )?(?:closed|locked|expired|"
            r"frozen|blocked)|discontinued|has moved|moved to|not an active",
        ),
        (
            "quota",
            r"quota|mailbox (?:is )?full|mailbox size|over ?quota|insufficient (?:disk|"
            r"storage|system storage)|exceeded (?:storage|the storage)|storage (?:space|limit)|"
            r"full mailbox|mailfolder is full|inbox is full|too much mail|mail ?box exceeded",
        ),
        (
            "too-large",
            r"too (?:large|big)|exceeds? (?:the )?(?:maximum |max |fixed )?"
            r"(?:message |mail )?size|message size|size limit|message length exceeds",
        ),
        (
            "rate-limited",
            r"rate limit|too many (?:connections|messages|recipients|mails|"
            r"concurrent)|throttl|try (?:again )?later|receiving mail at a rate|"
            r"exceeded .{0,30}(?:connections|rate|limit)|sending rate|slow down|"
            r"temporarily deferred",
        ),
        (
            "spam-content",
            r"\bspam|virus|malware|infected|content (?:rejected|filter)|"
            r"message content|junk ?mail|phish|url ?(?:black|block)|uribl|surbl|"
            r"dangerous|attachment|looks like spam|content policy",
        ),
        (
            "routing",
            r"relay(?:ing)? (?:denied|not permitted|access denied|prohibited)|"
            r"not (?:permitted to|allowed to)? ?relay|we do not relay|mail loop|loops back|"
            r"routing loop|too many hops|no route|unable to route",
        ),
        (
            "network",
            r"connection (?:refused|timed out|reset|lost|closed)|timed? ?out|"
            r"network (?:is )?unreachable|host unreachable|no answer|tls|starttls|"
            r"could not connect|unable to connect|lost connection",
        ),
        (
            "expired",
            r"expired|retry time|too long|give up|gave up|delivery time|"
            r"could not be delivered (?:within|for)|retry period|queue time",
        ),
        (
            "policy",
            r"polic|rejected|refused|denied|not accepted|prohibited|blocked|"
            r"not allowed|administrative",
        ),
    )
)

# RFC 3463 codes, most specific first ("5.7.515" before "x.7").
_STATUS_RULES: tuple[tuple[str, str], ...] = (
    ("x.1.1", "bad-mailbox"),
    ("x.1.0", "bad-mailbox"),
    ("x.1.3", "bad-mailbox"),
    ("x.1.10", "bad-domain"),
    ("x.1.2", "bad-domain"),
    ("x.1.6", "inactive-mailbox"),
    ("x.1.7", "policy"),
    ("x.1.8", "policy"),
    ("x.1.", "policy"),
    ("x.2.1", "inactive-mailbox"),
    ("x.2.2", "quota"),
    ("x.2.3", "too-large"),
    ("x.2.4", "routing"),
    ("x.2.", "other"),
    ("x.3.4", "too-large"),
    ("x.3.", "other"),
    ("x.4.1", "network"),
    ("x.4.2", "network"),
    ("x.4.4", "bad-domain"),
    ("x.4.6", "routing"),
    ("x.4.7", "expired"),
    ("x.4.", "routing"),
    ("x.5.3", "rate-limited"),
    ("x.5.", "policy"),
    ("x.6.", "spam-content"),
    ("x.7.1", "policy"),
    ("x.7.515", "authentication"),
    ("x.7.23", "authentication"),
    ("x.7.24", "authentication"),
    ("x.7.25", "authentication"),
    ("x.7.26", "authentication"),
    ("x.7.27", "bad-domain"),
    ("x.7.28", "rate-limited"),
    ("x.7.", "policy"),
)


# Codes specific enough to override the text. x.1.7 / x.1.8: the *sender's* address was
# refused, so text about an address not existing is about ours, not the recipient's. x.7.28
# (Gmail, and others since): rate limited for suspected unsolicited mail.
_AUTHORITATIVE = ("1.7", "1.8", "7.28")


def _by_status(status: str) -> str:
    parts = status.split(".")
    if len(parts) != 3:
        return ""
    generic = "x." + parts[1] + "." + parts[2]
    for prefix, category in _STATUS_RULES:
        if prefix.endswith("."):
            if generic.startswith(prefix):
                return category
        elif generic == prefix:
            return category
    return ""


def _by_text(diagnostic: str) -> str:
    for category, pattern in _TEXT_RULES:
        if pattern.search(diagnostic):
            return category
    return ""


def _permanent(status: str, reply_code: str, action: str) -> bool:
    if status[:1] in ("4", "5"):
        return status[0] == "5"
    if reply_code[:1] in ("4", "5"):
        return reply_code[0] == "5"
    return action == "failed"


@functools.lru_cache(maxsize=1024)  # a bounce of many recipients often repeats one diagnostic
def classify(
    status: str, diagnostic: str, reply_code: str = "", action: str = "failed"
) -> tuple[str, bool, str]:
    """Map one recipient's failure to ``(category, hard, blocklist_zone)``.

    ``category`` is one of :data:`CATEGORIES` ("other" when nothing is recognised); ``hard`` is
    True only for a permanent failure whose category is in :data:`HARD_CATEGORIES`;
    ``blocklist_zone`` is the zone the diagnostic names, or "". A ``delayed`` action is never
    hard: the message is still queued.
    """
    status = (status or "").strip()
    diagnostic = diagnostic or ""
    zone = blocklist_zone(diagnostic)
    by_status = _by_status(status)
    by_text = _by_text(diagnostic)
    if zone:
        category = "blocklisted"
    elif status[2:] in _AUTHORITATIVE or (
        by_status in ("bad-mailbox", "bad-domain", "inactive-mailbox", "quota", "expired")
        and by_text in ("", "policy", "other", "network", "routing", by_status)
    ):
        # The code is specific and the text does not contradict it.
        category = by_status
    elif by_text:
        category = by_text
    elif by_status:
        category = by_status
    else:
        category = "other"
    hard = (
        action.lower() not in ("delayed", "delivered", "relayed", "expanded")
        and category in HARD_CATEGORIES
        and _permanent(status, reply_code, action.lower())
    )
    return category, hard, zone
