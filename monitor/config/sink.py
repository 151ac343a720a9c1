"""``[sink]`` and ``[feedback]``: the SMTP feedback sink and how its messages are attributed.

Owned by the feedback intake; see docs/feedback.md.
"""

from __future__ import annotations

from pydantic import Field

from monitor.config.base import Section


class SinkConfig(Section):
    listen: str = "127.0.0.1:2525"
    accept_domains: list[str] = Field(default_factory=list)
    accept_addresses: list[str] = Field(default_factory=list)
    spool: str = "var/spool"
    max_message_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_recipients: int = Field(100, ge=1)
    tls_cert: str = ""
    tls_key: str = ""


class FeedbackConfig(Section):
    #: a header our MTA stamps with the sending IP
    sending_ip_header: str = "X-Sending-IP"
    #: regex with a named group ``ip`` applied to the bounce recipient (VERP)
    verp_pattern: str = ""
    #: keep recipient addresses in clear in stored events (default: hashed)
    store_recipients: bool = False
