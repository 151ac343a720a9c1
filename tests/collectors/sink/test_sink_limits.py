"""The sink keeps bounded resources under floods: a cap on sessions in total and per client
(421 4.7.0, logged once per interval), idle and DATA timeouts, a budget of bytes held in DATA
across sessions (451 4.3.2), a listen backlog that takes a burst of connects, accept()
running out of descriptors without a traceback flood, a processor that holds one bounded
batch of a spool backlog, and an intake worker that dies with its parent.

Real sinks on loopback, raw SMTP clients from 127.0.0.x source addresses; every wait is
bounded in count and time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import resource
import select
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from checks.errors import ConfigError
from collectors.sink import (
    BatchProcess,
    RetryLater,
    Sink,
    Spool,
    SpooledMessage,
    SpoolProcessor,
)
from collectors.sink import processor as processor_module
from collectors.sink.config import SinkConfig
from collectors.sink.limits import (
    ConnectionGate,
    DataBudget,
    client_key,
    default_max_connections,
)
from collectors.sink.server import (
    REPLY_BUSY,
    REPLY_TIMEOUT,
    REPLY_TOO_MANY_CONNECTIONS,
)
from tests.collectors.sink.flood_support import (
    Client,
    body,
    close_all,
    connect_many,
    read_first_lines,
    running_sink,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[3]
DOMAIN = "fb.example"
RCPT = f"bounces@{DOMAIN}"
KiB = 1024


def sink_config(tmp_path: Path, **overrides: Any) -> SinkConfig:
    values: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "accept_domains": [DOMAIN],
        "spool": str(tmp_path / "spool"),
    }
    values.update(overrides)
    return SinkConfig(**values)


def refusal_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "repmon.sink"
        and r.getMessage().startswith("sink: ")
        and " refused " in r.getMessage()
    ]


# -- the pure parts -------------------------------------------------------------------------


def test_default_connection_cap_comes_from_the_descriptor_limit() -> None:
    assert default_max_connections(1024) == (1024 - 256) // 2 == 384
    assert default_max_connections(256) == 16  # never below 16
    assert default_max_connections(20000) == 4096  # never above 4096
    assert default_max_connections(resource.RLIM_INFINITY) == 4096
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert default_max_connections() == default_max_connections(soft)


def test_clients_are_addresses_and_ipv6_slash_64s() -> None:
    assert client_key("192.0.2.7") == "192.0.2.7"
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert (
        client_key("2001:db8:1:2:aaaa::1")
        == client_key("2001:db8:1:2::ffff")
        == ("2001:db8:1:2::/64")
    )
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")


def test_gate_and_budget_accounting() -> None:
    gate = ConnectionGate(total=3, per_client=2)
    assert [gate.admit("a"), gate.admit("a"), gate.admit("a")] == [None, None, "client"]
    assert gate.admit("b") is None and gate.admit("c") == "total"
    gate.release("a")
    assert gate.admit("c") is None and gate.open == 3 and gate.by_client["a"] == 1
    unlimited = ConnectionGate(total=5, per_client=0)
    assert [unlimited.admit("a") for _ in range(6)] == [None] * 5 + ["total"]

    budget = DataBudget(100)
    assert budget.can_start(60) and budget.take(60)
    assert not budget.can_start(41) and budget.can_start(40)
    assert not budget.take(41) and budget.take(40) and budget.held == 100
    budget.give(100)
    assert budget.held == 0 and budget.peak == 100


def test_bound_defaults_and_a_budget_smaller_than_a_message(tmp_path: Path) -> None:
    c = SinkConfig()
    assert (c.max_connections, c.max_connections_per_client) == (0, 20)
    assert (c.idle_timeout, c.data_timeout, c.listen_backlog) == (60.0, 120.0, 4096)
    assert c.max_data_bytes_in_flight == 128 * 1024 * 1024
    with pytest.raises(ConfigError, match="max_data_bytes_in_flight"):
        Sink(sink_config(tmp_path, max_message_bytes=64 * KiB, max_data_bytes_in_flight=32 * KiB))


# -- connections ----------------------------------------------------------------------------


@pytest.mark.servers
def test_connections_over_the_cap_get_421_and_one_log_line_per_interval(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="repmon.sink")
    interval = 1.5
    config = sink_config(tmp_path, max_connections=20, max_connections_per_client=0)
    held: list[Client] = []
    extra: list[Client] = []
    with running_sink(config, refusal_log_interval=interval) as run:
        try:
            for i in range(20):
                held.append(Client.open(run.sink.port, f"127.0.0.{2 + i % 5}"))
                assert held[-1].line().startswith("220 "), held[-1].lines
            start = time.monotonic()
            for i in range(30):
                extra.append(Client.open(run.sink.port, f"127.0.0.{2 + i % 5}"))
                assert extra[-1].line() == REPLY_TOO_MANY_CONNECTIONS
                assert extra[-1].eof(), "a refused connection is closed"
            burst = time.monotonic() - start
            during = refusal_lines(caplog)
            # once per interval, not once per connection
            assert 1 <= len(during) <= 1 + int(burst / interval) + 1, during
            # the rest of the count comes in the next interval's line
            wait_until(lambda: sum(_refused(refusal_lines(caplog))) == 30, interval + 3)
            assert len(refusal_lines(caplog)) <= 2 + int(burst / interval)
            assert run.sink.refusals.totals["total"] == 30
            assert run.sink.gate.open == 20
            # the held sessions are still served, and a freed slot is taken again
            assert held[0].command("NOOP").startswith("250")
            held.pop().close()
            wait_until(lambda: run.sink.gate.open == 19, 5)
            held.append(Client.open(run.sink.port, "127.0.0.9"))
            assert held[-1].line().startswith("220 ")
        finally:
            close_all(held + extra)
    assert "Traceback" not in caplog.text


def _refused(lines: list[str]) -> list[int]:
    return [int(n) for line in lines for n in re.findall(r"(\d+) connections over max_", line)]


@pytest.mark.servers
def test_per_client_cap_and_a_normal_client_still_gets_its_250(tmp_path: Path) -> None:
    config = sink_config(tmp_path, max_connections=200, max_connections_per_client=5)
    flood: list[Client] = []
    with running_sink(config) as run:
        try:
            for _ in range(5):
                flood.append(Client.open(run.sink.port, "127.0.0.2"))
                assert flood[-1].line().startswith("220 ")
            for _ in range(3):
                flood.append(Client.open(run.sink.port, "127.0.0.2"))
                assert flood[-1].line() == REPLY_TOO_MANY_CONNECTIONS
                assert flood[-1].eof()
            # another address is not affected ...
            other = Client.open(run.sink.port, "127.0.0.3")
            flood.append(other)
            assert other.line().startswith("220 ")
            # ... and a normal client delivers while the flood's sessions are held open
            normal = Client.open(run.sink.port, "127.0.0.1")
            flood.append(normal)
            assert normal.line().startswith("220 ")
            assert normal.start_data(RCPT).startswith("354")
            normal.send(body(2000, "normal") + b".\r\n")
            assert normal.reply().startswith("250 2.0.0 queued as ")
            assert normal.command("QUIT").startswith("221")
            assert run.sink.refusals.totals["client"] == 3
            assert run.sink.gate.by_client["127.0.0.2"] == 5
        finally:
            close_all(flood)
    assert Spool(tmp_path / "spool").depth() == 1


@pytest.mark.servers
def test_idle_and_data_timeouts_close_with_421(tmp_path: Path) -> None:
    config = sink_config(tmp_path, idle_timeout=1.0, data_timeout=2.0)
    clients: list[Client] = []
    with running_sink(config) as run:
        try:
            idle = Client.open(run.sink.port, "127.0.0.2")
            busy = Client.open(run.sink.port, "127.0.0.3")
            data = Client.open(run.sink.port, "127.0.0.4")
            clients += [idle, busy, data]
            start = time.monotonic()
            for c in clients:
                assert c.line().startswith("220 ")
            assert data.start_data(RCPT).startswith("354")
            data_start = time.monotonic()
            # a session that keeps talking is not idle; one line of DATA every 0.4 s is
            # never idle either, but the DATA phase as a whole is bounded
            for _ in range(4):
                assert busy.command("NOOP").startswith("250")
                data.send(b"x" * 70 + b"\r\n")
                time.sleep(0.4)
            assert busy.command("NOOP").startswith("250")
            # silent since its banner, 1.6 s > idle_timeout
            assert idle.line() == REPLY_TIMEOUT and idle.eof()
            assert time.monotonic() - start < 5
            # talking all along, but DATA started 2 s ago
            assert data.line() == REPLY_TIMEOUT and data.eof()
            assert 1.8 < time.monotonic() - data_start < 5
            wait_until(lambda: run.sink.budget.held == 0 and run.sink.gate.open == 1, 5)
        finally:
            close_all(clients)


# -- memory ---------------------------------------------------------------------------------


@pytest.mark.servers
def test_data_budget_holds_across_sessions(tmp_path: Path) -> None:
    """A DATA that would not fit is refused up front (451 4.3.2, its declared SIZE= or a
    typical 64 KiB must be free) or, when the budget fills while it is sent, answered 451
    4.3.2 after its final dot (what it held is dropped at once)."""
    budget = 256 * KiB
    config = sink_config(tmp_path, max_message_bytes=200 * KiB, max_data_bytes_in_flight=budget)
    clients: list[Client] = []
    with running_sink(config) as run:
        held = run.sink.budget
        try:
            first, second, third = (Client.open(run.sink.port, f"127.0.0.{i}") for i in (2, 3, 4))
            clients += [first, second, third]
            for c in clients:
                assert c.line().startswith("220 ")
            assert first.start_data(RCPT).startswith("354")
            msg1 = body(150 * KiB, "first")
            first.send(msg1)
            wait_until(lambda: held.held == len(msg1))
            # fits at the start (150 KiB + 64 KiB free), not once sent in full: dropped
            assert second.start_data(RCPT).startswith("354")
            second.send(body(120 * KiB, "second"))
            wait_until(lambda: run.sink.refusals.totals["data"] == 1)
            assert held.held == len(msg1)
            second.send(b".\r\n")
            assert second.reply() == REPLY_BUSY
            # declared SIZE= that does not fit: refused before 354
            assert third.start_data(RCPT, size=150_000) == REPLY_BUSY
            first.send(b".\r\n")
            assert first.reply().startswith("250 2.0.0 ")
            wait_until(lambda: held.held == 0)  # given back right after the reply
            # now there is room again
            assert third.command("DATA").startswith("354")
            third.send(body(100 * KiB, "third") + b".\r\n")
            assert third.reply().startswith("250 2.0.0 ")
            assert held.peak <= budget
        finally:
            close_all(clients)


@pytest.mark.servers
def test_many_concurrent_data_sessions_stay_within_the_budget(tmp_path: Path) -> None:
    budget = 256 * KiB
    n = 30
    config = sink_config(
        tmp_path,
        max_message_bytes=100 * KiB,
        max_data_bytes_in_flight=budget,
        max_connections_per_client=0,
    )
    clients: list[Client] = []
    with running_sink(config) as run:
        try:
            for i in range(n):
                c = Client.open(run.sink.port, f"127.0.1.{1 + i}")
                clients.append(c)
                assert c.line().startswith("220 ")
            started = [c for c in clients if c.start_data(RCPT).startswith("354")]
            size = len(body(60 * KiB, "00"))
            for i, c in enumerate(started):
                c.send(body(60 * KiB, f"{i:02d}"))
            # wait until the sink has read everything: each session started either holds
            # its whole message or was cut off (and counted) when the budget was full
            refusals = run.sink.refusals.totals
            cut = lambda: refusals["data"] - (n - len(started))  # noqa: E731
            wait_until(lambda: run.sink.budget.held == (len(started) - cut()) * size, 10)
            for c in started:
                c.send(b".\r\n")
            replies = [c.reply() for c in started]
            refused = [c for c in clients if c not in started]
            accepted = [r for r in replies if r.startswith("250 ")]
            assert set(r[:9] for r in replies) <= {"250 2.0.0", "451 4.3.2"}, replies
            assert 1 <= len(accepted) <= budget // (60 * KiB), replies
            assert len(accepted) + len(refused) < n  # the rest got 451 4.3.2
            assert run.sink.budget.peak <= budget
            wait_until(lambda: run.sink.budget.held == 0)
        finally:
            close_all(clients)
    assert Spool(tmp_path / "spool").depth() == len(accepted)


def test_processor_holds_one_bounded_batch_of_a_backlog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the store is down the backlog grows on disk only: the spool remembers waiting
    messages without their bytes, and each pass lists at most max_batch_bytes."""
    spool = Spool(tmp_path / "spool")
    size = 100 * KiB
    raws = [body(size, str(i)) for i in range(40)]
    for i in range(0, 40, 8):  # segments of 8 messages, as a group commit writes them
        spool.accept_many([(r, {"rcpt_tos": [RCPT]}) for r in raws[i : i + 8]])
    assert all(m.data is None for m in spool._waiting.values())
    listed = spool.pending(200, max_bytes=3 * size + 10 * KiB)
    assert len(listed) == 3
    assert len(spool.pending(200, max_bytes=1)) == 1  # always at least one message

    down = {"calls": 0}
    batches: list[int] = []

    async def run(batch: Sequence[tuple[SpooledMessage, bytes]]) -> list[BaseException | None]:
        if down["calls"] < 3:
            down["calls"] += 1
            raise RetryLater("store down")
        batches.append(sum(len(raw) for _, raw in batch))
        return [None] * len(batch)

    monkeypatch.setattr(processor_module, "MAX_BACKOFF", 0.05)  # back off briefly

    async def main() -> None:
        processor = SpoolProcessor(
            spool, BatchProcess(run), poll_interval=0.01, max_batch_bytes=5 * size
        )
        try:
            processor.start()
            for _ in range(500):
                if spool.depth() == 0:
                    break
                await asyncio.sleep(0.02)
        finally:
            await processor.stop(5)

    asyncio.run(main())
    assert spool.depth() == 0 and sum(batches) == sum(len(r) for r in raws)
    assert max(batches) <= 5 * size + 5 * 1000
    assert not spool._waiting


# -- the listening socket -------------------------------------------------------------------


def _room_for(count: int) -> bool:
    """Descriptors for both ends of ``count`` connections, and a kernel that allows a
    backlog of ``count`` (net.core.somaxconn)."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    try:
        somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    except (OSError, ValueError):
        return False
    return (soft == resource.RLIM_INFINITY or soft > 2 * count + 300) and somaxconn >= count


def _readline(proc: subprocess.Popen[bytes], timeout: float = 30) -> bytes:
    """A line of ``proc``'s stdout within ``timeout`` seconds (b"" if none)."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline() if ready else b""


@pytest.mark.servers
@pytest.mark.slow
@pytest.mark.skipif(not _room_for(500), reason="needs ~1300 descriptors, somaxconn >= 500")
def test_listen_backlog_takes_a_burst_of_500_connects(tmp_path: Path) -> None:
    """With the sink's loop busy for a second, 500 connects wait in the backlog: with
    4096 every handshake completes at once and every client gets its banner; with a
    backlog of 50 the kernel drops SYNs and the clients retry only a second later."""
    n = 500

    def burst(backlog: int) -> tuple[list[float | None], list[str]]:
        config = sink_config(
            tmp_path, max_connections=1000, max_connections_per_client=0, listen_backlog=backlog
        )
        with running_sink(config) as run:
            run.loop.call_soon_threadsafe(time.sleep, 1.0)  # the loop accepts nothing
            time.sleep(0.05)
            conns = connect_many(run.sink.port, n, "127.0.0.2", timeout=1.5 if backlog < n else 5)
            socks = [s for s, _ in conns]
            try:
                banners = read_first_lines(socks, 10) if backlog >= n else []
            finally:
                close_all(socks)
        return [t for _, t in conns], banners

    latencies, banners = burst(4096)
    assert all(t is not None and t < 0.9 for t in latencies), max(
        (t for t in latencies if t is not None), default=None
    )
    assert sum(b.startswith("220 ") for b in banners) == n
    small, _ = burst(50)
    slow = [t for t in small if t is None or t >= 0.9]
    assert len(slow) > n // 2, "a small backlog should have dropped SYNs"


_EMFILE_SINK = """
import asyncio, logging, resource, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard))
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
logging.getLogger("mail.log").setLevel(logging.WARNING)
from collectors.sink import Sink, SinkConfig

async def main():
    config = SinkConfig(listen="127.0.0.1:0", spool=sys.argv[1], max_connections=1000,
                        max_connections_per_client=0, idle_timeout=30)
    sink = Sink(config, None, hostname="sink.test")
    await sink.start()
    print(sink.port, flush=True)
    await asyncio.sleep(float(sys.argv[2]))
    await sink.stop()

asyncio.run(main())
"""


@pytest.mark.servers
@pytest.mark.slow
def test_accept_out_of_descriptors_pauses_without_a_traceback_flood(tmp_path: Path) -> None:
    """max_connections set far above what 128 descriptors allow: accept() fails with
    EMFILE; the sink pauses accepting and logs it once, not a traceback per attempt."""
    log = tmp_path / "sink.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", _EMFILE_SINK, str(tmp_path / "spool"), "2.5"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
        )
    try:
        port = int(_readline(proc) or 0)
        assert port, log.read_text()
        conns = connect_many(port, 250, "127.0.0.2", timeout=2)
        socks = [s for s, _ in conns]
        banners = read_first_lines(socks, 1.0)
        close_all(socks)
        assert proc.wait(20) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    text = log.read_text()
    assert 50 < sum(b.startswith("220 ") for b in banners) < 128
    assert "Traceback" not in text, text[:3000]
    assert 1 <= text.count("Too many open files") <= 3, text[:3000]


# -- the intake worker ----------------------------------------------------------------------

_POOL_PARENT = """
import concurrent.futures, multiprocessing, os, time
from collectors.sink.limits import die_with_parent
pool = concurrent.futures.ProcessPoolExecutor(
    1, mp_context=multiprocessing.get_context("spawn"), initializer=die_with_parent
)
print(pool.submit(os.getpid).result(), flush=True)
time.sleep(60)
"""

_PLAIN_PARENT = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c",
    "import sys, time; from collectors.sink.limits import die_with_parent;"
    "die_with_parent(int(sys.argv[1]), poll_interval=0.2); print('ready', flush=True);"
    "time.sleep(60)", str(os.getpid())])
print(child.pid, flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            state = next(line for line in f if line.startswith("State:"))
    except (FileNotFoundError, StopIteration):
        return False
    return "Z" not in state.split()[1]  # a zombie nobody reaped is gone too


@pytest.mark.servers
@pytest.mark.parametrize("parent", [_POOL_PARENT, _PLAIN_PARENT], ids=["pool-worker", "poll"])
def test_worker_dies_with_its_parent(parent: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", parent], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    child = 0
    try:
        line = _readline(proc)
        assert line.strip().isdigit(), line
        child = int(line)
        if parent is _PLAIN_PARENT:
            assert _readline(proc).strip() == b"ready"
        time.sleep(0.5)
        assert _alive(child), "the child must live while its parent does"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        killed = time.monotonic()
        wait_until(lambda: not _alive(child), 5, step=0.05)
        assert time.monotonic() - killed < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if child and _alive(child):
            os.kill(child, signal.SIGKILL)
