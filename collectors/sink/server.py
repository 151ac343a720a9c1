"""The SMTP side of the sink: who may send what, and the reply that only follows the fsync.

:class:`FeedbackHandler` is the aiosmtpd handler (RCPT policy, size check, spool write);
:class:`Sink` runs it on a listening socket in the caller's event loop together with the
spool processor (:mod:`collectors.sink.processor`); :func:`serve` runs a sink until SIGTERM
or SIGINT.

Reply codes: ``250 2.1.5`` recipient accepted, ``550 5.7.1`` recipient not ours (never an
open relay), ``452 4.5.3`` too many recipients, ``552 5.3.4`` message too big, ``451 4.3.0``
the spool could not be written (try later), ``250 2.0.0 queued as <hash>`` only once the
message is durably in the spool; under load (:mod:`collectors.sink.limits`) ``421 4.7.0``
too many connections (in total or from that client), ``451 4.3.2`` too many message bytes
held in DATA by all sessions, ``421 4.4.2`` before a session idle (or in DATA) too long is
closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
import socket
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session, syntax

from checks.errors import ConfigError
from collectors.sink.commit import GroupCommit
from collectors.sink.config import SinkConfig
from collectors.sink.limits import (
    FD_RESERVE,
    ConnectionGate,
    DataBudget,
    RefusalLog,
    client_key,
    default_max_connections,
)
from collectors.sink.processor import BatchProcess, Process, SpoolProcessor
from collectors.sink.spool import Spool

log = logging.getLogger("repmon.sink")

REPLY_RCPT_OK = "250 2.1.5 Recipient OK"
REPLY_RELAY_DENIED = "550 5.7.1 Relaying denied: this address does not take mail here"
REPLY_TOO_MANY_RCPTS = "452 4.5.3 Too many recipients"
REPLY_TOO_BIG = "552 5.3.4 Message too big for this system"
REPLY_TRY_LATER = "451 4.3.0 Cannot store the message now, try again later"
REPLY_TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections, try again later"
REPLY_BUSY = "451 4.3.2 Too much mail in transit, try again later"
REPLY_TIMEOUT = "421 4.4.2 Timeout, closing the connection"
REPLY_LINE_TOO_LONG = "500 Line too long (see RFC5321 4.5.3.1.6)"

#: what a DATA without a declared SIZE= needs free in the budget to start (a typical bounce
#: or report is well under it)
DATA_START_BYTES = 64 * 1024
#: connections accepted per turn of the event loop at most
ACCEPT_BATCH = 256
#: seconds accepting pauses after accept() failed (out of descriptors)
ACCEPT_RETRY = 0.5


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` as (host, port); ValueError naming the problem."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"sink.listen: expected host:port, got {text!r}")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"sink.listen: port {port} out of range")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or "127.0.0.1", port


class RecipientPolicy:
    """Which envelope recipients the sink takes mail for.

    A recipient is accepted when its whole address is in ``addresses`` or its domain is in
    ``domains``, both compared case-insensitively. Domains match exactly: a subdomain is
    accepted only when listed itself, so a typo in a wildcard can never open a relay.
    With both lists empty nothing is accepted.
    """

    def __init__(self, domains: Iterable[str], addresses: Iterable[str]) -> None:
        self.domains = frozenset(d.strip().lower().rstrip(".") for d in domains if d.strip())
        self.addresses = frozenset(a.strip().lower() for a in addresses if a.strip())

    def accepts(self, address: str) -> bool:
        address = address.strip().lower()
        if address in self.addresses:
            return True
        local, at, domain = address.rpartition("@")
        return bool(at and local) and domain.rstrip(".") in self.domains

    def describe(self) -> str:
        parts = [f"@{d}" for d in sorted(self.domains)] + sorted(self.addresses)
        return ", ".join(parts) or "nothing (accept_domains and accept_addresses are empty)"


class FeedbackHandler:
    """aiosmtpd hooks: refuse what is not ours, spool what is, reply 250 only after fsync."""

    def __init__(
        self,
        spool: Spool,
        policy: RecipientPolicy,
        max_message_bytes: int,
        max_recipients: int,
        on_spooled: Any = None,
    ) -> None:
        self.spool = spool
        self.policy = policy
        self.max_message_bytes = max_message_bytes
        self.max_recipients = max_recipients
        self.on_spooled = on_spooled
        self.commit = GroupCommit(spool)
        #: spool writes running now; stop() waits for them so no acknowledged write is cut
        self.writing = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if not self.policy.accepts(address):
            log.info("refused recipient %s from %s", address, session.peer)
            return REPLY_RELAY_DENIED
        if len(envelope.rcpt_tos) >= self.max_recipients:
            return REPLY_TOO_MANY_RCPTS
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return REPLY_RCPT_OK

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if len(raw) > self.max_message_bytes:
            return REPLY_TOO_BIG
        meta = {
            # the null reverse-path (bounces) as "", however the client wrote it
            "mail_from": (envelope.mail_from or "").strip("<>"),
            "rcpt_tos": list(envelope.rcpt_tos),
            "peer": _peer(session.peer),
            "helo": session.host_name or "",
            "tls": session.ssl is not None,
        }
        self.writing += 1
        self._idle.clear()
        try:
            # Returns once the message is fsynced into new/ (its files in a thread of its own,
            # the directory shared with the sessions finishing at the same time).
            msg = await self.commit.accept(raw, meta)
        except Exception as exc:
            log.error("spool write failed, answered 451: %s", exc)
            return REPLY_TRY_LATER
        finally:
            self.writing -= 1
            if self.writing == 0:
                self._idle.set()
        if self.on_spooled is not None:
            self.on_spooled()
        log.info(
            "accepted %s from %s <%s> for %s, %d bytes",
            msg.message_hash[:16],
            meta["peer"],
            meta["mail_from"],
            ", ".join(envelope.rcpt_tos),
            len(raw),
        )
        return f"250 2.0.0 queued as {msg.message_hash[:16]}"

    async def idle(self) -> None:
        """Return when no spool write is running."""
        await self._idle.wait()


def _peer(peer: object) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer or "")


@dataclass
class SessionBounds:
    """What every session of one sink shares: its timeouts, the DATA budget, the log of
    refusals."""

    idle_timeout: float
    data_timeout: float
    budget: DataBudget
    refusals: RefusalLog


class _SinkSMTP(SMTP):
    """aiosmtpd's SMTP with enhanced status codes on its own size refusals, a registry of
    open sessions so that a stop can close them, a 421 before a timeout closes the session,
    and its own DATA phase: bounded in time (``data_timeout``) and in the bytes all sessions
    hold at once (:class:`DataBudget`), the message gathered in one buffer rather than a
    list of lines (which left the heap too fragmented to give the memory back)."""

    def __init__(
        self,
        handler: FeedbackHandler,
        sessions: set[_SinkSMTP],
        bounds: SessionBounds,
        release: Callable[[], None],
        client: str,
        **kw: Any,
    ) -> None:
        super().__init__(handler, timeout=bounds.idle_timeout, **kw)
        self._sessions = sessions
        self._bounds = bounds
        self._release: Callable[[], None] | None = release
        self._client = client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._sessions.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        self._sessions.discard(self)
        release, self._release = self._release, None
        if release is not None:
            release()
        super().connection_lost(error)

    async def push(self, status: Any) -> None:
        # aiosmtpd refuses oversize mail (SIZE= or too much DATA) with "552 Error: ...".
        if isinstance(status, str) and status.startswith("552 Error"):
            status = REPLY_TOO_BIG
        await super().push(status)

    def _timeout_cb(self) -> None:
        # aiosmtpd just closes the connection; say why first (RFC 5321 4.2.5 allows a 421).
        transport = self.transport
        if transport is not None and not transport.is_closing():
            with contextlib.suppress(Exception):
                transport.write(REPLY_TIMEOUT.encode() + b"\r\n")  # type: ignore[attr-defined]
        super()._timeout_cb()

    def close_now(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def handler_task(self) -> asyncio.Task[None] | None:
        """The task that runs this session's dialogue (aiosmtpd's)."""
        return self._handler_coroutine

    def _declared_size(self) -> int:
        """What a DATA needs free to start: the client's ``SIZE=``, else a typical message."""
        assert self.envelope is not None
        for option in self.envelope.mail_options:
            name, _, value = option.partition("=")
            if name.upper() == "SIZE" and value.isdigit():
                return int(value)
        return min(DATA_START_BYTES, self.data_size_limit or DATA_START_BYTES)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        budget = self._bounds.budget
        if not budget.can_start(self._declared_size()):
            self._bounds.refusals.note("data", self._client)
            await self.push(REPLY_BUSY)
            return
        # The whole of DATA, from the 354 to the final dot, within data_timeout.
        self._reset_timeout(self._bounds.data_timeout)
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        limit = self.data_size_limit or 0
        held = 0
        try:
            content, refusal, held = await self._read_data(limit, budget)
            if content is None:
                return  # the connection went away
            # The spool write (its 250 or 451) within one idle_timeout.
            self._reset_timeout()
            if refusal is not None:
                self._set_post_data_state()
                await self.push(refusal)
                return
            self.envelope.content = self.envelope.original_content = content
            del content
            status = await self._call_handler_hook("DATA")
            self._set_post_data_state()
            await self.push("250 OK" if status is MISSING else status)
        finally:
            budget.give(held)

    async def _read_data(
        self, limit: int, budget: DataBudget
    ) -> tuple[bytes | None, str | None, int]:
        """Read up to the final dot: (the message after dot-unstuffing, the refusal to send
        instead of handling it, the bytes it still holds of ``budget``).

        Past ``limit`` bytes, with a line longer than the stream's limit, or when the
        budget has no room for the next line, what was gathered is dropped (and given
        back) and the rest read and discarded, so that the reply comes after the dot.
        """
        buf = bytearray()
        held = received = 0
        refusal: str | None = None
        partial = False  # the last piece read did not end a line
        try:
            while self.transport is not None:
                try:
                    line = await self._reader.readuntil(b"\r\n")
                except asyncio.LimitOverrunError as exc:
                    line = await self._reader.read(exc.consumed)
                    refusal = refusal or REPLY_LINE_TOO_LONG
                except asyncio.IncompleteReadError:
                    break
                if not partial and line == b".\r\n":
                    content = bytes(buf)
                    return content, refusal, held
                received += len(line)
                if limit and received > limit:
                    refusal = refusal or REPLY_TOO_BIG
                if refusal is None:
                    piece = line[1:] if not partial and line.startswith(b".") else line
                    if budget.take(len(piece)):
                        held += len(piece)
                        buf += piece
                    else:
                        refusal = REPLY_BUSY
                        self._bounds.refusals.note("data", self._client)
                if refusal is not None and held:
                    buf = bytearray()
                    budget.give(held)
                    held = 0
                partial = not line.endswith(b"\r\n")
        except BaseException:
            budget.give(held)
            raise
        budget.give(held)
        return None, None, 0


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """A server context for STARTTLS from PEM files; OSError / ssl.SSLError if unreadable."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


def bind(host: str, port: int, backlog: int) -> list[socket.socket]:
    """Listening sockets for ``host`` (each address it resolves to; all on the same port
    when ``port`` is 0), non-blocking, with ``listen(backlog)``."""
    infos = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
    )
    socks: list[socket.socket] = []
    seen: set[tuple[int, str]] = set()
    try:
        for family, kind, proto, _, addr in infos:
            if (family, str(addr[0])) in seen:
                continue
            seen.add((family, str(addr[0])))
            sock = socket.socket(family, kind, proto)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(socks) > 1:
                addr = (addr[0], socks[0].getsockname()[1], *addr[2:])
            sock.bind(addr)
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


def _refuse(conn: socket.socket) -> None:
    """Tell a connection over a cap 421 and close it, without waiting for anything."""
    try:
        conn.setblocking(False)
        conn.send(REPLY_TOO_MANY_CONNECTIONS.encode() + b"\r\n")
    except OSError:
        pass
    finally:
        conn.close()


class Sink:
    """The SMTP listener and the spool processor, in the caller's event loop.

    ``await start()`` binds the socket, cleans up after a crash and starts processing what
    is already pending; ``await stop()`` stops accepting, lets the spool write in flight
    finish, closes the sessions, and drains the processor (up to ``drain_timeout``).

    The listener accepts connections itself (not ``loop.create_server``): a connection
    over ``max_connections`` or ``max_connections_per_client`` is told ``421 4.7.0`` and
    closed before any SMTP state exists for it, and ``accept`` running out of descriptors
    pauses accepting for half a second instead of logging a traceback per attempt. What
    was refused is logged at most once per ``refusal_log_interval`` seconds.
    """

    def __init__(
        self,
        config: SinkConfig,
        process: Process | BatchProcess | None = None,
        *,
        hostname: str | None = None,
        drain_timeout: float = 30.0,
        poll_interval: float = 1.0,
        refusal_log_interval: float = 60.0,
    ) -> None:
        self.config = config
        self.host, self.port = parse_listen(config.listen)
        if config.max_data_bytes_in_flight < config.max_message_bytes:
            raise ConfigError(
                f"sink.max_data_bytes_in_flight ({config.max_data_bytes_in_flight}) must be at "
                f"least sink.max_message_bytes ({config.max_message_bytes})"
            )
        self.spool = Spool(config.spool)
        self.policy = RecipientPolicy(config.accept_domains, config.accept_addresses)
        self.processor = SpoolProcessor(self.spool, process, poll_interval=poll_interval)
        self.handler = FeedbackHandler(
            self.spool,
            self.policy,
            config.max_message_bytes,
            config.max_recipients,
            on_spooled=self.processor.wake,
        )
        # aiosmtpd looks up the FQDN per connection unless given a name: that is a DNS query
        # per session, so resolve nothing and use the configured or local host name.
        self.hostname = hostname or socket.gethostname()
        self.drain_timeout = drain_timeout
        self._tls: ssl.SSLContext | None = None
        if config.tls_cert or config.tls_key:
            config.check_tls_files()  # a ConfigError naming the key, not a traceback
            self._tls = tls_context(config.tls_cert, config.tls_key)
        self.max_connections = config.max_connections or default_max_connections()
        self.gate = ConnectionGate(self.max_connections, config.max_connections_per_client)
        self.budget = DataBudget(config.max_data_bytes_in_flight)
        self.refusals = RefusalLog(refusal_log_interval)
        self.refusals.caps = {
            "total": self.max_connections,
            "client": config.max_connections_per_client,
            "data": config.max_data_bytes_in_flight,
        }
        self._bounds = SessionBounds(
            config.idle_timeout, config.data_timeout, self.budget, self.refusals
        )
        self._listeners: list[socket.socket] = []
        self._accept_retry: dict[int, asyncio.TimerHandle] = {}
        self._connecting: set[asyncio.Task[None]] = set()
        self._sessions: set[_SinkSMTP] = set()

    def _smtp(self, release: Callable[[], None], client: str) -> _SinkSMTP:
        return _SinkSMTP(
            self.handler,
            self._sessions,
            self._bounds,
            release,
            client,
            data_size_limit=self.config.max_message_bytes,
            enable_SMTPUTF8=True,
            hostname=self.hostname,
            tls_context=self._tls,
            require_starttls=False,
            loop=asyncio.get_running_loop(),
        )

    async def start(self) -> None:
        removed = await asyncio.to_thread(self.spool.recover)
        if removed:
            log.info("spool: removed %d unacknowledged partial writes", removed)
        self._listeners = bind(self.host, self.port, self.config.listen_backlog)
        self.port = int(self._listeners[0].getsockname()[1])
        loop = asyncio.get_running_loop()
        for sock in self._listeners:
            loop.add_reader(sock.fileno(), self._accept, sock)
        self.processor.start()
        log.info(
            "sink listening on %s:%d (STARTTLS %s), accepting mail for %s; spool %s, %d pending",
            self.host,
            self.port,
            "on" if self._tls else "off",
            self.policy.describe(),
            self.spool.directory,
            self.spool.depth(),
        )
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        log.info(
            "sink bounds: %d sessions (%s per client), idle %.0f s, DATA %.0f s, "
            "%d bytes in DATA at once, listen backlog %d; descriptor limit %d",
            self.max_connections,
            self.config.max_connections_per_client or "any",
            self.config.idle_timeout,
            self.config.data_timeout,
            self.config.max_data_bytes_in_flight,
            self.config.listen_backlog,
            soft,
        )
        if soft != resource.RLIM_INFINITY and self.max_connections > soft - FD_RESERVE:
            log.warning(
                "sink.max_connections %d with a file descriptor limit of %d leaves fewer than "
                "%d for the store, the spool and the API: raise LimitNOFILE= or lower "
                "max_connections",
                self.max_connections,
                soft,
                FD_RESERVE,
            )

    def _accept(self, sock: socket.socket) -> None:
        """The listening socket is readable: accept what waits (a bounded number per turn
        of the loop, so that sessions keep being served during a flood)."""
        for _ in range(ACCEPT_BATCH):
            try:
                conn, addr = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                # EMFILE and the like: the connection stays in the backlog; try again in a
                # moment (a tight loop would spin, a traceback per attempt flood the log).
                self.refusals.note("accept", error=exc)
                self._pause_accept(sock)
                return
            key = client_key(str(addr[0]))
            refused = self.gate.admit(key)
            if refused is not None:
                self.refusals.note(refused, key)
                _refuse(conn)
                continue
            conn.setblocking(False)
            task = asyncio.get_running_loop().create_task(self._connect(conn, key))
            self._connecting.add(task)
            task.add_done_callback(self._connecting.discard)

    async def _connect(self, conn: socket.socket, key: str) -> None:
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.gate.release(key)

        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(lambda: self._smtp(release, key), conn)
        except BaseException as exc:
            release()
            conn.close()
            if not isinstance(exc, Exception):
                raise
            log.debug("sink: could not set up a session for %s: %s", key, exc)

    def _pause_accept(self, sock: socket.socket) -> None:
        fd = sock.fileno()
        if fd < 0 or fd in self._accept_retry:
            return
        loop = asyncio.get_running_loop()
        loop.remove_reader(fd)
        self._accept_retry[fd] = loop.call_later(ACCEPT_RETRY, self._resume_accept, sock)

    def _resume_accept(self, sock: socket.socket) -> None:
        self._accept_retry.pop(sock.fileno(), None)
        if sock.fileno() >= 0:
            asyncio.get_running_loop().add_reader(sock.fileno(), self._accept, sock)

    def _close_listeners(self) -> None:
        loop = asyncio.get_running_loop()
        for handle in self._accept_retry.values():
            handle.cancel()
        self._accept_retry.clear()
        for sock in self._listeners:
            if sock.fileno() >= 0:
                loop.remove_reader(sock.fileno())
            sock.close()
        self._listeners = []

    async def stop(self) -> None:
        self._close_listeners()
        if self._connecting:
            await asyncio.gather(*list(self._connecting), return_exceptions=True)
        await self.handler.idle()
        # Let the sessions whose write just finished send their 250 before the close.
        for _ in range(3):
            await asyncio.sleep(0)
        sessions = list(self._sessions)
        for session in sessions:
            session.close_now()
        # Let each session's task see its connection go (and give back what it held).
        tasks = [t for s in sessions if (t := s.handler_task()) is not None and not t.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        await self.processor.stop(self.drain_timeout)
        self.refusals.close()
        log.info("sink stopped; %d message(s) left in the spool", self.spool.depth())


async def serve(config: SinkConfig, process: Process | BatchProcess | None = None) -> None:
    """Run a :class:`Sink` until SIGTERM or SIGINT, then stop it gracefully."""
    await run_until_signal(Sink(config, process))


async def run_until_signal(sink: Sink) -> None:
    """Start ``sink``, wait for SIGTERM or SIGINT, stop it gracefully.

    OSError from start-up (address in use, spool not writable) propagates.
    """
    await sink.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await stopping.wait()
        log.info("sink: stop requested")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await sink.stop()
