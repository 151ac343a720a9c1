"""How many queries one zone may have in flight, and when a zone or nameserver counts as dead.

:class:`Window` is the delay-based (TCP Vegas) in-flight window of one zone;
:class:`Silence` tracks one zone's or one nameserver's run of timeouts with
nothing heard from it. Both are plain bookkeeping used by the send/receive loop
in :mod:`checks.dnsbl.transport`; see docs/dnsbl-engine.md for the design.
"""

from __future__ import annotations

#: queries queued on the path to one nameserver, over all its zones: grow below, shrink above
QUEUED_LOW, QUEUED_HIGH = 16.0, 48.0
#: in flight at first, over all zones: a full burst overflows the server's receive buffer
START_WINDOW = 32.0
MIN_WINDOW = 4.0
#: timeouts in a row, with nothing heard since the first of them was sent, before a zone or
#: nameserver can be declared dead (few questions just run their retries and end "timeout")
DEAD_STRIKES = 8


class Window:
    """How many queries one zone may have in flight: delay-based, as in TCP Vegas.

    The excess of the mean round-trip time over the least one seen, times the
    window, estimates how many of this zone's queries wait in a queue somewhere
    (at the server, or as answers not yet read by this process). Few waiting:
    the window is too small for the path, so it grows (by half per round trip
    at first: a remote resolver needs hundreds in flight). Many waiting: they
    add only delay and, once the server's receive buffer overflows, losses that
    each cost a whole timeout, so it shrinks. Zones asked of the same server
    share its queue, so each zone's thresholds are scaled by ``share`` (one over
    the number of zones being asked). A loss — a timeout while the zone kept
    answering other queries — halves it, once per window of queries sent. A
    timeout with nothing heard from the zone is not a loss: see :class:`Silence`.
    """

    __slots__ = ("size", "ceiling", "floor", "base_rtt", "opening", "last_cut", "peak")

    def __init__(self, ceiling: int, now: float, start: float = START_WINDOW) -> None:
        self.ceiling = float(ceiling)
        self.floor = min(self.ceiling, MIN_WINDOW)
        self.size = self.peak = max(self.floor, min(self.ceiling, start))
        self.base_rtt = 1e9
        self.opening = True
        self.last_cut = now

    def round_trip(self, mean_rtt: float, share: float = 1.0) -> float:
        """The new size after a window's worth of answers took ``mean_rtt`` on average."""
        if mean_rtt <= 0:
            return self.size
        self.base_rtt = min(self.base_rtt, mean_rtt)
        queued = self.size * (1.0 - self.base_rtt / mean_rtt)
        high = QUEUED_HIGH * share
        if queued < QUEUED_LOW * share:
            grown = self.size * 1.5 if self.opening else self.size + 2
            self.size = min(self.ceiling, grown)
        elif queued > high:
            self.size = max(self.floor, self.size - (queued - high) / 2)
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


class Silence:
    """A zone's (or a nameserver's) current run of timeouts with nothing heard from it.

    ``strike(sent_at, heard, server)`` is called for a timed-out query sent at
    ``sent_at`` (to the nameserver with bit ``server``) when nothing was heard
    since it was sent (``heard`` is the time anything last arrived). A response
    heard after the run began ends the run. :meth:`dead` is true once the run
    holds at least :data:`DEAD_STRIKES` timeouts, has lasted ``after`` seconds
    — by then the questions asked first have used the retries they would have
    had anyway — and has met every nameserver in ``servers`` (a zone silent at
    one nameserver may still answer at another).
    """

    __slots__ = ("strikes", "since", "servers")

    def __init__(self) -> None:
        self.strikes = 0
        self.since = 0.0  # when the first query of the run was sent
        self.servers = 0  # bit k: a timeout of the run was at nameserver k

    def strike(self, sent_at: float, heard: float, server: int = 1) -> int:
        if self.strikes == 0 or heard >= self.since:
            self.strikes, self.since, self.servers = 1, sent_at, server
        else:
            self.strikes += 1
            self.since = min(self.since, sent_at)
            self.servers |= server
        return self.strikes

    def dead(self, heard: float, now: float, after: float, servers: int = 1) -> bool:
        return (
            self.strikes >= DEAD_STRIKES
            and heard < self.since
            and now - self.since >= after
            and self.servers & servers == servers
        )

    def reset(self) -> None:
        self.strikes = 0
