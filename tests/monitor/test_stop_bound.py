"""SIGTERM ends ``repmon run`` within its stated bound whatever is in flight: here ad hoc
checks and a blocklist sweep waiting on a resolver that never answers, while the API and the
sink keep answering until the signal."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from monitor.daemon.monitor import STOP_BOUND_SECONDS
from tests.daemon_support import Daemon, http_json, wait_for
from tests.servers import free_port, silent_udp_server


def test_sigterm_with_checks_and_a_sweep_in_flight(tmp_path: Path) -> None:
    sink_port, api_port = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_STREAM)
    api = f"http://127.0.0.1:{api_port}"
    with silent_udp_server() as dns_port:
        config = tmp_path / "repmon.toml"
        config.write_text(
            f'[resolver]\nnameservers = ["127.0.0.1:{dns_port}"]\ntimeout = 5\nretries = 5\n'
            '[dnsbl]\ndefaults = false\n[[dnsbl.zones]]\nzone = "bl.example"\ntype = "ip"\n'
            '[[inventory.pools]]\nname = "p"\ncidrs = ["192.0.2.0/24"]\n'
            f'[store]\nurl = "sqlite:///{tmp_path / "r.db"}"\n'
            f'[sink]\nlisten = "127.0.0.1:{sink_port}"\nspool = "{tmp_path / "spool"}"\n'
            f'[api]\nlisten = "127.0.0.1:{api_port}"\nopen_reads = true\n'
            'check_deadline = "10m"\ncheck_max_targets = 256\n'
        )
        daemon = Daemon(config, tmp_path)
        try:
            wait_for("the API", lambda: http_json(f"{api}/healthz"))

            def check() -> None:
                # cut off by the stop (504, or the connection closed): expected
                with contextlib.suppress(urllib.error.URLError, OSError):
                    urllib.request.urlopen(f"{api}/v1/check/192.0.2.0/26?only=dnsbl", timeout=120)

            threads = [threading.Thread(target=check, daemon=True) for _ in range(2)]
            for t in threads:
                t.start()
            time.sleep(3)  # the checks and the first sweep are waiting on the silent resolver
            assert http_json(f"{api}/v1/status")["jobs"] is not None  # still answering
            t0 = time.monotonic()
            code = daemon.terminate(timeout=STOP_BOUND_SECONDS + 20)
            took = time.monotonic() - t0
        finally:
            daemon.stop_quietly()
    assert took < STOP_BOUND_SECONDS + 5, took
    assert code in (0, 1)
    log = " ".join(str(line.get("msg", "")) for line in daemon.lines())
    assert "Traceback" not in log
