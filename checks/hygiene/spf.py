"""The ``spf`` check: the domain publishes one valid SPF record that stays within the limits.

How it is decided (RFC 7208):

1. Our own lookup of the domain's TXT: failure → ``unknown``; no ``v=spf1``
   record → ``problem`` (high); several → ``problem`` (high, permerror).
2. A walk of every name the record makes a receiver look up (include and
   redirect targets' TXT, ``a``/``mx``/``exists`` targets, MX hosts). Any
   timeout / SERVFAIL / REFUSED on the way → ``unknown`` with that name: this is
   what keeps a REFUSED include from being reported as "no SPF record".
3. Only then checkdmarc's ``parse_spf_record`` validates the syntax and counts
   DNS lookups and void lookups (it repeats the queries, uncached).

Verdict: more than 10 DNS lookups, more than 2 void lookups, a missing include
target, a syntax error, an include/redirect loop → ``problem`` (high:
receivers return permerror). ``+all`` → ``problem`` (critical: anyone may send).
``?all`` or no ``all`` (and no redirect) → ``problem`` (medium: non-matching
hosts get neutral). ``~all`` / ``-all`` → ``ok``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from checkdmarc.spf import SPFError, parse_spf_record

from checks.hygiene.library import checkdmarc_nameservers
from checks.hygiene.lookup import Answer, Lookup
from checks.result import OK, PROBLEM, UNKNOWN, CheckResult

CHECK = "spf"
MAX_LOOKUPS = 10
MAX_VOID = 2
#: includes deeper than this are not walked (a loop; checkdmarc reports it)
MAX_DEPTH = 10


def is_spf(record: str) -> bool:
    """True for a TXT string that is an SPF record (``v=spf1`` then a space or the end)."""
    low = record.strip().lower()
    return low == "v=spf1" or low.startswith("v=spf1 ")


def spf_records(answer: Answer) -> list[str]:
    return [r.strip() for r in answer.records if is_spf(r)]


@dataclass
class Walk:
    """What walking the include tree found: the first DNS failure, missing targets."""

    failure: str | None = None
    missing: list[str] = field(default_factory=list)
    visited: set[str] = field(default_factory=set)


def split_term(term: str) -> tuple[str, str, str]:
    """``-include:x.test`` → ``("-", "include", "x.test")``; CIDR suffixes are dropped."""
    qualifier = term[0] if term[:1] in "+-~?" and term[:1] else ""
    rest = term[len(qualifier) :]
    for sep in ("=", ":", "/"):
        if sep in rest:
            name, _, value = rest.partition(sep)
            value = value if sep != "/" else ""
            return qualifier, name.lower(), value.split("/")[0]
    return qualifier, rest.lower(), ""


async def walk(lookup: Lookup, domain: str, record: str, state: Walk, depth: int = 0) -> None:
    """Query every name ``record`` depends on; note the first failure and missing records."""
    if depth > MAX_DEPTH or domain in state.visited:
        return
    state.visited.add(domain)
    terms = [split_term(t) for t in record.split()[1:]]
    has_all = any(name == "all" for _, name, _ in terms)
    for _, name, value in terms:
        if state.failure:
            return
        target = value or domain
        if "%" in target:
            continue  # a macro depends on the connecting host; nothing to check ahead
        if name == "include" or (name == "redirect" and not has_all):
            txt = await lookup.txt(target)
            if txt.failed:
                state.failure = f"{name} target {txt.reason()}"
            elif not spf_records(txt):
                state.missing.append(target)
            else:
                await walk(lookup, target, spf_records(txt)[0], state, depth + 1)
        elif name in ("a", "exists"):
            answers = await lookup.addresses(target)
            bad = next((a for a in answers if a.failed), None)
            if bad:
                state.failure = f"{name}:{target}: {bad.reason()}"
        elif name == "mx":
            mx = await lookup.query(target, "MX")
            if mx.failed:
                state.failure = f"mx:{target}: {mx.reason()}"
                continue
            hosts = await asyncio.gather(*(lookup.addresses(h) for h in mx.records[:10]))
            bad = next((a for pair in hosts for a in pair if a.failed), None)
            if bad:
                state.failure = f"mx:{target}: {bad.reason()}"


async def check_spf(lookup: Lookup, domain: str) -> CheckResult:
    """The ``spf`` result for ``domain`` (see the module docstring for each state)."""
    txt = await lookup.txt(domain)
    if txt.failed:
        return CheckResult(domain, CHECK, "", UNKNOWN, error=txt.reason())
    records = spf_records(txt)
    if not records:
        why = txt.absent or "no v=spf1 among the TXT records"
        return CheckResult(
            domain,
            CHECK,
            "",
            PROBLEM,
            f"no SPF record ({why})",
            severity="high",
            fields={"record": None},
        )
    if len(records) > 1:
        return CheckResult(
            domain,
            CHECK,
            "",
            PROBLEM,
            f"{len(records)} SPF records: receivers return permerror",
            severity="high",
            fields={"records": records},
        )
    record = records[0]
    state = Walk()
    await walk(lookup, domain, record, state)
    if state.failure:
        return CheckResult(
            domain, CHECK, "", UNKNOWN, error=state.failure, fields={"record": record}
        )
    return await asyncio.to_thread(_judge, lookup, domain, record, state)


def _judge(lookup: Lookup, domain: str, record: str, state: Walk) -> CheckResult:
    """Validate with checkdmarc (blocking; runs in a worker thread) and rate the findings."""
    fields: dict[str, Any] = {"record": record}
    try:
        parsed = parse_spf_record(
            record,
            domain,
            nameservers=checkdmarc_nameservers(lookup.nameservers),
            timeout=lookup.timeout,
            retries=0,
            ignore_too_many_lookups=True,
        )
    except SPFError as exc:
        if state.missing:
            exc_text = f"no SPF record at {', '.join(state.missing)} (permerror)"
        else:
            exc_text = str(exc)
        return CheckResult(domain, CHECK, "", PROBLEM, exc_text, severity="high", fields=fields)
    except Exception as exc:  # a checkdmarc bug must not read as a verdict
        return CheckResult(domain, CHECK, "", UNKNOWN, error=f"checkdmarc failed: {exc!r}")
    lookups = int(parsed.get("dns_lookups", 0))
    void = int(parsed.get("void_dns_lookups", 0))
    all_action = parsed.get("parsed", {}).get("all")
    redirect = parsed.get("parsed", {}).get("redirect")
    fields.update(
        dns_lookups=lookups,
        void_lookups=void,
        all=all_action,
        warnings=list(parsed.get("warnings", [])),
    )
    findings: list[tuple[str, str]] = []
    if state.missing:
        findings.append(("high", f"no SPF record at {', '.join(state.missing)} (permerror)"))
    if lookups > MAX_LOOKUPS:
        findings.append(("high", f"{lookups} DNS lookups (limit {MAX_LOOKUPS}): permerror"))
    if void > MAX_VOID:
        findings.append(("high", f"{void} void lookups (limit {MAX_VOID}): permerror"))
    if all_action == "pass":
        findings.append(("critical", "+all: every host on the internet may send"))
    elif all_action == "neutral":
        findings.append(("medium", "?all: hosts not listed get neutral"))
    elif all_action is None and not redirect:
        findings.append(("medium", "no all mechanism: hosts not listed get neutral"))
    if findings:
        order = ("critical", "high", "medium", "low")
        severity = min((s for s, _ in findings), key=order.index)
        detail = "; ".join(text for _, text in findings)
        return CheckResult(domain, CHECK, "", PROBLEM, detail, severity=severity, fields=fields)
    detail = f"{record} ({lookups} DNS lookups, ends {all_action or 'via redirect'})"
    return CheckResult(domain, CHECK, "", OK, detail, fields=fields)
