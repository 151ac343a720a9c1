"""ACNS copyright notices: inline, attached, twice, broken, hostile."""

from __future__ import annotations

import pytest

from checks.errors import ParseError
from collectors.abuse import parse_abuse
from collectors.abuse.acns import find_notices, report_from_notices

NOTICE = """<?xml version="1.0" encoding="UTF-8"?>
<Infringement xmlns="http://www.acns.net/ACNS">
 <Case><ID>CASE-{case}</ID><Status>Open</Status></Case>
 <Complainant>
  <Entity>Example Studios</Entity><Email>notices@rights-agent.example</Email>
 </Complainant>
 <Service_Provider><Entity>Provider</Entity><Email>abuse@provider.example</Email></Service_Provider>
 <Source>
  <TimeStamp>2024-05-20T18:00:0{case}Z</TimeStamp>
  <IP_Address>{ip}</IP_Address>
  <Port>51413</Port>
  <Type>BitTorrent</Type>
 </Source>
 <Content>
  <Item><Title>Example Film</Title><FileName>Example.Film.2024.mkv</FileName></Item>
 </Content>
</Infringement>"""


def notice(case: int = 1, ip: str = "203.0.113.30") -> str:
    return NOTICE.format(case=case, ip=ip)


def letter(xml_inline: str, xml_attached: str = "") -> bytes:
    parts = [
        "From: Rights Agent <notices@rights-agent.example>",
        "To: abuse@provider.example",
        "Subject: Notice of Claimed Infringement",
        "Date: Mon, 20 May 2024 18:30:00 +0000",
        'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="B"\n',
        "--B\nContent-Type: text/plain\n",
        "Dear Sir or Madam, the following infringement was detected.\n" + xml_inline,
    ]
    if xml_attached:
        parts += ['--B\nContent-Type: application/xml; name="notice.xml"\n', xml_attached]
    parts.append("--B--")
    return "\n".join(parts).encode()


def test_a_notice_inline_and_attached_is_one_incident() -> None:
    [report] = parse_abuse(letter(notice(), notice()))
    assert (report.category, report.confidence, report.format) == (
        "copyright",
        0.95,
        "acns-xml-email",
    )
    assert report.ips == ["203.0.113.30"]
    assert report.count == 1
    assert (
        report.reported_at is not None
        and report.reported_at.isoformat() == "2024-05-20T18:00:01+00:00"
    )
    assert report.extra["complainant"] == "Example Studios"
    assert report.extra["title"] == "Example Film"
    assert report.reporter == "rights-agent.example"  # the agent who sent it
    assert "CASE-1" in report.reason


def test_distinct_cases_count_separately() -> None:
    report = report_from_notices(find_notices(notice(1) + "\n" + notice(2, "203.0.113.31")))
    assert report.count == 2
    assert report.ips == ["203.0.113.30", "203.0.113.31"]


def test_a_bare_notice_file() -> None:
    [report] = parse_abuse(notice().encode(), "notice.xml")
    assert report.format == "acns-xml"
    assert report.ips == ["203.0.113.30"]


def test_entity_expansion_is_refused() -> None:
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        "<Infringement><Source><IP_Address>&b;</IP_Address></Source></Infringement>"
    )
    assert find_notices(bomb) == []
    with pytest.raises(ParseError, match="neither an ACNS notice"):
        parse_abuse(bomb.encode(), "bomb.xml")


def test_broken_xml_in_a_letter_leaves_the_letter() -> None:
    raw = letter("<Infringement><Source><IP_Address>203.0.113.30</IP_Address>")
    [report] = parse_abuse(raw)
    assert report.format == "free-text"
    assert report.category == "copyright"  # from its words
