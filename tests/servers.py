"""Real servers the tests start on loopback ports, each in its own temporary directory.

Every helper returns a running server and stops it on exit. Nothing here
talks to an address outside 127.0.0.0/8 or ::1.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.query
import dns.rcode


def free_port(kind: int = socket.SOCK_DGRAM, also: int | None = None) -> int:
    """A port free on 127.0.0.1 for ``kind`` (and for ``also``, e.g. TCP too)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if also is None:
            return port
        try:
            with socket.socket(socket.AF_INET, also) as s2:
                s2.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


def world_readable_dir(prefix: str) -> Path:
    """A temp dir that daemons dropping root (rbldnsd, nsd) can read."""
    d = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    d.chmod(0o755)
    return d


def require(binary: str) -> str:
    path = shutil.which(binary) or (
        f"/usr/sbin/{binary}" if os.path.exists(f"/usr/sbin/{binary}") else None
    )
    if path is None:
        import pytest

        pytest.skip(f"{binary} is not installed (bash .ci/run installs it)")
    return path


def wait_dns(port: int, qname: str, deadline: float = 10.0) -> None:
    """Wait until a DNS server on 127.0.0.1:port answers (any rcode)."""
    end = time.monotonic() + deadline
    q = dns.message.make_query(qname, "SOA")
    while time.monotonic() < end:
        try:
            dns.query.udp(q, "127.0.0.1", port=port, timeout=0.3)
            return
        except Exception:
            time.sleep(0.05)
    raise RuntimeError(f"DNS server on port {port} did not answer {qname}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Rbldnsd:
    port: int
    directory: Path

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"


@contextmanager
def rbldnsd(zones: Mapping[str, tuple[str, str]], port: int | None = None) -> Iterator[Rbldnsd]:
    """Run rbldnsd serving ``zones``: ``{"bl.example": ("ip4set", "<file text>")}``.

    Several datasets for one zone: give keys ``"bl.example#2"`` (the part after
    ``#`` is dropped). Each file gets an ``$SOA`` line so negative answers carry a TTL.
    """
    binary = require("rbldnsd")
    d = world_readable_dir("repmon-rbldnsd-")
    port = port or free_port()
    specs = []
    for i, (key, (dstype, text)) in enumerate(zones.items()):
        zone = key.split("#")[0]
        fname = f"z{i}.{dstype}"
        soa = f"$SOA 60 ns.{zone}. hostmaster.{zone}. 0 1h 1h 2d 60\n"
        (d / fname).write_text(soa + text)
        (d / fname).chmod(0o644)
        specs.append(f"{zone}:{dstype}:{fname}")
    proc = subprocess.Popen(
        [binary, "-n", "-f", "-q", "-b", f"127.0.0.1/{port}", "-w", str(d), *specs],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_dns(port, next(iter(zones)).split("#")[0])
        yield Rbldnsd(port, d)
    finally:
        _stop(proc)
        shutil.rmtree(d, ignore_errors=True)


@dataclass
class Nsd:
    port: int
    directory: Path

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"


@contextmanager
def nsd(zones: Mapping[str, str], port: int | None = None) -> Iterator[Nsd]:
    """Run nsd as an authoritative server for ``zones``: ``{"example.com": "<zone file text>"}``.

    The zone text may omit ``$ORIGIN``/``$TTL``/SOA/NS: they are added.
    """
    binary = require("nsd")
    d = world_readable_dir("repmon-nsd-")
    port = port or free_port(socket.SOCK_DGRAM, also=socket.SOCK_STREAM)
    conf = [
        "server:",
        f"  ip-address: 127.0.0.1@{port}",
        f"  port: {port}",
        '  username: ""',
        '  chroot: ""',
        f'  zonesdir: "{d}"',
        '  database: ""',
        f'  pidfile: "{d}/nsd.pid"',
        f'  xfrdfile: "{d}/xfrd.state"',
        f'  zonelistfile: "{d}/zone.list"',
        f'  logfile: "{d}/nsd.log"',
        "  server-count: 1",
        # nsd rate-limits answers per source by default; every test client is 127.0.0.1
        "  rrl-ratelimit: 0",
        "  verbosity: 0",
        "remote-control:",
        "  control-enable: no",
    ]
    for zone, text in zones.items():
        zone = zone.rstrip(".")
        fname = f"{zone}.zone"
        head = f"$ORIGIN {zone}.\n$TTL 60\n"
        if " SOA " not in text:
            head += f"@ IN SOA ns.{zone}. hostmaster.{zone}. 1 3600 600 86400 60\n"
        if " NS " not in text:
            head += f"@ IN NS ns.{zone}.\n"
        (d / fname).write_text(head + text + "\n")
        conf += ["zone:", f"  name: {zone}", f"  zonefile: {fname}"]
    (d / "nsd.conf").write_text("\n".join(conf) + "\n")
    check = (
        subprocess.run(["nsd-checkconf", str(d / "nsd.conf")], capture_output=True, text=True)
        if shutil.which("nsd-checkconf")
        else None
    )
    if check is not None and check.returncode != 0:
        raise RuntimeError(f"nsd config: {check.stderr}")
    proc = subprocess.Popen(
        [binary, "-c", str(d / "nsd.conf"), "-d"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_dns(port, next(iter(zones)))
        yield Nsd(port, d)
    finally:
        _stop(proc)
        shutil.rmtree(d, ignore_errors=True)


@contextmanager
def silent_udp_server() -> Iterator[int]:
    """A UDP port bound on 127.0.0.1 that reads queries and never answers (timeouts)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    try:
        yield s.getsockname()[1]
    finally:
        s.close()


def rcode_of(port: int, qname: str, rdtype: str = "A") -> str:
    r = dns.query.udp(dns.message.make_query(qname, rdtype), "127.0.0.1", port=port, timeout=2)
    return dns.rcode.to_text(r.rcode())
