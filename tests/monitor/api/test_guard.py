"""The API cannot take the daemon down: tokens for reads and writes, the body limit before
the body is read, a rate limit on failed authentication, ad hoc checks bounded and isolated,
4xx (never 500) for out-of-range input. Against a real uvicorn server on loopback."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from checks.result import CheckResult
from monitor.adhoc import AdhocRunner, CheckRequest, ChecksBusy
from monitor.api import create_app
from monitor.config import Config, parse_config
from monitor.store import Store
from tests.servers import free_port, silent_udp_server

READ, WRITE = "read-secret", "write-secret"


class FakeDaemon:
    """The Daemon protocol over a real store; ad hoc checks through a real AdhocRunner."""

    def __init__(self, config: Config, store: Store) -> None:
        self.config, self.store = config, store
        self.instance = "test-1"
        self.started_at = dt.datetime.now(dt.UTC)
        self.adhoc = AdhocRunner(config)

    def is_leader(self) -> bool:
        return True

    def spool_depth(self) -> int:
        return 0

    def timeseries_pending(self) -> int:
        return 0

    async def check(
        self, request: CheckRequest, gone: Callable[[], Awaitable[bool]] | None = None
    ) -> list[CheckResult]:
        return await self.adhoc.run(request, gone)

    def metrics_text(self) -> bytes:
        return b"# nothing\n"


@contextmanager
def api_server(tmp_path: Path, **api: Any) -> Iterator[str]:
    port = free_port(socket.SOCK_STREAM)
    section = {"listen": f"127.0.0.1:{port}", **api}
    resolver = api.pop("resolver", None)
    section.pop("resolver", None)
    doc: dict[str, Any] = {"api": section, "store": {"url": f"sqlite:///{tmp_path / 'r.db'}"}}
    if resolver:
        doc["resolver"] = resolver
        doc["dnsbl"] = {"defaults": False, "zones": [{"zone": "bl.test", "type": "ip"}]}
    config = parse_config(doc)
    store = Store.open(config.store.url)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(FakeDaemon(config, store)),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        store.close()


def request(
    addr: str, method: str, path: str, token: str | None = None, body: bytes | None = None
) -> tuple[int, dict[str, Any]]:
    import http.client

    host, port = addr.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=20)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, json.loads(data) if data.startswith(b"{") or data.startswith(b"[") else {}


def test_reads_need_a_token_unless_open_on_loopback(tmp_path: Path) -> None:
    with api_server(tmp_path, token=WRITE, read_token=READ) as api:
        assert request(api, "GET", "/healthz")[0] == 200
        assert request(api, "GET", "/v1/status")[0] == 401
        assert request(api, "GET", "/v1/status", token="wrong")[0] == 401
        assert request(api, "GET", "/v1/status", token=READ)[0] == 200
        assert request(api, "GET", "/v1/cases", token=WRITE)[0] == 200
        assert request(api, "GET", "/metrics", token=READ)[0] == 200
        # the read token does not change state
        assert request(api, "POST", "/v1/cases/1/ack", token=READ, body=b"{}")[0] == 401
        assert request(api, "GET", "/docs")[0] in (401, 404)  # no CDN page
    with api_server(tmp_path, open_reads=True) as api:
        assert request(api, "GET", "/v1/status")[0] == 200
        assert request(api, "POST", "/v1/cases/1/ack", body=b"{}")[0] == 403


def test_open_reads_refused_beyond_loopback() -> None:
    from checks.errors import ConfigError

    with pytest.raises(ConfigError, match="open_reads"):
        parse_config({"api": {"listen": "0.0.0.0:8025", "open_reads": True}})


def test_a_huge_body_is_refused_before_it_is_read(tmp_path: Path) -> None:
    with api_server(tmp_path, token=WRITE) as api:
        host, port = api.split(":")
        for auth in ("", f"Authorization: Bearer {WRITE}\r\n"):
            with socket.create_connection((host, int(port)), timeout=10) as s:
                s.sendall(
                    b"POST /v1/volume HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    + auth.encode()
                    + b"Content-Length: 200000000\r\n\r\n"
                    + b"{" * 1000
                )
                answer = s.recv(4096).decode()
            # unauthenticated: 401 before the body; authenticated: 413 before the body
            assert answer.split()[1] == ("413" if auth else "401"), answer
        # a streamed (chunked) body is cut at the limit
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(
                b"POST /v1/volume HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                + f"Authorization: Bearer {WRITE}\r\n\r\n".encode()
            )
            chunk = b"x" * 65536
            status = ""
            for _ in range(40):  # 2.5 MB at most, over the 1 MiB default
                try:
                    s.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                except OSError:
                    break
            s.settimeout(5)
            status = s.recv(4096).decode().split()[1]
        assert status == "413"


def test_failed_authentication_is_rate_limited(tmp_path: Path) -> None:
    with api_server(tmp_path, token=WRITE, auth_failures_per_minute=5) as api:
        codes = [request(api, "GET", "/v1/status", token="guess")[0] for _ in range(8)]
        assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}
        assert request(api, "GET", "/v1/status", token=WRITE)[0] == 429  # the client waits
        assert request(api, "GET", "/healthz")[0] == 429


def test_out_of_range_input_is_4xx_not_500(tmp_path: Path) -> None:
    with api_server(tmp_path, token=WRITE) as api:
        big = json.dumps({"ip": "192.0.2.1", "count": 2**31}).encode()
        assert request(api, "POST", "/v1/volume", WRITE, big)[0] == 422
        assert request(api, "GET", f"/v1/cases/{2**31}", WRITE)[0] == 422
        assert request(api, "GET", "/v1/cases/7", WRITE)[0] == 404
        nul = json.dumps({"text": "a\x00b"}).encode()
        assert request(api, "POST", "/v1/cases/1/notes", WRITE, nul)[0] == 422
        assert request(api, "GET", "/v1/cases?state=nosuch", WRITE)[0] == 422


def test_checks_are_bounded_and_leave_the_api_answering(tmp_path: Path) -> None:
    """Checks against a resolver that never answers: at most check_concurrency run, the
    rest get 429 at once, a /24 is refused by the target limit, the deadline gives 504, and
    the API keeps answering other requests meanwhile."""
    with silent_udp_server() as port:
        resolver = {"nameservers": [f"127.0.0.1:{port}"], "timeout": 1, "retries": 5}
        with api_server(
            tmp_path,
            open_reads=True,
            check_concurrency=2,
            check_deadline="3s",
            check_max_targets=64,
            resolver=resolver,
        ) as api:
            assert request(api, "GET", "/v1/check/192.0.2.0/24?only=dnsbl")[0] == 422
            results: list[int] = []

            def one() -> None:
                results.append(request(api, "GET", "/v1/check/192.0.2.0/28?only=dnsbl")[0])

            threads = [threading.Thread(target=one) for _ in range(6)]
            t0 = time.monotonic()
            for t in threads:
                t.start()
            time.sleep(0.5)
            probe = time.monotonic()
            assert request(api, "GET", "/v1/status")[0] == 200
            assert time.monotonic() - probe < 2
            for t in threads:
                t.join(30)
            assert sorted(results) == [429, 429, 429, 429, 504, 504], results
            assert time.monotonic() - t0 < 15


def test_runner_refuses_beyond_its_concurrency() -> None:
    config = parse_config({"api": {"check_concurrency": 1}})
    runner = AdhocRunner(config)
    runner._running = 1
    with pytest.raises(ChecksBusy):
        asyncio.run(runner.run(CheckRequest(targets=["192.0.2.1"])))
    runner.close()


def test_feedback_view_over_http(tmp_path: Path) -> None:
    with api_server(tmp_path, open_reads=True) as api:
        status, body = request(api, "GET", "/v1/feedback?by=customer")
        assert status == 200 and body == {"total": 0, "subjects": []}
        assert request(api, "GET", "/v1/feedback?by=planet")[0] == 422
        assert request(api, "GET", "/v1/feedback?since=soon")[0] == 422
