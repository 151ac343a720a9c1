"""Notifications through a real HTTP server in the test process: JSON, Slack, down and back."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import sqlalchemy as sa

from monitor.cases import deliver_notifications, evaluate, get_case, list_cases, resolve
from monitor.config import Config
from monitor.store import Store
from monitor.store.schema import notify_outbox
from tests.monitor.test_cases_rules import IP, T0, add_events, add_sent, check, make_config
from tests.servers import free_port

M = dt.timedelta(minutes=1)


@dataclass
class Receiver:
    """What the webhook receiver got: one dict per request (path, headers, body)."""

    port: int
    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@contextmanager
def receiver(port: int | None = None, status: int = 200) -> Iterator[Receiver]:
    rec = Receiver(port or free_port(socket.SOCK_STREAM), status=status)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            rec.requests.append(
                {"path": self.path, "headers": dict(self.headers.items()), "body": body}
            )
            self.send_response(rec.status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", rec.port), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def hooked(*urls_formats: tuple[str, str], **extra: Any) -> Config:
    hooks = [{"url": u, "format": f, "timeout": 2} for u, f in urls_formats]
    return make_config(notify={"webhooks": hooks, "backoff": "30s"}, **extra)


def outbox(store: Store) -> list[Any]:
    with store.begin() as conn:
        return list(conn.execute(sa.select(notify_outbox).order_by(notify_outbox.c.id)))


def test_json_webhook_carries_the_case_and_an_idempotency_key(store: Store) -> None:
    with receiver() as rec:
        config = hooked((rec.url, "json"))
        check(store, "problem", T0)
        evaluate(store, config, now=T0)
        summary = deliver_notifications(store, config, now=T0)
        assert (summary.delivered, summary.failed, summary.pending) == (1, 0, 0)
        [req] = rec.requests
    [case] = list_cases(store)
    event = get_case(store, case.id).events[0]
    assert req["path"] == "/hook"
    assert req["headers"]["Idempotency-Key"] == f"{case.id}-{event.id}"
    body = req["body"]
    assert body["idempotency_key"] == f"{case.id}-{event.id}"
    assert body["event"]["kind"] == "opened"
    c = body["case"]
    assert (c["type"], c["severity"], c["subject"], c["source"]) == (
        "blocklisting",
        "high",
        IP,
        "zen.spamhaus.org",
    )
    assert (c["pool"], c["customer"]) == ("p1", "acme")
    assert c["evidence"]["codes"] == ["127.0.0.2"] and c["evidence"]["delist"]
    assert "events" not in c
    # delivered rows are not sent again
    assert deliver_notifications(store, config, now=T0 + M).delivered == 0


def test_slack_text_and_every_notified_event(store: Store) -> None:
    with receiver() as rec:
        config = hooked((rec.url, "slack"))
        add_sent(store, IP, 10_000)
        add_events(store, 12, "complaint", IP)
        evaluate(store, config, now=T0)  # opened (one IP's events: one case, not a customer's too)
        add_events(store, 30, "complaint", IP, at=T0 + M)
        evaluate(store, config, now=T0 + M)  # escalated
        [case] = [c for c in list_cases(store) if c.rule == "complaint-rate"]
        resolve(store, case.id, "customer list cleaned", config=config, now=T0 + 2 * M)
        deliver_notifications(store, config, now=T0 + 3 * M)
        texts = [r["body"]["text"] for r in rec.requests]
    assert set(rec.requests[0]["body"]) == {"text"}
    mine = [t for t in texts if f"#{case.id} " in t or f"#{case.id}:" in t]
    assert mine[0].startswith(f"[medium] case #{case.id} opened: complaint rate 0.12 %")
    assert "pool p1, customer acme" in mine[0]
    assert mine[1].startswith(f"[critical] case #{case.id} escalated")
    assert mine[2].startswith(f"[resolved] case #{case.id}")
    assert len(texts) == 3  # one event, one case: no separate customer case


def test_a_receiver_that_is_down_gets_the_notice_exactly_once_when_back(store: Store) -> None:
    port = free_port(socket.SOCK_STREAM)
    url = f"http://127.0.0.1:{port}/hook"
    config = hooked((url, "json"))
    check(store, "problem", T0)
    evaluate(store, config, now=T0)
    # nobody listens: the notice stays pending with the error and a later retry time
    s = deliver_notifications(store, config, now=T0)
    assert (s.delivered, s.failed, s.pending) == (0, 1, 1)
    [row] = outbox(store)
    assert row.attempts == 1 and row.delivered_at is None
    assert "ConnectError" in row.last_error
    assert row.next_attempt_at == T0 + dt.timedelta(seconds=30)
    assert deliver_notifications(store, config, now=T0 + 10 * dt.timedelta(seconds=1)).failed == 0
    s = deliver_notifications(store, config, now=T0 + 31 * dt.timedelta(seconds=1))
    assert s.failed == 1
    [row] = outbox(store)
    assert row.attempts == 2  # backoff doubles
    assert row.next_attempt_at == T0 + dt.timedelta(seconds=31 + 60)
    with receiver(port) as rec:
        not_yet = T0 + dt.timedelta(seconds=80)
        assert deliver_notifications(store, config, now=not_yet).delivered == 0
        assert deliver_notifications(store, config, now=T0 + 2 * M).delivered == 1
        for later in (40, 80, 200):
            assert deliver_notifications(store, config, now=T0 + later * M).delivered == 0
        assert len(rec.requests) == 1
        key = rec.requests[0]["headers"]["Idempotency-Key"]
    [row] = outbox(store)
    assert row.delivered_at is not None and row.attempts == 3 and row.last_error is None
    assert key == f"{row.case_id}-{row.event_id}"


def test_an_error_status_is_retried(store: Store) -> None:
    with receiver(status=503) as rec:
        config = hooked((rec.url, "json"))
        check(store, "problem", T0)
        evaluate(store, config, now=T0)
        assert deliver_notifications(store, config, now=T0).failed == 1
        assert outbox(store)[0].last_error.startswith("HTTP 503")
        rec.status = 200
        assert deliver_notifications(store, config, now=T0 + M).delivered == 1
        assert len(rec.requests) == 2
        keys = {r["headers"]["Idempotency-Key"] for r in rec.requests}
        assert len(keys) == 1  # the same notice, so the receiver can drop the repeat


def test_two_webhooks_each_get_it(store: Store) -> None:
    with receiver() as a, receiver() as b:
        config = hooked((a.url, "json"), (b.url, "slack"))
        check(store, "problem", T0)
        evaluate(store, config, now=T0)
        assert deliver_notifications(store, config, now=T0).delivered == 2
        assert len(a.requests) == len(b.requests) == 1


def test_enforcement_live_posts_a_throttle_request(store: Store) -> None:
    with receiver() as rec:
        config = hooked(enforce={"url": rec.url, "dry_run": False})
        check(store, "problem", T0, severity="critical")
        check(store, "problem", T0, target="203.0.113.8", severity="medium")
        evaluate(store, config, now=T0)
        assert deliver_notifications(store, config, now=T0).delivered == 1
        [req] = rec.requests
    body = req["body"]
    assert (body["action"], body["subject"], body["subject_kind"]) == ("throttle", IP, "ip")
    [case] = [c for c in list_cases(store) if c.subject == IP]
    texts = [e.text for e in get_case(store, case.id).events if e.kind == "enforcement"]
    assert texts[0].startswith("throttle of ip 203.0.113.7 requested")
    assert texts[1] == f"throttle request accepted by http://127.0.0.1:{rec.port}"


def test_enforcement_dry_run_only_writes_the_timeline(store: Store) -> None:
    with receiver() as rec:
        config = hooked(enforce={"url": rec.url})  # dry_run defaults to true
        check(store, "problem", T0, severity="critical")
        evaluate(store, config, now=T0)
        deliver_notifications(store, config, now=T0)
        assert rec.requests == []
    [case] = list_cases(store)
    [event] = [e for e in get_case(store, case.id).events if e.kind == "enforcement"]
    assert event.text.startswith("would throttle ip 203.0.113.7")
