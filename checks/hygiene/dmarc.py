"""The ``dmarc`` check: the domain (or its organizational domain) publishes one valid DMARC record.

States:

* ``unknown`` — the ``_dmarc`` TXT lookup (or the organizational-domain
  fallback lookup) failed, or checkdmarc crashed.
* ``problem`` (high) — no DMARC record at the domain nor at its organizational
  domain (public-suffix list), several records, or a record checkdmarc rejects.
* ``ok`` — a valid record. ``p=none`` is ``ok``: it is what the Gmail / Yahoo
  bulk-sender rules require at minimum, and it is a deliberate monitoring
  stage; the detail says "monitoring only" so a reader sees it is not
  enforced. A missing ``rua`` is noted in the detail, not a problem.

``fields`` carries the tags as published or defaulted: ``p``, ``sp``, ``np``,
``pct``, ``rua``, ``ruf``, ``adkim``, ``aspf``, ``fo``, and the RFC 9989
(DMARCbis) tags ``psd`` and ``t`` when present, plus ``inherited_from``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from checkdmarc.dmarc import DMARCError, parse_dmarc_record
from checkdmarc.utils import get_base_domain

from checks.hygiene.library import checkdmarc_nameservers
from checks.hygiene.lookup import Lookup
from checks.result import OK, PROBLEM, UNKNOWN, CheckResult

CHECK = "dmarc"
TAGS = ("p", "sp", "np", "pct", "rua", "ruf", "adkim", "aspf", "fo", "psd", "t")


def is_dmarc(record: str) -> bool:
    low = record.strip().lower().replace(" ", "")
    return low == "v=dmarc1" or low.startswith("v=dmarc1;")


async def check_dmarc(lookup: Lookup, domain: str) -> CheckResult:
    """The ``dmarc`` result for ``domain`` (see the module docstring for each state)."""
    answer = await lookup.txt(f"_dmarc.{domain}")
    if answer.failed:
        return CheckResult(domain, CHECK, "", UNKNOWN, error=answer.reason())
    records = [r.strip() for r in answer.records if is_dmarc(r)]
    owner = domain
    if not records:
        base = get_base_domain(domain)
        if base != domain:
            # RFC 7489 section 6.6.3: receivers fall back to the organizational domain
            parent = await lookup.txt(f"_dmarc.{base}")
            if parent.failed:
                return CheckResult(domain, CHECK, "", UNKNOWN, error=parent.reason())
            records = [r.strip() for r in parent.records if is_dmarc(r)]
            owner = base
    if not records:
        return CheckResult(
            domain,
            CHECK,
            "",
            PROBLEM,
            "no DMARC record: receivers requiring DMARC (Gmail, Yahoo) reject bulk mail",
            severity="high",
        )
    if len(records) > 1:
        return CheckResult(
            domain,
            CHECK,
            "",
            PROBLEM,
            f"{len(records)} DMARC records at _dmarc.{owner}: receivers ignore them all",
            severity="high",
            fields={"records": records},
        )
    return await asyncio.to_thread(_judge, lookup, domain, owner, records[0])


def _tag_value(value: Any) -> Any:
    """JSON-able tag value: report URIs become ``scheme:address`` strings."""
    if isinstance(value, list):
        out = []
        for v in value:
            if isinstance(v, dict) and "address" in v:
                out.append(f"{v.get('scheme', 'mailto')}:{v['address']}")
            else:
                out.append(v)
        return out
    return value


def _judge(lookup: Lookup, domain: str, owner: str, record: str) -> CheckResult:
    """Parse with checkdmarc (blocking; runs in a worker thread) and describe the policy."""
    fields: dict[str, Any] = {
        "record": record,
        "inherited_from": owner if owner != domain else None,
    }
    try:
        parsed = parse_dmarc_record(
            record,
            owner,
            nameservers=checkdmarc_nameservers(lookup.nameservers),
            timeout=lookup.timeout,
            retries=0,
        )
    except DMARCError as exc:
        return CheckResult(domain, CHECK, "", PROBLEM, str(exc), severity="high", fields=fields)
    except Exception as exc:  # a checkdmarc bug must not read as a verdict
        return CheckResult(domain, CHECK, "", UNKNOWN, error=f"checkdmarc failed: {exc!r}")
    tags = parsed.get("tags", {})
    for tag in TAGS:
        if tag in tags:
            fields[tag] = _tag_value(tags[tag].get("value"))
    fields["warnings"] = list(parsed.get("warnings", []))
    policy = fields.get("p")
    if owner != domain and tags.get("sp", {}).get("explicit"):
        policy = fields.get("sp")
    notes = [f"p={fields.get('p')}"]
    if owner != domain:
        notes.append(f"inherited from {owner}, effective {policy}")
    if policy == "none":
        notes.append("monitoring only: not enforced")
    if str(fields.get("pct", "100")) != "100":
        notes.append(f"applied to {fields['pct']}% of failing mail")
    notes.append(f"adkim={fields.get('adkim')} aspf={fields.get('aspf')}")
    if not fields.get("rua"):
        notes.append("no rua: no aggregate reports")
    fields["effective_policy"] = policy
    return CheckResult(domain, CHECK, "", OK, "; ".join(notes), fields=fields)
