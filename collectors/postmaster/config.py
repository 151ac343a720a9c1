"""``[postmaster]``: Google Postmaster Tools API — the service account, where to ask, thresholds."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from collectors.config import Section, parse_duration

DEFAULT_API_BASE = "https://gmailpostmastertools.googleapis.com"


def _url(v: str) -> str:
    v = v.strip().rstrip("/")
    if v and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", v):
        raise ValueError("expected an http(s) URL")
    return v


Url = Annotated[str, AfterValidator(_url)]
Duration = Annotated[float, BeforeValidator(parse_duration)]


class PostmasterConfig(Section):
    #: the service account's JSON key file; empty switches the collector off
    credentials_file: str = ""
    #: the OAuth 2.0 token endpoint; empty uses the key file's ``token_uri``
    token_uri: Url = ""
    #: the Postmaster Tools API; plain http only for loopback tests
    api_base: Url = DEFAULT_API_BASE
    #: only these domains (as registered in Postmaster Tools); empty = every domain the
    #: service account can read
    domains: list[str] = Field(default_factory=list)
    #: days of traffic statistics asked each run, ending yesterday
    days: int = Field(7, ge=1, le=120)
    #: the newest day with statistics may be this many days old; older means unknown
    max_lag_days: int = Field(3, ge=1, le=120)
    #: also read the v2 compliance status (bulk-sender requirements) of each domain
    compliance: bool = False
    #: Gmail's bulk-sender guidance: keep the user-reported spam rate under 0.10 % and never
    #: reach 0.30 %
    spam_rate_medium: float = Field(0.001, gt=0, lt=1)
    spam_rate_high: float = Field(0.003, gt=0, lt=1)
    #: SPF, DKIM and DMARC pass ratios (spoofed mail is already left out by Gmail) below this
    #: mean a sending path that is not signed or not authorized
    auth_min_ratio: float = Field(0.95, gt=0, le=1)
    #: an HTTP(S) proxy URL for the API and token requests; environment variables are not read
    proxy: Url = ""
    timeout: float = Field(30.0, gt=0, le=300)
    #: attempts again after a connection error, 5xx or 429, with doubling pauses
    retries: int = Field(3, ge=0, le=10)
    #: the longest ``Retry-After`` honoured; a longer one ends the run as unknown
    max_retry_after: Duration = Field(60.0, ge=0, le=3600)
    page_size: int = Field(100, ge=1, le=1000)

    @property
    def configured(self) -> bool:
        return bool(self.credentials_file)

    @field_validator("domains")
    @classmethod
    def _domains(cls, v: list[str]) -> list[str]:
        out = [d.strip().rstrip(".").lower() for d in v]
        if any(not d or " " in d or "/" in d for d in out):
            raise ValueError("expected domain names such as 'mail.example.com'")
        return out

    @model_validator(mode="after")
    def _thresholds(self) -> PostmasterConfig:
        if self.spam_rate_medium >= self.spam_rate_high:
            raise ValueError("spam_rate_medium must be below spam_rate_high")
        return self
