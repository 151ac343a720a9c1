"""DMARC aggregate (rua) reports: RFC 7489 appendix C and RFC 9990 (DMARCbis).

A report arrives as XML, usually gzip- or zip-compressed, attached to an email
(sometimes inline). Three entry points:

- :func:`extract_aggregate` finds the report in a message and returns the XML bytes;
- :func:`parse_aggregate_bytes` reads a raw ``.xml`` / ``.gz`` / ``.zip`` file;
- :func:`parse_aggregate_xml` turns the XML into a :class:`DmarcAggregate`.

Hostile input is refused within fixed limits: decompressed data is capped at
:data:`MAX_REPORT_BYTES` (read incrementally, never inflated in one go), a zip
may hold at most :data:`MAX_ZIP_MEMBERS` files, the parts of one message share one
:class:`~collectors.feedback.limits.ExtractionBudget` (bytes, parts, CPU time; each
part is inflated once), counts must fit :func:`~collectors.feedback.limits.count`,
and the XML is parsed with defusedxml with DTDs and entities forbidden. Every
refusal is a :class:`ParseError` whose text says why.
"""

from __future__ import annotations

import io
import ipaddress
import re
import struct
import xml.etree.ElementTree as ET
import zipfile
import zlib
from collections.abc import Iterator
from email.message import Message

import defusedxml
import defusedxml.ElementTree as SafeET

from checks.errors import ParseError
from collectors.feedback.limits import ExtractionBudget, count, epoch_date
from collectors.feedback.model import DmarcAggregate, DmarcAuthResult, DmarcRecord

__all__ = [
    "MAX_REPORT_BYTES",
    "MAX_ZIP_MEMBERS",
    "extract_aggregate",
    "parse_aggregate_bytes",
    "parse_aggregate_xml",
    "report_parts",
    "sniff",
    "unpack",
    "unpack_part",
]

#: the most decompressed bytes a report may have (DMARC and TLS reports alike)
MAX_REPORT_BYTES = 20 * 1024 * 1024
#: a report zip holds one file; a few are tolerated, more is not a report
MAX_ZIP_MEMBERS = 4
_CHUNK = 64 * 1024

#: MIME types a report attachment is sent as; octet-stream only with a report-like name
_REPORT_TYPES = {
    "application/gzip",
    "application/x-gzip",
    "application/zip",
    "application/x-zip",
    "application/x-zip-compressed",
    "application/xml",
    "text/xml",
}
_REPORT_NAME = re.compile(r"\.(xml|gz|gzip|zip)$", re.IGNORECASE)


def extract_aggregate(msg: Message, budget: ExtractionBudget | None = None) -> bytes | None:
    """The decompressed XML of the aggregate report a message carries.

    Looks at every MIME part (the message itself may be the attachment) for a
    gzip / zip / XML report, whatever the transfer encoding. Returns None when
    no part looks like a DMARC report; raises :class:`ParseError` when a part
    looks like one but cannot be unpacked (corrupt archive, over the size cap)
    or the message's ``budget`` is spent (one is made when none is given; give
    the same one to :func:`~collectors.feedback.tlsrpt.extract_tls_report` so
    that no part is inflated twice).
    """
    budget = budget or ExtractionBudget()
    for part in report_parts(msg):
        ctype = part.get_content_type()
        name = part.get_filename() or part.get_param("name") or ""
        if not isinstance(name, str):
            name = ""
        candidate = ctype in _REPORT_TYPES or (
            ctype in ("application/octet-stream", "application/x-compressed")
            and bool(_REPORT_NAME.search(name.strip()))
        )
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes) or not payload:
            continue
        if not candidate:
            # inline report: XML pasted into a text body
            if ctype == "text/plain" and _looks_like_report(payload[:4096]):
                candidate = True
            else:
                continue
        data = unpack_part(part, payload, budget)
        if sniff(payload) == "raw" and not _looks_like_report(data[:4096]):
            continue
        if data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
            continue  # JSON: a TLS report sent as application/gzip, not ours
        return data
    return None


def report_parts(msg: Message) -> Iterator[Message]:
    """Leaf parts, in order, not descending into attached messages: a report inside a
    bounced or forwarded message is that message's business, not this one's."""
    stack = [msg]  # no recursion: the depth of a hostile message is not ours to choose
    while stack:
        part = stack.pop()
        if part.get_content_maintype() == "message":
            continue
        if not part.is_multipart():
            yield part
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            stack.extend(sub for sub in reversed(payload) if isinstance(sub, Message))


def parse_aggregate_bytes(
    data: bytes, filename: str = "", budget: ExtractionBudget | None = None
) -> DmarcAggregate:
    """A report from a raw file: XML, gzip or zip, told apart by magic bytes.

    ``filename`` only names the file in error messages. Raises :class:`ParseError`.
    """
    try:
        return parse_aggregate_xml(unpack(data, budget))
    except ParseError as exc:
        if filename:
            raise ParseError(f"{filename}: {exc}") from exc
        raise


def _looks_like_report(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return text.startswith(b"<") and b"feedback" in head


# -- archives ------------------------------------------------------------------------------


def sniff(data: bytes) -> str:
    """``gzip``, ``zip`` or ``raw``, from the magic bytes (never from a file name)."""
    if data[:2] == b"\x1f\x8b":
        return "gzip"
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    return "raw"


def unpack(data: bytes, budget: ExtractionBudget | None = None) -> bytes:
    """The decompressed content of a gzip or zip file, or ``data`` itself.

    Raises :class:`ParseError` when the archive is corrupt, is encrypted, has
    too many members, would decompress past :data:`MAX_REPORT_BYTES`, or
    spends the ``budget`` (a fresh :class:`ExtractionBudget` when none is given).
    """
    kind = sniff(data)
    if kind == "gzip":
        return _gunzip(data, budget or ExtractionBudget())
    if kind == "zip":
        return _unzip(data, budget or ExtractionBudget())
    if len(data) > MAX_REPORT_BYTES:
        raise ParseError(f"report too large: {len(data)} bytes, limit {MAX_REPORT_BYTES}")
    return data


def unpack_part(part: Message, payload: bytes, budget: ExtractionBudget) -> bytes:
    """:func:`unpack` of a MIME part's decoded ``payload``; an archive is inflated once per
    part and budget, a second call gets the same bytes (or ParseError)."""
    if sniff(payload) == "raw":
        return unpack(payload)  # nothing to inflate: only the size is checked
    return budget.unpacked(part, lambda: unpack(payload, budget))


def _gunzip(data: bytes, budget: ExtractionBudget) -> bytes:
    out = bytearray()
    rest = data
    while rest:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        chunk = rest
        try:
            while not inflater.eof:
                # max_length bounds each step, so a bomb is stopped after at most
                # one chunk past the cap instead of being inflated in memory
                piece = inflater.decompress(chunk, _CHUNK)
                out += piece
                budget.charge(len(piece))
                if len(out) > MAX_REPORT_BYTES:
                    raise ParseError(
                        f"gzip report decompresses past the {MAX_REPORT_BYTES}-byte limit"
                    )
                chunk = inflater.unconsumed_tail
                if not piece and not chunk:
                    break
        except zlib.error as exc:
            if out:  # a damaged trailer after a complete document: keep what was read
                break
            raise ParseError(f"corrupt gzip data: {exc}") from exc
        if not inflater.eof:
            if not out:
                raise ParseError("truncated gzip data")
            break
        rest = inflater.unused_data
        # gzip members may be concatenated; trailing NUL padding is not a member
        if not rest.strip(b"\x00") or rest[:2] != b"\x1f\x8b":
            break
    return bytes(out)


def _unzip(data: bytes, budget: ExtractionBudget) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            if not members:
                raise ParseError("empty zip archive")
            if len(members) > MAX_ZIP_MEMBERS:
                raise ParseError(f"zip holds {len(members)} files, at most {MAX_ZIP_MEMBERS}")
            xml_members = [m for m in members if m.filename.lower().endswith((".xml", ".json"))]
            member = (xml_members or members)[0]
            if member.file_size > MAX_REPORT_BYTES:
                raise ParseError(
                    f"zip member {member.filename!r} declares {member.file_size} bytes, "
                    f"limit {MAX_REPORT_BYTES} (zip bomb?)"
                )
            out = bytearray()
            with archive.open(member) as stream:
                # the declared size can lie: count what really comes out
                while chunk := stream.read(_CHUNK):
                    out += chunk
                    budget.charge(len(chunk))
                    if len(out) > MAX_REPORT_BYTES:
                        raise ParseError(
                            f"zip member {member.filename!r} decompresses past the "
                            f"{MAX_REPORT_BYTES}-byte limit (zip bomb?)"
                        )
            return bytes(out)
    except ParseError:
        raise
    except (
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        OSError,
        ValueError,  # "negative seek value": offsets in the central directory that lie
        OverflowError,
        struct.error,
    ) as exc:
        raise ParseError(f"corrupt zip archive: {exc.__class__.__name__}: {exc}") from exc
    except (NotImplementedError, RuntimeError) as exc:  # unknown method, encrypted member
        raise ParseError(f"unreadable zip archive: {exc}") from exc


# -- XML -------------------------------------------------------------------------------------


def parse_aggregate_xml(xml: bytes) -> DmarcAggregate:
    """The report in ``xml``; element names are matched without their namespace.

    Raises :class:`ParseError` for: input that is not XML, a DTD or entity
    declaration (refused, never expanded), a root that is not ``<feedback>``,
    a missing ``report_id``, a record without ``source_ip`` or ``count``, a
    count that is not an integer from 0 to
    :data:`~collectors.feedback.limits.MAX_COUNT`, a source_ip that is not an
    IP address, or input over :data:`MAX_REPORT_BYTES`. Dates outside the
    years 1970-9999 are read as unreadable (None).
    """
    if len(xml) > MAX_REPORT_BYTES:
        raise ParseError(f"report too large: over {MAX_REPORT_BYTES} bytes")
    root = _parse_xml(xml)
    if _local(root.tag) != "feedback":
        raise ParseError(f"not a DMARC aggregate report: root element is <{_local(root.tag)}>")
    namespace = root.tag[1:].partition("}")[0] if root.tag.startswith("{") else ""

    meta = _child(root, "report_metadata")
    if meta is None:
        raise ParseError("not a DMARC aggregate report: no <report_metadata>")
    report_id = _text(meta, "report_id")
    if not report_id:
        raise ParseError("DMARC report without <report_id>")
    date_range = _child(meta, "date_range")

    published = _child(root, "policy_published")
    policy: dict[str, str] = {}
    policy_domain = ""
    if published is not None:
        for el in published:
            name = _local(el.tag)
            value = (el.text or "").strip()
            if name == "domain":
                policy_domain = value.lower().rstrip(".")
            elif value:
                policy[name] = value.lower()

    records = [_record(el, n) for n, el in enumerate(_children(root, "record"), start=1)]
    return DmarcAggregate(
        org_name=_text(meta, "org_name"),
        report_id=report_id,
        begin=epoch_date(_text(date_range, "begin")),
        end=epoch_date(_text(date_range, "end")),
        policy_domain=policy_domain,
        policy=policy,
        records=records,
        xml_namespace=namespace,
        email=_text(meta, "email"),
    )


def _parse_xml(xml: bytes) -> ET.Element:
    try:
        return _defused_fromstring(xml)
    except ParseError:  # a DTD or entities: refused, never repaired
        raise
    except (ET.ParseError, LookupError, ValueError) as exc:
        # LookupError: the declared encoding is unknown; ValueError: expat reads no
        # multi-byte encoding (Shift_JIS …). The repaired copy is UTF-8.
        first_error = exc
    # Real reporters sometimes send a stray byte that is not UTF-8 or an
    # unescaped "<" inside a value; the counts are still good. Retry once on a
    # repaired copy (still through defusedxml), and report the original error
    # if that fails too.
    repaired = _repair(xml)
    if repaired is not None:
        try:
            return _defused_fromstring(repaired)
        except (ET.ParseError, LookupError, ValueError) as exc:
            if isinstance(exc, ParseError):
                raise
    raise ParseError(f"not well-formed XML: {first_error}")


def _defused_fromstring(xml: bytes) -> ET.Element:
    try:
        return SafeET.fromstring(xml, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DTDForbidden as exc:
        raise ParseError("XML with a DTD refused (entity expansion is disabled)") from exc
    except defusedxml.EntitiesForbidden as exc:
        raise ParseError("XML with entity declarations refused") from exc
    except defusedxml.DefusedXmlException as exc:
        raise ParseError(f"hostile XML refused: {exc}") from exc


_DECLARED_ENCODING = re.compile(rb"^(\s*<\?xml[^>]*?encoding\s*=\s*)([\"'])[^\"']*\2", re.I)
_DECLARED_ENCODING_TEXT = re.compile(r"^(\s*<\?xml[^>]*?encoding\s*=\s*)([\"'])[^\"']*\2", re.I)
#: a "<" that opens no tag, end tag, comment, CDATA or processing instruction
_STRAY_LT = re.compile(r"<(?![A-Za-z_][\w.\-:]*(?:\s[^<>]*)?/?>|/[A-Za-z_][\w.\-:]*\s*>|\?|!)")


_FEEDBACK_START = re.compile(r"<(?:[\w.\-]+:)?feedback[\s>]")


def _repair(xml: bytes) -> bytes | None:
    declared = _DECLARED_ENCODING.match(xml)
    encoding = "utf-8"
    if declared:
        encoding = declared.group(0).rsplit(declared.group(2), 2)[-2].decode("ascii", "replace")
    try:
        text = xml.decode(encoding, errors="replace")
    except (LookupError, ValueError):  # unknown, not a text encoding, or "idna"
        text = xml.decode("utf-8", errors="replace")
    if declared:  # the copy is UTF-8, whatever the original declared
        text = _DECLARED_ENCODING_TEXT.sub(r'\1"utf-8"', text, count=1)
    # some reporters wrap <feedback> in an unclosed element (an xs:schema opener)
    start = _FEEDBACK_START.search(text)
    end = text.rfind("feedback>")
    if start and end > start.start():
        text = text[start.start() : end + len("feedback>")]
    text = _STRAY_LT.sub("&lt;", text)
    fixed = text.encode("utf-8")
    return None if fixed == xml else fixed


def _record(el: ET.Element, n: int) -> DmarcRecord:
    row = _child(el, "row")
    if row is None:  # pre-RFC drafts put the row fields directly in <record>
        row = el
    source_ip = _text(row, "source_ip")
    if not source_ip:
        raise ParseError(f"record {n} has no <source_ip>")
    try:
        ip = str(ipaddress.ip_address(source_ip))
    except ValueError as exc:
        raise ParseError(f"record {n}: source_ip {source_ip!r} is not an IP address") from exc
    count_text = _text(row, "count")
    if not count_text:
        raise ParseError(f"record {n} has no <count>")
    messages = count(count_text, f"record {n}: count")

    evaluated = _child(row, "policy_evaluated")
    reasons = []
    for reason in _children(evaluated, "reason"):
        kind = _text(reason, "type").lower()
        comment = _text(reason, "comment")
        if kind:
            reasons.append(f"{kind}: {comment}" if comment else kind)
    ids = _child(el, "identifiers")
    return DmarcRecord(
        source_ip=ip,
        count=messages,
        disposition=_text(evaluated, "disposition").lower(),
        dkim=_text(evaluated, "dkim").lower(),
        spf=_text(evaluated, "spf").lower(),
        header_from=_text(ids, "header_from").lower(),
        envelope_from=_text(ids, "envelope_from").lower(),
        envelope_to=_text(ids, "envelope_to").lower(),
        auth_results=_auth_results(_child(el, "auth_results")),
        reasons=reasons,
    )


def _auth_results(el: ET.Element | None) -> list[DmarcAuthResult]:
    results: list[DmarcAuthResult] = []
    if el is None:
        return results
    for child in el:
        method = _local(child.tag)
        if method not in ("dkim", "spf"):
            continue
        results.append(
            DmarcAuthResult(
                method=method,
                domain=_text(child, "domain").lower(),
                result=_text(child, "result").lower(),
                selector=_text(child, "selector") if method == "dkim" else "",
                scope=_text(child, "scope").lower() if method == "spf" else "",
            )
        )
    return results


def _local(tag: object) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _child(el: ET.Element | None, name: str) -> ET.Element | None:
    if el is None:
        return None
    for child in el:
        if _local(child.tag) == name:
            return child
    return None


def _children(el: ET.Element | None, name: str) -> list[ET.Element]:
    if el is None:
        return []
    return [child for child in el if _local(child.tag) == name]


def _text(el: ET.Element | None, name: str) -> str:
    child = _child(el, name)
    return (child.text or "").strip() if child is not None else ""
