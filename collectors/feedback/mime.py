"""Reading MIME structure cheaply: the standard ``email`` parser with two costs taken out.

Profiling the intake of ordinary bounces showed two hot spots that do not depend on what a
message says:

- **Header look-ups.** The detectors ask each part for its content type and headers again
  and again (~70 ``get_content_type()`` calls per bounce), and every call scans the part's
  header list. :class:`MimePart` answers repeated questions from a small cache that any
  change to the part's headers clears.
- **The same work twice.** Several detectors look at every message (ARF, DMARC failure,
  DSN, ...) and ask the same questions of it: :func:`remembered` keeps an answer with the
  part it is about, and :func:`header_block` parses an attached header block once.
- **One regular expression per MIME boundary.** ``email.feedparser`` compiles a pattern for
  every multipart it meets, and since every real message has its own boundary, none is
  ever found in ``re``'s cache: about a fifth of the parse. :func:`read_structure` gives the
  parser a matcher with the same answers built from one precompiled pattern.

Both change how fast, never what: the same parse tree, the same headers, the same defects.

Bounds hold hostile input (docs/reports.md, "Limits against hostile input"):
:func:`read_structure` stops with a :class:`ParseError` at the first MIME part past
``max_parts`` or nested deeper than ``max_depth`` (the parser checks every line against the
boundary of every open level: nesting costs time per line), and a part reads the parameters
of a ``Content-Type`` or ``Content-Disposition`` header from its first
:data:`~collectors.feedback.limits.MAX_PARAM_HEADER_CHARS` characters only (the standard
parser spends seconds on a header of a few hundred thousand ``;a=b``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from email import feedparser, utils
from email.message import Message, _parseparam  # type: ignore[attr-defined]
from email.parser import HeaderParser, Parser
from email.policy import compat32
from typing import Any, TypeVar

from checks.errors import ParseError
from collectors.feedback.limits import MAX_PARAM_HEADER_CHARS

__all__ = ["MimePart", "header_block", "read_structure", "read_text_structure", "remembered"]

_MISSING = object()

T = TypeVar("T")


class MimePart(Message):
    """A :class:`email.message.Message` that remembers its content type and header values.

    Every method that changes headers or the default type clears what it remembers, so a
    part that is changed after parsing answers as a plain ``Message`` would.
    """

    def __init__(self, policy: Any = compat32) -> None:
        super().__init__(policy)
        self._remembered: dict[tuple[str, object], Any] = {}

    def _forget(self) -> None:
        self._remembered.clear()

    def get_content_type(self) -> str:
        key = (":content-type", None)  # no header name holds a colon: no clash with get()
        try:
            return str(self._remembered[key])
        except KeyError:
            value = self._remembered[key] = super().get_content_type()
            return value

    def get(self, name: str, failobj: Any = None) -> Any:
        key = (name.lower(), failobj)
        try:
            return self._remembered[key]
        except KeyError:
            pass
        except TypeError:  # an unhashable default: nothing to remember it by
            return super().get(name, failobj)
        value = self._remembered[key] = super().get(name, failobj)
        return value

    def _get_params_preserve(self, failobj: Any, header: str) -> Any:
        """As ``Message``'s (what ``get_param``, ``get_params``, ``get_boundary``,
        ``get_filename`` read), worked out once per header and from its first
        :data:`~collectors.feedback.limits.MAX_PARAM_HEADER_CHARS` characters."""
        value = self.get(header, _MISSING)
        if value is _MISSING:
            return failobj
        key = (":params:" + header.lower(), None)
        try:
            params = self._remembered[key]
        except KeyError:
            params = self._remembered[key] = _params(str(value)[:MAX_PARAM_HEADER_CHARS])
        return list(params)  # callers may change the list they get

    def get_payload(self, i: Any = None, decode: bool = False) -> Any:
        """As ``Message``'s, except that undecoded text in a charset Python cannot use
        (a name with a NUL, ``idna``) comes back as ASCII with replacement characters
        instead of raising ValueError (the standard library catches only LookupError)."""
        try:
            return super().get_payload(i, decode)  # type: ignore[call-overload]
        except ValueError:
            payload = getattr(self, "_payload", None)  # what the parser stored
            if decode or i is not None or not isinstance(payload, str):
                raise
            return payload.encode("ascii", "surrogateescape").decode("ascii", "replace")

    def get_filename(self, failobj: Any = None) -> Any:
        """As ``Message``'s, except that an RFC 2231 name in a charset Python cannot use
        (a NUL in the name, ``idna``) comes back undecoded instead of raising ValueError."""
        try:
            return super().get_filename(failobj)
        except ValueError:
            for param, header in (("filename", "content-disposition"), ("name", "content-type")):
                value = self.get_param(param, None, header)
                if isinstance(value, tuple):  # (charset, language, text)
                    return str(value[2]).strip()
                if value is not None:
                    return str(value).strip()
            return failobj

    # -- everything that changes what the answers depend on --------------------------

    def __setitem__(self, name: str, val: Any) -> None:
        self._forget()
        super().__setitem__(name, val)

    def __delitem__(self, name: str) -> None:
        self._forget()
        super().__delitem__(name)

    def set_raw(self, name: str, value: Any) -> None:
        self._forget()
        super().set_raw(name, value)

    def add_header(self, _name: str, _value: str, **_params: Any) -> None:
        self._forget()
        super().add_header(_name, _value, **_params)

    def replace_header(self, _name: str, _value: Any) -> None:
        self._forget()
        super().replace_header(_name, _value)

    def set_default_type(self, ctype: str) -> None:
        self._forget()
        super().set_default_type(ctype)

    def set_param(self, *args: Any, **kw: Any) -> None:
        self._forget()
        super().set_param(*args, **kw)

    def del_param(self, *args: Any, **kw: Any) -> None:
        self._forget()
        super().del_param(*args, **kw)

    def set_type(self, *args: Any, **kw: Any) -> None:
        self._forget()
        super().set_type(*args, **kw)

    def set_boundary(self, boundary: str) -> None:
        self._forget()
        super().set_boundary(boundary)

    def set_charset(self, charset: Any) -> None:
        self._forget()
        super().set_charset(charset)

    def set_payload(self, payload: Any, charset: Any = None) -> None:
        self._forget()  # a charset given here sets Content-Type and friends
        super().set_payload(payload, charset)


def _params(value: str) -> list[Any]:
    """``Message._get_params_preserve`` of a header value (the standard library's steps)."""
    params = []
    for p in _parseparam(value):
        try:
            name, val = p.split("=", 1)
            name = name.strip()
            val = val.strip()
        except ValueError:  # a bare attribute
            name = p.strip()
            val = ""
        params.append((name, val))
    return list(utils.decode_params(params))


def read_structure(
    raw: bytes, max_parts: int | None = None, max_depth: int | None = None
) -> Message:
    """``raw`` parsed as the ``email`` package does with the compat32 policy (lenient, as
    real bounces need), into :class:`MimePart` objects. Raises what the parser raises, and
    :class:`ParseError` as soon as the message has more than ``max_parts`` MIME parts or a
    part nested more than ``max_depth`` deep (the message itself is depth 1)."""
    # what BytesParser.parsebytes does, with a parser that counts the depth
    return read_text_structure(raw.decode("ascii", "surrogateescape"), max_parts, max_depth)


def read_text_structure(
    text: str, max_parts: int | None = None, max_depth: int | None = None
) -> Message:
    """As :func:`read_structure`, for a message already decoded to text."""
    if max_depth is None:
        return Parser(_class=_factory(max_parts), policy=compat32).parsestr(text)
    parser = _DepthBoundParser(_factory(max_parts), max_depth)
    for start in range(0, len(text), 8192):  # the chunks email.parser.Parser feeds
        parser.feed(text[start : start + 8192])
    return parser.close()


class _DepthBoundParser(feedparser.FeedParser):
    """A FeedParser that refuses a part nested deeper than ``max_depth``."""

    def __init__(self, factory: Callable[..., MimePart], max_depth: int) -> None:
        super().__init__(factory, policy=compat32)
        self._max_depth = max_depth

    def _new_message(self) -> None:
        if len(self._msgstack) >= self._max_depth:  # type: ignore[attr-defined]
            raise ParseError(f"MIME parts nested more than {self._max_depth} deep")
        super()._new_message()  # type: ignore[misc]


def _factory(max_parts: int | None) -> Callable[..., MimePart]:
    if max_parts is None:
        return MimePart
    made = -1  # the parser makes one part to learn how to call the factory

    def part(policy: Any = compat32) -> MimePart:
        nonlocal made
        made += 1
        if made > max_parts:
            raise ParseError(f"more than {max_parts} MIME parts")
        return MimePart(policy)

    return part


def remembered(part: Message, key: str, compute: Callable[[Message], T]) -> T:
    """``compute(part)``, worked out once per :class:`MimePart` and ``key`` (kept until the
    part's headers change); for a plain ``Message`` computed on every call. The answer is
    shared between callers: treat it as read-only."""
    if not isinstance(part, MimePart):
        return compute(part)
    slot = (":" + key, None)
    try:
        return part._remembered[slot]
    except KeyError:
        value = part._remembered[slot] = compute(part)
        return value


@functools.lru_cache(maxsize=64)
def header_block(text: str) -> Message:
    """The header fields at the start of ``text``, as ``HeaderParser().parsestr(text)``
    reads them. The same text twice (a returned message's headers, read by the ARF and the
    DSN parsers in turn) is parsed once and gives the same object: treat it as read-only."""
    return HeaderParser().parsestr(text)


# -- the boundary matcher -------------------------------------------------------------------

#: what the parser's own boundary pattern says after the separator (Python 3.11-3.13)
_TAIL = r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$"
_HEAD = "(?P<sep>"
_TAIL_RE = re.compile(_TAIL[1:])
_UNESCAPE = re.compile(r"\\(.)", re.S)


class _BoundaryMatch:
    """``boundary_pattern.match``: the separator compared as a string, the rest of the line
    by one pattern compiled once. The parser only tests the result for truth and reads its
    ``end`` and ``linesep`` groups, which are the same as the original pattern's."""

    __slots__ = ("separator",)

    def __init__(self, separator: str) -> None:
        self.separator = separator

    def match(self, line: str) -> re.Match[str] | None:
        if not line.startswith(self.separator):
            return None
        return _TAIL_RE.match(line, len(self.separator))


class _ParserRe:
    """Stands in for the ``re`` module inside ``email.feedparser`` only: the boundary
    pattern becomes a :class:`_BoundaryMatch`; anything else goes to ``re`` unchanged."""

    def __getattr__(self, name: str) -> Any:
        return getattr(re, name)

    def compile(self, pattern: Any, flags: int = 0) -> Any:
        if (
            not flags
            and isinstance(pattern, str)
            and pattern.startswith(_HEAD)
            and pattern.endswith(_TAIL)
        ):
            escaped = pattern[len(_HEAD) : -len(_TAIL)]
            separator = _UNESCAPE.sub(r"\1", escaped)
            # Only a pattern that is exactly an escaped literal is replaced; one this
            # module does not understand (a future parser) keeps the real compile.
            if re.escape(separator) == escaped:
                return _BoundaryMatch(separator)
        return re.compile(pattern, flags)


if getattr(feedparser, "re", None) is re:
    setattr(feedparser, "re", _ParserRe())  # noqa: B010 - the module does not declare it
