"""``[feedback]``: how feedback messages are attributed and what of them is kept."""

from __future__ import annotations

import re

from pydantic import field_validator

from collectors.config import Section


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
