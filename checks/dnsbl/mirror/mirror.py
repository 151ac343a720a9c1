"""A loaded blocklist mirror: lookups, inventory range matches and self-test answers.

A :class:`Mirror` is immutable once built by :func:`checks.dnsbl.mirror.dataset.parse`; a
caller keeps serving the previous one until a new file has loaded without
:class:`UnusableMirror`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from checks.dnsbl.mirror.answers import Answer, Values
from checks.dnsbl.mirror.names import NameSet, name_text, parse_name
from checks.dnsbl.mirror.ranges import IntervalTable, keys
from checks.dnsbl.mirror.syntax import ip4_text, ip6_text
from checks.errors import InputError, TargetError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Inventory = (
    ipaddress.IPv4Network
    | ipaddress.IPv6Network
    | str
    | tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]
    | tuple[ipaddress.IPv6Address, ipaddress.IPv6Address]
)
#: the top 16 bits of a 6to4 address, and the top 96 of an IPv4-mapped one
_6TO4_PREFIX = 0x2002
_MAPPED_PREFIX = 0xFFFF


class UnusableMirror(InputError):
    """A mirror file that must not replace the one in use: empty, not its format, truncated.

    The message names the file and says why; keep serving the previous data.
    """


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What reading a mirror file found.

    ``malformed`` lines were skipped as rbldnsd skips them (it warns and goes on);
    ``duplicates`` are later trie entries for a prefix already listed (the first one wins);
    ``problems`` quotes the first few warnings with their line numbers.
    """

    format: str
    lines: int
    entries: int
    exclusions: int
    malformed: int
    duplicates: int
    problems: tuple[str, ...]
    #: disjoint listed intervals once overlaps are resolved (names for a dnset)
    intervals: int
    #: listed IPv4 / IPv6 addresses (IPv6 counts can exceed 2**64)
    addresses4: int
    addresses6: int
    #: $TIMESTAMP data time / expiry, or a drop-json metadata timestamp (Unix seconds)
    timestamp: float | None = None
    expires: float | None = None


class AddressRange(NamedTuple):
    """An inventory range, inclusive, as integers of one address family."""

    first: int
    last: int
    version: int

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def __str__(self) -> str:
        cls = ipaddress.IPv4Address if self.version == 4 else ipaddress.IPv6Address
        return f"{cls(self.first)}-{cls(self.last)}"


def address_range(item: Inventory) -> AddressRange:
    """An inventory item as a range: a network, ``"a/len"``, ``"a-b"``, an address, a pair."""
    if isinstance(item, tuple):
        first, last = item
        if first.version != last.version or int(first) > int(last):
            raise TargetError(f"bad range {first}-{last}")
        return AddressRange(int(first), int(last), first.version)
    if isinstance(item, str):
        text = item.strip()
        try:
            if "-" in text:
                a, _, b = text.partition("-")
                lo, hi = ipaddress.ip_address(a.strip()), ipaddress.ip_address(b.strip())
                if lo.version != hi.version:
                    raise ValueError("mixed families")
                return address_range((lo, hi))  # type: ignore[arg-type]
            item = ipaddress.ip_network(text, strict=True)
        except ValueError as exc:
            raise TargetError(f"{item!r} is not a network, range or address: {exc}") from None
    return AddressRange(int(item.network_address), int(item.broadcast_address), item.version)


@dataclass(frozen=True, slots=True)
class Listing:
    """A listed stretch of an inventory range and what the mirror answers for it."""

    range_index: int
    first: IPAddress
    last: IPAddress
    answer_id: int
    codes: tuple[str, ...]

    @property
    def size(self) -> int:
        return int(self.last) - int(self.first) + 1


@dataclass(frozen=True, slots=True)
class RangeMatch:
    """Inventory ranges against a mirror: counts per range and the listed stretches.

    ``covered[i]``/``listed[i]`` count the addresses of ``ranges[i]`` and of those listed;
    the hit arrays (one row per listed stretch, ordered by range) give ``range_index``,
    ``first``/``last`` (ints) and ``answer_id``; :meth:`Mirror.answer` turns a row's id and
    any address inside it into the exact answer, TXT included.
    """

    ranges: tuple[AddressRange, ...]
    covered: list[int]
    listed: list[int]
    range_index: npt.NDArray[np.int64]
    first: npt.NDArray[Any]
    last: npt.NDArray[Any]
    answer_id: npt.NDArray[np.int64]
    values: Values

    def __len__(self) -> int:
        return len(self.range_index)

    def listings(self) -> Iterator[Listing]:
        """The listed stretches as addresses with their codes (a Python object per row)."""
        for r, f, la, a in zip(
            self.range_index, self.first, self.last, self.answer_id, strict=True
        ):
            cls = ipaddress.IPv4Address if self.ranges[r].version == 4 else ipaddress.IPv6Address
            yield Listing(int(r), cls(int(f)), cls(int(la)), int(a), self.values.codes(int(a)))


class Mirror:
    """One blocklist dataset, read: what it lists and what it answers.

    ``format`` is the file format; ``ip4``/``ip6`` the listed intervals per family (None
    when the format has none), ``names`` a dnset's names; ``report`` what loading found.
    """

    def __init__(
        self,
        format: str,
        values: Values,
        report: LoadReport,
        ip4: IntervalTable | None = None,
        ip6: IntervalTable | None = None,
        names: NameSet | None = None,
    ) -> None:
        self.format = format
        self.values = values
        self.report = report
        self.ip4 = ip4
        self.ip6 = ip6
        self.names = names
        #: rbldnsd answers 6to4 (2002:V4::/16) and ::ffff:V4 query names from IPv4 datasets
        self.reads_ip6_as_ip4 = format in ("ip4set", "ip4tset", "ip4trie")

    def __repr__(self) -> str:
        r = self.report
        return f"<Mirror {self.format}: {r.entries} entries, {r.intervals} intervals>"

    @property
    def nbytes(self) -> int:
        """Memory held by the interval arrays (the bulk of a big IPv4 mirror)."""
        return sum(t.nbytes for t in (self.ip4, self.ip6) if t is not None)

    def answer(self, answer_id: int, subject: IPAddress | str) -> Answer:
        """The answer of ``answer_id`` for one listed address (or dnset name)."""
        if isinstance(subject, ipaddress.IPv4Address):
            return self.values.answer(answer_id, ip4_text(int(subject)))
        if isinstance(subject, ipaddress.IPv6Address):
            return self.values.answer(answer_id, ip6_text(int(subject)))
        return self.values.answer(answer_id, subject)

    def lookup(self, target: IPAddress | str) -> Answer | None:
        """What rbldnsd would answer for ``target`` (an address, or a name on a dnset).

        None means not listed (NXDOMAIN). On a dnset every string is a name; elsewhere a
        string that is not an address raises :class:`TargetError`.
        """
        if self.names is not None:
            labels = parse_name(target if isinstance(target, str) else str(target))
            found = self.names.find(labels) if labels else None
            if found is None:
                return None
            return self.values.answer(found[0], name_text(found[1]))
        if isinstance(target, str):
            try:
                target = ipaddress.ip_address(target.strip())
            except ValueError:
                raise TargetError(f"{target!r} is not an IP address") from None
        value, version = int(target), target.version
        if version == 6 and self.reads_ip6_as_ip4:
            if value >> 112 == _6TO4_PREFIX:
                value, version = (value >> 80) & 0xFFFFFFFF, 4
            elif value >> 32 == _MAPPED_PREFIX:
                value, version = value & 0xFFFFFFFF, 4
            else:
                return None
        table = self.ip4 if version == 4 else self.ip6
        if table is None:
            return None
        found_id = table.find(value)
        if found_id is None:
            return None
        subject = ip4_text(value) if version == 4 else ip6_text(value)
        return self.values.answer(found_id, subject)

    def test_points(
        self, listed: str = "127.0.0.2", unlisted: str = "127.0.0.1"
    ) -> tuple[Answer | None, Answer | None]:
        """The answers for RFC 5782's test points: the first must be listed, the second not.

        For a dnset pass the zone's names (``"test"``, ``"invalid"``).
        """
        return self.lookup(listed), self.lookup(unlisted)

    def match_ranges(self, ranges: Iterable[Inventory | AddressRange]) -> RangeMatch:
        """The listed stretches of each inventory range, and per-range address counts.

        Works by interval intersection, so 16 /12s cost what the listings inside them cost,
        not 16.7 million lookups.
        """
        norm = tuple(r if isinstance(r, AddressRange) else address_range(r) for r in ranges)
        parts = []
        listed: list[int] = [0] * len(norm)
        for version in (4, 6):
            table = self.ip4 if version == 4 else self.ip6
            where = np.array(
                [i for i, r in enumerate(norm) if r.version == version], dtype=np.int64
            )
            if table is None or not len(where) or not len(table):
                continue
            hits = table.intersect(
                keys([norm[i].first for i in where], version),
                keys([norm[i].last for i in where], version),
            )
            for i, n in zip(where.tolist(), hits.listed.tolist(), strict=True):
                listed[i] = int(n)
            parts.append((where[hits.range_index], hits.first, hits.last, hits.answer_id))
        if parts:
            rng = np.concatenate([p[0] for p in parts])
            order = np.argsort(rng, kind="stable")
            mixed = len(parts) > 1
            first = _join([p[1] for p in parts], mixed)[order]
            last = _join([p[2] for p in parts], mixed)[order]
            ids = np.concatenate([p[3] for p in parts])[order]
            rng = rng[order]
        else:
            rng = ids = np.empty(0, dtype=np.int64)
            first = last = np.empty(0, dtype=np.uint64)
        covered = [r.size for r in norm]
        return RangeMatch(norm, covered, listed, rng, first, last, ids, self.values)


def _join(arrays: Sequence[npt.NDArray[Any]], mixed: bool) -> npt.NDArray[Any]:
    if not mixed:
        return np.concatenate(arrays)
    return np.concatenate([a.astype(object) for a in arrays])
