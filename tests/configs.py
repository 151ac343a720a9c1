"""TOML snippets the tests put in their config files."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Mapping):
        return (
            "{ " + ", ".join(f"{json.dumps(str(k))} = {toml_value(x)}" for k, x in v.items()) + " }"
        )
    return json.dumps(v)


def table(name: str, values: Mapping[str, Any], array: bool = False) -> str:
    head = f"[[{name}]]" if array else f"[{name}]"
    return "\n".join([head, *(f"{k} = {toml_value(v)}" for k, v in values.items())]) + "\n\n"


def code(meaning: str, severity: str) -> dict[str, str]:
    return {"meaning": meaning, "severity": severity}


def blocklists(
    nameservers: Sequence[str], zones: Sequence[Mapping[str, Any]], timeout: float = 0.5
) -> str:
    """``[resolver]`` aimed at the test servers and ``[dnsbl]`` with only these zones."""
    out = table("resolver", {"nameservers": list(nameservers), "timeout": timeout, "retries": 1})
    out += table("dnsbl", {"defaults": False})
    for z in zones:
        out += table("dnsbl.zones", z, array=True)
    return out


def pool(name: str, cidrs: Sequence[str], customer: str, domains: Sequence[str] = ()) -> str:
    values = {"name": name, "cidrs": list(cidrs), "customer": customer, "domains": list(domains)}
    return table("inventory.pools", values, array=True)
