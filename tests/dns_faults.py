"""DNS servers that fail on purpose, on 127.0.0.1 only, for the bulk engine's fault tests.

* :func:`zone_server` — a UDP server in its own process that answers questions
  under some zones and never answers those under others (a resolver whose path
  to one blocklist is dead); zones can be switched while it runs.
* :func:`truncating_server` — answers every UDP query with TC=1, and on the same
  port accepts TCP connections and never answers them (or has no TCP at all).

Silent and refusing ports are in :mod:`tests.servers`. Nothing here talks to an
address outside 127.0.0.0/8.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
#: the RFC 5782 positive test point, reversed: answered 127.0.0.2 so that self-tests pass
_TEST_POINT = b"\x012\x010\x010\x03127"


def _wire(zone: str) -> bytes:
    labels = zone.lower().strip(".").split(".")
    return b"".join(bytes([len(x)]) + x.encode("ascii") for x in labels) + b"\x00"


def _question_end(data: bytes) -> int:
    """Offset just past the question name at 12; -1 if it cannot be read."""
    at = 12
    while at < len(data):
        length = data[at]
        if length == 0:
            return at + 1
        if length >= 64:
            return -1
        at += 1 + length
    return -1


def _reply(query: bytes, end: int, rcode: int, answers: bytes = b"", ancount: int = 0) -> bytes:
    flags = 0x8180 | rcode  # QR, RD, RA
    header = query[:2] + struct.pack(">HHHHH", flags, 1, ancount, 0, 0)
    return header + query[12 : end + 4] + answers


def _a_record(address: str) -> bytes:
    return b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton(address)


# --- a server that answers some zones and not others -----------------------------------------


def _serve_zones(answered: list[str], silent: list[str]) -> None:
    """The zone server's process: prints its port, then serves until stdin closes.

    Lines on stdin switch zones: ``answer ZONE`` or ``silence ZONE``.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    sock.bind(("127.0.0.1", 0))
    live = {_wire(z) for z in answered}
    dead = {_wire(z) for z in silent}

    def control() -> None:
        for line in sys.stdin:
            verb, _, zone = line.strip().partition(" ")
            wire = _wire(zone)
            if verb == "answer":
                dead.discard(wire)
                live.add(wire)
            elif verb == "silence":
                live.discard(wire)
                dead.add(wire)
        os._exit(0)  # stdin closed: the test is over (a blocked recvfrom would not wake)

    threading.Thread(target=control, daemon=True).start()
    print(sock.getsockname()[1], flush=True)
    positive = _a_record("127.0.0.2")
    while True:
        try:
            query, peer = sock.recvfrom(512)
        except OSError:
            return
        end = _question_end(query)
        if end < 0 or len(query) < end + 4:
            continue
        name = query[12:end]
        zone = next((z for z in live if name.endswith(z)), None)
        if zone is None:
            if any(name.endswith(z) for z in dead):
                continue  # this zone never answers
            reply = _reply(query, end, 5)  # REFUSED: not a zone of ours
        elif name.startswith(_TEST_POINT) and query[end : end + 2] == b"\x00\x01":
            reply = _reply(query, end, 0, positive, 1)
        else:
            reply = _reply(query, end, 3)  # NXDOMAIN
        with contextlib.suppress(OSError):
            sock.sendto(reply, peer)


@dataclass
class ZoneServer:
    port: int
    process: subprocess.Popen[str]

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def answer(self, zone: str) -> None:
        """Start answering questions under ``zone`` (NXDOMAIN, 127.0.0.2 for the test point)."""
        self._send(f"answer {zone}")

    def silence(self, zone: str) -> None:
        """Stop answering questions under ``zone`` at all."""
        self._send(f"silence {zone}")

    def _send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()


@contextlib.contextmanager
def zone_server(answered: Iterable[str], silent: Iterable[str] = ()) -> Iterator[ZoneServer]:
    """A UDP DNS server on 127.0.0.1, in its own process so it has a CPU of its own.

    Questions under ``answered`` get NXDOMAIN (the RFC 5782 test point
    ``2.0.0.127.ZONE A`` gets 127.0.0.2); those under ``silent`` get nothing;
    anything else gets REFUSED.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.dns_faults", ",".join(answered), ",".join(silent)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"zone server did not start: {line!r}")
        yield ZoneServer(int(line), proc)
    finally:
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _read(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


# --- truncated answers, and a TCP port that never answers ------------------------------------


@dataclass
class TruncatingServer:
    port: int
    udp_queries: int = 0
    tcp_connections: int = 0

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"


@contextlib.contextmanager
def truncating_server(
    records: Mapping[str, str] | None = None, tcp: str = "hung"
) -> Iterator[TruncatingServer]:
    """Answers every UDP query on 127.0.0.1 with TC=1.

    The answer section is empty (what rate-limiting "slip" answers look like),
    except for names in ``records`` (``{"2.0.0.127.bl.example": "127.0.0.2"}``),
    which get that A record. ``tcp="hung"``: the same port accepts TCP
    connections and never answers on them; ``tcp="once"``: it answers the
    first query on each connection in full (the record, or NXDOMAIN) and
    closes it; ``tcp="none"``: nothing listens for TCP (connections are refused).
    """
    port = free_port(socket.SOCK_DGRAM, also=socket.SOCK_STREAM)
    wanted = {_wire(name): address for name, address in (records or {}).items()}
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", port))
    udp.settimeout(0.1)
    listener = None
    if tcp in ("hung", "once"):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        listener.settimeout(0.1)
    server = TruncatingServer(port)
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve_udp() -> None:
        while not stop.is_set():
            try:
                query, peer = udp.recvfrom(512)
            except TimeoutError:
                continue
            except OSError:
                return
            end = _question_end(query)
            if end < 0 or len(query) < end + 4:
                continue
            server.udp_queries += 1
            address = wanted.get(query[12:end].lower())
            if address is not None and query[end : end + 2] == b"\x00\x01":
                reply = _reply(query, end, 0, _a_record(address), 1)
            else:
                reply = _reply(query, end, 0)
            reply = reply[:2] + bytes([reply[2] | 0x02]) + reply[3:]  # TC=1
            udp.sendto(reply, peer)

    def accept_and_hold() -> None:
        assert listener is not None
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            server.tcp_connections += 1
            if tcp == "hung":
                held.append(conn)  # never read, never answered
                continue
            with conn:
                conn.settimeout(2)
                try:
                    size = struct.unpack(">H", _read(conn, 2))[0]
                    query = _read(conn, size)
                except OSError:
                    continue
                end = _question_end(query)
                if end < 0:
                    continue
                address = wanted.get(query[12:end].lower())
                if address is not None and query[end : end + 2] == b"\x00\x01":
                    reply = _reply(query, end, 0, _a_record(address), 1)
                else:
                    reply = _reply(query, end, 3)
                conn.sendall(struct.pack(">H", len(reply)) + reply)

    threads = [threading.Thread(target=serve_udp, daemon=True)]
    if listener is not None:
        threads.append(threading.Thread(target=accept_and_hold, daemon=True))
    for t in threads:
        t.start()
    try:
        yield server
    finally:
        stop.set()
        for t in threads:
            t.join()
        udp.close()
        if listener is not None:
            listener.close()
        for conn in held:
            conn.close()


if __name__ == "__main__":  # the zone server's process: ANSWERED,ZONES SILENT,ZONES
    _serve_zones([z for z in sys.argv[1].split(",") if z], [z for z in sys.argv[2].split(",") if z])
