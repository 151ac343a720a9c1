"""Reading the plain lines of a big IPv4 dataset in bulk, with numpy.

Big IPv4 mirrors are mostly lines holding one address, range or CIDR and nothing else
(``192.0.2.7``, ``!192.0.2.8``, ``192.0.2.0-192.0.2.99``, ``198.51.100.0/24``). Reading them
one by one in Python would take most of a load, so they are found and decoded over the
whole file at once — one pass per character column, never a Python step per line. Only
lines whose meaning is beyond doubt are taken: full dotted quads (octets at most 255,
leading zeros read as decimal, as rbldnsd does), a range whose end is not below its start,
a CIDR without host bits. Every other line — values, short forms, comments, specials, and
anything invalid, so that it is reported — goes to the line-by-line reader, which follows
rbldnsd's grammar to the letter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

_NL, _DOT, _DASH, _SLASH, _BANG, _ZERO = 10, 46, 45, 47, 33, 48
_CHUNK = 1 << 19  # lines decoded per pass, to bound the temporary arrays
_QUAD = (7, 15)  # the shortest and longest dotted quad
#: (shortest, longest) line per pass of the general decoder: short lines need fewer columns
_PASSES = ((8, 16), (17, 32))

Ints = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Lines:
    """Where each line of a file starts and ends (the newline excluded)."""

    starts: Ints
    ends: Ints

    def __len__(self) -> int:
        return len(self.starts)


def split_lines(data: bytes) -> Lines:
    """The lines of ``data``; a final line without newline counts, an empty tail does not."""
    buf = np.frombuffer(data, dtype=np.uint8)
    nl = np.flatnonzero(buf == _NL).astype(np.int64)
    starts = np.concatenate((np.zeros(1, dtype=np.int64), nl + 1))
    ends = np.concatenate((nl, np.array([len(buf)], dtype=np.int64)))
    if starts[-1] == len(buf):
        starts, ends = starts[:-1], ends[:-1]
    return Lines(starts, ends)


@dataclass(frozen=True, slots=True)
class Plain:
    """Entries read in bulk: their line numbers, exclusion flags and address spans."""

    lines: Ints
    negated: npt.NDArray[np.bool_]
    first: npt.NDArray[np.uint32]
    last: npt.NDArray[np.uint32]
    bits: npt.NDArray[np.int16]  # the CIDR length; 32 for single addresses and ranges
    is_range: npt.NDArray[np.bool_]  # written a-b
    is_cidr: npt.NDArray[np.bool_]  # written a/len (even /32)

    def __len__(self) -> int:
        return len(self.lines)

    def take(self, which: npt.NDArray[np.bool_] | Ints) -> Plain:
        """The entries selected by a mask or an index array."""
        return Plain(*(getattr(self, k)[which] for k in Plain.__slots__))


def _quads(
    buf: npt.NDArray[np.uint8], start: Ints, size: Ints
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[Any]]:
    """(is a bare dotted quad, its uint32 address) per line: the lean path for most lines."""
    n = len(start)
    last_byte = len(buf) - 1
    ok = np.ones(n, dtype=bool)
    dots = np.zeros(n, dtype=np.int8)
    digits = np.zeros(n, dtype=np.int8)
    number = np.zeros(n, dtype=np.int16)
    addr = np.zeros(n, dtype=np.uint32)
    at = start.copy()
    for col in range(_QUAD[1]):
        inside = size > col
        c = buf[at]
        np.add(at, 1, out=at)
        np.minimum(at, last_byte, out=at)
        d = c - np.uint8(_ZERO)  # wraps below "0": one comparison tells a digit
        digit = (d <= 9) & inside
        dot = (c == _DOT) & inside
        ok &= digit | dot | ~inside
        number = np.where(digit, number * 10 + d, number)
        np.minimum(number, 1000, out=number)  # anything over 255 is refused anyway
        digits += digit
        ok &= ~dot | ((digits > 0) & (number <= 255))
        addr = np.where(dot, (addr << 8) | number.astype(np.uint32), addr)
        dots += dot
        number[dot] = 0
        digits[dot] = 0
    ok &= (dots == 3) & (digits > 0) & (number <= 255)
    return ok, (addr << 8) | np.minimum(number, 255).astype(np.uint32)


def _decode(buf: npt.NDArray[np.uint8], start: Ints, size: Ints, width: int) -> Plain:
    """The ``[!]Q``, ``[!]Q-Q`` and ``[!]Q/len`` lines among these (full dotted quads only)."""
    n = len(start)
    last_byte = len(buf) - 1
    ok = np.ones(n, dtype=bool)
    neg = np.zeros(n, dtype=bool)
    part = np.zeros(n, dtype=np.int8)  # 0: first address, 1: range end, 2: prefix length
    octets = np.zeros(n, dtype=np.int8)  # octets closed in the current address
    digits = np.zeros(n, dtype=np.int8)
    number = np.zeros(n, dtype=np.int64)
    addr = np.zeros(n, dtype=np.int64)
    first = np.zeros(n, dtype=np.int64)
    for col in range(width):
        inside = col < size
        c = buf[np.minimum(start + col, last_byte)]
        digit = inside & (c >= _ZERO) & (c <= _ZERO + 9)
        dot = inside & (c == _DOT)
        dash = inside & (c == _DASH)
        slash = inside & (c == _SLASH)
        if col == 0:
            neg = c == _BANG  # every candidate line has a column 0
            ok &= digit | neg
        else:
            ok &= ~inside | digit | dot | dash | slash
        number = np.minimum(
            np.where(digit, number * 10 + (c.astype(np.int64) - _ZERO), number), 1000
        )  # capped: anything over 255 is refused anyway
        digits += digit
        ends_octet = dot | dash | slash
        ok &= ~ends_octet | ((digits > 0) & (number <= 255) & (part < 2))
        ok &= ~dot | (octets < 3)
        ok &= ~(dash | slash) | ((part == 0) & (octets == 3))
        addr = np.where(ends_octet, (addr << 8) | np.minimum(number, 255), addr)
        octets += ends_octet & ~(dash | slash)
        # "-" and "/" close the first address
        first = np.where(dash | slash, addr, first)
        addr = np.where(dash | slash, 0, addr)
        octets = np.where(dash | slash, 0, octets)
        part = np.where(dash, 1, np.where(slash, 2, part)).astype(np.int8)
        number = np.where(ends_octet, 0, number)
        digits = np.where(ends_octet, 0, digits)
    ok &= digits > 0
    quad_end = part < 2
    ok &= ~quad_end | ((octets == 3) & (number <= 255))
    addr = np.where(quad_end, (addr << 8) | np.minimum(number, 255), addr)
    first = np.where(part == 0, addr, first)
    last = np.where(part == 1, addr, first)
    bits = np.where(part == 2, number, 32)
    ok &= bits <= 32
    host = (np.int64(1) << (32 - np.minimum(bits, 32))) - 1
    ok &= (first & host) == 0  # host bits set: the line reader reports it
    last = np.where(part == 2, first | host, last)
    ok &= first <= last
    return Plain(
        np.flatnonzero(ok),
        neg[ok],
        first[ok].astype(np.uint32),
        last[ok].astype(np.uint32),
        bits[ok].astype(np.int16),
        (part == 1)[ok],
        (part == 2)[ok],
    )


def plain_entries(data: bytes, lines: Lines) -> Plain:
    """Every line of ``data`` that is a bare ``[!]Q``, ``[!]Q-Q`` or ``[!]Q/len`` entry.

    The entries come grouped by line length, not in line order.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    length = lines.ends - lines.starts
    taken = np.zeros(len(lines), dtype=bool)
    found: list[Plain] = []
    rows = np.flatnonzero((length >= _QUAD[0]) & (length <= _QUAD[1]))
    for at in range(0, len(rows), _CHUNK):
        chunk = rows[at : at + _CHUNK]
        ok, addr = _quads(buf, lines.starts[chunk], length[chunk])
        chunk, addr = chunk[ok], addr[ok]
        taken[chunk] = True
        no = np.zeros(len(chunk), dtype=bool)
        found.append(Plain(chunk, no, addr, addr, np.full(len(chunk), 32, np.int16), no, no))
    for shortest, longest in _PASSES:
        rows = np.flatnonzero((length >= shortest) & (length <= longest) & ~taken)
        for at in range(0, len(rows), _CHUNK):
            chunk = rows[at : at + _CHUNK]
            got = _decode(buf, lines.starts[chunk], length[chunk], longest)
            found.append(
                Plain(
                    chunk[got.lines],
                    got.negated,
                    got.first,
                    got.last,
                    got.bits,
                    got.is_range,
                    got.is_cidr,
                )
            )
    if not found:
        no = np.zeros(0, dtype=bool)
        none = np.zeros(0, dtype=np.uint32)
        return Plain(np.zeros(0, np.int64), no, none, none, np.zeros(0, np.int16), no, no)
    return Plain(*(np.concatenate([getattr(f, k) for f in found]) for k in Plain.__slots__))
