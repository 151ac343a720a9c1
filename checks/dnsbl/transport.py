"""Bulk UDP stub resolver for blocklist sweeps.

A sweep asks tens of thousands of short questions (``d.c.b.a.zone A``) of one
or two nameservers. :class:`BulkResolver` sends them from a few non-blocking
UDP sockets with up to ``concurrency`` in flight, matches every response by
socket, 16-bit id, source address *and* the echoed question, and parses only
what a blocklist check needs. It never raises for a question's failure: each
question gets an :class:`Answer` whose ``error`` says why it is not usable.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import os
import select
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from checks.resolver import Nameserver, system_nameservers

A = 1
CNAME = 5
TXT = 16
AAAA = 28

NOERROR = 0
NXDOMAIN = 3
_RCODE_NAMES = {1: "FORMERR", 2: "SERVFAIL", 4: "NOTIMP", 5: "REFUSED"}
_RR = struct.Struct(">HHIH")  # type, class, ttl, rdlength
_POINTER_RR = struct.Struct(">HHHIH")  # the same after a 2-octet compression pointer
_SOCKETS_PER_SERVER = 2  # more source ports: harder to spoof, more receive buffer
_RCVBUF = 1 << 20
_MAX_PACKET = 4096  # no EDNS0 is sent: answers are at most 512 octets (else TC)
_STRIKES = 3  # consecutive timeouts before new questions start at the next nameserver
_START_WINDOW = 32.0  # in flight at first: a full burst overflows the server's receive buffer
_MIN_WINDOW = 4.0
_QUEUED_LOW, _QUEUED_HIGH = 16.0, 48.0  # queries queued on the path: grow below, shrink above


@dataclass(frozen=True, slots=True)
class Answer:
    """What one question got.

    ``error`` is None when the server answered NOERROR or NXDOMAIN (then
    ``addresses`` / ``texts`` hold the answer, possibly empty); otherwise it is
    ``"timeout"``, ``"SERVFAIL"``, ``"REFUSED"``, ``"FORMERR"``, ``"NOTIMP"``,
    ``"rcode N"``, ``"malformed answer"`` or ``"network error: ..."`` and the
    answer must be treated as unknown, never as "not listed". ``rcode`` is None
    when no usable response arrived.
    """

    rcode: int | None
    addresses: tuple[str, ...] = ()
    texts: tuple[str, ...] = ()
    error: str | None = None


TIMEOUT = Answer(None, error="timeout")
MALFORMED = Answer(None, error="malformed answer")
_EMPTY = {NOERROR: Answer(NOERROR), NXDOMAIN: Answer(NXDOMAIN)}


#: Answers to A questions by the octets of their answer section (TTL included)
_SHARED_ANSWERS: dict[bytes, Answer] = {}


class _Malformed(Exception):
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
        wire = b"".join([_LENGTH_OCTET[len(label)] + label for label in labels]) + b"\x00"
    except IndexError:
        raise ValueError(f"{name!r}: a label is longer than 63 octets") from None
    if b"" in labels:
        raise ValueError(f"{name!r}: empty label")
    if len(wire) > 255:
        raise ValueError(f"{name!r}: longer than 255 octets")
    return wire


_LENGTH_OCTET = [bytes((i,)) for i in range(64)]


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
        return _EMPTY[rcode]
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
    return _response(packet, question, len(qname), qtype)


def _response(data: bytes, question: bytes, qname_len: int, qtype: int) -> Answer | None:
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
    elif qdcount == 0 and rcode not in _EMPTY:
        # some servers drop the question from FORMERR/NOTIMP/REFUSED; such a
        # packet can only make the answer unknown, never a listing or a clean one
        return Answer(rcode, error=_rcode_error(rcode))
    else:
        return None
    if data[2] & 0x02:
        return Answer(rcode, error="truncated")
    if rcode not in _EMPTY:
        return Answer(rcode, error=_rcode_error(rcode))
    try:
        return _records(data, end, question[:qname_len], qtype)
    except (_Malformed, IndexError, struct.error):
        return MALFORMED


@dataclass(frozen=True, slots=True)
class _Server:
    family: int
    address: tuple[str, int]  # (host, port) to connect to


class _Random16:
    """Unpredictable 16-bit query ids, drawn from the OS in blocks (one syscall per 32k ids)."""

    def __init__(self) -> None:
        self._pool: list[int] = []

    def take(self) -> int:
        if not self._pool:
            raw = os.urandom(65536)
            self._pool = list(memoryview(raw).cast("H"))
        return self._pool.pop()


class _Window:
    """How many queries may be in flight: delay-based, as in TCP Vegas.

    The excess of the mean round-trip time over the least one seen, times the
    window, estimates how many queries wait in a queue somewhere (at the
    server, or as answers not yet read by this process). Few waiting: the
    window is too small for the path, so it grows (by half per round trip at
    first: a remote resolver needs hundreds in flight). Many waiting: they add
    only delay and, once the server's receive buffer overflows, losses that
    each cost a whole timeout, so it shrinks. A loss halves it, once per
    window of queries sent.
    """

    __slots__ = ("size", "ceiling", "floor", "base_rtt", "opening", "last_cut", "peak")

    def __init__(self, ceiling: int, now: float) -> None:
        self.ceiling = float(ceiling)
        self.floor = min(self.ceiling, _MIN_WINDOW)
        self.size = self.peak = min(self.ceiling, _START_WINDOW)
        self.base_rtt = 1e9
        self.opening = True
        self.last_cut = now

    def round_trip(self, mean_rtt: float) -> float:
        """The new size after a window's worth of answers took ``mean_rtt`` on average."""
        if mean_rtt <= 0:
            return self.size
        self.base_rtt = min(self.base_rtt, mean_rtt)
        queued = self.size * (1.0 - self.base_rtt / mean_rtt)
        if queued < _QUEUED_LOW:
            grown = self.size * 1.5 if self.opening else self.size + 2
            self.size = min(self.ceiling, grown)
        elif queued > _QUEUED_HIGH:
            self.size = max(self.floor, self.size - (queued - _QUEUED_HIGH) / 2)
            self.opening = False
        self.peak = max(self.peak, self.size)
        return self.size

    def loss(self, sent_at: float, now: float) -> float:
        """The new size after a query sent at ``sent_at`` went unanswered."""
        if sent_at > self.last_cut:
            self.size = max(self.floor, self.size / 2)
            self.opening = False
            self.last_cut = now
        return self.size


class BulkResolver:
    """Asks many (name, qtype) questions at once over UDP; see the module docstring.

    ``timeout`` is per attempt; a question without a response is re-sent with a
    new id up to ``retries`` times, rotating nameservers. SERVFAIL, REFUSED,
    FORMERR, NOTIMP and send errors move the question to the next nameserver
    that has not failed it; when all have, that error is the answer. A
    truncated response is re-asked over TCP. Instances are safe to share
    between threads (calls are serialised); call :meth:`close` when done.
    """

    def __init__(
        self,
        nameservers: Sequence[Nameserver],
        timeout: float = 2.0,
        retries: int = 2,
        concurrency: int = 500,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0, not {timeout!r}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, not {retries!r}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, not {concurrency!r}")
        chosen = list(nameservers) or system_nameservers()
        if not chosen:
            raise ValueError("no nameservers (and none in the system configuration)")
        self._servers = []
        for ns in chosen:
            if not isinstance(ns, Nameserver):
                raise TypeError(f"expected a Nameserver, not {ns!r}")
            ip = ipaddress.ip_address(ns.host)
            family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            self._servers.append(_Server(family, (str(ip), ns.port)))
        self.nameservers = tuple(chosen)
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.concurrency = int(concurrency)
        self._lock = threading.Lock()
        self._ids = _Random16()
        self._sockets: dict[int, list[socket.socket]] = {}  # by nameserver index
        self._preferred = 0
        #: the in-flight window at the end of the last call, and the largest one so far
        self.window = self.peak_window = 0.0
        self._strikes = 0
        self._closed = False
        #: counters since creation: "sent", "resent", "timeouts", "ignored", "tcp"
        self.stats = {"sent": 0, "resent": 0, "timeouts": 0, "ignored": 0, "tcp": 0}

    def close(self) -> None:
        """Close the sockets; later calls to :meth:`resolve` raise ValueError."""
        with self._lock:
            self._closed = True
            for socks in self._sockets.values():
                for s in socks:
                    s.close()
            self._sockets.clear()

    def __enter__(self) -> BulkResolver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def resolve_async(self, questions: Sequence[tuple[str, int]]) -> list[Answer]:
        """:meth:`resolve` in a worker thread, so an event loop keeps running."""
        return await asyncio.to_thread(self.resolve, questions)

    def resolve(self, questions: Sequence[tuple[str, int]]) -> list[Answer]:
        """One Answer per question, in input order; raises only for malformed questions."""
        # keyed by the question section (name, type, class): bytes, which the garbage
        # collector does not track, unlike a tuple per question
        unique: dict[bytes, int] = {}
        order = []
        parents: dict[str, bytes] = {}  # a sweep asks many names under the same few parents
        suffixes: dict[int, bytes] = {}
        for name, qtype in questions:
            if not isinstance(name, str) or not isinstance(qtype, int) or not 0 < qtype < 65536:
                raise ValueError(f"bad question {(name, qtype)!r}")
            first, _, parent = name.partition(".")
            tail = parents.get(parent)
            if tail is None or not 0 < len(first) < 64 or not first.isascii():
                wire = encode_name(name)
                if tail is None and wire != b"\x00":
                    parents[parent] = wire[wire[0] + 1 :]
            else:
                wire = _LENGTH_OCTET[len(first)] + first.lower().encode("ascii") + tail
                if len(wire) > 255:
                    raise ValueError(f"{name!r}: longer than 255 octets")
            suffix = suffixes.get(qtype)
            if suffix is None:
                suffix = suffixes[qtype] = struct.pack(">HH", qtype, 1)
            order.append(unique.setdefault(wire + suffix, len(unique)))
        with self._lock:
            if self._closed:
                raise ValueError("resolver is closed")
            answers = self._sweep(list(unique))
        return [answers[i] for i in order]

    def _connect(self, k: int) -> list[socket.socket] | str:
        """Connected sockets to nameserver ``k``, or why there are none.

        Connected UDP sockets let the kernel drop datagrams from any other
        source, report ICMP errors, and skip a route lookup per query.
        """
        socks = self._sockets.get(k)
        if socks is None:
            server = self._servers[k]
            socks = []
            try:
                for _ in range(_SOCKETS_PER_SERVER):
                    s = socket.socket(server.family, socket.SOCK_DGRAM)
                    socks.append(s)
                    s.setblocking(False)
                    # the default buffer works too, only with more retries under load
                    with contextlib.suppress(OSError):
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
                    s.connect(server.address)
            except OSError as e:
                for s in socks:
                    s.close()
                return f"network error: {e.strerror or e}"
            self._sockets[k] = socks
        for s in socks:  # forget late responses to an earlier call
            while True:
                try:
                    s.recv(_MAX_PACKET)
                except OSError:
                    break
        return socks

    def _open_sockets(self) -> tuple[list[socket.socket], list[list[int]], list[str]]:
        """All sockets, each nameserver's indices into them, and why one has none ("" if not)."""
        socks: list[socket.socket] = []
        groups: list[list[int]] = []
        unreachable: list[str] = []
        for k in range(len(self._servers)):
            connected = self._connect(k)
            if isinstance(connected, str):
                groups.append([])
                unreachable.append(connected)
                continue
            groups.append(list(range(len(socks), len(socks) + len(connected))))
            socks.extend(connected)
            unreachable.append("")
        return socks, groups, unreachable

    def _sweep(self, qsecs: list[bytes]) -> list[Answer]:
        """The send/receive loop: every question ends with an Answer (see :class:`Answer`).

        One function with local names on purpose: it runs once per packet, and
        attribute look-ups would cost a good part of the throughput.
        """
        n = len(qsecs)
        if not n:
            return []
        nservers = len(self._servers)
        socks, server_socks, unreachable = self._open_sockets()
        poller = select.poll()
        index_of_fd = {}
        for si, s in enumerate(socks):
            poller.register(s.fileno(), select.POLLIN)
            index_of_fd[s.fileno()] = si
        # header after the id: RD=1, one question; the question is echoed back by the server
        tails = [b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + q for q in qsecs]
        qlens = [len(q) - 4 for q in qsecs]
        qtypes = [(q[-4] << 8) | q[-3] for q in qsecs]

        results: list[Answer | None] = [None] * n
        server_of = [-1] * n  # nameserver of the current or next attempt; -1: not sent yet
        sent_at = [0.0] * n
        timeouts = [0] * n
        failed = [0] * n  # bit k: nameserver k gave an error answer or could not be reached
        inflight: dict[int, int] = {}  # socket index << 16 | id -> question
        inflight_get = inflight.get
        retry: deque[int] = deque()  # questions to send again, before fresh ones
        fresh = 0  # the next question never sent
        truncated: list[tuple[int, int]] = []
        remaining = n
        preferred, strikes = self._preferred, self._strikes
        take_id = self._ids.take
        monotonic = time.monotonic
        timeout, retries = self.timeout, self.retries
        window = _Window(self.concurrency, monotonic())
        limit = window.size
        rtt_sum, rtt_count = 0.0, 0
        sent = resent = expired = ignored = 0
        scan_every = min(0.05, timeout / 4)
        next_scan = monotonic() + scan_every
        not_listed = _EMPTY[NXDOMAIN]

        def next_server(i: int, after: int) -> int:
            """The next nameserver after ``after`` that has not failed question i; -1: none."""
            mask = failed[i]
            for step in range(1, nservers + 1):
                k = (after + step) % nservers
                if not mask >> k & 1:
                    return k
            return -1

        def send(i: int, now: float) -> int:
            """1: sent; 0: socket buffer full, try later; -1: no nameserver reachable."""
            nonlocal sent
            k = server_of[i]
            if k < 0:
                k = server_of[i] = preferred
            while True:
                group = server_socks[k]
                if group:
                    while True:
                        qid = take_id()
                        si = group[qid % len(group)]
                        key = (si << 16) | qid
                        if key not in inflight:
                            break
                    try:
                        socks[si].send(qid.to_bytes(2, "big") + tails[i])
                    except (BlockingIOError, InterruptedError):
                        return 0
                    except OSError as e:
                        if e.errno == errno.ENOBUFS:
                            return 0
                        why = f"network error: {e.strerror or e}"
                    else:
                        inflight[key] = i
                        sent_at[i] = now
                        sent += 1
                        return 1
                else:
                    why = unreachable[k]
                failed[i] |= 1 << k
                k = next_server(i, k)
                if k < 0:
                    results[i] = Answer(None, error=why)
                    return -1
                server_of[i] = k

        while remaining:
            blocked = False
            while len(inflight) < limit:
                if retry:
                    i = retry.popleft()
                elif fresh < n:
                    i = fresh
                    fresh += 1
                else:
                    break
                state = send(i, monotonic())
                if state == 0:
                    retry.appendleft(i)
                    blocked = True
                    break
                if state < 0:
                    remaining -= 1
            now = monotonic()
            if now >= next_scan:
                next_scan = now + scan_every
                cutoff = now - timeout
                for key, i in [(key, i) for key, i in inflight.items() if sent_at[i] <= cutoff]:
                    del inflight[key]
                    expired += 1
                    limit = window.loss(sent_at[i], now)
                    timeouts[i] += 1
                    k = server_of[i]
                    if k == preferred and nservers > 1:
                        strikes += 1
                        if strikes >= _STRIKES:  # new questions start at the next nameserver
                            preferred, strikes = (preferred + 1) % nservers, 0
                    if timeouts[i] > retries:
                        results[i] = TIMEOUT
                        remaining -= 1
                    else:
                        resent += 1
                        server_of[i] = next_server(i, k)
                        retry.append(i)
                if not remaining:
                    break
            wait = 1 if blocked else int((next_scan - now) * 1000) + 1
            for fd, _event in poller.poll(wait):
                si = index_of_fd[fd]
                base = si << 16
                recv = socks[si].recv
                while True:
                    try:
                        data = recv(_MAX_PACKET)
                    except BlockingIOError:
                        break
                    except ConnectionRefusedError:
                        continue  # ICMP port unreachable for some earlier query: reported once
                    except OSError:
                        break
                    if len(data) < 12:
                        ignored += 1
                        continue
                    key = base | (data[0] << 8) | data[1]
                    i = inflight_get(key, -1)
                    if i < 0:
                        ignored += 1
                        continue
                    question = qsecs[i]
                    answer: Answer | None
                    if (
                        data[3] & 0x0F == NXDOMAIN
                        and data[2] & 0xFA == 0x80  # a response to a query, not truncated
                        and data[4:8] == b"\x00\x01\x00\x00"  # one question, no answers
                        and data[12 : 12 + len(question)] == question
                    ):
                        answer = not_listed  # the common case, checked inline for speed
                    else:
                        answer = _response(data, question, qlens[i], qtypes[i])
                        if answer is None:
                            ignored += 1  # spoofed or stale: the real answer may still come
                            continue
                    del inflight[key]
                    now = monotonic()
                    rtt_sum += now - sent_at[i]
                    rtt_count += 1
                    k = server_of[i]
                    if k == preferred:
                        strikes = 0
                    error = answer.error
                    if error is None:
                        results[i] = answer
                        remaining -= 1
                    elif error == "truncated":
                        truncated.append((i, k))
                        remaining -= 1
                    else:
                        failed[i] |= 1 << k
                        k = next_server(i, k)
                        if k < 0:
                            results[i] = answer
                            remaining -= 1
                        else:
                            resent += 1
                            server_of[i] = k
                            retry.append(i)
                    # keep the pipeline full while draining
                    if len(inflight) < limit:
                        if retry:
                            i = retry.popleft()
                        elif fresh < n:
                            i = fresh
                            fresh += 1
                        else:
                            continue
                        state = send(i, now)
                        if state == 0:
                            retry.appendleft(i)
                        elif state < 0:
                            remaining -= 1
            if rtt_count >= limit:
                limit = window.round_trip(rtt_sum / rtt_count)
                rtt_sum, rtt_count = 0.0, 0
        self.window, self.peak_window = window.size, max(self.peak_window, window.peak)
        self._preferred, self._strikes = preferred, strikes
        for i, k in truncated:
            results[i] = self._ask_tcp(tails[i], qsecs[i], qlens[i], qtypes[i], k)
        stats = self.stats
        stats["sent"] += sent
        stats["resent"] += resent
        stats["timeouts"] += expired
        stats["ignored"] += ignored
        stats["tcp"] += len(truncated)
        return [r if r is not None else TIMEOUT for r in results]

    def _ask_tcp(self, tail: bytes, question: bytes, qname_len: int, qtype: int, k: int) -> Answer:
        """Re-ask a truncated question over TCP, starting at nameserver ``k``."""
        answer = TIMEOUT
        for attempt in range(self.retries + 1):
            server = self._servers[(k + attempt) % len(self._servers)]
            qid = self._ids.take()
            packet = qid.to_bytes(2, "big") + tail
            try:
                with socket.create_connection(server.address, timeout=self.timeout) as s:
                    s.sendall(len(packet).to_bytes(2, "big") + packet)
                    size = int.from_bytes(_read_exactly(s, 2), "big")
                    data = _read_exactly(s, size)
            except TimeoutError:
                answer = TIMEOUT
                continue
            except OSError as e:
                answer = Answer(None, error=f"network error: {e.strerror or e}")
                continue
            got = _response(data, question, qname_len, qtype) if data[:2] == packet[:2] else None
            if got is None or got.error == "truncated":
                answer = MALFORMED
                continue
            answer = got
            if got.error is None:
                break
        return answer


def _read_exactly(s: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = s.recv(size - len(data))
        if not chunk:
            raise ConnectionError(errno.ECONNRESET, "connection closed mid-answer")
        data += chunk
    return data
