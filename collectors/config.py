"""What every collector's configuration shares: the strict section base, durations, listen
addresses, the resolver, and :func:`mask_url` for URLs that may carry a secret.

Each collector declares its own section model (``collectors/<name>/config.py``) on
:class:`Section`; the application's config file (``monitor/config``) gathers them from the
registry. Unknown keys are errors; a duration is ``90``, ``"90s"``, ``"15m"``, ``"1h"``, ``"2d"``,
finite and at most :data:`MAX_DURATION_SECONDS`; a listen address is ``host:port`` or
``[v6]:port``.
"""

from __future__ import annotations

import ipaddress
import math
import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from checks.resolver import Nameserver, parse_nameserver


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: the longest duration any key takes: ten years (retention is the longest real one)
MAX_DURATION_SECONDS = 3650 * 86400.0
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(
    value: object, *, minimum: float = 0.0, maximum: float = MAX_DURATION_SECONDS
) -> float:
    """Seconds from ``90``, ``"90s"``, ``"15m"``, ``"1h"``, ``"2d"``, ``"1w"``.

    ValueError, saying what was expected, for anything else: not a duration, negative,
    not finite (``inf``, ``nan``), under ``minimum`` or over ``maximum`` (ten years unless
    the key says less).
    """
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        # float(10**400) would raise; such a number is out of range either way
        seconds = float(value) if abs(value) < 1e300 else math.inf
    elif isinstance(value, str):
        text = value.strip().lower()
        number, unit = (text[:-1], _UNITS[text[-1]]) if text[-1:] in _UNITS else (text, 1)
        try:
            seconds = float(number) * unit
        except (ValueError, OverflowError):
            seconds = None
    if seconds is None or math.isnan(seconds) or seconds < 0:
        raise ValueError(
            f"expected a duration such as '90s', '15m', '1h', '2d', got {_shown(value)}"
        )
    if math.isinf(seconds):
        raise ValueError(f"{_shown(value)} is not a finite duration")
    if seconds > maximum:
        raise ValueError(f"{_shown(value)} is longer than the maximum, {_as_text(maximum)}")
    if seconds < minimum:
        raise ValueError(f"{_shown(value)} is shorter than the minimum, {_as_text(minimum)}")
    return seconds


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _as_text(seconds: float) -> str:
    """``86400`` → ``"1d"``: the largest unit that divides the duration."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


# -- listen addresses ------------------------------------------------------------------------

_HOSTNAME = re.compile(
    r"(?=.{1,253}\.?$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` as (host, port); an empty host is ``127.0.0.1``.

    The host is an IPv4 address, a bracketed IPv6 address or a host name; the port is
    0-65535 (0: any free port). ValueError saying what is wrong otherwise.
    """
    if not isinstance(text, str):
        raise ValueError("expected 'host:port' or '[v6]:port'")
    host, sep, port_text = text.strip().rpartition(":")
    if not sep:
        raise ValueError(f"expected 'host:port' or '[v6]:port', got {_shown(text)}")
    if not (port_text.isascii() and port_text.isdigit()) or int(port_text) > 65535:
        raise ValueError(f"port {port_text!r} of {_shown(text)}: expected a number 0-65535")
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"{host} of {_shown(text)} is not an IPv6 address") from None
        return host[1:-1], int(port_text)
    if ":" in host:
        raise ValueError(f"write an IPv6 address in brackets: '[{host}]:{port_text}'")
    if host and not _HOSTNAME.fullmatch(host):
        raise ValueError(f"host {host!r} of {_shown(text)} is not an IP address or host name")
    if host and host.replace(".", "").isdigit():
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(f"{host!r} of {_shown(text)} is not an IPv4 address") from None
    return host or "127.0.0.1", int(port_text)


def _listen(text: str) -> str:
    parse_listen(text)
    return text


#: a ``listen`` key: ``host:port`` or ``[v6]:port``, checked on load
ListenAddress = Annotated[str, AfterValidator(_listen)]


# -- secrets in URLs -------------------------------------------------------------------------

#: query parameters (and libpq ``key=value`` words) whose value is a secret
SECRET_PARAMETERS = (
    "password",
    "passwd",
    "pass",
    "pwd",
    "sslpassword",
    "token",
    "access_token",
    "auth_token",
    "api_key",
    "apikey",
    "api-key",
    "key",
    "secret",
    "client_secret",
    "signature",
    "sig",
    "auth",
)
_SECRET_PARAMETER = re.compile(
    r"(?<![A-Za-z0-9_.-])(" + "|".join(re.escape(p) for p in SECRET_PARAMETERS) + r")"
    r"(\s*=\s*)('[^']*'|[^&;#\s]*)",
    re.IGNORECASE,
)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
MASK = "***"


def mask_url(url: str) -> str:
    """``url`` with every secret in it replaced by ``***``, for logs and error messages.

    Hidden: the password of the user information (``postgresql://user:pass@host/db`` →
    ``postgresql://user:***@host/db``, ``https://user:pass@influx:8086``), and the value of
    every query parameter or libpq ``key=value`` word named like a secret (``password``,
    ``token``, ``api_key``, ``secret`` … :data:`SECRET_PARAMETERS`), as in
    ``?password=…``, ``&token=…`` or ``host=db password=…``. The rest is kept as written,
    so the URL still says where it points; a string that is not a URL comes back with only
    its ``key=value`` secrets hidden.
    """
    text = str(url)
    scheme = _SCHEME.match(text)
    if scheme:
        start = scheme.end()
        end = len(text)
        for stop in "?#":  # the user information ends at the last "@" before the query
            found = text.find(stop, start)
            if found >= 0:
                end = min(end, found)
        at = text.rfind("@", start, end)
        if at >= 0:
            user, colon, password = text[start:at].partition(":")
            if colon and password:
                text = text[:start] + user + ":" + MASK + text[at:]
    return _SECRET_PARAMETER.sub(lambda m: m.group(1) + m.group(2) + MASK, text)


def _nameserver(text: str) -> str:
    parse_nameserver(text)
    return text


NameserverText = Annotated[str, AfterValidator(_nameserver)]


class ResolverConfig(Section):
    """``[resolver]``: where DNS questions go."""

    nameservers: list[NameserverText] = Field(default_factory=list)
    timeout: float = Field(2.0, gt=0, le=60)
    #: how many times a query that got no answer is sent again (UDP loses packets)
    retries: int = Field(2, ge=0, le=10)
    #: queries in flight at once in a sweep
    concurrency: int = Field(500, ge=1, le=20000)

    def servers(self) -> list[Nameserver]:
        return [parse_nameserver(t) for t in self.nameservers]
