"""Helpers for the flood tests: a sink in its own event-loop thread (with the Sink's own
keyword arguments), many raw SMTP connections from chosen loopback source addresses, and
bounded waits. Every connection goes to 127.0.0.1; the source addresses are 127.0.0.x, so
that one test can play several clients."""

from __future__ import annotations

import asyncio
import contextlib
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from collectors.sink import BatchProcess, Process, Sink
from collectors.sink.config import SinkConfig

#: every test connection goes here
HOST = "127.0.0.1"


@dataclass
class Running:
    sink: Sink
    loop: asyncio.AbstractEventLoop

    def call(self, fn: Callable[[], Any], timeout: float = 10) -> Any:
        """Run ``fn`` in the sink's loop thread and return its result."""

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)


@contextlib.contextmanager
def running_sink(
    config: SinkConfig, process: Process | BatchProcess | None = None, **kw: Any
) -> Iterator[Running]:
    """A Sink (``Sink(config, process, **kw)``) in its own event loop thread, stopped on exit."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    kw.setdefault("hostname", "sink.test")
    kw.setdefault("poll_interval", 0.05)
    kw.setdefault("drain_timeout", 5)
    sink = Sink(config, process, **kw)
    try:
        asyncio.run_coroutine_threadsafe(sink.start(), loop).result(10)
        yield Running(sink, loop)
        asyncio.run_coroutine_threadsafe(sink.stop(), loop).result(30)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def wait_until(cond: Callable[[], bool], timeout: float = 10, step: float = 0.02) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(step)
    raise AssertionError("condition not reached in time")


@dataclass
class Client:
    """One raw SMTP connection (blocking socket with a timeout)."""

    sock: socket.socket
    buffer: bytes = b""
    lines: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, port: int, source: str = HOST, timeout: float = 10) -> Client:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.bind((source, 0))
        sock.connect((HOST, port))
        return cls(sock)

    def line(self) -> str:
        """The next reply line; "" on EOF."""
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                return ""
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        text = line.decode(errors="replace")
        self.lines.append(text)
        return text

    def reply(self) -> str:
        """A whole (possibly multi-line) reply: its last line."""
        while True:
            text = self.line()
            if len(text) < 4 or text[3] != "-":
                return text

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def command(self, text: str) -> str:
        self.send(text.encode() + b"\r\n")
        return self.reply()

    def eof(self) -> bool:
        """True when the server closed the connection (after any pending lines)."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buffer += chunk
        except (TimeoutError, ConnectionResetError):
            return False

    def start_data(self, rcpt: str, size: int | None = None) -> str:
        """EHLO, MAIL, RCPT, DATA: the reply to DATA."""
        assert self.command("EHLO client.test").startswith("250"), self.lines
        extra = f" SIZE={size}" if size is not None else ""
        assert self.command(f"MAIL FROM:<>{extra}").startswith("250"), self.lines
        assert self.command(f"RCPT TO:<{rcpt}>").startswith("250"), self.lines
        return self.command("DATA")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def body(size: int, tag: str = "") -> bytes:
    """``size`` bytes (rounded up to whole 1000-byte lines) of message, CRLF lines."""
    head = f"Subject: flood {tag}\r\n\r\n".encode()
    line = b"x" * 998 + b"\r\n"
    return head + line * max(1, (size - len(head) + 999) // 1000)


def connect_many(
    port: int, count: int, source: str = HOST, timeout: float = 5
) -> list[tuple[socket.socket, float | None]]:
    """Start ``count`` non-blocking connects at once; each socket with how long its
    handshake took (None: not connected within ``timeout``)."""
    sel = selectors.DefaultSelector()
    out: list[tuple[socket.socket, float | None]] = []
    started: dict[socket.socket, float] = {}
    took: dict[socket.socket, float] = {}
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.bind((source, 0))
            started[sock] = time.monotonic()
            sock.connect_ex((HOST, port))
            sel.register(sock, selectors.EVENT_WRITE)
        end = time.monotonic() + timeout
        while len(took) < count and time.monotonic() < end:
            for key, _ in sel.select(timeout=0.05):
                sock = key.fileobj  # type: ignore[assignment]
                assert isinstance(sock, socket.socket)
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    took[sock] = time.monotonic() - started[sock]
                else:
                    took[sock] = float("inf")
                sel.unregister(sock)
    finally:
        sel.close()
    for sock in started:
        latency = took.get(sock)
        out.append((sock, None if latency is None or latency == float("inf") else latency))
    return out


def read_first_lines(socks: list[socket.socket], timeout: float = 10) -> list[str]:
    """The first line each socket receives ("" for none within ``timeout`` or EOF)."""
    sel = selectors.DefaultSelector()
    buffers = {s: b"" for s in socks}
    done: dict[socket.socket, str] = {}
    try:
        for s in socks:
            sel.register(s, selectors.EVENT_READ)
        end = time.monotonic() + timeout
        while len(done) < len(socks) and time.monotonic() < end:
            for key, _ in sel.select(timeout=0.05):
                s = key.fileobj  # type: ignore[assignment]
                assert isinstance(s, socket.socket)
                try:
                    chunk = s.recv(4096)
                except OSError:
                    chunk = b""
                buffers[s] += chunk
                if not chunk or b"\r\n" in buffers[s]:
                    done[s] = buffers[s].partition(b"\r\n")[0].decode(errors="replace")
                    sel.unregister(s)
    finally:
        sel.close()
    return [done.get(s, "") for s in socks]


def close_all(socks: list[socket.socket] | list[Client]) -> None:
    for s in socks:
        with contextlib.suppress(OSError):
            s.close()
