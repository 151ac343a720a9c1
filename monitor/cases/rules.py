"""Threshold rules: read the store, say what holds (a Finding), what is clear, and nothing else.

Each rule has a ``name`` (the ``rule`` of its cases), ``findings(ctx)`` for
every subject whose condition holds now, and ``clear(ctx, keys)`` for the open
cases it did not find again: a :class:`Clear` when the data was checked and the
condition does not hold; no entry when it cannot tell (``unknown``, too little
volume, a check that was not answered) so the case stays as it is.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import monitor.cases.measure as measure
from checks.result import OK
from monitor.cases.abuse_rule import AbuseRule
from monitor.cases.model import CaseKey, Clear, Finding, severity_for, with_untrusted
from monitor.config.cases import BurstRuleConfig, DmarcRuleConfig, RateRuleConfig, RulesConfig
from monitor.store import Tx
from monitor.store.checks import CheckState, problems_of_check, state_of

#: target -> (pool, customer) from the inventory, ``None`` when not ours
OwnerLookup = Callable[[str], "tuple[str, str] | None"]


@dataclass
class Context:
    """One evaluation: its transaction, its clock, its config; volumes computed once."""

    conn: Tx
    now: dt.datetime
    config: RulesConfig
    owner: OwnerLookup = lambda _target: None
    _volumes: dict[float, dict[str, measure.Volume]] = field(default_factory=dict)

    def window(self, seconds: float) -> tuple[dt.datetime, dt.datetime]:
        return self.now - dt.timedelta(seconds=seconds), self.now

    def volumes(self, seconds: float) -> dict[str, measure.Volume]:
        if seconds not in self._volumes:
            self._volumes[seconds] = measure.volume_by_ip(self.conn, *self.window(seconds))
        return self._volumes[seconds]


class Rule(Protocol):
    name: str
    #: the ``rule`` values of the cases this rule opens (and so may clear)
    names: tuple[str, ...]

    def findings(self, ctx: Context) -> list[Finding]: ...

    def clear(self, ctx: Context, keys: Iterable[CaseKey]) -> dict[CaseKey, Clear]: ...


def _kind_of(target: str) -> str:
    try:
        ipaddress.ip_address(target)
    except ValueError:
        # a CIDR block: an SNDS blocked range holding none of the inventory's IPs
        return "range" if "/" in target else "domain"
    return "ip"


def digest(*parts: object) -> str:
    """A short fingerprint of the evidence that matters: a change appends to the timeline."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:g}h" if seconds >= 3600 else f"{seconds / 60:g}m"


def _pct(rate: float) -> str:
    return f"{rate * 100:.2f} %"


class CheckRule:
    """A stored check ``problem`` (dnsbl, spf, dkim ...) is a case, per (target, source)."""

    def __init__(self, check: str, case_type: str) -> None:
        self.name = check
        self.names: tuple[str, ...] = (check,)
        self.type = case_type

    def findings(self, ctx: Context) -> list[Finding]:
        return [self._finding(row) for row in problems_of_check(ctx.conn, self.name)]

    def _finding(self, row: CheckState) -> Finding:
        data = dict(row.data)
        evidence: dict[str, Any] = {"check": self.name, "detail": row.detail}
        if self.name == "dnsbl":
            for k in ("codes", "meaning", "reason", "delist"):
                if k in data:
                    evidence[k] = data[k]
            codes = ", ".join(str(c) for c in data.get("codes", []) or [])
            what = data.get("meaning") or row.detail or "listed"
            summary = f"{row.target} listed on {row.source}: {what}" + (
                f" ({codes})" if codes else ""
            )
        else:
            evidence["data"] = data
            where = f" ({row.source})" if row.source else ""
            summary = f"{self.name} problem on {row.target}{where}: {row.detail}"
        severity = row.severity or "medium"
        return Finding(
            rule=self.name,
            type=self.type,
            subject_kind=_kind_of(row.target),
            subject=row.target,
            source=row.source,
            severity=severity,
            summary=summary,
            pool=row.pool,
            customer=row.customer,
            evidence=evidence,
            digest=digest(severity, row.detail, data),
        )

    def clear(self, ctx: Context, keys: Iterable[CaseKey]) -> dict[CaseKey, Clear]:
        out: dict[CaseKey, Clear] = {}
        for key in keys:
            _, target, source = key
            row = state_of(ctx.conn, target, self.name, source)
            # No row, or an unknown newer than the last answer: cannot tell, so no verdict.
            if row is None or row.status != OK:
                continue
            if row.last_unknown_at is not None and row.last_unknown_at > row.checked_at:
                continue
            unknown = row.last_unknown_at
            # After an unknown the streak restarts at the first ok after it, which the
            # state does not record: the evaluator then counts from its own observation.
            since = row.changed_at if unknown is None or unknown < row.changed_at else None
            out[key] = Clear(verified_at=row.checked_at, since=since, interrupted_at=unknown)
        return out


@dataclass(frozen=True, slots=True)
class _Measure:
    numerator: int
    denominator: int
    basis: str
    pool: str
    customer: str
    ips: list[str]
    #: events of untrusted reports (not in ``numerator``) and who sent them
    untrusted: int = 0
    reporters: tuple[tuple[str, int], ...] = ()
    #: what the case says about the denominator (anomalies, unauthenticated DMARC volume)
    volume_evidence: dict[str, Any] = field(default_factory=dict)


def _untrusted_note(untrusted: int, reporters: Iterable[tuple[str, int]]) -> str:
    """ "; includes N unauthenticated reports from a, b" ("" when none)."""
    if not untrusted:
        return ""
    names = ", ".join(name for name, _ in reporters) or "unknown senders"
    noun = "report" if untrusted == 1 else "reports"
    return f"; includes {untrusted} unauthenticated {noun} from {names}"


def _merge_reporters(parts: Iterable[_Measure]) -> tuple[tuple[str, int], ...]:
    total: dict[str, int] = {}
    for p in parts:
        for name, n in p.reporters:
            total[name] = total.get(name, 0) + n
    return tuple(sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))[:5])


def _merge_volume_evidence(parts: Iterable[_Measure]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in parts:
        for k, v in p.volume_evidence.items():
            out[k] = out.get(k, [] if isinstance(v, list) else 0) + v
    return out


class RateRule:
    """numerator / volume per IP (and per customer) over a window, above a minimum volume."""

    def __init__(
        self,
        name: str,
        case_type: str,
        noun: str,
        cfg: RateRuleConfig,
        count: Callable[[Context, dt.datetime, dt.datetime], dict[str, measure.Tally]],
        sample_filter: dict[str, Any],
        per_customer: bool,
    ) -> None:
        self.name = name
        self.customer_rule = f"customer-{name}"
        self.names: tuple[str, ...] = (name, self.customer_rule)
        self.type = case_type
        self.noun = noun
        self.cfg = cfg
        self._count = count
        self._sample_filter = sample_filter
        self.per_customer = per_customer

    def _measures(self, ctx: Context) -> dict[tuple[str, str], _Measure]:
        """(rule, subject) -> the numbers, for every IP and customer with volume or feedback."""
        start, end = ctx.window(self.cfg.window_seconds)
        vols = ctx.volumes(self.cfg.window_seconds)
        tallies = self._count(ctx, start, end)
        out: dict[tuple[str, str], _Measure] = {}
        by_customer: dict[str, list[str]] = {}
        for ip in set(vols) | set(tallies):
            tally = tallies.get(ip, measure.Tally(0, "", ""))
            vol = vols.get(ip, measure.Volume(0, "none"))
            pool, customer = ctx.owner(ip) or (tally.pool, tally.customer)
            out[(self.name, ip)] = _Measure(
                tally.count,
                vol.count,
                vol.basis,
                pool,
                customer,
                [ip],
                tally.untrusted,
                tally.reporters,
                vol.evidence(),
            )
            if customer:
                by_customer.setdefault(customer, []).append(ip)
        if self.per_customer:
            for customer, ips in by_customer.items():
                parts = [out[(self.name, ip)] for ip in ips]
                pools = sorted({p.pool for p in parts if p.pool})
                out[(self.customer_rule, customer)] = _Measure(
                    sum(p.numerator for p in parts),
                    sum(p.denominator for p in parts),
                    "sum of IPs",
                    ",".join(pools),
                    customer,
                    sorted(ips),
                    sum(p.untrusted for p in parts),
                    _merge_reporters(parts),
                    _merge_volume_evidence(parts),
                )
        return out

    def _judge(self, m: _Measure) -> tuple[str | None, bool]:
        """(severity, enforceable): the trusted rate decides; unauthenticated reports may
        raise it no higher than ``UNTRUSTED_CEILING`` (monitor/cases/model.py)."""
        thresholds = self.cfg.thresholds
        trusted = severity_for(m.numerator / m.denominator, thresholds) if m.numerator else None
        combined = trusted
        if m.untrusted:
            combined = severity_for((m.numerator + m.untrusted) / m.denominator, thresholds)
        return with_untrusted(trusted, combined)

    def findings(self, ctx: Context) -> list[Finding]:
        """IP findings, then customer findings. One event opens one case: a customer whose
        counted events all come from IPs that fire on their own gets no case of its own; its
        numbers are referenced on those IP cases (``evidence["customer"]``) instead."""
        if not self.cfg.enabled:
            return []
        measures = self._measures(ctx)
        out: list[Finding] = []
        firing: dict[str, Finding] = {}
        for rule in (self.name, self.customer_rule):
            for (name, subject), m in sorted(measures.items()):
                if name != rule or m.denominator < self.cfg.min_volume:
                    continue
                if m.numerator + m.untrusted == 0:
                    continue
                severity, enforceable = self._judge(m)
                if severity is None:
                    continue
                finding = self._finding(ctx, rule, subject, m, severity, enforceable)
                if rule == self.name:
                    firing[subject] = finding
                elif self._covered(measures, m, firing, finding):
                    continue
                out.append(finding)
        return out

    def _covered(
        self,
        measures: dict[tuple[str, str], _Measure],
        m: _Measure,
        firing: dict[str, Finding],
        customer: Finding,
    ) -> bool:
        """Whether the customer's events are exactly those of IP findings; if so, note the
        customer's numbers on each of those IP findings."""
        sources = [
            ip for ip in m.ips if (p := measures[(self.name, ip)]).numerator + p.untrusted > 0
        ]
        if not sources or any(ip not in firing for ip in sources):
            return False
        for ip in sources:
            firing[ip].evidence["customer"] = {
                "customer": customer.subject,
                "severity": customer.severity,
                "rate": customer.evidence["rate"],
                "numerator": customer.numerator,
                "denominator": customer.denominator,
                "note": "the same events as this case: no separate customer case",
            }
        return True

    def _finding(
        self, ctx: Context, rule: str, subject: str, m: _Measure, severity: str, enforceable: bool
    ) -> Finding:
        window = self.cfg.window_seconds
        is_customer = rule == self.customer_rule
        whom = f"customer {subject}" if is_customer else subject
        total = m.numerator + m.untrusted
        rate = total / m.denominator
        evidence: dict[str, Any] = {
            "rate": rate,
            "volume_basis": m.basis,
            "thresholds": dict(self.cfg.thresholds),
            "min_volume": self.cfg.min_volume,
            "ips": m.ips,
            **m.volume_evidence,
        }
        if m.untrusted:
            evidence["unauthenticated"] = {
                "reports": m.untrusted,
                "from": [{"sender": name, "reports": n} for name, n in m.reporters],
                "rate_without": m.numerator / m.denominator,
            }
            evidence["enforceable"] = enforceable
        return Finding(
            rule=rule,
            type=self.type,
            subject_kind="customer" if is_customer else "ip",
            subject=subject,
            severity=severity,
            summary=(
                f"{self.noun} {_pct(rate)} ({total} of {m.denominator:,} messages "
                f"in {_hours(window)}) from {whom}" + _untrusted_note(m.untrusted, m.reporters)
            ),
            pool=m.pool,
            customer=m.customer,
            numerator=total,
            denominator=m.denominator,
            window_seconds=int(window),
            evidence=evidence,
            sample_query={"sending_ips": m.ips, **self._sample_filter},
            digest=f"{severity}|{m.numerator}" + (f"|{m.untrusted}" if m.untrusted else ""),
            enforceable=enforceable,
        )

    def clear(self, ctx: Context, keys: Iterable[CaseKey]) -> dict[CaseKey, Clear]:
        measures = self._measures(ctx)
        out: dict[CaseKey, Clear] = {}
        for key in keys:
            rule, subject, _ = key
            m = measures.get((rule, subject))
            # Too little volume says nothing either way: the case stays.
            if m is None or m.denominator < self.cfg.min_volume:
                continue
            if self._judge(m)[0] is None:
                out[key] = Clear(verified_at=ctx.now)
        return out


class BurstRule:
    """Block/reputation bounces from one receiving domain for one IP, counted in a window."""

    name = "bounce-burst"
    names: tuple[str, ...] = (name,)

    def __init__(self, cfg: BurstRuleConfig) -> None:
        self.cfg = cfg

    def findings(self, ctx: Context) -> list[Finding]:
        if not self.cfg.enabled:
            return []
        start, end = ctx.window(self.cfg.window_seconds)
        vols = ctx.volumes(self.cfg.window_seconds)
        out = []
        for (ip, domain), tally in sorted(
            measure.bursts(ctx.conn, start, end, self.cfg.categories).items()
        ):
            # unauthenticated bounces may raise a burst no higher than UNTRUSTED_CEILING
            severity, enforceable = with_untrusted(
                self.cfg.severity if tally.count >= self.cfg.count else None,
                self.cfg.severity if tally.count + tally.untrusted >= self.cfg.count else None,
            )
            if severity is None:
                continue
            total = tally.count + tally.untrusted
            pool, customer = ctx.owner(ip) or (tally.pool, tally.customer)
            vol = vols.get(ip)
            untrusted: dict[str, Any] = {}
            if tally.untrusted:
                untrusted = {
                    "unauthenticated": {
                        "reports": tally.untrusted,
                        "from": [{"sender": n, "reports": c} for n, c in tally.reporters],
                    },
                    "enforceable": enforceable,
                }
            out.append(
                Finding(
                    rule=self.name,
                    type="bounces",
                    subject_kind="ip",
                    subject=ip,
                    source=domain,
                    severity=severity,
                    summary=(
                        f"{total} {'/'.join(self.cfg.categories)} bounces from {domain} "
                        f"for {ip} in {_hours(self.cfg.window_seconds)}"
                        + _untrusted_note(tally.untrusted, tally.reporters)
                    ),
                    pool=pool,
                    customer=customer,
                    numerator=total,
                    denominator=vol.count if vol else None,
                    window_seconds=int(self.cfg.window_seconds),
                    evidence={
                        "receiving_domain": domain,
                        "categories": list(self.cfg.categories),
                        "threshold": self.cfg.count,
                        "volume_basis": vol.basis if vol else "none",
                        **untrusted,
                    },
                    sample_query={
                        "kind": "bounce",
                        "sending_ips": [ip],
                        "categories": list(self.cfg.categories),
                        "receiving_domain": domain,
                    },
                    digest=f"{tally.count}|{tally.untrusted}" if tally.untrusted else str(total),
                    enforceable=enforceable,
                )
            )
        return out

    def clear(self, ctx: Context, keys: Iterable[CaseKey]) -> dict[CaseKey, Clear]:
        start, end = ctx.window(self.cfg.window_seconds)
        counts = measure.bursts(ctx.conn, start, end, self.cfg.categories)
        vols = ctx.volumes(self.cfg.window_seconds)
        out: dict[CaseKey, Clear] = {}
        for key in keys:
            _, ip, domain = key
            tally = counts.get((ip, domain))
            if tally is not None and tally.count + tally.untrusted >= self.cfg.count:
                continue
            # No bounces also happens when nothing was sent: require proof that mail went out.
            vol = vols.get(ip)
            if (vol.count if vol else 0) >= self.cfg.min_volume:
                out[key] = Clear(verified_at=ctx.now)
        return out


class DmarcRule:
    """Share of DMARC-reported mail from one of our IPs failing both DKIM and SPF."""

    name = "dmarc-alignment"
    names: tuple[str, ...] = (name,)

    def __init__(self, cfg: DmarcRuleConfig) -> None:
        self.cfg = cfg

    def _ours(self, ctx: Context) -> dict[str, tuple[measure.DmarcTotals, str, str]]:
        # Reports also list spoofers' IPs; only IPs we send from are our problem.
        start, end = ctx.window(self.cfg.window_seconds)
        out = {}
        for ip, totals in measure.dmarc_by_ip(ctx.conn, start, end).items():
            owner = ctx.owner(ip)
            if owner is None and not (totals.pool or totals.customer):
                continue
            pool, customer = owner or (totals.pool, totals.customer)
            out[ip] = (totals, pool, customer)
        return out

    def findings(self, ctx: Context) -> list[Finding]:
        if not self.cfg.enabled:
            return []
        out = []
        for ip, (t, pool, customer) in sorted(self._ours(ctx).items()):
            if t.total < self.cfg.min_volume or t.failing == 0:
                continue
            share = t.failing / t.total
            severity = severity_for(share, self.cfg.thresholds)
            if severity is None:
                continue
            window = self.cfg.window_seconds
            out.append(
                Finding(
                    rule=self.name,
                    type="dmarc",
                    subject_kind="ip",
                    subject=ip,
                    severity=severity,
                    summary=(
                        f"{_pct(share)} of DMARC-reported mail from {ip} fails DKIM and SPF "
                        f"({t.failing} of {t.total:,} in {_hours(window)})"
                    ),
                    pool=pool,
                    customer=customer,
                    numerator=t.failing,
                    denominator=t.total,
                    window_seconds=int(window),
                    evidence={
                        "rate": share,
                        "volume_basis": "dmarc",
                        "thresholds": dict(self.cfg.thresholds),
                    },
                    digest=f"{severity}|{t.failing}",
                )
            )
        return out

    def clear(self, ctx: Context, keys: Iterable[CaseKey]) -> dict[CaseKey, Clear]:
        ours = self._ours(ctx)
        out: dict[CaseKey, Clear] = {}
        for key in keys:
            entry = ours.get(key[1])
            if entry is None or entry[0].total < self.cfg.min_volume:
                continue
            t = entry[0]
            if severity_for(t.failing / t.total, self.cfg.thresholds) is None:
                out[key] = Clear(verified_at=ctx.now)
        return out


def _complaints(ctx: Context, start: dt.datetime, end: dt.datetime) -> dict[str, measure.Tally]:
    ignore = ctx.config.complaints.ignore_feedback_types
    return measure.feedback_by_ip(ctx.conn, start, end, "complaint", exclude_feedback_types=ignore)


def _hard_bounces(ctx: Context, start: dt.datetime, end: dt.datetime) -> dict[str, measure.Tally]:
    return measure.feedback_by_ip(ctx.conn, start, end, "bounce", hard=True)


def build_rules(config: RulesConfig) -> list[Rule]:
    """Every enabled rule, in evaluation order."""
    rules: list[Rule] = []
    if config.blocklisting.enabled:
        rules.append(CheckRule("dnsbl", "blocklisting"))
    if config.hygiene.enabled:
        rules.extend(CheckRule(check, t) for check, t in config.hygiene.types.items())
    if config.providers.enabled:
        rules.extend(CheckRule(check, t) for check, t in config.providers.types.items())
    c, b = config.complaints, config.bounces
    rules.append(
        RateRule(
            "complaint-rate",
            "complaints",
            "complaint rate",
            c,
            _complaints,
            {"kind": "complaint"},
            c.per_customer,
        )
    )
    rules.append(
        RateRule(
            "bounce-rate",
            "bounces",
            "hard-bounce rate",
            b,
            _hard_bounces,
            {"kind": "bounce", "hard": True},
            b.per_customer,
        )
    )
    rules.append(BurstRule(config.bounce_burst))
    rules.append(DmarcRule(config.dmarc))
    rules.append(AbuseRule())  # abuse reports: a case per (customer, category)
    return rules
