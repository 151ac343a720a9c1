"""The spool's segment files: the messages of one group commit, framed one after another.

A segment is named ``<ns>-<pid>-<serial>-<count>.seg``: the write time in nanoseconds
(zero-padded, so names sort oldest first), the writing process, a per-process serial, and
how many records it holds (so the spool's depth is read from names, not contents).

Each record is a header line and the message bytes::

    msg <sha256 hex> <length> <envelope JSON>\\n
    <length bytes of the message>\\n

The JSON is on one line (``json.dumps`` escapes newlines). A record is complete when its
length fits in the file and its bytes hash to the header's SHA-256; the first record that is
not ends the segment (:class:`TornSegment`). A segment is fsynced before it is renamed into
``new/``, so a torn one only arises if the file system broke that order; its complete
records still stand.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from checks.errors import InputError

SUFFIX = ".seg"
_TAG = b"msg "


@dataclass(frozen=True, slots=True)
class Record:
    """One message of a segment: its hash, SMTP envelope and raw bytes."""

    message_hash: str
    envelope: dict[str, object]
    raw: bytes


class TornSegment(InputError):
    """A segment whose tail is incomplete or corrupt; ``records`` are the complete ones."""

    def __init__(self, records: list[Record], offset: int) -> None:
        super().__init__(f"torn record at byte {offset}")
        self.records = records


def segment_name(time_ns: int, pid: int, serial: int, count: int) -> str:
    return f"{time_ns:020d}-{pid}-{serial}-{count}{SUFFIX}"


def parse_name(name: str) -> int:
    """How many records a segment's name says it holds; 0 for a name not of this form."""
    count = name.removesuffix(SUFFIX).rpartition("-")[2]
    return int(count) if count.isdigit() else 0


def encode(message_hash: str, envelope: dict[str, object], raw: bytes) -> bytes:
    """One framed record."""
    return b"".join(encode_parts(message_hash, envelope, raw))


def encode_parts(message_hash: str, envelope: dict[str, object], raw: bytes) -> list[bytes]:
    """One framed record as the pieces to write (header, the message itself, newline), so
    that a writer can hand them to ``writev`` without copying the message."""
    meta = json.dumps(envelope, default=str, separators=(",", ":")).encode()
    return [b"%s%s %d %s\n" % (_TAG, message_hash.encode(), len(raw), meta), raw, b"\n"]


def read_segment(data: bytes) -> list[Record]:
    """The records of a segment's bytes, in order.

    Raises :class:`TornSegment` (carrying the complete records before it) at the first
    record that is cut short or does not match its hash.
    """
    records: list[Record] = []
    pos, size = 0, len(data)
    while pos < size:
        record, end = _record_at(data, pos)
        if record is None:
            raise TornSegment(records, pos)
        records.append(record)
        pos = end
    return records


def _record_at(data: bytes, pos: int) -> tuple[Record | None, int]:
    eol = data.find(b"\n", pos)
    if eol < 0 or not data.startswith(_TAG, pos):
        return None, pos
    try:
        digest, length_text, meta = data[pos + len(_TAG) : eol].split(b" ", 2)
        length = int(length_text)
        envelope = json.loads(meta)
    except ValueError:
        return None, pos
    start, end = eol + 1, eol + 1 + length
    if end >= len(data) or data[end : end + 1] != b"\n" or not isinstance(envelope, dict):
        return None, pos
    raw = data[start:end]
    if hashlib.sha256(raw).hexdigest().encode() != digest:
        return None, pos
    return Record(digest.decode(), envelope, raw), end + 1
