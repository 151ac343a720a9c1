"""``[sink]`` and ``[feedback]``: the SMTP feedback sink and how its messages are attributed.

Owned by the feedback intake; see docs/feedback.md.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from monitor.config.base import Section


class SinkConfig(Section):
    listen: str = "127.0.0.1:2525"
    #: loopback-only by default, so accepting "localhost" lets a newcomer try it safely
    accept_domains: list[str] = Field(default_factory=lambda: ["localhost"])
    accept_addresses: list[str] = Field(default_factory=list)
    spool: str = "var/spool"
    max_message_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_recipients: int = Field(100, ge=1)
    tls_cert: str = ""
    tls_key: str = ""


class FeedbackConfig(Section):
    #: a header our MTA stamps with the sending IP
    sending_ip_header: str = "X-Sending-IP"
    #: regex with a named group ``ip`` (or ``ipx``: 8 or 32 hex digits) applied to the bounce
    #: recipient and envelope (VERP)
    verp_pattern: str = ""
    #: keep recipient addresses in clear in stored events (default: hashed)
    store_recipients: bool = False
    #: salt mixed into recipient hashes (set it to make hashes unguessable across sites)
    recipient_salt: str = ""

    @field_validator("verp_pattern")
    @classmethod
    def _verp(cls, v: str) -> str:
        if not v:
            return v
        try:
            pattern = re.compile(v)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        if not {"ip", "ipx"} & set(pattern.groupindex):
            raise ValueError("needs a named group (?P<ip>...) or (?P<ipx>...)")
        return v
