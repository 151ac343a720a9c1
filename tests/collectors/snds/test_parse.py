"""Reading the SNDS exports: the published layouts and their quirks, without a network."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from checks.errors import ParseError
from collectors.snds.model import BlockedRange
from collectors.snds.parse import (
    complaint_rate,
    looks_like_html,
    parse_activity,
    parse_ip_status,
)
from tests.collectors.snds.snds_server import LOGIN_PAGE

DAY = dt.date(2024, 5, 2)

# headerless, CRLF, 14 columns; the second row has empty trap columns and an empty HELO
EXPORT = (
    b"192.0.2.12,5/1/2024 5:00 PM,5/2/2024 5:00 PM,23000,22100,21950,RED,2.5%,"
    b"5/1/2024 9:14 PM,5/2/2024 3:02 AM,57,mta3.example.net,news@example.net,\r\n"
    b"192.0.2.10,5/1/2024 5:00 PM,5/2/2024 5:00 PM,1520,1498,1490,GREEN,< 0.1%,,,,"
    b",bounce@example.net,\r\n"
)


def test_a_data_export_row_becomes_numbers() -> None:
    red, green = parse_activity(EXPORT.decode(), DAY)
    assert red.ip == "192.0.2.12" and red.day == DAY
    assert red.activity_start == dt.datetime(2024, 5, 1, 17, 0)
    assert red.activity_end == dt.datetime(2024, 5, 2, 17, 0)
    assert (red.rcpt_commands, red.data_commands, red.message_recipients) == (23000, 22100, 21950)
    assert red.filter_result == "RED"
    assert red.complaint_rate == pytest.approx(0.025) and not red.complaint_rate_below
    assert red.trap_start == dt.datetime(2024, 5, 1, 21, 14)
    assert red.trap_end == dt.datetime(2024, 5, 2, 3, 2)
    assert red.trap_hits == 57
    assert (red.sample_helo, red.jmr_p1_sender, red.comments) == (
        "mta3.example.net",
        "news@example.net",
        "",
    )
    # "< 0.1%": below the floor, not equal to it; empty trap columns: no hit, no period
    assert green.complaint_rate == pytest.approx(0.001) and green.complaint_rate_below
    assert green.complaint_rate_text == "< 0.1%"
    assert (green.trap_start, green.trap_end, green.trap_hits) == (None, None, 0)
    assert green.sample_helo == "" and green.jmr_p1_sender == "bounce@example.net"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("< 0.1%", (0.001, True)),
        ("<0.1%", (0.001, True)),
        ("0.3%", (0.003, False)),
        ("1-2%", (0.02, False)),
        ("> 4%", (0.04, False)),
        ("", (None, False)),
        ("n/a", (None, False)),
    ],
)
def test_complaint_rate_forms(text: str, expected: tuple[float | None, bool]) -> None:
    rate, below = complaint_rate(text)
    assert below == expected[1]
    assert rate == (pytest.approx(expected[0]) if expected[0] is not None else None)


def test_no_trailing_line_end_and_a_comma_in_the_comments() -> None:
    text = (
        "192.0.2.10,5/1/2024 5:00 PM,5/2/2024 5:00 PM,150,150,150,GREEN,< 0.1%,,,,h,s,"
        "Abuse Reported, see JMRP"
    )
    (row,) = parse_activity(text, DAY)
    assert row.comments == "Abuse Reported, see JMRP"


@pytest.mark.parametrize(
    "text",
    [
        "not-an-ip,5/1/2024 5:00 PM,5/2/2024 5:00 PM,1,1,1,GREEN,< 0.1%,,,\r\n",
        "192.0.2.1,yesterday,5/2/2024 5:00 PM,1,1,1,GREEN,< 0.1%,,,\r\n",
        "192.0.2.1,5/1/2024 5:00 PM,5/2/2024 5:00 PM,many,1,1,GREEN\r\n",
        "192.0.2.1,5/1/2024 5:00 PM,5/2/2024 5:00 PM,1,1,1,GREEN,< 0.1%,,,x\r\n",
    ],
)
def test_an_unreadable_row_fails_the_whole_file(text: str) -> None:
    with pytest.raises(ParseError, match="line 1"):
        parse_activity(text, DAY)


def test_a_sign_in_page_is_not_csv() -> None:
    assert looks_like_html(LOGIN_PAGE.decode())
    assert not looks_like_html(EXPORT.decode())
    with pytest.raises(ParseError, match="web page"):
        parse_activity(LOGIN_PAGE.decode(), DAY)


def test_ip_status_ranges_stay_ranges() -> None:
    text = (
        "192.0.2.12,192.0.2.12,Yes,Blocked due to user complaints or other evidence of spamming\r\n"
        "100.64.0.0,100.127.255.255,Yes,Blocked due to user complaints or other evidence of"
        " spamming\r\n"
        "2001:db8::,2001:db8::ffff:ffff,No,\r\n"
    )
    single, huge, v6 = parse_ip_status(text)
    assert single == BlockedRange(
        "192.0.2.12",
        "192.0.2.12",
        True,
        "Blocked due to user complaints or other evidence of spamming",
    )
    assert huge.size == 4_194_304
    started = time.monotonic()
    assert [str(n) for n in huge.networks()] == ["100.64.0.0/10"]
    assert "100.100.1.1" in huge and "100.128.0.0" not in huge and "2001:db8::1" not in huge
    assert time.monotonic() - started < 0.1
    assert not v6.blocked and v6.reason == "" and "2001:db8::1:2" in v6
    # a range that is not CIDR-aligned is a handful of blocks, not addresses
    odd = BlockedRange("198.51.100.3", "198.51.100.200", True, "")
    assert 1 < len(odd.networks()) <= 16


def test_an_empty_ip_status_export_means_nothing_is_blocked() -> None:
    assert parse_ip_status("") == []
    assert parse_ip_status("\r\n") == []


@pytest.mark.parametrize(
    "text",
    [
        "192.0.2.12,192.0.2.1,Yes,backwards\r\n",
        "192.0.2.1,2001:db8::1,Yes,mixed\r\n",
        "192.0.2.1,192.0.2.9,Maybe,what\r\n",
        "192.0.2.1\r\n",
    ],
)
def test_an_unreadable_ip_status_row_fails_the_file(text: str) -> None:
    with pytest.raises(ParseError, match="IP status line 1"):
        parse_ip_status(text)
