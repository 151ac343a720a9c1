"""``repmon ingest PATH...``: run the feedback intake on saved messages and report files.

Each message goes through the same pipeline as the sink's (parse, attribute, store once by the
sha256 of its raw bytes). ``--dry-run`` stores nothing; ``--json`` prints a JSON array with
one object per message. Exit status: 0 every input parsed, 1 some could not be parsed, 2 usage.

Nothing is dropped silently: a message (or DMARC report) older than ``[retention] feedback``
would be deleted by the next housekeeping, so it is not stored unless ``--keep`` is given, and
either way the run says how many there were.

Abuse reports go to the abuse intake instead (``monitor/abuse_intake.py``), told from
feedback by their content (:class:`AbuseDesk`): a bounce, delay, DMARC or TLS report is
feedback; an ARF complaint is feedback unless it carries an X-ARF report (Netcraft's); a
message feedback calls ``other`` is an abuse report when the abuse parser reads a format in
it (X-ARF, Shadowserver or other CSV, ACNS, a reporter's template, threat-indicator JSON) or
free text it classifies surely (a category other than ``other``, at least
``[abuse] review_threshold``); a file feedback cannot read (a zipped CSV, bare X-ARF JSON,
ACNS XML) is an abuse report when the abuse parser reads a format in it. ``--abuse`` sends
every input to the abuse intake (ARF complaints too, as ``kind: complaint``) and reads files
up to the abuse parser's 64 MB rather than ``[sink] max_message_bytes``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import re
import sys
from collections import Counter
from email.message import Message
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from checks.errors import ParseError, UsageError
from collectors.abuse import MAX_INPUT_BYTES, AbuseReport, parse_abuse
from collectors.abuse.prepare import PreparedMessage, Preparer
from collectors.feedback.attribution import SendingIpRules
from collectors.feedback.model import Report
from collectors.feedback.parse import SavedMessage, parse_saved, read_message, read_saved
from collectors.feedback.pipeline import ATTRIBUTABLE, Event, build_events
from monitor.abuse_intake import AbuseSeries, abuse_section, store_prepared
from monitor.config import ConfigError, load_config, parse_duration
from monitor.exporter import Exporter
from monitor.feedback_intake import ingest_report
from monitor.inventory import Inventory, InventoryError
from monitor.store import Store
from monitor.timeseries import open_writer


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "ingest",
        parents=[common],
        help="parse, attribute and store saved bounces, complaints and reports",
        description=(
            "Run the feedback intake on saved messages: .eml files, mbox files, Maildirs, "
            "raw DMARC aggregate reports (.xml/.gz/.zip), TLS reports (.json/.gz), or "
            "directories of them. Abuse reports among them (X-ARF, Shadowserver CSV and "
            "zip/gzip of those, ACNS, abuse letters) go to the abuse intake."
        ),
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="file or directory")
    p.add_argument("--dry-run", action="store_true", help="parse and attribute, store nothing")
    p.add_argument("--json", action="store_true", help="print a JSON array, one object a message")
    p.add_argument(
        "--keep",
        action="store_true",
        help="store messages older than [retention] feedback too (housekeeping deletes them "
        "at its next run unless the retention is raised)",
    )
    p.add_argument(
        "--abuse",
        action="store_true",
        help="every input is an abuse report (ARF complaints too): the abuse intake only",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    try:
        inventory = Inventory.from_config(config)
    except InventoryError as exc:
        raise ConfigError(str(exc)) from None
    rules = SendingIpRules(inventory, config.feedback)
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        raise UsageError("ingest: no such file or directory: " + ", ".join(missing))
    store = None if args.dry_run else Store.open(config.store.url)
    exporter = None
    if store is not None and config.influxdb is not None:
        writer = open_writer(config.influxdb, name="ingest")
        exporter = Exporter.for_new_rows(
            store, writer, inventory, receiving_domains=config.influxdb.receiving_domains
        )
    results: list[dict[str, Any]] = []
    tally = Tally()
    desk = AbuseDesk(config, inventory, store, forced=args.abuse)
    series = desk.series(exporter.writer if exporter is not None else None)
    max_bytes = config.sink.max_message_bytes
    if args.abuse:
        max_bytes = max(max_bytes, MAX_INPUT_BYTES)
    retention = config.retention.feedback
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=parse_duration(retention))
    try:
        for path in args.paths:
            for saved in read_saved(path, max_bytes):
                if desk.forced:
                    results += desk.take(saved, tally)
                    continue
                try:
                    report, msg = parse_saved(saved)
                except ParseError as exc:
                    if desk.claims(saved, None):
                        results += desk.take(saved, tally)
                        continue
                    tally.errors.append((saved.label, str(exc)))
                    results.append({"file": saved.label, "error": str(exc)})
                    continue
                if desk.claims(saved, report):
                    results += desk.take(saved, tally, msg)
                    continue
                events = build_events(report, rules, msg)
                item = describe(saved.label, report, events)
                duplicate = False
                received = received_time(saved, msg)
                if older_than(report, received, cutoff):
                    tally.stale += 1
                    item["older_than_retention"] = True
                    if store is not None and not args.keep:
                        item["stored"] = False
                        tally.add(report, events, duplicate=False, stored=False)
                        results.append(item)
                        continue
                if store is not None:
                    outcome = ingest_report(
                        store,
                        config,
                        inventory,
                        report,
                        hashlib.sha256(saved.raw).hexdigest(),
                        received,
                        saved.label,
                        message=msg,
                    )
                    duplicate = outcome.duplicate
                    item["duplicate"] = duplicate
                tally.add(report, events, duplicate)
                results.append(item)
        if exporter is not None:
            exporter.export()
        if series is not None:
            series.export()
    finally:
        if exporter is not None:
            exporter.writer.flush()
            exporter.writer.close()
        if store is not None:
            store.close()
    if args.json:
        json.dump(results, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        tally.print(stored=store is not None)
        desk.print(stored=store is not None)
    if tally.stale:
        _warn_stale(tally.stale, retention, stored=store is not None and args.keep)
    return 1 if tally.errors else 0


def older_than(report: Report, received: dt.datetime, cutoff: dt.datetime) -> bool:
    """Whether housekeeping would delete what this report stores (by the same dates)."""
    if report.dmarc is not None and report.dmarc.end is not None:
        return report.dmarc.end < cutoff
    return received < cutoff


def _warn_stale(n: int, retention: str, stored: bool) -> None:
    if stored:
        text = (
            f"{n} messages are older than the retention ([retention] feedback = {retention!r}): "
            "stored (--keep), but the next housekeeping deletes them unless the retention is raised"
        )
    else:
        text = (
            f"{n} messages are older than the retention ([retention] feedback = {retention!r}) "
            "and were not stored (housekeeping would delete them); --keep stores them anyway"
        )
    print(f"repmon: warning: {text}", file=sys.stderr)


class Tally:
    """The summary counts of one ``repmon ingest`` run."""

    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()
        self.events = 0
        self.unattributed = 0
        self.records = 0
        self.duplicates = 0
        #: messages older than the retention (stored only with --keep)
        self.stale = 0
        self.skipped = 0
        self.errors: list[tuple[str, str]] = []

    def add(
        self, report: Report, events: list[Event], duplicate: bool, stored: bool = True
    ) -> None:
        self.kinds[report.kind] += 1
        if duplicate:
            self.duplicates += 1
            return
        if not stored:
            self.skipped += 1
            return
        self.events += len(events)
        self.unattributed += sum(
            1 for e in events if e.kind in ATTRIBUTABLE and not e.attribution.sending_ip
        )
        self.records += len(report.dmarc.records) if report.dmarc is not None else 0

    def print(self, stored: bool) -> None:
        total = sum(self.kinds.values()) + len(self.errors)
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.kinds.items()))
        print(f"messages: {total}" + (f" ({kinds})" if kinds else ""))
        if stored:
            print(f"duplicates (already stored, skipped): {self.duplicates}")
            if self.skipped:
                print(f"older than the retention (not stored): {self.skipped}")
        else:
            print("dry run: nothing stored")
        print(f"events: {self.events} (unattributed: {self.unattributed})")
        print(f"dmarc records: {self.records}")
        print(f"errors: {len(self.errors)}")
        for label, reason in self.errors:
            print(f"  {label}: {reason}")


def received_time(saved: SavedMessage, msg: Message | None) -> dt.datetime:
    """When a saved message arrived: its Date header, else the file's mtime, else now.

    A date in the future (a broken clock) is replaced by now so it cannot fill a future bucket.
    """
    now = dt.datetime.now(dt.UTC)
    when: dt.datetime | None = None
    if msg is not None and msg.get("Date"):
        try:
            when = parsedate_to_datetime(str(msg["Date"]))
        except (TypeError, ValueError, IndexError, OverflowError):  # year 99999999999: no date
            when = None
        if when is not None and when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)  # RFC 5322 "-0000": zone unknown, take UTC
    if when is None and saved.mtime:
        when = dt.datetime.fromtimestamp(saved.mtime, dt.UTC)
    if when is None or when > now:
        return now
    return when.astimezone(dt.UTC)


def describe(label: str, report: Report, events: list[Event]) -> dict[str, Any]:
    """The ``--json`` object of one parsed message (addresses in clear: the analyst's file)."""
    ip = next((e.attribution for e in events if e.attribution.sending_ip), None)
    out: dict[str, Any] = {
        "file": label,
        "kind": report.kind,
        "sending_ip": ip.sending_ip if ip else "",
        "attributed_by": ip.by if ip else "",
    }
    if report.subject:
        out["subject"] = report.subject
    if report.bounce is not None:
        by_address = {e.recipient: e.attribution for e in events}
        out["recipients"] = [
            {
                "address": r.address,
                "action": r.action,
                "status": r.status,
                "diagnostic": r.diagnostic,
                "category": r.category,
                "hard": r.hard,
                "blocklist": r.blocklist,
                "sending_ip": by_address[r.address].sending_ip if r.address in by_address else "",
            }
            for r in report.bounce.recipients
        ]
    if report.complaint is not None:
        c = report.complaint
        out["feedback_type"] = c.feedback_type
        out["source_ip"] = c.source_ip
        out["reported_domain"] = list(c.reported_domain)
        out["user_agent"] = c.user_agent
        if report.kind == "dmarc-failure":
            out["auth_failure"] = c.auth_failure
    if report.dmarc is not None:
        agg = report.dmarc
        out["org_name"] = agg.org_name
        out["report_id"] = agg.report_id
        out["policy_domain"] = agg.policy_domain
        out["records"] = [
            {
                "source_ip": r.source_ip,
                "count": r.count,
                "disposition": r.disposition,
                "dkim": r.dkim,
                "spf": r.spf,
            }
            for r in agg.records
        ]
    if report.tls is not None:
        t = report.tls
        out["organization_name"] = t.organization_name
        out["report_id"] = t.report_id
        out["successful"] = t.successful
        out["failed"] = t.failed
    return out


# --- the abuse branch ------------------------------------------------------------------------

#: feedback kinds that are never abuse reports
_FEEDBACK_ONLY = frozenset({"bounce", "delay", "dmarc-aggregate", "dmarc-failure", "tls-report"})
_MBOX_PART = re.compile(r"#\d+$")


class AbuseDesk:
    """The abuse branch of ``repmon ingest``: which inputs are abuse reports (module
    docstring), and their intake: parse, attribute, store once by the sha256 of the bytes.
    Each report becomes one JSON object (several for a zip of several reports)."""

    def __init__(
        self, config: Any, inventory: Inventory, store: Store | None, forced: bool = False
    ) -> None:
        self.config = abuse_section(config)
        self.preparer = Preparer(self.config, inventory)
        self.store = store
        self.forced = forced
        self.reports = 0
        self.review = 0
        self.duplicates = 0
        self.not_ours = 0
        self.errors = 0
        self.customers: Counter[str] = Counter()
        self.categories: Counter[str] = Counter()
        #: the last input read by :meth:`claims`: (label, its reports or the error)
        self._read: tuple[str, list[AbuseReport] | ParseError] | None = None

    def series(self, writer: Any) -> AbuseSeries | None:
        """The ``abuse`` points of what this run stores (None without a store or writer)."""
        if self.store is None or writer is None:
            return None
        return AbuseSeries(self.store, writer, lookback=dt.timedelta(0))

    def _parse(self, saved: SavedMessage) -> list[AbuseReport] | ParseError:
        if self._read is not None and self._read[0] == saved.label:
            return self._read[1]
        if saved.error is not None:
            found: list[AbuseReport] | ParseError = saved.error
        else:
            try:
                found = parse_abuse(saved.raw, _MBOX_PART.sub("", Path(saved.label).name))
            except ParseError as exc:
                found = exc
        self._read = (saved.label, found)
        return found

    def claims(self, saved: SavedMessage, report: Report | None) -> bool:
        """Whether an input is an abuse report rather than feedback (``report``: what the
        feedback parser made of it, None when it could not read it)."""
        if saved.error is not None or (report is not None and report.kind in _FEEDBACK_ONLY):
            return False
        found = self._parse(saved)
        if isinstance(found, ParseError) or not found:
            return False
        first = found[0]
        structured = not first.format.startswith("free-text")
        if report is None:
            return structured
        if report.kind == "complaint":
            return structured and not first.format.startswith("arf")
        sure = first.category != "other" and first.confidence >= self.config.review_threshold
        return structured or sure

    def take(
        self, saved: SavedMessage, tally: Tally, msg: Message | None = None
    ) -> list[dict[str, Any]]:
        """Prepare and (unless a dry run) store one input; its JSON objects."""
        found = self._parse(saved)
        self._read = None
        if isinstance(found, ParseError):
            self.errors += 1
            tally.errors.append((saved.label, str(found)))
            return [{"file": saved.label, "intake": "abuse", "error": str(found)}]
        if msg is None and saved.form == "message" and saved.raw:
            try:
                msg = read_message(saved.raw)
            except ParseError:
                msg = None
        prepared = PreparedMessage(
            hashlib.sha256(saved.raw).hexdigest(),
            received_time(saved, msg),
            "local",
            saved.label,
            self.preparer.reports(found),
        )
        duplicate = None
        if self.store is not None:
            duplicate = store_prepared(self.store, prepared).duplicate
        out = []
        for rep in prepared.reports:
            item: dict[str, Any] = {"file": saved.label, "intake": "abuse"}
            if len(prepared.reports) > 1:
                item["report"] = rep.index
            body = rep.report.to_json()
            body["incidents"] = len(rep.report.incidents)
            item |= body | rep.describe()
            if duplicate is not None:
                item["duplicate"] = duplicate
            out.append(item)
            self._count(rep, duplicate)
        return out

    def _count(self, rep: Any, duplicate: bool | None) -> None:
        self.reports += 1
        if duplicate:
            self.duplicates += 1
            return
        self.categories[rep.report.category] += 1
        self.review += rep.needs_review
        self.not_ours += rep.foreign
        self.customers.update(rep.customers)

    def print(self, stored: bool) -> None:
        if not self.reports and not self.errors:
            return
        cats = ", ".join(f"{k} {n}" for k, n in sorted(self.categories.items()))
        print(f"abuse reports: {self.reports}" + (f" ({cats})" if cats else ""))
        if stored:
            print(f"abuse duplicates (already stored, skipped): {self.duplicates}")
        who = ", ".join(f"{c} {n}" for c, n in self.customers.most_common())
        print(f"abuse customers: {who or 'none'}; addresses not ours: {self.not_ours}")
        print(f"abuse reports for review: {self.review}")
