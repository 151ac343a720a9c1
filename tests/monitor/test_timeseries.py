"""The time-series writer and point builders, against a real VictoriaMetrics.

VictoriaMetrics takes the InfluxDB v2 write API the writer speaks; a field
``f`` of measurement ``m`` reads back as series ``m_f``, with millisecond
timestamps (so the tests write millisecond-aligned points).
"""

from __future__ import annotations

import datetime as dt
import gzip
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from checks.result import CheckResult
from monitor.config.influxdb import InfluxConfig
from monitor.timeseries import (
    BufferBusy,
    InfluxWriter,
    NullWriter,
    case_points,
    check_points,
    dmarc_points,
    feedback_points,
    open_writer,
    receiving_domain_tag,
    sent_points,
    sweep_points,
)
from monitor.timeseries.line import line, timestamp_ns
from tests.tsdb_servers import VictoriaMetrics, victoria_metrics

NOW_MS = int(time.time()) * 1000


def points(name: str, n: int, start_ms: int = NOW_MS, tag: str = "a") -> list[str]:
    return [f"{name},t={tag} f={i}i {(start_ms + i) * 1_000_000}" for i in range(n)]


def writer(url: str, tmp_path: Path, **config: object) -> InfluxWriter:
    cfg = InfluxConfig.model_validate(
        {"url": url, "buffer_dir": str(tmp_path / "buffer"), **config}
    )
    return InfluxWriter(cfg, backoff=0.01, timeout=2.0)


def exported(vm: VictoriaMetrics, series: str, expect: int) -> list[tuple[int, float]]:
    """(timestamp ms, value) of every sample of ``series``, sorted.

    VictoriaMetrics acknowledges a write before every row is searchable, even
    after a force flush: wait until ``expect`` samples show, then read once
    more a little later so that a duplicate arriving late is seen too.
    """

    def read() -> list[tuple[int, float]]:
        out: list[tuple[int, float]] = []
        for s in vm.export(series):
            out += list(zip(s["timestamps"], s["values"], strict=True))
        return sorted(out)

    deadline = time.monotonic() + 10
    while len(read()) < expect and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.3)
    return read()


@pytest.fixture(scope="module")
def vm() -> Iterator[VictoriaMetrics]:
    with victoria_metrics() as server:
        yield server


# -- writer against VictoriaMetrics ------------------------------------------------------


def test_points_read_back_as_written(vm: VictoriaMetrics, tmp_path: Path) -> None:
    w = writer(vm.url, tmp_path, batch_size=7)
    w.write(points("rb", 50))
    assert w.pending() == 50
    assert w.flush() == 50
    assert w.pending() == 0
    assert exported(vm, "rb_f", 50) == [(NOW_MS + i, float(i)) for i in range(50)]
    w.close()


def test_tags_with_awkward_characters_survive(vm: VictoriaMetrics, tmp_path: Path) -> None:
    tags = {"zone": "a b,c=d", "pool": "", "customer": 'q"uote\\slash', "u": "zoné"}
    w = writer(vm.url, tmp_path)
    w.write([line("esc", tags, {"listed": 1, "ratio": 0.5}, NOW_MS * 1_000_000)])
    assert w.flush() == 1
    exported(vm, "esc_.*", 2)
    (series,) = vm.export("esc_listed")
    labels = series["metric"]
    assert labels["zone"] == "a b,c=d"
    assert labels["pool"] == "none"  # empty tag value
    assert labels["customer"] == 'q"uote_slash'  # backslash normalised (servers disagree)
    assert labels["u"] == "zoné"
    assert vm.export("esc_ratio")[0]["values"] == [0.5]


def test_outage_mid_stream_delivers_every_point_exactly_once(
    vm: VictoriaMetrics, tmp_path: Path
) -> None:
    w = writer(vm.url, tmp_path, batch_size=25)
    sent = 0
    for batch in range(12):
        w.write(points("outage", 20, NOW_MS + batch * 20)[:])
        if batch == 3:
            assert w.flush() == 80
            vm.stop()
        elif batch in (5, 8):
            assert w.flush() == 0  # server down: nothing lost, nothing raised
            assert w.pending() == (batch - 3) * 20
        sent += 20
    vm.start()
    assert w.flush() == sent - 80
    assert w.pending() == 0
    got = exported(vm, "outage_f", sent)
    expected = [(NOW_MS + i, float(i % 20)) for i in range(sent)]
    assert got == expected  # same series, same timestamps, no gap, no duplicate
    w.close()


def test_queue_survives_a_restart_of_the_writer(vm: VictoriaMetrics, tmp_path: Path) -> None:
    vm.stop()
    try:
        w = writer(vm.url, tmp_path)
        w.write(points("restart", 30))
        w.close()  # its last flush fails: the points stay on disk
        seg = sorted((tmp_path / "buffer").glob("*.lp"))[-1]
        with seg.open("ab") as f:
            f.write(b"restart,t=a f=99i 17")  # a write torn by a crash: never acknowledged
    finally:
        vm.start()
    w2 = writer(vm.url, tmp_path)
    assert w2.pending() == 30
    assert w2.flush() == 30
    assert [v for _, v in exported(vm, "restart_f", 30)] == [float(i) for i in range(30)]


def test_full_buffer_drops_oldest_and_says_what(
    vm: VictoriaMetrics, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    size = len(points("bound", 1)[0]) + 1
    vm.stop()
    try:
        w = writer(vm.url, tmp_path, batch_size=10, buffer_max_bytes=2048)
        with caplog.at_level(logging.ERROR, logger="monitor.timeseries"):
            for i in range(10):
                w.write(points("bound", 10, NOW_MS + i * 10))
        assert w.flush() == 0
    finally:
        vm.start()
    kept = w.pending()
    assert kept * size <= 2048 < (kept + 10) * size
    dropped = 100 - kept
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and all("dropped the oldest" in e for e in errors)
    assert sum(int(e.split("oldest ")[1].split()[0]) for e in errors) == dropped
    first = dt.datetime.fromtimestamp(NOW_MS / 1000, dt.UTC).isoformat(timespec="seconds")
    assert f"from {first}" in errors[0]
    assert w.flush() == kept
    got = exported(vm, "bound_f", kept)
    assert [t for t, _ in got] == [NOW_MS + i for i in range(dropped, 100)]  # the newest survive


def test_batch_larger_than_the_bound_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    w = writer("http://127.0.0.1:9", tmp_path, buffer_max_bytes=1024, batch_size=1000)
    with caplog.at_level(logging.ERROR, logger="monitor.timeseries"):
        w.write(points("big", 100))
    assert w.pending() == 0
    assert "refused a batch larger than the bound: 100 points" in caplog.text


def test_newline_inside_a_point_is_an_error(tmp_path: Path) -> None:
    w = writer("http://127.0.0.1:9", tmp_path)
    with pytest.raises(ValueError, match="newline"):
        w.write(["m f=1i 1\nm f=2i 2"])
    assert w.pending() == 0


def test_null_writer_does_nothing() -> None:
    w = open_writer(None)
    assert isinstance(w, NullWriter)
    w.write(["m f=1i 1"])
    assert (w.flush(), w.pending()) == (0, 0)
    w.close()


# -- status handling, against a scripted HTTP server in the test process -------------------


@contextmanager
def scripted_server(statuses: list[int]) -> Iterator[list[dict[str, object]]]:
    """An HTTP server answering ``statuses`` in turn (then 204); yields the requests it saw."""
    seen: list[dict[str, object]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            seen.append({"path": self.path, "body": body.decode(), "headers": dict(self.headers)})
            status = statuses.pop(0) if statuses else 204
            self.send_response(status)
            if status == 429:
                self.send_header("Retry-After", "0")
            payload = b'{"code":"invalid","message":"unable to parse"}' if status != 204 else b""
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    seen.append({"url": f"http://127.0.0.1:{server.server_address[1]}"})
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()


def test_bad_data_is_quarantined_and_the_queue_goes_on(tmp_path: Path) -> None:
    with scripted_server([400]) as seen:
        w = writer(str(seen.pop(0)["url"]), tmp_path, batch_size=5)
        w.write(points("q", 10))
        assert w.flush() == 5
    quarantined = list((tmp_path / "buffer" / "quarantine").glob("*.lp"))
    assert len(quarantined) == 1
    assert quarantined[0].read_text().splitlines() == points("q", 5)
    assert "HTTP 400" in quarantined[0].with_suffix(".reason").read_text()
    assert [r["body"] for r in seen][1] == "\n".join(points("q", 10)[5:]) + "\n"
    headers = seen[0]["headers"]
    assert isinstance(headers, dict) and headers["Content-Encoding"] == "gzip"
    assert "/api/v2/write" in str(seen[0]["path"]) and "precision=ns" in str(seen[0]["path"])


def test_429_and_5xx_are_retried_then_kept(tmp_path: Path) -> None:
    with scripted_server([429, 503]) as seen:
        w = writer(str(seen.pop(0)["url"]), tmp_path)
        w.write(points("r", 3))
        assert w.flush() == 3  # third attempt succeeds
        assert len(seen) == 3
    with scripted_server([500, 502, 503]) as seen:
        w = writer(str(seen.pop(0)["url"]), tmp_path / "2")
        w.write(points("r", 3))
        assert w.flush() == 0  # three attempts failed: kept for the next flush
        assert w.pending() == 3
        assert w.flush() == 3


def test_auth_failure_keeps_the_data(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with scripted_server([401]) as seen:
        w = writer(
            str(seen.pop(0)["url"]), tmp_path, token="user:password", bucket="repmon/autogen"
        )
        w.write(points("a", 2))
        with caplog.at_level(logging.ERROR, logger="monitor.timeseries"):
            assert w.flush() == 0
        assert w.pending() == 2
        assert "HTTP 401" in caplog.text
        assert w.flush() == 2
    assert "bucket=repmon%2Fautogen" in str(seen[1]["path"])
    headers = seen[1]["headers"]
    assert isinstance(headers, dict) and headers["Authorization"] == "Token user:password"


def test_a_404_says_what_to_check(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An InfluxDB without the v2 write API (1.7 and older) answers 404: the log says why."""
    with scripted_server([404]) as seen:
        w = writer(str(seen.pop(0)["url"]), tmp_path)
        w.write(points("n", 2))
        with caplog.at_level(logging.ERROR, logger="monitor.timeseries"):
            assert w.flush() == 0
        assert w.pending() == 2
    assert "HTTP 404" in caplog.text and "no InfluxDB v2 write API" in caplog.text


# -- point builders --------------------------------------------------------------------------

AT = dt.datetime(2026, 1, 2, 3, 0, tzinfo=dt.UTC)
NS = timestamp_ns(AT)


def test_check_points_dnsbl_hygiene_and_zone_counts() -> None:
    results = [
        CheckResult("192.0.2.1", "dnsbl", "zen.example", "problem", severity="critical"),
        CheckResult("192.0.2.1", "dnsbl", "bl.example", "unknown", error="timeout"),
        CheckResult("192.0.2.2", "dnsbl", "zen.example", "ok"),
        CheckResult("ex.example", "dkim", "s1", "ok"),
        CheckResult("ex.example", "dkim", "s2", "unknown", error="SERVFAIL"),
        CheckResult("ex.example", "spf", "", "problem", severity="high"),
    ]
    got = check_points(results, AT, {"192.0.2.1": ("bulk", "acme")})
    assert got == [
        "dnsbl,customer=acme,pool=bulk,severity=critical,target=192.0.2.1,target_type=ip,"
        f"zone=zen.example listed=1i,unknown=0i {NS}",
        # unknown: no "listed" field, so it is never read as clean
        "dnsbl,customer=acme,pool=bulk,severity=none,target=192.0.2.1,target_type=ip,"
        f"zone=bl.example unknown=1i {NS}",
        "dnsbl,customer=none,pool=none,severity=none,target=192.0.2.2,target_type=ip,"
        f"zone=zen.example listed=0i,unknown=0i {NS}",
        "hygiene,check=dkim,customer=none,pool=none,target=ex.example,target_type=domain "
        f"ok=0i,problem=0i,unknown=1i,state=1i {NS}",
        "hygiene,check=spf,customer=none,pool=none,target=ex.example,target_type=domain "
        f"ok=0i,problem=1i,unknown=0i,state=2i {NS}",
        f"dnsbl_zone,zone=zen.example queries=2i,unknown=0i,listed=1i {NS}",
        f"dnsbl_zone,zone=bl.example queries=1i,unknown=1i,listed=0i {NS}",
    ]


def test_feedback_points_bound_receiving_domains_and_sum_what_collapses() -> None:
    base = {"bucket_start": AT, "sending_ip": "192.0.2.1", "pool": "bulk", "customer": "acme"}
    rows = [
        {**base, "kind": "bounce", "category": "bad-mailbox", "receiving_domain": "Gmail.com",
         "count": 3},
        {**base, "kind": "bounce", "category": "bad-mailbox", "receiving_domain": "a.example",
         "count": 2},
        {**base, "kind": "bounce", "category": "bad-mailbox", "receiving_domain": "b.example",
         "count": 4},
        {**base, "sending_ip": "", "pool": "", "customer": "", "kind": "dmarc-failure",
         "category": "", "receiving_domain": "", "count": 1},
    ]  # fmt: skip
    got = feedback_points(rows)
    tail = "customer=acme,kind=bounce,pool=bulk"
    assert got == [
        f"feedback,category=bad-mailbox,{tail},receiving_domain=gmail.com,sending_ip=192.0.2.1 "
        f"bounce=3i,hard_bounce=3i {NS}",
        f"feedback,category=bad-mailbox,{tail},receiving_domain=other,sending_ip=192.0.2.1 "
        f"bounce=6i,hard_bounce=6i {NS}",
        "feedback,category=none,customer=none,kind=dmarc-failure,pool=none,receiving_domain=other,"
        f"sending_ip=unattributed dmarc_failure=1i {NS}",
    ]
    assert receiving_domain_tag("hotmail.com.") == "hotmail.com"
    assert receiving_domain_tag("mx.customer.example") == "other"
    assert receiving_domain_tag("a.example", providers={"a.example"}) == "a.example"


def test_sent_dmarc_sweep_and_case_points() -> None:
    sent = [
        {"bucket_start": AT, "sending_ip": "192.0.2.1", "source": "http", "count": 100},
        {"bucket_start": AT, "sending_ip": "192.0.2.1", "source": "postfix-log", "count": 5},
    ]
    assert sent_points(sent, {"192.0.2.1": ("bulk", "acme")}) == [
        "feedback,category=none,customer=acme,kind=sent,pool=bulk,receiving_domain=all,"
        f"sending_ip=192.0.2.1 sent=105i {NS}"
    ]
    rec = {"end": AT, "org_name": "google.com", "count": 10, "disposition": "none",
           "header_from": "Ex.example", "dkim": "pass", "spf": "fail"}  # fmt: skip
    rows = [
        {**rec, "source_ip": "192.0.2.1", "pool": "bulk", "customer": "acme"},
        {**rec, "source_ip": "198.18.0.1", "pool": "", "customer": "", "dkim": "fail"},
        {**rec, "source_ip": "198.18.0.2", "pool": "", "customer": "", "dkim": "fail"},
        {**rec, "source_ip": "198.18.0.3", "end": None},
    ]
    assert dmarc_points(rows) == [
        "dmarc,alignment=pass,customer=acme,disposition=none,header_from=ex.example,pool=bulk,"
        f"reporter=google.com,source_ip=192.0.2.1 messages=10i {NS}",
        "dmarc,alignment=fail,customer=none,disposition=none,header_from=ex.example,pool=none,"
        f"reporter=google.com,source_ip=other messages=20i {NS}",
    ]
    assert sweep_points("dnsbl", AT, 2.5, 10, 40, 1) == [
        f"sweep,kind=dnsbl duration_s=2.5,targets=10i,queries=40i,unknown=1i {NS}"
    ]
    assert case_points({("high", "complaint-rate"): 2, ("critical", "dnsbl-listing"): 0}, AT) == [
        f"cases,severity=critical,type=dnsbl-listing open=0i {NS}",
        f"cases,severity=high,type=complaint-rate open=2i {NS}",
    ]


def test_builders_round_trip_through_victoria_metrics(vm: VictoriaMetrics, tmp_path: Path) -> None:
    at = dt.datetime.fromtimestamp(NOW_MS / 1000, dt.UTC)
    results = [CheckResult("192.0.2.9", "dnsbl", "zen.example", "problem", severity="high")]
    w = writer(vm.url, tmp_path)
    w.write(check_points(results, at, {"192.0.2.9": ("bulk", "acme")}))
    w.write(sweep_points("dnsbl", at, 1.25, 1, 1, 0))
    assert w.flush() == 3
    exported(vm, "(dnsbl|sweep)_.*", 7)
    (listed,) = vm.export("dnsbl_listed")
    assert listed["metric"]["zone"] == "zen.example" and listed["metric"]["severity"] == "high"
    assert listed["values"] == [1] and listed["timestamps"] == [NOW_MS]
    assert vm.export("sweep_duration_s")[0]["values"] == [1.25]


def test_only_hard_categories_count_as_hard_bounces() -> None:
    row = {"bucket_start": AT, "sending_ip": "192.0.2.1", "kind": "bounce", "count": 2,
           "receiving_domain": "gmail.com"}  # fmt: skip
    (soft,) = feedback_points([{**row, "category": "reputation"}])
    (hard,) = feedback_points([{**row, "category": "bad-domain"}])
    assert soft.endswith(f" bounce=2i {NS}")
    assert hard.endswith(f" bounce=2i,hard_bounce=2i {NS}")


def test_one_writer_per_buffer_dir(tmp_path: Path) -> None:
    cfg = InfluxConfig.model_validate({"url": "http://127.0.0.1:9", "buffer_dir": str(tmp_path)})
    first = open_writer(cfg, name="daemon")
    with pytest.raises(BufferBusy, match="in use by another writer"):
        open_writer(cfg, name="daemon")
    sink = open_writer(cfg, name="sink")  # its own sub-directory
    sink.write(points("n", 1))
    assert (sink.pending(), first.pending()) == (1, 0)
