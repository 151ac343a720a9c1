"""repmon's configuration: one TOML file, validated on load.

Where it comes from: ``--config FILE``, else ``$REPMON_CONFIG``, else the
built-in defaults (SQLite file, system resolver, built-in blocklist catalogue,
loopback sink and API). Every section is a typed model; an error names the
key and what was expected. docs/configuration.md documents every key.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from pydantic import Field, ValidationError

from monitor.config.base import Section, parse_duration
from monitor.config.cases import EnforceConfig, NotifyConfig, RulesConfig
from monitor.config.core import (
    DomainConfig,
    InventoryConfig,
    PoolConfig,
    ResolverConfig,
    StoreConfig,
)
from monitor.config.daemon import ApiConfig, RetentionConfig, ScheduleConfig
from monitor.config.dnsbl import DnsblConfig, ZoneConfig
from monitor.config.influxdb import InfluxConfig
from monitor.config.sink import FeedbackConfig, SinkConfig

__all__ = [
    "ApiConfig",
    "Config",
    "ConfigError",
    "DnsblConfig",
    "DomainConfig",
    "EnforceConfig",
    "FeedbackConfig",
    "InfluxConfig",
    "InventoryConfig",
    "NotifyConfig",
    "PoolConfig",
    "ResolverConfig",
    "RetentionConfig",
    "RulesConfig",
    "ScheduleConfig",
    "Section",
    "SinkConfig",
    "StoreConfig",
    "ZoneConfig",
    "load_config",
    "parse_config",
    "parse_duration",
]


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file and key."""


class Config(Section):
    resolver: ResolverConfig = Field(default_factory=ResolverConfig)
    dnsbl: DnsblConfig = Field(default_factory=DnsblConfig)
    inventory: InventoryConfig = Field(default_factory=InventoryConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    sink: SinkConfig = Field(default_factory=SinkConfig)
    feedback: FeedbackConfig = Field(default_factory=FeedbackConfig)
    influxdb: InfluxConfig | None = None
    rules: RulesConfig = Field(default_factory=RulesConfig)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    enforce: EnforceConfig = Field(default_factory=EnforceConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def parse_config(data: dict[str, object], origin: str = "config") -> Config:
    """Validate a parsed TOML document; raise ConfigError naming each bad key."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            elif msg.startswith("Value error, "):
                msg = msg[len("Value error, ") :]
            lines.append(f"{origin}: {_where(tuple(err['loc']))}: {msg}")
        raise ConfigError("\n".join(lines)) from None


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Load ``path``, else ``$REPMON_CONFIG``, else the built-in defaults."""
    if path is None:
        path = os.environ.get("REPMON_CONFIG") or None
    if path is None:
        return Config()
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror}") from None
    return parse_config(data, str(p))
