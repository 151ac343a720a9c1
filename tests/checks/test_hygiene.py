"""Hygiene checks against a real authoritative server (nsd) serving the zones of hygiene_zones."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import checkdmarc.utils
import pytest

from checks.hygiene import HYGIENE_CHECKS, check_domain, check_ip
from checks.hygiene.library import checkdmarc_nameservers as as_lib
from checks.hygiene.ptr import generic_reasons
from checks.resolver import Nameserver
from checks.result import CheckResult
from tests import hygiene_zones as hz
from tests.servers import nsd, silent_udp_server

TIMEOUT = 2.0
SELECTORS = ["s2048", "s1024", "s512", "ed", "revoked", "garbled", "missing"]


@pytest.fixture(scope="module")
def keys() -> dict[str, str]:
    return hz.dkim_records()


@pytest.fixture(scope="module")
def nameservers(keys: dict[str, str]) -> Iterator[list[Nameserver]]:
    with nsd(hz.zones(keys)) as server:
        # a non-53 port on purpose: every library must be pointed at it
        yield [Nameserver("127.0.0.1", server.port)]


def by_key(results: list[CheckResult]) -> dict[tuple[str, str], CheckResult]:
    return {(r.check, r.source): r for r in results}


def domain(name: str, ns: list[Nameserver], selectors: list[str] | None = None) -> dict:
    return by_key(asyncio.run(check_domain(name, selectors or [], ns, TIMEOUT)))


def ip(addr: str, domains: list[str], ns: list[Nameserver]) -> dict:
    return by_key(asyncio.run(check_ip(addr, domains, ns, TIMEOUT)))


def test_good_domain_all_ok(nameservers: list[Nameserver]) -> None:
    r = domain("good.test", nameservers, ["s2048", "ed"])
    for key in [("spf", ""), ("dmarc", ""), ("mx", ""), ("mta-sts", ""), ("tls-rpt", "")]:
        assert r[key].status == "ok", r[key]
    assert r[("dkim", "s2048")].fields["bits"] == 2048
    assert r[("dkim", "ed")].status == "ok" and r[("dkim", "ed")].fields["key_type"] == "ed25519"
    spf = r[("spf", "")]
    assert spf.fields["dns_lookups"] == 2 and spf.fields["all"] == "fail"
    dmarc = r[("dmarc", "")]
    assert dmarc.fields["p"] == "reject" and dmarc.fields["rua"] == ["mailto:dmarc@good.test"]
    assert dmarc.fields["adkim"] == "s" and dmarc.fields["aspf"] == "r"
    assert r[("mx", "")].fields["hosts"][0]["addresses"] == ["192.0.2.25"]
    assert r[("bimi", "")].status == "ok" and r[("bimi", "")].fields["published"] is True
    assert r[("dnssec", "")].status == "ok" and r[("dnssec", "")].fields["signed"] is False
    assert {c for c, _ in r} == set(HYGIENE_CHECKS) - {"ptr", "spf-authorizes"}


def test_dkim_key_variants(nameservers: list[Nameserver]) -> None:
    r = domain("good.test", nameservers, SELECTORS)
    assert r[("dkim", "s1024")].status == "problem"
    assert r[("dkim", "s1024")].severity == "low" and "weak" in r[("dkim", "s1024")].detail
    assert r[("dkim", "s512")].severity == "high" and r[("dkim", "s512")].fields["bits"] == 512
    assert "revoked" in r[("dkim", "revoked")].detail
    assert r[("dkim", "garbled")].status == "problem"
    missing = r[("dkim", "missing")]
    assert missing.status == "problem" and "NXDOMAIN" in missing.detail


@pytest.mark.parametrize(
    ("name", "severity", "words"),
    [
        ("open.test", "critical", "+all"),
        ("monitor.test", "medium", "?all"),
        ("toomany.test", "high", "11 DNS lookups"),
        ("void.test", "high", "void"),
        ("missinginc.test", "high", "nospf.missinginc.test"),
        ("bare.test", "high", "no SPF record"),
    ],
)
def test_spf_problems(nameservers: list[Nameserver], name: str, severity: str, words: str) -> None:
    spf = domain(name, nameservers)[("spf", "")]
    assert (spf.status, spf.severity) == ("problem", severity), spf
    assert words in spf.detail


def test_refused_include_is_unknown_not_missing(nameservers: list[Nameserver]) -> None:
    spf = domain("refused.test", nameservers)[("spf", "")]
    assert spf.status == "unknown"
    assert hz.REFUSED_NAME in spf.error and "REFUSED" in spf.error


def test_dmarc_variants(nameservers: list[Nameserver]) -> None:
    monitor = domain("monitor.test", nameservers)
    dmarc = monitor[("dmarc", "")]
    assert dmarc.status == "ok" and "monitoring only" in dmarc.detail and "no rua" in dmarc.detail
    missing = domain("open.test", nameservers)[("dmarc", "")]
    assert (missing.status, missing.severity) == ("problem", "high")
    inherited = domain("sub.good.test", nameservers)[("dmarc", "")]
    assert inherited.status == "ok" and inherited.fields["inherited_from"] == "good.test"


def test_mx_and_optional_policies(nameservers: list[Nameserver]) -> None:
    monitor = domain("monitor.test", nameservers)
    assert monitor[("mx", "")].severity == "high"  # its only MX host has no address
    assert monitor[("mta-sts", "")].status == "problem"  # no id= tag
    assert monitor[("tls-rpt", "")].detail == "not published"
    # a logo that cannot be fetched is not a verdict on the record
    assert monitor[("bimi", "")].status == "unknown"
    assert domain("toomany.test", nameservers)[("mx", "")].detail.startswith("null MX")
    assert domain("bare.test", nameservers)[("mx", "")].severity == "medium"


def test_ptr_states(nameservers: list[Nameserver]) -> None:
    assert ip(hz.IP_GOOD, [], nameservers)[("ptr", "")].status == "ok"
    v6 = ip(hz.IP6_GOOD, [], nameservers)[("ptr", "")]
    assert v6.status == "ok" and v6.fields["ptr"] == ["mail6.good.test"]
    nomatch = ip(hz.IP_NOMATCH, [], nameservers)[("ptr", "")]
    assert nomatch.status == "problem" and nomatch.fields["forward_confirmed"] is False
    generic = ip(hz.IP_GENERIC, [], nameservers)[("ptr", "")]
    assert generic.severity == "medium" and generic.fields["forward_confirmed"] is True
    assert ip(hz.IP_NOPTR, [], nameservers)[("ptr", "")].severity == "high"
    refused = ip(hz.IP_PTR_REFUSED, [], nameservers)[("ptr", "")]
    assert refused.status == "unknown" and "REFUSED" in refused.error


def test_generic_heuristic() -> None:
    assert generic_reasons("dsl-192-0-2-12.dyn.example.net", "192.0.2.12")
    assert generic_reasons("12.2.0.192.in.example.net", "192.0.2.12")
    assert generic_reasons("c000020c.example.net", "192.0.2.12")
    assert generic_reasons("host-12.example.net", "192.0.2.12")
    assert generic_reasons("pool-7.example.net", "192.0.2.12")
    assert not generic_reasons("mail.example.net", "192.0.2.12")
    assert not generic_reasons("smtp-out-2.example.net", "192.0.2.12")
    # the provider's own registered name is not read
    assert not generic_reasons("mx1.dynamic.test", "192.0.2.12")


def test_spf_authorizes(nameservers: list[Nameserver]) -> None:
    r = ip(hz.IP_GOOD, ["good.test", "refused.test", "toomany.test", "bare.test"], nameservers)
    assert r[("spf-authorizes", "good.test")].status == "ok"
    assert r[("spf-authorizes", "refused.test")].status == "unknown"
    assert "permerror" in r[("spf-authorizes", "toomany.test")].detail
    assert "none" in r[("spf-authorizes", "bare.test")].detail
    relay = ip(hz.IP_RELAY, ["good.test"], nameservers)[("spf-authorizes", "good.test")]
    assert relay.status == "ok"  # through include:relay.test
    v6 = ip(hz.IP6_GOOD, ["good.test"], nameservers)[("spf-authorizes", "good.test")]
    assert v6.status == "ok"  # ip6:2001:db8::/64 inside the include
    outside = ip(hz.IP_OUTSIDE, ["good.test", "monitor.test"], nameservers)
    fail = outside[("spf-authorizes", "good.test")]
    assert (fail.status, fail.severity, fail.fields["result"]) == ("problem", "high", "fail")
    neutral = outside[("spf-authorizes", "monitor.test")]
    assert neutral.status == "problem" and "neutral" in neutral.detail


def test_bad_ip_is_unknown_not_a_crash(nameservers: list[Nameserver]) -> None:
    r = ip("not-an-ip", ["good.test"], nameservers)
    assert {x.status for x in r.values()} == {"unknown"}


def test_silent_nameserver_makes_every_check_unknown() -> None:
    with silent_udp_server() as port:
        ns = [Nameserver("127.0.0.1", port)]
        started = time.monotonic()
        results = asyncio.run(
            _both(
                check_domain("good.test", ["s2048"], ns, 0.2),
                check_ip(hz.IP_GOOD, ["good.test"], ns, 0.2),
            )
        )
        elapsed = time.monotonic() - started
    assert len(results) == 10  # 8 domain checks with one selector, ptr, one spf-authorizes
    for r in results:
        assert r.status == "unknown", r
        assert r.error
    assert elapsed < 5


async def _both(*jobs) -> list[CheckResult]:
    out: list[CheckResult] = []
    for batch in await asyncio.gather(*jobs):
        out += batch
    return out


def test_zone_change_is_seen_by_the_next_run(keys: dict[str, str]) -> None:
    """No cache (ours or checkdmarc's) serves the first run's answers to the second."""
    with nsd(hz.zones(keys)) as server:
        ns = [Nameserver("127.0.0.1", server.port)]
        first = domain("cache.test", ns)
        # checkdmarc's own module-level DNS cache would keep this answer for 30 minutes
        before = checkdmarc.utils.query_dns("inc.cache.test", "TXT", nameservers=as_lib(ns))
        port = server.port
    with nsd(hz.zones(keys, cache_v2=True), port=port):
        second = domain("cache.test", ns)
        after = checkdmarc.utils.query_dns("inc.cache.test", "TXT", nameservers=as_lib(ns))
    assert before != after
    assert first[("spf", "")].fields["dns_lookups"] == 1
    assert second[("spf", "")].fields["dns_lookups"] == 3  # counted by checkdmarc
    assert first[("dmarc", "")].fields["p"] == "none"
    assert second[("dmarc", "")].fields["p"] == "reject"


def test_many_domains_concurrently(nameservers: list[Nameserver]) -> None:
    # Kept small: nsd's default response rate limiting (200 answers a second per
    # source and kind) drops answers from a bigger burst to one loopback client.
    names = ["good.test", "monitor.test", "open.test", "toomany.test", "refused.test"] * 8

    async def sweep() -> list[list[CheckResult]]:
        return await asyncio.gather(
            *(check_domain(n, ["s2048"], nameservers, TIMEOUT) for n in names)
        )

    started = time.monotonic()
    batches = asyncio.run(sweep())
    elapsed = time.monotonic() - started
    first = {n: by_key(b) for n, b in zip(names[:5], batches[:5], strict=True)}
    for n, b in zip(names, batches, strict=True):
        got = {k: (r.status, r.severity) for k, r in by_key(b).items()}
        assert got == {k: (r.status, r.severity) for k, r in first[n].items()}
    print(f"{len(names)} domains in {elapsed:.2f}s")


def test_dnssec_signed_and_broken() -> None:
    with nsd(hz.dnssec_zones()) as server:
        ns = [Nameserver("127.0.0.1", server.port)]
        signed = domain("signed.test", ns)[("dnssec", "")]
        broken = domain("broken.test", ns)[("dnssec", "")]
    assert signed.status == "ok" and signed.fields["valid"] is True
    assert (broken.status, broken.severity) == ("problem", "high")


def test_every_check_is_documented() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "hygiene.md").read_text()
    for check in HYGIENE_CHECKS:
        assert f"| `{check}` |" in doc, check
