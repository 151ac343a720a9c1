"""Optional published policies: ``mta-sts``, ``tls-rpt``, ``bimi``.

None of these is required to deliver mail, so absence is ``ok`` with the
detail "not published" and ``fields.published = False`` (a case rule can
still look at it); it is never a problem and never opens a case.

States, for each:

* ``unknown`` — the TXT lookup failed (timeout, SERVFAIL, REFUSED); for BIMI
  also an indicator (logo) or mark certificate that could not be downloaded.
* ``problem`` low — several records at the name, or a record checkdmarc
  rejects (syntax); the policy is then ignored by receivers.
* ``ok`` — a valid record, or no record ("not published").

The TXT lookups are ours (so failures are classified); checkdmarc only parses
the record text. MTA-STS: only the ``_mta-sts`` TXT record is checked — the
policy file at ``https://mta-sts.DOMAIN/.well-known/mta-sts.txt`` is not
fetched (that needs a resolver-aware HTTPS client; see docs/hygiene.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from checkdmarc.bimi import BIMIError, parse_bimi_record
from checkdmarc.mta_sts import MTASTSError, parse_mta_sts_record
from checkdmarc.smtp_tls_reporting import (
    SMTPTLSReportingError,
    parse_smtp_tls_reporting_record,
)

from checks.hygiene.lookup import Lookup
from checks.result import OK, PROBLEM, UNKNOWN, CheckResult


@dataclass(frozen=True)
class Policy:
    check: str
    prefix: str  # the name the TXT record lives at, before the domain
    version: str  # the v= tag value that marks the record
    errors: type[Exception]


MTA_STS = Policy("mta-sts", "_mta-sts", "STSv1", MTASTSError)
TLS_RPT = Policy("tls-rpt", "_smtp._tls", "TLSRPTv1", SMTPTLSReportingError)
BIMI = Policy("bimi", "default._bimi", "BIMI1", BIMIError)


def _is_version(record: str, version: str) -> bool:
    head = record.strip().split(";", 1)[0].replace(" ", "")
    return head.lower() == f"v={version}".lower()


def _plain(tags: dict[str, Any]) -> dict[str, Any]:
    """Tag values without checkdmarc's ``{"value": ...}`` wrapper."""
    return {k: v.get("value") if isinstance(v, dict) else v for k, v in tags.items()}


def _parser(policy: Policy, domain: str, timeout: float) -> Callable[[str], dict[str, Any]]:
    if policy is MTA_STS:
        return lambda r: dict(parse_mta_sts_record(r))
    if policy is TLS_RPT:
        return lambda r: dict(parse_smtp_tls_reporting_record(r))
    # parse_bimi_record downloads the indicator and the mark certificate (HTTPS)
    return lambda r: parse_bimi_record(r, domain=domain, http_timeout=timeout)


async def check_policy(lookup: Lookup, domain: str, policy: Policy) -> CheckResult:
    """The ``policy.check`` result for ``domain`` (see the module docstring)."""
    name = f"{policy.prefix}.{domain}"
    answer = await lookup.txt(name)
    if answer.failed:
        return CheckResult(domain, policy.check, "", UNKNOWN, error=answer.reason())
    records = [r.strip() for r in answer.records if _is_version(r, policy.version)]
    if not records:
        return CheckResult(
            domain, policy.check, "", OK, "not published", fields={"published": False}
        )
    fields: dict[str, Any] = {"published": True, "name": name}
    if len(records) > 1:
        fields["records"] = records
        text = f"{len(records)} records at {name}: receivers ignore the policy"
        return CheckResult(domain, policy.check, "", PROBLEM, text, severity="low", fields=fields)
    fields["record"] = records[0]
    parse = _parser(policy, domain, lookup.timeout)
    try:
        parsed = await asyncio.to_thread(parse, records[0])
    except policy.errors as exc:
        return CheckResult(
            domain, policy.check, "", PROBLEM, str(exc), severity="low", fields=fields
        )
    except Exception as exc:  # a checkdmarc bug must not read as a verdict
        return CheckResult(domain, policy.check, "", UNKNOWN, error=f"checkdmarc failed: {exc!r}")
    fields["tags"] = _plain(parsed.get("tags", {}))
    fields["warnings"] = list(parsed.get("warnings", []))
    for part in ("image", "certificate"):
        err = (parsed.get(part) or {}).get("error")
        if err:
            return CheckResult(domain, policy.check, "", UNKNOWN, error=err, fields=fields)
    return CheckResult(domain, policy.check, "", OK, records[0], fields=fields)
