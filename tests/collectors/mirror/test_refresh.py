"""The mirror refresh job against real servers on loopback: an HTTP server (plain http on
127.0.0.1, which the config accepts for loopback only; the code path is the one https takes)
and an rsync daemon. A good download is swapped in atomically; a truncated, empty, garbage or
failing one keeps the old copy and is reported; a conditional GET confirms a current copy.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from collectors.dnsbl.config import DnsblConfig, MirrorSpec
from collectors.dnsbl.mirrored import (
    MirrorCache,
    MirrorState,
    read_state,
    url_digest,
    write_state,
)
from collectors.mirror import MirrorRefreshFailed, refresh_sweep
from collectors.mirror.refresh import FAILED, NOT_DUE, REFRESHED, UNCHANGED, refresh
from collectors.sweep import SweepSummary
from monitor.cli import main
from monitor.store import Store
from monitor.store.checks import last_sweep
from tests.configs import table
from tests.servers import free_port, world_readable_dir

GOOD = ":127.0.0.2:Listed $\n127.0.0.2\n192.0.2.1\n192.0.2.8/29\n"
BETTER = ":127.0.0.2:Listed $\n127.0.0.2\n192.0.2.1\n192.0.2.99\n"


class Feed:
    """What the HTTP server serves, and the requests it saw."""

    def __init__(self) -> None:
        self.body = GOOD.encode()
        self.status = 200
        #: "ok", or "short": announce more bytes than are sent, then close
        self.mode = "ok"
        self.requests: list[dict[str, str]] = []

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'


@contextmanager
def http_feed() -> Iterator[tuple[str, Feed]]:
    feed = Feed()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            feed.requests.append(dict(self.headers))
            if feed.status != 200:
                self.send_response(feed.status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.headers.get("If-None-Match") == feed.etag:
                self.send_response(304)
                self.send_header("ETag", feed.etag)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("ETag", feed.etag)
            self.send_header("Last-Modified", formatdate(usegmt=True))
            extra = 1000 if feed.mode == "short" else 0
            self.send_header("Content-Length", str(len(feed.body) + extra))
            self.end_headers()
            self.wfile.write(feed.body)
            if extra:
                self.wfile.flush()
                self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/bl.ip4set", feed
    finally:
        server.shutdown()
        server.server_close()


def spec_for(path: Path, url: str, **zone: Any) -> MirrorSpec:
    config = DnsblConfig.model_validate(
        {
            "defaults": False,
            "zones": [
                {
                    "zone": "bl.example",
                    "type": "ip",
                    "mirror": str(path),
                    "mirror_format": "ip4set",
                    "mirror_url": url,
                    **zone,
                }
            ],
        }
    )
    (spec,) = config.mirror_specs().values()
    return spec


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".part"))


def test_http_download_is_checked_swapped_in_and_confirmed_by_a_conditional_get(
    tmp_path: Path,
) -> None:
    path = tmp_path / "mirrors" / "bl.ip4set"
    cache = MirrorCache()
    with http_feed() as (url, feed):
        spec = spec_for(path, url)
        got = refresh(spec, cache=cache)
        assert got.status == REFRESHED, got
        assert path.read_bytes() == feed.body
        state = read_state(path)
        assert state.etag == feed.etag and state.source == url_digest(url)
        assert state.verified_at is not None and abs(state.verified_at - time.time()) < 60
        loaded = cache.get(spec)
        assert loaded.usable and loaded.mirror is not None
        assert loaded.mirror.lookup("192.0.2.9") is not None
        inode = path.stat().st_ino

        # the same copy: a 304, the file is not touched, its confirmation is
        write_state(path, MirrorState(time.time() - 5000, state.etag, state.last_modified,
                                      state.source))  # fmt: skip
        got = refresh(spec, cache=cache)
        assert got.status == UNCHANGED
        assert feed.requests[-1].get("If-None-Match") == feed.etag
        assert "If-Modified-Since" in feed.requests[-1]
        assert path.stat().st_ino == inode
        assert time.time() - (read_state(path).verified_at or 0) < 60

        # a new copy replaces the old one atomically (a new file, renamed over it)
        feed.body = BETTER.encode()
        got = refresh(spec, cache=cache)
        assert got.status == REFRESHED and path.read_bytes() == BETTER.encode()
        assert path.stat().st_ino != inode
        assert cache.get(spec).mirror.lookup("192.0.2.99") is not None  # type: ignore[union-attr]
        assert leftovers(path.parent) == []


@pytest.mark.parametrize(
    ("body", "status", "mode", "why"),
    [
        (GOOD.encode()[:-9], 200, "ok", "no newline"),  # cut short: "192.0.2.8" of a /29
        (b"", 200, "ok", "empty"),
        (b"<html><body>Service Unavailable</body></html>\n", 200, "ok", "malformed"),
        (b"\x1f\x8b\x08\x00garbage", 200, "ok", "gzip"),
        (BETTER.encode(), 200, "short", "download failed"),
        (BETTER.encode(), 503, "ok", "HTTP 503"),
        (b":127.0.0.2:x\n192.0.2.1\n", 200, "ok", "self-test"),  # no 127.0.0.2 test point
    ],
)
def test_a_bad_download_keeps_the_old_copy_and_is_reported(
    tmp_path: Path, body: bytes, status: int, mode: str, why: str
) -> None:
    path = tmp_path / "bl.ip4set"
    with http_feed() as (url, feed):
        spec = spec_for(path, url)
        assert refresh(spec).status == REFRESHED
        before = (path.read_bytes(), path.stat().st_ino, path.stat().st_mtime_ns)
        feed.body, feed.status, feed.mode = body, status, mode
        got = refresh(spec)
    assert got.status == FAILED and got.failed
    assert why in got.detail and "previous copy stays in use" in got.detail
    assert (path.read_bytes(), path.stat().st_ino, path.stat().st_mtime_ns) == before
    assert leftovers(tmp_path) == []


def test_the_job_records_its_run_and_fails_naming_the_zone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite:///{tmp_path / 'repmon.db'}"
    with http_feed() as (url, feed):
        zone = {"zone": "bl.example", "type": "ip", "mirror": "m/bl.ip4set"}
        zone |= {"mirror_format": "ip4set", "mirror_url": url}
        cfg = tmp_path / "repmon.toml"
        cfg.write_text(
            table("dnsbl", {"defaults": False})
            + table("dnsbl.zones", zone, array=True)
            + table("inventory.pools", {"name": "p", "cidrs": ["192.0.2.0/30"]}, array=True)
            + table("store", {"url": store})
        )
        assert main(["sweep", "--config", str(cfg), "--only", "mirror", "--no-progress"]) == 0
        assert "mirror sweep: 1 targets, 1 results (1 ok" in capsys.readouterr().out
        assert (tmp_path / "m" / "bl.ip4set").read_bytes() == feed.body  # beside the config
        feed.body = b"<html>oops</html>\n"
        assert main(["sweep", "--config", str(cfg), "--only", "mirror", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "1 of 1 blocklist mirrors not refreshed: bl.example:" in err
    assert "malformed" in err
    s = Store.open(store)
    try:
        run = last_sweep(s, "mirror")
    finally:
        s.close()
    assert run is not None and run.unknown == 1 and run.unknown_by_source == {"bl.example": 1}


def test_a_failing_refresh_shows_in_status_and_metrics_of_repmon_run(tmp_path: Path) -> None:
    from monitor.config import load_config
    from monitor.daemon.monitor import Monitor
    from monitor.store.jobs import job_table

    cfg = tmp_path / "repmon.toml"
    zone = {"zone": "bl.example", "type": "ip", "mirror": "bl.ip4set", "mirror_format": "ip4set"}
    cfg.write_text(
        table("dnsbl", {"defaults": False})
        + table("dnsbl.zones", zone, array=True)
        + table("store", {"url": f"sqlite:///{tmp_path / 'repmon.db'}"})
        + table("api", {"enabled": False})
    )
    monitor = Monitor(load_config(cfg), instance="test-1")
    try:
        asyncio.run(monitor._runner("mirror_refresh")())
        (row,) = [j for j in job_table(monitor.store) if j["job"] == "mirror_refresh"]
        assert row["last_status"] == "error"
        assert "bl.example" in row["last_error"] and "missing" in row["last_error"]
        metrics = monitor.metrics.render().decode()
        assert 'repmon_job_runs_total{job="mirror_refresh",outcome="error"} 1.0' in metrics
    finally:
        monitor.adhoc.close()
        monitor.store.close()


def test_a_zone_without_url_is_judged_by_age(tmp_path: Path) -> None:
    path = tmp_path / "bl.ip4set"
    path.write_text(GOOD)
    config = DnsblConfig.model_validate(
        {
            "defaults": False,
            "zones": [
                {"zone": "bl.example", "type": "ip", "mirror": str(path),
                 "mirror_format": "ip4set", "mirror_max_age": "1h"},
            ],
        }
    )  # fmt: skip

    class Recorder:
        summaries: list[SweepSummary] = []

        def finish(self, summary: SweepSummary) -> None:
            self.summaries.append(summary)

    assert refresh_sweep(config, Recorder()).ok == 1  # type: ignore[arg-type]
    old = time.time() - 7200
    os.utime(path, (old, old))
    with pytest.raises(MirrorRefreshFailed, match="older than mirror_max_age"):
        refresh_sweep(config, Recorder())  # type: ignore[arg-type]


def test_a_download_is_not_repeated_within_the_publishers_interval(tmp_path: Path) -> None:
    config = DnsblConfig.model_validate(
        {"enable": ["drop.spamhaus.org"], "mirror_dir": str(tmp_path)}
    )
    spec = config.mirror_specs()["drop.spamhaus.org"]
    body = b'{"cidr": "203.0.113.0/24", "sblid": "SBL1", "rir": "x"}\n'
    meta = {"type": "metadata", "timestamp": 1, "size": len(body), "records": 1}
    Path(spec.path).write_bytes(body + json.dumps(meta).encode() + b"\n")
    write_state(spec.path, MirrorState(time.time() - 600, '"e"', None, url_digest(spec.url)))
    # within the hour Spamhaus asks between downloads: no request is made (none could be:
    # the tests may not leave loopback)
    assert refresh(spec).status == NOT_DUE


# --- rsync ---------------------------------------------------------------------------------


@contextmanager
def rsync_daemon() -> Iterator[tuple[int, Path]]:
    """``rsync --daemon`` on a loopback port serving module ``zones`` from a directory."""
    binary = shutil.which("rsync")
    if binary is None:
        pytest.skip("rsync is not installed (bash scripts/test.sh installs it)")
    d = world_readable_dir("repmon-rsyncd-")
    data = d / "data"
    data.mkdir()
    data.chmod(0o755)
    port = free_port(socket.SOCK_STREAM)
    conf = d / "rsyncd.conf"
    conf.write_text(
        f"pid file = {d}/rsyncd.pid\nuse chroot = no\nlog file = {d}/rsyncd.log\n"
        f"[zones]\n    path = {data}\n    read only = yes\n"
    )
    proc = subprocess.Popen(
        [binary, "--daemon", "--no-detach", "--address", "127.0.0.1", "--port", str(port),
         "--config", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("rsync --daemon did not start") from None
                time.sleep(0.05)
        yield port, data
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(d, ignore_errors=True)


def publish(data: Path, text: str) -> None:
    f = data / "bl.ip4set"
    f.write_text(text)
    f.chmod(0o644)


def test_rsync_fetches_swaps_and_reports(tmp_path: Path) -> None:
    path = tmp_path / "bl.ip4set"
    with rsync_daemon() as (port, data):
        spec = spec_for(path, f"rsync://127.0.0.1:{port}/zones/bl.ip4set")
        publish(data, GOOD)
        got = refresh(spec)
        assert got.status == REFRESHED, got
        assert path.read_text() == GOOD
        assert refresh(spec).status == UNCHANGED
        publish(data, BETTER)
        assert refresh(spec).status == REFRESHED and path.read_text() == BETTER
        publish(data, GOOD[:-3])  # cut short: no final newline
        got = refresh(spec)
        assert got.status == FAILED and "no newline" in got.detail
        assert path.read_text() == BETTER
        (data / "bl.ip4set").unlink()
        got = refresh(spec)
        assert got.status == FAILED and "rsync exited" in got.detail
        assert path.read_text() == BETTER
    assert leftovers(tmp_path) == []
