"""Reading rbldnsd datasets (ip4set, ip4tset, ip4trie, ip6trie, ip6tset, dnset) as rbldnsd does.

Lines are stripped of blanks and tabs; empty lines and lines starting with ``#`` or ``;``
are comments, except ``$...``, ``#$...``, ``;$...`` and ``:$...``, which are specials
($SOA, $NS, $TTL, $MAXRANGE4, $TIMESTAMP, ``$0``..``$9`` variables and the ``$=`` base
template). A line starting with ``:`` sets the default value for the following entries of
the same file (ip4tset and ip6tset: the first one in the dataset, for every entry). A line
rbldnsd cannot read is counted, quoted in the report and skipped — rbldnsd warns and goes
on, and so does this reader.

Where the types differ (see ``docs/mirror-formats.md``): an ip4set stores every entry split
into octet-aligned pieces (/32, /24, /16 and /8 keys) and answers from the most specific
*level* holding a key — all of that key's values, unless one of them is an exclusion; a
trie answers the longest *prefix* alone, and a repeated prefix keeps its first value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from checks.dnsbl.mirror.answers import BUILTIN_DEFAULT, EXCLUDED, Values
from checks.dnsbl.mirror.bulk import Plain, plain_entries, split_lines
from checks.dnsbl.mirror.names import NameSet, parse_name
from checks.dnsbl.mirror.ranges import IntervalTable, keys, paint, union_layer
from checks.dnsbl.mirror.specials import Specials
from checks.dnsbl.mirror.syntax import (
    COMMENT,
    SPACE,
    Value,
    ends_address,
    ip4_cidr,
    ip4_mask,
    ip4_prefix,
    ip4_range,
    ip6_cidr,
    ip6_prefix,
    parse_value,
    skip_space,
)

FORMATS = ("ip4set", "ip4tset", "ip4trie", "ip6trie", "ip6tset", "dnset")
_IP4 = frozenset({"ip4set", "ip4tset", "ip4trie"})
_TSETS = frozenset({"ip4tset", "ip6tset"})
#: rbldnsd reads lines through a 64 KiB buffer and cuts longer ones at half of it
_LONG_LINE = 32768
_MAX_PROBLEMS = 20


def ip4set_pieces(
    first: npt.NDArray[np.int64], last: npt.NDArray[np.int64]
) -> tuple[
    npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]
]:
    """How rbldnsd stores ip4set ranges: (entry row, level, first, last) of every piece.

    Level 0 holds /32 keys, 1 /24 keys, 2 /16 keys, 3 /8 keys; each piece is a run of
    consecutive keys of its level. A whole aligned /24 is one /24 key, a /25 is 128 /32 keys
    and a /12 sixteen /16 keys — which is why ``!10.0.0.0/24`` does not exclude anything
    listed by ``10.0.0.0/25``: the /32 level is asked first. At most 7 pieces an entry.
    """
    a, b = first.astype(np.int64), last.astype(np.int64)
    row = np.arange(len(a), dtype=np.int64)
    active = np.ones(len(a), dtype=bool)
    out: list[tuple[npt.NDArray[np.int64], ...]] = []

    def emit(
        which: npt.NDArray[np.bool_],
        level: int,
        lo: npt.NDArray[np.int64],
        hi: npt.NDArray[np.int64],
    ) -> None:
        out.append(
            (row[which], np.full(int(which.sum()), level, dtype=np.int64), lo[which], hi[which])
        )

    for bits in (0, 8, 16):
        level = bits >> 3
        # a and b count keys of this level: the rest of the range fits one key above
        done = active & ((a | 255) >= b)
        whole = done & (b - a == 255)
        emit(whole, level + 1, a << bits, ((b + 1) << bits) - 1)
        emit(done & ~whole & (b >= a), level, a << bits, ((b + 1) << bits) - 1)
        active &= ~done
        head = active & ((a & 255) != 0)
        emit(head, level, a << bits, (((a | 255) + 1) << bits) - 1)
        tail = active & ((b & 255) != 255)
        emit(tail, level, (b & ~255) << bits, ((b + 1) << bits) - 1)
        a = np.where(active, np.where(head, (a >> 8) + 1, a >> 8), a)
        b = np.where(active, np.where(tail, (b >> 8) - 1, b >> 8), b)
    emit(active & (b >= a), 3, a << 24, ((b + 1) << 24) - 1)
    r, lv, lo, hi = (np.concatenate([o[k] for o in out]) for k in range(4))
    return r, lv, lo, hi


class DatasetReader:
    """The state rbldnsd keeps while it reads one dataset, file after file."""

    def __init__(self, fmt: str, accept_in_cidr: bool = False) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"not an rbldnsd dataset type: {fmt!r}")
        self.fmt = fmt
        self.accept_in_cidr = accept_in_cidr
        self.values = Values()
        self._builtin = self.values.value(BUILTIN_DEFAULT)
        self.default, self.default_id = BUILTIN_DEFAULT, self._builtin
        self.tset_default: Value | None = None
        #: $MAXRANGE4, $TIMESTAMP, the TXT variables: what the special lines set
        self.specials = Specials(self.values)
        self.lines = self.entries = self.exclusions = self.malformed = self.duplicates = 0
        self.problems: list[str] = []
        # entries as (first, last, answer id, CIDR length, file-order sequence): rows read
        # line by line, column arrays read in bulk
        self._rows: list[tuple[int, int, int, int, int]] = []
        self._bulk: list[tuple[npt.NDArray[Any], ...]] = []
        self._plain: dict[tuple[str, ...], list[int]] = {}
        self._wild: dict[tuple[str, ...], list[int]] = {}
        self._file = ""
        self._seq0 = 0

    # -- reading ---------------------------------------------------------------------------

    def read(self, data: bytes, name: str) -> None:
        """Read one file of the dataset (rbldnsd resets the default value per file)."""
        self._file = name
        self.default, self.default_id = BUILTIN_DEFAULT, self._builtin
        lines = split_lines(data)
        slow = np.ones(len(lines), dtype=bool)
        plain = None
        if self.fmt in _IP4:
            plain = plain_entries(data, lines)
            if self.fmt == "ip4trie":
                plain = plain.take(~plain.is_range)  # refused: the line reader says so
            elif self.fmt == "ip4tset":
                # whole addresses only: rbldnsd refuses "!a", "a-b" and even "a/32" here
                plain = plain.take(~plain.negated & ~plain.is_range & ~plain.is_cidr)
            slow[plain.lines] = False
        # the default value and $MAXRANGE4 in force from a line on, for the bulk entries
        defaults, maxranges = [(-1, self.default_id)], [(-1, self.specials.maxrange4)]
        handler = getattr(self, "_" + self.fmt)
        todo = np.flatnonzero(slow)
        for i, s, e in zip(
            todo.tolist(), lines.starts[todo].tolist(), lines.ends[todo].tolist(), strict=True
        ):
            if e - s > _LONG_LINE:
                self._warn(i, "long line (cut)")
                e = s + _LONG_LINE
            line = data[s:e].decode("latin-1").strip(SPACE)
            if not line:
                continue
            c = line[0]
            if c == "$" or (c in "#;:" and line[1:2] == "$"):
                self._special(line[1:] if c == "$" else line[2:], i)
                if self.specials.maxrange4 != maxranges[-1][1]:
                    maxranges.append((i, self.specials.maxrange4))
                continue
            if c in COMMENT:
                continue
            handler(line, i)
            if self.default_id != defaults[-1][1]:
                defaults.append((i, self.default_id))
        if plain is not None and len(plain):
            self._take_plain(plain, defaults, maxranges)
        self.lines += len(lines)
        self._seq0 += len(lines)

    def _take_plain(
        self, plain: Plain, defaults: list[tuple[int, int]], maxranges: list[tuple[int, int]]
    ) -> None:
        """Keep the bulk entries, each with the default and $MAXRANGE4 of its line."""
        at = np.searchsorted(np.array([d[0] for d in defaults]), plain.lines, side="right") - 1
        ids = np.where(plain.negated, EXCLUDED, np.array([d[1] for d in defaults])[at])
        at = np.searchsorted(np.array([m[0] for m in maxranges]), plain.lines, side="right") - 1
        limit = np.array([m[1] for m in maxranges], dtype=np.int64)[at]
        del at
        too_big = (limit > 0) & (limit <= plain.last - plain.first)
        for i in plain.lines[too_big][:_MAX_PROBLEMS].tolist():
            self._warn(i, "range over $MAXRANGE4")
        self.malformed += int(too_big.sum())
        if too_big.any():
            plain, ids = plain.take(~too_big), ids[~too_big]
        self.entries += len(plain)
        self.exclusions += int(plain.negated.sum())
        self._bulk.append(
            (plain.first, plain.last, ids.astype(np.int32), plain.bits, plain.lines + self._seq0)
        )

    def _warn(self, i: int, why: str) -> None:
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(f"{self._file}:{i + 1}: {why}")

    def _bad(self, i: int, why: str) -> None:
        self.malformed += 1
        self._warn(i, why)

    def _add(self, first: int, last: int, answer: int, bits: int, i: int) -> None:
        self._rows.append((first, last, answer, bits, self._seq0 + i))

    def _default_line(self, line: str, i: int) -> None:
        v = parse_value(line, 0, BUILTIN_DEFAULT)
        if v is None:
            self._bad(i, "invalid default value")
            return
        self.default, self.default_id = v, self.values.value(v)

    def _tset_default(self, line: str, i: int) -> None:
        if self.tset_default is None:
            v = parse_value(line, 0, BUILTIN_DEFAULT)
            if v is None:
                self._bad(i, "invalid default value")
            self.tset_default = v

    def _value(self, line: str, pos: int, i: int) -> int | None:
        """The answer id of an entry's value (the default when none is written)."""
        pos = skip_space(line, pos)
        if pos >= len(line) or line[pos] in COMMENT:
            return self.default_id
        v = parse_value(line, pos, self.default)
        if v is None:
            self._bad(i, "invalid value")
            return None
        return self.values.value(v)

    def _negation(self, line: str) -> tuple[bool, int]:
        if line[0] == "!":
            return True, skip_space(line, 1)
        return False, 0

    def _ip4_entry(self, line: str, i: int, trie: bool) -> None:
        if line[0] == ":":
            self._default_line(line, i)
            return
        neg, pos = self._negation(line)
        got = ip4_cidr(line, pos) if trie else ip4_range(line, pos)
        if got is None or not ends_address(line, got[1]):
            self._bad(i, "invalid address")
            return
        (a, b, bits), pos = got
        if a & ~ip4_mask(bits) & 0xFFFFFFFF:
            if not self.accept_in_cidr:
                self._bad(i, "invalid range (non-zero host part)")
                return
            a &= ip4_mask(bits)
        if self.specials.maxrange4 and self.specials.maxrange4 <= b - a:
            self._bad(
                i, f"range of {b - a + 1} addresses over $MAXRANGE4 {self.specials.maxrange4}"
            )
            return
        answer = EXCLUDED if neg else self._value(line, pos, i)
        if answer is None:
            return
        self.entries += 1
        self.exclusions += neg
        self._add(a, b, answer, bits, i)

    def _ip4set(self, line: str, i: int) -> None:
        self._ip4_entry(line, i, trie=False)

    def _ip4trie(self, line: str, i: int) -> None:
        self._ip4_entry(line, i, trie=True)

    def _ip4tset(self, line: str, i: int) -> None:
        if line[0] == ":":
            self._tset_default(line, i)
            return
        p = ip4_prefix(line, 0)
        if p is None or p.bits != 32 or not ends_address(line, p.end):
            self._bad(i, "invalid address (ip4tset takes whole addresses only)")
            return
        self.entries += 1
        self._add(p.value, p.value, self._builtin, 32, i)  # every entry answers the default

    def _ip6trie(self, line: str, i: int) -> None:
        if line[0] == ":" and line[1:2] != ":":
            self._default_line(line, i)
            return
        neg, pos = self._negation(line)
        value, bits, end = ip6_cidr(line, pos)
        if bits < 0 or not ends_address(line, end):
            self._bad(i, "invalid address")
            return
        host = value & ((1 << (128 - bits)) - 1)
        if host:
            if not self.accept_in_cidr:
                self._bad(i, "invalid range (non-zero host part)")
                return
            value -= host
        answer = EXCLUDED if neg else self._value(line, end, i)
        if answer is None:
            return
        self.entries += 1
        self.exclusions += neg
        self._add(value, value | ((1 << (128 - bits)) - 1), answer, bits, i)

    def _ip6tset(self, line: str, i: int) -> None:
        if line[0] == ":":
            self._tset_default(line, i)
            return
        neg, pos = self._negation(line)
        value, bits, end = ip6_prefix(line, pos)
        if bits < 0 or not ends_address(line, end):
            self._bad(i, "invalid address")
            return
        if bits != (128 if neg else 64):
            self._bad(i, "ip6tset wants /64 entries (4 groups) and /128 exclusions")
            return
        self.entries += 1
        self.exclusions += neg
        if neg:  # a /128 exclusion outranks the /64 around it
            self._add(value, value, EXCLUDED, 128, i)
        else:
            self._add(value, value | ((1 << 64) - 1), self._builtin, 64, i)

    def _dnset(self, line: str, i: int) -> None:
        if line[0] == ":":
            self._default_line(line, i)
            return
        neg, pos = self._negation(line)
        wild, plain = False, True
        if line.startswith(".", pos):
            wild, pos = True, pos + 1
        elif line.startswith("*.", pos):
            wild, plain, pos = True, False, pos + 2
        end = pos
        while end < len(line) and line[end] not in SPACE:
            end += 1
        labels = parse_name(line[pos:end])
        if not labels:
            self._bad(i, "invalid domain name")
            return
        answer = EXCLUDED if neg else self._value(line, end, i)
        if answer is None:
            return
        self.entries += 1
        self.exclusions += neg
        if plain:
            self._plain.setdefault(labels, []).append(answer)
        if wild:
            self._wild.setdefault(labels, []).append(answer)

    # -- specials ----------------------------------------------------------------------------

    @property
    def timestamp(self) -> float | None:
        return self.specials.timestamp

    @property
    def expires(self) -> float | None:
        return self.specials.expires

    def _special(self, body: str, i: int) -> None:
        ok, warning = self.specials.read(body)
        if warning:
            self._warn(i, warning)
        if not ok:
            word = body.split(None, 1)[0] if body.strip() else ""
            self._bad(i, f"invalid or unrecognized special entry ${word}")

    # -- the result ------------------------------------------------------------------------

    def _columns(self, version: int) -> tuple[npt.NDArray[Any], ...]:
        """All entries as columns (first, last, answer id, CIDR length, sequence)."""
        parts: list[tuple[npt.NDArray[Any], ...]]
        if version == 4:
            rows = np.array(self._rows, dtype=np.int64).reshape(-1, 5)
            parts = [
                (
                    rows[:, 0].astype(np.uint32),
                    rows[:, 1].astype(np.uint32),
                    rows[:, 2].astype(np.int32),
                    rows[:, 3].astype(np.int16),
                    rows[:, 4],
                )
            ]
        else:
            cols: list[Sequence[int]] = [[r[k] for r in self._rows] for k in range(5)]
            parts = [
                (
                    keys(cols[0], 6),
                    keys(cols[1], 6),
                    np.array(cols[2], dtype=np.int32),
                    np.array(cols[3], dtype=np.int16),
                    np.array(cols[4], dtype=np.int64),
                )
            ]
        parts += self._bulk
        self._rows, self._bulk = [], []
        return tuple(np.concatenate([p[k] for p in parts]) for k in range(5))

    def tables(self) -> tuple[IntervalTable | None, IntervalTable | None, NameSet | None]:
        """The listed space, every overlap resolved: (IPv4 table, IPv6 table, names)."""
        group = self.values.group
        if self.fmt == "dnset":
            return None, None, NameSet.build(self._plain, self._wild, group)
        version = 4 if self.fmt in _IP4 else 6
        first, last, ids, bits, seq = self._columns(version)
        if self.fmt in _TSETS:
            ids[ids != EXCLUDED] = self.values.value(self.tset_default or BUILTIN_DEFAULT)
        if self.fmt == "ip4set":
            # ranked by octet level: the /32 level (rank 3) is asked first, the /8 level last;
            # single addresses (most entries) are /32 keys as they are: split the rest
            span = first != last
            row, level, lo, hi = ip4set_pieces(
                first[span].astype(np.int64), last[span].astype(np.int64)
            )
            single = ~span
            first = np.concatenate((first[single], lo.astype(np.uint32)))
            last = np.concatenate((last[single], hi.astype(np.uint32)))
            ids = np.concatenate((ids[single], ids[span][row]))
            rank = np.concatenate(
                (np.full(int(single.sum()), 3, dtype=np.int16), (3 - level).astype(np.int16))
            )
            del span, single, row, level, lo, hi
        else:
            # tries: the longest prefix wins; tsets: the /128 exclusions beat the /64s
            rank = bits
        del bits
        if self.fmt in ("ip4trie", "ip6trie"):
            # a repeated prefix keeps its first value (rbldnsd: "duplicated entry")
            order = np.lexsort((seq, first, rank))
            r, f = rank[order], first[order]
            keep = np.concatenate(([True], (r[1:] != r[:-1]) | (f[1:] != f[:-1])))
            self.duplicates += int((~keep).sum())
            order = order[keep]
            del r, f, keep
        else:
            order = np.argsort(rank)
        del seq
        first, last, ids, rank = first[order], last[order], ids[order], rank[order]
        del order
        # the entries are now grouped by rank (lowest first): one layer per rank
        ranks = np.flatnonzero(np.bincount(rank))
        cuts = np.searchsorted(rank, ranks).tolist() + [len(rank)]
        layers = [
            union_layer(first[a:b], last[a:b], ids[a:b], group)
            for a, b in zip(cuts[:-1], cuts[1:], strict=True)
        ]
        del first, last, ids, rank
        table = IntervalTable(paint(layers, version), version)
        return (table, None, None) if version == 4 else (None, table, None)
