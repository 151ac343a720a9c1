"""Blocklist zones answered from mirror files: the wiring through ``repmon check`` and the
sweep gives what DNS gives for the same file (served by a real rbldnsd), never asks DNS, and
answers ``unknown`` for a missing, stale or untrusted mirror.

The reading itself is proven in tests/checks/test_mirror_rbldnsd.py; here the same bytes are
served by rbldnsd and used as a mirror, and the two paths must agree result by result.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import pytest

from checks.dnsbl import Target
from checks.dnsbl.mirror import check_with_mirrors, load
from checks.result import OK
from collectors.dnsbl.config import DnsblConfig
from collectors.dnsbl.mirrored import (
    CACHE,
    MirrorCache,
    MirrorPart,
    RangeTargets,
    TargetIndex,
    cut_points,
    split_spans,
)
from collectors.sweep import Chunk, SweepSummary
from collectors.targets import Owner
from monitor.cli import main
from monitor.store import Store
from monitor.store.checks import current_problems, last_sweep
from tests.configs import code, table
from tests.servers import rbldnsd, silent_udp_server

BL = """:127.0.0.2:Listed $ (see https://bl.example/q?$)
127.0.0.2
192.0.2.1
192.0.2.8/29
!192.0.2.12
192.0.2.20-192.0.2.25 :3:Range listing for $
192.0.2.30 :5:allow-listed
192.0.2.31 :127.255.255.254:refused
192.0.2.40 :2:first value
192.0.2.40 :4:second value
198.51.100.0/24
!198.51.100.128/25
"""
BL6 = """:127.0.0.2:v6 listed $
2001:db8::/64
!2001:db8::1
"""
DBL = """:127.0.1.2:domain listed $
test
bad.example
*.wild.example
"""
FILES = {"bl.example": ("ip4set", BL), "bl6.example": ("ip6trie", BL6)}
FILES |= {"dbl.example": ("dnset", DBL)}


def zones(mirrors: dict[str, Path] | None = None) -> list[dict[str, Any]]:
    """The three zones, by DNS, or with ``mirrors`` (zone -> file) answered from files."""
    out: list[dict[str, Any]] = [
        {
            "zone": "bl.example",
            "type": "ip",
            "codes": {
                "127.0.0.2": code("spam source", "high"),
                "127.0.0.3": code("range listing", "medium"),
                "127.0.0.4": code("other listing", "low"),
            },
            "refused": ["127.255.255.254"],
            "not_listed": ["127.0.0.5"],
            "delist": "https://bl.example/lookup?ip={target}",
        },
        {
            "zone": "bl6.example",
            "type": "ip",
            "ipv6": True,
            "test_listed": "2001:db8::5",
            "codes": {"127.0.0.2": code("v6 spam", "critical")},
        },
        {"zone": "dbl.example", "type": "domain", "delist": "https://dbl.example/{target}"},
    ]
    for z in out:
        if mirrors is not None:
            z["mirror"] = str(mirrors[z["zone"]])
            z["mirror_format"] = FILES[z["zone"]][0]
    return out


def write_config(
    path: Path,
    nameserver: str,
    zone_list: list[dict[str, Any]],
    store: str | None = None,
    pools: list[dict[str, Any]] | None = None,
    extra: str = "",
) -> str:
    text = table("resolver", {"nameservers": [nameserver], "timeout": 0.3, "retries": 1})
    text += table("dnsbl", {"defaults": False})
    for z in zone_list:
        text += table("dnsbl.zones", z, array=True)
    for p in pools or []:
        text += table("inventory.pools", p, array=True)
    if store:
        text += table("store", {"url": store})
    path.write_text(text + extra)
    return str(path)


def served_files(directory: Path) -> dict[str, Path]:
    """The files the rbldnsd helper wrote (``z0.ip4set`` …), in FILES order: the same bytes
    rbldnsd serves."""
    return {z: directory / f"z{i}.{fmt}" for i, (z, (fmt, _)) in enumerate(FILES.items())}


def check_json(capsys: pytest.CaptureFixture[str], cfg: str, *targets: str) -> list[dict]:  # type: ignore[type-arg]
    main(["check", "--config", cfg, "--only", "dnsbl", "--json", *targets])
    return json.loads(capsys.readouterr().out)


def normal(row: dict[str, Any]) -> dict[str, Any]:
    """A result without how it was answered, with several-valued answers in one order
    (rbldnsd's order of A and TXT records follows its memory layout)."""
    out = {k: v for k, v in row.items() if k not in ("via", "mirror_age_seconds")}
    out["codes"] = sorted(out.get("codes") or [])
    out["meaning"] = sorted((out.get("meaning") or "").split("; "))
    out["reason"] = sorted((out.get("reason") or "").split(" "))
    out["detail"] = (out.get("detail") or "").split(":")[0]
    return out


TARGETS = (
    "192.0.2.1",
    "192.0.2.8/29",
    "192.0.2.20/30",
    "192.0.2.24/30",
    "192.0.2.30",
    "192.0.2.31",
    "192.0.2.40",
    "198.51.100.5",
    "198.51.100.200",
    "203.0.113.9",
    "2001:db8::1",
    "2001:db8::7",
    "2001:db8:1::1",
    "bad.example",
    "x.wild.example",
    "good.example",
)


def test_repmon_check_gives_the_same_from_the_mirror_as_from_rbldnsd(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with rbldnsd(FILES) as srv:
        by_dns = check_json(
            capsys, write_config(tmp_path / "dns.toml", srv.nameserver, zones()), *TARGETS
        )
        files = served_files(srv.directory)
        # the mirrors are the very files rbldnsd serves; DNS goes to a server that never
        # answers: a single question asked would be a timeout, an unknown
        with silent_udp_server() as port:
            cfg = write_config(tmp_path / "m.toml", f"127.0.0.1:{port}", zones(files))
            CACHE.clear()
            by_mirror = check_json(capsys, cfg, *TARGETS)
    assert len(by_dns) == len(by_mirror) > 40
    assert {r["via"] for r in by_dns} == {"dns"}
    assert {r["via"] for r in by_mirror} == {"mirror"}
    assert all(0 <= r["mirror_age_seconds"] < 600 for r in by_mirror)
    assert [normal(r) for r in by_dns] == [normal(r) for r in by_mirror]
    statuses = {(r["target"], r["source"]): r["status"] for r in by_mirror}
    # what the file means, as rbldnsd answers it
    assert statuses[("192.0.2.12", "bl.example")] == "ok"  # excluded
    assert statuses[("192.0.2.30", "bl.example")] == "ok"  # allow-list answer
    assert statuses[("192.0.2.31", "bl.example")] == "unknown"  # refused-query answer
    assert statuses[("198.51.100.200", "bl.example")] == "ok"  # the /25 exclusion
    assert statuses[("2001:db8::1", "bl6.example")] == "ok"
    assert statuses[("2001:db8::7", "bl6.example")] == "problem"
    assert statuses[("x.wild.example", "dbl.example")] == "problem"
    row = next(r for r in by_mirror if r["target"] == "192.0.2.21")
    assert row["reason"] == "Range listing for 192.0.2.21"
    assert row["delist"] == "https://bl.example/lookup?ip=192.0.2.21"
    assert row["severity"] == "medium" and row["codes"] == ["127.0.0.3"]


def _problems(store_url: str) -> list[tuple[Any, ...]]:
    store = Store.open(store_url)
    try:
        return sorted(
            (
                p.target,
                p.source,
                p.severity,
                p.pool,
                p.customer,
                json.dumps(normal(dict(p.data) | {"detail": p.detail}), sort_keys=True),
            )
            for p in current_problems(store, ["dnsbl"])
        )
    finally:
        store.close()


def test_the_sweep_records_the_same_from_the_mirror_as_from_rbldnsd(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pools = [
        {
            "name": "shared",
            "customer": "acme",
            "cidrs": ["192.0.2.0/24", "198.51.100.0/24", "2001:db8::/125"],
            "domains": ["bad.example", "good.example", "x.wild.example"],
            "checks": ["dnsbl"],
        }
    ]
    stores = {k: f"sqlite:///{tmp_path / k}.db" for k in ("dns", "mirror")}
    with rbldnsd(FILES) as srv:
        cfg = write_config(tmp_path / "dns.toml", srv.nameserver, zones(), stores["dns"], pools)
        assert main(["sweep", "--config", cfg, "--only", "dnsbl", "--no-progress"]) == 0
        files = served_files(srv.directory)
        with silent_udp_server() as port:
            cfg = write_config(
                tmp_path / "m.toml", f"127.0.0.1:{port}", zones(files), stores["mirror"], pools
            )
            assert main(["sweep", "--config", cfg, "--only", "dnsbl", "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    summaries = [x for x in lines if x.startswith("dnsbl sweep")]
    assert len(summaries) == 2
    assert summaries[0].split(" in ")[0] == summaries[1].split(" in ")[0]
    assert _problems(stores["dns"]) == _problems(stores["mirror"])
    assert len(_problems(stores["mirror"])) == 1 + 7 + 6 + 1 + 128 + 7 + 2
    runs = []
    for url in stores.values():
        store = Store.open(url)
        try:
            runs.append(last_sweep(store, "dnsbl"))
        finally:
            store.close()
    dns_run, mirror_run = runs
    assert dns_run is not None and mirror_run is not None
    assert (dns_run.targets, dns_run.ok, dns_run.problem, dns_run.unknown) == (
        mirror_run.targets,
        mirror_run.ok,
        mirror_run.problem,
        mirror_run.unknown,
    )
    assert mirror_run.unknown == 1  # 192.0.2.31: the list refused the query, in both


def test_a_missing_stale_or_untrusted_mirror_answers_unknown_never_ok(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bl = tmp_path / "bl.ip4set"
    bl.write_text(BL)
    zone = zones({"bl.example": bl, "bl6.example": bl, "dbl.example": bl})[0]
    with silent_udp_server() as port:
        cfg = write_config(tmp_path / "m.toml", f"127.0.0.1:{port}", [zone])
        CACHE.clear()
        (row,) = check_json(capsys, cfg, "192.0.2.1")
        assert row["status"] == "problem" and row["via"] == "mirror"

        old = time.time() - 3 * 3600
        os.utime(bl, (old, old))  # older than mirror_max_age (2h)
        (row,) = check_json(capsys, cfg, "192.0.2.1")
        assert row["status"] == "unknown" and row["detail"] == "mirror not usable"
        assert "older than mirror_max_age" in row["error"] and row["mirror_age_seconds"] > 10000
        (row,) = check_json(capsys, cfg, "203.0.113.1")  # not listed: still not "ok"
        assert row["status"] == "unknown"

        bl.unlink()
        (row,) = check_json(capsys, cfg, "192.0.2.1")
        assert row["status"] == "unknown" and "missing" in row["error"]
        assert row["mirror_age_seconds"] is None

        bl.write_text(BL.replace("127.0.0.2\n", ""))  # no RFC 5782 test point
        (row,) = check_json(capsys, cfg, "192.0.2.1")
        assert row["status"] == "unknown" and row["detail"] == "zone not trusted in this run"
        assert "positive test point" in row["error"]

        bl.write_text("<html>502 Bad Gateway</html>\n")
        (row,) = check_json(capsys, cfg, "192.0.2.1")
        assert row["status"] == "unknown" and "mirror unusable" in row["error"]


DROP = (
    '{"cidr": "203.0.113.0/24", "sblid": "SBL000001", "rir": "test"}\n'
    '{"cidr": "198.51.100.0/25", "sblid": "SBL000002", "rir": "test"}\n'
)


def drop_file(path: Path) -> None:
    body = DROP.encode()
    meta = {"type": "metadata", "timestamp": 1700000000, "size": len(body), "records": 2}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body + json.dumps(meta).encode() + b"\n")


def test_spamhaus_drop_is_a_mirror_only_catalogue_zone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = DnsblConfig.model_validate({"defaults": True})
    assert "drop.spamhaus.org" not in {z.zone for z in config.active_zones()}
    with silent_udp_server() as port:
        cfg = tmp_path / "repmon.toml"
        cfg.write_text(
            table("resolver", {"nameservers": [f"127.0.0.1:{port}"], "timeout": 0.3})
            + table("dnsbl", {"defaults": True, "enable": ["drop.spamhaus.org"]})
        )
        drop_file(tmp_path / "var" / "mirrors" / "drop.spamhaus.org.drop-json")
        CACHE.clear()
        rows = check_json(capsys, str(cfg), "--zone", "drop.spamhaus.org", "203.0.113.7")
        (row,) = rows
        assert row["status"] == "problem" and row["via"] == "mirror"
        assert row["codes"] == ["127.0.0.9"] and row["severity"] == "critical"
        assert row["reason"] == "SBL000001" and "spamhaus.org" in row["delist"]
        (row,) = check_json(capsys, str(cfg), "--zone", "drop.spamhaus.org", "192.0.2.1")
        assert row["status"] == "ok"
        # without its file the zone is unknown: never asked over DNS instead
        (tmp_path / "var" / "mirrors" / "drop.spamhaus.org.drop-json").unlink()
        (row,) = check_json(capsys, str(cfg), "--zone", "drop.spamhaus.org", "203.0.113.7")
        assert row["status"] == "unknown" and "fetches it" in row["error"]
    spec = DnsblConfig.model_validate({"enable": ["drop.spamhaus.org"]}).mirror_specs()
    drop = spec["drop.spamhaus.org"]
    assert drop.url == "https://www.spamhaus.org/drop/drop_v4.json" and drop.format == "drop-json"
    assert drop.min_interval == 3600 and not drop.zone.selftest


# --- the range path against the one-by-one path, on random data (no server) ------------------


class Collecting:
    """A recorder that keeps what it is given."""

    def __init__(self) -> None:
        self.chunks: list[Chunk] = []
        self.summaries: list[SweepSummary] = []

    def record(self, sweep: str, results: Any, at: dt.datetime) -> None:
        raise AssertionError("a bulk sweep hands chunks")

    def record_chunk(self, chunk: Chunk, at: dt.datetime) -> None:
        self.chunks.append(chunk)

    def keep(self, collector: str, report: object, at: dt.datetime) -> None:
        pass

    def finish(self, summary: SweepSummary) -> None:
        self.summaries.append(summary)


class Pools:
    """A Targets view with ranges, as the inventory gives it."""

    def __init__(self, nets: list[str], domains: list[str] = ()) -> None:  # type: ignore[assignment]
        self.nets = [ipaddress.ip_network(n) for n in nets]
        self._domains = list(domains)

    def ranges(self, pool: str | None = None, check: str | None = None) -> list[Any]:
        return [(n, Owner("p", "c")) for n in self.nets]

    def ips(self, check: str | None = None) -> list[str]:
        return []

    def domains(self) -> list[str]:
        return self._domains

    def owner_of_ip(self, ip: str) -> Owner | None:
        return Owner("p", "c")

    def owner_of_domain(self, domain: str) -> Owner | None:
        return None

    def domains_of_ip(self, ip: str) -> list[str]:
        return []

    def dkim_selectors(self, domain: str) -> list[str]:
        return []


def random_ip4set(rnd: random.Random, base: int, size: int) -> str:
    """Singles, ranges, CIDRs, exclusions, several values, a variable and TXT templates that
    name the address (one too long to take the shortcut) over ``base``..``base+size``."""

    def q(a: int) -> str:
        return str(ipaddress.IPv4Address(a))

    lines = ["$0 var-zero", ":2:Listed $ ($0)", "127.0.0.2"]
    for _ in range(300):
        a = base + rnd.randrange(size)
        kind = rnd.random()
        if kind < 0.4:
            lines.append(q(a))
        elif kind < 0.6:
            lines.append(f"{q(a)}-{q(min(a + rnd.randrange(1, 200), base + size - 1))} :3:R $")
        elif kind < 0.75:
            bits = rnd.randrange(22, 30)
            net = ipaddress.ip_network(f"{q(a)}/{bits}", strict=False)
            lines.append(f"{net} :4:{'L' * 240} $ end")  # truncated at 254 bytes
        elif kind < 0.9:
            lines.append(f"!{q(a)}")
        else:
            lines.append(f"{q(a)} :5:second $")  # several values on one key with a single
            lines.append(q(a))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_range_results_equal_one_by_one_results(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rnd = random.Random(seed)
    base, size = int(ipaddress.IPv4Address("10.1.0.0")), 1 << 13
    files = {}
    for name in ("a.example", "b.example"):
        files[name] = tmp_path / f"{name}.ip4set"
        files[name].write_text(random_ip4set(rnd, base, size))
    trie = tmp_path / "c.ip4trie"
    trie.write_text(":2:trie $\n127.0.0.2\n10.1.0.0/20 :3:wide $\n10.1.4.0/24\n!10.1.4.128/25\n")
    files["c.example"] = trie
    dnsbl = DnsblConfig.model_validate(
        {
            "defaults": False,
            "zones": [
                {
                    "zone": z,
                    "type": "ip",
                    "codes": {"127.0.0.2": code("two", "high"), "127.0.0.3": code("x", "low")},
                    "not_listed": ["127.0.0.5"] if z == "b.example" else [],
                    "delist": f"https://{z}/?{{target}}",
                    "mirror": str(p),
                    "mirror_format": "ip4trie" if z == "c.example" else "ip4set",
                }
                for z, p in files.items()
            ],
        }
    )
    # two inventory networks, not aligned with anything; small chunks: stretches get cut
    nets = ["10.1.0.0/20"] if seed != 2 else ["10.1.0.0/21", "10.1.12.0/22", "10.1.18.0/23"]
    monkeypatch.setattr("collectors.dnsbl.mirrored.CHUNK_LISTED", 97)
    recorder = Collecting()
    summary = SweepSummary("dnsbl", dt.datetime.now(dt.UTC))
    part = MirrorPart(dnsbl, Pools(nets), None, summary.started, cache=MirrorCache())
    assert part.dns_zones == [] and part.dns_targets == []
    part.run(recorder, summary)  # type: ignore[arg-type]
    got = [(r.target, r.source, r.status, r.severity, r.detail, r.error, dict(r.fields))
           for c in recorder.chunks for r in c.results]  # fmt: skip
    assert len(recorder.chunks) > 3
    # every chunk is a stretch of the inventory; together, the whole of it, once
    covered = [t for c in recorder.chunks for t in c.targets]
    everything = [str(a) for n in nets for a in ipaddress.ip_network(n)]
    assert covered == everything
    zones = dnsbl.active_zones()
    mirrors = {z.zone: load(files[z.zone], "ip4trie" if z.zone == "c.example" else "ip4set")
               for z in zones}  # fmt: skip
    want = [
        (r.target, r.source, r.status, r.severity, r.detail, r.error, dict(r.fields))
        for r in check_with_mirrors([Target.parse(a) for a in everything], zones, mirrors)
        if r.status != OK
    ]
    assert sorted(got, key=repr) == sorted(want, key=repr)
    assert len(want) > 200
    per_zone = {z: c.listed + c.unknown for z, c in summary.sources.items()}
    assert sum(per_zone.values()) == len(want)
    assert all(c.covered == len(everything) for c in summary.sources.values())
    for c in recorder.chunks:
        assert isinstance(c.targets, RangeTargets)
        assert all(r.target in c.targets for r in c.results)
        assert all(c.asked(r.target, r.source) for r in c.results)


def test_cut_points_bound_the_listings_per_piece() -> None:
    stretches = [(0, 999), (500, 599), (2000, 2000), (3000, 9999)]
    cuts = cut_points(stretches, 250)
    pieces = split_spans([(0, 20_000)], cuts)
    for piece in pieces:
        lo, hi = piece[0][0], piece[-1][1]
        inside = sum(max(0, min(b, hi) - max(a, lo) + 1) for a, b in stretches)
        assert inside <= 250 + 2
    assert sum(b - a + 1 for p in pieces for a, b in p) == 20_001
    assert split_spans([(0, 9), (20, 29)], [5, 25]) == [[(0, 4)], [(5, 9), (20, 24)], [(25, 29)]]
    targets = RangeTargets([(0x0A000000, 0x0A0000FF), (0x0A000200, 0x0A000201)], 4)
    assert len(targets) == 258 and targets[256] == "10.0.2.0" and targets[-1] == "10.0.2.1"
    assert "10.0.0.255" in targets and "10.0.1.0" not in targets and "10.0.0.01" not in targets
    assert targets.among({"10.0.2.1", "10.0.3.1", "example.com"}) == {"10.0.2.1"}
    assert list(targets)[:2] == ["10.0.0.0", "10.0.0.1"]


def test_a_dns_zone_still_asks_dns_beside_mirrored_ones(tmp_path: Path) -> None:
    bl = tmp_path / "bl.ip4set"
    bl.write_text(BL)
    dnsbl = DnsblConfig.model_validate(
        {
            "defaults": False,
            "zones": [
                {"zone": "m.example", "type": "ip", "mirror": str(bl), "mirror_format": "ip4set"},
                {"zone": "d.example", "type": "ip"},
                {"zone": "dd.example", "type": "domain"},
            ],
        }
    )
    part = MirrorPart(dnsbl, Pools(["192.0.2.0/30"], ["a.example"]), None, dt.datetime.now(dt.UTC))
    assert [z.zone for z in part.zones] == ["m.example"]
    assert [z.zone for z in part.dns_zones] == ["d.example", "dd.example"]
    assert [t.text for t in part.dns_targets] == ["a.example"]  # Pools.ips() holds none here
    given = [Target.parse("192.0.2.1")]
    part = MirrorPart(dnsbl, Pools([]), given, dt.datetime.now(dt.UTC))
    assert part.dns_targets == given


def test_the_recorders_targets_are_picked_per_chunk_from_one_sorted_index() -> None:
    index = TargetIndex()
    known = {"10.0.0.5", "10.0.1.7", "example.com", "2001:db8::1", "10.0.0.05"}
    first = RangeTargets([(0x0A000000, 0x0A0000FF)], 4, index)
    second = RangeTargets([(0x0A000100, 0x0A0001FF), (0x0B000000, 0x0B000000)], 4, index)
    assert first.among(known) == {"10.0.0.5"}
    known |= {"11.0.0.0", "10.0.1.8"}  # the recorder made rows for the first chunk's results
    assert second.among(known) == {"10.0.1.7", "10.0.1.8", "11.0.0.0"}
    assert first.among(known) == {"10.0.0.5"}
    # another collection (another sweep's), a smaller one, a list: read afresh
    assert second.among({"10.0.1.1"}) == {"10.0.1.1"}
    assert second.among(["10.0.1.2", "10.0.1.2"]) == {"10.0.1.2"}
    # without an index (or for IPv6) every given target is tested on its own
    assert RangeTargets([(0x0A000000, 0x0A0000FF)], 4).among(known) == {"10.0.0.5"}


@pytest.mark.parametrize(
    ("zone", "error"),
    [
        ({"type": "ip", "mirror_format": "ip4set"}, "mirror_format without mirror"),
        ({"type": "ip", "mirror": "x"}, "a mirror needs mirror_format"),
        ({"type": "ip", "mirror": "x", "mirror_format": "dnset"}, "must be an address format"),
        ({"type": "domain", "mirror": "x", "mirror_format": "ip4set"}, "must be dnset"),
        ({"type": "ip", "mirror": "x", "mirror_format": "ip4tset", "mirror_url": "ftp://h/x"},
         "rsync:// or https://"),
        ({"type": "ip", "mirror": "x", "mirror_format": "ip4set",
          "mirror_url": "http://mirror.example/x"}, "loopback server only"),
        ({"type": "ip", "mirror": "x", "mirror_format": "ip4set", "mirror_url": "rsync://h/x"},
         "rsync://host/module/path"),
        ({"type": "ip", "mirror": "x", "mirror_format": "ip4set", "mirror_max_age": "10s"},
         "shorter than the minimum"),
        ({"mirror": "x", "mirror_format": "ip4set"}, "not in the built-in catalogue"),
    ],
)  # fmt: skip
def test_mirror_keys_are_checked_on_load(zone: dict[str, Any], error: str) -> None:
    from monitor.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match=error):
        parse_config({"dnsbl": {"zones": [{"zone": "bl.example", **zone}]}})


def test_a_catalogue_zone_is_adjusted_by_an_entry_without_type() -> None:
    from monitor.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match="may set only"):
        parse_config({"dnsbl": {"zones": [{"zone": "zen.spamhaus.org", "severity": "low"}]}})
    with pytest.raises(ConfigError, match="its mirror must be dnset"):
        parse_config({"dnsbl": {"zones": [{"zone": "dbl.spamhaus.org", "mirror": "x",
                                           "mirror_format": "ip4set"}]}})  # fmt: skip
    config = parse_config(
        {
            "dnsbl": {
                "zones": [
                    {"zone": "zen.spamhaus.org", "mirror": "/srv/zen", "mirror_format": "ip4set",
                     "selftest": False},
                    {"zone": "edrop.spamhaus.org", "mirror": "/srv/edrop.txt"},
                    {"zone": "drop.spamhaus.org", "mirror": "/srv/drop.json", "mirror_url": ""},
                ]
            }
        }
    ).dnsbl  # fmt: skip
    zones = {z.zone: z for z in config.active_zones()}
    zen = zones["zen.spamhaus.org"]
    assert not zen.selftest and zen.codes["127.0.0.4"].severity == "critical"  # the catalogue's
    specs = config.mirror_specs()
    assert specs["zen.spamhaus.org"].path == "/srv/zen" and specs["zen.spamhaus.org"].url == ""
    assert specs["edrop.spamhaus.org"].url == "https://www.spamhaus.org/drop/edrop.txt"
    assert specs["edrop.spamhaus.org"].code == "127.0.0.9"
    assert specs["edrop.spamhaus.org"].allow_empty
    assert specs["drop.spamhaus.org"].url == ""  # a file kept by other means
    assert set(specs) == {"zen.spamhaus.org", "edrop.spamhaus.org", "drop.spamhaus.org"}
