"""rbldnsd's data-file syntax: IPv4/IPv6 prefixes, ranges and CIDRs, and ``:A:TXT`` values.

Every parser here accepts exactly what rbldnsd (the 2021 snapshot Debian ships) accepts and
answers what it would store, so that a line means the same to repmon as to the server
answering the zone. The behaviours that surprise people, all checked against the real
daemon in ``tests/checks/test_mirror_rbldnsd.py``:

* a bare number (``10``) is not an address: rbldnsd wants ``10/8`` (``10.20`` is a /16,
  ``10.20.30`` a /24);
* in a prefix range the end is completed with all-ones (``10.20-10.21`` ends at
  10.21.255.255), and a one-octet end is a suffix of the start (``10.20.0-31`` =
  10.20.0.0-10.20.31.255); ends of a different length (``127-127.0.0``) are refused;
* a CIDR whose address has host bits set (``1.2.3.4/24``) is refused unless rbldnsd runs
  with ``-e`` (``accept_in_cidr``);
* ``:5`` in a value means 127.0.0.5; ``:1.2`` follows inet_aton and means 1.0.0.2;
* text is Latin-1 here: rbldnsd works on bytes, so every length below is a byte count.
"""

from __future__ import annotations

import re
from typing import NamedTuple

SPACE = " \t"
COMMENT = "#;"
#: rbldnsd keeps at most this many bytes of a TXT template (and answers at most 254)
TXT_MAX = 255
LOOPBACK_NET = 0x7F000000

_IP4_PREFIX = re.compile(r"([0-9]+)(?:\.([0-9]+))?(?:\.([0-9]+))?(?:\.([0-9]+))?")
_DIGITS = re.compile(r"[0-9]+")


class Prefix4(NamedTuple):
    value: int  # the address, octets given left-aligned (``10.20`` -> 10.20.0.0)
    bits: int  # 8, 16, 24 or 32: how many octets were written
    end: int  # index in the text just after the prefix


class Span(NamedTuple):
    first: int
    last: int
    bits: int  # the CIDR length, or 32 for an explicit range


def ip4_prefix(text: str, pos: int = 0) -> Prefix4 | None:
    """1 to 4 dotted decimal octets at ``pos`` (each at most 255), or None."""
    m = _IP4_PREFIX.match(text, pos)
    if m is None:
        return None
    o1, o2, o3, o4 = m.groups()
    if o4 is not None:  # a whole address, by far the most common case
        a, b, c, d = int(o1), int(o2), int(o3), int(o4)
        if a > 255 or b > 255 or c > 255 or d > 255:
            return None
        return Prefix4((a << 24) | (b << 16) | (c << 8) | d, 32, m.end())
    value = 0
    bits = 0
    for shift, octet in zip((24, 16, 8, 0), m.groups(), strict=True):
        if octet is None:
            break
        n = int(octet)
        if n > 255:
            return None
        value |= n << shift
        bits += 8
    return Prefix4(value, bits, m.end())


def _mask_bits(text: str, pos: int, limit: int) -> tuple[int, int] | None:
    """The decimal prefix length after a ``/`` (at most ``limit``) and where it ends."""
    m = _DIGITS.match(text, pos)
    if m is None:
        return None
    bits = int(m.group())
    if bits > limit:
        return None
    return bits, m.end()


def ip4_mask(bits: int) -> int:
    return (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF


def ip4_range(text: str, pos: int = 0) -> tuple[Span, int] | None:
    """An ip4set address: prefix, CIDR or ``a-b`` range, and where it ends; or None.

    ``first`` may have host bits set (the caller decides, as rbldnsd's ``-e`` does).
    """
    p = ip4_prefix(text, pos)
    if p is None:
        return None
    a, bits, end = p
    if text.startswith("-", end):
        q = ip4_prefix(text, end + 1)
        if q is None:
            return None
        b, bbits, end = q
        if bbits == 8:
            # a one-octet end replaces the start's last written octet: 127.0.0.1-2
            b = (b >> (bits - 8)) | (a & ip4_mask(bits - 8))
            bbits = bits
        elif bbits != bits:
            return None
        b |= ~ip4_mask(bbits) & 0xFFFFFFFF
        if a > b:
            return None
        return Span(a, b, 32), end
    if text.startswith("/", end):
        mb = _mask_bits(text, end + 1, 32)
        if mb is None:
            return None
        bits, end = mb
    elif bits == 8:
        return None  # a bare number: rbldnsd wants 10/8
    return Span(a, a | (~ip4_mask(bits) & 0xFFFFFFFF), bits), end


def ip4_cidr(text: str, pos: int = 0) -> tuple[Span, int] | None:
    """An ip4trie address: a prefix or CIDR (no ranges, no bare number); or None."""
    p = ip4_prefix(text, pos)
    if p is None:
        return None
    a, bits, end = p
    if text.startswith("/", end):
        mb = _mask_bits(text, end + 1, 32)
        if mb is None:
            return None
        bits, end = mb
    elif bits == 8:
        return None
    return Span(a, a | (~ip4_mask(bits) & 0xFFFFFFFF), bits), end


def ip4_a_value(text: str, pos: int) -> tuple[int, int] | None:
    """An A value as rbldnsd reads it (inet_aton style: ``1.2`` is 1.0.0.2); 0 is refused."""
    p = ip4_prefix(text, pos)
    if p is None:
        return None
    a, bits, end = p
    if bits == 8:
        a >>= 24
    elif bits == 16:
        a = (a & 0xFF000000) | ((a >> 16) & 255)
    elif bits == 24:
        a = (a & 0xFFFF0000) | ((a >> 8) & 255)
    if a == 0:
        return None
    if bits == 8:
        a |= LOOPBACK_NET  # only the last octet of 127.0.0.x was given
    return a, end


def ip4_text(a: int) -> str:
    return f"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}"


_HEX = frozenset("0123456789abcdefABCDEF")


def ip6_prefix(text: str, pos: int = 0) -> tuple[int, int, int]:
    """rbldnsd's IPv6 prefix: (value, bits, end); bits < 0 when refused.

    Without ``::`` the length is 16 bits a group written (``2001:db8`` = 2001:db8::/32);
    with ``::`` it is 128. Parsing stops at the first character that cannot continue the
    address, which the caller then judges as the rest of the line, as rbldnsd does.
    """
    groups: list[int] = []
    zstart = -1
    bits = -1
    n = len(text)
    if text.startswith("::", pos):
        zstart = 0
        pos += 2
    while True:
        v = 0
        start = pos
        while pos < n and text[pos] in _HEX:
            v = (v << 4) | int(text[pos], 16)
            if v > 0xFFFF:
                break
            pos += 1
        if pos == start or v > 0xFFFF:
            break
        groups.append(v)
        if pos >= n or text[pos] != ":" or len(groups) >= 8:
            bits = len(groups) * 16
            break
        pos += 1
        if zstart < 0 and pos < n and text[pos] == ":":
            zstart = len(groups)
            pos += 1
    if zstart >= 0:
        if len(groups) >= 8:
            return 0, -1, pos  # no room left for the zeros of "::"
        groups = groups[:zstart] + [0] * (8 - len(groups)) + groups[zstart:]
        bits = 128
    value = 0
    for g in groups[:8]:
        value = (value << 16) | g
    value <<= 16 * (8 - min(len(groups), 8))
    return value, bits, pos


def ip6_cidr(text: str, pos: int = 0) -> tuple[int, int, int]:
    """An ip6trie address: (value, bits, end); bits < 0 when refused (a bare group too)."""
    value, bits, end = ip6_prefix(text, pos)
    if bits >= 0 and text.startswith("/", end):
        mb = _mask_bits(text, end + 1, 128)
        if mb is None:
            return value, -1, end
        return value, mb[0], mb[1]
    if bits == 16:
        return value, -1, end
    return value, bits, end


def ip6_text(value: int) -> str:
    """An IPv6 address as rbldnsd prints it in TXT: the longest zero run (of 2+) as ``::``.

    Unlike Python's ipaddress it never prints a dotted IPv4 tail (``::ffff:102:304``).
    """
    words = [(value >> (112 - 16 * i)) & 0xFFFF for i in range(8)]
    best_at, best_len = 0, 0
    i = 0
    while i < 8:
        if words[i] == 0:
            j = i
            while j < 8 and words[j] == 0:
                j += 1
            if j - i > 1 and j - i > best_len:
                best_at, best_len = i, j - i
            i = j
        else:
            i += 1
    if not best_len:
        return ":".join(f"{w:x}" for w in words)
    head = ":".join(f"{w:x}" for w in words[:best_at])
    tail = ":".join(f"{w:x}" for w in words[best_at + best_len :])
    return f"{head}::{tail}"


def ends_address(text: str, pos: int) -> bool:
    """Whether an address may end at ``pos``: end of line, blank, comment or a ``:`` value."""
    return pos >= len(text) or text[pos] in " \t#;:"


def skip_space(text: str, pos: int) -> int:
    n = len(text)
    while pos < n and text[pos] in SPACE:
        pos += 1
    return pos


class Value(NamedTuple):
    """One entry's A value (an int) and TXT template."""

    a: int
    txt: str


def parse_value(text: str, pos: int, default: Value) -> Value | None:
    """The ``:A:TXT`` / ``:A`` / ``TXT`` value at ``pos``, or None (rbldnsd skips the entry).

    ``:A`` alone keeps ``default``'s TXT; ``:A:`` means no TXT; text without a leading
    colon keeps ``default``'s A. The TXT is cut to 255 bytes, as rbldnsd does.
    """
    if text.startswith(":", pos):
        got = ip4_a_value(text, pos + 1)
        if got is None:
            return None
        a, pos = got
        pos = skip_space(text, pos)
        if text.startswith(":", pos):
            txt = text[skip_space(text, pos + 1) :]
        elif pos < len(text):
            return None  # something after the A value that is not ":TXT"
        else:
            txt = default.txt
    else:
        a, txt = default.a, text[pos:]
    return Value(a, txt[:TXT_MAX])
