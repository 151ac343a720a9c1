"""The test process cannot reach beyond loopback."""

from __future__ import annotations


def test_network_guard_refuses_non_loopback() -> None:
    import socket

    import pytest

    from tests import netguard

    before = list(netguard.violations)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s, pytest.raises(OSError):
        s.sendto(b"x", ("192.0.2.1", 53))
    assert netguard.violations[len(before) :] == ["('192.0.2.1', 53)"]
    del netguard.violations[len(before) :]  # this one was on purpose
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"x", ("127.0.0.1", 9))
