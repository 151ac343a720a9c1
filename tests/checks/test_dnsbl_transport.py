"""The bulk blocklist resolver against a real rbldnsd (and nsd for TCP), and its packet parser."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from checks.dnsbl.transport import (
    MALFORMED,
    NXDOMAIN,
    TXT,
    A,
    Answer,
    BulkResolver,
    encode_name,
    parse_response,
)
from checks.resolver import Nameserver, parse_nameserver
from tests.servers import Rbldnsd, nsd, rbldnsd, silent_udp_server

V6_LISTED = "2001:db8:1::5"
IP4 = """:127.0.0.2:Listed for $
127.0.0.2
10.1.0.0/22
:127.0.0.4:Exploited host $
10.2.0.5
"""
IP6 = f""":127.0.0.3:IPv6 listing $
{V6_LISTED}
"""


def v6_name(address: str, zone: str) -> str:
    return ipaddress.ip_address(address).reverse_pointer.removesuffix(".ip6.arpa") + "." + zone


@pytest.fixture(scope="module")
def server() -> Iterator[Rbldnsd]:
    with rbldnsd({"bl.example": ("ip4set", IP4), "bl.example#6": ("ip6trie", IP6)}) as srv:
        yield srv


@pytest.fixture
def resolver(server: Rbldnsd) -> Iterator[BulkResolver]:
    with BulkResolver([parse_nameserver(server.nameserver)], timeout=1.0) as r:
        yield r


def test_a_txt_nxdomain_and_refused(resolver: BulkResolver) -> None:
    got = resolver.resolve(
        [
            ("2.0.0.127.bl.example", A),
            ("2.0.0.127.bl.example.", TXT),
            ("5.0.2.10.BL.Example.", A),
            ("1.0.0.127.bl.example", A),
            ("1.1.1.10.not-served.example", A),
            ("2.0.0.127.bl.example", A),  # a duplicate gets the same answer in its place
        ]
    )
    assert got[0] == Answer(0, ("127.0.0.2",), (), None)
    assert got[1] == Answer(0, (), ("Listed for 127.0.0.2",), None)
    assert got[2].addresses == ("127.0.0.4",) and got[2].error is None
    assert got[3] == Answer(NXDOMAIN, (), (), None)
    assert got[4].error == "REFUSED" and got[4].rcode == 5 and not got[4].addresses
    assert got[5] == got[0]


def test_ipv6_nibble_names(resolver: BulkResolver) -> None:
    listed, clean = resolver.resolve(
        [(v6_name(V6_LISTED, "bl.example"), A), (v6_name("2001:db8:1::6", "bl.example"), A)]
    )
    assert listed.addresses == ("127.0.0.3",)
    assert clean.rcode == NXDOMAIN and clean.error is None


def test_thousands_of_answers_all_checked(resolver: BulkResolver) -> None:
    targets = [ipaddress.ip_address("10.1.0.0") + i for i in range(3000)]  # /22 is listed
    names = [(".".join(reversed(str(t).split("."))) + ".bl.example", A) for t in targets]
    answers = resolver.resolve(names)
    for target, ans in zip(targets, answers, strict=True):
        assert ans.error is None, (target, ans)
        if target in ipaddress.ip_network("10.1.0.0/22"):
            assert ans.addresses == ("127.0.0.2",), target
        else:
            assert ans.rcode == NXDOMAIN and not ans.addresses, target
    assert resolver.stats["sent"] >= 3000


def test_silent_server_times_out_quickly() -> None:
    with (
        silent_udp_server() as port,
        BulkResolver([Nameserver("127.0.0.1", port)], timeout=0.2, retries=1) as r,
    ):
        start = time.monotonic()
        got = r.resolve([("2.0.0.127.bl.example", A), ("3.0.0.127.bl.example", A)])
        assert time.monotonic() - start < 2.0
    assert [a.error for a in got] == ["timeout", "timeout"]
    assert all(a.rcode is None and not a.addresses for a in got)


def test_silent_first_nameserver_is_skipped(server: Rbldnsd) -> None:
    with silent_udp_server() as port:
        ns = [Nameserver("127.0.0.1", port), parse_nameserver(server.nameserver)]
        with BulkResolver(ns, timeout=0.2, retries=2) as r:
            names = [(f"{i}.0.1.10.bl.example", A) for i in range(50)]
            got = r.resolve(names)
    assert all(a.addresses == ("127.0.0.2",) and a.error is None for a in got)


def test_refused_by_one_nameserver_asks_the_next(server: Rbldnsd) -> None:
    with rbldnsd({"other.example": ("ip4set", "127.0.0.2\n")}) as other:
        ns = [parse_nameserver(other.nameserver), parse_nameserver(server.nameserver)]
        with BulkResolver(ns, timeout=1.0) as r:
            got, refused = r.resolve(
                [("2.0.0.127.bl.example", A), ("2.0.0.127.nowhere.example", A)]
            )
    assert got.addresses == ("127.0.0.2",) and got.error is None
    assert refused.error == "REFUSED"


def test_nothing_listening_is_an_error_not_an_answer() -> None:
    with silent_udp_server() as port:
        pass  # now closed: nothing listens there
    with BulkResolver([Nameserver("127.0.0.1", port)], timeout=0.2, retries=1) as r:
        (got,) = r.resolve([("2.0.0.127.bl.example", A)])
    assert got.error is not None and got.rcode is None


def test_truncated_answer_is_asked_again_over_tcp() -> None:
    long_txt = " ".join(f'"{"x" * 200}{i}"' for i in range(4))  # > 512 octets: TC over UDP
    with (
        nsd({"big.example": f"t IN TXT {long_txt}\n"}) as srv,
        BulkResolver([parse_nameserver(srv.nameserver)], timeout=1.0) as r,
    ):
        (got,) = r.resolve([("t.big.example", TXT)])
        assert r.stats["tcp"] == 1
    assert got.error is None
    assert got.texts == ("".join(f"{'x' * 200}{i}" for i in range(4)),)


def test_resolve_async(resolver: BulkResolver) -> None:
    got = asyncio.run(resolver.resolve_async([("2.0.0.127.bl.example", A)]))
    assert got[0].addresses == ("127.0.0.2",)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError):
        BulkResolver([Nameserver("127.0.0.1", 53)], timeout=0)
    with BulkResolver([Nameserver("127.0.0.1", 9)]) as r:
        with pytest.raises(ValueError):
            r.resolve([("a" * 64 + ".bl.example", A)])
        with pytest.raises(ValueError):
            r.resolve([("bücher.example", A)])
        assert r.resolve([]) == []
    with pytest.raises(ValueError):
        r.resolve([("2.0.0.127.bl.example", A)])  # closed


# --- the packet parser, with hand-made packets ---------------------------------------------

QNAME = encode_name("2.0.0.127.bl.example")


def response(
    answers: bytes = b"", ancount: int = 0, question: bytes | None = None, flags: int = 0x8180
) -> bytes:
    if question is None:
        question = QNAME + struct.pack(">HH", A, 1)
    return struct.pack(">HHHHHH", 0x1234, flags, 1, ancount, 0, 0) + question + answers


def rr(owner: bytes, rtype: int, rdata: bytes) -> bytes:
    return owner + struct.pack(">HHIH", rtype, 1, 60, len(rdata)) + rdata


POINTER_TO_QNAME = b"\xc0\x0c"


def answer_to(packet: bytes, qtype: int = A) -> Answer:
    got = parse_response(packet, QNAME, qtype)
    assert got is not None, "the packet was taken for another question"
    return got


def test_parser_reads_a_records_and_cname_chains() -> None:
    ok = response(rr(POINTER_TO_QNAME, A, bytes([127, 0, 0, 2])), 1)
    assert parse_response(ok, QNAME, A) == Answer(0, ("127.0.0.2",))
    # CNAME to a name written out in full, then the A record owned by that name
    alias = encode_name("alias.example")
    alias_at = 12 + len(QNAME) + 4 + 12  # where the CNAME's rdata starts
    chain = rr(POINTER_TO_QNAME, 5, alias) + rr(
        struct.pack(">H", 0xC000 | alias_at), A, b"\x7f\0\0\x0a"
    )
    assert answer_to(response(chain, 2)).addresses == ("127.0.0.10",)
    # an A record for some other name is not part of the answer
    stray = rr(encode_name("other.example"), A, b"\x7f\0\0\x02")
    assert parse_response(response(stray, 1), QNAME, A) == Answer(0)


def test_parser_rejects_what_it_cannot_read_safely() -> None:
    loop_at = 12 + len(QNAME) + 4
    loop = struct.pack(">H", 0xC000 | loop_at) + struct.pack(">HHIH", A, 1, 60, 4) + b"\x7f\0\0\2"
    assert parse_response(response(loop, 1), QNAME, A) is MALFORMED
    forward = b"\xc3\xff" + struct.pack(">HHIH", A, 1, 60, 4) + b"\x7f\0\0\2"
    assert parse_response(response(forward, 1), QNAME, A) is MALFORMED
    short_rdata = POINTER_TO_QNAME + struct.pack(">HHIH", A, 1, 60, 4) + b"\x7f\0"
    assert parse_response(response(short_rdata, 1), QNAME, A) is MALFORMED
    bad_a = rr(POINTER_TO_QNAME, A, b"\x7f\0\0")
    assert parse_response(response(bad_a, 1), QNAME, A) is MALFORMED
    bad_txt = rr(POINTER_TO_QNAME, TXT, b"\x09short")
    assert parse_response(response(bad_txt, 1, QNAME + b"\0\x10\0\x01"), QNAME, TXT) is MALFORMED
    missing_records = response(b"", 2)
    assert parse_response(missing_records, QNAME, A) is MALFORMED


def test_parser_ignores_packets_for_another_question() -> None:
    other = encode_name("3.0.0.127.bl.example") + struct.pack(">HH", A, 1)
    assert parse_response(response(question=other), QNAME, A) is None
    wrong_type = QNAME + struct.pack(">HH", TXT, 1)
    assert parse_response(response(question=wrong_type), QNAME, A) is None
    not_a_response = response(flags=0x0100)
    assert parse_response(not_a_response, QNAME, A) is None
    assert parse_response(b"\x12\x34\x81", QNAME, A) is None
    # the same name in other letter case is the same question
    upper = QNAME.upper() + struct.pack(">HH", A, 1)
    assert parse_response(response(question=upper, flags=0x8183), QNAME, A) == Answer(NXDOMAIN)


def test_parser_reports_error_rcodes_and_truncation() -> None:
    assert answer_to(response(flags=0x8182)).error == "SERVFAIL"
    assert answer_to(response(flags=0x8189)).error == "rcode 9"
    assert answer_to(response(flags=0x8380)).error == "truncated"
    # a FORMERR without the question can only make the answer unknown
    bare = struct.pack(">HHHHHH", 0x1234, 0x8181, 0, 0, 0, 0)
    assert answer_to(bare).error == "FORMERR"
    bare_nx = struct.pack(">HHHHHH", 0x1234, 0x8183, 0, 0, 0, 0)
    assert parse_response(bare_nx, QNAME, A) is None


# --- hostile or odd servers ------------------------------------------------------------------


@contextmanager
def spoofing_server() -> Iterator[int]:
    """Answers each query three times: wrong id, wrong question, then a true NXDOMAIN."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                query, peer = sock.recvfrom(512)
            except TimeoutError:
                continue
            qid, question = query[:2], query[12:]
            header = struct.pack(">HHHHH", 0x8183, 1, 0, 0, 0)
            wrong_id = bytes([query[0] ^ 0xFF, query[1]])
            other = encode_name("9.9.9.9.bl.example") + question[-4:]
            sock.sendto(wrong_id + header + question, peer)
            sock.sendto(qid + struct.pack(">HHHHH", 0x8180, 1, 0, 0, 0) + other, peer)
            sock.sendto(qid + header + question, peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        sock.close()


def test_answers_for_another_id_or_question_are_ignored() -> None:
    with spoofing_server() as port, BulkResolver([Nameserver("127.0.0.1", port)], timeout=1.0) as r:
        got = r.resolve([("2.0.0.127.bl.example", A), ("3.0.0.127.bl.example", A)])
        assert r.stats["ignored"] >= 4
    assert all(a == Answer(NXDOMAIN) for a in got)


def test_ipv6_nameserver_path() -> None:
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        sock.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    with sock, BulkResolver([parse_nameserver(f"[::1]:{sock.getsockname()[1]}")], 0.2, 0) as r:
        (got,) = r.resolve([("2.0.0.127.bl.example", A)])
        assert sock.recv(512)[12:] == encode_name("2.0.0.127.bl.example") + b"\0\1\0\1"
    assert got.error == "timeout"


def test_one_in_flight_at_a_time(server: Rbldnsd) -> None:
    with BulkResolver([parse_nameserver(server.nameserver)], concurrency=1) as r:
        got = r.resolve([(f"{i}.0.1.10.bl.example", A) for i in range(20)])
        assert r.peak_window == 1
    assert all(a.addresses == ("127.0.0.2",) for a in got)
