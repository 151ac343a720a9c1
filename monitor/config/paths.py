"""Relative paths in a config file mean "beside the config file", whoever starts repmon from
wherever: a store, spool or buffer found through the current directory would silently be
another one (an empty store) when started from elsewhere.

Applied twice: to the parsed TOML before validation (so that a validator checking a file, a
TLS certificate say, sees the real path) and to the validated config (for the defaults,
``repmon.db`` and ``var/spool``, which are relative too). Without a config file nothing
changes: paths stay relative to the current directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: (section, key) holding a path; ``store.url`` holds one inside a ``sqlite:///`` URL
PATH_KEYS = (
    ("store", "url"),
    ("sink", "spool"),
    ("sink", "tls_cert"),
    ("sink", "tls_key"),
    ("influxdb", "buffer_dir"),
    ("dnsbl", "mirror_dir"),
)
#: (section, array of tables, key) holding a path in each table of the array
ARRAY_PATH_KEYS = (
    ("dnsbl", "zones", "mirror"),
    ("inventory", "pools", "cidrs_file"),
)
_SQLITE = "sqlite:///"


def anchor(value: str, base: Path, key: str) -> str:
    """``value`` with a relative path made absolute under ``base``."""
    if key == "url":
        if not value.startswith(_SQLITE) or ":memory:" in value:
            return value
        path = value[len(_SQLITE) :]
        return _SQLITE + anchor(path, base, "path") if path else value
    if not value or Path(value).is_absolute():
        return value
    return str(base / value)


def anchor_document(data: dict[str, Any], base: Path) -> None:
    """In place: the relative paths given in a parsed TOML document."""
    for section, key in PATH_KEYS:
        part = data.get(section)
        if isinstance(part, dict) and isinstance(part.get(key), str):
            part[key] = anchor(part[key], base, key)
    for section, array, key in ARRAY_PATH_KEYS:
        part = data.get(section)
        tables = part.get(array) if isinstance(part, dict) else None
        for table in tables if isinstance(tables, list) else ():
            if isinstance(table, dict) and isinstance(table.get(key), str):
                table[key] = anchor(table[key], base, key)


def anchor_defaults(config: Any, base: Path) -> Any:
    """A copy of a validated config whose remaining relative paths sit under ``base``."""
    updates: dict[str, Any] = {}
    for section, key in PATH_KEYS:
        part = getattr(config, section, None)
        if part is None:
            continue
        value = getattr(part, key)
        fixed = anchor(value, base, key)
        if fixed != value:
            current = updates.get(section, part)
            updates[section] = current.model_copy(update={key: fixed})
    return config.model_copy(update=updates) if updates else config
