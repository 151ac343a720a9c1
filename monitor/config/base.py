"""The base every config section derives from: unknown keys are errors."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


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
