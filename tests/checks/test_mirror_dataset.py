"""Blocklist mirror files without a server: syntax, overlaps, range matching, unusable files.

What rbldnsd itself answers for the same files is checked in ``test_mirror_rbldnsd.py``;
here each element is pinned down on its own, and the interval machinery is compared with a
brute-force walk over small address spaces.
"""

from __future__ import annotations

import gzip
import ipaddress
import json
import random
from pathlib import Path

import numpy as np
import pytest

from checks.dnsbl import Target
from checks.dnsbl.mirror import (
    FORMATS,
    AddressRange,
    Answer,
    MirrorResolver,
    UnusableMirror,
    address_range,
    check_with_mirrors,
    dns_answer,
    load,
    mirror_selftest,
    parse,
)
from checks.dnsbl.mirror.answers import EXCLUDED, Values, substitute
from checks.dnsbl.mirror.bulk import plain_entries, split_lines
from checks.dnsbl.mirror.ranges import IntervalTable, keys, paint, union_layer
from checks.dnsbl.mirror.rbldnsd import ip4set_pieces
from checks.dnsbl.mirror.syntax import (
    Value,
    ip4_cidr,
    ip4_range,
    ip6_cidr,
    ip6_text,
    parse_value,
)
from checks.dnsbl.wire import NXDOMAIN, TXT, A
from checks.dnsbl.zones import Code, Zone
from checks.errors import InputError, TargetError

IP = ipaddress.ip_address


def n4(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


# -- the rbldnsd syntax ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "first", "last", "bits"),
    [
        ("127.0.0.0/24", "127.0.0.0", "127.0.0.255", 24),
        ("127.0.0", "127.0.0.0", "127.0.0.255", 24),
        ("127/24", "127.0.0.0", "127.0.0.255", 24),
        ("127.0.0.0-127.0.0.255", "127.0.0.0", "127.0.0.255", 32),
        ("127.0.0.1-255", "127.0.0.1", "127.0.0.255", 32),
        ("127.16.0.0-127.31.255.255", "127.16.0.0", "127.31.255.255", 32),
        ("127.16-127.31", "127.16.0.0", "127.31.255.255", 32),
        ("127.16-31", "127.16.0.0", "127.31.255.255", 32),
        ("127.16.0-31", "127.16.0.0", "127.16.31.255", 32),
        ("127.16/12", "127.16.0.0", "127.31.255.255", 12),
        ("10.20", "10.20.0.0", "10.20.255.255", 16),
        ("10.20.30", "10.20.30.0", "10.20.30.255", 24),
        ("10/8", "10.0.0.0", "10.255.255.255", 8),
        ("10-11", "10.0.0.0", "11.255.255.255", 32),
        ("010.0.0.1", "10.0.0.1", "10.0.0.1", 32),
        ("0/0", "0.0.0.0", "255.255.255.255", 0),
    ],
)
def test_ip4set_addresses(text: str, first: str, last: str, bits: int) -> None:
    got = ip4_range(text)
    assert got is not None and got[1] == len(text)
    assert got[0] == (n4(first), n4(last), bits)


@pytest.mark.parametrize(
    "text",
    [
        "10",
        "127-127.0.0",
        "1.2-1.2.3.4",
        "10.0.0.5-10.0.0.4",
        "256.0.0.0/8",
        "10.0.0.0/33",
        "x",
        "",
        "/8",
    ],
)
def test_ip4set_refuses(text: str) -> None:
    assert ip4_range(text) is None


def test_ip4trie_takes_cidrs_and_prefixes_only() -> None:
    assert ip4_cidr("10.20") is not None and ip4_cidr("10.20")[0].bits == 16  # type: ignore[index]
    assert ip4_cidr("10") is None
    got = ip4_cidr("10.0.0.0-10.0.0.255")
    assert got is not None and got[1] == len("10.0.0.0")  # the "-" is left: refused later


DEFAULT = Value(n4("127.0.0.3"), "default text $")


@pytest.mark.parametrize(
    ("text", "want"),
    [
        (":5", ("127.0.0.5", "default text $")),
        (":5:", ("127.0.0.5", "")),
        (":127.0.0.9:listed $", ("127.0.0.9", "listed $")),
        (":7:   blanks before", ("127.0.0.7", "blanks before")),
        (":1.2:inet_aton", ("1.0.0.2", "inet_aton")),
        (":1.2.3:x", ("1.2.0.3", "x")),
        ("text only", ("127.0.0.3", "text only")),
        (":0:", None),
        (":5 trailing", None),
        (":300:", None),
        (":x:", None),
    ],
)
def test_values(text: str, want: tuple[str, str] | None) -> None:
    got = parse_value(text, 0, DEFAULT)
    assert (None if got is None else (str(ipaddress.IPv4Address(got.a)), got.txt)) == want


def test_txt_is_cut_at_255_bytes() -> None:
    got = parse_value(":2:" + "x" * 300, 0, DEFAULT)
    assert got is not None and len(got.txt) == 255


@pytest.mark.parametrize(
    ("text", "value", "bits"),
    [
        ("2001:21ab:c000/36", "2001:21ab:c000::", 36),
        ("2001:21ab:def7:4242", "2001:21ab:def7:4242::", 64),
        ("2605:6001:42::/52", "2605:6001:42::", 52),
        ("::1", "::1", 128),
        ("::", "::", 128),
        ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8", 128),
        ("2001:db8", "2001:db8::", 32),
        ("2001", "2001::", -1),  # a bare group, like a bare IPv4 number
        ("2001:db8::/129", "2001:db8::", -1),
    ],
)
def test_ip6_addresses(text: str, value: str, bits: int) -> None:
    v, b, end = ip6_cidr(text)
    assert b == bits
    if bits >= 0:
        assert v == int(ipaddress.IPv6Address(value)) and end == len(text)


def test_ip6_text_is_rbldnsds() -> None:
    rnd = random.Random(4)
    for _ in range(500):
        words = [rnd.choice([0, 0, 0, rnd.randrange(1 << 16)]) for _ in range(8)]
        a = ipaddress.IPv6Address(sum(w << (112 - 16 * i) for i, w in enumerate(words)))
        if a.ipv4_mapped is None:
            assert ip6_text(int(a)) == str(a)
    # Python prints a dotted IPv4 tail; rbldnsd does not
    assert ip6_text(int(IP("::ffff:1.2.3.4"))) == "::ffff:102:304"


@pytest.mark.parametrize(
    ("template", "base", "want"),
    [
        ("ip $ listed", "", "ip 192.0.2.1 listed"),
        ("$$ and $$$ end", "", "$ and $192.0.2.1 end"),
        ("$1/$2/$3", "", "one/two/$3"),
        ("raw: $=", "", "raw: raw: $="),
        ("trailing $", "", "trailing 192.0.2.1"),
        ("own", "B [$=] $", "B [own] 192.0.2.1"),
        ("", "B [$=] $", "B [192.0.2.1] 192.0.2.1"),
        ("=opt out $", "B [$=] $", "opt out 192.0.2.1"),
        ("", "", ""),
    ],
)
def test_txt_substitution(template: str, base: str, want: str) -> None:
    variables: list[str | None] = [None, "one", "two", None, None, None, None, None, None, None]
    assert substitute(template, "192.0.2.1", variables, base) == want


def test_txt_answers_are_cut_at_254_bytes() -> None:
    assert len(substitute("x" * 250 + " $", "192.0.2.1", [None] * 10, "")) == 254


# -- how rbldnsd stores ip4set entries -----------------------------------------------------


@pytest.mark.parametrize(
    ("first", "last", "pieces"),
    [
        ("10.0.0.0", "10.0.0.127", [(0, "10.0.0.0", "10.0.0.127")]),  # a /25: 128 /32 keys
        ("10.0.0.0", "10.0.0.255", [(1, "10.0.0.0", "10.0.0.255")]),  # a /24: one /24 key
        ("11.0.0.0", "11.15.255.255", [(2, "11.0.0.0", "11.15.255.255")]),  # a /12
        ("12.0.0.0", "12.255.255.255", [(3, "12.0.0.0", "12.255.255.255")]),
        ("10.0.0.5", "10.0.1.3", [(0, "10.0.0.5", "10.0.0.255"), (0, "10.0.1.0", "10.0.1.3")]),
        ("10.0.0.7", "10.0.0.7", [(0, "10.0.0.7", "10.0.0.7")]),
    ],
)
def test_ip4set_pieces(first: str, last: str, pieces: list[tuple[int, str, str]]) -> None:
    row, level, lo, hi = ip4set_pieces(np.array([n4(first)]), np.array([n4(last)]))
    got = sorted(zip(level.tolist(), lo.tolist(), hi.tolist(), strict=True))
    assert got == sorted((lv, n4(a), n4(b)) for lv, a, b in pieces)
    assert set(row.tolist()) == {0}


def test_ip4set_pieces_cover_each_range_exactly() -> None:
    rnd = np.random.default_rng(3)
    a = rnd.integers(0, 1 << 32, 2000)
    b = np.minimum(a + rnd.choice([0, 1, 254, 255, 256, 70000, 1 << 25], 2000), (1 << 32) - 1)
    row, level, lo, hi = ip4set_pieces(a, b)
    for r in range(2000):
        mine = sorted(zip(lo[row == r].tolist(), hi[row == r].tolist(), strict=True))
        assert len(mine) <= 7 and mine[0][0] == a[r] and mine[-1][1] == b[r]
        assert all(x[1] + 1 == y[0] for x, y in zip(mine, mine[1:], strict=False))
    size = 1 << (8 * level)  # every piece is whole keys of its level
    assert (lo % size == 0).all() and ((hi + 1) % size == 0).all()


# -- intervals: overlaps resolved once, compared with a brute-force walk ----------------------


def test_union_layer_exclusion_wins_and_values_add_up() -> None:
    values = Values()
    a, b = values.value(Value(2, "a")), values.value(Value(3, "b"))
    layer = union_layer(
        keys([0, 5, 8], 4), keys([10, 15, 9], 4), np.array([a, b, EXCLUDED]), values.group
    )
    both = values.group([a, b])
    got = list(zip(layer.starts.tolist(), layer.ends.tolist(), layer.ids.tolist(), strict=True))
    assert got == [(0, 4, a), (5, 7, both), (8, 9, EXCLUDED), (10, 10, both), (11, 15, b)]


def _brute(layers: list[list[tuple[int, int, int]]], size: int, values: Values) -> list[int]:
    """What each address answers: the top layer covering it, all its values, or -1."""
    out = [-1] * size
    for rows in layers:
        here: dict[int, set[int]] = {}
        for lo, hi, v in rows:
            for x in range(lo, hi + 1):
                here.setdefault(x, set()).add(v)
        for x, vs in here.items():
            out[x] = -1 if EXCLUDED in vs else values.group(sorted(vs))
    return out


@pytest.mark.parametrize("version", [4, 6])
def test_interval_tables_equal_a_brute_force_walk(version: int) -> None:
    rnd = random.Random(version)
    size = 3000
    offset = 0 if version == 4 else 1 << 100
    values = Values()
    ids = [values.value(Value(i + 2, f"v{i}")) for i in range(5)]
    raw = [
        [
            (lo, min(lo + rnd.choice([0, 1, 7, 60, 400]), size - 1), rnd.choice([*ids, EXCLUDED]))
            for lo in (rnd.randrange(size) for _ in range(60))
        ]
        for _ in range(4)
    ]
    layers = [
        union_layer(
            keys([lo + offset for lo, _, _ in rows], version),
            keys([hi + offset for _, hi, _ in rows], version),
            np.array([v for _, _, v in rows]),
            values.group,
        )
        for rows in raw
    ]
    table = IntervalTable(paint(layers, version), version)
    want = _brute(raw, size, values)
    assert [
        table.find(x + offset) if table.find(x + offset) is not None else -1 for x in range(size)
    ] == want
    # range matches count exactly what a walk counts
    qs = [
        (lo, min(size - 1, lo + rnd.randrange(800)))
        for lo in (rnd.randrange(size) for _ in range(80))
    ]
    hits = table.intersect(
        keys([lo + offset for lo, _ in qs], version), keys([hi + offset for _, hi in qs], version)
    )
    for i, (lo, hi) in enumerate(qs):
        assert int(hits.listed[i]) == sum(1 for x in range(lo, hi + 1) if want[x] >= 0)
        rows = np.flatnonzero(hits.range_index == i)
        for r in rows.tolist():
            f, la = int(hits.first[r]) - offset, int(hits.last[r]) - offset
            assert lo <= f <= la <= hi
            assert all(want[x] == hits.answer_id[r] for x in range(f, la + 1))


# -- the bulk reader reads what the line reader reads -------------------------------------


def _random_lines(rnd: random.Random, n: int) -> list[str]:
    out = []
    for _ in range(n):
        a = rnd.randrange(1 << 32)
        q = str(ipaddress.IPv4Address(a))
        pick = rnd.random()
        if pick < 0.3:
            out.append(q)
        elif pick < 0.4:
            out.append("!" + q)
        elif pick < 0.55:
            bits = rnd.randint(0, 32)
            out.append(
                f"{ipaddress.IPv4Address(a & ((0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF))}/{bits}"
            )
        elif pick < 0.65:
            b = min(a + rnd.randrange(5000), (1 << 32) - 1)
            out.append(f"{'!' if rnd.random() < 0.3 else ''}{q}-{ipaddress.IPv4Address(b)}")
        elif pick < 0.7:
            out.append(f":{rnd.randint(2, 9)}:default {rnd.randint(0, 5)}")
        else:
            out.append(
                rnd.choice(
                    [
                        f"{q}/{rnd.randint(0, 31)}",
                        "1.2.3.4.5",
                        "1.2.3",
                        "256.1.1.1",
                        "01.002.3.4",
                        f"{q}-1.0.0.0",
                        "1.2.3.4/33",
                        "1.2.3.",
                        "0000001.2.3.4",
                        "!1.2.3.0/24",
                        f"{q} :3:with value",
                        "10.0.0.5-10.0.0.9",
                        "1.2.3.4-5",
                    ]
                )
            )
    return out


@pytest.mark.parametrize("dstype", ["ip4set", "ip4trie", "ip4tset"])
def test_bulk_lines_read_like_the_line_reader(dstype: str) -> None:
    """The same file with "# x" after each entry (no bulk path) loads the same tables."""
    lines = _random_lines(random.Random(7), 4000)
    plain = "\n".join(lines) + "\n"
    # a comment after an address changes nothing, but no bulk path takes such a line
    slow = "\n".join(x if ":" in x else f"{x} # x" for x in lines) + "\n"
    a = parse(plain.encode(), dstype, max_malformed=1.0)
    b = parse(slow.encode(), dstype, max_malformed=1.0)
    assert a.ip4 is not None and b.ip4 is not None
    assert a.ip4.starts.tolist() == b.ip4.starts.tolist()
    assert a.ip4.ends.tolist() == b.ip4.ends.tolist()
    assert [a.values.members(i) for i in a.ip4.ids.tolist()] == [
        b.values.members(i) for i in b.ip4.ids.tolist()
    ]
    ra, rb = a.report, b.report
    assert (ra.entries, ra.exclusions, ra.malformed, ra.duplicates) == (
        rb.entries,
        rb.exclusions,
        rb.malformed,
        rb.duplicates,
    )


def test_bulk_takes_only_plain_lines() -> None:
    text = (
        "1.2.3.4\n!1.2.3.5\n1.2.3.0/24\n1.2.3.4-1.2.3.9\n1.2.3\n1.2.3.4 \n1.2.3.1/24\n"
        "1.2.3.4 :2:x\n1.2.3.4\r\n# c\n"
    )
    data = text.encode()
    got = plain_entries(data, split_lines(data))
    assert sorted(got.lines.tolist()) == [0, 1, 2, 3]


# -- mirrors ------------------------------------------------------------------------------

SMALL = b"""\
:2:Listed $, see https://bl.example/?ip=$
127.0.0.2
192.0.2.0/24
!192.0.2.128/26
192.0.2.200 :4:also exploited
192.0.2.200 :5:
198.51.100.0-198.51.100.9 :3:range $
"""


def test_lookup() -> None:
    m = parse(SMALL, "ip4set")
    assert m.lookup("192.0.2.1") == Answer(
        ("127.0.0.2",), ("Listed 192.0.2.1, see https://bl.example/?ip=192.0.2.1",)
    )
    assert m.lookup("192.0.2.130") is None
    both = m.lookup(IP("192.0.2.200"))
    assert both is not None and set(both.codes) == {"127.0.0.4", "127.0.0.5"}
    assert both.texts == ("also exploited",) and both.text == "also exploited"
    assert m.lookup("198.51.100.9").code == "127.0.0.3"  # type: ignore[union-attr]
    assert m.lookup("198.51.100.10") is None
    # rbldnsd answers 6to4 and IPv4-mapped query names from IPv4 data
    assert m.lookup("2002:c000:201::1") == m.lookup("192.0.2.1")
    assert m.lookup("::ffff:192.0.2.1") == m.lookup("192.0.2.1")
    assert m.lookup("2001:db8::1") is None
    with pytest.raises(TargetError):
        m.lookup("not an address")


def test_test_points() -> None:
    pos, neg = parse(SMALL, "ip4set").test_points()
    assert pos is not None and neg is None
    names = parse(b"test\n", "dnset")
    assert names.test_points("test", "invalid") == (Answer(("127.0.0.2",)), None)


def test_dnset_lookup() -> None:
    m = parse(b":3:name $\n.Example.COM\n!bad.example.com\n*.w.example :4:w $\n", "dnset")
    assert m.lookup("example.com.") == Answer(("127.0.0.3",), ("name example.com",))
    assert m.lookup("A.Example.com") == Answer(("127.0.0.3",), ("name example.com",))
    assert m.lookup("bad.example.com") is None
    assert m.lookup("x.bad.example.com") is not None  # the exclusion is a plain name only
    assert m.lookup("w.example") is None
    assert m.lookup("a.w.example") == Answer(("127.0.0.4",), ("w w.example",))


def test_match_ranges_counts_and_stretches() -> None:
    m = parse(SMALL, "ip4set")
    match = m.match_ranges(
        [
            "192.0.2.0/24",
            ipaddress.ip_network("198.51.100.0/24"),
            "198.51.100.5-198.51.100.20",
            (IP("203.0.113.0"), IP("203.0.113.255")),  # type: ignore[list-item]
            "127.0.0.2",
        ]
    )
    assert match.covered == [256, 256, 16, 256, 1]
    assert match.listed == [192, 10, 5, 0, 1]
    got = [(x.range_index, str(x.first), str(x.last), x.codes) for x in match.listings()]
    assert got == [
        (0, "192.0.2.0", "192.0.2.127", ("127.0.0.2",)),
        (0, "192.0.2.192", "192.0.2.199", ("127.0.0.2",)),
        (0, "192.0.2.200", "192.0.2.200", ("127.0.0.4", "127.0.0.5")),
        (0, "192.0.2.201", "192.0.2.255", ("127.0.0.2",)),
        (1, "198.51.100.0", "198.51.100.9", ("127.0.0.3",)),
        (2, "198.51.100.5", "198.51.100.9", ("127.0.0.3",)),
        (4, "127.0.0.2", "127.0.0.2", ("127.0.0.2",)),
    ]
    one = next(iter(match.listings()))
    assert m.answer(one.answer_id, IP("192.0.2.77")).texts == (
        "Listed 192.0.2.77, see https://bl.example/?ip=192.0.2.77",
    )


def test_match_sixteen_slash12s_by_intervals() -> None:
    """16 x /12 = 16.7 M addresses against 200 k listings: counts equal a sorted count."""
    rnd = np.random.default_rng(11)
    singles = np.unique(rnd.integers(0, 1 << 32, 200_000))
    text = "\n".join(str(ipaddress.IPv4Address(int(a))) for a in singles) + "\n"
    m = parse(text.encode(), "ip4tset")
    nets = [ipaddress.IPv4Network((int(x) << 20, 12)) for x in rnd.choice(4096, 16, False)]
    match = m.match_ranges(nets)
    for net, listed, covered in zip(nets, match.listed, match.covered, strict=True):
        lo, hi = int(net.network_address), int(net.broadcast_address)
        want = np.searchsorted(singles, hi, "right") - np.searchsorted(singles, lo, "left")
        assert listed == want and covered == 1 << 20
    assert int((match.last - match.first + 1).sum()) == sum(match.listed)


def test_match_ipv6_and_mixed_ranges() -> None:
    m = parse(
        drop_json(
            '{"cidr":"192.0.2.0/24","sblid":"SBL1","rir":"arin"}',
            '{"cidr":"2001:db8::/32","sblid":"SBL2","rir":"ripencc"}',
        ),
        "drop-json",
    )
    match = m.match_ranges(["2001:db8:1::/48", "192.0.2.128/25", "2001:db9::/32", "2000::/3"])
    assert match.covered == [1 << 80, 128, 1 << 96, 1 << 125]
    assert match.listed == [1 << 80, 128, 0, 1 << 96]
    assert [x.range_index for x in match.listings()] == [0, 1, 3]


@pytest.mark.parametrize("bad", ["10.0.0.1/8", "nonsense", "10.0.0.5-10.0.0.1", "10.0.0.1-::1"])
def test_match_refuses_bad_inventory(bad: str) -> None:
    with pytest.raises(TargetError):
        address_range(bad)
    assert address_range("10.0.0.0/30") == AddressRange(n4("10.0.0.0"), n4("10.0.0.3"), 4)


# -- feeds ---------------------------------------------------------------------------------


def test_cidr_list() -> None:
    m = parse(
        b"; header\n192.0.2.0/24 ; SBL1\n# other comment style\n2001:db8::/32\r\n"
        b"198.51.100.7\n10.0.0.1/8\n",
        "cidr-list",
    )
    assert m.lookup("192.0.2.9") == Answer(("127.0.0.2",))
    assert m.lookup("2001:db8::5") == Answer(("127.0.0.2",))
    assert m.lookup("198.51.100.7") is not None and m.lookup("10.0.0.1") is None
    assert m.report.malformed == 1 and m.report.entries == 3
    custom = parse(b"192.0.2.0/24\n", "cidr-list", code="127.0.0.9", txt="drop $")
    assert custom.lookup("192.0.2.1") == Answer(("127.0.0.9",), ("drop 192.0.2.1",))


def drop_json(*records: str, **meta: object) -> bytes:
    """A DROP download: record lines, then the metadata line counting them as Spamhaus does."""
    body = "".join(r + "\n" for r in records).encode()
    head = {"type": "metadata", "timestamp": 1728000000, "size": len(body)}
    head |= {"records": len(records), "copyright": "(c) The Spamhaus Project"} | meta
    return body + json.dumps(head).encode() + b"\n"


DROP = drop_json(
    '{"cidr":"1.10.16.0/20","sblid":"SBL256894","rir":"apnic"}',
    '{"cidr":"1.10.16.0/24","sblid":"SBL1","rir":"apnic"}',
    '{"cidr":"2a06:e480::/29","sblid":"SBL303641","rir":"ripencc"}',
)


def test_drop_json() -> None:
    m = parse(DROP, "drop-json")
    assert m.lookup("1.10.17.1") == Answer(("127.0.0.9",), ("SBL256894",))
    assert m.lookup("1.10.16.1") == Answer(("127.0.0.9",), ("SBL256894", "SBL1"))
    assert m.lookup("2a06:e480::1") == Answer(("127.0.0.9",), ("SBL303641",))
    assert m.report.timestamp == 1728000000.0 and m.report.entries == 3
    linked = parse(DROP, "drop-json", txt="https://www.spamhaus.org/sbl/query/{sblid}")
    assert linked.lookup("1.10.17.1").text.endswith("/SBL256894")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (DROP.rsplit(b"\n", 2)[0] + b"\n", "no metadata line"),
        (DROP.replace(b'"records": 3', b'"records": 4'), "counts 4 records"),
        (DROP.replace(b'"size": ', b'"size": 1'), "bytes of records"),
        (DROP.split(b"\n", 1)[1], "counts 3 records, the file has 2"),
        (DROP + b'{"cidr":"9.9.9.0/24","sblid":"SBL9"}\n', "after the metadata"),
        (b"<html><body>503</body></html>\n", "no metadata line"),
    ],
)
def test_truncated_drop_json_is_unusable(data: bytes, why: str) -> None:
    with pytest.raises(UnusableMirror, match=why):
        parse(data, "drop-json")


# -- unusable files -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "empty file"),
        (b"\n# only comments\n$SOA 60 a. b. 0 1h 1h 2d 60\n", "no entries"),
        (b"\x00\x01\x02binary\n", "binary"),
        (b"<!DOCTYPE html>\n<html>\n<body>Service unavailable</body>\n</html>\n", "malformed"),
        (b"192.0.2.1\n192.0.2.2\n10.20.3", "no newline"),
        (gzip.compress(b"192.0.2.1\n")[:-6], "gzip"),
    ],
)
def test_unusable_files(data: bytes, why: str) -> None:
    with pytest.raises(UnusableMirror, match=why) as info:
        parse(data, "ip4set")
    assert isinstance(info.value, InputError)


def test_unusable_is_overridable_where_meant() -> None:
    assert parse(b"# nothing listed today\n", "ip4set", allow_empty=True).lookup("1.2.3.4") is None
    assert parse(b"192.0.2.1", "ip4set", allow_unterminated=True).lookup("192.0.2.1")
    assert parse(gzip.compress(b"192.0.2.1\n"), "ip4set").lookup("192.0.2.1")


def test_timestamps() -> None:
    now = 1_750_000_000.0
    with pytest.raises(UnusableMirror, match="future"):
        parse(b"$TIMESTAMP 2030:01:01\n192.0.2.1\n", "ip4set", now=now)
    with pytest.raises(UnusableMirror, match="expired"):
        parse(b"$TIMESTAMP 2024:01:01 +1d\n192.0.2.1\n", "ip4set", now=now)
    ok = parse(b"$TIMESTAMP 2025-06-01 2030-01-01\n192.0.2.1\n", "ip4set", now=now)
    assert ok.report.timestamp == 1748736000.0 and ok.report.expires == 1893456000.0


def test_malformed_lines_are_counted_and_quoted() -> None:
    data = b"192.0.2.1\n10\n192.0.2.2 :0:bad\n1.2.3.4/24\n192.0.2.3\n192.0.2.4\n192.0.2.5\n"
    m = parse(data, "ip4set", names=["f"])
    assert (m.report.entries, m.report.malformed) == (4, 3)
    assert m.report.problems == (
        "f:2: invalid address",
        "f:3: invalid value",
        "f:4: invalid range (non-zero host part)",
    )
    masked = parse(b"1.2.3.4/24\n", "ip4set", accept_in_cidr=True)  # rbldnsd -e
    assert masked.lookup("1.2.3.200") is not None


def test_trie_duplicates_keep_the_first() -> None:
    m = parse(b"10.0.0.0/8 :2:first\n10.0.0.0/8 :3:second\n", "ip4trie")
    assert m.lookup("10.1.1.1") == Answer(("127.0.0.2",), ("first",))
    assert m.report.duplicates == 1


def test_load_files(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b":3:first file\n192.0.2.1\n10.0.0.0/8 :4:a\n")
    (tmp_path / "b").write_bytes(b"192.0.2.2\n10.0.0.0/8 :5:b\n")
    m = load([tmp_path / "a", tmp_path / "b"], "ip4set")
    assert m.lookup("192.0.2.1") == Answer(("127.0.0.3",), ("first file",))
    assert m.lookup("192.0.2.2") == Answer(("127.0.0.2",))  # the default ends with its file
    assert set(m.lookup("10.1.1.1").codes) == {"127.0.0.4", "127.0.0.5"}  # type: ignore[union-attr]
    trie = load([tmp_path / "a", tmp_path / "b"], "ip4trie")
    assert trie.lookup("10.1.1.1").code == "127.0.0.4"  # type: ignore[union-attr]
    with pytest.raises(UnusableMirror, match="cannot read"):
        load(tmp_path / "missing", "ip4set")
    assert set(FORMATS) == {
        "ip4set",
        "ip4tset",
        "ip4trie",
        "ip6trie",
        "ip6tset",
        "dnset",
        "cidr-list",
        "drop-json",
    }


# -- mirror answers as DNS answers ------------------------------------------------------------


def test_resolver_answers_questions() -> None:
    r = MirrorResolver(
        {"bl.example.": parse(SMALL, "ip4set"), "dbl.example": parse(b"bad.example\n", "dnset")}
    )
    got = r.resolve(
        [
            ("1.2.0.192.bl.example.", A),
            ("1.2.0.192.bl.example.", TXT),
            ("9.9.9.9.bl.example.", A),
            ("bad.example.dbl.example.", A),
            ("BAD.Example.DBL.example.", A),
            ("not-an-address.bl.example.", A),
            ("bl.example.", A),
            ("1.2.3.4.other.example.", A),
        ]
    )
    assert got[0].addresses == ("127.0.0.2",) and got[0].error is None
    assert got[1].texts == ("Listed 192.0.2.1, see https://bl.example/?ip=192.0.2.1",)
    assert got[2].rcode == NXDOMAIN
    assert got[3].addresses == got[4].addresses == ("127.0.0.2",)
    assert got[5].rcode == NXDOMAIN and got[6].rcode == 0 and not got[6].addresses
    assert got[7].error == "REFUSED"
    assert dns_answer(None).rcode == NXDOMAIN


def test_mirror_results_and_selftest() -> None:
    zone = Zone(
        "bl.example",
        "ip",
        codes={"127.0.0.2": Code("spam", "high")},
        delist="https://bl.example/delist/{target}",
    )
    m = parse(SMALL, "ip4set")
    assert mirror_selftest(m, zone) is None
    broken = parse(b"192.0.2.1\n", "ip4set")
    assert "positive test point" in (mirror_selftest(broken, zone) or "")
    results = check_with_mirrors(
        [Target.parse("192.0.2.1"), Target.parse("203.0.113.1")], [zone], {"bl.example": m}
    )
    listed, clean = results
    assert listed.status == "problem" and listed.severity == "high"
    assert listed.fields["reason"].startswith("Listed 192.0.2.1")
    assert listed.fields["delist"] == "https://bl.example/delist/192.0.2.1"
    assert clean.status == "ok"
    unknown = check_with_mirrors([Target.parse("192.0.2.1")], [zone], {"bl.example": broken})
    assert unknown[0].status == "unknown" and "self-test" in (unknown[0].error or "")


def test_answers_are_utf8_text() -> None:
    m = parse(":2:Liste \u00e9t\u00e9 $\n192.0.2.1\n".encode(), "ip4set")
    assert m.lookup("192.0.2.1") == Answer(("127.0.0.2",), ("Liste \u00e9t\u00e9 192.0.2.1",))


def test_ip6tset_and_ip6trie_mirrors() -> None:
    t = parse(b":4:six $\n2001:db8:0:1\n!2001:db8:0:1::5\n2001:db8:0:2::/64\n", "ip6tset")
    assert t.lookup("2001:db8:0:1::4") == Answer(("127.0.0.4",), ("six 2001:db8:0:1::4",))
    assert t.lookup("2001:db8:0:1::5") is None and t.lookup("2001:db8:0:2::1") is None
    assert t.report.malformed == 1
    trie = parse(b"2001:db8::/32 :2:wide\n!2001:db8:1::/48\n2001:db8:1:2::/64 :3:\n", "ip6trie")
    assert trie.lookup("2001:db8:5::1").code == "127.0.0.2"  # type: ignore[union-attr]
    assert trie.lookup("2001:db8:1::1") is None
    assert trie.lookup("2001:db8:1:2::1") == Answer(("127.0.0.3",))
    assert trie.lookup("192.0.2.1") is None
