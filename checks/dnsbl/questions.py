"""A call's questions in wire form, each with the zone it is asked of.

:func:`encode_questions` turns ``(name, qtype)`` pairs into question sections
(name, type, class), once per distinct question, and puts each under a zone:
the longest of the caller's zones the name falls under, else the zone behind a
reversed IPv4 or IPv6 address, else one shared group. The bulk resolver keeps a
window and a dead-or-alive state per zone (checks/dnsbl/transport.py).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

from checks.dnsbl.wire import LENGTH_OCTET, encode_name

_HEX = frozenset("0123456789abcdef")


def encode_questions(
    questions: Sequence[tuple[str, int]], zones: Iterable[str] | None = None
) -> tuple[list[bytes], list[int], list[str], list[int]]:
    """(distinct question sections, the index of each question among them, zone names, the
    zone index of each distinct question). ValueError for a question that cannot be asked."""
    explicit = sorted(
        {z.lower().strip(".") for z in zones or () if z.strip(".")}, key=len, reverse=True
    )
    # keyed by the question section (name, type, class): bytes, which the garbage
    # collector does not track, unlike a tuple per question
    unique: dict[bytes, int] = {}
    order = []
    zone_of: list[int] = []  # zone index of each distinct question
    zone_names: list[str] = []
    zone_index: dict[str, int] = {}
    # a sweep asks many names under the same few parents: their wire form and zone
    parents: dict[str, tuple[bytes, int]] = {}
    suffixes: dict[int, bytes] = {}
    for name, qtype in questions:
        if not isinstance(name, str) or not isinstance(qtype, int) or not 0 < qtype < 65536:
            raise ValueError(f"bad question {(name, qtype)!r}")
        first, _, parent = name.partition(".")
        entry = parents.get(parent)
        if entry is None or not 0 < len(first) < 64 or not first.isascii():
            wire = encode_name(name)
            if entry is None:
                zone = zone_of_parent(parent, explicit)
                zi = zone_index.get(zone, -1)
                if zi < 0:
                    zi = zone_index[zone] = len(zone_names)
                    zone_names.append(zone)
                if wire != b"\x00":
                    parents[parent] = (wire[wire[0] + 1 :], zi)
            else:
                zi = entry[1]
        else:
            wire = LENGTH_OCTET[len(first)] + first.lower().encode("ascii") + entry[0]
            if len(wire) > 255:
                raise ValueError(f"{name!r}: longer than 255 octets")
            zi = entry[1]
        suffix = suffixes.get(qtype)
        if suffix is None:
            suffix = suffixes[qtype] = struct.pack(">HH", qtype, 1)
        index = unique.setdefault(wire + suffix, len(unique))
        if index == len(zone_of):
            zone_of.append(zi)
        order.append(index)
    return list(unique), order, zone_names, zone_of


def zone_of_parent(parent: str, explicit: Sequence[str]) -> str:
    """The zone a name with this parent (the name minus its first label) is asked of.

    The longest of ``explicit`` the name falls under; else, for a reversed IPv4
    address (4 numeric labels) or IPv6 address (32 nibbles), what follows it;
    else "" (one shared group).
    """
    p = parent.lower().rstrip(".")
    for zone in explicit:
        if p == zone or p.endswith("." + zone):
            return zone
    labels = p.split(".")
    if len(labels) > 3 and all(lbl.isdigit() and len(lbl) <= 3 for lbl in labels[:3]):
        return ".".join(labels[3:])
    if len(labels) > 31 and all(len(lbl) == 1 and lbl in _HEX for lbl in labels[:31]):
        return ".".join(labels[31:])
    return ""
