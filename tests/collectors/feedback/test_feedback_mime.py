"""The cheaper MIME reading gives exactly what the standard parser gives."""

from __future__ import annotations

import re
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32

from collectors.feedback.mime import MimePart, _BoundaryMatch, _ParserRe, read_structure

NESTED = (
    b"From: a@example.org\r\nSubject: nested\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/report; report-type=delivery-status; boundary="x.(y)+*?"\r\n\r\n'
    b"preamble\r\n--x.(y)+*?\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nhello\r\n"
    b"--x.(y)+*?  \r\nContent-Type: multipart/mixed; boundary=inner\r\n\r\n"
    b"--inner\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n--inner--\r\n"
    b"--x.(y)+*?\r\nContent-Type: message/rfc822\r\n\r\nSubject: returned\r\n\r\nbody\r\n"
    b"--x.(y)+*?--\r\nepilogue\r\n"
)


def _shape(msg: Message) -> list[tuple[str, list[tuple[str, str]], object]]:
    return [
        (
            part.get_content_type(),
            [(k, str(v)) for k, v in part.items()],
            part.get_payload() if not part.is_multipart() else (part.preamble, part.epilogue),
        )
        for part in msg.walk()
    ]


def test_same_tree_as_the_standard_parser() -> None:
    ours = read_structure(NESTED)
    theirs = BytesParser(policy=compat32).parsebytes(NESTED)
    assert isinstance(ours, MimePart)
    assert _shape(ours) == _shape(theirs)
    assert [type(d) for d in ours.defects] == [type(d) for d in theirs.defects]


def test_remembered_answers_follow_header_changes() -> None:
    msg = read_structure(b"Content-Type: text/plain; charset=latin-1\r\n\r\nx\r\n")
    assert msg.get_content_type() == "text/plain" and msg.get("content-type") != "text/plain"
    assert msg.get_param("charset") == "latin-1"
    msg.replace_header("Content-Type", "text/html; charset=utf-8")
    assert msg.get_content_type() == "text/html" and msg.get_param("charset") == "utf-8"
    del msg["Content-Type"]
    msg["Content-Type"] = "message/rfc822"
    assert msg.get_content_type() == "message/rfc822"
    assert msg.get("X-Absent", []) == []  # an unhashable default still works


def test_boundary_matcher_answers_as_the_pattern_would() -> None:
    separator = "--a.b(c)+[d]"
    pattern = (
        "(?P<sep>" + re.escape(separator) + r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$"
    )
    compiled = _ParserRe().compile(pattern)
    assert isinstance(compiled, _BoundaryMatch)
    real = re.compile(pattern)
    for line in (
        separator + "\r\n",
        separator + "--\r\n",
        separator + "--",
        separator + " \t\n",
        separator + "x\r\n",
        separator[:-1] + "\r\n",
        separator + "--\r\n\r\n",
        " " + separator + "\n",
        separator + "\r",
        "",
    ):
        ours, theirs = compiled.match(line), real.match(line)
        assert bool(ours) == bool(theirs), line
        if ours and theirs:
            assert ours.group("end", "linesep") == theirs.group("end", "linesep"), line
    assert not isinstance(_ParserRe().compile("(?P<sep>x)y"), _BoundaryMatch)
