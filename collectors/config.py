"""What every collector's configuration shares: the strict section base, durations, the resolver.

Each collector declares its own section model (``collectors/<name>/config.py``) on
:class:`Section`; the application's config file (``monitor/config``) gathers them from the
registry. Unknown keys are errors; a duration is ``90``, ``"90s"``, ``"15m"``, ``"1h"``, ``"2d"``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from checks.resolver import Nameserver, parse_nameserver


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_duration(value: object) -> float:
    """Seconds from ``90``, ``"90s"``, ``"15m"``, ``"1h"``, ``"2d"``; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '15m'")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
        if text and text[-1] in units:
            number, unit = text[:-1], units[text[-1]]
        else:
            number, unit = text, 1
        try:
            seconds = float(number) * unit
        except ValueError:
            pass
        else:
            if seconds >= 0:
                return seconds
    raise ValueError(f"expected a duration such as '90s', '15m', '1h', '2d', got {value!r}")


def _nameserver(text: str) -> str:
    parse_nameserver(text)
    return text


NameserverText = Annotated[str, AfterValidator(_nameserver)]


class ResolverConfig(Section):
    """``[resolver]``: where DNS questions go."""

    nameservers: list[NameserverText] = Field(default_factory=list)
    timeout: float = Field(2.0, gt=0, le=60)
    #: how many times a query that got no answer is sent again (UDP loses packets)
    retries: int = Field(2, ge=0, le=10)
    #: queries in flight at once in a sweep
    concurrency: int = Field(500, ge=1, le=20000)

    def servers(self) -> list[Nameserver]:
        return [parse_nameserver(t) for t in self.nameservers]
