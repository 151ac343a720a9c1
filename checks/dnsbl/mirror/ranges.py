"""Listed address space as sorted disjoint intervals, and matching inventory ranges against it.

A dataset's entries overlap (a /8 with a /32 exception inside, the same key listed twice,
a longer trie prefix inside a shorter one). Everything rbldnsd decides at query time is
decided here once, at load time, in two steps:

* :func:`union_layer` — entries of equal rank (one ip4set octet level, one trie prefix
  length) that cover the same address all answer; an exclusion among them wins;
* :func:`paint` — ranks stacked in increasing priority: the highest rank covering an address
  decides it (longest prefix, most specific ip4set level); :data:`EXCLUDED` means "stop
  here: not listed".

The result, an :class:`IntervalTable`, holds three arrays: interval starts and inclusive
ends, and an int32 answer id each. IPv4 keys are numpy uint32 (the cut points between
intervals, which reach 2**32, are uint64 while building); IPv6 keys are Python ints in
object arrays, which numpy sorts and searches the same way — IPv6 lists are small. Lookups
and range matches are ``np.searchsorted`` over starts and ends: never a walk over addresses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from checks.dnsbl.mirror.answers import EXCLUDED

Keys = npt.NDArray[Any]  # uint32 (IPv4) or object arrays of int (IPv6)
Ids = npt.NDArray[np.int32]
Group = Callable[[Sequence[int]], int]
_UNCOVERED = -2


def keys(values: Sequence[int] | npt.NDArray[Any], version: int) -> Keys:
    """An array of addresses for ``version`` (4: uint32, 6: Python ints)."""
    if version == 4:
        return np.asarray(values, dtype=np.uint32)
    out = np.empty(len(values), dtype=object)
    out[:] = [int(v) for v in values]
    return out


def _wide(k: Keys) -> Keys:
    """Keys in a type that also holds the cut after the last address (uint64 for IPv4)."""
    return k.astype(np.uint64) if k.dtype != object else k


def _after(k: Keys) -> Keys:
    """``k + 1`` without wrapping at 2**32 (uint64 for IPv4 keys)."""
    return k.astype(np.uint64) + np.uint64(1) if k.dtype != object else k + 1


def _before(cuts: Keys, like: Keys) -> Keys:
    """``cuts - 1`` back in the key type of ``like``."""
    if like.dtype == object:
        return cuts - 1
    return (cuts - np.uint64(1)).astype(like.dtype)


def _distinct(k: Keys) -> Keys:
    """The distinct keys, sorted (np.unique's hashing path is many times slower here)."""
    s = np.sort(k)
    if len(s) < 2:
        return s
    return s[np.concatenate(([True], s[1:] != s[:-1]))]


@dataclass(frozen=True, slots=True)
class Layer:
    """Sorted intervals ``[starts[i], ends[i]]`` with answer ids (or :data:`EXCLUDED`)."""

    starts: Keys
    ends: Keys
    ids: Ids

    def __len__(self) -> int:
        return len(self.starts)

    @classmethod
    def empty(cls, version: int) -> Layer:
        return cls(keys([], version), keys([], version), np.empty(0, dtype=np.int32))

    def take(self, which: npt.NDArray[Any]) -> Layer:
        return Layer(self.starts[which], self.ends[which], self.ids[which])


def merge_adjacent(layer: Layer) -> Layer:
    """The same layer with touching intervals of equal id joined (fewer, longer intervals)."""
    n = len(layer)
    if n < 2:
        return layer
    s, e, ids = layer.starts, layer.ends, layer.ids
    # e[:-1] + 1 cannot wrap: an interval follows each of them
    joins = (s[1:] == e[:-1] + (1 if s.dtype == object else np.uint32(1))) & (ids[1:] == ids[:-1])
    if not joins.any():
        return layer
    first = np.flatnonzero(np.concatenate(([True], ~joins)))
    last = np.concatenate((first[1:] - 1, [n - 1]))
    return Layer(s[first], e[last], ids[first])


def _union_overlapping(s: Keys, e: Keys, v: Ids, group: Group) -> Layer:
    """:func:`union_layer` for rows (sorted by start) that overlap: cut at every bound."""
    cuts = _distinct(np.concatenate((_wide(s), _after(e))))
    first = np.searchsorted(cuts, _wide(s))
    counts = np.searchsorted(cuts, _after(e)) - first
    total = int(counts.sum())
    row = np.repeat(np.arange(len(s)), counts)
    seg = first[row] + (np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts))
    # distinct (segment, id) pairs with ids ascending inside a segment, so that an
    # EXCLUDED (-1) comes first: one int64 sort key instead of a two-key sort
    width = int(v.max()) + 2
    key = _distinct(seg * width + (v[row].astype(np.int64) + 1))
    seg, val = key // width, key % width - 1
    heads = np.flatnonzero(np.concatenate(([True], seg[1:] != seg[:-1])))
    sizes = np.diff(np.append(heads, len(seg)))
    out = val[heads].astype(np.int32)
    for k in np.flatnonzero((sizes > 1) & (out != EXCLUDED)).tolist():
        h = heads[k]
        out[k] = group(val[h : h + sizes[k]].tolist())
    useg = seg[heads]
    starts = cuts[useg] if s.dtype == object else cuts[useg].astype(s.dtype)
    return Layer(starts, _before(cuts[useg + 1], s), out)


def union_layer(starts: Keys, ends: Keys, ids: Ids, group: Group) -> Layer:
    """Disjoint intervals of entries of equal rank; where several cover an address, all answer.

    An address covered by an exclusion and by listings of the same rank is excluded (rbldnsd
    sorts an ip4set key's exclusion first and stops there). Several distinct values become
    one answer id through ``group`` (called with the sorted, distinct ids).
    """
    ids = ids.astype(np.int32, copy=False)
    if len(starts) < 2:
        return Layer(starts, ends, ids)
    # any order among equal starts will do: overlapping rows are resolved below
    order = np.argsort(starts)
    layer = Layer(starts[order], ends[order], ids[order])
    del order, starts, ends, ids
    # a row overlaps the rows before it when it starts inside their reach
    reach = np.maximum.accumulate(layer.ends)
    overlaps = np.concatenate(([False], layer.starts[1:] <= reach[:-1]))
    del reach
    if not overlaps.any():
        return merge_adjacent(layer)  # the common case: nothing to resolve
    # the first row of each overlapping run is tangled too
    tangled = overlaps | np.concatenate((overlaps[1:], [False]))
    knot = layer.take(tangled)
    knot = _union_overlapping(knot.starts, knot.ends, knot.ids, group)
    plain = layer.take(~tangled)
    del layer, tangled
    at = np.searchsorted(plain.starts, knot.starts)
    merged = Layer(
        *(
            np.insert(p, at, k)
            for p, k in (
                (plain.starts, knot.starts),
                (plain.ends, knot.ends),
                (plain.ids, knot.ids),
            )
        )
    )
    return merge_adjacent(merged)


def paint(layers: Sequence[Layer], version: int) -> Layer:
    """Stack ``layers`` (lowest priority first): each address takes the top covering id.

    Addresses whose top id is :data:`EXCLUDED`, or that no layer covers, are left out.
    """
    live = [layer for layer in layers if len(layer)]
    if not live:
        return Layer.empty(version)
    if len(live) == 1:
        top = live[0]
    else:
        like = live[0].starts
        cuts = _distinct(
            np.concatenate([_wide(L.starts) for L in live] + [_after(L.ends) for L in live])
        )
        n = len(cuts) - 1  # elementary segments [cuts[i], cuts[i + 1])
        val = np.full(n, _UNCOVERED, dtype=np.int32)
        for layer in live:
            # every bound of the layer is one of the cuts: mark where its intervals open and
            # close, and a running sum says which segments they cover (no per-segment search)
            opens = np.searchsorted(cuts, _wide(layer.starts))
            closes = np.searchsorted(cuts, _after(layer.ends))
            depth = np.zeros(n + 1, dtype=np.int8)
            depth[opens] += 1  # distinct within a layer: its intervals are disjoint
            depth[closes] -= 1
            covered = np.cumsum(depth[:-1], dtype=np.int8) > 0
            del depth, closes
            which = np.zeros(n, dtype=np.int32)
            which[opens] = np.arange(len(opens), dtype=np.int32)
            np.maximum.accumulate(which, out=which)  # the interval opened last so far
            val[covered] = layer.ids[which[covered]]
            del covered, which, opens
        keep = np.flatnonzero(val >= 0)
        starts = cuts[keep] if version == 6 else cuts[keep].astype(like.dtype)
        top = Layer(starts, _before(cuts[keep + 1], like), val[keep])
        return merge_adjacent(top)
    return merge_adjacent(top.take(top.ids >= 0))


@dataclass(frozen=True, slots=True)
class Hits:
    """Listed sub-intervals of query ranges: ``range_index`` says which query each is in."""

    range_index: npt.NDArray[np.int64]
    first: Keys
    last: Keys
    answer_id: npt.NDArray[np.int64]
    #: per query range: how many of its addresses are listed
    listed: npt.NDArray[Any]


class IntervalTable:
    """The listed space of one address family: disjoint sorted intervals with answer ids."""

    __slots__ = ("version", "starts", "ends", "ids")

    def __init__(self, layer: Layer, version: int) -> None:
        self.version = version
        self.starts: Keys = layer.starts
        self.ends: Keys = layer.ends
        self.ids: Ids = layer.ids.astype(np.int32, copy=False)

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def nbytes(self) -> int:
        return int(self.starts.nbytes + self.ends.nbytes + self.ids.nbytes)

    def addresses(self) -> int:
        """How many addresses are listed."""
        if self.version == 4:
            return int((self.ends.astype(np.int64) - self.starts.astype(np.int64) + 1).sum())
        return sum((int(e) - int(s) + 1 for s, e in zip(self.starts, self.ends, strict=True)), 0)

    def find(self, address: int) -> int | None:
        """The answer id listing ``address`` (an int of this family), or None."""
        key = np.uint32(address) if self.version == 4 else address
        i = int(np.searchsorted(self.starts, key, side="right")) - 1
        if i < 0 or address > int(self.ends[i]):
            return None
        return int(self.ids[i])

    def intersect(self, firsts: Keys, lasts: Keys) -> Hits:
        """The listed parts of each query range ``[firsts[i], lasts[i]]``.

        Ranges may overlap each other; each is answered on its own. The work grows with the
        number of listed intervals met, never with the number of addresses in the ranges.
        """
        n = len(firsts)
        lo = np.searchsorted(self.ends, firsts, side="left")  # first interval ending in range
        hi = np.searchsorted(self.starts, lasts, side="right")  # past the last one starting
        counts = np.maximum(hi - lo, 0)
        total = int(counts.sum())
        rng = np.repeat(np.arange(n, dtype=np.int64), counts)
        k = lo[rng] + (np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts))
        first = np.maximum(self.starts[k], firsts[rng])
        last = np.minimum(self.ends[k], lasts[rng])
        ids = self.ids[k].astype(np.int64)
        listed: npt.NDArray[Any]
        if self.version == 4:
            sizes = last.astype(np.int64) - first.astype(np.int64) + 1
            # float64 sums are exact here: an IPv4 count is far below 2**53
            listed = np.bincount(rng, weights=sizes, minlength=n).astype(np.int64)
            first, last = first.astype(np.uint64), last.astype(np.uint64)
        else:
            listed = np.zeros(n, dtype=object)
            for r, f, la in zip(rng.tolist(), first, last, strict=True):
                listed[r] += int(la) - int(f) + 1
        return Hits(rng, first, last, ids, listed)
