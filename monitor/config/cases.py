"""``[rules]``, ``[[notify.webhooks]]``, ``[enforce]``: threshold rules and what they notify.

Owned by the cases capability; see docs/cases.md. Durations are strings such as
``"2h"`` (validated with :func:`parse_duration`); each section has a ``*_seconds``
accessor. Rate thresholds are a map from severity name to the rate (a fraction:
``0.001`` = 0.1 %) at or above which a case has that severity.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from collectors.config import Section, parse_duration

SeverityName = Literal["critical", "high", "medium", "low", "info"]


def _duration(value: str) -> str:
    parse_duration(value)
    return value


def _thresholds(value: dict[SeverityName, float]) -> dict[SeverityName, float]:
    if not value:
        raise ValueError("expected at least one severity = rate, e.g. {medium = 0.001}")
    for name, rate in value.items():
        if not 0 < rate <= 1:
            raise ValueError(f"{name}: expected a rate between 0 and 1 (0.001 = 0.1 %)")
    return value


def _rates(
    medium: float, worst_at: float, worst: SeverityName = "critical"
) -> dict[SeverityName, float]:
    return {"medium": medium, worst: worst_at}


class RateRuleConfig(Section):
    """A rate over a window, judged only above a minimum volume."""

    enabled: bool = True
    window: str = "24h"
    #: messages (the denominator) needed before the rate means anything, opening or clearing
    min_volume: int = Field(1000, ge=1)
    thresholds: dict[SeverityName, float] = Field(default_factory=dict)

    _window = field_validator("window")(_duration)
    _rates = field_validator("thresholds")(_thresholds)

    @property
    def window_seconds(self) -> float:
        return parse_duration(self.window)


class ComplaintRuleConfig(RateRuleConfig):
    """``[rules.complaints]``: Gmail keep < 0.1 %, never 0.3 %; SES review at 0.1 %."""

    thresholds: dict[SeverityName, float] = Field(default_factory=lambda: _rates(0.001, 0.003))
    #: also judge each customer's rate over all of its IPs
    per_customer: bool = True
    #: ARF feedback types that are not complaints about our mail
    ignore_feedback_types: list[str] = Field(default_factory=lambda: ["not-spam"])


class BounceRuleConfig(RateRuleConfig):
    """``[rules.bounces]``: hard bounces; Amazon SES review at 5 %, pause at 10 %."""

    thresholds: dict[SeverityName, float] = Field(default_factory=lambda: _rates(0.05, 0.10))
    per_customer: bool = True


class DmarcRuleConfig(RateRuleConfig):
    """``[rules.dmarc]``: share of DMARC-reported mail per source IP failing both DKIM and SPF.

    No receiver publishes this number; the defaults are repmon's. Reports cover a
    day and arrive a day late, hence the longer window.
    """

    window: str = "48h"
    min_volume: int = Field(500, ge=1)
    thresholds: dict[SeverityName, float] = Field(
        default_factory=lambda: _rates(0.02, 0.10, worst="high")
    )


class BurstRuleConfig(Section):
    """``[rules.bounce_burst]``: many block bounces from one receiving domain for one IP."""

    enabled: bool = True
    window: str = "1h"
    #: bounces in the window that open a case; the severity is ``severity``
    count: int = Field(20, ge=1)
    severity: SeverityName = "high"
    categories: list[str] = Field(default_factory=lambda: ["blocklisted", "reputation"])
    #: messages sent by the IP in the window needed to call the burst over (not to open)
    min_volume: int = Field(100, ge=0)

    _window = field_validator("window")(_duration)

    @property
    def window_seconds(self) -> float:
        return parse_duration(self.window)


class BlocklistRuleConfig(Section):
    """``[rules.blocklisting]``: a ``dnsbl`` problem opens a case per (target, zone)."""

    enabled: bool = True


class HygieneRuleConfig(Section):
    """``[rules.hygiene]``: stored check problems that open a case, and the case type."""

    enabled: bool = True
    types: dict[str, str] = Field(
        default_factory=lambda: {
            "spf": "authentication",
            "dmarc": "authentication",
            "dkim": "authentication",
            "spf-authorizes": "authentication",
            "ptr": "hygiene",
        }
    )


class ProviderRuleConfig(Section):
    """``[rules.providers]``: the mailbox providers' verdicts (SNDS, Postmaster Tools) that open
    a case, and the case type. The severity is the result's: SNDS RED or a trap hit high,
    YELLOW medium, a blocked IP high; Gmail spam rate medium from 0.1 %, high from 0.3 %;
    reputation LOW medium, BAD high; SPF/DKIM/DMARC pass ratios and compliance medium."""

    enabled: bool = True
    types: dict[str, str] = Field(
        default_factory=lambda: {
            "snds": "reputation",
            "snds-blocked": "blocklisting",
            "gmail-spam-rate": "complaints",
            "gmail-reputation": "reputation",
            "gmail-auth": "hygiene",
            "gmail-compliance": "hygiene",
        }
    )


class VolumeConfig(Section):
    """``[rules.volume]``: where sent counts come from (the denominator of rate rules)."""

    #: Postfix syslog tag (``postfix-out1/smtp``) or instance (``postfix-out1``) -> sending IP
    postfix_ips: dict[str, str] = Field(default_factory=dict)


class RulesConfig(Section):
    #: a case resolves only after its condition was checked and clear for this long
    hold_down: str = "2h"
    #: a case whose condition returns within this time after resolving reopens
    reopen_window: str = "24h"
    #: feedback rows shown on a case (recipients always hashed)
    samples: int = Field(5, ge=0, le=50)
    blocklisting: BlocklistRuleConfig = Field(default_factory=BlocklistRuleConfig)
    complaints: ComplaintRuleConfig = Field(default_factory=ComplaintRuleConfig)
    bounces: BounceRuleConfig = Field(default_factory=BounceRuleConfig)
    bounce_burst: BurstRuleConfig = Field(default_factory=BurstRuleConfig)
    dmarc: DmarcRuleConfig = Field(default_factory=DmarcRuleConfig)
    hygiene: HygieneRuleConfig = Field(default_factory=HygieneRuleConfig)
    providers: ProviderRuleConfig = Field(default_factory=ProviderRuleConfig)
    volume: VolumeConfig = Field(default_factory=VolumeConfig)

    _durations = field_validator("hold_down", "reopen_window")(_duration)

    @property
    def hold_down_seconds(self) -> float:
        return parse_duration(self.hold_down)

    @property
    def reopen_window_seconds(self) -> float:
        return parse_duration(self.reopen_window)


class WebhookConfig(Section):
    url: str
    format: Literal["json", "slack"] = "json"
    timeout: float = Field(10.0, gt=0, le=120)

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return v


class NotifyConfig(Section):
    webhooks: list[WebhookConfig] = Field(default_factory=list)
    #: first retry delay; doubled after each failure up to ``max_backoff``
    backoff: str = "30s"
    max_backoff: str = "1h"

    _durations = field_validator("backoff", "max_backoff")(_duration)


class EnforceConfig(Section):
    """``[enforce]``: on a critical case, ask the MTA to throttle the subject."""

    url: str = ""
    #: only write "would throttle X" on the case timeline
    dry_run: bool = True
    timeout: float = Field(10.0, gt=0, le=120)

    @model_validator(mode="after")
    def _url_when_live(self) -> EnforceConfig:
        if not self.dry_run and not self.url:
            raise ValueError("url: required when dry_run = false")
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ValueError("url: expected an http:// or https:// URL")
        return self
