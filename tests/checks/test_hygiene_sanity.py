"""Hygiene answers are believed only from a resolver that passes its sanity check: one that
answers NXDOMAIN to everything, or gives never-existing names an address, makes every hygiene
answer ``unknown`` (not "record missing"); an authoritative server (real nsd) passes."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import dns.message
import dns.rcode
import dns.rrset
import pytest

from checks.hygiene import check_domain, check_ip
from checks.hygiene.sanity import resolver_lies
from checks.resolver import Nameserver
from monitor.cli import main
from tests import hygiene_zones as hz
from tests.servers import nsd


@contextmanager
def lying_resolver(mode: str) -> Iterator[int]:
    """A UDP DNS server on 127.0.0.1: ``nxdomain`` to every question, or ``hijack`` (an
    address for every A question, an NS record for NS questions, NXDOMAIN for the rest)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(4096)
            except OSError:
                continue
            query = dns.message.from_wire(data)
            reply = dns.message.make_response(query)
            question = query.question[0]
            if mode == "hijack" and question.rdtype == 1:
                reply.answer.append(
                    dns.rrset.from_text(question.name, 60, "IN", "A", "198.51.100.77")
                )
            elif mode == "hijack" and question.rdtype == 2:  # NS: a root that looks fine
                reply.answer.append(dns.rrset.from_text(question.name, 60, "IN", "NS", "a.ns."))
            else:
                reply.set_rcode(dns.rcode.NXDOMAIN)
            sock.sendto(reply.to_wire(), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        sock.close()


def test_nxdomain_to_everything_is_caught() -> None:
    with lying_resolver("nxdomain") as port:
        ns = [Nameserver("127.0.0.1", port)]
        lie = asyncio.run(resolver_lies(ns, 1.0))
        assert lie and "root zone does not exist" in lie


def test_an_address_for_a_never_existing_name_is_caught() -> None:
    with lying_resolver("hijack") as port:
        lie = asyncio.run(resolver_lies([Nameserver("127.0.0.1", port)], 1.0))
        assert lie and ".invalid" in lie and "198.51.100.77" in lie


def test_a_real_authoritative_server_passes() -> None:
    with nsd(hz.zones(hz.dkim_records())) as server:
        ns = [Nameserver("127.0.0.1", server.port)]
        assert asyncio.run(resolver_lies(ns, 1.0)) is None
        # and its answers stay what they are
        results = asyncio.run(check_domain("good.test", [], ns, 1))
        assert any(r.status == "ok" for r in results)


def test_check_against_a_lying_resolver_reports_unknown_not_missing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with lying_resolver("nxdomain") as port:
        code = main(
            ["check", "example.com", "--only", "hygiene", "--resolver", f"127.0.0.1:{port}"]
        )
        out = capsys.readouterr().out
    assert code == 3, out
    assert "PROBLEM" not in out and "sanity check" in out
    with lying_resolver("nxdomain") as port:
        results = asyncio.run(check_ip("192.0.2.1", [], [Nameserver("127.0.0.1", port)], 1))
    # without the sanity check the PTR would look missing; the sweep and check guard it
    assert any(r.check == "ptr" and r.status == "problem" for r in results)
