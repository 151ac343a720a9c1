"""A guard that keeps the test process off the network: loopback only.

Every ``connect``/``sendto`` of the test process to an address outside 127.0.0.0/8 and ::1
is refused (``OSError``) and recorded; the session fails if anything was recorded, even when
the code under test turned the error into an ``unknown``. Subprocesses the tests start
(daemons under test) are not covered by it; their configs point at loopback servers.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

violations: list[str] = []

_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_sendto = socket.socket.sendto


def _allowed(address: Any) -> bool:
    if not isinstance(address, tuple):
        return True  # AF_UNIX paths
    host = address[0]
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return host == "localhost"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _check(address: Any) -> None:
    if not _allowed(address):
        violations.append(repr(address))
        raise OSError(f"the test network guard refused a connection to {address!r}")


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _check(address)
    return _connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _check(address)
    return _connect_ex(self, address)


def _guarded_sendto(self: socket.socket, data: Any, *args: Any) -> int:
    _check(args[-1])
    return _sendto(self, data, *args)


def install() -> None:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    socket.socket.sendto = _guarded_sendto  # type: ignore[method-assign,assignment]
