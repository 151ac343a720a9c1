"""Blocklist mirrors against the real rbldnsd: the same files served and read must agree.

Each dataset is written once, served by rbldnsd on a loopback port and read by
:mod:`checks.dnsbl.mirror` from the very file rbldnsd loaded; then for many addresses (every
edge of every listed interval on both sides, excluded addresses, random samples) the A and
TXT answers rbldnsd sends must equal what :meth:`Mirror.lookup` says. Nothing leaves
127.0.0.1.
"""

from __future__ import annotations

import ipaddress
import random
import socket
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import cast

import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from checks.dnsbl import Target, Zone, check_targets
from checks.dnsbl.mirror import Mirror, check_with_mirrors, mirror_selftest, parse
from checks.dnsbl.transport import BulkResolver
from checks.dnsbl.zones import Code
from checks.resolver import parse_nameserver
from tests.servers import Rbldnsd, rbldnsd

pytestmark = pytest.mark.servers

# -- the datasets ---------------------------------------------------------------------------

IP4SET = """\
# every ip4set element rbldnsd knows; comments with # and ;
; a second comment style

:3:Listed $ (default)
$1 https://bl.example/lookup
$2 see
127.0.0.2
10.0.0.0/8 :4:wide $1?ip=$
!10.0.0.9
!10.0.1.0/24
10.0.1.7 :5:inside an excluded /24
10.0.2.0/25 :6:
!10.0.2.0/24
10.0.3.0/26 :7:low quarter
!10.0.3.0/25
10.20 :8:short /16 $2 $1
10.30.40 :9:short /24
10.40.0.0-10.40.1.255
10.41.0.5-10.41.3.7 :10:odd range $
10.42.0-10.43.1
10.44.5.1-9
10.45-47
11.0.0.0/12 :11:a /12 is sixteen /16 keys
11.0.5.0/24 :12:narrower
12.0.0.5 :2:first value $
12.0.0.5 :13:second value $
12.0.0.5 :13:second value $
12.0.0.0/24 :14:
12.0.0.0/24 :15:both /24 values $$
12.1.0.0/16 only text $ here
12.2.0.1 :16
12.2.0.2 :17:
12.2.0.3:18:no blank before the value
12.2.0.4 # a comment after the address
12.2.0.5 ; and the other style
   12.2.0.6   :19:  blanks around   \t
:20:second default $
12.3.0.0/24
!12.3.0.128/25 :21:an exclusion's value is ignored
12.4.0.1 =opt out $
12.4.0.2 dollars $$ and $$$ and $3 and $= end
12.4.0.3 :1.2:inet_aton style A value
12.5.0.0/20
12.5.16.0-12.5.31.255 :22:
13.0.0.0/8 :23:top
!13.128.0.0/9
13.200.0.1 :24:listed inside an excluded /9
14.0.0.0-14.0.0.99 :25:
14.0.0.50-14.0.1.9 :26:
!14.0.0.60-14.0.0.70
15.0.0.0/31 :27:
15.0.0.1 :28:
010.0.0.1 :29:leading zeros are decimal
1.2.3.4/24
10
127-127.0.0
12.9.0.1 :0:zero A value
12.9.0.2 :5 trailing text
12.9.0.3 :127.0.0.300:bad A
bad line
#$ 1 an invalid special
$MAXRANGE4 /16
16.0.0.0/15 :30:too large now
16.2.0.0/16 :31:still allowed
"""

IP4TRIE = """\
:3:trie $
0.0.0.0/1 :2:half the space
10.0.0.0/8 :4:eight
!10.1.0.0/16
10.1.2.0/24 :5:inside an exclusion
10.1.2.128/25 :6:longer
!10.1.2.192/26
10.0.0.0/8 :7:a duplicate keeps the first
11.0.0.0/25 :8:
!11.0.0.0/26
10.20
10.30.40 :9:
12.0.0.1 :10:single $
12.0.0.0/31 :11:pair
12.0.0.0-12.0.0.255 :12:no ranges in a trie
10
1.2.3.4/24
!12.0.0.1
"""

IP4TSET = """\
1.1.1.1 :5:per-entry values are ignored
:4:tset $
:5:only the first default counts
1.1.1.2
1.1.1.3
1.1.1
!1.1.1.4
1.1.1.4
203.0.113.255
"""

IP6TRIE = """\
:127.0.1.2: Listed, see $
2001:21ab:c000/36
2001:21ab:def7:4242 :127.0.1.3: This one smells funny $
2605:6001:42::/52
::1
!2605:6001:42::bead
2001:db8::/32 :5:first
2001:db8::/32 :6:duplicate
!2001:db8:0:1::/64
2001:db8:0:1::7 :7:inside the exclusion $
2001:db8:1::/48 :8:
::ffff:0:0/96 :9:mapped $
2001:0:0:1::1:0:0 :10:zero runs $
2001
2002:0:0:0:0:0:0:1:9
2001:db8::1/64
"""

IP6TSET = """\
:9:six $
2001:20fe:23:41ed
!2001:20fe:23:41ed::2
!2001:20fe:23:41ed:0:0:0:3
2001:20fe:23:41ee::/64
2001:20fe:24
"""

DNSET = """\
:2:name $ listed
example.com
*.wild.example
.both.example :3:both $
!x.wild.example
sub.both.example :4:sub $
Mixed.Case.Example :5:
!.gone.example
a.gone.example :6:below an exclusion
dup.example :7:one
dup.example :8:two
"""

BASE = """\
$= Base [$=] for $
:2:deftxt
1.0.0.1
1.0.0.2 own text
1.0.0.3 =no base $
1.0.0.4 :3:
"""

# -- rbldnsd over UDP ---------------------------------------------------------------------


def ask_all(port: int, questions: Sequence[tuple[str, str]]) -> list[tuple[str, set[str]]]:
    """(rcode, answers) for each (name, A|TXT) question, pipelined over one UDP socket."""
    out: list[tuple[str, set[str]] | None] = [None] * len(questions)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("127.0.0.1", port))
        sock.settimeout(2.0)
        for attempt in range(5):
            todo = [i for i, got in enumerate(out) if got is None]
            if not todo:
                break
            for at in range(0, len(todo), 64):  # a burst rbldnsd's socket buffer holds
                ids: dict[int, int] = {}
                for n, i in enumerate(todo[at : at + 64]):
                    q = dns.message.make_query(questions[i][0], questions[i][1])
                    # distinct ids, different on every attempt: a late answer cannot match
                    q.id = (attempt * 64 + n) % 65536
                    ids[q.id] = i
                    sock.send(q.to_wire())
                try:
                    while ids:
                        r = dns.message.from_wire(sock.recv(4096))
                        i = ids.get(r.id, -1)
                        name, qtype = questions[i] if i >= 0 else ("", "")
                        asked = r.question[0] if r.question else None
                        if (
                            asked is not None
                            and asked.name.to_text().lower() == name.lower()
                            and dns.rdatatype.to_text(asked.rdtype) == qtype
                        ):
                            del ids[r.id]
                            out[i] = (dns.rcode.to_text(r.rcode()), _records(r))
                except TimeoutError:
                    continue
        else:
            pytest.fail(f"rbldnsd did not answer {sum(x is None for x in out)} questions")
    return cast(list[tuple[str, set[str]]], out)


def _records(r: dns.message.Message) -> set[str]:
    found = set()
    for rrset in r.answer:
        for rd in rrset:
            if rd.rdtype == dns.rdatatype.A:
                found.add(rd.to_text())
            elif rd.rdtype == dns.rdatatype.TXT:
                found.add(b"".join(rd.strings).decode("utf-8", "replace"))
    return found


def qname(address: ipaddress.IPv4Address | ipaddress.IPv6Address, zone: str) -> str:
    if address.version == 4:
        return ".".join(reversed(str(address).split("."))) + f".{zone}."
    return ".".join(reversed(f"{int(address):032x}")) + f".{zone}."


def served(server: Rbldnsd, index: int, dstype: str) -> bytes:
    """The bytes rbldnsd loaded for its ``index``-th dataset (the helper adds a $SOA line)."""
    return (server.directory / f"z{index}.{dstype}").read_bytes()


def probes(mirror: Mirror, version: int, extra: Iterable[int] = (), seed: int = 1) -> list[int]:
    """Every edge of every listed interval, from both sides, plus random points."""
    table = mirror.ip4 if version == 4 else mirror.ip6
    top = (1 << (32 if version == 4 else 128)) - 1
    rnd = random.Random(seed)
    points = set(extra)
    assert table is not None
    for s, e in zip(table.starts.tolist(), table.ends.tolist(), strict=True):
        s, e = int(s), int(e)
        points.update((s - 1, s, s + 1, e - 1, e, e + 1, rnd.randint(s, e)))
    points.update(rnd.randint(0, top) for _ in range(200))
    return sorted(p for p in points if 0 <= p <= top)


def assert_agree(mirror: Mirror, server: Rbldnsd, zone: str, points: Iterable[int], v: int) -> int:
    """Ask rbldnsd and the mirror about every point; fail on the first differences."""
    cls = ipaddress.IPv4Address if v == 4 else ipaddress.IPv6Address
    addrs = [cls(p) for p in points]
    qs = [(qname(a, zone), t) for a in addrs for t in ("A", "TXT")]
    got = ask_all(server.port, qs)
    wrong = []
    for k, a in enumerate(addrs):
        (rc_a, want_a), (_, want_t) = got[2 * k], got[2 * k + 1]
        ans = mirror.lookup(a)
        mine = (set(ans.codes), set(ans.texts)) if ans else (set(), set())
        if (want_a, want_t) != mine or (rc_a == "NXDOMAIN") != (ans is None):
            wrong.append(f"{a}: rbldnsd {rc_a} {sorted(want_a)} {sorted(want_t)}, mirror {ans}")
    assert not wrong, f"{len(wrong)} of {len(addrs)} differ:\n" + "\n".join(wrong[:15])
    return len(addrs)


# -- the tests ------------------------------------------------------------------------------

FIXED = {
    "set.test": ("ip4set", IP4SET),
    "trie.test": ("ip4trie", IP4TRIE),
    "tset.test": ("ip4tset", IP4TSET),
    "six.test": ("ip6trie", IP6TRIE),
    "sixt.test": ("ip6tset", IP6TSET),
    "names.test": ("dnset", DNSET),
    "base.test": ("ip4set", BASE),
}


@pytest.fixture(scope="module")
def server() -> Iterator[Rbldnsd]:
    with rbldnsd(FIXED) as srv:
        yield srv


def _mirror(server: Rbldnsd, zone: str) -> Mirror:
    index = list(FIXED).index(zone)
    dstype = FIXED[zone][0]
    return parse(served(server, index, dstype), dstype, max_malformed=0.9)


@pytest.mark.parametrize("zone", ["set.test", "trie.test", "tset.test", "base.test"])
def test_ipv4_datasets_answer_like_rbldnsd(server: Rbldnsd, zone: str) -> None:
    mirror = _mirror(server, zone)
    # also the addresses the datasets name, even where nothing ended up listed
    named = [int(ipaddress.IPv4Address(a)) for a in ("10.0.0.9", "12.9.0.1", "16.0.0.1")]
    assert assert_agree(mirror, server, zone, probes(mirror, 4, named), 4) > 50


def test_the_ip4set_elements_are_all_there(server: Rbldnsd) -> None:
    """The fixture means what it says: each element decided something (no silent skip)."""
    m = _mirror(server, "set.test")
    # 1.2.3.4/24, 10, 127-127.0.0, three bad values, "bad line", "#$ 1", a /15 over $MAXRANGE4
    assert m.report.malformed == 9
    assert m.lookup("10.0.1.7") is not None and m.lookup("10.0.1.8") is None
    assert m.lookup("10.0.2.1") is not None  # a /25 (the /32 level) beats a !/24
    assert m.lookup("10.0.3.1") is None  # a !/25 and a /26 share the /32 level: excluded
    assert m.lookup("16.0.0.1") is None and m.lookup("16.2.0.1") is not None  # $MAXRANGE4


def test_ipv4_datasets_answer_6to4_and_mapped_names_like_rbldnsd(server: Rbldnsd) -> None:
    """rbldnsd reads 2002:V4::/16 and ::ffff:V4 query names as their IPv4 address."""
    points = [
        int(ipaddress.IPv6Address(a))
        for a in (
            "2002:a00:1::",
            "2002:a00:9::1",
            "2002:c00:5:ffff::",
            "::ffff:10.0.0.1",
            "::ffff:10.0.0.9",
            "::ffff:12.0.0.5",
            "::fffe:10.0.0.1",
            "2001:db8::1",
            "2003:a00:1::",
        )
    ]
    assert assert_agree(_mirror(server, "set.test"), server, "set.test", points, 6) == 9


@pytest.mark.parametrize("zone", ["six.test", "sixt.test"])
def test_ipv6_datasets_answer_like_rbldnsd(server: Rbldnsd, zone: str) -> None:
    mirror = _mirror(server, zone)
    named = [
        int(ipaddress.IPv6Address(a))
        for a in ("::ffff:1.2.3.4", "2001:20fe:23:41ed::2", "2605:6001:42::bead", "2002::1", "::1")
    ]
    assert assert_agree(mirror, server, zone, probes(mirror, 6, named), 6) > 50


def test_dnset_answers_like_rbldnsd(server: Rbldnsd) -> None:
    mirror = _mirror(server, "names.test")
    names = [
        "example.com",
        "a.example.com",
        "wild.example",
        "a.wild.example",
        "b.a.wild.example",
        "x.wild.example",
        "y.x.wild.example",
        "both.example",
        "z.both.example",
        "sub.both.example",
        "q.sub.both.example",
        "mixed.case.example",
        "MIXED.case.Example",
        "gone.example",
        "a.gone.example",
        "b.gone.example",
        "c.a.gone.example",
        "dup.example",
        "other.test",
        "com",
    ]
    got = ask_all(server.port, [(f"{n}.names.test.", t) for n in names for t in ("A", "TXT")])
    for k, n in enumerate(names):
        ans = mirror.lookup(n)
        mine = (set(ans.codes), set(ans.texts)) if ans else (set(), set())
        assert (got[2 * k][1], got[2 * k + 1][1]) == mine, n


def _random_dataset(rnd: random.Random, trie: bool, lines: int = 160) -> tuple[str, list[int]]:
    """Overlapping CIDRs, ranges, short forms, exclusions and values inside 10.0.0.0/8."""
    base = 10 << 24
    out: list[str] = []
    edges: list[int] = []
    for _ in range(lines):
        kind = rnd.choice(["cidr", "single", "short"] + ([] if trie else ["range"]))
        if kind == "cidr":
            bits = rnd.choice([9, 12, 16, 20, 23, 24, 25, 28, 30, 31, 32])
            a = (base + rnd.randrange(1 << 24)) & ((0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF)
            text, lo, hi = f"{ipaddress.IPv4Address(a)}/{bits}", a, a | ((1 << (32 - bits)) - 1)
        elif kind == "range":
            lo = base + rnd.randrange(1 << 24)
            hi = min(lo + rnd.choice([0, 1, 5, 200, 255, 256, 3000, 70000]), base + (1 << 24) - 1)
            text = f"{ipaddress.IPv4Address(lo)}-{ipaddress.IPv4Address(hi)}"
        elif kind == "single":
            lo = hi = base + rnd.randrange(1 << 24)
            text = str(ipaddress.IPv4Address(lo))
        else:
            lo = base + (rnd.randrange(1 << 16) << 8)
            hi = lo + 255
            text = str(ipaddress.IPv4Address(lo)).rsplit(".", 1)[0]
        edges += [lo - 1, lo, lo + 1, hi - 1, hi, hi + 1, rnd.randint(lo, hi)]
        r = rnd.random()
        if r < 0.25:
            out.append("!" + text)
        elif r < 0.5:
            out.append(f"{text} :{rnd.randint(2, 6)}:v{rnd.randint(0, 3)} $")
        elif r < 0.6:
            out.append(f"{text} :{rnd.randint(2, 6)}:")
        elif r < 0.7:
            out += [f":{rnd.randint(2, 6)}:default {rnd.randint(0, 9)} $", text]
        else:
            out.append(text)
    return "\n".join(out) + "\n", edges


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_overlapping_datasets_answer_like_rbldnsd(seed: int) -> None:
    rnd = random.Random(seed)
    set_text, set_edges = _random_dataset(rnd, trie=False)
    trie_text, trie_edges = _random_dataset(rnd, trie=True)
    zones = {"rset.test": ("ip4set", set_text), "rtrie.test": ("ip4trie", trie_text)}
    with rbldnsd(zones) as srv:
        for index, (zone, (dstype, _)) in enumerate(zones.items()):
            mirror = parse(served(srv, index, dstype), dstype)
            edges = set_edges if dstype == "ip4set" else trie_edges
            assert assert_agree(mirror, srv, zone, probes(mirror, 4, edges, seed), 4) > 500


# -- the same CheckResults as DNS ---------------------------------------------------------

BL = Zone(
    "set.test",
    "ip",
    codes={"127.0.0.3": Code("default listing", "high"), "127.0.0.4": Code("wide", "low")},
    delist="https://bl.example/delist?ip={target}",
)
SIX = Zone("six.test", "ip", ipv6=True, test_listed="::1", test_unlisted="2001:db8:0:1::1")
NAMES = Zone("names.test", "domain", selftest=False)


def test_mirror_results_equal_dns_results(server: Rbldnsd) -> None:
    """check_targets answered by rbldnsd and by the mirrors gives the same CheckResults."""
    targets = [
        Target.parse(t)
        for t in (
            "127.0.0.2",
            "10.0.0.1",
            "10.0.0.9",
            "12.0.0.5",
            "12.0.0.7",
            "203.0.113.9",
            "2001:db8::1",
            "2001:db8:0:1::7",
            "2001:db8:0:1::8",
            "example.com",
            "a.wild.example",
            "nothing.example",
            "::ffff:10.0.0.1",
        )
    ]
    zones = [BL, SIX, NAMES]
    dns = BulkResolver([parse_nameserver(server.nameserver)], timeout=1.0, retries=2)
    try:
        via_dns = check_targets(targets, zones, dns)
    finally:
        dns.close()
    mirrors = {z.zone: _mirror(server, z.zone) for z in zones}
    via_mirror = check_with_mirrors(targets, zones, mirrors)
    assert [r.to_json() for r in via_mirror] == [r.to_json() for r in via_dns]
    assert any(r.status == "problem" for r in via_mirror)


def test_selftest_of_mirror_files(server: Rbldnsd) -> None:
    assert mirror_selftest(_mirror(server, "set.test"), BL) is None
    assert mirror_selftest(_mirror(server, "six.test"), SIX) is None
    # the trie lists 0.0.0.0/1 (127.0.0.1 too): the negative test point fails
    why = mirror_selftest(_mirror(server, "trie.test"), Zone("trie.test", "ip"))
    assert why is not None and "negative test point" in why
    # the tset has no 127.0.0.2: the positive test point fails
    why = mirror_selftest(_mirror(server, "tset.test"), Zone("tset.test", "ip"))
    assert why is not None and "positive test point" in why


def test_served_file_is_what_the_mirror_read(server: Rbldnsd) -> None:
    """Sanity of the harness: the mirror reads rbldnsd's own copy (with its $SOA line)."""
    data = served(server, 0, "ip4set")
    assert data.startswith(b"$SOA ") and data.endswith(IP4SET.encode())
    assert Path(server.directory).is_dir()
