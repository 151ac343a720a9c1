"""``[snds]``: Microsoft SNDS automated data access — the key, where to ask, how far back."""

from __future__ import annotations

import re

from pydantic import ConfigDict, Field, SecretStr, field_validator

from collectors.config import Section

#: the published automated-access endpoints live under this path
DEFAULT_BASE_URL = "https://sendersupport.olc.protection.outlook.com/snds"


class SndsConfig(Section):
    # a validation error must not quote what was typed for the key
    model_config = ConfigDict(hide_input_in_errors=True)

    #: the Automated Data Access key (SNDS, "Automated Access" page); it travels in the URL
    #: query, so it is never logged and never appears in a result or error
    key: SecretStr | None = None
    #: where ``data.aspx`` and ``ipStatus.aspx`` are; plain http only for loopback tests
    base_url: str = DEFAULT_BASE_URL
    #: days asked each run, yesterday backwards: a daily file that was late is picked up later
    days: int = Field(3, ge=1, le=90)
    #: the newest day with data may be this many days old; older means results are unknown
    max_lag_days: int = Field(2, ge=1, le=90)
    #: also read the IP status export (blocked ranges)
    ip_status: bool = True
    #: an HTTP(S) proxy URL for the requests; environment variables are not read
    proxy: str = ""
    timeout: float = Field(30.0, gt=0, le=300)
    #: attempts again after a connection error or a 5xx, with doubling pauses
    retries: int = Field(2, ge=0, le=10)

    @property
    def configured(self) -> bool:
        return self.key is not None

    @field_validator("key")
    @classmethod
    def _key(cls, v: SecretStr | None) -> SecretStr | None:
        # SNDS keys are GUIDs; anything else would be pasted into a URL, so refuse it here
        # without echoing it
        if v is not None and not re.fullmatch(r"[A-Za-z0-9-]{8,64}", v.get_secret_value()):
            raise ValueError(
                "expected the SNDS key: letters, digits and '-' (the key is not shown)"
            )
        return v

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", v):
            raise ValueError("expected an http(s) URL such as " + DEFAULT_BASE_URL)
        return v

    @field_validator("proxy")
    @classmethod
    def _proxy(cls, v: str) -> str:
        v = v.strip()
        if v and not re.fullmatch(r"https?://\S+", v):
            raise ValueError("expected a proxy URL such as http://proxy.example:3128")
        return v
