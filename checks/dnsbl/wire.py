"""The DNS wire format, as much as a blocklist check needs: query names and answers.

:func:`encode_name` gives a question's name in wire form; :func:`parse_response` reads an
answer packet — rcode, TC, and the A / AAAA / TXT records owned by the question's name (or a
CNAME chain inside the same answer) — and refuses anything it cannot read safely (compression
loops, pointers out of range, truncated records) as a ``malformed answer``.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from checks.errors import ParseError

A = 1
CNAME = 5
TXT = 16
AAAA = 28

NOERROR = 0
NXDOMAIN = 3
_RCODE_NAMES = {1: "FORMERR", 2: "SERVFAIL", 4: "NOTIMP", 5: "REFUSED"}
_RR = struct.Struct(">HHIH")  # type, class, ttl, rdlength
_POINTER_RR = struct.Struct(">HHHIH")  # the same after a 2-octet compression pointer


@dataclass(frozen=True, slots=True)
class Answer:
    """What one question got.

    ``error`` is None when the server answered NOERROR or NXDOMAIN (then
    ``addresses`` / ``texts`` hold the answer, possibly empty); otherwise it is
    ``"timeout"``, ``"SERVFAIL"``, ``"REFUSED"``, ``"FORMERR"``, ``"NOTIMP"``,
    ``"rcode N"``, ``"malformed answer"``, ``"network error: ..."``,
    ``"zone not answering (N timeouts)"``, ``"resolver HOST:PORT not answering"``,
    ``"truncated answer and TCP not answering"`` or ``"truncated answer and TCP
    failed: ..."``; the answer must then be treated as unknown, never as "not
    listed". ``rcode`` is None when no usable response arrived.
    """

    rcode: int | None
    addresses: tuple[str, ...] = ()
    texts: tuple[str, ...] = ()
    error: str | None = None


TIMEOUT = Answer(None, error="timeout")
MALFORMED = Answer(None, error="malformed answer")
EMPTY_ANSWERS = {NOERROR: Answer(NOERROR), NXDOMAIN: Answer(NXDOMAIN)}


#: Answers to A questions by the octets of their answer section (TTL included)
_SHARED_ANSWERS: dict[bytes, Answer] = {}


class _Malformed(ParseError):
    """A response that cannot be read safely."""


def encode_name(name: str) -> bytes:
    """The lower-cased wire form of ``name`` taken as absolute; ValueError if it cannot be one."""
    text = name.lower()
    if text.endswith("."):
        text = text[:-1]
    if not text:
        return b"\x00"
    try:
        labels = text.encode("ascii").split(b".")
    except UnicodeEncodeError:
        raise ValueError(f"{name!r}: not ASCII (encode it as IDNA first)") from None
    try:
        wire = b"".join([LENGTH_OCTET[len(label)] + label for label in labels]) + b"\x00"
    except IndexError:
        raise ValueError(f"{name!r}: a label is longer than 63 octets") from None
    if b"" in labels:
        raise ValueError(f"{name!r}: empty label")
    if len(wire) > 255:
        raise ValueError(f"{name!r}: longer than 255 octets")
    return wire


LENGTH_OCTET = [bytes((i,)) for i in range(64)]


def _read_name(data: bytes, offset: int) -> tuple[bytes, int]:
    """The uncompressed, lower-cased wire name at ``offset`` and the offset just after it.

    Each compression pointer must point before the labels read so far, so a
    loop or a forward pointer cannot occur: those raise :class:`_Malformed`.
    """
    out = bytearray()
    after = -1
    floor = offset  # every pointer must go strictly below this
    n = len(data)
    while True:
        if offset >= n:
            raise _Malformed("name runs past the packet")
        length = data[offset]
        if length == 0:
            offset += 1
            break
        if length >= 0xC0:
            if offset + 1 >= n:
                raise _Malformed("truncated pointer")
            target = ((length & 0x3F) << 8) | data[offset + 1]
            if target >= floor:
                raise _Malformed("compression loop or forward pointer")
            if after < 0:
                after = offset + 2
            offset = floor = target
            continue
        if length >= 0x40:
            raise _Malformed("unknown label type")
        if offset + 1 + length > n:
            raise _Malformed("label runs past the packet")
        out += data[offset : offset + 1 + length]
        offset += 1 + length
        if len(out) > 254:
            raise _Malformed("name longer than 255 octets")
    out.append(0)
    return bytes(out).lower(), (after if after >= 0 else offset)


def _rcode_error(rcode: int) -> str:
    return _RCODE_NAMES.get(rcode, f"rcode {rcode}")


def _records(data: bytes, offset: int, qname: bytes, qtype: int) -> Answer:
    """Read the answer section from ``offset`` (just past the question); :class:`_Malformed`."""
    rcode = data[3] & 0x0F
    count = (data[6] << 8) | data[7]
    if not count:
        return EMPTY_ANSWERS[rcode]
    n = len(data)
    if qtype == A:
        # the blocklist answer: A records owned by a pointer to the question name; a
        # zone gives the same few answers over and over, so their Answers are shared
        at = offset + 16 * count
        key = data[offset:at]
        known = _SHARED_ANSWERS.get(key)
        if known is not None and known.rcode == rcode and len(key) == 16 * count:
            return known
        fast = []
        at = offset
        for _ in range(count):
            if at + 16 > n:
                break
            owner, rtype, rclass, _ttl, rdlen = _POINTER_RR.unpack_from(data, at)
            if owner != 0xC00C or rtype != A or rclass != 1 or rdlen != 4:
                break
            fast.append(socket.inet_ntoa(data[at + 12 : at + 16]))
            at += 16
        else:
            if len(_SHARED_ANSWERS) >= 4096:
                _SHARED_ANSWERS.clear()
            answer = _SHARED_ANSWERS[key] = Answer(rcode, tuple(fast))
            return answer
    rrs: list[tuple[bytes, int, int, int]] = []
    for _ in range(count):
        # the usual owner is a pointer to the question name at offset 12
        if offset + 1 < n and data[offset] == 0xC0 and data[offset + 1] == 12:
            owner = qname
            offset += 2
        else:
            owner, offset = _read_name(data, offset)
        if offset + 10 > n:
            raise _Malformed("record header runs past the packet")
        rtype, rclass, _ttl, rdlen = _RR.unpack_from(data, offset)
        offset += 10
        end = offset + rdlen
        if end > n:
            raise _Malformed("rdata runs past the packet")
        if rclass == 1:
            rrs.append((owner, rtype, offset, end))
        offset = end
    owners = {qname}
    if qtype != CNAME:
        # follow a CNAME chain inside this answer, whatever order its records come in
        grew = True
        while grew:
            grew = False
            for owner, rtype, start, end in rrs:
                if rtype == CNAME and owner in owners:
                    target, stop = _read_name(data, start)
                    if stop != end:
                        raise _Malformed("CNAME rdata length")
                    if target not in owners:
                        owners.add(target)
                        grew = True
    addresses: list[str] = []
    texts: list[str] = []
    for owner, rtype, start, end in rrs:
        if rtype != qtype or owner not in owners:
            continue
        if rtype == A:
            if end - start != 4:
                raise _Malformed("A rdata is not 4 octets")
            addresses.append(socket.inet_ntoa(data[start:end]))
        elif rtype == AAAA:
            if end - start != 16:
                raise _Malformed("AAAA rdata is not 16 octets")
            addresses.append(socket.inet_ntop(socket.AF_INET6, data[start:end]))
        elif rtype == TXT:
            texts.append(_txt(data, start, end))
    return Answer(rcode, tuple(addresses), tuple(texts))


def _txt(data: bytes, start: int, end: int) -> str:
    parts = []
    while start < end:
        length = data[start]
        if start + 1 + length > end:
            raise _Malformed("TXT string runs past its rdata")
        parts.append(data[start + 1 : start + 1 + length])
        start += 1 + length
    return b"".join(parts).decode("utf-8", "backslashreplace")


def parse_response(packet: bytes, qname: bytes, qtype: int) -> Answer | None:
    """Read ``packet`` as the response to (``qname`` wire form, ``qtype``).

    Returns None when it is not a response to that question (a spoofed or
    stale packet the resolver ignores); ``MALFORMED`` when it cannot be read
    safely; an Answer with ``error="truncated"`` when the TC flag is set
    (the resolver re-asks over TCP); otherwise the answer. The 16-bit id is
    the caller's to check.
    """
    question = qname + struct.pack(">HH", qtype, 1)
    return read_response(packet, question, len(qname), qtype)


def read_truncated(data: bytes, question: bytes, qname_len: int, qtype: int) -> Answer | None:
    """The A records of a truncated (TC=1) response, when they can be used as they are; or None.

    Call it only for a packet :func:`read_response` took as a truncated answer
    to ``question``. RFC 2181 section 9 lets a truncated response carry a
    partial RRset and tells clients to ignore it and ask again over TCP, which
    the resolver does first. When TCP gives no answer, a NOERROR response to an
    A question whose answer section is intact (every counted record present and
    readable) and holds at least one A record of the question is a listing:
    truncation only ever leaves records out, it cannot add one. Anything else —
    an empty answer section (what rate-limiting "slip" responses look like),
    NXDOMAIN, other types — gives None: a truncated answer never says "not
    listed".
    """
    if qtype != A or data[3] & 0x0F != NOERROR or ((data[4] << 8) | data[5]) != 1:
        return None
    try:
        got = _records(data, 12 + len(question), question[:qname_len], A)
    except (_Malformed, IndexError, struct.error):
        return None
    return got if got.addresses else None


def read_response(data: bytes, question: bytes, qname_len: int, qtype: int) -> Answer | None:
    if len(data) < 12 or data[2] & 0xF8 != 0x80:  # QR=1, opcode QUERY
        return None
    rcode = data[3] & 0x0F
    qdcount = (data[4] << 8) | data[5]
    end = 12 + len(question)
    if qdcount == 1 and data[12:end] == question:
        pass
    elif qdcount == 1 and (
        data[12 : 12 + qname_len].lower() == question[:qname_len]
        and data[12 + qname_len : end] == question[qname_len:]
    ):
        pass  # the server changed the case of the name
    elif qdcount == 0 and rcode not in EMPTY_ANSWERS:
        # some servers drop the question from FORMERR/NOTIMP/REFUSED; such a
        # packet can only make the answer unknown, never a listing or a clean one
        return Answer(rcode, error=_rcode_error(rcode))
    else:
        return None
    if data[2] & 0x02:
        return Answer(rcode, error="truncated")
    if rcode not in EMPTY_ANSWERS:
        return Answer(rcode, error=_rcode_error(rcode))
    try:
        return _records(data, end, question[:qname_len], qtype)
    except (_Malformed, IndexError, struct.error):
        return MALFORMED
