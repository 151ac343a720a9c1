"""``[rules]``, ``[[notify.webhooks]]``, ``[enforce]``: threshold rules and what they notify.

Owned by the cases capability; see docs/cases.md.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from monitor.config.base import Section


class RulesConfig(Section):
    hold_down: str = "2h"


class WebhookConfig(Section):
    url: str
    format: Literal["json", "slack"] = "json"


class NotifyConfig(Section):
    webhooks: list[WebhookConfig] = Field(default_factory=list)


class EnforceConfig(Section):
    url: str = ""
    dry_run: bool = True
