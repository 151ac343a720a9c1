"""``[sink]``: the SMTP sink's listener, accepted addresses, spool and limits."""

from __future__ import annotations

from pydantic import Field

from collectors.config import Section


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
