"""Network lists that are not rbldnsd datasets: plain CIDR lists and Spamhaus DROP JSON.

* ``cidr-list`` — one IPv4 or IPv6 CIDR (or single address) per line; ``;`` or ``#``
  starts a comment (Spamhaus's old ``drop.txt`` writes ``1.10.16.0/20 ; SBL256894``).
  Every network answers one value, by default 127.0.0.2 without TXT.
* ``drop-json`` — Spamhaus's DROP/EDROP/DROPv6 download: one JSON object per line,
  ``{"cidr": ..., "sblid": ..., "rir": ...}``, closed by one metadata object
  ``{"type": "metadata", "timestamp": ..., "size": ..., "records": N, "copyright": ...}``.
  The metadata line is the download's end mark: without it, with records after it, or
  with a record count (``records``) or byte count (``size``, the bytes of the record
  lines) other than what precedes it, the file is truncated or spliced.
  Each network answers 127.0.0.9 (Spamhaus's DROP code) with its SBL id as TXT.

Networks with host bits set (``10.0.0.1/8``) are malformed here, as rbldnsd refuses them.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable

import numpy as np

from checks.dnsbl.mirror.answers import Values
from checks.dnsbl.mirror.bulk import split_lines
from checks.dnsbl.mirror.ranges import IntervalTable, keys, paint, union_layer
from checks.dnsbl.mirror.syntax import Value

FEED_FORMATS = ("cidr-list", "drop-json")
DEFAULT_CODES = {"cidr-list": "127.0.0.2", "drop-json": "127.0.0.9"}
_MAX_PROBLEMS = 20
_V4 = re.compile(r"([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})(?:/([0-9]{1,2}))?")


class Truncated(Exception):
    """The feed lacks its end or does not add up: the message says how."""


def _network(text: str) -> tuple[int, int, int] | None:
    """(first, last, version) of a CIDR or address, host bits not allowed; or None."""
    m = _V4.fullmatch(text)
    if m is not None:
        octets = [int(g) for g in m.groups()[:4]]
        bits = int(m.group(5)) if m.group(5) is not None else 32
        if (
            max(octets) > 255
            or bits > 32
            or any(len(g) > 1 and g[0] == "0" for g in m.groups()[:4])
        ):
            return None
        a = (octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3]
        host = (1 << (32 - bits)) - 1
        return (a, a | host, 4) if not a & host else None
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError:
        return None
    return int(net.network_address), int(net.broadcast_address), net.version


class FeedReader:
    """Reads cidr-list or drop-json files into one answer per network."""

    def __init__(self, fmt: str, code: str | None = None, txt: str | None = None) -> None:
        if fmt not in FEED_FORMATS:
            raise ValueError(f"not a feed format: {fmt!r}")
        self.fmt = fmt
        a = int(ipaddress.IPv4Address(code or DEFAULT_CODES[fmt]))
        self.code = a
        #: cidr-list: the TXT of every entry; drop-json: a template where "{sblid}" is the id
        self.txt = txt
        self.values = Values()
        self.lines = self.entries = self.malformed = 0
        self.problems: list[str] = []
        self.timestamp: float | None = None
        self._rows: dict[int, tuple[list[int], list[int], list[int]]] = {
            4: ([], [], []),
            6: ([], [], []),
        }
        self._file = ""

    def _bad(self, i: int, why: str) -> None:
        self.malformed += 1
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(f"{self._file}:{i + 1}: {why}")

    def _add(self, net: tuple[int, int, int], txt: str) -> None:
        first, last, version = net
        rows = self._rows[version]
        rows[0].append(first)
        rows[1].append(last)
        rows[2].append(self.values.value(Value(self.code, txt)))
        self.entries += 1

    def read(self, data: bytes, name: str) -> None:
        """Read one file; raises :class:`Truncated` when a drop-json file is incomplete."""
        self._file = name
        lines = split_lines(data)
        self.lines += len(lines)
        starts = lines.starts.tolist()
        texts = (
            data[s:e].decode("latin-1").strip()
            for s, e in zip(starts, lines.ends.tolist(), strict=True)
        )
        if self.fmt == "cidr-list":
            self._cidr_list(texts)
        else:
            self._drop_json(texts, starts)

    def _cidr_list(self, texts: Iterable[str]) -> None:
        for i, line in enumerate(texts):
            cut = min((k for k in (line.find(";"), line.find("#")) if k >= 0), default=-1)
            if cut >= 0:
                line = line[:cut].rstrip()
            if not line:
                continue
            net = _network(line)
            if net is None:
                self._bad(i, "not a CIDR or address (or host bits set)")
                continue
            self._add(net, self.txt or "")

    def _drop_json(self, texts: Iterable[str], starts: list[int]) -> None:
        meta: dict[str, object] | None = None
        records = 0
        size = 0  # the bytes before the metadata line
        for i, line in enumerate(texts):
            if not line:
                continue
            if meta is not None:
                raise Truncated(f"{self._file}:{i + 1}: data after the metadata line")
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            if isinstance(obj, dict) and obj.get("type") == "metadata":
                meta, size = obj, starts[i]
                continue
            records += 1
            cidr = obj.get("cidr") if isinstance(obj, dict) else None
            net = _network(cidr) if isinstance(cidr, str) else None
            if net is None:
                self._bad(i, "not a DROP record with a valid cidr")
                continue
            assert isinstance(obj, dict)
            sblid = obj.get("sblid")
            sblid = sblid if isinstance(sblid, str) else ""
            self._add(net, self.txt.replace("{sblid}", sblid) if self.txt is not None else sblid)
        if meta is None:
            raise Truncated(f"{self._file}: no metadata line at the end (truncated download?)")
        count = meta.get("records")
        if isinstance(count, int) and not isinstance(count, bool) and count != records:
            raise Truncated(
                f"{self._file}: the metadata counts {count} records, the file has {records}"
            )
        if count is None and len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(f"{self._file}: the metadata line has no record count")
        # "size" counts the bytes of the record lines (newlines included) in Spamhaus's files
        said = meta.get("size")
        if isinstance(said, int) and not isinstance(said, bool) and said != size:
            raise Truncated(
                f"{self._file}: the metadata says {said} bytes of records, the file has {size}"
            )
        stamp = meta.get("timestamp")
        if isinstance(stamp, int | float) and not isinstance(stamp, bool):
            self.timestamp = float(stamp)

    def tables(self) -> tuple[IntervalTable | None, IntervalTable | None]:
        """The listed networks per family; overlapping networks with different ids all answer."""
        out: list[IntervalTable | None] = []
        for version in (4, 6):
            first, last, ids = self._rows[version]
            if not first:
                out.append(None)
                continue
            layer = union_layer(
                keys(first, version),
                keys(last, version),
                np.array(ids, dtype=np.int64),
                self.values.group,
            )
            out.append(IntervalTable(paint([layer], version), version))
        return out[0], out[1]
