"""repmon's configuration: one TOML file, validated on load.

Where it comes from: ``--config FILE``, else ``$REPMON_CONFIG``, else the
built-in defaults (SQLite file, system resolver, built-in blocklist catalogue,
loopback sink and API). Every section is a typed model; an error names the
key and what was expected. docs/configuration.md documents every key.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pydantic import Field, ValidationError, create_model

from checks.errors import ConfigError
from collectors.config import ResolverConfig, Section, parse_duration
from collectors.dnsbl.config import DnsblConfig, ZoneConfig
from collectors.feedback.config import FeedbackConfig
from collectors.registry import COLLECTORS
from collectors.sink.config import SinkConfig
from monitor.config.cases import EnforceConfig, NotifyConfig, RulesConfig
from monitor.config.core import DomainConfig, InventoryConfig, PoolConfig, StoreConfig
from monitor.config.daemon import ApiConfig, RetentionConfig, ScheduleBase, ScheduleConfig
from monitor.config.influxdb import InfluxConfig
from monitor.config.paths import anchor_defaults, anchor_document

__all__ = [
    "ApiConfig",
    "Config",
    "ConfigError",
    "DnsblConfig",
    "DomainConfig",
    "EnforceConfig",
    "FeedbackConfig",
    "InfluxConfig",
    "CoreConfig",
    "InventoryConfig",
    "NotifyConfig",
    "PoolConfig",
    "ResolverConfig",
    "RetentionConfig",
    "RulesConfig",
    "ScheduleBase",
    "ScheduleConfig",
    "Section",
    "SinkConfig",
    "StoreConfig",
    "ZoneConfig",
    "load_config",
    "parse_config",
    "parse_duration",
]


class CoreConfig(Section):
    """The application's own sections; each collector's section is added from the registry."""

    resolver: ResolverConfig = Field(default_factory=ResolverConfig)
    inventory: InventoryConfig = Field(default_factory=InventoryConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    influxdb: InfluxConfig | None = None
    rules: RulesConfig = Field(default_factory=RulesConfig)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    enforce: EnforceConfig = Field(default_factory=EnforceConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)


_SECTIONS: dict[str, Any] = {
    c.section: (c.config_model, Field(default_factory=c.config_model))
    for c in COLLECTORS
    if c.section and c.config_model
}

if TYPE_CHECKING:

    class Config(CoreConfig):
        """Typed view of the sections the application itself reads by attribute; a new
        collector's section is reached through ``unit.config_of(config)``."""

        dnsbl: DnsblConfig = Field(default_factory=DnsblConfig)
        sink: SinkConfig = Field(default_factory=SinkConfig)
        feedback: FeedbackConfig = Field(default_factory=FeedbackConfig)

else:
    Config = create_model("Config", __base__=CoreConfig, **_SECTIONS)


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
            loc = tuple(err["loc"])
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            elif msg.startswith("Value error, "):
                msg = msg[len("Value error, ") :]
                # a check across keys says which key is at fault first: "tls_key: …"
                named = _KEY_FIRST.match(msg)
                if named and loc:
                    loc, msg = (*loc, named.group(1)), named.group(2)
            lines.append(f"{origin}: {_where(loc)}: {msg}")
        raise ConfigError("\n".join(lines)) from None


_KEY_FIRST = re.compile(r"([a-z_][a-z0-9_]*): (.+)", re.DOTALL)


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Load ``path``, else ``$REPMON_CONFIG``, else the built-in defaults."""
    if path is None:
        path = os.environ.get("REPMON_CONFIG") or None
    if path is None:
        return Config()
    p = Path(path)
    try:
        raw = p.read_bytes()
        data = tomllib.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such config file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: {_not_utf8(raw, exc)}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    except RecursionError:  # tomllib reads nested arrays and tables by recursion
        raise ConfigError(f"{p}: not valid TOML: arrays or tables nested too deeply") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror or exc}") from None
    base = p.resolve().parent
    anchor_document(data, base)
    return cast(Config, anchor_defaults(parse_config(data, str(p)), base))


_TABLE = re.compile(rb"^[ \t]*\[\[?[ \t]*([^\]\r\n]*?)[ \t]*\]", re.MULTILINE)
_KEY = re.compile(rb"[ \t]*([A-Za-z0-9_.\"' -]+?)[ \t]*=")


def _not_utf8(raw: bytes, exc: UnicodeDecodeError) -> str:
    """Where a config file stops being UTF-8: line, column and, when the line sets one, the
    key (with its table), e.g. ``not UTF-8: byte 0xff at line 7, column 9 (key sink.spool)``."""
    line_start = raw.rfind(b"\n", 0, exc.start) + 1
    line_end = raw.find(b"\n", exc.start)
    line = raw[line_start : line_end if line_end >= 0 else len(raw)]
    number = raw.count(b"\n", 0, exc.start) + 1
    where = f"line {number}, column {exc.start - line_start + 1}"
    key = _KEY.match(line)
    if key and exc.start - line_start > key.end():
        tables = _TABLE.findall(raw, 0, line_start)
        name = key.group(1).decode("ascii", "replace").strip()
        if tables:
            name = tables[-1].decode("utf-8", "replace").strip() + "." + name
        where += f" (key {name})"
    return f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at {where}"
