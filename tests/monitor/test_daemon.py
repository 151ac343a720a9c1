"""``repmon run`` end to end: real rbldnsd, nsd, VictoriaMetrics, webhook receiver, SMTP."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from monitor.cli import main
from monitor.daemon import JOBS
from monitor.store import Store
from monitor.store.schema import feedback_events, feedback_messages
from tests.configs import blocklists, code, pool
from tests.daemon_support import (
    Daemon,
    arf_complaint,
    http_json,
    send_mail,
    wait_for,
    webhooks,
)
from tests.servers import free_port, nsd, rbldnsd
from tests.tsdb_servers import victoria_metrics

pytestmark = pytest.mark.slow

TOKEN = "test-token-123"
LISTED = """:127.0.0.2:Listed for spam $
127.0.0.2
192.0.2.1
"""
CLEAN = """:127.0.0.2:Listed for spam $
127.0.0.2
"""
CUSTOMER_ZONE = """
@ IN TXT "v=spf1 ip4:192.0.2.0/24 -all"
_dmarc IN TXT "v=DMARC1; p=reject; rua=mailto:dmarc@customer.example"
@ IN MX 10 mx.customer.example.
mx IN A 192.0.2.25
"""
REVERSE_ZONE = """
1 IN PTR mta1.customer.example.
2 IN PTR mta2.customer.example.
"""
#: the mailbox provider's feedback loop sends from 127.0.0.1: its complaints authenticate (SPF)
FBL_ZONE = """
@ IN TXT "v=spf1 ip4:127.0.0.1 -all"
"""


def write_config(
    path: Path,
    nameservers: list[str],
    store_url: str,
    hook_url: str,
    vm_url: str | None,
    sink_port: int,
    api_port: int,
    spool: Path,
) -> None:
    influx = (
        f'[influxdb]\nurl = "{vm_url}"\ntoken = "x"\norg = "repmon"\nbucket = "repmon"\n'
        f'flush_interval = 0.5\nbuffer_dir = "{spool.parent / "influx-buffer"}"\n'
        if vm_url
        else ""
    )
    bl = {
        "zone": "bl.example",
        "type": "ip",
        "codes": {"127.0.0.2": code("spam source", "critical")},
        "delist": "https://bl.example/lookup?{target}",
    }
    path.write_text(
        blocklists(nameservers, [bl])
        + pool("shared-1", ["192.0.2.1/32", "192.0.2.2/32"], "acme", ["customer.example"])
        + f"""
[store]
url = "{store_url}"

[sink]
listen = "127.0.0.1:{sink_port}"
accept_domains = ["fbl.repmon.example"]
spool = "{spool}"

[[feedback.sources]]
domain = "fbl.mailbox.example"
kinds = ["complaint"]

[schedule]
dnsbl_sweep = "2s"
hygiene_sweep = "1h"
evaluate = "1s"
timeseries_flush = "1s"
spool = "1s"
housekeeping = "1h"
jitter = "0s"

[rules]
hold_down = "3s"

[rules.complaints]
min_volume = 1000

[[notify.webhooks]]
url = "{hook_url}"
format = "json"

[notify]
backoff = "1s"

[api]
listen = "127.0.0.1:{api_port}"
token = "{TOKEN}"
open_reads = true

{influx}
"""
    )


def test_run_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dns_port = free_port()
    sink_port, api_port = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_STREAM)
    api = f"http://127.0.0.1:{api_port}"
    store_url = f"sqlite:///{tmp_path / 'repmon.db'}"
    zones = {
        "customer.example": CUSTOMER_ZONE,
        "2.0.192.in-addr.arpa": REVERSE_ZONE,
        "fbl.mailbox.example": FBL_ZONE,
    }
    with ExitStack() as stack:
        auth = stack.enter_context(nsd(zones))
        vm = stack.enter_context(victoria_metrics())
        hooks = stack.enter_context(webhooks())
        listed = ExitStack()
        bl = listed.enter_context(rbldnsd({"bl.example": ("ip4set", LISTED)}, port=dns_port))
        stack.push(listed)
        cfg = tmp_path / "repmon.toml"
        write_config(
            cfg,
            [bl.nameserver, auth.nameserver],
            store_url,
            hooks.url,
            vm.url,
            sink_port,
            api_port,
            tmp_path / "spool",
        )
        daemon = Daemon(cfg, tmp_path)
        stack.callback(daemon.stop_quietly)
        health = wait_for("the API", lambda: http_json(f"{api}/healthz"))
        assert health["leader"] is True
        # the first log lines say what is watched and where
        first = " ".join(str(line.get("msg", "")) for line in daemon.lines()[:8])
        assert "watching 2 IP addresses and 1 domains in 1 pools; 1 blocklist zones" in first
        assert f"127.0.0.1:{sink_port}" in first

        # 1. a listed inventory IP opens a blocklisting case, notified once; series appear
        case = wait_for("a blocklisting case", lambda: cases_of(api, "blocklisting"))[0]
        assert case["subject"] == "192.0.2.1" and case["severity"] == "critical"
        assert case["pool"] == "shared-1" and case["customer"] == "acme"
        wait_for("the opening webhook", lambda: notices(hooks, case["id"]))
        assert wait_for("dnsbl series in VictoriaMetrics", lambda: vm.export("dnsbl.*"))

        # ad hoc checks over HTTP give what `repmon check --json` gives; OpenAPI is served
        rows = http_json(f"{api}/v1/check/192.0.2.1?only=dnsbl")
        assert [(r["source"], r["status"], r["codes"]) for r in rows] == [
            ("bl.example", "problem", ["127.0.0.2"])
        ]
        assert "/v1/cases/{case_id}/ack" in http_json(f"{api}/openapi.json")["paths"]

        # 2. complaints by SMTP above the threshold open a complaint case
        http_json(f"{api}/v1/volume", {"ip": "192.0.2.2", "count": 1000}, token=TOKEN)
        for n in range(5):
            send_mail(sink_port, arf_complaint("192.0.2.2", n))
        # one case per IP and one per customer (the customer's rate over all its IPs); the
        # case opens at 0.1 % and escalates to critical at 0.3 % as the complaints arrive
        complaint = wait_for(
            "a critical complaint case with all 5 complaints",
            lambda: [
                c
                for c in cases_of(api, "complaints")
                if c["subject"] == "192.0.2.2" and c["numbers"]["numerator"] == 5
            ],
        )[0]
        assert complaint["numbers"]["denominator"] == 1000
        assert complaint["severity"] == "critical"
        wait_for("the complaint webhook", lambda: notices(hooks, complaint["id"]))
        assert wait_for("feedback series", lambda: vm.export("feedback.*"))

        # state changes need the token
        req = urllib.request.Request(f"{api}/v1/cases/{complaint['id']}/ack", method="POST")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=5)
        assert err.value.code in (401, 403)
        acked = http_json(f"{api}/v1/cases/{complaint['id']}/ack", {}, token=TOKEN)
        assert acked["state"] == "acknowledged"

        # 3. delisting resolves the blocklisting case after the hold-down, notified
        listed.close()
        stack.enter_context(rbldnsd({"bl.example": ("ip4set", CLEAN)}, port=dns_port))
        resolved = wait_for(
            "the case to resolve",
            lambda: http_json(f"{api}/v1/cases/{case['id']}")["state"] == "resolved",
        )
        assert resolved
        wait_for(
            "the resolution webhook",
            lambda: any(
                n.get("event", {}).get("kind") == "resolved" for n in notices(hooks, case["id"])
            ),
        )
        assert "repmon_job_runs_total" in metrics_text(api)
        status = http_json(f"{api}/v1/status")
        assert {j["job"] for j in status["jobs"]} >= {"dnsbl_sweep", "evaluate"}

        # 4. SIGTERM: clean exit, nothing lost
        assert daemon.terminate() == 0
        assert count_rows(store_url) == (5, 5)
        assert not list((tmp_path / "spool" / "new").glob("*"))
        assert any("stopped cleanly" in str(x.get("msg")) for x in daemon.lines())

    # the jobs' last and next runs stay visible in `repmon status`
    assert main(["status", "--config", str(cfg), "--json"]) == 0
    jobs = {j["job"]: j for j in json.loads(capsys.readouterr().out)["jobs"]}
    assert set(jobs) == set(JOBS)  # the application's own and one per scheduled collector
    assert {"dnsbl_sweep", "hygiene_sweep", "evaluate", "housekeeping"} <= set(jobs)
    assert jobs["dnsbl_sweep"]["last_status"] == "ok" and jobs["dnsbl_sweep"]["next_run"]


def cases_of(api: str, case_type: str) -> list[dict[str, Any]]:
    return [c for c in http_json(f"{api}/v1/cases?state=all") if c["type"] == case_type]


def notices(hooks: Any, case_id: int) -> list[dict[str, Any]]:
    return [h for h in hooks.received if h.get("case", {}).get("id") == case_id]


def metrics_text(api: str) -> str:
    with urllib.request.urlopen(f"{api}/metrics", timeout=5) as r:
        return r.read().decode()


def count_rows(store_url: str) -> tuple[int, int]:
    store = Store.open(store_url)
    try:
        with store.begin() as conn:
            msgs = conn.execute(sa.select(sa.func.count()).select_from(feedback_messages)).scalar()
            events = conn.execute(sa.select(sa.func.count()).select_from(feedback_events)).scalar()
        return int(msgs or 0), int(events or 0)
    finally:
        store.close()


def test_two_instances_on_postgresql_one_leader_takeover(tmp_path: Path, pg_url: str) -> None:
    dns_port = free_port()
    ports = {n: (free_port(socket.SOCK_STREAM), free_port(socket.SOCK_STREAM)) for n in "ab"}
    with ExitStack() as stack:
        hooks = stack.enter_context(webhooks())
        bl = stack.enter_context(rbldnsd({"bl.example": ("ip4set", LISTED)}, port=dns_port))
        daemons = {}
        for name, (sink_port, api_port) in ports.items():
            cfg = tmp_path / f"{name}.toml"
            write_config(
                cfg,
                [bl.nameserver],
                pg_url,
                hooks.url,
                None,
                sink_port,
                api_port,
                tmp_path / f"spool-{name}",
            )
            daemons[name] = Daemon(cfg, tmp_path, name)
            stack.callback(daemons[name].stop_quietly)
        apis = {n: f"http://127.0.0.1:{p[1]}" for n, p in ports.items()}
        health = {
            n: wait_for(f"API {n}", lambda a=a: http_json(f"{a}/healthz")) for n, a in apis.items()
        }
        leaders = wait_for(
            "exactly one leader",
            lambda: [n for n, a in apis.items() if http_json(f"{a}/healthz")["leader"]],
        )
        assert len(leaders) == 1, health
        leader = leaders[0]
        other = "b" if leader == "a" else "a"

        case = wait_for("a blocklisting case", lambda: cases_of(apis[other], "blocklisting"))[0]
        # the same complaint delivered to both sinks (two MX) is counted once
        raw = arf_complaint("192.0.2.2", 1)
        for sink_port, _ in ports.values():
            send_mail(sink_port, raw)
        wait_for("the complaint stored", lambda: count_rows(pg_url)[0] >= 1)

        # the leader dies: the other instance takes over and keeps sweeping
        daemons[leader].kill()
        wait_for(
            "the other instance to lead",
            lambda: http_json(f"{apis[other]}/healthz")["leader"],
            timeout=30,
        )
        wait_for(
            "a sweep by the new leader",
            lambda: any(
                j["job"] == "dnsbl_sweep" and j["instance"] == other and j["last_status"] == "ok"
                for j in http_json(f"{apis[other]}/v1/status")["jobs"]
            ),
        )
        wait_for("both spools drained", lambda: count_rows(pg_url) == (1, 1))
        blocklisting = cases_of(apis[other], "blocklisting")
        assert [c["id"] for c in blocklisting] == [case["id"]]  # never a duplicate
        assert daemons[other].terminate() == 0
        assert count_rows(pg_url) == (1, 1)
