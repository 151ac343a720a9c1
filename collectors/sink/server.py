"""The SMTP side of the sink: who may send what, and the reply that only follows the fsync.

:class:`FeedbackHandler` is the aiosmtpd handler (RCPT policy, size check, spool write);
:class:`Sink` runs it on a listening socket in the caller's event loop together with the
spool processor (:mod:`collectors.sink.processor`); :func:`serve` runs a sink until SIGTERM
or SIGINT.

Reply codes: ``250 2.1.5`` recipient accepted, ``550 5.7.1`` recipient not ours (never an
open relay), ``452 4.5.3`` too many recipients, ``552 5.3.4`` message too big, ``451 4.3.0``
the spool could not be written (try later), ``250 2.0.0 queued as <hash>`` only once the
message is durably in the spool.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import ssl
from collections.abc import Iterable
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from collectors.sink.commit import GroupCommit
from collectors.sink.config import SinkConfig
from collectors.sink.processor import BatchProcess, Process, SpoolProcessor
from collectors.sink.spool import Spool

log = logging.getLogger("repmon.sink")

REPLY_RCPT_OK = "250 2.1.5 Recipient OK"
REPLY_RELAY_DENIED = "550 5.7.1 Relaying denied: this address does not take mail here"
REPLY_TOO_MANY_RCPTS = "452 4.5.3 Too many recipients"
REPLY_TOO_BIG = "552 5.3.4 Message too big for this system"
REPLY_TRY_LATER = "451 4.3.0 Cannot store the message now, try again later"


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
        return f"250 2.0.0 queued as {msg.message_hash[:16]}"

    async def idle(self) -> None:
        """Return when no spool write is running."""
        await self._idle.wait()


def _peer(peer: object) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer or "")


class _SinkSMTP(SMTP):
    """aiosmtpd's SMTP with enhanced status codes on its own size refusals, and a registry
    of open sessions so that a stop can close them."""

    def __init__(self, handler: FeedbackHandler, sessions: set[_SinkSMTP], **kw: Any) -> None:
        super().__init__(handler, **kw)
        self._sessions = sessions

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._sessions.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        self._sessions.discard(self)
        super().connection_lost(error)

    async def push(self, status: Any) -> None:
        # aiosmtpd refuses oversize mail (SIZE= or too much DATA) with "552 Error: ...".
        if isinstance(status, str) and status.startswith("552 Error"):
            status = REPLY_TOO_BIG
        await super().push(status)

    def close_now(self) -> None:
        if self.transport is not None:
            self.transport.close()


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """A server context for STARTTLS from PEM files; OSError / ssl.SSLError if unreadable."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


class Sink:
    """The SMTP listener and the spool processor, in the caller's event loop.

    ``await start()`` binds the socket, cleans up after a crash and starts processing what
    is already pending; ``await stop()`` stops accepting, lets the spool write in flight
    finish, closes the sessions, and drains the processor (up to ``drain_timeout``).
    """

    def __init__(
        self,
        config: SinkConfig,
        process: Process | BatchProcess | None = None,
        *,
        hostname: str | None = None,
        drain_timeout: float = 30.0,
        poll_interval: float = 1.0,
    ) -> None:
        self.config = config
        self.host, self.port = parse_listen(config.listen)
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
            if not (config.tls_cert and config.tls_key):
                raise ValueError("sink.tls_cert and sink.tls_key must be set together")
            self._tls = tls_context(config.tls_cert, config.tls_key)
        self._server: asyncio.AbstractServer | None = None
        self._sessions: set[_SinkSMTP] = set()

    def _smtp(self) -> _SinkSMTP:
        return _SinkSMTP(
            self.handler,
            self._sessions,
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
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._smtp, host=self.host, port=self.port)
        sock = self._server.sockets[0].getsockname()
        self.port = int(sock[1])
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

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await self.handler.idle()
        # Let the sessions whose write just finished send their 250 before the close.
        for _ in range(3):
            await asyncio.sleep(0)
        for session in list(self._sessions):
            session.close_now()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        await self.processor.stop(self.drain_timeout)
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
