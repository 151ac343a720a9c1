"""Bulk UDP stub resolver for blocklist sweeps.

A sweep asks tens of thousands of short questions (``d.c.b.a.zone A``) of one
or two nameservers. :class:`BulkResolver` sends them from a few non-blocking
UDP sockets, each zone with its own in-flight window (checks/dnsbl/window.py),
matches every response by socket, 16-bit id, source address *and* the echoed
question, and parses only what a blocklist check needs (checks/dnsbl/wire.py).
A zone or a nameserver that stops answering is noticed and its remaining
questions end at once; truncated answers go over TCP (checks/dnsbl/tcp.py). It
never raises for a question's failure: each question gets an :class:`Answer`
whose ``error`` says why it is not usable. See docs/dnsbl-engine.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import os
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from math import ceil

from checks.dnsbl.questions import encode_questions
from checks.dnsbl.tcp import TcpQuestion, ask_over_tcp
from checks.dnsbl.window import START_WINDOW, Silence, Window
from checks.dnsbl.wire import (
    AAAA,
    CNAME,
    EMPTY_ANSWERS,
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
    read_truncated,
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
    "Progress",
    "encode_name",
    "parse_response",
]

#: ``on_progress(done, total)``: distinct questions finished so far, of all distinct questions
Progress = Callable[[int, int], None]

_SOCKETS_PER_SERVER = 2  # more source ports: harder to spoof, more receive buffer
_RCVBUF = 1 << 20
_MAX_PACKET = 4096  # no EDNS0 is sent: answers are at most 512 octets (else TC)
_STRIKES = 3  # silent timeouts in a row before new questions start at the next nameserver


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


class BulkResolver:
    """Asks many (name, qtype) questions at once over UDP; see the module docstring.

    ``timeout`` is per attempt; a question without a response is re-sent with a
    new id up to ``retries`` times, rotating nameservers. SERVFAIL, REFUSED,
    FORMERR, NOTIMP and send errors move the question to the next nameserver
    that has not failed it; when all have, that error is the answer. A
    truncated response is re-asked over TCP. ``on_progress(done, total)``, if
    given, is called from the resolving thread while a call runs (see
    :meth:`resolve`). Instances are safe to share between threads (calls are
    serialised); call :meth:`close` when done.
    """

    def __init__(
        self,
        nameservers: Sequence[Nameserver],
        timeout: float = 2.0,
        retries: int = 2,
        concurrency: int = 500,
        on_progress: Progress | None = None,
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
        #: called as ``on_progress(done, total)`` during each call; see :meth:`resolve`
        self.on_progress = on_progress
        self._lock = threading.Lock()
        self._ids = _Random16()
        self._sockets: dict[int, list[socket.socket]] = {}  # by nameserver index
        self._preferred = 0
        #: zones found dead, with the answer their questions get; probed first in later calls
        self._dead: dict[str, Answer] = {}
        #: nameservers whose TCP accepted but never answered; probed once in later calls
        self._tcp_hung: set[int] = set()
        #: the in-flight window (all zones) at the end of the last call, and the largest so far
        self.window = self.peak_window = 0.0
        self._closed = False
        #: counters since creation: "sent", "resent", "timeouts", "ignored", "tcp", and
        #: "failed_fast" (questions ended by a dead zone or resolver without their own timeouts)
        self.stats = {
            "sent": 0,
            "resent": 0,
            "timeouts": 0,
            "ignored": 0,
            "tcp": 0,
            "failed_fast": 0,
        }

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

    async def resolve_async(
        self,
        questions: Sequence[tuple[str, int]],
        zones: Iterable[str] | None = None,
        on_progress: Progress | None = None,
    ) -> list[Answer]:
        """:meth:`resolve` in a worker thread, so an event loop keeps running."""
        return await asyncio.to_thread(self.resolve, questions, zones, on_progress)

    def resolve(
        self,
        questions: Sequence[tuple[str, int]],
        zones: Iterable[str] | None = None,
        on_progress: Progress | None = None,
    ) -> list[Answer]:
        """One Answer per question, in input order; raises only for malformed questions.

        ``zones`` names the zones the questions are asked of: each zone gets its
        own in-flight window and is declared dead on its own. A name is put under
        the longest of them it ends with; without them (or for other names) a
        reversed IPv4 or IPv6 address is stripped off the front to find the zone,
        and anything else shares one group. ``on_progress`` (default: the
        ``on_progress`` attribute) is called with ``(done, total)`` distinct
        questions about every 50 ms while something changed, and once with
        ``(total, total)`` at the end, from the thread running this call with
        the resolver's lock held: it must be quick and must not use this
        resolver. An exception it raises ends the call.
        """
        qsecs, order, zone_names, zone_of = encode_questions(questions, zones)
        with self._lock:
            if self._closed:
                raise ValueError("resolver is closed")
            progress = on_progress if on_progress is not None else self.on_progress
            answers = self._sweep(qsecs, zone_names, zone_of, progress)
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

    def _sweep(
        self,
        qsecs: list[bytes],
        zone_names: list[str],
        zone_of: list[int],
        on_progress: Progress | None,
    ) -> list[Answer]:
        """The send/receive loop: every question ends with an Answer (see :class:`Answer`).

        One function with local names on purpose: it runs once per packet, and
        attribute look-ups would cost a good part of the throughput.
        """
        n = len(qsecs)
        if not n:
            return []
        nservers = len(self._servers)
        socks, server_socks, unreachable = self._open_sockets()
        ns_of_sock = [0] * len(socks)
        for k, group in enumerate(server_socks):
            for si in group:
                ns_of_sock[si] = k
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
        truncated: list[TcpQuestion] = []
        truncated_at: list[int] = []
        remaining = n
        preferred = self._preferred
        take_id = self._ids.take
        monotonic = time.monotonic
        timeout, retries, cap = self.timeout, self.retries, self.concurrency
        dead_after = timeout * max(1, retries)  # silence that makes a zone or resolver dead
        probe_every = timeout
        now = monotonic()

        # per zone: questions not sent yet (retries in front), window, what was heard
        nz = len(zone_names)
        if nz == 1:
            pending = [deque(range(n))]
        else:
            pending = [deque() for _ in range(nz)]
            appends = [d.append for d in pending]
            for i, z in enumerate(zone_of):
                appends[z](i)
        windows = [Window(cap, now, START_WINDOW / nz) for _ in range(nz)]
        # a zone may have zlimit[z] in flight: its window rounded up (int compares are cheaper)
        zlimit = [ceil(w.size) for w in windows]
        zin = [0] * nz  # in flight
        zrtt = [0.0] * nz  # round-trip times summed since the window last moved
        zcount = [0] * nz
        zheard = [0.0] * nz  # when the zone last answered anything
        zsilence = [Silence() for _ in range(nz)]
        zdead: list[Answer | None] = [self._dead.get(name) for name in zone_names]
        zdead_at = [now] * nz  # when it was found dead (carried over: when this call began)
        zprobe = [-1] * nz  # the probe question in flight for a dead zone
        znext_probe = [0.0] * nz  # carried-over dead zones are probed at once
        share = 1.0 / nz
        nheard = [0.0] * nservers  # when anything last arrived from the nameserver
        nsilence = [Silence() for _ in range(nservers)]
        ndead = [not group for group in server_socks]
        resolver_dead: Answer | None = None
        wanting = {z for z in range(nz) if zdead[z] is None}  # zones that may send more
        dead_zones = nz - len(wanting)
        sent = resent = expired = ignored = failed_fast = 0
        scan_every = min(0.05, timeout / 4)
        next_scan = now + scan_every
        last_done = 0
        not_listed = EMPTY_ANSWERS[NXDOMAIN]

        def next_server(i: int, after: int) -> int:
            """The next nameserver after ``after`` that has not failed question i, a live one
            if there is one; -1: none."""
            mask = failed[i]
            fallback = -1
            for step in range(1, nservers + 1):
                k = (after + step) % nservers
                if not mask >> k & 1:
                    if not ndead[k]:
                        return k
                    if fallback < 0:
                        fallback = k
            return fallback

        def send(i: int, now: float) -> int:
            """1: sent (the caller counts it in its zone's ``zin``); 0: socket buffer full, try
            later; -1: no nameserver reachable (the answer says why)."""
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

        def revive(z: int) -> None:
            nonlocal dead_zones
            dead_zones -= 1
            zdead[z] = None
            zprobe[z] = -1
            zsilence[z].reset()
            wanting.add(z)

        def live_server_after(k: int) -> int:
            for step in range(1, nservers + 1):
                if not ndead[(k + step) % nservers]:
                    return (k + step) % nservers
            return k

        def silent_resolver() -> Answer:
            """The answer of questions ended because no nameserver answers anything."""
            nonlocal resolver_dead
            if resolver_dead is None:
                silent = [str(self.nameservers[x]) for x in range(nservers) if server_socks[x]]
                many = "s" if len(silent) > 1 else ""
                why = f"resolver{many} {', '.join(silent)} not answering"
                resolver_dead = Answer(None, error=why)
            return resolver_dead

        def server_dead(k: int, now: float) -> None:
            nonlocal preferred, dead_zones
            ndead[k] = True
            if preferred == k:
                preferred = live_server_after(k)
            if all(ndead):  # nothing answers at all: every zone's questions end now
                dead = silent_resolver()
                for z in range(nz):
                    if zdead[z] is None:
                        zdead[z] = dead
                        zdead_at[z] = now
                        dead_zones += 1
                        zprobe[z] = -1
                        znext_probe[z] = now + probe_every

        def server_revived(k: int) -> None:
            nonlocal resolver_dead
            ndead[k] = False
            nsilence[k].reset()
            if resolver_dead is not None:
                for z in range(nz):
                    if zdead[z] is resolver_dead:
                        revive(z)
                resolver_dead = None

        def tend_dead(now: float) -> int:
            """Probe dead zones, and end their questions as far as the live zones have got.

            Returns how many questions ended."""
            nonlocal failed_fast
            ended = 0
            frontier = min(
                (pending[z][0] for z in range(nz) if zdead[z] is None and pending[z]), default=n
            )
            for z in range(nz):
                dead = zdead[z]
                if dead is None or zprobe[z] >= 0:
                    continue  # live, or waiting for its probe: its questions are held
                queue = pending[z]
                while queue:
                    if now >= znext_probe[z] and len(inflight) < cap:
                        i = queue.popleft()
                        state = send(i, now)
                        if state > 0:
                            zin[z] += 1
                            zprobe[z] = i
                            znext_probe[z] = now + probe_every
                            break
                        if state == 0:
                            queue.appendleft(i)
                            break
                        ended += 1
                        continue
                    if queue[0] >= frontier:
                        break  # keep pace with the live zones: the zone may come back
                    results[queue.popleft()] = dead
                    failed_fast += 1
                    ended += 1
            return ended

        if dead_zones:
            remaining -= tend_dead(now)
        while remaining:
            blocked = False
            for z in tuple(wanting) if wanting else ():
                if zdead[z] is not None:
                    wanting.discard(z)
                    continue
                queue = pending[z]
                while queue and zin[z] < zlimit[z] and len(inflight) < cap:
                    i = queue.popleft()
                    state = send(i, monotonic())
                    if state > 0:
                        zin[z] += 1
                    elif state == 0:
                        queue.appendleft(i)
                        blocked = True
                        break
                    else:
                        remaining -= 1
                if blocked:
                    break
                if not queue or zin[z] >= zlimit[z]:
                    wanting.discard(z)
            now = monotonic()
            if now >= next_scan:
                next_scan = now + scan_every
                if dead_zones:
                    for z in range(nz):
                        if zdead[z] is not None and zheard[z] > zdead_at[z]:
                            revive(z)  # it answered something since (a probe, a late query)
                cutoff = now - timeout
                for key, i in [(key, i) for key, i in inflight.items() if sent_at[i] <= cutoff]:
                    del inflight[key]
                    expired += 1
                    z = zone_of[i]
                    zin[z] -= 1
                    k = server_of[i]
                    at = sent_at[i]
                    timeouts[i] += 1
                    if nheard[k] < at:  # nothing at all from this nameserver since it left
                        strikes = nsilence[k].strike(at, nheard[k])
                        if k == preferred and nservers > 1 and strikes >= _STRIKES:
                            preferred = live_server_after(k)  # new questions start there
                        # dead: it has answered nothing in this call (else zones die one by one)
                        if (
                            not ndead[k]
                            and not nheard[k]
                            and nsilence[k].dead(nheard[k], now, dead_after)
                        ):
                            server_dead(k, now)
                    if zheard[z] < at:  # nothing for this zone since the query left
                        silence = zsilence[z]
                        silence.strike(at, zheard[z], 1 << k)
                        live = sum(1 << x for x in range(nservers) if not ndead[x])
                        if zdead[z] is None and silence.dead(zheard[z], now, dead_after, live):
                            if max(nheard) < silence.since:  # and nothing from anywhere
                                zdead[z] = silent_resolver()
                            else:
                                why = f"zone not answering ({silence.strikes} timeouts)"
                                zdead[z] = Answer(None, error=why)
                            znext_probe[z] = now + probe_every
                            zdead_at[z] = now
                            dead_zones += 1
                    else:  # lost while the zone kept answering: a sign of congestion
                        zlimit[z] = ceil(windows[z].loss(at, now))
                    if zprobe[z] == i:
                        zprobe[z] = -1
                        znext_probe[z] = now + probe_every
                    dead = zdead[z]
                    if timeouts[i] > retries:
                        results[i] = TIMEOUT
                        remaining -= 1
                    elif dead is not None:
                        results[i] = dead
                        failed_fast += 1
                        remaining -= 1
                    else:
                        resent += 1
                        server_of[i] = next_server(i, k)
                        pending[z].appendleft(i)
                        wanting.add(z)
                if dead_zones:
                    remaining -= tend_dead(now)
                if nz > 1:
                    active = sum(
                        1 for z in range(nz) if zdead[z] is None and (pending[z] or zin[z])
                    )
                    share = 1.0 / max(1, active)
                if on_progress is not None:
                    done = n - remaining - len(truncated)
                    if done != last_done:
                        last_done = done
                        on_progress(done, n)
                if not remaining:
                    break
            wait = 1 if blocked else int((next_scan - now) * 1000) + 1
            # what arrives during the poll is heard "now": nothing is sent while it waits
            polled = now
            for fd, _event in poller.poll(wait):
                si = index_of_fd[fd]
                base = si << 16
                recv = socks[si].recv
                ks = ns_of_sock[si]
                data = b""
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
                    z = zone_of[i]  # its zone's in-flight count drops below, unless refilled
                    zheard[z] = now  # a dead zone that answers comes back at the next scan
                    count = zcount[z] + 1
                    zrtt[z] += now - sent_at[i]
                    if count >= zlimit[z]:
                        zlimit[z] = ceil(windows[z].round_trip(zrtt[z] / count, share))
                        zrtt[z], zcount[z] = 0.0, 0
                        wanting.add(z)
                    else:
                        zcount[z] = count
                    error = answer.error
                    if error is None:
                        results[i] = answer
                        remaining -= 1
                    elif error == "truncated":
                        k = server_of[i]
                        fallback = read_truncated(data, question, qlens[i], qtypes[i])
                        truncated.append(
                            TcpQuestion(tails[i], question, qlens[i], qtypes[i], k, fallback)
                        )
                        truncated_at.append(i)
                        remaining -= 1
                    else:
                        k = server_of[i]
                        failed[i] |= 1 << k
                        k = next_server(i, k)
                        if k < 0:
                            results[i] = answer
                            remaining -= 1
                        else:
                            resent += 1
                            server_of[i] = k
                            pending[z].appendleft(i)
                    # keep the zone's pipeline full: its next question takes this one's place
                    queue = pending[z]
                    if queue and zin[z] <= zlimit[z]:
                        if len(inflight) < cap:
                            i = queue.popleft()
                            state = send(i, now)
                            if state > 0:
                                continue
                            if state == 0:
                                queue.appendleft(i)
                            else:
                                remaining -= 1
                        wanting.add(z)
                    zin[z] -= 1
                if data:  # something arrived from this nameserver
                    nheard[ks] = polled
                    if ndead[ks]:
                        server_revived(ks)
        self._preferred = preferred
        self.window = min(float(cap), sum(w.size for w in windows))
        self.peak_window = max(self.peak_window, min(float(cap), sum(w.peak for w in windows)))
        for z, name in enumerate(zone_names):
            dead = zdead[z]
            if dead is not None:
                self._dead[name] = dead
            else:
                self._dead.pop(name, None)
        if truncated:
            servers = [(s.family, s.address) for s in self._servers]
            over_tcp = ask_over_tcp(truncated, servers, timeout, retries, take_id, self._tcp_hung)
            for i, answer in zip(truncated_at, over_tcp, strict=True):
                results[i] = answer
        stats = self.stats
        stats["sent"] += sent
        stats["resent"] += resent
        stats["timeouts"] += expired
        stats["ignored"] += ignored
        stats["tcp"] += len(truncated)
        stats["failed_fast"] += failed_fast
        if on_progress is not None:
            on_progress(n, n)
        return [r if r is not None else TIMEOUT for r in results]
