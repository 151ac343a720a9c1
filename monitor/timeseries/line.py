"""InfluxDB line protocol: escaping and formatting of one point.

Tag values are normalised rather than escaped where servers disagree:
InfluxDB 1.x keeps ``\\\\`` in a tag value as two backslashes while
VictoriaMetrics reads it as one, so a backslash becomes ``_``. Newlines, which
no server accepts inside a line, become spaces. An empty tag value, which line
protocol cannot carry, becomes :data:`EMPTY`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping

#: what an empty tag value is written as (pool/customer of an unattributed target ...)
EMPTY = "none"

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

FieldValue = int | float | bool | str


def _clean(text: str) -> str:
    return text.replace("\\", "_").replace("\r", " ").replace("\n", " ").replace("\t", " ")


def escape_measurement(name: str) -> str:
    """``name`` with commas and spaces escaped."""
    return _clean(name).replace(",", "\\,").replace(" ", "\\ ")


def escape_tag(text: str) -> str:
    """A tag key, tag value or field key: commas, equals signs and spaces escaped."""
    text = _clean(text) or EMPTY
    return text.replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def format_field(value: FieldValue) -> str | None:
    """The field value as line protocol; ``None`` for NaN / infinity (not representable)."""
    if isinstance(value, bool):
        return "1i" if value else "0i"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return None if not math.isfinite(value) else repr(value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def timestamp_ns(at: dt.datetime) -> int:
    """Nanoseconds since the epoch; a naive datetime is taken as UTC."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    return (at - _EPOCH) // dt.timedelta(microseconds=1) * 1000


def line(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, FieldValue],
    at: dt.datetime | int,
) -> str:
    """One point. Tags are sorted by key (the order InfluxDB stores them in).

    Raises ValueError when no field is representable (a point needs one).
    """
    ns = at if isinstance(at, int) else timestamp_ns(at)
    tag_text = "".join(f",{escape_tag(k)}={escape_tag(v)}" for k, v in sorted(tags.items()))
    parts = []
    for key, value in fields.items():
        text = format_field(value)
        if text is not None:
            parts.append(f"{escape_tag(key)}={text}")
    if not parts:
        raise ValueError(f"point of {measurement!r} has no representable field")
    return f"{escape_measurement(measurement)}{tag_text} {','.join(parts)} {ns}"


def line_timestamp(text: str) -> int | None:
    """The nanosecond timestamp at the end of a line, ``None`` if it carries none."""
    _, _, last = text.rstrip().rpartition(" ")
    if last.lstrip("-").isdigit():
        return int(last)
    return None
