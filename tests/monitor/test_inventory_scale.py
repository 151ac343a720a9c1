"""Inventories of any size: pools matched by ranges when every blocklist zone is mirrored, the
clear refusal when a zone still needs DNS, pools read from files (CIDR lists, cloud
providers' JSON with filters), owners found by bisection, nothing expanded that need not be."""

from __future__ import annotations

import ipaddress
import json
import os
import random
import time
from pathlib import Path

import pytest

from checks.errors import ConfigError
from monitor.cli import main
from monitor.config import load_config, parse_config
from monitor.inventory import Inventory, InventoryError
from monitor.store import Store
from monitor.store.checks import current_problems, known_targets, last_coverage
from tests.configs import table

LISTINGS = """:127.0.0.2:Listed $
127.0.0.2
10.1.2.3
10.200.0.0/30
!10.200.0.2
11.0.0.1
"""


def write(tmp_path: Path, pool: dict[str, object], zones: list[dict[str, object]]) -> Path:
    cfg = tmp_path / "repmon.toml"
    text = table("resolver", {"nameservers": ["127.0.0.1:9"], "timeout": 0.2, "retries": 0})
    text += table("dnsbl", {"defaults": False})
    for z in zones:
        text += table("dnsbl.zones", z, array=True)
    text += table("inventory.pools", pool, array=True)
    text += table("store", {"url": f"sqlite:///{tmp_path / 'repmon.db'}"})
    cfg.write_text(text)
    return cfg


MIRRORED = {"zone": "bl.example", "type": "ip", "mirror": "bl.ip4set", "mirror_format": "ip4set"}
MIRRORED |= {"delist": "https://bl.example/?{target}"}
BIG = {"name": "cloud", "customer": "us", "cidrs": ["10.0.0.0/8"], "checks": ["dnsbl"]}


def test_a_slash8_pool_with_every_zone_mirrored_sweeps_in_seconds_and_records_only_listings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bl.ip4set").write_text(LISTINGS)
    cfg = write(tmp_path, BIG, [MIRRORED])
    t = time.monotonic()
    assert main(["sweep", "--config", str(cfg), "--only", "dnsbl", "--no-progress"]) == 0
    took = time.monotonic() - t
    out = capsys.readouterr().out
    assert "16777216 targets, 16777216 results (16777212 ok, 4 problem, 0 unknown)" in out
    assert took < 60, took  # a few seconds on a quiet machine: nothing is expanded
    store = Store.open(f"sqlite:///{tmp_path / 'repmon.db'}")
    try:
        listed = {p.target for p in current_problems(store, ["dnsbl"])}
        assert listed == {"10.1.2.3", "10.200.0.0", "10.200.0.1", "10.200.0.3"}
        assert known_targets(store, "dnsbl") == listed  # no row for a clean address
        (cov,) = last_coverage(store, "dnsbl")
        assert (cov.covered, cov.listed, cov.unknown, cov.complete) == (16777216, 4, 0, True)
        p = next(p for p in current_problems(store, ["dnsbl"]) if p.target == "10.1.2.3")
        assert (p.pool, p.customer, p.data["reason"]) == ("cloud", "us", "Listed 10.1.2.3")

        # delisted in the file: the next sweep ends the listing (found among the ranges)
        (tmp_path / "bl.ip4set").write_text(LISTINGS.replace("10.1.2.3\n", ""))
        assert main(["sweep", "--config", str(cfg), "--only", "dnsbl", "--no-progress"]) == 0
        assert "dnsbl 10.1.2.3 bl.example: problem -> ok" in capsys.readouterr().out
        listed = {p.target for p in current_problems(store, ["dnsbl"])}
        assert listed == {"10.200.0.0", "10.200.0.1", "10.200.0.3"}
    finally:
        store.close()


def test_the_same_pool_with_a_zone_asked_by_dns_is_refused_saying_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dns = [{"zone": "dns-a.example", "type": "ip"}, {"zone": "dns-b.example", "type": "ip"}]
    cfg = write(tmp_path, BIG, [MIRRORED, *dns])
    assert main(["sweep", "--config", str(cfg), "--only", "dnsbl", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "'cloud': 10.0.0.0/8 has 16,777,216 addresses" in err
    assert "max_cidr_addresses" in err
    assert "use a mirror for zones dns-a.example, dns-b.example or split the pool" in err

    cfg = write(tmp_path, {**BIG, "checks": ["dnsbl", "hygiene"]}, [MIRRORED])
    assert main(["sweep", "--config", str(cfg), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert 'set checks = ["dnsbl"] for the pool' in err and "use a mirror" not in err

    # IPv6 is always answered address by address, mirrored or not
    six = {"name": "v6", "cidrs": ["2001:db8::/64"], "checks": ["dnsbl"]}
    v6 = {**MIRRORED, "zone": "bl6.example", "ipv6": True, "mirror_format": "ip6trie"}
    with pytest.raises(InventoryError, match="IPv6 addresses are checked one by one"):
        Inventory.from_config(load_config(write(tmp_path, six, [v6])))
    # ... but not looked at when no zone lists IPv6
    inv = Inventory.from_config(load_config(write(tmp_path, six, [MIRRORED])))
    assert list(inv.ips("dnsbl")) == [] and inv.addresses() == 2**64


def test_what_is_expanded_and_what_is_matched_by_ranges() -> None:
    mirrored = {"zone": "m.example", "type": "ip", "mirror": "/x", "mirror_format": "ip4set"}
    config = {
        "dnsbl": {"defaults": False, "zones": [mirrored]},
        "inventory": {
            "pools": [
                {"name": "big", "cidrs": ["10.0.0.0/8"], "checks": ["dnsbl"]},
                {"name": "senders", "cidrs": ["192.0.2.0/30", "10.9.9.9"]},
                {"name": "quiet", "cidrs": ["198.51.100.0/31"], "checks": ["hygiene"]},
            ]
        },
    }
    inv = Inventory.from_config(parse_config(config))
    # the per-IP hygiene checks: the pools that run them, the big pool never
    assert list(inv.ips()) == ["192.0.2.0", "192.0.2.1", "192.0.2.2", "192.0.2.3", "10.9.9.9",
                               "198.51.100.0", "198.51.100.1"]  # fmt: skip
    assert list(inv.ips("dnsbl")) == []  # every zone is mirrored: nothing asked by DNS
    assert [str(n) for n, _ in inv.ranges(check="dnsbl")] == [
        "10.0.0.0/8",
        "192.0.2.0/30",
        "10.9.9.9/32",
    ]
    assert [str(n) for n, o in inv.ranges(pool="quiet")] == ["198.51.100.0/31"]
    assert inv.addresses(check="dnsbl") == 2**24 + 4  # 10.9.9.9 is inside 10/8
    # the first pool listing an address owns it
    assert inv.owner_of_ip("10.9.9.9").pool == "big"  # type: ignore[union-attr]
    assert inv.owners["10.200.1.1"] == ("big", "")
    assert inv.owners.get("203.0.113.1") is None
    # with a zone asked by DNS, the small dnsbl pools are expanded for it
    config["dnsbl"]["zones"].append({"zone": "d.example", "type": "ip"})  # type: ignore[index]
    config["inventory"]["pools"] = config["inventory"]["pools"][1:]  # type: ignore[index]
    inv = Inventory.from_config(parse_config(config))
    assert list(inv.ips("dnsbl")) == ["192.0.2.0", "192.0.2.1", "192.0.2.2", "192.0.2.3",
                                      "10.9.9.9"]  # fmt: skip


def test_owner_of_ip_bisects_thousands_of_overlapping_networks() -> None:
    rnd = random.Random(7)
    pools = []
    for p in range(4):
        cidrs = set()
        while len(cidrs) < 1500:
            bits = rnd.choice([16, 20, 24, 28, 32])
            base = rnd.randrange(1 << 24, 224 << 24) & (0xFFFFFFFF << (32 - bits))
            cidrs.add(str(ipaddress.IPv4Network((base, bits))))
        pools.append({"name": f"p{p}", "cidrs": sorted(cidrs), "checks": ["dnsbl"]})
    mirrored = {"zone": "m.example", "type": "ip", "mirror": "/x", "mirror_format": "ip4set"}
    config = parse_config(
        {"dnsbl": {"defaults": False, "zones": [mirrored]}, "inventory": {"pools": pools}}
    )
    t = time.monotonic()
    inv = Inventory.from_config(config)
    nets = [(ipaddress.ip_network(c), p["name"]) for p in pools for c in p["cidrs"]]  # type: ignore[union-attr]
    probes = [ipaddress.IPv4Address(rnd.randrange(1 << 24, 224 << 24)) for _ in range(2000)]
    probes += [n.network_address + rnd.randrange(n.num_addresses) for n, _ in nets[:4000:3]]
    for a in probes:
        naive = next((name for n, name in nets if a in n), None)
        got = inv.owner_of_ip(str(a))
        assert (got.pool if got else None) == naive, a
    assert time.monotonic() - t < 120


def test_pools_from_a_cidr_list_file_beside_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ranges.txt").write_text(
        "# our address space\n"
        "192.0.2.0/28   ; shared senders\n"
        "\n"
        "  198.51.100.7\n"
        "2001:db8::/126 # v6\n"
        "192.0.2.0/28\n"
    )
    cfg = tmp_path / "repmon.toml"
    cfg.write_text(
        table("inventory.pools", {"name": "p", "cidrs": ["203.0.113.1"],
                                  "cidrs_file": "ranges.txt"}, array=True)
    )  # fmt: skip
    monkeypatch.chdir("/")
    config = load_config(cfg)
    (pool,) = config.inventory.pools
    assert pool.cidrs_file == str(tmp_path / "ranges.txt")
    assert pool.cidrs == ["203.0.113.1/32", "192.0.2.0/28", "198.51.100.7/32", "2001:db8::/126"]
    inv = Inventory.from_config(config)
    assert inv.owner_of_ip("192.0.2.9").pool == "p"  # type: ignore[union-attr]

    (tmp_path / "ranges.txt").write_text("192.0.2.0/28\n10.0.0.1/8\nnonsense\n")
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    msg = str(err.value)
    assert "inventory.pools[0]" in msg and "ranges.txt" in msg
    assert "line 2: '10.0.0.1/8' has host bits set" in msg and "line 3: 'nonsense'" in msg
    os.unlink(tmp_path / "ranges.txt")
    with pytest.raises(ConfigError, match="no such file"):
        load_config(cfg)


AWS = {
    "syncToken": "1",
    "prefixes": [
        {"ip_prefix": "3.5.140.0/22", "region": "eu-west-1", "service": "AMAZON"},
        {"ip_prefix": "3.5.140.0/22", "region": "eu-west-1", "service": "EC2"},
        {"ip_prefix": "18.200.0.0/16", "region": "eu-west-1", "service": "EC2"},
        {"ip_prefix": "52.94.0.0/22", "region": "us-east-1", "service": "EC2"},
        {"ip_prefix": "54.231.0.0/17", "region": "eu-west-1", "service": "S3"},
    ],
    "ipv6_prefixes": [
        {"ipv6_prefix": "2a05:d018::/36", "region": "eu-west-1", "service": "EC2"},
        {"ipv6_prefix": "2600:1f18::/36", "region": "us-east-1", "service": "EC2"},
    ],
}


@pytest.mark.parametrize(
    ("filters", "want"),
    [
        ({}, ["3.5.140.0/22", "18.200.0.0/16", "52.94.0.0/22", "54.231.0.0/17",
              "2a05:d018::/36", "2600:1f18::/36"]),
        ({"region": "eu-west-1", "service": "EC2"}, ["3.5.140.0/22", "18.200.0.0/16",
                                                     "2a05:d018::/36"]),
        ({"region": "eu-west-1", "service": ["S3", "AMAZON"]}, ["3.5.140.0/22",
                                                                "54.231.0.0/17"]),
    ],
)  # fmt: skip
def test_pools_from_a_cloud_providers_prefix_list_with_filters(
    tmp_path: Path, filters: dict[str, object], want: list[str]
) -> None:
    (tmp_path / "ip-ranges.json").write_text(json.dumps(AWS))
    pool = {"name": "aws", "cidrs_file": "ip-ranges.json", "checks": ["dnsbl"]}
    if filters:
        pool["cidrs_filter"] = filters
    cfg = tmp_path / "repmon.toml"
    cfg.write_text(table("inventory.pools", pool, array=True))
    (p,) = load_config(cfg).inventory.pools
    assert p.cidrs == want


def test_bad_prefix_lists_and_filters_are_refused_saying_why(tmp_path: Path) -> None:
    def load(doc: object, filters: dict[str, object] | None = None, name: str = "f.json") -> str:
        (tmp_path / name).write_text(doc if isinstance(doc, str) else json.dumps(doc))
        pool: dict[str, object] = {"name": "p", "cidrs_file": name}
        if filters is not None:
            pool["cidrs_filter"] = filters
        (tmp_path / "repmon.toml").write_text(table("inventory.pools", pool, array=True))
        with pytest.raises(ConfigError) as err:
            load_config(tmp_path / "repmon.toml")
        return str(err.value)

    assert "key(s) regoin are in none of its prefixes" in load(AWS, {"regoin": "eu-west-1"})
    assert "region, service" in load(AWS, {"regoin": "x"})
    assert "no prefix matches cidrs_filter" in load(AWS, {"region": "mars-1"})
    assert "not valid JSON" in load('{"prefixes": [')
    assert "expected a prefix list" in load({"items": []})
    assert "host bits" in load({"prefixes": [{"ip_prefix": "3.5.140.1/22"}]})
    assert "applies to a JSON file" in load("192.0.2.0/24\n", {"region": "x"}, "r.txt")
    google = {"prefixes": [{"ipv4Prefix": "34.1.0.0/16", "scope": "europe-west1"},
                           {"ipv6Prefix": "2600:1900::/35", "scope": "us-east1"}]}  # fmt: skip
    (tmp_path / "g.json").write_text(json.dumps(google))
    (tmp_path / "repmon.toml").write_text(
        table("inventory.pools", {"name": "g", "cidrs_file": "g.json",
                                  "cidrs_filter": {"scope": "europe-west1"}}, array=True)
    )  # fmt: skip
    (p,) = load_config(tmp_path / "repmon.toml").inventory.pools
    assert p.cidrs == ["34.1.0.0/16"]


def test_mirror_paths_resolve_beside_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = write(tmp_path, {"name": "p", "cidrs": ["192.0.2.0/30"]}, [MIRRORED])
    monkeypatch.chdir("/")
    config = load_config(cfg)
    (spec,) = config.dnsbl.mirror_specs().values()
    assert spec.path == str(tmp_path / "bl.ip4set")
    assert config.dnsbl.mirror_dir == str(tmp_path / "var" / "mirrors")
