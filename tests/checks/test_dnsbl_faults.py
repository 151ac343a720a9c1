"""The bulk engine when zones, resolvers or TCP die: fast, bounded, and ``unknown`` with a reason.

Real servers on 127.0.0.1 only (tests/dns_faults.py, tests/servers.py). The time bounds are the
ones stated in docs/dnsbl-engine.md, with a margin for a busy 2-core machine.
"""

from __future__ import annotations

import ipaddress
import re
import struct
import time
from collections import Counter

import pytest

from checks.dnsbl import Target, Zone, check_targets
from checks.dnsbl.transport import NXDOMAIN, A, Answer, BulkResolver, encode_name
from checks.dnsbl.wire import read_response, read_truncated
from checks.resolver import Nameserver, parse_nameserver
from tests.dns_faults import truncating_server, zone_server
from tests.servers import nsd, silent_udp_server

pytestmark = pytest.mark.servers

T, R = 0.5, 2  # timeout and retries of the bound tests
MARGIN = 0.5  # seconds of slack for a loaded machine
ZONE_DOWN = re.compile(r"zone not answering \(\d+ timeouts\)")


def hosts(cidr: str) -> list[Target]:
    return [Target.parse(str(a)) for a in ipaddress.ip_network(cidr)]


def timed(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    start = time.monotonic()
    out = fn(*args, **kwargs)
    return out, time.monotonic() - start


def reversed_names(zones: list[str], count: int) -> list[tuple[str, int]]:
    """``count`` addresses of 10.0.0.0/8, each asked of every zone in turn."""
    out = []
    for i in range(count):
        rev = f"{i & 255}.{(i >> 8) & 255}.{(i >> 16) & 255}.10"
        out.extend((f"{rev}.{z}", A) for z in zones)
    return out


# --- a dead zone among live ones -------------------------------------------------------------


def test_dead_zone_does_not_slow_the_live_ones() -> None:
    live = [Zone("a.example", "ip"), Zone("b.example", "ip")]
    dead = Zone("dead.example", "ip")
    targets = hosts("192.0.2.0/26")
    with zone_server(["a.example", "b.example"], ["dead.example"]) as srv:
        ns = [parse_nameserver(srv.nameserver)]
        alone = []
        for _ in range(3):
            with BulkResolver(ns, timeout=T, retries=R) as r:
                res, elapsed = timed(check_targets, targets, live, r)
            assert all(x.status == "ok" for x in res)
            alone.append(elapsed)
        marks: list[tuple[float, int, int]] = []
        with BulkResolver(ns, timeout=T, retries=R) as r:
            start = time.monotonic()
            res, elapsed = timed(
                check_targets,
                targets,
                [*live, dead],
                r,
                on_progress=lambda d, t: marks.append((time.monotonic() - start, d, t)),
            )
    by_zone: dict[str, list] = {}
    for x in res:
        by_zone.setdefault(x.source, []).append(x)
    assert all(x.status == "ok" for z in ("a.example", "b.example") for x in by_zone[z])
    assert len(by_zone["dead.example"]) == 64
    for x in by_zone["dead.example"]:
        assert x.status == "unknown" and ZONE_DOWN.fullmatch(x.error or ""), x
    # the live zones' answers (64 targets x 2 zones + 2 x 2 self-tests) were all in at once
    live_questions = 64 * 2 + 4
    live_done = next(at for at, done, _ in marks if done >= live_questions)
    baseline = min(alone)
    assert live_done <= 4 * baseline + 0.25, (live_done, alone)
    # and the dead zone's questions ended within the stated bound, not a timeout each
    assert elapsed <= baseline + T * (R + 1) + MARGIN, (elapsed, alone)


@pytest.mark.slow
def test_dead_zone_keeps_live_zones_at_full_speed_in_a_large_run() -> None:
    count = 4096
    with zone_server(["a.example", "b.example"], ["dead.example"]) as srv:
        ns = [parse_nameserver(srv.nameserver)]
        with BulkResolver(ns, timeout=T, retries=R) as r:
            got, alone = timed(r.resolve, reversed_names(["a.example", "b.example"], count))
        assert all(a.error is None for a in got)
        marks: list[tuple[float, int]] = []
        questions = reversed_names(["a.example", "b.example", "dead.example"], count)
        with BulkResolver(ns, timeout=T, retries=R) as r:
            start = time.monotonic()
            got, elapsed = timed(
                r.resolve,
                questions,
                ["a.example", "b.example", "dead.example"],
                lambda d, t: marks.append((time.monotonic() - start, d)),
            )
            assert r.stats["failed_fast"] >= count - 64  # most never waited for a timeout
    errors = Counter(a.error for a in got)
    assert errors[None] == 2 * count
    assert sum(v for e, v in errors.items() if e and ZONE_DOWN.fullmatch(e)) == count
    live_done = next(at for at, done in marks if done >= 2 * count)
    assert live_done <= 3 * alone + 0.5, (live_done, alone)
    assert elapsed <= max(alone * 2, T * (R + 1)) + MARGIN, (elapsed, alone)


# --- a dead resolver ---------------------------------------------------------------------------


def test_dead_resolver_ends_a_28_within_the_bound() -> None:
    zones = [Zone(f"bl{i}.example", "ip") for i in range(17)]  # as many as the catalogue
    targets = hosts("192.0.2.16/28")
    with silent_udp_server() as port:
        reason = f"resolver 127.0.0.1:{port} not answering"
        marks: list[tuple[int, int]] = []
        with BulkResolver([Nameserver("127.0.0.1", port)], timeout=T, retries=R) as r:
            res, elapsed = timed(
                check_targets, targets, zones, r, on_progress=lambda d, t: marks.append((d, t))
            )
            assert elapsed <= T * (R + 1) + MARGIN, elapsed
            assert len(res) == 16 * 17
            assert all(x.status == "unknown" and x.error == reason for x in res)
            total = 16 * 17 + 2 * 17
            assert marks[-1] == (total, total)
            assert [d for d, _ in marks] == sorted(d for d, _ in marks)
            # known dead now: the next call costs one probe, not the whole wait again
            res, elapsed = timed(check_targets, targets[:1], zones, r)
            assert elapsed <= T + MARGIN, elapsed
            assert all(x.status == "unknown" and x.error == reason for x in res)
        with BulkResolver([Nameserver("127.0.0.1", port)], timeout=T, retries=R) as r:
            res, elapsed = timed(check_targets, targets[:1], zones, r)  # one IP, fresh
        assert elapsed <= T * (R + 1) + MARGIN, elapsed
        assert all(x.status == "unknown" and x.error == reason for x in res)


def test_few_questions_to_a_dead_resolver_just_time_out() -> None:
    """Under the dead-zone threshold (8 silent timeouts) questions run their retries as ever."""
    with (
        silent_udp_server() as port,
        BulkResolver([Nameserver("127.0.0.1", port)], timeout=0.2, retries=1) as r,
    ):
        got, elapsed = timed(r.resolve, [("2.0.0.127.bl.example", A), ("3.0.0.127.bl.example", A)])
    assert [a.error for a in got] == ["timeout", "timeout"]
    assert elapsed <= 0.2 * 2 + MARGIN


# --- truncated answers and a TCP port that never answers ---------------------------------------


def test_truncated_answers_with_hung_tcp_end_fast() -> None:
    targets = hosts("192.0.2.0/28")[:16] + [Target.parse("192.0.2.200")]  # 17 targets
    bl = Zone("bl.example", "ip")
    with (
        truncating_server(tcp="hung") as srv,
        BulkResolver([parse_nameserver(srv.nameserver)], timeout=T, retries=R) as r,
    ):
        res, elapsed = timed(check_targets, targets, [bl], r)
        assert elapsed <= 2 * T + MARGIN, elapsed
        assert len(res) == 17
        for x in res:
            assert x.status == "unknown", x
            assert x.error == "truncated answer and TCP not answering", x
        assert srv.tcp_connections == 1  # one pipelined connection, not one per question
        # TCP known hung: the next call sends one probe over it and waits at most a timeout
        res, elapsed = timed(check_targets, targets, [bl], r)
        assert elapsed <= T + MARGIN, elapsed
        assert all(x.error == "truncated answer and TCP not answering" for x in res)


def test_truncated_a_answer_with_records_is_a_listing_when_tcp_fails() -> None:
    records = {"1.2.0.192.bl.example": "127.0.0.2", "2.0.0.127.bl.example": "127.0.0.2"}
    bl = Zone("bl.example", "ip")
    with (
        truncating_server(records=records, tcp="hung") as srv,
        BulkResolver([parse_nameserver(srv.nameserver)], timeout=0.3, retries=1) as r,
    ):
        res = check_targets([Target.parse("192.0.2.1"), Target.parse("192.0.2.2")], [bl], r)
    listed, empty = res
    assert listed.status == "problem" and listed.fields["codes"] == ["127.0.0.2"]
    assert listed.fields["reason"] == ""  # the TXT answer was truncated too
    # a truncated answer without records is never "not listed"
    assert empty.status == "unknown" and empty.error == "truncated answer and TCP not answering"


def test_truncated_answer_and_tcp_refused() -> None:
    with (
        truncating_server(tcp="none") as srv,
        BulkResolver([parse_nameserver(srv.nameserver)], timeout=T, retries=R) as r,
    ):
        got, elapsed = timed(r.resolve, reversed_names(["bl.example"], 17))
    assert elapsed <= MARGIN
    assert all(a.error == "truncated answer and TCP failed: Connection refused" for a in got)


def test_read_truncated_takes_only_intact_a_records() -> None:
    qname = encode_name("2.0.0.127.bl.example")
    question = qname + struct.pack(">HH", A, 1)

    def packet(flags: int, records: bytes, ancount: int, qtype: int = A) -> bytes:
        q = qname + struct.pack(">HH", qtype, 1)
        return struct.pack(">HHHHHH", 1, flags, 1, ancount, 0, 0) + q + records

    record = b"\xc0\x0c" + struct.pack(">HHIH", A, 1, 60, 4) + bytes([127, 0, 0, 2])
    whole = packet(0x8380, record, 1)
    got = read_response(whole, question, len(qname), A)
    assert got is not None and got.error == "truncated"  # never an answer by itself
    assert read_truncated(whole, question, len(qname), A) == Answer(0, ("127.0.0.2",))
    assert read_truncated(packet(0x8380, record[:-2], 1), question, len(qname), A) is None
    assert read_truncated(packet(0x8380, record, 2), question, len(qname), A) is None
    assert read_truncated(packet(0x8380, b"", 0), question, len(qname), A) is None
    assert read_truncated(packet(0x8383, b"", 0), question, len(qname), A) is None  # NXDOMAIN
    txt_q = qname + struct.pack(">HH", 16, 1)
    assert read_truncated(packet(0x8380, record, 1, 16), txt_q, len(qname), 16) is None


# --- a zone that comes back --------------------------------------------------------------------


@pytest.mark.slow
def _comes_back(count: int) -> str | None:
    """One run of ``count`` names per zone where the dead zone comes back early; None when
    the run used it again as it should, else what went wrong."""
    timeout = 0.25  # a zone server stalled this long by a busy machine would look dead
    with zone_server(["live.example"], ["back.example"]) as srv:
        ns = [parse_nameserver(srv.nameserver)]
        questions = reversed_names(["live.example", "back.example"], count)
        revived: list[float] = []
        with BulkResolver(ns, timeout=timeout, retries=1) as r:
            start = time.monotonic()

            def progress(done: int, total: int) -> None:
                # early in the run, so that most of it is left to use the zone again
                if not revived and done >= total // 10 and time.monotonic() - start > 3 * timeout:
                    srv.answer("back.example")
                    revived.append(time.monotonic() - start)

            got, _ = timed(r.resolve, questions, None, progress)
    if not revived:
        return "the run ended before the zone came back"
    pairs = list(zip(questions, got, strict=True))
    assert all(a.error is None for (name, _), a in pairs if name.endswith("live.example"))
    back = [a for (name, _), a in pairs if name.endswith("back.example")]
    first = next((i for i, a in enumerate(back) if a.error is None), None)
    if first is None:
        return "the run ended before the zone was asked again"
    assert first > 0 and all(ZONE_DOWN.fullmatch(a.error or "") for a in back[:first])
    assert all(a == Answer(NXDOMAIN) for a in back[first:]), "unknowns after it came back"
    if len(back) - first <= len(back) // 10:
        return "only a small part of the run used it again"
    return None


def test_zone_that_comes_back_mid_run_is_used_again() -> None:
    # How much of a run is left when the zone comes back depends on the machine's speed: a
    # longer run each time the whole run outpaced the revival (never a wrong answer).
    problems = []
    for count in (50_000, 150_000, 300_000):
        problem = _comes_back(count)
        if problem is None:
            return
        problems.append(f"{count}: {problem}")
    pytest.fail("; ".join(problems))


def test_zone_dead_in_one_call_is_probed_and_used_in_the_next() -> None:
    with zone_server(["live.example"], ["back.example"]) as srv:
        ns = [parse_nameserver(srv.nameserver)]
        questions = reversed_names(["live.example", "back.example"], 64)
        with BulkResolver(ns, timeout=T, retries=1) as r:
            got = r.resolve(questions)
            assert all(ZONE_DOWN.fullmatch(a.error or "") for a in got[1::2])
            srv.answer("back.example")
            time.sleep(0.05)  # the server reads its control line
            got, elapsed = timed(r.resolve, questions)
    assert all(a == Answer(NXDOMAIN) for a in got)
    assert elapsed < T * 0.8  # the probe was answered: no timeout waited


# --- the progress hook -------------------------------------------------------------------------


def test_progress_counts_both_passes_of_check_targets() -> None:
    seen: list[tuple[int, int]] = []
    engine: list[tuple[int, int]] = []
    zone = Zone("a.example", "ip")
    targets = [Target.parse("127.0.0.2"), *hosts("192.0.2.0/30")]  # the first is listed
    with zone_server(["a.example"]) as srv:
        ns = [parse_nameserver(srv.nameserver)]
        with BulkResolver(ns, timeout=0.5, on_progress=lambda d, t: engine.append((d, t))) as r:
            res = check_targets(targets, [zone], r, on_progress=lambda d, t: seen.append((d, t)))
            assert engine == []  # a call's own hook replaces the resolver's
            r.resolve([("1.0.0.127.a.example", A)])
    assert res[0].status == "problem"
    first = 5 + 2 - 1  # 127.0.0.2 is also the positive test point: asked once
    assert seen[-1] == (first + 1, first + 1)  # then one TXT question
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert engine[-1] == (1, 1)


def test_many_truncated_answers_share_one_pipelined_tcp_connection() -> None:
    long_txt = " ".join(f'"{"x" * 200}{i}"' for i in range(4))  # > 512 octets: TC over UDP
    zone = "".join(f"t{i} IN TXT {long_txt}\n" for i in range(40))
    with (
        nsd({"big.example": zone}) as srv,
        BulkResolver([parse_nameserver(srv.nameserver)], timeout=1.0) as r,
    ):
        got, elapsed = timed(r.resolve, [(f"t{i}.big.example", 16) for i in range(40)])
        assert r.stats["tcp"] == 40
    want = ("".join(f"{'x' * 200}{i}" for i in range(4)),)
    assert all(a.error is None and a.texts == want for a in got)
    assert elapsed < 1.0


def test_tcp_server_that_closes_after_each_answer() -> None:
    """RFC 7766 lets a server close after one answer: the others are asked again, not failed."""
    records = {"1.2.0.192.bl.example": "127.0.0.2"}
    with (
        truncating_server(records=records, tcp="once") as srv,
        BulkResolver([parse_nameserver(srv.nameserver)], timeout=T, retries=1) as r,
    ):
        questions = reversed_names(["bl.example"], 10)  # 10.0.0.0-9, not listed
        questions.append(("1.2.0.192.bl.example", A))
        got, elapsed = timed(r.resolve, questions)
        assert srv.tcp_connections >= 11
    assert all(a == Answer(NXDOMAIN) for a in got[:-1])
    assert got[-1] == Answer(0, ("127.0.0.2",))
    assert elapsed < 2 * T
