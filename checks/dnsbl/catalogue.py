"""The built-in zone catalogue: the blocklists a deliverability team watches.

Facts from the list operators' documentation and RFC 5782. SORBS is absent on
purpose: it shut down in June 2024. Invaluement is subscribers-only through
rsynced zone files: point a ``[[dnsbl.zones]]`` entry at your own rbldnsd.
Zones with ``enabled=False`` are in the catalogue but only asked when named in
``dnsbl.enable`` (or with ``repmon check --zone``).

Some lists are published as downloads, not as DNS zones: Spamhaus DROP, DROPv6 and EDROP.
They are *mirror-only* zones (:data:`MIRRORS`): off by default, answered from the downloaded
file only (``collectors/mirror`` keeps it fresh), never asked over DNS.
"""

from __future__ import annotations

from dataclasses import dataclass

from checks.dnsbl.zones import Code, Zone

SPAMHAUS_REFUSED = frozenset({"127.255.255.252", "127.255.255.254", "127.255.255.255"})
SPAMHAUS_LOOKUP = "https://check.spamhaus.org/results/?query={target}"

#: what Spamhaus's refused-query answers mean (they are never listings)
_SPAMHAUS_ERRORS = {
    "127.255.255.252": Code("Spamhaus: typo or malformed query", "info"),
    "127.255.255.254": Code("Spamhaus: query came through a public or open resolver", "info"),
    "127.255.255.255": Code("Spamhaus: too many queries from this resolver", "info"),
}

_ZEN_CODES = {
    "127.0.0.2": Code("SBL: Spamhaus Block List (spam source or spam operation)", "critical"),
    "127.0.0.3": Code("CSS: Spamhaus snowshoe / low-reputation sending", "critical"),
    "127.0.0.4": Code("XBL: exploited host (botnet, open proxy, malware)", "critical"),
    "127.0.0.9": Code("DROP: hijacked or criminal netblock", "critical"),
    "127.0.0.10": Code("PBL (ISP): end-user range that should not send direct-to-MX", "high"),
    "127.0.0.11": Code("PBL (Spamhaus): range that should not send direct-to-MX", "high"),
    **_SPAMHAUS_ERRORS,
}

_DBL_CODES = {
    "127.0.1.2": Code("DBL: spam domain", "high"),
    "127.0.1.4": Code("DBL: phishing domain", "critical"),
    "127.0.1.5": Code("DBL: malware domain", "critical"),
    "127.0.1.6": Code("DBL: botnet C&C domain", "critical"),
    "127.0.1.102": Code("DBL: abused legitimate domain (spam)", "medium"),
    "127.0.1.103": Code("DBL: abused legitimate domain (spammed redirector)", "medium"),
    "127.0.1.104": Code("DBL: abused legitimate domain (phishing)", "high"),
    "127.0.1.105": Code("DBL: abused legitimate domain (malware)", "high"),
    "127.0.1.106": Code("DBL: abused legitimate domain (botnet C&C)", "high"),
    "127.0.1.255": Code("DBL: an IP address was queried against the domain list", "info"),
    **_SPAMHAUS_ERRORS,
}

_DBL_REFUSED = SPAMHAUS_REFUSED | {"127.0.1.255"}


def _subset(codes: dict[str, Code], *keys: str) -> dict[str, Code]:
    return {k: codes[k] for k in keys} | _SPAMHAUS_ERRORS


CATALOGUE: tuple[Zone, ...] = (
    Zone(
        "zen.spamhaus.org",
        "ip",
        ipv6=True,
        codes=_ZEN_CODES,
        refused=SPAMHAUS_REFUSED,
        delist=SPAMHAUS_LOOKUP,
        severity="high",
        description="Spamhaus ZEN (SBL+CSS+XBL+PBL); public mirrors are for low-volume, "
        "non-commercial use from your own resolver",
    ),
    Zone(
        "sbl.spamhaus.org",
        "ip",
        ipv6=True,
        codes=_subset(_ZEN_CODES, "127.0.0.2", "127.0.0.3", "127.0.0.9"),
        refused=SPAMHAUS_REFUSED,
        delist=SPAMHAUS_LOOKUP,
        enabled=False,
        description="subset of zen",
    ),
    Zone(
        "xbl.spamhaus.org",
        "ip",
        ipv6=True,
        codes=_subset(_ZEN_CODES, "127.0.0.4"),
        refused=SPAMHAUS_REFUSED,
        delist=SPAMHAUS_LOOKUP,
        enabled=False,
        description="subset of zen",
    ),
    Zone(
        "pbl.spamhaus.org",
        "ip",
        ipv6=True,
        codes=_subset(_ZEN_CODES, "127.0.0.10", "127.0.0.11"),
        refused=SPAMHAUS_REFUSED,
        delist=SPAMHAUS_LOOKUP,
        enabled=False,
        description="subset of zen",
    ),
    Zone(
        "dbl.spamhaus.org",
        "domain",
        codes=_DBL_CODES,
        refused=_DBL_REFUSED,
        delist=SPAMHAUS_LOOKUP,
        severity="high",
        description="Spamhaus Domain Block List",
    ),
    Zone(
        "{key}.zen.dq.spamhaus.net",
        "ip",
        name="zen.dq.spamhaus.net",
        ipv6=True,
        codes=_ZEN_CODES,
        refused=SPAMHAUS_REFUSED,
        delist=SPAMHAUS_LOOKUP,
        severity="high",
        needs_key=True,
        description="Spamhaus ZEN through Data Query Service (needs dnsbl.dqs_key)",
    ),
    Zone(
        "{key}.dbl.dq.spamhaus.net",
        "domain",
        name="dbl.dq.spamhaus.net",
        codes=_DBL_CODES,
        refused=_DBL_REFUSED,
        delist=SPAMHAUS_LOOKUP,
        severity="high",
        needs_key=True,
        description="Spamhaus DBL through Data Query Service (needs dnsbl.dqs_key)",
    ),
    Zone(
        "b.barracudacentral.org",
        "ip",
        codes={"127.0.0.2": Code("Barracuda Reputation Block List", "high")},
        delist="https://www.barracudacentral.org/lookups/lookup-reputation",
        severity="high",
        description="the querying resolver's IP must be registered with Barracuda",
    ),
    Zone(
        "bl.spamcop.net",
        "ip",
        codes={"127.0.0.2": Code("SpamCop: reported spam source", "medium")},
        delist="https://www.spamcop.net/bl.shtml?{target}",
        description="listings expire quickly once reports stop",
    ),
    Zone(
        "dnsbl-1.uceprotect.net",
        "ip",
        name="",
        codes={"127.0.0.2": Code("UCEPROTECT level 1: this IP sent spam", "medium")},
        delist="https://www.uceprotect.net/en/rblcheck.php?ipr={target}",
    ),
    Zone(
        "dnsbl-2.uceprotect.net",
        "ip",
        codes={"127.0.0.2": Code("UCEPROTECT L2: the allocation is listed (collateral)", "low")},
        delist="https://www.uceprotect.net/en/rblcheck.php?ipr={target}",
        severity="low",
    ),
    Zone(
        "dnsbl-3.uceprotect.net",
        "ip",
        codes={"127.0.0.2": Code("UCEPROTECT L3: the whole ASN is listed (collateral)", "low")},
        delist="https://www.uceprotect.net/en/rblcheck.php?ipr={target}",
        severity="low",
    ),
    Zone(
        "psbl.surriel.com",
        "ip",
        codes={"127.0.0.2": Code("PSBL: seen sending to spam traps", "medium")},
        delist="https://psbl.org/listing?ip={target}",
    ),
    Zone(
        "bl.mailspike.net",
        "ip",
        codes={
            "127.0.0.2": Code("Mailspike: part of a current spam wave", "high"),
            "127.0.0.10": Code("Mailspike: worst reputation", "high"),
            "127.0.0.11": Code("Mailspike: very bad reputation", "medium"),
            "127.0.0.12": Code("Mailspike: bad reputation", "low"),
            "127.0.0.13": Code("Mailspike: suspicious reputation", "low"),
        },
        delist="https://mailspike.org/iplookup.html",
    ),
    Zone(
        "hostkarma.junkemailfilter.com",
        "ip",
        codes={
            "127.0.0.2": Code("Hostkarma: black (spam source)", "medium"),
            "127.0.0.3": Code("Hostkarma: yellow (mixed good and bad)", "low"),
            "127.0.0.4": Code("Hostkarma: brown (mostly bad)", "low"),
        },
        not_listed=frozenset({"127.0.0.1", "127.0.0.5"}),
        delist="https://ipadmin.junkemailfilter.com/remove.php?ip={target}",
        enabled=False,
        description="127.0.0.1 is a white-list answer and 127.0.0.5 'no black', not listings",
    ),
    Zone(
        "multi.surbl.org",
        "domain",
        bitmask=True,
        codes={
            "8": Code("SURBL: phishing", "critical"),
            "16": Code("SURBL: malware", "critical"),
            "64": Code("SURBL: abuse / spam", "high"),
            "128": Code("SURBL: cracked site", "medium"),
        },
        refused=frozenset({"1"}),
        test_listed="test.surbl.org",
        delist="https://surbl.org/surbl-analysis",
        description="bitmask answers; bit 1 means the query was blocked",
    ),
    Zone(
        "multi.uribl.com",
        "domain",
        bitmask=True,
        codes={
            "2": Code("URIBL: black", "high"),
            "4": Code("URIBL: grey", "low"),
            "8": Code("URIBL: red", "medium"),
        },
        refused=frozenset({"1"}),
        test_listed="test.uribl.com",
        delist="https://admin.uribl.com/?section=lookup",
        description="bitmask answers; 127.0.0.1 means the query was refused",
    ),
    Zone(
        "dyna.spamrats.com",
        "ip",
        severity="low",
        delist="https://www.spamrats.com/lookup.php?ip={target}",
        description="SpamRATS Dyna: generic / dynamic-looking rDNS (answer codes unconfirmed)",
    ),
    Zone(
        "noptr.spamrats.com",
        "ip",
        severity="low",
        delist="https://www.spamrats.com/lookup.php?ip={target}",
        description="SpamRATS NoPtr: no reverse DNS (answer codes unconfirmed)",
    ),
    Zone(
        "spam.spamrats.com",
        "ip",
        severity="medium",
        delist="https://www.spamrats.com/lookup.php?ip={target}",
        description="SpamRATS Spam: seen sending spam (answer codes unconfirmed)",
    ),
    Zone(
        "auth.spamrats.com",
        "ip",
        severity="medium",
        delist="https://www.spamrats.com/lookup.php?ip={target}",
        description="SpamRATS Auth: authentication attacks (answer codes unconfirmed)",
    ),
    Zone(
        "drop.spamhaus.org",
        "ip",
        codes={"127.0.0.9": _ZEN_CODES["127.0.0.9"]},
        selftest=False,
        delist=SPAMHAUS_LOOKUP,
        severity="critical",
        enabled=False,
        description="Spamhaus DROP (Don't Route Or Peer), IPv4: mirror-only, from the "
        "drop_v4.json download; the same netblocks answer 127.0.0.9 in zen/sbl",
    ),
    Zone(
        "dropv6.spamhaus.org",
        "ip",
        ipv6=True,
        codes={"127.0.0.9": _ZEN_CODES["127.0.0.9"]},
        selftest=False,
        delist=SPAMHAUS_LOOKUP,
        severity="critical",
        enabled=False,
        description="Spamhaus DROPv6: mirror-only, from the drop_v6.json download",
    ),
    Zone(
        "edrop.spamhaus.org",
        "ip",
        codes={"127.0.0.9": _ZEN_CODES["127.0.0.9"]},
        selftest=False,
        delist=SPAMHAUS_LOOKUP,
        severity="critical",
        enabled=False,
        description="Spamhaus EDROP (sub-allocations): mirror-only, from edrop.txt; Spamhaus "
        "folded EDROP into DROP in 2024, so the file may list nothing",
    ),
)


@dataclass(frozen=True, slots=True)
class CatalogueMirror:
    """Where a catalogue zone's data is published as a file, and how to read it.

    ``code`` and ``txt`` shape the answers of a feed (``cidr-list``, ``drop-json``: see
    ``docs/mirror-formats.md``); ``allow_empty`` accepts a file that lists nothing;
    ``min_interval`` is the least time between two downloads the publisher asks for;
    ``max_age`` the default ``mirror_max_age`` (seconds). A ``mirror_only`` zone is never
    asked over DNS: without a usable file its answers are ``unknown``.
    """

    url: str
    format: str
    code: str | None = None
    txt: str | None = None
    allow_empty: bool = False
    min_interval: float = 0.0
    max_age: float = 7200.0
    mirror_only: bool = True


#: Spamhaus: "automated downloads must be at least one hour apart"; DROP changes slowly
_HOUR, _DAY = 3600.0, 86400.0

#: catalogue zones published as downloads (zone -> where and how); all are mirror-only
MIRRORS: dict[str, CatalogueMirror] = {
    "drop.spamhaus.org": CatalogueMirror(
        "https://www.spamhaus.org/drop/drop_v4.json",
        "drop-json",
        min_interval=_HOUR,
        max_age=_DAY,
    ),
    "dropv6.spamhaus.org": CatalogueMirror(
        "https://www.spamhaus.org/drop/drop_v6.json",
        "drop-json",
        min_interval=_HOUR,
        max_age=_DAY,
    ),
    "edrop.spamhaus.org": CatalogueMirror(
        "https://www.spamhaus.org/drop/edrop.txt",
        "cidr-list",
        code="127.0.0.9",
        allow_empty=True,
        min_interval=_HOUR,
        max_age=_DAY,
    ),
}
