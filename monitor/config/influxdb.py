"""``[influxdb]``: the time-series writer. Absent = nothing is written. See docs/timeseries.md."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from collectors.config import Section, mask_url


class InfluxConfig(Section):
    #: ``http(s)://host:port``; a password in it is never shown (``mask_url``)
    url: str
    token: SecretStr = SecretStr("")
    org: str = ""
    bucket: str = "repmon"
    batch_size: int = Field(1000, ge=1)
    flush_interval: float = Field(5.0, gt=0)
    buffer_dir: str = "var/influx-buffer"
    buffer_max_bytes: int = Field(256 * 1024 * 1024, ge=1024)
    #: receiving domains kept as tags; every other domain is written as "other" (empty = the
    #: built-in list of major mailbox providers)
    receiving_domains: list[str] = Field(default_factory=list)

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")) or len(v) <= len("https://"):
            raise ValueError(f"expected an http:// or https:// URL, got {mask_url(v)!r}")
        return v
