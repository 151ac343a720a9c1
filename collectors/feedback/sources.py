"""The built-in feedback sources: who may report what, by the From of their reports.

A report is trusted when it authenticates (aligned DKIM or SPF, see ``trust.py``) as a
source allowed to send its kind. This module is the default list (``[feedback]
builtin_sources = true``); ``[[feedback.sources]]`` adds the operator's own. Each entry
names the **From domain** of the reports (a subdomain matches too) and, where that domain
is also a free mailbox provider's (anyone can get an address there and send DKIM-signed
mail from it), the **local parts** the provider reports from: ``mailer-daemon@yahoo.com``
yes, ``anyone@yahoo.com`` no.

``evidence`` says why each entry is here: ``seen`` — From address and DKIM ``d=`` of real
reports in public samples (the project's corpus of third-party messages, public repository
fixtures and mailbox-rule lists); ``provider`` — the provider's own report address as it
documents or uses it, no signed sample seen. docs/feedback.md has the table.
"""

from __future__ import annotations

from dataclasses import dataclass

#: the report kinds a source may be trusted for (``delay`` is a ``bounce``)
KINDS = ("complaint", "dmarc-aggregate", "dmarc-failure", "tls-report", "bounce")


@dataclass(frozen=True, slots=True)
class Source:
    """Reports whose From is ``domain`` (or a subdomain of it) may be trusted for ``kinds``.

    ``local_parts``: when not empty, only From addresses with one of these local parts
    (case-insensitive). ``domain = "*"`` matches any From domain (any authenticated sender).
    """

    domain: str
    kinds: frozenset[str]
    local_parts: frozenset[str] = frozenset()
    evidence: str = ""
    note: str = ""

    def covers(self, address_domain: str, local_part: str) -> bool:
        d = address_domain.lower().rstrip(".")
        if self.domain != "*" and d != self.domain and not d.endswith("." + self.domain):
            return False
        return not self.local_parts or local_part.lower() in self.local_parts


def _s(
    domain: str, kinds: str, local_parts: str = "", evidence: str = "", note: str = ""
) -> Source:
    return Source(
        domain,
        frozenset(kinds.split()),
        frozenset(local_parts.lower().split()),
        evidence,
        note,
    )


#: the built-in list (see the module docstring for ``evidence``)
BUILTIN: tuple[Source, ...] = (
    # Google: DMARC reports from noreply-dmarc-support@google.com and TLS reports from
    # noreply-smtp-tls-reporting@google.com, both DKIM d=google.com (corpus); google.com has
    # no free mailboxes. Bounces from mailer-daemon@googlemail.com, d=googlemail.com (corpus);
    # googlemail.com is also Gmail's: only that local part.
    _s("google.com", "dmarc-aggregate tls-report", evidence="seen"),
    _s("googlemail.com", "bounce", "mailer-daemon", evidence="seen"),
    # Yahoo (and AOL, now Yahoo's): complaints from feedback@arf.mail.yahoo.com, d=
    # arf.mail.yahoo.com (corpus); DMARC reports from noreply@dmarc.yahoo.com (mailbox-rule
    # lists); bounces from MAILER-DAEMON@yahoo.com, d=yahoo.com (corpus); AOL's legacy FBL
    # scomp@aol.net (corpus).
    _s("arf.mail.yahoo.com", "complaint", evidence="seen"),
    _s("dmarc.yahoo.com", "dmarc-aggregate dmarc-failure", evidence="seen"),
    _s("yahoo.com", "bounce", "mailer-daemon", evidence="seen"),
    _s("aol.net", "complaint", "scomp", evidence="seen", note="legacy AOL feedback loop"),
    _s("aol.com", "bounce", "mailer-daemon postmaster", evidence="seen"),
    # Microsoft: DMARC reports from dmarcreport@microsoft.com (org_name "Outlook.com",
    # "Enterprise Outlook"; public samples); JMRP complaints from staff@hotmail.com (corpus);
    # consumer NDRs from postmaster@outlook.com / postmaster@hotmail.com.
    _s("microsoft.com", "dmarc-aggregate tls-report", evidence="seen"),
    _s("hotmail.com", "complaint", "staff", evidence="seen", note="JMRP"),
    _s("hotmail.com", "bounce", "postmaster", evidence="provider"),
    _s("outlook.com", "bounce", "postmaster", evidence="provider"),
    # Validity's feedback-loop service: Comcast (feedbackloop@comcastfbl.senderscore.net,
    # d=senderscore.net), Rackspace and others (corpus).
    _s("senderscore.net", "complaint", evidence="seen", note="Comcast, Rackspace … FBLs"),
    _s("comcast.net", "dmarc-aggregate", "dmarc_report dmarc-reports", evidence="provider"),
    # Mail.ru: DMARC reports from dmarc_support@corp.mail.ru, d=corp.mail.ru (corpus), FBL
    # from fbl@corp.mail.ru; bounces from MAILER-DAEMON@<host>.mail.ru (corpus).
    _s("corp.mail.ru", "dmarc-aggregate complaint dmarc-failure", evidence="seen"),
    _s("mail.ru", "bounce", "mailer-daemon", evidence="seen"),
    # Yandex: bounces from mailer-daemon@yandex.ru (corpus); its FBL and DMARC reports come
    # from yandex.ru report addresses.
    _s("yandex.ru", "bounce", "mailer-daemon", evidence="seen"),
    _s("yandex.ru", "dmarc-aggregate complaint", "dmarc-support noreply-dmarc", "provider"),
    # Zoho: noreply-dmarc@zoho.com (mailbox-rule lists); Fastmail: dmarc@fastmail.com
    # (org_name "Fastmail Pty Ltd (DMARC)"); both also host mailboxes: local parts pinned.
    _s("zoho.com", "dmarc-aggregate", "noreply-dmarc", evidence="seen"),
    _s("fastmail.com", "dmarc-aggregate", "dmarc noreply-dmarc", evidence="seen"),
    # United Internet (GMX, WEB.DE): noreply-dmarc@sicher.web.de ("Submitter: web.de").
    _s("sicher.web.de", "dmarc-aggregate", evidence="seen"),
    _s("sicher.gmx.net", "dmarc-aggregate", evidence="provider"),
    # Others seen signing their reports: Amazon SES (postmaster@amazonses.com DMARC
    # reports; complaints@email-abuse.amazonses.com), Mimecast (mimecastreport.com),
    # LinkedIn (dmarc-noreply@linkedin.com failure reports) (corpus).
    _s("amazonses.com", "dmarc-aggregate", "postmaster", evidence="seen"),
    _s("email-abuse.amazonses.com", "complaint", evidence="seen"),
    _s("mimecastreport.com", "dmarc-aggregate", evidence="seen"),
    _s("linkedin.com", "dmarc-failure", "dmarc-noreply", evidence="seen"),
    # Orange, T-Online, QQ: the providers' report domains; no signed sample seen.
    _s("orange.fr", "dmarc-aggregate", "noreply-dmarc dmarc", evidence="provider"),
    _s("t-online.de", "dmarc-aggregate", "noreply-dmarc dmarc", evidence="provider"),
    _s("qq.com", "dmarc-aggregate", "dmarc-noreply", evidence="provider"),
)
