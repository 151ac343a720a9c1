"""X-ARF, the extended abuse reporting format, in its three generations.

- **0.1/0.2** (x-arf.org, 2009-): a YAML block of ``Key: value`` lines in a text part of
  an e-mail (``Reported-From``, ``Category``, ``Report-Type``, ``Source``,
  ``Source-Type``, ``Date`` ...). Senders write it loosely (``!!python/unicode`` tags,
  unquoted ``http: //`` values), so a block YAML refuses is read line by line instead.
- **JSON "v1"/"v3"** (abusix): ``{"Version": "3", "ReporterInfo": {...}, "Report":
  {"ReportClass", "ReportType", "SourceIp", "SourceUrl", "Date", ...}}``.
- **v4** (xarf.org): flat JSON with ``xarf_version``, ``category`` (older drafts ``class``),
  ``type``, ``source_identifier``, ``timestamp``, ``reporter``, ``evidence``.

The category comes from the report's own type field (classify.py); one report per
message, whose ``count`` is the number of distinct X-ARF reports it carries.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

import collectors.abuse.classify as classify
from collectors.abuse.extract import find_urls, host_of, normal_ip, parse_when, redact, refang
from collectors.abuse.model import AbuseReport

__all__ = ["is_xarf_json", "read_xarf0", "report_from_json", "report_from_xarf0"]

#: a YAML block larger than this is not an X-ARF report part (they are a few hundred bytes)
_MAX_BLOCK = 64 * 1024
_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9_-]{0,63})[ \t]*:[ \t]?(.*)$", re.M)
_MARKERS = ("report-type", "reported-from", "source-type", "schema-url")
_IP_SOURCE_TYPES = {"ip-address", "ipv4", "ipv6", "ip", "ipaddress"}
_CRITICAL_TYPES = {"csam", "csem", "childabuse", "child_abuse"}


# -- 0.1 / 0.2 -------------------------------------------------------------------------------


def read_xarf0(text: str) -> dict[str, str] | None:
    """The fields of an X-ARF 0.x report block in ``text`` (lower-case keys), or None
    when the text is not one: it must name a Report-Type and a Source or reporter."""
    if "report-type" not in text[:_MAX_BLOCK].lower():
        return None
    block = _block(text[:_MAX_BLOCK])
    fields = _from_yaml(block) or _from_lines(block)
    if "report-type" not in fields:
        return None
    if not ({"source", "reported-from", "source-type"} & fields.keys()):
        return None
    return fields


def _block(text: str) -> str:
    """The YAML document: after a ``---`` line when there is one, up to a ``...`` line."""
    start = re.search(r"^---[ \t]*$", text, re.M)
    body = text[start.end() :] if start else text
    end = re.search(r"^\.\.\.[ \t]*$", body, re.M)
    return body[: end.start()] if end else body


#: libyaml's safe loader when PyYAML was built with it (ten times faster), else PyYAML's own
_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _from_yaml(block: str) -> dict[str, str]:
    try:
        loaded = yaml.load(block, Loader=_SAFE_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError:
        return {}
    except (ValueError, TypeError, RecursionError):
        return {}
    if not isinstance(loaded, dict):
        return {}
    return {
        str(k).strip().lower(): _scalar(v)
        for k, v in loaded.items()
        if isinstance(k, str | int) and _scalar(v)
    }


def _scalar(value: Any) -> str:
    """A YAML value as the text the sender wrote; nested structures are not X-ARF fields."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, str | int | float | bool):
        return str(value).strip()
    return ""


def _from_lines(block: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for match in _FIELD.finditer(block):
        key, value = match.group(1).lower(), match.group(2).strip()
        value = re.sub(r"^!!\w+(?:/\w+)?\s+", "", value).strip("'\"")
        if value and key not in fields:
            fields[key] = value
    return fields


def report_from_xarf0(
    parts: list[dict[str, str]], stated_ips: Iterable[str] = (), evidence: str = ""
) -> AbuseReport:
    """One report from the X-ARF 0.x blocks of one message (several blocks = several
    incidents). ``stated_ips`` are the addresses the mail's text names, used when the
    report's Source is a URL (Netcraft: "located at IP address ...")."""
    first = parts[0]
    verdict = classify.from_xarf0(first.get("report-type", ""), first.get("category", ""))
    verdict = verdict or classify.Verdict("other", 0.4, "X-ARF report without a known type")
    version = first.get("version", "0.1")
    report = AbuseReport(
        category=verdict.category,
        confidence=verdict.confidence,
        reason=verdict.reason,
        format=f"xarf-{'0.2' if version.startswith('0.2') else '0.1'}",
        reporter=first.get("reported-from", "").rpartition("@")[2].lower(),
    )
    seen: set[str] = set()
    for fields in parts:
        key = fields.get("report-id") or repr(sorted(fields.items()))
        if key in seen:
            continue
        seen.add(key)
        _add_xarf0(report, fields)
    report.count = len(seen)
    if not report.ips and not _ip_typed(first):
        for ip in stated_ips:
            report.add_ip(ip)
    report.extra.update(_labels(first))
    report.excerpt = redact(evidence.strip())
    return report


def _add_xarf0(report: AbuseReport, fields: Mapping[str, str]) -> None:
    source = refang(fields.get("source", ""))
    ip = normal_ip(source)  # whatever Source-Type says: senders mislabel both ways
    if ip:
        report.add_ip(ip)
    elif source:
        report.add_url(source)
    for key in ("download-link", "url"):
        if fields.get(key):
            report.add_url(refang(fields[key]))
    if fields.get("domain"):
        report.add_url(fields["domain"].lower())
    when = parse_when(fields.get("date", ""))
    report.reported_at = report.reported_at or when
    report.add_incident(
        {
            "ip": ip,
            "url": "" if ip else source,
            "time": when.isoformat() if when else "",
            "port": fields.get("port", ""),
            "service": fields.get("service", ""),
            "type": fields.get("report-type", ""),
        }
    )


def _ip_typed(fields: Mapping[str, str]) -> bool:
    return fields.get("source-type", "").lower() in _IP_SOURCE_TYPES


def _labels(fields: Mapping[str, str]) -> dict[str, str]:
    names = {"report-type": "xarf_report_type", "category": "xarf_category", "service": "service"}
    return {label: fields[key] for key, label in names.items() if fields.get(key)}


# -- JSON (v1/v3 and v4) ---------------------------------------------------------------------


def is_xarf_json(obj: object) -> bool:
    if not isinstance(obj, dict):
        return False
    if "xarf_version" in obj:
        return True
    if "source_identifier" in obj and ("category" in obj or "class" in obj):
        return True
    inner = obj.get("Report")
    return isinstance(inner, dict) and ("ReportType" in inner or "ReportClass" in inner)


def report_from_json(obj: Mapping[str, Any]) -> AbuseReport:
    """One report from a parsed X-ARF JSON document (check :func:`is_xarf_json` first)."""
    if isinstance(obj.get("Report"), dict):
        return _from_v3(obj)
    return _from_v4(obj)


def _from_v4(obj: Mapping[str, Any]) -> AbuseReport:
    cls, kind = _text(obj.get("category") or obj.get("class")), _text(obj.get("type"))
    verdict = classify.from_xarf_v4(cls, kind) or classify.Verdict(
        "other", 0.4, f"X-ARF v4 category/type {cls}/{kind} not known"
    )
    reporter = _dict(obj.get("reporter"))
    report = AbuseReport(
        category=verdict.category,
        confidence=verdict.confidence,
        reason=verdict.reason,
        format="xarf-json-v4",
        reporter=_text(reporter.get("org")) or _text(reporter.get("domain")),
        reported_at=parse_when(_text(obj.get("timestamp"))),
    )
    source = refang(_text(obj.get("source_identifier")))
    ip = normal_ip(source)
    if ip:
        report.add_ip(ip)
    if _text(obj.get("url")):
        report.add_url(refang(_text(obj.get("url"))))
    if source and not ip and _hostlike(source):
        report.add_url(source)
    report.add_incident(
        {
            "ip": ip,
            "time": _text(obj.get("timestamp")),
            "port": _text(obj.get("source_port")),
            "type": f"{cls}/{kind}",
        }
    )
    report.extra.update(
        {"xarf_version": _text(obj.get("xarf_version")), "xarf_category": cls, "xarf_type": kind}
    )
    if kind.lower() in _CRITICAL_TYPES:
        report.extra["critical"] = "yes"
    report.excerpt = _evidence(obj.get("evidence"), "payload", "description", "content_type")
    return report


def _from_v3(obj: Mapping[str, Any]) -> AbuseReport:
    inner: Mapping[str, Any] = obj["Report"]
    kind, cls = _text(inner.get("ReportType")), _text(inner.get("ReportClass"))
    verdict = classify.from_xarf_json(kind, cls) or classify.Verdict(
        "other", 0.4, f"X-ARF ReportType {kind!r} not known"
    )
    info = _dict(obj.get("ReporterInfo"))
    version = _text(obj.get("Version")).split(".")[0] or "3"
    report = AbuseReport(
        category=verdict.category,
        confidence=verdict.confidence,
        reason=verdict.reason,
        format=f"xarf-json-v{version}",
        reporter=_text(info.get("ReporterOrg")) or _text(info.get("ReporterOrgDomain")),
        reported_at=parse_when(_text(inner.get("Date"))),
    )
    source = _dict(inner.get("Source"))
    ip = normal_ip(_text(inner.get("SourceIp")) or _text(source.get("IP")))
    if ip:
        report.add_ip(ip)
    url = _text(inner.get("SourceUrl")) or _text(source.get("URL"))
    if url:
        report.add_url(refang(url))
    report.add_incident(
        {
            "ip": ip,
            "url": url,
            "time": _text(inner.get("Date")),
            "port": _text(inner.get("SourcePort")),
            "type": f"{cls}/{kind}",
        }
    )
    report.extra.update({"xarf_class": cls, "xarf_type": kind})
    if _text(inner.get("ReportSubType")):
        report.extra["xarf_subtype"] = _text(inner.get("ReportSubType"))
    if kind.lower() in _CRITICAL_TYPES:
        report.extra["critical"] = "yes"
    samples = inner.get("Samples") or inner.get("Attachment")
    report.excerpt = _evidence(samples, "Payload", "Description", "ContentType")
    return report


def _evidence(items: object, payload_key: str, description_key: str, type_key: str) -> str:
    """Readable evidence: text payloads (base64-decoded when that gives text) and the
    descriptions of the others, redacted."""
    if not isinstance(items, list):
        return ""
    lines: list[str] = []
    for item in items[:10]:
        if not isinstance(item, dict):
            continue
        description = _text(item.get(description_key))
        payload = _text(item.get(payload_key))
        ctype = _text(item.get(type_key)).lower()
        text = _as_text(payload) if ctype.startswith(("text/", "message/")) else ""
        lines.append(f"{description}: {text}" if text else description)
    return redact("\n".join(line for line in lines if line))


def _as_text(payload: str) -> str:
    if not payload:
        return ""
    try:
        decoded = base64.b64decode(payload[:20000], validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return payload[:2000]
    return decoded[:2000] if decoded.isprintable() or "\n" in decoded else ""


def _hostlike(value: str) -> bool:
    """A domain or URL (not a phone number or a mailbox) as a v4 source identifier."""
    if "://" in value:
        return bool(next(find_urls(value), None))
    return "@" not in value and bool(re.fullmatch(r"[A-Za-z0-9.-]+\.[A-Za-z]{2,}", host_of(value)))


def _text(value: object) -> str:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value).strip()
    return ""


def _dict(value: object) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one: documents are untrusted."""
    return value if isinstance(value, dict) else {}
