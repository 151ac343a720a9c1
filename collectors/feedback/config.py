"""``[feedback]``: how feedback messages are attributed and what of them is kept."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from collectors.config import Section
from collectors.feedback.sources import BUILTIN, Source
from collectors.feedback.verp import compile_verp

ReportKind = Literal["complaint", "dmarc-aggregate", "dmarc-failure", "tls-report", "bounce"]


class FeedbackSource(Section):
    """``[[feedback.sources]]``: reports whose From is ``domain`` (or a subdomain) may be
    trusted for ``kinds`` once they authenticate (docs/feedback.md, "Trusted feedback")."""

    #: the From domain of the reports; ``"*"``: any domain that authenticates
    domain: str = Field(min_length=1, max_length=253)
    #: what it may report
    kinds: list[ReportKind] = Field(min_length=1)
    #: only these From local parts (e.g. ``["mailer-daemon"]``); empty: any
    local_parts: list[str] = Field(default_factory=list)

    @field_validator("domain")
    @classmethod
    def _domain(cls, v: str) -> str:
        v = v.strip().lower().rstrip(".")
        if v != "*" and ("." not in v or "@" in v or " " in v):
            raise ValueError(f"{v!r}: expected a domain such as 'fbl.example.net', or '*'")
        return v

    def source(self) -> Source:
        return Source(
            self.domain,
            frozenset(self.kinds),
            frozenset(p.strip().lower() for p in self.local_parts),
            evidence="config",
        )


class FeedbackConfig(Section):
    #: a header our MTA stamps with the sending IP
    sending_ip_header: str = "X-Sending-IP"
    #: regex with a named group ``ip`` (or ``ipx``: 8 or 32 hex digits) applied to the bounce
    #: recipient and envelope (VERP); refused when it can backtrack catastrophically, applied
    #: only to addresses of at most 254 characters (collectors/feedback/verp.py)
    verp_pattern: str = ""
    #: keep recipient addresses in clear in stored events (default: hashed)
    store_recipients: bool = False
    #: salt mixed into recipient hashes (set it to make hashes unguessable across sites)
    recipient_salt: str = ""
    #: who may send which reports, besides the built-in list (collectors/feedback/sources.py)
    sources: list[FeedbackSource] = Field(default_factory=list)
    #: also trust the built-in list of mailbox providers and report senders
    builtin_sources: bool = True

    def trusted_sources(self) -> tuple[Source, ...]:
        """The configured sources, then the built-in ones when ``builtin_sources``."""
        own = tuple(s.source() for s in self.sources)
        return own + (BUILTIN if self.builtin_sources else ())

    @field_validator("verp_pattern")
    @classmethod
    def _verp(cls, v: str) -> str:
        if v:
            compile_verp(v)  # ValueError naming the problem (collectors/feedback/verp.py)
        return v
