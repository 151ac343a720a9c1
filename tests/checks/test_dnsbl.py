"""Blocklist checks against a real rbldnsd: listings, codes, TXT, IPv6, domains, failure paths."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from checks.dnsbl import CATALOGUE, Target, Zone, check_targets, interpret
from checks.dnsbl.transport import Answer, BulkResolver
from checks.dnsbl.zones import Code
from checks.resolver import parse_nameserver
from monitor.cli import main
from tests.configs import blocklists, code
from tests.servers import Rbldnsd, rbldnsd, silent_udp_server

IP4 = """:127.0.0.2:Listed for spam, see http://bl.example/?ip=$
127.0.0.2
192.0.2.1
192.0.2.64/30
:127.0.0.4:Exploited host $
192.0.2.2
:127.255.255.254:Query via open resolver
192.0.2.99
"""
IP6 = """:127.0.0.2:IPv6 listed $
::ffff:7f00:2
2001:db8::1
"""
DOM = """:127.0.1.2:Spam domain $
test
bad.example
.evil.example
"""
#: a zone without its RFC 5782 positive test point (broken or refusing)
NOTEST = """:127.0.0.2:listed
192.0.2.1
"""
#: answers outside 127/8: a wildcard or hijacked zone
HIJACK = """:10.1.2.3:hijacked
127.0.0.2
192.0.2.1
"""

ZONES = {
    "bl.example": ("ip4set", IP4),
    "bl.example#6": ("ip6trie", IP6),
    "dbl.example": ("dnset", DOM),
    "notest.example": ("ip4set", NOTEST),
    "hijack.example": ("ip4set", HIJACK),
}

BL = Zone(
    "bl.example",
    "ip",
    ipv6=True,
    codes={"127.0.0.2": Code("spam source", "high"), "127.0.0.4": Code("exploited", "critical")},
    refused=frozenset({"127.255.255.254"}),
    delist="http://bl.example/lookup?{target}",
)
DBL = Zone("dbl.example", "domain", codes={"127.0.1.2": Code("spam domain", "high")})
NOTEST_Z = Zone("notest.example", "ip")
HIJACK_Z = Zone("hijack.example", "ip")
UNSERVED = Zone("unserved.example", "ip")


@pytest.fixture(scope="module")
def server() -> Iterator[Rbldnsd]:
    with rbldnsd(ZONES) as srv:
        yield srv


@pytest.fixture
def resolver(server: Rbldnsd) -> Iterator[BulkResolver]:
    r = BulkResolver([parse_nameserver(server.nameserver)], timeout=1.0, retries=1)
    yield r
    r.close()


def by_key(results):  # type: ignore[no-untyped-def]
    return {(r.target, r.source): r for r in results}


def test_ipv4_listed_clean_and_codes(resolver: BulkResolver) -> None:
    targets = [Target.parse(t) for t in ("192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.65")]
    res = by_key(check_targets(targets, [BL], resolver))
    r = res[("192.0.2.1", "bl.example")]
    assert r.status == "problem" and r.severity == "high"
    assert r.fields["codes"] == ["127.0.0.2"]
    assert r.fields["meaning"] == "spam source"
    assert r.fields["reason"] == "Listed for spam, see http://bl.example/?ip=192.0.2.1"
    assert r.fields["delist"] == "http://bl.example/lookup?192.0.2.1"
    x = res[("192.0.2.2", "bl.example")]
    assert x.status == "problem" and x.severity == "critical" and x.fields["codes"] == ["127.0.0.4"]
    assert res[("192.0.2.3", "bl.example")].status == "ok"
    assert res[("192.0.2.65", "bl.example")].status == "problem"  # inside a listed CIDR


def test_ipv6_nibble_form_and_mapped_addresses(resolver: BulkResolver) -> None:
    targets = [Target.parse(t) for t in ("2001:db8::1", "2001:db8::2", "::ffff:192.0.2.1")]
    res = by_key(check_targets(targets, [BL], resolver))
    assert res[("2001:db8::1", "bl.example")].status == "problem"
    assert res[("2001:db8::2", "bl.example")].status == "ok"
    # an IPv4-mapped address is checked as the IPv4 address, never the in-addr.arpa form
    assert res[("192.0.2.1", "bl.example")].status == "problem"


def test_ipv6_not_asked_of_ipv4_only_zone(resolver: BulkResolver) -> None:
    v4only = Zone("bl.example", "ip", ipv6=False)
    assert check_targets([Target.parse("2001:db8::1")], [v4only], resolver) == []


def test_domains(resolver: BulkResolver) -> None:
    targets = [Target.parse(t) for t in ("bad.example", "sub.evil.example", "good.example")]
    res = by_key(check_targets(targets, [DBL, BL], resolver))
    assert res[("bad.example", "dbl.example")].status == "problem"
    assert res[("bad.example", "dbl.example")].fields["reason"] == "Spam domain bad.example"
    assert res[("sub.evil.example", "dbl.example")].status == "problem"
    assert res[("good.example", "dbl.example")].status == "ok"
    assert ("bad.example", "bl.example") not in res  # IP zones are not asked about domains


def test_refused_answer_code_is_unknown(resolver: BulkResolver) -> None:
    r = check_targets([Target.parse("192.0.2.99")], [BL], resolver)[0]
    assert r.status == "unknown"
    assert "refused" in r.error and "127.255.255.254" in r.error


def test_zone_failing_selftest_makes_everything_unknown(resolver: BulkResolver) -> None:
    res = check_targets(
        [Target.parse("192.0.2.1"), Target.parse("192.0.2.3")], [NOTEST_Z], resolver
    )
    assert [r.status for r in res] == ["unknown", "unknown"]
    assert "self-test" in res[0].error
    # with the self-test off, the zone's answers are used as they are
    res = check_targets([Target.parse("192.0.2.1")], [NOTEST_Z], resolver, selftest=False)
    assert res[0].status == "problem"


def test_answer_outside_loopback_is_unknown(resolver: BulkResolver) -> None:
    res = check_targets([Target.parse("192.0.2.1")], [HIJACK_Z], resolver, selftest=False)
    assert res[0].status == "unknown" and "outside 127.0.0.0/8" in res[0].error
    res = check_targets([Target.parse("192.0.2.3")], [HIJACK_Z], resolver)
    assert res[0].status == "unknown" and "self-test" in res[0].error


def test_zone_not_served_is_refused_unknown(resolver: BulkResolver) -> None:
    res = check_targets([Target.parse("192.0.2.1")], [UNSERVED], resolver)
    assert res[0].status == "unknown" and res[0].error == "REFUSED"


def test_silent_nameserver_is_unknown_never_clean() -> None:
    with silent_udp_server() as port:
        r = BulkResolver([parse_nameserver(f"127.0.0.1:{port}")], timeout=0.2, retries=1)
        try:
            res = check_targets(
                [Target.parse("192.0.2.1"), Target.parse("x.example")], [BL, DBL], r
            )
        finally:
            r.close()
    assert res and all(x.status == "unknown" and x.error == "timeout" for x in res)


def test_interpret_bitmask_and_allow_list() -> None:
    surbl = next(z for z in CATALOGUE if z.zone == "multi.surbl.org")
    assert interpret(surbl, Answer(0, ("127.0.0.1",))).status == "unknown"
    v = interpret(surbl, Answer(0, ("127.0.0.24",)))
    assert v.status == "problem" and v.severity == "critical" and len(v.meanings) == 2
    karma = next(z for z in CATALOGUE if z.zone == "hostkarma.junkemailfilter.com")
    assert interpret(karma, Answer(0, ("127.0.0.1",))).status == "ok"
    assert interpret(karma, Answer(0, ("127.0.0.2",))).status == "problem"
    zen = next(z for z in CATALOGUE if z.zone == "zen.spamhaus.org")
    for answer in ("127.255.255.252", "127.255.255.254", "127.255.255.255"):
        assert interpret(zen, Answer(0, (answer,))).status == "unknown"
    assert interpret(zen, Answer(3)).status == "ok"
    assert interpret(zen, Answer(None, error="SERVFAIL")).status == "unknown"


def test_catalogue_is_complete_and_has_no_sorbs() -> None:
    names = {z.label for z in CATALOGUE}
    for expected in (
        "zen.spamhaus.org",
        "dbl.spamhaus.org",
        "zen.dq.spamhaus.net",
        "b.barracudacentral.org",
        "bl.spamcop.net",
        "dnsbl-1.uceprotect.net",
        "psbl.surriel.com",
        "bl.mailspike.net",
        "multi.surbl.org",
        "multi.uribl.com",
    ):
        assert expected in names
    assert not any("sorbs" in n for n in names)
    for z in CATALOGUE:
        assert z.delist.startswith("https://"), z.label
        assert "{key}" not in z.label


# --- the CLI against the same server ------------------------------------------------


def write_config(tmp_path: Path, server: Rbldnsd) -> str:
    path = tmp_path / "repmon.toml"
    bl = {
        "zone": "bl.example",
        "type": "ip",
        "ipv6": True,
        "codes": {"127.0.0.2": code("spam source", "high")},
        "refused": ["127.255.255.254"],
        "delist": "http://bl.example/lookup?{target}",
    }
    path.write_text(
        blocklists([server.nameserver], [bl, {"zone": "dbl.example", "type": "domain"}])
    )
    return str(path)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_json_shape_and_exit_codes(
    server: Rbldnsd, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, server)
    code, out, _ = run_cli(
        capsys, "check", "--config", cfg, "--only", "dnsbl", "--json", "192.0.2.1"
    )
    assert code == 1
    rows = json.loads(out)
    assert len(rows) == 1
    row = rows[0]
    for key in (
        "target",
        "check",
        "source",
        "status",
        "codes",
        "meaning",
        "reason",
        "delist",
        "error",
    ):
        assert key in row
    assert row["check"] == "dnsbl" and row["source"] == "bl.example" and row["status"] == "problem"

    code, out, _ = run_cli(
        capsys, "check", "--config", cfg, "--only", "dnsbl", "192.0.2.3", "ok.example"
    )
    assert code == 0 and "not listed" in out

    code, out, _ = run_cli(capsys, "check", "--config", cfg, "--only", "dnsbl", "192.0.2.99")
    assert code == 3 and "unknown" in out


def test_cli_cidr_zone_filter_and_usage_errors(
    server: Rbldnsd, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, server)
    code, out, _ = run_cli(
        capsys, "check", "--config", cfg, "--json", "--zone", "bl.example", "192.0.2.64/30"
    )
    assert code == 1
    rows = json.loads(out)
    assert [r["target"] for r in rows] == [f"192.0.2.{i}" for i in range(64, 68)]
    assert all(r["status"] == "problem" for r in rows)

    code, _, err = run_cli(capsys, "check", "--config", cfg, "10.0.0.0/8")
    assert code == 2 and "limit" in err
    code, _, err = run_cli(capsys, "check", "--config", cfg, "--zone", "nope.example", "192.0.2.1")
    assert code == 2 and "unknown zone" in err
    code, _, err = run_cli(capsys, "check", "--config", cfg, "not an ip!")
    assert code == 2
    code, _, err = run_cli(capsys, "check", "--config", cfg, "--resolver", "x:y", "192.0.2.1")
    assert code == 2


def test_cli_resolver_flag_overrides_config(
    server: Rbldnsd, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with silent_udp_server() as port:
        cfg = write_config(tmp_path, server)
        code, out, _ = run_cli(
            capsys,
            "check",
            "--config",
            cfg,
            "--only",
            "dnsbl",
            "--json",
            "--resolver",
            f"127.0.0.1:{port}",
            "192.0.2.1",
        )
    assert code == 3
    assert json.loads(out)[0]["error"] == "timeout"


def test_cli_config_error_names_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        '[resolver]\ntimeout = "soon"\n[[dnsbl.zones]]\nzone = "x.example"\ntype = "ipv9"\n'
    )
    code, _, err = run_cli(capsys, "check", "--config", str(path), "192.0.2.1")
    assert code == 2
    assert "resolver.timeout" in err and "dnsbl.zones[0].type" in err


def test_dqs_key_never_printed(
    server: Rbldnsd, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, server)
    text = (
        Path(cfg)
        .read_text()
        .replace("defaults = false", 'defaults = true\ndqs_key = "SECRETKEY123"')
    )
    Path(cfg).write_text(text)
    # the test server does not serve the DQS zone: REFUSED, so unknown; the key stays hidden
    code, out, err = run_cli(
        capsys, "check", "--config", cfg, "--json", "--zone", "zen.dq.spamhaus.net", "192.0.2.1"
    )
    assert code == 3
    assert "SECRETKEY123" not in out + err
    rows = json.loads(out)
    assert rows[0]["source"] == "zen.dq.spamhaus.net" and rows[0]["status"] == "unknown"


def test_dqs_key_replaces_public_spamhaus_zones() -> None:
    from monitor.config import parse_config

    plain = {z.label for z in parse_config({}).dnsbl.active_zones()}
    assert "zen.spamhaus.org" in plain and "zen.dq.spamhaus.net" not in plain
    keyed = {z.label for z in parse_config({"dnsbl": {"dqs_key": "k"}}).dnsbl.active_zones()}
    assert "zen.dq.spamhaus.net" in keyed and "zen.spamhaus.org" not in keyed
