"""The ``ptr`` check: a sending IP has reverse DNS that confirms forward and names a mail host.

Gmail, Yahoo and Microsoft reject or junk mail from IPs without a PTR whose
name resolves back to the same IP (forward-confirmed reverse DNS, FCrDNS).

States:

* ``unknown`` — the PTR lookup failed, or no PTR name confirmed and at least
  one of their A/AAAA lookups failed (it might have confirmed).
* ``problem`` high — no PTR (NXDOMAIN / NODATA), or no PTR name resolves back
  to the IP.
* ``problem`` medium — forward-confirmed, but the name looks generic /
  dynamic (see :func:`generic_reasons`): receivers treat such hosts as
  end-user connections.
* ``ok`` — a forward-confirmed, non-generic name.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re

from checkdmarc.utils import get_base_domain

from checks.hygiene.lookup import Lookup, addresses_of
from checks.result import OK, PROBLEM, UNKNOWN, CheckResult

CHECK = "ptr"

#: whole tokens of a host name that mark an end-user / pool address
# fmt: off
GENERIC_WORDS = frozenset((
    "dynamic", "dyn", "dhcp", "pool", "dsl", "adsl", "vdsl", "xdsl", "cable", "ppp", "pppoe",
    "dialup", "dial", "dialin", "client", "clients", "customer", "cust", "broadband",
    "residential", "resnet", "user", "users", "unassigned", "nat", "cpe", "wifi", "mobile",
))
# fmt: on
#: tokens like host-12, ip10, h123, static4 (a prefix word followed by digits)
GENERIC_PREFIX = re.compile(r"^(host|ip|ipv4|ipv6|h|static|unused|node)\d+$")


def _ip_spellings(ip: str) -> list[str]:
    """Ways an address gets written into generic PTR names (normalized to no separators)."""
    addr = ipaddress.ip_address(ip)
    if addr.version == 4:
        octets = [str(b) for b in addr.packed]
        padded = [f"{b:03d}" for b in addr.packed]
        return [
            "".join(octets),
            "".join(reversed(octets)),
            "".join(padded),
            "".join(reversed(padded)),
            addr.packed.hex(),
        ]
    full = addr.exploded.replace(":", "")
    # The interface half is what differs per host; a name carrying it is per-address.
    return [full, full[16:].lstrip("0") or "0"]


def generic_reasons(name: str, ip: str) -> list[str]:
    """Why ``name`` looks generic for ``ip``; empty when it does not.

    Heuristic: the address embedded in the name (its octets in either order,
    zero-padded or not, with any of ``-._`` between or none, or as hex; for
    IPv6 the whole address or its interface half in hex), or a host-part token
    from :data:`GENERIC_WORDS`, or a token like ``host-12`` / ``ip10``. Only the
    labels left of the organizational domain are read, so a provider named
    ``pool.example`` is not flagged for its own name.
    """
    name = name.lower().rstrip(".")
    base = get_base_domain(name)
    host = name[: -len(base)].rstrip(".") if name.endswith(base) and name != base else name
    reasons = []
    squashed = re.sub(r"[-._]", "", host)
    for spelling in _ip_spellings(ip):
        if len(spelling) >= 4 and spelling in squashed:
            reasons.append("contains the IP address")
            break
    tokens = [t for t in re.split(r"[-._]", host) if t]
    words = sorted({t for t in tokens if re.sub(r"\d+$", "", t) in GENERIC_WORDS})
    if words:
        reasons.append(f"generic word(s): {', '.join(words)}")
    joined = re.sub(r"(?<=[a-z])[-_](?=\d)", "", host)
    if any(GENERIC_PREFIX.match(t) for t in re.split(r"[.\-_]", joined)):
        reasons.append("host-number pattern")
    return reasons


async def check_ptr(lookup: Lookup, ip: str) -> CheckResult:
    """The ``ptr`` result for ``ip`` (see the module docstring for each state)."""
    ptr = await lookup.ptr(ip)
    if ptr.failed:
        return CheckResult(ip, CHECK, "", UNKNOWN, error=ptr.reason())
    if not ptr.records:
        return CheckResult(
            ip,
            CHECK,
            "",
            PROBLEM,
            f"no PTR record ({ptr.absent})",
            severity="high",
            fields={"ptr": [], "forward_confirmed": False},
        )
    names = sorted(ptr.records)
    forward = await asyncio.gather(*(lookup.addresses(n) for n in names))
    wanted = ipaddress.ip_address(ip)
    confirmed = [
        n
        for n, pair in zip(names, forward, strict=True)
        if any(ipaddress.ip_address(a) == wanted for a in addresses_of(pair))
    ]
    fields: dict[str, object] = {"ptr": names, "forward_confirmed": bool(confirmed)}
    if not confirmed:
        failed = next((a for pair in forward for a in pair if a.failed), None)
        if failed:
            return CheckResult(ip, CHECK, "", UNKNOWN, error=failed.reason(), fields=fields)
        text = f"PTR {', '.join(names)} does not resolve back to {ip} (no FCrDNS)"
        return CheckResult(ip, CHECK, "", PROBLEM, text, severity="high", fields=fields)
    name = confirmed[0]
    reasons = generic_reasons(name, ip)
    fields["generic"] = reasons
    if reasons:
        text = f"{name} forward-confirms but looks generic: {'; '.join(reasons)}"
        return CheckResult(ip, CHECK, "", PROBLEM, text, severity="medium", fields=fields)
    return CheckResult(ip, CHECK, "", OK, f"{name} (forward-confirmed)", fields=fields)
