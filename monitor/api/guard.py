"""The API's gate, in front of every route (an ASGI middleware), so that nothing is read
before it is allowed:

1. a client that failed authentication too often in the last minute gets 429;
2. authentication: ``/healthz`` is open; reads (GET, HEAD) need the read token or the write
   token, unless ``open_reads`` (loopback only); anything else needs the write token;
3. the body: a declared ``Content-Length`` over ``max_body_bytes`` gets 413 at once, and a
   streamed body is counted as it arrives and cut off at the limit.

Failures are logged once per interval with their count, never once per request.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from monitor.config import ApiConfig

log = logging.getLogger("repmon.api")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

#: paths anyone may read (liveness probes)
OPEN_PATHS = frozenset({"/healthz"})
READ_METHODS = frozenset({"GET", "HEAD"})
WINDOW_SECONDS = 60.0
#: how often the refusals are summarised in the log
LOG_INTERVAL_SECONDS = 60.0


class FailureLimiter:
    """Counts failed authentications per client address in a sliding minute."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._fails: dict[str, list[float]] = {}

    def blocked(self, client: str) -> bool:
        recent = self._recent(client)
        return len(recent) >= self.per_minute

    def fail(self, client: str) -> None:
        self._recent(client).append(self.clock())
        if len(self._fails) > 10_000:  # bounded: forget the quietest clients
            for key in sorted(self._fails, key=lambda k: len(self._fails[k]))[:5_000]:
                del self._fails[key]

    def _recent(self, client: str) -> list[float]:
        cutoff = self.clock() - WINDOW_SECONDS
        recent = [t for t in self._fails.get(client, ()) if t > cutoff]
        self._fails[client] = recent
        return recent


class RefusalLog:
    """One log line per interval with what was refused since the last one."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.counts: dict[str, int] = {}
        self._last = float("-inf")

    def note(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1
        now = self.clock()
        if now - self._last >= LOG_INTERVAL_SECONDS:
            summary = ", ".join(f"{n} {w}" for w, n in sorted(self.counts.items()))
            log.warning("API refused requests in the last interval: %s", summary)
            self.counts.clear()
            self._last = now


class Guard:
    """ASGI middleware: rate limit, authentication and body size, before the route runs."""

    def __init__(self, app: App, config: ApiConfig) -> None:
        self.app = app
        self.write = config.token.get_secret_value() if config.token else None
        self.read = config.read_token.get_secret_value() if config.read_token else None
        self.open_reads = config.open_reads
        self.max_body = config.max_body_bytes
        self.limiter = FailureLimiter(config.auth_failures_per_minute)
        self.refusals = RefusalLog()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("?", 0))[0]
        if self.limiter.blocked(client):
            self.refusals.note("rate-limited")
            await reply(send, 429, "too many failed authentications; try again later")
            return
        refusal = self._authenticate(scope)
        if refusal is not None:
            self.limiter.fail(client)
            self.refusals.note(f"{refusal[0]}")
            await reply(send, *refusal)
            return
        declared = header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            self.refusals.note("413")
            await reply(send, 413, f"request body over {self.max_body} bytes")
            return
        await self.app(scope, *self._bounded(receive, send))

    def _authenticate(self, scope: Scope) -> tuple[int, str] | None:
        """None when the request may go on, else (status, reason)."""
        path, method = scope["path"], scope["method"]
        if path in OPEN_PATHS:
            return None
        reading = method in READ_METHODS
        if reading and self.open_reads:
            return None
        allowed = [t for t in ((self.read, self.write) if reading else (self.write,)) if t]
        if not allowed:
            if reading:
                return 401, "reads need [api] read_token (or open_reads = true on loopback)"
            return 403, "state changes over HTTP need [api] token in the config"
        given = (header(scope, b"authorization") or "").removeprefix("Bearer ").strip()
        if any(hmac.compare_digest(given.encode(), t.encode()) for t in allowed):
            return None
        return 401, "missing or wrong bearer token"

    def _bounded(self, receive: Receive, send: Send) -> tuple[Receive, Send]:
        """receive and send that cut a streamed body off at the limit with a 413."""
        seen = 0
        state = {"started": False, "refused": False}

        async def bounded_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    if not state["started"]:
                        self.refusals.note("413")
                        await reply(send, 413, f"request body over {self.max_body} bytes")
                        state["refused"] = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if state["refused"]:
                return
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        return bounded_receive, guarded_send


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


async def reply(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 429:
        headers.append((b"retry-after", b"60"))
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
