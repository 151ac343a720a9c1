"""From a report's own label, or failing that its words, to one of repmon's categories.

Two sources, in order of trust (docs/abuse.md, "Confidence"):

1. **The format's own field.** X-ARF ``Report-Type`` / ``ReportType`` / ``category``+``type``,
   the Shadowserver report name, the ARF ``Feedback-Type``. These are the reporter's
   statement of what happened; the tables below translate their vocabulary. A known value
   gives 0.9-0.95; a value only matched by a rule (an unknown ``scan_*`` feed) 0.75.
2. **The words.** Subject and body are scored against keyword lists per category; the
   subject counts three times as much as the body. Confidence grows with the score and
   with the lead over the runner-up, and never exceeds 0.8: words are evidence, not a label.

Nothing recognised gives ``other`` at 0.2, which is below :data:`REVIEW_THRESHOLD`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from collectors.abuse.model import CATEGORIES, Category

__all__ = [
    "UNKNOWN",
    "Verdict",
    "from_arf",
    "from_keywords",
    "from_shadowserver",
    "from_word",
    "from_xarf0",
    "from_xarf_json",
    "from_xarf_v4",
]


@dataclass(frozen=True, slots=True)
class Verdict:
    category: Category
    confidence: float
    reason: str


UNKNOWN = Verdict("other", 0.2, "no category field and no recognisable words")

# -- X-ARF 0.1/0.2 (YAML in an e-mail part): Report-Type --------------------------------------

_XARF0: dict[str, Category] = {
    "login-attack": "login-attack",
    "malware-attack": "malware",
    "malware": "malware",
    "phishing": "phishing",
    "harvesting": "spam",
    "info": "other",
    "regbot": "spam",
    "ircbot": "botnet",
    "botnet": "botnet",
    "badbot": "web-attack",
    "hack-attack": "web-attack",
    "web-attack": "web-attack",
    "ddos": "ddos",
    "denial of service": "ddos",
    "comment spam": "spam",
    "portscan": "port-scan",
    "port-scan": "port-scan",
    "spam": "spam",
    "copyright": "copyright",
    "fraud": "fraud",
}


def from_xarf0(report_type: str, category: str = "") -> Verdict | None:
    key = report_type.strip().lower()
    if key in _XARF0:
        return Verdict(_XARF0[key], 0.95, f"X-ARF Report-Type: {key}")
    loose = from_word(key) or from_word(category.strip().lower())
    if loose is not None:
        return Verdict(loose, 0.75, f"X-ARF Report-Type {key!r} read as {loose}")
    return None


# -- X-ARF JSON "v1"/"v3" (abusix): ReportType --------------------------------------------

_XARF_JSON: dict[str, Category] = {
    "spam": "spam",
    "phishing": "phishing",
    "malware": "malware",
    "botnet": "botnet",
    "dos": "ddos",
    "ddos": "ddos",
    "loginattack": "login-attack",
    "portscan": "port-scan",
    "openservice": "open-service",
    "copyright": "copyright",
    "exploit": "web-attack",
    "fraud": "fraud",
    "trademark": "other",
    "childabuse": "other",
    "harassment": "other",
    "potentiallycompromisedaccount": "other",
    "webcrawler": "other",
}


def from_xarf_json(report_type: str, report_class: str = "") -> Verdict | None:
    key = re.sub(r"[\s_-]", "", report_type).lower()
    if key in _XARF_JSON:
        return Verdict(_XARF_JSON[key], 0.95, f"X-ARF ReportType: {report_type}")
    loose = from_word(key)
    if loose is not None:
        return Verdict(loose, 0.75, f"X-ARF ReportType {report_type!r} read as {loose}")
    return None


# -- X-ARF v4: category + type ----------------------------------------------------------------

_XARF_V4: dict[str, Category] = {
    "spam": "spam", "bulk_messaging": "spam", "phishing": "phishing", "phishing_site": "phishing",
    "social_engineering": "fraud", "login_attack": "login-attack", "auth_failure": "login-attack",
    "brute_force": "login-attack", "port_scan": "port-scan", "reconnaissance": "port-scan",
    "ddos": "ddos", "ddos_amplification": "ddos", "bot": "botnet", "botnet": "botnet",
    "infected_host": "botnet", "vulnerability_scan": "web-attack", "vuln_scanning": "web-attack",
    "sql_injection": "web-attack", "scraping": "web-attack", "web_hack": "web-attack",
    "ip_spoof": "other", "malware": "malware", "malware_distribution": "malware",
    "remote_compromise": "malware", "compromised_website": "malware", "fraud": "fraud",
    "spamvertised": "spam", "defacement": "other", "brand_infringement": "other",
    "csam": "other", "csem": "other", "exposed_data": "other",
    "suspicious_registration": "other", "copyright": "copyright", "cyberlocker": "copyright",
    "link_site": "copyright", "p2p": "copyright", "ugc_platform": "copyright",
    "usenet": "copyright", "trademark": "other", "compromised_server": "other",
    "compromised_account": "other", "compromised_microsoft_exchange": "vulnerable-service",
    "cve": "vulnerable-service", "blocklist": "other", "threat_intelligence": "other",
    "ip_reclamation": "other", "trap": "spam", "open_service": "open-service",
    "open": "open-service", "misconfiguration": "vulnerable-service",
    "ssl_freak": "vulnerable-service", "ssl_poodle": "vulnerable-service",
    "outdated_dnssec": "vulnerable-service", "malicious_activity": "other",
}  # fmt: skip
#: when only the v4 class is known
_XARF_V4_CLASS: dict[str, Category] = {
    "messaging": "spam",
    "copyright": "copyright",
    "vulnerability": "vulnerable-service",
}


def from_xarf_v4(category: str, type_: str) -> Verdict | None:
    cls, key = category.strip().lower(), type_.strip().lower().replace("-", "_")
    if key in _XARF_V4:
        return Verdict(_XARF_V4[key], 0.95, f"X-ARF v4 category/type: {cls}/{key}")
    loose = from_word(key)
    if loose is not None:
        return Verdict(loose, 0.75, f"X-ARF v4 type {cls}/{key} read as {loose}")
    if cls in _XARF_V4_CLASS:
        return Verdict(_XARF_V4_CLASS[cls], 0.6, f"X-ARF v4 category {cls} (type {key!r} unknown)")
    return None


# -- ARF (RFC 5965) Feedback-Type -------------------------------------------------------------

_ARF: dict[str, tuple[Category, float]] = {
    "abuse": ("spam", 0.9),
    "fraud": ("fraud", 0.8),
    "virus": ("malware", 0.8),
    "opt-out": ("spam", 0.6),
    "not-spam": ("other", 0.3),
    "auth-failure": ("other", 0.4),
    "other": ("other", 0.3),
}


def from_arf(feedback_type: str) -> Verdict:
    key = feedback_type.strip().lower() or "abuse"
    category, confidence = _ARF.get(key, ("spam", 0.6))
    return Verdict(category, confidence, f"ARF Feedback-Type: {key}")


# -- Shadowserver report names ----------------------------------------------------------------

#: report (feed) names whose category a rule would get wrong or that are the common ones
_SHADOWSERVER: dict[str, Category] = {
    "botnet_drone": "botnet", "sinkhole_http_drone": "botnet", "microsoft_sinkhole": "botnet",
    "sinkhole6": "botnet", "cc_ip": "botnet", "drone": "botnet", "drone_brute_force": "botnet",
    "compromised_website": "malware", "cwsandbox_url": "malware", "sandbox_url": "malware",
    "sandbox_connection": "malware", "sandbox_irc": "malware", "sandbox_smtp": "malware",
    "sandbox_dns": "malware", "honeypot_url": "malware", "sinkhole_http_referer": "malware",
    "spam_url": "spam", "blacklist": "spam", "blocklist": "spam",
    "scan_ntpmonitor": "open-service", "ntp_monitor": "open-service",
    "dns_openresolver": "open-service", "open_resolvers": "open-service",
    "ssl_scan": "vulnerable-service", "scan_ssl_poodle": "vulnerable-service",
    "scan_ssl_freak": "vulnerable-service", "scan_isakmp": "vulnerable-service",
    "netis_router": "vulnerable-service", "scan_synful": "vulnerable-service",
    "scan_exchange": "vulnerable-service", "irc_port": "other", "device_id": "other",
}  # fmt: skip
#: (token pattern, category), first match wins; tokens come from the name split on [-_ .]
_SHADOWSERVER_RULES: list[tuple[re.Pattern[str], Category]] = [
    (re.compile(r"vulnerab|poodle|freak|heartbleed|cve|synful|netis|exchange|isakmp"),
     "vulnerable-service"),
    (re.compile(r"^ssl(?: |$)| ssl scan|scan ssl$"), "vulnerable-service"),
    (re.compile(r"botnet|drone|sinkhole|\bcc\b|c&c|\bbot\b"), "botnet"),
    (re.compile(r"ddos|amplification"), "ddos"),
    (re.compile(r"brute|login|auth"), "login-attack"),
    (re.compile(r"sandbox|malware|compromised|honeypot url|url honeypot"), "malware"),
    (re.compile(r"phish"), "phishing"),
    (re.compile(r"spam"), "spam"),
    (re.compile(r"darknet|scan(?:ner|ning)? (?:event|honeypot)|event4 .*scan"), "port-scan"),
    (re.compile(r"scan|open|accessible|exposed|resolver|proxy|\bntp\b"), "open-service"),
]  # fmt: skip


def from_shadowserver(name: str) -> Verdict | None:
    """The category of a Shadowserver report from its feed name (``scan_ntpmonitor``),
    its wiki file name (``open-resolvers``) or its title (``Accessible AFP``)."""
    key = re.sub(r"[^a-z0-9&]+", "_", name.strip().lower()).strip("_")
    if key in _SHADOWSERVER:
        return Verdict(_SHADOWSERVER[key], 0.9, f"Shadowserver report: {key}")
    words = key.replace("_", " ")
    for pattern, category in _SHADOWSERVER_RULES:
        if pattern.search(words):
            return Verdict(category, 0.75, f"Shadowserver report {key!r} read as {category}")
    return None


# -- one word (a type name) -------------------------------------------------------------------

_WORD: list[tuple[re.Pattern[str], Category]] = [
    (re.compile(r"phish"), "phishing"),
    (re.compile(r"spam|harvest|trap"), "spam"),
    (re.compile(r"bot(?:net)?\b|drone|c2|sinkhole"), "botnet"),
    (re.compile(r"malware|virus|trojan|ransom"), "malware"),
    (re.compile(r"d?dos|flood|amplif|denial"), "ddos"),
    (re.compile(r"port.?scan|scan"), "port-scan"),
    (re.compile(r"login|brute|auth|password"), "login-attack"),
    (re.compile(r"copyright|dmca|piracy|infring"), "copyright"),
    (re.compile(r"fraud|scam"), "fraud"),
    (re.compile(r"exploit|inject|hack|web.?attack|xss|crawler"), "web-attack"),
    (re.compile(r"open|accessible|exposed"), "open-service"),
    (re.compile(r"vulnerab|cve|outdated"), "vulnerable-service"),
    (re.compile(r"defac|pwned|breach|trademark|harass"), "other"),
]


def from_word(word: str) -> Category | None:
    """A category for an unknown type name, when one of its parts says it plainly."""
    if not word:
        return None
    for pattern, category in _WORD:
        if pattern.search(word):
            return category
    return None


# -- the words of a message -------------------------------------------------------------------

_KW = dict[Category, list[tuple[str, int]]]
#: (regular expression, weight) per category; weight 3 = says it outright, 1 = a hint
_KEYWORDS: _KW = {
    "login-attack": [
        (r"brute[\s-]?force", 3), (r"login attack", 3),
        (r"(?:failed|malicious|invalid) log-?ins?", 3),
        (r"log-?in attempts?", 2), (r"account takeover", 3), (r"credential stuffing", 3),
        (r"password guess", 3), (r"dictionary attack (?:on|against) (?:ssh|ftp|rdp)", 3),
        (r"authentication failures?", 2), (r"\bssh\b", 1), (r"invalid user", 2),
        (r"\brdp\b", 1), (r"wp-login", 1), (r"inlogpoging", 3),
    ],
    "port-scan": [
        (r"port[\s-]?scan", 3), (r"scanning (?:of|our|activity)", 2), (r"\bscann(?:ed|ing)\b", 1),
        (r"\bprob(?:e|es|ing)\b", 1), (r"reconnaissance", 2), (r"connection attempts", 1),
        (r"network scan", 3),
    ],
    "ddos": [
        (r"\bd?dos\b", 3), (r"denial[\s-]of[\s-]service", 3), (r"\bflood(?:ing)?\b", 2),
        (r"\bdrdos\b", 2), (r"amplification attack", 2), (r"reflection attack", 2),
        (r"syn flood", 3),
    ],
    "botnet": [
        (r"\bbotnets?\b", 3), (r"\bbot(?:ware)?\b", 1), (r"\bdrones?\b", 2),
        (r"command[\s-]and[\s-]control", 3), (r"\bc&c\b|\bc2\b", 3), (r"sinkhole", 2),
        (r"\binfected\b", 1), (r"\binfection\b", 1), (r"zeroaccess|conficker|mirai|emotet", 3),
    ],
    "malware": [
        (r"malware", 3), (r"\bvirus(?:es)?\b", 2), (r"trojan", 2),
        (r"malicious (?:software|file|code|content|url)", 3),
        (r"ransomware", 3), (r"drive-by", 2), (r"exploit kit", 3), (r"web ?shell", 2),
        (r"compromised (?:web ?)?site", 2), (r"hacked (?:web ?)?site", 2), (r"\biframe\b", 1),
    ],
    "phishing": [
        (r"phish", 4), (r"hame[cç]onnage", 4), (r"credential (?:theft|harvest)", 3),
        (r"fake login", 3), (r"fraudul\w+ (?:web)?site", 2), (r"site frauduleux", 3),
        (r"impersonat", 1), (r"survey scam", 2),
    ],
    "spam": [
        (r"\bspam(?:ming|s|med|mer|mers)?\b", 3), (r"unsolicited", 3), (r"\buce\b|\bube\b", 2),
        (r"bulk (?:e-?)?mail", 2), (r"junk (?:e-?)?mail", 2), (r"spam ?trap", 3),
        (r"harvest(?:ing|er)", 2), (r"spamverti[sz]", 3), (r"comment spam", 3),
        (r"abuse report for ip", 1), (r"feedback report", 1),
    ],
    "open-service": [
        (r"open (?:recursive )?(?:dns )?resolver", 4), (r"open (?:ntp|snmp|ssdp|memcached|redis|"
         r"mongodb|chargen|qotd|netbios|ldap|portmap|proxy|relay|mdns|elasticsearch)", 4),
        (r"\bmonlist\b", 3), (r"publicly accessible", 2), (r"\baccessible\b", 1),
        (r"exploitable \w+ server", 3), (r"\bamplifier\b", 2), (r"\breflector\b", 2),
        (r"\bexposed\b", 1), (r"open (?:service|port)s?", 2),
    ],
    "vulnerable-service": [
        (r"vulnerab", 3), (r"\bcve-\d{4}", 3), (r"unpatched", 2), (r"outdated", 1),
        (r"\bpoodle\b|\bfreak\b|heartbleed", 3), (r"end[\s-]of[\s-]life", 1), (r"verwundbar", 3),
    ],
    "copyright": [
        (r"copyright", 3), (r"infring", 3), (r"\bdmca\b", 3), (r"piracy|pirated", 3),
        (r"unauthori[sz]ed (?:use|distribution|copy)", 2), (r"intellectual property", 2),
        (r"bittorrent|\btorrent\b|\bp2p\b", 1), (r"urheberrecht", 3),
    ],
    "fraud": [
        (r"\bfraud", 2), (r"\bscam\b", 2), (r"advance[\s-]fee|\b419\b", 3),
        (r"fake (?:shop|store)", 3), (r"investment scam", 3), (r"tech(?:nical)? support scam", 3),
    ],
    "web-attack": [
        (r"sql[\s-]?injection|\bsqli\b", 3), (r"\bxss\b|cross[\s-]site scripting", 3),
        (r"web[\s-]?attacks?", 3), (r"hack(?:ing)? attempts?", 3),
        (r"exploit(?:ation)? attempts?", 3),
        (r"\b[lr]fi\b|file inclusion|directory traversal|path traversal", 3),
        (r"abusive web requests", 3), (r"\bbad ?bots?\b", 2), (r"\bweb ?hack", 3),
        (r"web application", 1), (r"malicious (?:http |web )?requests", 2), (r"log4j|log4shell", 3),
    ],
    "other": [
        (r"have i been pwned|\bpwned\b", 4), (r"data breach", 3), (r"\bdefac(?:ed|ement)\b", 3),
        (r"trademark", 2), (r"child (?:sexual )?abuse", 4), (r"harass", 3),
        (r"compromised account", 2),
    ],
}  # fmt: skip
_COMPILED: list[tuple[Category, re.Pattern[str], int]] = [
    (cat, re.compile(pattern, re.I), weight)
    for cat, rules in _KEYWORDS.items()
    for pattern, weight in rules
]
_SUBJECT_WEIGHT = 3
#: enough of the body to hold the report, not the disclaimers and quoted history below it
_BODY_CHARS = 6000

assert set(_KEYWORDS) <= set(CATEGORIES)


def from_keywords(subject: str, body: str, prior: Category | None = None) -> Verdict:
    """The category the words point to, with confidence 0.35-0.8 and the words as reason.

    ``prior`` is what this reporter usually reports (reporters.py); it wins a close call
    and lifts a weak one.
    """
    scores, hits = _score(subject, body[:_BODY_CHARS])
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    if not ranked:
        if prior is not None:
            return Verdict(prior, 0.55, f"no category words; the reporter usually reports {prior}")
        return UNKNOWN
    (best, top), runner = ranked[0], ranked[1][1] if len(ranked) > 1 else 0
    if prior is not None and prior in scores and scores[prior] * 1.5 >= top:
        best, top = prior, scores[prior]
        runner = max((s for c, s in scores.items() if c != prior), default=0)
    lead = (top - runner) / top
    confidence = min(0.8, 0.3 + 0.05 * min(top, 8) + 0.15 * lead)
    if best == prior:
        confidence = min(0.8, confidence + 0.1)
    where = (
        "subject and body"
        if hits[best][0] and hits[best][1]
        else ("subject" if hits[best][0] else "body")
    )
    words = ", ".join(sorted(set(hits[best][0] + hits[best][1]))[:4])
    return Verdict(best, confidence, f"{where} mention {words}")


def _score(
    subject: str, body: str
) -> tuple[dict[Category, int], dict[Category, tuple[list[str], list[str]]]]:
    scores: dict[Category, int] = {}
    hits: dict[Category, tuple[list[str], list[str]]] = {}
    for category, pattern, weight in _COMPILED:
        in_subject = pattern.search(subject)
        in_body = pattern.search(body)
        if not (in_subject or in_body):
            continue
        gained = weight * (_SUBJECT_WEIGHT if in_subject else 0) + (weight if in_body else 0)
        scores[category] = scores.get(category, 0) + gained
        found = hits.setdefault(category, ([], []))
        if in_subject:
            found[0].append(_shown(in_subject))
        if in_body:
            found[1].append(_shown(in_body))
    return scores, hits


def _shown(match: re.Match[str]) -> str:
    return " ".join(match.group(0).lower().split())
