"""A feedback sink running in its own event-loop thread, for the sink tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from collectors.sink import BatchProcess, Process, Sink
from monitor.config import SinkConfig


@contextmanager
def running(
    config: SinkConfig, process: Process | BatchProcess | None = None, drain_timeout: float = 5
) -> Iterator[Sink]:
    """A Sink in its own event loop thread, stopped (gracefully) on exit."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    sink = Sink(
        config, process, hostname="sink.test", poll_interval=0.05, drain_timeout=drain_timeout
    )
    asyncio.run_coroutine_threadsafe(sink.start(), loop).result(10)
    try:
        yield sink
    finally:
        asyncio.run_coroutine_threadsafe(sink.stop(), loop).result(drain_timeout + 40)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
