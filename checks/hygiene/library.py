"""The boundary with checkdmarc: nameservers with ports, no stale caches, its errors kept inside.

checkdmarc is synchronous and keeps module-level caches:

* ``checkdmarc.utils.DNS_CACHE`` — every answer of ``query_dns`` (and the MX
  record sets) for ``DNS_CACHE_MAX_AGE_SECONDS`` (30 minutes by default). A
  scheduled sweep would otherwise be served the zone as it was half an hour
  ago. We replace it, once, with a dict that never stores anything, so every
  checkdmarc lookup in this process goes to the nameservers. (Other users of
  checkdmarc in the same process lose the cache too; for a monitor that is
  the right trade.)
* ``checkdmarc.dnssec.DNSSEC_CACHE`` / ``DNSKEY_CACHE`` / ``TLSA_CACHE`` —
  used only when no ``cache`` argument is given, so :func:`call_dnssec`
  passes a fresh dict per call.
* ``checkdmarc.smtp`` TLS caches — we never call the SMTP probes.

Nameservers: checkdmarc accepts ``dns.nameserver.Nameserver`` objects as
well as IP strings, so ``Do53Nameserver(host, port)`` carries a non-53 port
without patching anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import checkdmarc.utils
import dns.nameserver
from expiringdict import ExpiringDict

from checks.resolver import Nameserver


class _NeverStored(ExpiringDict):
    """An ExpiringDict that forgets every write: reads always miss."""

    def __setitem__(self, key: Any, value: Any, set_time: Any = None) -> None:
        return None


def _disable_dns_cache() -> None:
    # query_dns() reads the module global at call time, so replacing it is enough.
    if not isinstance(checkdmarc.utils.DNS_CACHE, _NeverStored):
        checkdmarc.utils.DNS_CACHE = _NeverStored(max_len=1, max_age_seconds=1)


_disable_dns_cache()


def checkdmarc_nameservers(
    nameservers: Sequence[Nameserver],
) -> list[dns.nameserver.Nameserver] | None:
    """checkdmarc's ``nameservers=`` argument: ``None`` means the system resolver."""
    if not nameservers:
        return None
    return [dns.nameserver.Do53Nameserver(ns.host, ns.port) for ns in nameservers]


def fresh_cache() -> ExpiringDict:
    """A per-call cache for the checkdmarc functions that take one (DNSSEC)."""
    return ExpiringDict(max_len=64, max_age_seconds=60)
