"""DNS over TCP for questions whose UDP answer came back truncated (TC=1).

All of a call's truncated questions are asked at once, after the UDP pass: one
non-blocking TCP connection per nameserver, the queries pipelined on it and the
answers matched by id and echoed question (RFC 7766 sections 6.2.1.1, 6.2.2 and
7), everything in one ``poll`` loop. Bounded three ways:

* a connection that has queries outstanding and receives nothing for
  ``timeout`` seconds is *hung*: it is closed, and TCP to that nameserver is not
  used again (by this resolver) until a later call's single probe query is
  answered — further truncated answers for it end at once;
* a question is asked over TCP at most ``1 + retries`` times, rotating
  nameservers, and the whole phase ends ``timeout × (1 + retries)`` after it
  began, whatever happens;
* at most :data:`PIPELINE` queries are outstanding on one connection, and there
  is never more than one connection per nameserver. A server that closes the
  connection on pipelined queries gets one query per connection from then on.

A question that gets no TCP answer falls back to the A records of its truncated
UDP answer when those are usable as they are (:func:`checks.dnsbl.wire.read_truncated`);
otherwise it ends ``"truncated answer and TCP not answering"`` (a hung or
silent connection) or ``"truncated answer and TCP failed: ..."`` (refused,
reset, closed).
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from checks.dnsbl.wire import MALFORMED, Answer, read_response

#: queries outstanding on one connection at a time
PIPELINE = 32
TCP_NOT_ANSWERING = "truncated answer and TCP not answering"
_CONNECTING = (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY, errno.EAGAIN)


@dataclass(slots=True)
class TcpQuestion:
    """One truncated question: the query after its id, what to match, and its UDP fallback."""

    tail: bytes  # the query packet after the 16-bit id
    question: bytes  # the question section, to match the answer
    qname_len: int
    qtype: int
    first: int  # the nameserver that sent the truncated answer: asked first
    fallback: Answer | None  # usable records of the truncated answer, if any
    attempts: int = 0
    server: int = -1
    answer: Answer | None = None  # the last TCP response that was an error
    failure: str = ""  # the last network error
    hung: bool = False  # an attempt met a connection that never answered


class _Conn:
    __slots__ = ("k", "sock", "connected", "out", "inbuf", "waiting", "progress", "answered")

    def __init__(self, k: int, sock: socket.socket, now: float) -> None:
        self.k = k
        self.sock = sock
        self.connected = False
        self.out = bytearray()
        self.inbuf = bytearray()
        self.waiting: dict[int, int] = {}  # query id -> question
        self.progress = now  # opened, or last answer received
        self.answered = 0


def ask_over_tcp(
    questions: Sequence[TcpQuestion],
    servers: Sequence[tuple[int, tuple[str, int]]],
    timeout: float,
    retries: int,
    take_id: Callable[[], int],
    hung: set[int],
) -> list[Answer]:
    """One Answer per question, in order. ``servers`` are (family, address) pairs.

    ``hung`` holds the nameservers whose TCP is known hung; it is updated in
    place (a hung server that answers is taken out, one that stops answering is
    put in). A server already in it gets one probe query, alone on its
    connection, before anything else is sent to it.
    """
    if not questions:
        return []
    return _TcpPhase(questions, servers, timeout, retries, take_id, hung).run()


class _TcpPhase:
    def __init__(
        self,
        questions: Sequence[TcpQuestion],
        servers: Sequence[tuple[int, tuple[str, int]]],
        timeout: float,
        retries: int,
        take_id: Callable[[], int],
        hung: set[int],
    ) -> None:
        self.questions = questions
        self.servers = servers
        self.timeout = timeout
        self.retries = retries
        self.take_id = take_id
        self.hung = hung
        self.results: list[Answer | None] = [None] * len(questions)
        self.queues: list[deque[int]] = [deque() for _ in servers]
        self.probed: set[int] = set()  # hung servers whose one probe has been sent
        self.lone: set[int] = set()  # servers that drop pipelined queries: one per connection
        self.conns: dict[int, _Conn] = {}
        self.unfinished = len(questions)

    def usable(self, k: int) -> bool:
        return k not in self.hung or k not in self.probed

    def finish(self, j: int) -> None:
        q = self.questions[j]
        if q.answer is not None:
            answer = q.answer
        elif q.fallback is not None:
            answer = q.fallback
        elif q.hung or not q.failure:
            answer = Answer(None, error=TCP_NOT_ANSWERING)
        else:
            answer = Answer(None, error=f"truncated answer and TCP failed: {q.failure}")
        self.results[j] = answer
        self.unfinished -= 1

    def route(self, j: int, same: bool = False) -> None:
        """Queue question j for its next attempt, or finish it when it has none left."""
        q = self.questions[j]
        if q.attempts > self.retries:
            self.finish(j)
            return
        n = len(self.servers)
        start = q.first if q.server < 0 else (q.server if same else q.server + 1)
        for step in range(n):
            k = (start + step) % n
            if self.usable(k):
                q.server = k
                self.queues[k].append(j)
                return
        q.hung = q.hung or bool(self.hung)
        self.finish(j)

    def open(self, k: int, now: float) -> None:
        family, address = self.servers[k]
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as e:
            self.fail_queue(k, e.strerror or str(e))
            return
        sock.setblocking(False)
        conn = self.conns[k] = _Conn(k, sock, now)
        try:
            code = sock.connect_ex(address)
        except OSError as e:
            code = e.errno or errno.EIO
        if code == 0:
            conn.connected = True
        elif code not in _CONNECTING:
            self.close(conn, os.strerror(code), counted=False)
            self.fail_queue(k, os.strerror(code))

    def fail_queue(self, k: int, why: str) -> None:
        """The questions queued for server k could not even be sent: each used an attempt."""
        waiting, self.queues[k] = self.queues[k], deque()
        for j in waiting:
            q = self.questions[j]
            q.attempts += 1
            q.failure = why
            self.route(j)

    def close(self, conn: _Conn, why: str, stalled: bool = False, counted: bool = True) -> None:
        """Drop a connection; its outstanding questions go on to their next attempt."""
        del self.conns[conn.k]
        with contextlib.suppress(OSError):
            conn.sock.close()
        if stalled:
            self.hung.add(conn.k)
            self.probed.add(conn.k)
        outstanding = list(conn.waiting.values())
        conn.waiting.clear()
        # a server may close after one answer (RFC 7766 section 6.2.3), resetting the
        # connection over the queries it did not read: from then on it gets one query per
        # connection, and what it dropped is asked again without counting against it
        dropped_pipeline = (
            not stalled
            and conn.connected
            and conn.k not in self.lone
            and (conn.answered > 0 or len(outstanding) > 1)
        )
        if dropped_pipeline and outstanding:
            self.lone.add(conn.k)
        for j in outstanding:
            q = self.questions[j]
            if stalled:
                q.hung = True
            elif dropped_pipeline:
                q.attempts -= 1
                self.route(j, same=True)
                continue
            elif counted:
                q.failure = why or "connection closed before the answer"
            self.route(j)
        if not self.usable(conn.k):  # questions queued for it move on
            waiting, self.queues[conn.k] = self.queues[conn.k], deque()
            for j in waiting:
                self.questions[j].hung = True
                self.route(j)

    def fill(self, k: int) -> None:
        """Put server k's queued questions on its connection, up to the pipeline's room."""
        conn = self.conns[k]
        queue = self.queues[k]
        room = 1 if k in self.lone else PIPELINE
        if k in self.hung:  # one probe, alone, until the server answers it
            room = 1
            self.probed.add(k)
        while queue and len(conn.waiting) < room:
            j = queue.popleft()
            q = self.questions[j]
            qid = self.take_id()
            while qid in conn.waiting:
                qid = self.take_id()
            packet = qid.to_bytes(2, "big") + q.tail
            conn.out += len(packet).to_bytes(2, "big") + packet
            conn.waiting[qid] = j
            q.attempts += 1

    def run(self) -> list[Answer]:
        deadline = time.monotonic() + self.timeout * (self.retries + 1)
        for j in range(len(self.questions)):
            self.route(j)
        try:
            while self.unfinished:
                now = time.monotonic()
                if now >= deadline:
                    self.give_up()
                    break
                for k in range(len(self.servers)):
                    if self.queues[k]:
                        if k not in self.conns:
                            self.open(k, now)
                        if k in self.conns:
                            self.fill(k)
                if not self.unfinished:
                    break
                if not self.conns:
                    continue  # every connect failed at once: the next attempts go now
                self.wait(now, deadline)
                now = time.monotonic()
                for conn in list(self.conns.values()):
                    if conn.waiting and now - conn.progress >= self.timeout:
                        self.close(conn, "", stalled=True)
                    elif not conn.waiting and not self.queues[conn.k] and not conn.out:
                        self.close(conn, "")  # idle (RFC 7766 section 6.2.3)
        finally:
            for conn in list(self.conns.values()):
                with contextlib.suppress(OSError):
                    conn.sock.close()
            self.conns.clear()
        return [r if r is not None else Answer(None, error=TCP_NOT_ANSWERING) for r in self.results]

    def give_up(self) -> None:
        """The phase's deadline passed: whatever has no answer yet ends now."""
        for conn in list(self.conns.values()):
            for j in conn.waiting.values():
                self.questions[j].hung = True
                self.finish(j)
            conn.waiting.clear()
        for queue in self.queues:
            for j in queue:
                self.questions[j].hung = True
                self.finish(j)
            queue.clear()

    def wait(self, now: float, deadline: float) -> None:
        """One poll over the open connections, and what it reports."""
        poller = select.poll()
        by_fd = {}
        wake = deadline
        for conn in self.conns.values():
            mask = select.POLLIN
            if not conn.connected or conn.out:
                mask |= select.POLLOUT
            poller.register(conn.sock.fileno(), mask)
            by_fd[conn.sock.fileno()] = conn
            if conn.waiting:
                wake = min(wake, conn.progress + self.timeout)
        for fd, event in poller.poll(max(0, int((wake - now) * 1000) + 1)):
            conn = by_fd[fd]
            if self.conns.get(conn.k) is conn:  # not closed by an earlier event
                self.service(conn, event)

    def service(self, conn: _Conn, event: int) -> None:
        """Finish connecting, write what is queued, read answers."""
        sock = conn.sock
        if not conn.connected:
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                self.close(conn, os.strerror(code))
                return
            if not event & select.POLLOUT:
                return
            conn.connected = True
        if conn.out and event & select.POLLOUT:
            try:
                sent = sock.send(conn.out)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as e:
                self.close(conn, e.strerror or str(e))
                return
            del conn.out[:sent]
        if not event & (select.POLLIN | select.POLLERR | select.POLLHUP):
            return
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self.close(conn, e.strerror or str(e))
            return
        if not data:
            self.close(conn, "")
            return
        conn.inbuf += data
        buf = conn.inbuf
        while len(buf) >= 2:
            size = (buf[0] << 8) | buf[1]
            if len(buf) < 2 + size:
                break
            message = bytes(buf[2 : 2 + size])
            del buf[: 2 + size]
            if size >= 12:
                self.answer(conn, message)

    def answer(self, conn: _Conn, message: bytes) -> None:
        j = conn.waiting.pop((message[0] << 8) | message[1], -1)
        if j < 0:
            return  # not a query of ours on this connection
        conn.progress = time.monotonic()
        conn.answered += 1
        self.hung.discard(conn.k)  # its TCP answers
        q = self.questions[j]
        got = read_response(message, q.question, q.qname_len, q.qtype)
        if got is None or got.error == "truncated":
            got = MALFORMED
        if got.error is None:
            self.results[j] = got
            self.unfinished -= 1
        else:
            q.answer = got  # an error rcode or an unreadable answer: try the next attempt
            self.route(j)
        if conn.k in self.lone and not conn.waiting:
            self.close(conn, "")  # one query per connection: the server closes it anyway
