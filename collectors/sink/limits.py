"""The bounds the sink keeps under a flood: sessions, bytes held in DATA, log volume, and an
intake worker that cannot outlive its parent.

- :func:`default_max_connections`: the session cap derived from the file-descriptor soft
  limit, ``min(4096, max(16, (soft - 256) // 2))``: 256 descriptors stay for the store, the
  spool, the API and the worker's pipes, and half of the rest stays free for the
  connections being refused (each is accepted, told ``421`` and closed at once), so that
  ``accept`` never runs out of descriptors while sessions are held open.
- :class:`ConnectionGate`: open sessions, in total and per client (an IPv4 address, an IPv6
  /64: one host usually has a whole /64), checked before any SMTP state is built.
- :class:`DataBudget`: the message bytes held by all sessions in DATA (received and not yet
  spooled); a DATA that does not fit is refused with ``451 4.3.2``.
- :class:`RefusalLog`: what was refused, as at most one log line per interval with the
  counts since the previous line, never a line (or a traceback) per connection.
- :func:`die_with_parent`: for a worker process, exit as soon as the process that started
  it is gone (SIGKILLed), so that no orphan keeps a store connection open.

Everything here except :func:`die_with_parent` is used from the event loop's thread only.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import multiprocessing
import multiprocessing.connection
import os
import resource
import threading
import time
from collections import Counter

log = logging.getLogger("repmon.sink")

#: file descriptors kept out of the session cap: store, spool, API, worker pipes, logs
FD_RESERVE = 256
#: the derived cap never goes above this (an idle session costs ~11 KB of memory)
MAX_DERIVED_CONNECTIONS = 4096
#: nor below this, whatever the descriptor limit
MIN_DERIVED_CONNECTIONS = 16
#: accept() errors that mean "out of descriptors or memory": pause accepting, do not crash
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def default_max_connections(soft: int | None = None) -> int:
    """The session cap for a descriptor soft limit (the process's own when None):
    ``min(4096, max(16, (soft - 256) // 2))``."""
    if soft is None:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY or soft < 0:
        return MAX_DERIVED_CONNECTIONS
    derived = (soft - FD_RESERVE) // 2
    return min(MAX_DERIVED_CONNECTIONS, max(MIN_DERIVED_CONNECTIONS, derived))


def client_key(host: str) -> str:
    """Who a connection counts against for the per-client cap: its IPv4 address (an
    IPv4-mapped IPv6 address counts as IPv4), or its IPv6 /64 as ``prefix/64``."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class ConnectionGate:
    """Open sessions, in total and per client; ``per_client`` 0 means no per-client cap."""

    def __init__(self, total: int, per_client: int) -> None:
        self.total = total
        self.per_client = per_client
        self.open = 0
        self.by_client: Counter[str] = Counter()

    def admit(self, key: str) -> str | None:
        """Take a slot for ``key``; None when admitted, else which cap refused it:
        ``"total"`` or ``"client"``."""
        if self.open >= self.total:
            return "total"
        if self.per_client and self.by_client[key] >= self.per_client:
            return "client"
        self.open += 1
        self.by_client[key] += 1
        return None

    def release(self, key: str) -> None:
        self.open -= 1
        left = self.by_client[key] - 1
        if left > 0:
            self.by_client[key] = left
        else:
            del self.by_client[key]


class DataBudget:
    """Bytes of message data held by the sessions in DATA, at most ``limit`` in all.

    A session takes the bytes of each line as it arrives and gives them all back once its
    message is spooled (or refused, or the connection is lost); a line that does not fit
    makes that session discard what it holds and answer ``451 4.3.2`` at the end of its
    DATA. A new DATA starts only when ``want`` bytes (the ``SIZE=`` the client declared, or
    a typical message) are free.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        #: the most ever held at once (for the tests and the log)
        self.peak = 0

    def can_start(self, want: int) -> bool:
        return self.held + want <= self.limit

    def take(self, size: int) -> bool:
        if self.held + size > self.limit:
            return False
        self.held += size
        self.peak = max(self.peak, self.held)
        return True

    def give(self, size: int) -> None:
        self.held -= size


#: what RefusalLog counts, in the order its line lists them: (what, the config key of its cap)
_KINDS = {
    "total": ("connections over", "max_connections"),
    "client": ("connections over", "max_connections_per_client"),
    "data": ("DATA commands over", "max_data_bytes_in_flight"),
}
#: distinct clients a RefusalLog tracks per interval (a flood from a whole /48 stays cheap)
_MAX_CLIENTS = 1024


class RefusalLog:
    """Refusals and accept errors as at most one WARNING line per ``interval`` seconds.

    The first refusal after a quiet interval is logged at once; the ones that follow within
    the interval are counted and logged together when it ends (a timer on the running loop),
    with the busiest clients. ``totals`` keeps the counts since start.
    """

    def __init__(self, interval: float = 60.0, logger: logging.Logger = log) -> None:
        self.interval = interval
        self.log = logger
        self.totals: Counter[str] = Counter()
        self.lines = 0
        self._counts: Counter[str] = Counter()
        self._clients: Counter[str] = Counter()
        self._error = ""
        self._last = -float("inf")
        self._timer: asyncio.TimerHandle | None = None
        #: the caps, for the log line
        self.caps: dict[str, int] = {}

    def note(self, kind: str, client: str = "", error: BaseException | None = None) -> None:
        self.totals[kind] += 1
        self._counts[kind] += 1
        if client and (client in self._clients or len(self._clients) < _MAX_CLIENTS):
            self._clients[client] += 1
        if error is not None:
            self._error = str(error)
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._emit(now)
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop to flush from: the count waits for the next line
            self._timer = loop.call_later(self._last + self.interval - now, self._flush)

    def close(self) -> None:
        """Log what is still uncounted, stop the timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._counts:
            self._emit(time.monotonic())

    def _flush(self) -> None:
        self._timer = None
        if self._counts:
            self._emit(time.monotonic())

    def _emit(self, now: float) -> None:
        since = "so far" if self._last == -float("inf") else f"in the last {now - self._last:.0f} s"
        parts = []
        for kind, (what, key) in _KINDS.items():
            n = self._counts.get(kind, 0)
            if n:
                cap = self.caps.get(kind)
                parts.append(f"{n} {what} {key}" + (f" ({cap})" if cap is not None else ""))
        line = f"sink: {since} refused " + (", ".join(parts) or "nothing")
        failed = self._counts.get("accept", 0)
        if failed:
            line += f"; accept() failed {failed} times, paused each time ({self._error})"
        if self._clients:
            top = ", ".join(f"{c} ({n})" for c, n in self._clients.most_common(3))
            line += f"; busiest clients: {top}"
        self.log.warning("%s", line)
        self.lines += 1
        self._last = now
        self._counts.clear()
        self._clients.clear()
        self._error = ""


def die_with_parent(parent_pid: int | None = None, poll_interval: float = 1.0) -> None:
    """Make this process exit (``os._exit``) as soon as its parent is gone.

    For a worker's initializer (``ProcessPoolExecutor(initializer=...)``): when the sink's
    process is SIGKILLed nothing tells its worker, which would live on with its store
    connection. A daemon thread watches the parent: under ``multiprocessing`` it waits on
    the parent's sentinel (a pipe whose other end only the parent holds, so it becomes
    readable the moment the parent dies), and in any case it compares ``os.getppid()`` with
    the parent's pid every ``poll_interval`` seconds (a re-parented orphan sees another
    pid). ``parent_pid`` defaults to the multiprocessing parent's pid, else ``getppid()``;
    if the parent is already gone when this is called, it exits at once.

    Not ``prctl(PR_SET_PDEATHSIG)``: Linux sends that signal when the *thread* that
    started the child exits, not the process, so a worker started from a short-lived thread
    would be killed while its parent is alive.
    """
    parent = multiprocessing.parent_process()
    if parent_pid is None:
        parent_pid = parent.pid if parent is not None and parent.pid else os.getppid()
    sentinel = parent.sentinel if parent is not None and parent.pid == parent_pid else None
    if os.getppid() != parent_pid:
        _exit_orphaned(parent_pid)

    def watch() -> None:
        while True:
            if sentinel is not None:
                try:
                    if multiprocessing.connection.wait([sentinel], timeout=poll_interval):
                        _exit_orphaned(parent_pid)
                except OSError:
                    time.sleep(poll_interval)
            else:
                time.sleep(poll_interval)
            if os.getppid() != parent_pid:
                _exit_orphaned(parent_pid)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def _exit_orphaned(parent_pid: int) -> None:
    note = f"repmon worker {os.getpid()}: parent {parent_pid} is gone, exiting\n"
    with contextlib.suppress(OSError):
        os.write(2, note.encode())
    os._exit(1)
