"""Sections every part of repmon shares: resolver, store, inventory."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import BeforeValidator, Field, field_validator

from collectors.config import Section


class StoreConfig(Section):
    """``[store]``: ``sqlite:///FILE`` or ``postgresql://…``."""

    url: str = "sqlite:///repmon.db"

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if not (v.startswith("sqlite:") or v.startswith("postgresql")):
            raise ValueError("expected a sqlite:///FILE or postgresql://… URL")
        return v


def _network(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address or CIDR") from None


Cidr = Annotated[str, BeforeValidator(_network)]


class PoolConfig(Section):
    """``[[inventory.pools]]``: sending IPs that share a customer and sending domains."""

    name: str
    cidrs: list[Cidr] = Field(default_factory=list)
    customer: str = ""
    domains: list[str] = Field(default_factory=list)


class DomainConfig(Section):
    """``[[inventory.domains]]``: a sending domain's own settings."""

    name: str
    customer: str = ""
    dkim_selectors: list[str] = Field(default_factory=list)


class InventoryConfig(Section):
    """``[inventory]``: what repmon watches."""

    pools: list[PoolConfig] = Field(default_factory=list)
    domains: list[DomainConfig] = Field(default_factory=list)
    #: a CIDR larger than this many addresses is refused (sweep and ``repmon check``)
    max_cidr_addresses: int = Field(4096, ge=1, le=1 << 20)
