"""Sections every part of repmon shares: resolver, store, inventory."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from collectors.config import Section, mask_url


class StoreConfig(Section):
    """``[store]``: ``sqlite:///FILE`` or ``postgresql://…``."""

    url: str = "sqlite:///repmon.db"

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if not (v.startswith("sqlite:") or v.startswith("postgresql")):
            raise ValueError(
                f"expected a sqlite:///FILE or postgresql://… URL, got {mask_url(v)!r}"
            )
        return v


def _network(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address or CIDR") from None


Cidr = Annotated[str, BeforeValidator(_network)]


#: the checks a pool's addresses may run: blocklists, and the per-IP hygiene (PTR, SPF auth.)
PoolCheck = Literal["dnsbl", "hygiene"]
POOL_CHECKS: tuple[PoolCheck, ...] = ("dnsbl", "hygiene")
#: the keys of a cloud provider's prefix file that hold a network (AWS; Google Cloud)
_PREFIX_KEYS = ("ip_prefix", "ipv6_prefix", "ipv4Prefix", "ipv6Prefix")
#: problems quoted from one file before "and N more"
_SHOWN_PROBLEMS = 5


class PoolConfig(Section):
    """``[[inventory.pools]]``: sending IPs that share a customer and sending domains.

    ``cidrs_file`` adds the networks of a file to ``cidrs`` when the config is loaded: one
    CIDR a line (``#``/``;`` comments), or a cloud provider's JSON prefix list (AWS
    ``ip-ranges.json``: ``{"prefixes": [{"ip_prefix": …, "region": …, "service": …}],
    "ipv6_prefixes": [{"ipv6_prefix": …}]}``; Google's ``ipv4Prefix``/``ipv6Prefix`` too),
    of which ``cidrs_filter`` keeps the prefixes whose fields match. ``checks`` restricts what
    the pool's addresses run (its domains are checked as always).
    """

    name: str
    cidrs: list[Cidr] = Field(default_factory=list)
    cidrs_file: str = ""
    #: JSON field -> the value (or any of the values) a prefix must have to be kept
    cidrs_filter: dict[str, str | list[str]] = Field(default_factory=dict)
    customer: str = ""
    domains: list[str] = Field(default_factory=list)
    checks: list[PoolCheck] = Field(default_factory=lambda: list(POOL_CHECKS))

    @model_validator(mode="before")
    @classmethod
    def _read_cidrs_file(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not data.get("cidrs_file"):
            if isinstance(data, dict) and data.get("cidrs_filter"):
                raise ValueError("cidrs_filter needs a JSON cidrs_file")
            return data
        path = data["cidrs_file"]
        if not isinstance(path, str):
            return data  # the field's own validation says what is wrong
        nets = read_cidrs_file(Path(path), data.get("cidrs_filter") or {})
        inline = data.get("cidrs") or []
        if not isinstance(inline, list):
            return data
        return {**data, "cidrs": [*inline, *nets]}


def read_cidrs_file(path: Path, filters: Any = None) -> list[str]:
    """The networks of a pool's ``cidrs_file``, in file order, each once.

    A JSON file (it starts with ``{``) is a cloud provider's prefix list; ``filters`` maps a
    field to the value (or list of values) a prefix must have. Anything else is one CIDR or
    address a line, ``#`` or ``;`` starting a comment. ValueError naming the file, the line
    and what is wrong; a file, or a filter, that leaves no network is an error too.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"cidrs_file {str(path)!r}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ValueError(f"cidrs_file {str(path)!r}: cannot read: {reason}") from None
    if text.lstrip().startswith("{"):
        nets = _json_prefixes(path, text, filters or {})
    else:
        if filters:
            raise ValueError(f"cidrs_file {str(path)!r}: cidrs_filter applies to a JSON file")
        nets = _text_prefixes(path, text)
    if not nets:
        what = "no prefix matches cidrs_filter" if filters else "no network in it"
        raise ValueError(f"cidrs_file {str(path)!r}: {what}")
    return list(dict.fromkeys(nets))


def _strict_network(text: str) -> str:
    """``text`` as a network; ValueError saying why not (host bits set, not an address)."""
    try:
        return str(ipaddress.ip_network(text, strict=True))
    except ValueError as exc:
        if "host bits" in str(exc):
            raise ValueError(f"{text!r} has host bits set") from None
        raise ValueError(f"{text!r} is not an IP address or CIDR") from None


def _raise_problems(path: Path, problems: list[str]) -> None:
    if problems:
        more = len(problems) - _SHOWN_PROBLEMS
        shown = "; ".join(problems[:_SHOWN_PROBLEMS]) + (f"; and {more} more" if more > 0 else "")
        raise ValueError(f"cidrs_file {str(path)!r}: {shown}")


def _text_prefixes(path: Path, text: str) -> list[str]:
    nets: list[str] = []
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        entry = line.split("#", 1)[0].split(";", 1)[0].strip()
        if not entry:
            continue
        try:
            nets.append(_strict_network(entry))
        except ValueError as exc:
            problems.append(f"line {number}: {exc}")
    _raise_problems(path, problems)
    return nets


def _json_prefixes(path: Path, text: str, filters: Any) -> list[str]:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"cidrs_file {str(path)!r}: not valid JSON: {exc}") from None
    entries: list[Any] = []
    for array in ("prefixes", "ipv6_prefixes"):
        value = doc.get(array, []) if isinstance(doc, dict) else None
        if not isinstance(value, list):
            raise ValueError(f"cidrs_file {str(path)!r}: {array!r} is not a list")
        entries += value
    if not entries:
        raise ValueError(
            f"cidrs_file {str(path)!r}: expected a prefix list "
            '({"prefixes": [{"ip_prefix": …}], "ipv6_prefixes": [{"ipv6_prefix": …}]})'
        )
    wanted = {k: {v} if isinstance(v, str) else set(v) for k, v in dict(filters).items()}
    fields = {k for e in entries if isinstance(e, dict) for k in e} - set(_PREFIX_KEYS)
    unknown = sorted(set(wanted) - fields)
    if unknown:
        raise ValueError(
            f"cidrs_file {str(path)!r}: cidrs_filter key(s) {', '.join(unknown)} are in none "
            f"of its prefixes (their keys: {', '.join(sorted(fields)) or 'none'})"
        )
    nets: list[str] = []
    problems: list[str] = []
    for i, entry in enumerate(entries):
        prefix = (
            next((entry[k] for k in _PREFIX_KEYS if k in entry), None)
            if isinstance(entry, dict)
            else None
        )
        if not isinstance(prefix, str):
            problems.append(f"prefix {i}: no ip_prefix / ipv6_prefix")
            continue
        if any(str(entry.get(k)) not in vs for k, vs in wanted.items()):
            continue
        try:
            nets.append(_strict_network(prefix))
        except ValueError as exc:
            problems.append(f"prefix {i}: {exc}")
    _raise_problems(path, problems)
    return nets


class DomainConfig(Section):
    """``[[inventory.domains]]``: a sending domain's own settings."""

    name: str
    customer: str = ""
    dkim_selectors: list[str] = Field(default_factory=list)


class InventoryConfig(Section):
    """``[inventory]``: what repmon watches."""

    pools: list[PoolConfig] = Field(default_factory=list)
    domains: list[DomainConfig] = Field(default_factory=list)
    #: a CIDR larger than this many addresses is refused where it would be checked address
    #: by address (DNS blocklist zones, per-IP hygiene, ``repmon check``); a pool whose
    #: blocklist zones are all mirrored is matched by ranges and may be of any size
    max_cidr_addresses: int = Field(4096, ge=1, le=1 << 20)
