"""Time-series servers the tests start on loopback ports: VictoriaMetrics and InfluxDB 1.x.

VictoriaMetrics accepts the InfluxDB v2 write API (what the writer speaks);
InfluxDB 1.x runs InfluxQL (what the dashboards speak). Each helper returns a
running server and stops it on exit; nothing listens outside 127.0.0.1.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.servers import free_port, require


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_http(url: str, proc: subprocess.Popen[bytes], deadline: float = 15.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"server exited with {proc.returncode}: {err[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status < 500:
                    return
        except urllib.error.HTTPError as e:
            if e.code < 500:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {deadline} s")


@dataclass
class VictoriaMetrics:
    """A running VictoriaMetrics; :meth:`stop` and :meth:`start` keep the port and data dir."""

    port: int
    directory: Path
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = require("victoria-metrics")
        self._proc = subprocess.Popen(
            [
                binary,
                f"-httpListenAddr=127.0.0.1:{self.port}",
                f"-storageDataPath={self.directory / 'data'}",
                "-retentionPeriod=10y",
                "-loggerLevel=ERROR",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _wait_http(f"{self.url}/health", self._proc)

    def stop(self) -> None:
        if self._proc is not None:
            _stop(self._proc)
            self._proc = None

    def export(self, name_regex: str) -> list[dict[str, Any]]:
        """Every series whose name matches, as ``/api/v1/export`` JSON objects (after a flush)."""
        with urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=10):
            pass
        query = urllib.parse.urlencode({"match[]": f'{{__name__=~"{name_regex}"}}'})
        with urllib.request.urlopen(f"{self.url}/api/v1/export?{query}", timeout=10) as r:
            return [json.loads(line) for line in r.read().decode().splitlines() if line]


@contextmanager
def victoria_metrics(port: int | None = None) -> Iterator[VictoriaMetrics]:
    """Run VictoriaMetrics on a free loopback port with a temporary data dir."""
    d = Path(tempfile.mkdtemp(prefix="repmon-vm-"))
    vm = VictoriaMetrics(port or free_port(socket.SOCK_STREAM), d)
    try:
        vm.start()
        yield vm
    finally:
        vm.stop()
        shutil.rmtree(d, ignore_errors=True)


@dataclass
class InfluxDB1:
    """A running InfluxDB 1.x: ``write`` line protocol (v1 ``/write``), ``query`` InfluxQL."""

    port: int
    directory: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write(self, lines: Sequence[str], db: str = "repmon", chunk: int = 5000) -> None:
        for i in range(0, len(lines), chunk):
            body = ("\n".join(lines[i : i + chunk]) + "\n").encode()
            req = urllib.request.Request(
                f"{self.url}/write?db={db}&precision=ns", data=body, method="POST"
            )
            try:
                with urllib.request.urlopen(req, timeout=30):
                    pass
            except urllib.error.HTTPError as e:
                raise RuntimeError(f"write failed: {e.code} {e.read().decode()}") from e

    def query(self, q: str, db: str = "repmon") -> dict[str, Any]:
        """The first statement's result object (``series`` and/or ``error``)."""
        params = urllib.parse.urlencode({"db": db, "q": q, "epoch": "ms"})
        try:
            with urllib.request.urlopen(f"{self.url}/query?{params}", timeout=30) as r:
                out = json.loads(r.read())
        except urllib.error.HTTPError as e:
            return {"error": f"HTTP {e.code}: {e.read().decode(errors='replace')}"}
        if "error" in out:
            return {"error": out["error"]}
        result: dict[str, Any] = out["results"][0]
        return result


@contextmanager
def influxdb1(db: str = "repmon") -> Iterator[InfluxDB1]:
    """Run InfluxDB 1.x from a generated config in a temp dir, with database ``db`` created."""
    binary = require("influxd")
    d = Path(tempfile.mkdtemp(prefix="repmon-influx-"))
    http_port = free_port(socket.SOCK_STREAM)
    rpc_port = free_port(socket.SOCK_STREAM)
    conf = f"""reporting-enabled = false
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{d}/meta"
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:{http_port}"
  log-enabled = false
[logging]
  level = "error"
[continuous_queries]
  enabled = false
"""
    (d / "influxdb.conf").write_text(conf)
    proc = subprocess.Popen(
        [binary, "-config", str(d / "influxdb.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        server = InfluxDB1(http_port, d)
        _wait_http(f"{server.url}/ping", proc)
        result = server.query(f'CREATE DATABASE "{db}"')
        if "error" in result:
            raise RuntimeError(result["error"])
        yield server
    finally:
        _stop(proc)
        shutil.rmtree(d, ignore_errors=True)
