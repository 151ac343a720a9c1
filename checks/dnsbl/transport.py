"""Bulk UDP stub resolver for blocklist sweeps.

A sweep asks tens of thousands of short questions (``d.c.b.a.zone A``) of one
or two nameservers. :class:`BulkResolver` sends them from a few non-blocking
UDP sockets with up to ``concurrency`` in flight, matches every response by
socket, 16-bit id, source address *and* the echoed question, and parses only
what a blocklist check needs (checks/dnsbl/wire.py). It never raises for a question's failure: each
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

from checks.dnsbl.wire import (
    AAAA,
    CNAME,
    EMPTY_ANSWERS,
    LENGTH_OCTET,
    MALFORMED,
    NOERROR,
    NXDOMAIN,
    TIMEOUT,
    TXT,
    A,
    Answer,
    encode_name,
    parse_response,
    read_response,
)
from checks.resolver import Nameserver, system_nameservers

__all__ = [
    "AAAA",
    "CNAME",
    "MALFORMED",
    "NOERROR",
    "NXDOMAIN",
    "TIMEOUT",
    "TXT",
    "A",
    "Answer",
    "BulkResolver",
    "encode_name",
    "parse_response",
]

_SOCKETS_PER_SERVER = 2  # more source ports: harder to spoof, more receive buffer
_RCVBUF = 1 << 20
_QUEUED_LOW, _QUEUED_HIGH = 16.0, 48.0  # queries queued on the path: grow below, shrink above
_MAX_PACKET = 4096  # no EDNS0 is sent: answers are at most 512 octets (else TC)
_STRIKES = 3  # consecutive timeouts before new questions start at the next nameserver
_START_WINDOW = 32.0  # in flight at first: a full burst overflows the server's receive buffer
_MIN_WINDOW = 4.0


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
                wire = LENGTH_OCTET[len(first)] + first.lower().encode("ascii") + tail
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
        not_listed = EMPTY_ANSWERS[NXDOMAIN]

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
                        answer = read_response(data, question, qlens[i], qtypes[i])
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
            got = (
                read_response(data, question, qname_len, qtype) if data[:2] == packet[:2] else None
            )
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
