"""Who sent an abuse report: the big reporters by their sending domains.

A reporter's *prior* is what it reports nearly always (Project Honey Pot: spam; Sony PSN:
account takeover); the keyword classifier lets it settle close calls and lift weak ones.
The table names organisations, never addresses: attributing a report is not trusting it.
"""

from __future__ import annotations

from dataclasses import dataclass

from collectors.abuse.mail import MailView
from collectors.abuse.model import Category

__all__ = ["KNOWN", "Reporter", "by_domain", "identify", "reporter_label"]


@dataclass(frozen=True, slots=True)
class Reporter:
    name: str
    prior: Category | None = None


#: sender domain (or a parent of it) -> who sends from there
KNOWN: dict[str, Reporter] = {
    "shadowserver.org": Reporter("Shadowserver"),
    "blocklist.de": Reporter("blocklist.de"),
    "clean-mx.de": Reporter("clean-mx"),
    "clean-mx.com": Reporter("clean-mx"),
    "netcraft.com": Reporter("Netcraft"),
    "spamcop.net": Reporter("SpamCop", "spam"),
    "projecthoneypot.org": Reporter("Project Honey Pot", "spam"),
    "haveibeenpwned.com": Reporter("Have I Been Pwned", "other"),
    "spamhaus.org": Reporter("Spamhaus", "spam"),
    "nfoservers.com": Reporter("NFOservers", "ddos"),
    "webiron.com": Reporter("WebIron", "web-attack"),
    "cyscon.de": Reporter("cyscon C-SIRT"),
    "c-sirt.org": Reporter("cyscon C-SIRT"),
    "ip-echelon.com": Reporter("IP-Echelon", "copyright"),
    "copyright-compliance.com": Reporter("copyright-compliance (Irdeto)", "copyright"),
    "irdeto.com": Reporter("Irdeto", "copyright"),
    "markmonitor.com": Reporter("MarkMonitor", "copyright"),
    "degban.com": Reporter("Degban", "copyright"),
    "google.com": Reporter("Google"),
    "abusehub.nl": Reporter("AbuseHUB"),
    "sony.com": Reporter("Sony Interactive Entertainment (PSN)", "login-attack"),
    "bitninja.io": Reporter("BitNinja"),
    "lexsi.com": Reporter("LEXSI CERT", "phishing"),
    "spamexperts.com": Reporter("SpamExperts", "spam"),
    "abusix.com": Reporter("Abusix"),
    "phishtank.com": Reporter("PhishTank", "phishing"),
    "phishlabs.com": Reporter("PhishLabs", "phishing"),
    "cert-bund.de": Reporter("CERT-Bund"),
    "bsi.bund.de": Reporter("CERT-Bund (BSI)"),
    "cert.pl": Reporter("CERT Polska"),
    "cert.at": Reporter("CERT.at"),
    "ncsc.nl": Reporter("NCSC-NL"),
    "certsi.es": Reporter("CERTSI"),
    "abuse.ch": Reporter("abuse.ch", "malware"),
    "fail2ban.org": Reporter("fail2ban", "login-attack"),
}


def identify(view: MailView) -> Reporter | None:
    """The known reporter that sent ``view``, from its From domain or a parent domain."""
    return by_domain(view.sender_domain)


def reporter_label(view: MailView, known: Reporter | None, agent: str = "") -> str:
    """A reporter name for any mail: the known name (of the sender, or of the software
    named in ``agent``, such as an ARF User-Agent), else the sender's domain."""
    if known is not None:
        return known.name
    for reporter in KNOWN.values():
        if agent and reporter.name.lower() in agent.lower():
            return reporter.name
    return view.sender_domain or view.sender_name


def by_domain(domain: str) -> Reporter | None:
    """The known reporter of ``domain`` or of a parent domain."""
    domain = domain.lower().strip(".")
    while domain:
        if domain in KNOWN:
            return KNOWN[domain]
        domain = domain.partition(".")[2]
    return None
