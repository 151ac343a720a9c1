"""Finding addresses, URLs and times: defanged forms, look-alikes, zones."""

from __future__ import annotations

import datetime as dt

import pytest

from collectors.abuse.extract import (
    find_ips,
    find_urls,
    host_of,
    is_actionable,
    normal_ip,
    parse_when,
    redact,
    refang,
)


def ips(text: str) -> list[str]:
    return [f.ip for f in find_ips(text) if f.ip]


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("1[.]2[.]3[.]4", "1.2.3.4"),
        ("10(.)0(.)0(.)1", "10.0.0.1"),
        ("hxxp://evil[.]example/x", "http://evil.example/x"),
        ("hXXps[:]//evil[.]example", "https://evil.example"),
        ("evil[dot]example", "evil.example"),
        ("plain text stays", "plain text stays"),
    ],
)
def test_refang_undoes_the_usual_defanging(written: str, meant: str) -> None:
    assert refang(written) == meant


def test_addresses_are_found_and_normalised() -> None:
    text = "from 203.0.113.7, v6 2001:DB8:0:0:0:0:0:1 and [IPv6:2001:db8::2] end 198.51.100.1."
    assert ips(text) == ["203.0.113.7", "198.51.100.1", "2001:db8::1", "2001:db8::2"]


@pytest.mark.parametrize(
    "text",
    [
        "OpenSSH version 1.2.3.4 installed",  # a version
        "Mozilla/5.0 Chrome/91.0.44.12",  # a user agent
        "IP 1.2.3.4.123 > 5.6.7.8.53: UDP",  # tcpdump address.port
        "build 5.15.0.91.2",  # five parts
        "at 12:30:45 and 10:15",  # clock times
        "mac 00:1A:2B:3C:4D:5E",  # a MAC address
        "octets 256.1.1.1 and 01.2.3.4",  # out of range, leading zero
    ],
)
def test_lookalikes_are_not_addresses(text: str) -> None:
    assert ips(text) == []


def test_a_prefix_makes_a_network_not_an_address() -> None:
    found = list(find_ips("targeted range 192.0.2.0/24, host 198.51.100.9/32"))
    assert [str(f.network) for f in found if f.network] == ["192.0.2.0/24"]
    assert [f.ip for f in found if f.ip] == ["198.51.100.9"]


def test_normal_ip() -> None:
    assert normal_ip(" [203.0.113.5] ") == "203.0.113.5"
    assert normal_ip("::ffff:203.0.113.5") == "203.0.113.5"
    assert normal_ip("fdf1:cb9d:f59e:19b0:0:0:0:122") == "fdf1:cb9d:f59e:19b0::122"
    assert normal_ip("not an address") == ""


def test_only_never_routable_addresses_are_unactionable() -> None:
    assert not is_actionable("127.0.0.1")
    assert not is_actionable("0.0.0.0")
    assert not is_actionable("239.255.255.250")
    assert not is_actionable("fe80::1")
    # anonymised samples live in private and documentation ranges: those stay reportable
    assert is_actionable("10.0.2.35")
    assert is_actionable("192.0.2.55")


def test_urls_are_found_refanged_and_trimmed() -> None:
    text = "see hxxp://phish[.]example/login). and https://a.example/b?c=1, (http://x.example/y)"
    assert [u for u, _ in find_urls(text)] == [
        "http://phish.example/login",
        "https://a.example/b?c=1",
        "http://x.example/y",
    ]
    assert list(find_urls("http: //broken.example and http://nodot/")) == []
    assert host_of("https://user@Host.Example:8443/p") == "host.example"
    assert host_of("http://[2001:db8::1]:80/") == "2001:db8::1"


@pytest.mark.parametrize(
    ("written", "iso"),
    [
        ("Fri, 31 Jan 2014 07:19:02 +0100", "2014-01-31T07:19:02+01:00"),
        ("2015-09-14 07:49:54 CEST", "2015-09-14T07:49:54+02:00"),
        ("2015-05-15 17:03:11-07:00", "2015-05-15T17:03:11-07:00"),
        ("2015-11-13T20:35:03Z", "2015-11-13T20:35:03+00:00"),
        ("2018-07-10T20:05:01+0000", "2018-07-10T20:05:01+00:00"),
        ("Feb  3 2014 02:13:35 +0100", "2014-02-03T02:13:35+01:00"),
        ("Mon, 21 Sep 2015 11:00PM PDT", "2015-09-21T23:00:00-07:00"),
        ("31/Jan/2014:07:19:02 +0100", "2014-01-31T07:19:02+01:00"),
        ("2014-06-16 00:16:33", "2014-06-16T00:16:33+00:00"),  # zone-less: UTC
    ],
)
def test_parse_when(written: str, iso: str) -> None:
    assert parse_when(written) == dt.datetime.fromisoformat(iso)


def test_parse_when_gives_none_for_nonsense() -> None:
    assert parse_when("(invalid)") is None
    assert parse_when("2015-13-45 99:99") is None
    assert parse_when("x" * 500) is None


def test_redact_masks_mailboxes_and_secrets_but_keeps_addresses() -> None:
    shown = redact("login for bob@example.org from 203.0.113.7 password=hunter2")
    assert shown == "login for …@example.org from 203.0.113.7 password=…"
